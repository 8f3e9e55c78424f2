//! The `stomp` kind's webhooks against a real HTTP backend on loopback:
//! the connect webhook names the user, the app webhook gets SENDs to
//! `/app/...` in order and its reply comes back; failures are ERRORs.
mod common;
use actix_web::{web, HttpResponse};
use common::stomp::*;
use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every call the backend got: (path, JSON body).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A backend that records every call and answers by its content.
struct Backend {
    addr: String,
    calls: Calls,
    _server: actix_web::dev::ServerHandle,
}

impl Backend {
    fn start() -> Backend {
        let calls: Calls = Arc::default();
        let seen = web::Data::new(calls.clone());
        let (addr, handle) = serve(move |config| {
            config
                .app_data(seen.clone())
                .route("/connect", web::post().to(connect))
                .route("/app", web::post().to(app))
                .route("/redirect", web::post().to(redirect));
        });
        Backend {
            addr,
            calls,
            _server: handle,
        }
    }

    fn calls(&self, path: &str) -> Vec<Value> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn connect(seen: web::Data<Calls>, body: web::Json<Value>) -> HttpResponse {
    seen.lock()
        .unwrap()
        .push(("/connect".into(), body.0.clone()));
    let login = body["headers"]["login"].as_str().unwrap_or_default();
    let cookie = body["cookie"].as_str().unwrap_or_default();
    match login {
        "alice" if cookie.contains("sid=good") => HttpResponse::Ok().json(json!({"user": "alice"})),
        "nobody" => HttpResponse::Ok().json(json!({"user": null})),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            HttpResponse::Ok().json(json!({"user": "slow"}))
        }
        _ => HttpResponse::Forbidden().json(json!({"message": "who are you?"})),
    }
}

async fn app(seen: web::Data<Calls>, body: web::Json<Value>) -> HttpResponse {
    seen.lock().unwrap().push(("/app".into(), body.0.clone()));
    let text = body["body"].as_str().unwrap_or_default().to_owned();
    match body["destination"].as_str().unwrap_or_default() {
        "/app/echo" => HttpResponse::Ok().json(json!({"messages": [
            {"destination": "/user/queue/replies", "body": format!("echo: {text}"), "headers": {"x-n": "1"}}
        ]})),
        "/app/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            HttpResponse::Ok().json(json!({"messages": [{"destination": "/topic/chat/mine", "body": "slow reply"}]}))
        }
        "/app/quiet" => HttpResponse::NoContent().finish(),
        "/app/huge" => HttpResponse::Ok().json(json!({"messages": [
            {"destination": "/topic/chat/mine", "body": "x".repeat(20_000)}
        ]})),
        "/app/gone" => HttpResponse::NotFound().json(json!({"message": "no such room"})),
        _ => HttpResponse::InternalServerError().body("boom"),
    }
}

/// Sends the caller on to `/app` with its body, as a hostile or
/// misconfigured backend might.
async fn redirect(seen: web::Data<Calls>, body: web::Json<Value>) -> HttpResponse {
    seen.lock()
        .unwrap()
        .push(("/redirect".into(), body.0.clone()));
    HttpResponse::TemporaryRedirect()
        .insert_header(("Location", "/app"))
        .finish()
}

fn webhook_config(backend: &str, auth: &str) -> String {
    format!(
        "[auth]\n{auth}\nconnect_webhook = \"{backend}/connect\"\n\
         [services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\n\
         subscribe = [\"/topic/**\", \"/user/queue/**\"]\n\
         send = [\"/app/**\", \"/topic/chat/**\", \"/user/*/queue/**\"]\n\
         app_webhook = \"{backend}/app\"\nwebhook_timeout = 1\n"
    )
}

async fn connect_as(gw: &Gateway, login: &str, cookie: &str) -> Client {
    let mut c = Client::open_with(gw, &[("Cookie", cookie)]).await;
    c.frame(
        "CONNECT",
        &[
            ("accept-version", "1.2"),
            ("login", login),
            ("passcode", "pw"),
        ],
        "",
    )
    .await;
    c
}

/// An ERROR with `message`, then the close that follows every ERROR.
async fn expect_error(c: &mut Client, message: &str) -> String {
    let (cmd, h, body) = c.next().await;
    assert_eq!(
        (cmd.as_str(), header(&h, "message")),
        ("ERROR", Some(message)),
        "{body}"
    );
    assert_eq!(c.ws.recv().await, r#"c[4400,"STOMP error"]"#);
    body
}

#[actix_rt::test]
async fn the_connect_webhook_names_the_user_from_headers_and_cookie() {
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(&format!("http://{}", backend.addr), ""));
    let mut c = connect_as(&gw, "alice", "theme=dark; sid=good").await;
    let (cmd, _, _) = c.next().await;
    assert_eq!(cmd, "CONNECTED");
    // The user is alice: a SEND to alice's queue comes back to this session.
    c.subscribe("n", "/user/queue/notes").await;
    c.frame(
        "SEND",
        &[("destination", "/user/alice/queue/notes")],
        "to me",
    )
    .await;
    assert_eq!(c.next().await.2, "to me");
    let call = &backend.calls("/connect")[0];
    assert_eq!(call["headers"]["login"], "alice");
    assert_eq!(call["headers"]["passcode"], "pw");
    assert_eq!(call["cookie"], "theme=dark; sid=good");
    assert_eq!(call["remote_addr"], "127.0.0.1");
    assert!(call["session"].is_string());

    // Refused: the backend's message is the ERROR's body.
    let mut c = connect_as(&gw, "mallory", "sid=good").await;
    assert_eq!(
        expect_error(&mut c, "Authentication refused").await,
        "who are you?"
    );
    // No user named, and anonymous sessions are not allowed.
    let mut c = connect_as(&gw, "nobody", "").await;
    expect_error(&mut c, "Authentication refused").await;
    // Past webhook_timeout.
    let mut c = connect_as(&gw, "slow", "").await;
    expect_error(&mut c, "The connect webhook failed: timed out").await;
}

#[actix_rt::test]
async fn frames_after_a_connect_wait_for_its_answer() {
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(
        &format!("http://{}", backend.addr),
        "anonymous = true",
    ));
    let mut c = Client::open(&gw).await;
    // All in one SockJS message: the SUBSCRIBE and SEND are handled after
    // the webhook named no user (anonymous is allowed here).
    c.send(&["CONNECT\naccept-version:1.2\nlogin:nobody\n\n\0\
              SUBSCRIBE\nid:1\ndestination:/topic/chat/a\n\n\0\
              SEND\ndestination:/topic/chat/a\n\nfirst\0"])
        .await;
    assert_eq!(c.next().await.0, "CONNECTED");
    let (cmd, _, body) = c.next().await;
    assert_eq!((cmd.as_str(), body.as_str()), ("MESSAGE", "first"));
}

#[actix_rt::test]
async fn app_sends_reach_the_webhook_in_order_and_replies_come_back() {
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(&format!("http://{}", backend.addr), ""));
    let mut c = connect_as(&gw, "alice", "sid=good").await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c.subscribe("r", "/user/queue/replies").await;
    c.subscribe("t", "/topic/chat/mine").await;
    c.frame(
        "SEND",
        &[
            ("destination", "/app/echo"),
            ("content-type", "text/plain"),
            ("receipt", "e"),
        ],
        "hi",
    )
    .await;
    let (cmd, h, body) = c.next().await;
    assert_eq!((cmd.as_str(), body.as_str()), ("MESSAGE", "echo: hi"));
    assert_eq!(header(&h, "subscription"), Some("r"));
    assert_eq!(header(&h, "destination"), Some("/user/queue/replies"));
    assert_eq!(header(&h, "x-n"), Some("1"));
    c.expect_receipt("e").await;
    let call = &backend.calls("/app")[0];
    assert_eq!(
        (
            &call["user"],
            &call["destination"],
            &call["body"],
            &call["headers"]["content-type"]
        ),
        (
            &json!("alice"),
            &json!("/app/echo"),
            &json!("hi"),
            &json!("text/plain")
        )
    );
    // A slow call holds back what the client sent after it: the topic
    // message comes after the slow reply, the quiet call's receipt last.
    c.send(&[
        "SEND\ndestination:/app/slow\n\n\0",
        "SEND\ndestination:/topic/chat/mine\n\nafter\0",
        "SEND\ndestination:/app/quiet\nreceipt:q\n\n\0",
    ])
    .await;
    assert_eq!(c.next().await.2, "slow reply");
    assert_eq!(c.next().await.2, "after");
    c.expect_receipt("q").await;
    let order: Vec<Value> = backend
        .calls("/app")
        .iter()
        .map(|c| c["destination"].clone())
        .collect();
    assert_eq!(
        order,
        [json!("/app/echo"), json!("/app/slow"), json!("/app/quiet")]
    );
    // A failing call is an ERROR and a close...
    c.frame("SEND", &[("destination", "/app/broken")], "").await;
    let body = expect_error(&mut c, "The app webhook failed: status 500").await;
    assert_eq!(body, "try again later");
    // ...that passes on the backend's own message when it gave one.
    let mut c = connect_as(&gw, "alice", "sid=good").await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c.frame("SEND", &[("destination", "/app/gone")], "").await;
    let body = expect_error(&mut c, "The app webhook failed: status 404").await;
    assert_eq!(body, "no such room");
}

#[actix_rt::test]
async fn without_a_webhook_app_sends_and_unreachable_backends_are_errors() {
    let dead = format!("http://{}", dead_addr());
    let gw = Gateway::start(&webhook_config(&dead, "anonymous = true"));
    let mut c = connect_as(&gw, "alice", "").await;
    expect_error(&mut c, "The connect webhook failed: unreachable").await;
    let gw = Gateway::start(&config(""));
    let mut c = Client::connect(&gw).await;
    c.frame("SEND", &[("destination", "/app/x")], "").await;
    // Not in this service's send list, so refused before any webhook.
    expect_error(&mut c, "Forbidden destination").await;
    let toml = config("").replace("send = [", "send = [\"/app/**\", ");
    let gw = Gateway::start(&toml);
    let mut c = Client::connect(&gw).await;
    c.frame("SEND", &[("destination", "/app/x")], "").await;
    expect_error(&mut c, "No app webhook").await;
}

/// What waits on a webhook is bounded: past `max_pending_frames` frames
/// behind a call, or a reply past `max_queued_bytes`, an ERROR that names
/// the limit.
#[actix_rt::test]
async fn what_waits_on_a_webhook_is_bounded() {
    let backend = Backend::start();
    let toml = webhook_config(&format!("http://{}", backend.addr), "")
        + "max_pending_frames = 2\nmax_queued_bytes = 10000\n";
    let gw = Gateway::start(&toml);
    let mut c = connect_as(&gw, "alice", "sid=good").await;
    assert_eq!(c.next().await.0, "CONNECTED");
    let send = "SEND\ndestination:/topic/chat/a\n\n\0";
    // A WebSocket is not read while a call is under way, so the frames that
    // wait are those that came in the same read: here, one message.
    c.send(&["SEND\ndestination:/app/slow\n\n\0", send, send, send])
        .await;
    let body = expect_error(&mut c, "Too many frames waiting").await;
    assert!(body.contains("max_pending_frames"), "{body}");
    let mut c = connect_as(&gw, "alice", "sid=good").await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c.frame("SEND", &[("destination", "/app/huge")], "").await;
    expect_error(
        &mut c,
        "The app webhook failed: the reply is larger than 10000 bytes (max_queued_bytes)",
    )
    .await;
}

/// Issue 18, finding 9: a webhook's answer cannot send the user's message
/// elsewhere (a redirect is a failure, not followed), and a proxy named in
/// the environment never sees the calls.
#[actix_rt::test]
async fn webhooks_follow_no_redirect_and_no_proxy() {
    let backend = Backend::start();
    let url = format!("http://{}", backend.addr);
    let toml = webhook_config(&url, "").replace("/app\"\nwebhook", "/redirect\"\nwebhook");
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let gw = Gateway::start_with_env(
        &toml,
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("http_proxy", proxy_url.as_str()),
            ("ALL_PROXY", proxy_url.as_str()),
        ],
    );
    let mut c = connect_as(&gw, "alice", "sid=good").await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c.frame("SEND", &[("destination", "/app/echo")], "secret plans")
        .await;
    expect_error(&mut c, "The app webhook failed: status 307").await;
    assert_eq!(backend.calls("/redirect").len(), 1);
    assert!(
        backend.calls("/app").is_empty(),
        "the redirect was followed"
    );
    assert!(
        proxy.accept().is_err(),
        "a webhook call went through the environment's proxy"
    );
}
