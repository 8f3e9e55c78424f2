//! Access control (issue 21): the subscribe webhook against a real HTTP
//! backend, token expiry and refresh, and the limits per client address,
//! per session and per user, each from two client addresses (127.0.0.2
//! and 127.0.0.3) or two nodes.
mod common;
use actix_web::{web, HttpResponse};
use common::redis::Redis;
use common::stomp::*;
use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every SUBSCRIBE the backend was asked about.
type Calls = Arc<Mutex<Vec<Value>>>;

/// A subscribe webhook that answers by destination.
struct Backend {
    url: String,
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
                .route("/subscribe", web::post().to(subscribe));
        });
        let url = format!("http://{addr}/subscribe");
        Backend {
            url,
            calls,
            _server: handle,
        }
    }

    /// The destinations asked about, in order.
    fn asked(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .map(|c| c["destination"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn subscribe(seen: web::Data<Calls>, body: web::Json<Value>) -> HttpResponse {
    seen.lock().unwrap().push(body.0.clone());
    let user = body["user"].as_str().unwrap_or_default();
    match body["destination"].as_str().unwrap_or_default() {
        // Each user may read their own orders only.
        "/topic/orders.alice" if user == "alice" => HttpResponse::Ok().json(json!({"allow": true})),
        "/topic/orders.alice" => {
            HttpResponse::Ok().json(json!({"allow": false, "message": "not your orders"}))
        }
        "/topic/orders.secret" => HttpResponse::Forbidden().json(json!({"message": "classified"})),
        "/topic/orders.late" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            HttpResponse::Ok().json(json!({"allow": true}))
        }
        "/topic/orders.slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            HttpResponse::Ok().json(json!({"allow": true}))
        }
        "/topic/orders.vague" => HttpResponse::Ok().json(json!({"ok": true})),
        _ => HttpResponse::InternalServerError().body("boom"),
    }
}

fn webhook_config(backend: &Backend, extra: &str) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n{}",
        config(&format!(
            "subscribe_webhook = \"{}\"\nsubscribe_webhook_destinations = [\"/topic/orders.*\"]\n\
             webhook_timeout = 1\n{extra}",
            backend.url
        ))
        .replace("send = [", "send = [\"/topic/orders.*\", ")
    )
}

/// A session that sent CONNECT with `Authorization: Bearer` a token of
/// `user` valid for `ttl` seconds; its answer not read yet.
async fn connecting(gw: &Gateway, user: &str, ttl: i64) -> Client {
    let mut c = Client::open(gw).await;
    let bearer = format!("Bearer {}", token(SECRET, user, ttl));
    c.frame(
        "CONNECT",
        &[("accept-version", "1.2"), ("Authorization", &bearer)],
        "",
    )
    .await;
    c
}

async fn signed_in(gw: &Gateway, user: &str) -> Client {
    signed_in_for(gw, user, 60).await
}

/// An ERROR with `message`, then the close `code` that follows it; the
/// ERROR's body.
async fn expect_error(c: &mut Client, message: &str, code: u16) -> String {
    let (cmd, h, body) = c.next().await;
    assert_eq!(
        (cmd.as_str(), header(&h, "message")),
        ("ERROR", Some(message)),
        "{body}"
    );
    let close = c.ws.recv().await;
    assert!(close.starts_with(&format!("c[{code},")), "{close}");
    body
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    let text = get(&gw.api_url("/metrics")).await.body;
    metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[actix_rt::test]
async fn the_subscribe_webhook_allows_refuses_and_fails_closed() {
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(&backend, ""));
    let mut alice = signed_in(&gw, "alice").await;
    alice.subscribe("a", "/topic/orders.alice").await;
    let call = backend.calls.lock().unwrap()[0].clone();
    assert_eq!(call["user"], "alice");
    assert_eq!(call["destination"], "/topic/orders.alice");
    assert_eq!(call["headers"]["id"], "a");
    assert!(call["session"].is_string());
    // Not among subscribe_webhook_destinations: the backend is not asked.
    alice.subscribe("f", "/topic/free").await;
    assert_eq!(backend.asked(), ["/topic/orders.alice"]);

    // Refused by its answer, or by 403: an ERROR that names the destination.
    let mut bob = signed_in(&gw, "bob").await;
    bob.frame(
        "SUBSCRIBE",
        &[("id", "a"), ("destination", "/topic/orders.alice")],
        "",
    )
    .await;
    let body = expect_error(
        &mut bob,
        "Subscription to /topic/orders.alice refused",
        4400,
    )
    .await;
    assert_eq!(body, "not your orders");
    let mut c = signed_in(&gw, "alice").await;
    c.frame(
        "SUBSCRIBE",
        &[("id", "s"), ("destination", "/topic/orders.secret")],
        "",
    )
    .await;
    let body = expect_error(&mut c, "Subscription to /topic/orders.secret refused", 4400).await;
    assert_eq!(body, "classified");
    // Past webhook_timeout, a 500, or an answer without "allow": refused,
    // saying the webhook failed.
    for (destination, why) in [
        ("/topic/orders.slow", "timed out"),
        ("/topic/orders.broken", "status 500"),
        (
            "/topic/orders.vague",
            "the reply has no \"allow\": true or false",
        ),
    ] {
        let mut c = signed_in(&gw, "alice").await;
        c.frame(
            "SUBSCRIBE",
            &[("id", "s"), ("destination", destination)],
            "",
        )
        .await;
        let message = format!("The subscribe webhook failed: {why}");
        assert_eq!(expect_error(&mut c, &message, 4400).await, destination);
    }
    // A user's own notices are never asked about, even where the webhook
    // would cover them.
    alice.subscribe("g", "/user/queue/gateway").await;
    for (answer, n) in [("allowed", 1.0), ("refused", 2.0), ("failed", 3.0)] {
        let series = format!(
            "sockjs_gateway_subscribe_webhook_total{{service=\"stomp\",answer=\"{answer}\"}}"
        );
        assert_eq!(metric(&gw, &series).await, n, "{answer}");
    }
}

#[actix_rt::test]
async fn frames_after_a_subscribe_wait_for_the_webhook_in_order() {
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(&backend, ""));
    let mut c = signed_in(&gw, "alice").await;
    // In one message: the SEND is handled only once the SUBSCRIBE before it
    // was allowed, so the new subscriber gets it.
    c.send(&[
        "SUBSCRIBE\nid:1\ndestination:/topic/orders.late\nreceipt:r\n\n\0\
              SEND\ndestination:/topic/orders.late\n\nafter\0",
    ])
    .await;
    c.expect_receipt("r").await;
    let (cmd, h, body) = c.next().await;
    assert_eq!((cmd.as_str(), body.as_str()), ("MESSAGE", "after"));
    assert_eq!(header(&h, "subscription"), Some("1"));
}

#[actix_rt::test]
async fn answers_are_cached_per_user_and_destination_when_asked() {
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(&backend, "subscribe_webhook_cache = 60"));
    for _ in 0..3 {
        let mut c = signed_in(&gw, "alice").await;
        c.subscribe("a", "/topic/orders.alice").await;
    }
    // A refusal is cached too, and another user's answer is their own.
    for _ in 0..2 {
        let mut c = signed_in(&gw, "bob").await;
        c.frame(
            "SUBSCRIBE",
            &[("id", "a"), ("destination", "/topic/orders.alice")],
            "",
        )
        .await;
        expect_error(&mut c, "Subscription to /topic/orders.alice refused", 4400).await;
    }
    assert_eq!(backend.asked().len(), 2, "{:?}", backend.asked());
    let cached = "sockjs_gateway_subscribe_webhook_total{service=\"stomp\",answer=\"cached\"}";
    assert_eq!(metric(&gw, cached).await, 3.0);

    // Without the cache, every SUBSCRIBE asks.
    let backend = Backend::start();
    let gw = Gateway::start(&webhook_config(&backend, ""));
    for _ in 0..2 {
        let mut c = signed_in(&gw, "alice").await;
        c.subscribe("a", "/topic/orders.alice").await;
    }
    assert_eq!(backend.asked().len(), 2);
}

fn expiring_config() -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n{}",
        config("").replace(
            "jwt_audience = \"gw\"\n",
            "jwt_audience = \"gw\"\nexpire_sessions = true\ntoken_refresh_notice = 1\n"
        )
    )
}

#[actix_rt::test]
async fn a_session_ends_when_its_token_expires_after_a_notice() {
    let gw = Gateway::start(&expiring_config());
    let started = Instant::now();
    let mut c = signed_in_for(&gw, "alice", 2).await;
    c.subscribe("g", "/user/queue/gateway").await;
    // A second before exp: the notice, with the seconds left.
    let (cmd, h, _) = c.next().await;
    assert_eq!(cmd, "MESSAGE");
    assert_eq!(header(&h, "destination"), Some("/user/queue/gateway"));
    let left: u64 = header(&h, "x-token-expires-in").unwrap().parse().unwrap();
    assert!((1..=2).contains(&left), "{left}");
    expect_error(&mut c, "Token expired", 4401).await;
    let lived = started.elapsed();
    assert!(
        lived > Duration::from_millis(900) && lived < Duration::from_secs(4),
        "{lived:?}"
    );
    let expired = "sockjs_gateway_tokens_total{service=\"stomp\",event=\"expired\"}";
    assert_eq!(metric(&gw, expired).await, 1.0);
    // A token that has expired already (inside the verifier's leeway) does
    // not start a session.
    let mut c = connecting(&gw, "alice", -5).await;
    expect_error(&mut c, "Token expired", 4401).await;
}

async fn signed_in_for(gw: &Gateway, user: &str, ttl: i64) -> Client {
    let mut c = connecting(gw, user, ttl).await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c
}

#[actix_rt::test]
async fn a_refreshed_token_keeps_the_session_and_another_user_is_refused() {
    let gw = Gateway::start(&expiring_config());
    let mut c = signed_in_for(&gw, "alice", 2).await;
    c.subscribe("g", "/user/queue/gateway").await;
    assert_eq!(c.next().await.0, "MESSAGE", "the notice");
    let fresh = format!("Bearer {}", token(SECRET, "alice", 60));
    c.frame(
        "SEND",
        &[
            ("destination", "/gateway/token"),
            ("Authorization", &fresh),
            ("receipt", "t"),
        ],
        "",
    )
    .await;
    c.expect_receipt("t").await;
    // Past the first token's exp, the session lives on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.subscribe("n", "/topic/news").await;
    let refreshed = "sockjs_gateway_tokens_total{service=\"stomp\",event=\"refreshed\"}";
    assert_eq!(metric(&gw, refreshed).await, 1.0);

    // A token of another user is refused, and ends the session.
    let mallory = token(SECRET, "mallory", 60);
    c.frame(
        "SEND",
        &[("destination", "/gateway/token"), ("passcode", &mallory)],
        "",
    )
    .await;
    expect_error(&mut c, "Token refused", 4400).await;
    // Nobody writes into the gateway's queue: not a client, not the API.
    let mut c = signed_in(&gw, "bob").await;
    c.frame("SEND", &[("destination", "/user/alice/queue/gateway")], "")
        .await;
    expect_error(&mut c, "Reserved destination", 4400).await;
    let (status, err) = api(
        &gw,
        "POST",
        "/api/users/alice/send",
        r#"{"destination": "/user/queue/gateway", "body": "x"}"#,
    )
    .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("destination")));
}

#[actix_rt::test]
async fn without_expire_sessions_a_token_is_checked_at_connect_only() {
    let gw = Gateway::start(&config(""));
    let mut c = signed_in_for(&gw, "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.subscribe("n", "/topic/news").await;
}

/// Opens a SockJS WebSocket session on `/echo` from `local`: `o`, or the
/// close frame it got instead.
async fn open_ws_from(gw: &Gateway, local: &str) -> (Ws, String) {
    let url = gw.ws_url(&format!("{}/websocket", session("/echo")));
    let mut ws = Ws::connect_from(local, &url).await;
    let first = ws.recv().await;
    (ws, first)
}

const TOO_MANY: &str = r#"c[4429,"Too many sessions"]"#;

#[actix_rt::test]
async fn sessions_at_once_are_limited_per_address() {
    let gw = Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nmetrics = true\nkey = \"{KEY}\"\n{}",
        echo_config("max_sessions_per_ip = 2")
    ));
    let (mut first, o) = open_ws_from(&gw, "127.0.0.2").await;
    assert_eq!(o, "o");
    let (_second, o) = open_ws_from(&gw, "127.0.0.2").await;
    assert_eq!(o, "o");
    // The third from that address is refused, over every transport...
    let (mut third, refused) = open_ws_from(&gw, "127.0.0.2").await;
    assert_eq!(refused, TOO_MANY);
    assert_eq!(third.expect_close().await.0, 4429);
    let xhr = gw.url(&format!("{}/xhr", session("/echo")));
    let r = request_from("127.0.0.2", "POST", &xhr, &[], "").await;
    assert_eq!(r.body, format!("{TOO_MANY}\n"));
    // ...while its /info still answers: sockjs-client turns a failed
    // /info into close 1002, and the page could not tell the limit from
    // a server that is down.
    let info = request_from("127.0.0.2", "GET", &gw.url("/echo/info"), &[], "").await;
    assert_eq!(info.status, 200);
    // Another address is not affected.
    let (_other, o) = open_ws_from(&gw, "127.0.0.3").await;
    assert_eq!(o, "o");
    let info = request_from("127.0.0.3", "GET", &gw.url("/echo/info"), &[], "").await;
    assert_eq!(info.status, 200);
    // A session that ends gives its place back.
    first.send_close(1000).await;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (_s, o) = open_ws_from(&gw, "127.0.0.2").await;
        if o == "o" {
            break;
        }
        assert!(Instant::now() < until, "the place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let series = "sockjs_gateway_limited_total{service=\"echo\",limit=\"max_sessions_per_ip\"}";
    // The WebSocket and the poll above (and any refused while the place
    // came back).
    assert!(metric(&gw, series).await >= 2.0);
}

#[actix_rt::test]
async fn new_sessions_per_second_are_limited_per_address() {
    // A burst of two, then one every 500 ms.
    let gw = Gateway::start(&echo_config("max_new_sessions_per_ip = 2"));
    let open_xhr = |local: &'static str| {
        let url = gw.url(&format!("{}/xhr", session("/echo")));
        async move { request_from(local, "POST", &url, &[], "").await.body }
    };
    assert_eq!(open_xhr("127.0.0.2").await, "o\n");
    assert_eq!(open_xhr("127.0.0.2").await, "o\n");
    assert_eq!(open_xhr("127.0.0.2").await, format!("{TOO_MANY}\n"));
    assert_eq!(open_xhr("127.0.0.3").await, "o\n");
    // A raw WebSocket hears it as a close code.
    let mut raw = Ws::connect_from("127.0.0.2", &gw.ws_url("/echo/websocket")).await;
    assert_eq!(raw.expect_close().await.0, 4429);
    // /info has twice the allowance (a burst of four here), then says why.
    let info_url = gw.url("/echo/info");
    let info = || request_from("127.0.0.4", "GET", &info_url, &[], "");
    for _ in 0..4 {
        assert_eq!(info().await.status, 200);
    }
    let refused = info().await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        serde_json::from_str::<Value>(&refused.body).unwrap(),
        json!({"error": "Too many sessions", "limit": "max_new_sessions_per_ip"})
    );
}

#[actix_rt::test]
async fn a_session_past_its_message_rate_is_closed_and_others_go_on() {
    let gw = Gateway::start(&echo_config("max_messages_per_second = 5"));
    let (mut fast, _) = open_ws_from(&gw, "127.0.0.2").await;
    let (mut calm, _) = open_ws_from(&gw, "127.0.0.3").await;
    let ten: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    fast.send(&serde_json::to_string(&ten).unwrap()).await;
    // The burst is echoed, then the session closes.
    let mut echoed = Vec::new();
    loop {
        let m = fast.recv().await;
        if m.starts_with('c') {
            assert_eq!(m, r#"c[4429,"Too many messages"]"#);
            break;
        }
        let texts: Vec<String> = serde_json::from_str(&m[1..]).unwrap();
        echoed.extend(texts);
    }
    assert_eq!(echoed, ["0", "1", "2", "3", "4"]);
    calm.send(r#"["still here"]"#).await;
    assert_eq!(calm.recv().await, r#"a["still here"]"#);

    // Over xhr_send, the send that passed it is answered 429.
    let s = session("/echo");
    assert_eq!(post(&gw.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let r = post(
        &gw.url(&format!("{s}/xhr_send")),
        &serde_json::to_string(&ten).unwrap(),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["limit"],
        "max_messages_per_second"
    );
    let polled = post(&gw.url(&format!("{s}/xhr")), "").await.body;
    assert_eq!(polled, "a[\"0\",\"1\",\"2\",\"3\",\"4\"]\n");
    let closed = post(&gw.url(&format!("{s}/xhr")), "").await.body;
    assert_eq!(closed, "c[4429,\"Too many messages\"]\n");
}

#[actix_rt::test]
async fn a_stomp_session_past_its_message_rate_gets_an_error() {
    let gw = Gateway::start(&config("max_messages_per_second = 3"));
    let mut c = Client::connect(&gw).await;
    let send = "SEND\ndestination:/topic/chat/a\n\nx\0";
    c.send(&[send, send, send, send]).await;
    let body = expect_error(&mut c, "Too many messages", 4429).await;
    assert!(body.contains("max_messages_per_second"), "{body}");
}

#[actix_rt::test]
async fn sessions_of_one_user_are_limited() {
    let gw = Gateway::start(&config("max_sessions_per_user = 2"));
    let mut tabs = vec![signed_in(&gw, "alice").await, signed_in(&gw, "alice").await];
    let mut third = connecting(&gw, "alice", 60).await;
    let body = expect_error(&mut third, "Too many sessions", 4429).await;
    assert!(body.contains("max_sessions_per_user"), "{body}");
    signed_in(&gw, "bob").await;
    // One tab closes; alice may open another.
    tabs.pop().unwrap().ws.send_close(1000).await;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = connecting(&gw, "alice", 60).await;
        if c.next().await.0 == "CONNECTED" {
            break;
        }
        assert!(Instant::now() < until, "the place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn the_sessions_of_one_user_are_counted_on_every_node() {
    let redis = Redis::start();
    let node = |id: &str| {
        Gateway::start(&format!(
            "[cluster]\nredis_url = \"{}\"\nsecret = \"test-cluster-secret-0123456789abcdef\"\n\
             node_id = \"{id}\"\npresence_interval = 0.2\n\
             [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n{}",
            redis.url(),
            config("max_sessions_per_user = 1")
        ))
    };
    let (one, two) = (node("one"), node("two"));
    until_joined(&[&one, &two]).await;
    let _tab = signed_in(&one, "alice").await;
    // Once node one's counts show alice (its next presence write)...
    let until = Instant::now() + Duration::from_secs(5);
    while redis.command("HLEN sockjs-gateway:node:one:counts") != Some(":1".into()) {
        assert!(Instant::now() < until, "node one never wrote its counts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...node two refuses her second session, and lets bob in.
    let mut c = connecting(&two, "alice", 60).await;
    expect_error(&mut c, "Too many sessions", 4429).await;
    signed_in(&two, "bob").await;
}
