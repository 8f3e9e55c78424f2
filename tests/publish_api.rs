//! The HTTP API backends publish through (`[api]`): publishing to topics,
//! reaching and ending one user's sessions, listing destinations, and its
//! errors, against the real binary.
mod common;
use common::stomp::*;
use common::*;

fn api_config(extra_api: &str) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n{extra_api}\n{}",
        config("")
    )
}

#[actix_rt::test]
async fn a_publication_reaches_every_subscriber_over_any_transport() {
    let gw = Gateway::start(&api_config(""));
    let mut ws = Client::connect(&gw).await;
    ws.subscribe("w", "/topic/news").await;
    let mut other = Client::connect(&gw).await;
    other.subscribe("o", "/topic/sport").await;
    // A 1.1 subscriber over xhr-polling: header values escaped as 1.1 says.
    let s = gw.url(&session("/stomp"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let send = |frame: &str| serde_json::to_string(&[frame]).unwrap();
    post(
        &format!("{s}/xhr_send"),
        &send("CONNECT\naccept-version:1.1\n\n\0SUBSCRIBE\nid:p\ndestination:/topic/news\nreceipt:r\n\n\0"),
    )
    .await;
    let mut seen = String::new();
    while !seen.contains("RECEIPT") {
        seen += &post(&format!("{s}/xhr"), "").await.body;
    }

    let (status, body) = api(
        &gw,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/news", "body": "hello\u0000world", "headers": {"x-at": "12:30"}}"#,
    )
    .await;
    assert_eq!((status, body), (200, serde_json::json!({"delivered": 2})));
    let (cmd, h, text) = ws.next().await;
    assert_eq!((cmd.as_str(), text.as_str()), ("MESSAGE", "hello\0world"));
    assert_eq!(header(&h, "subscription"), Some("w"));
    assert_eq!(header(&h, "destination"), Some("/topic/news"));
    assert_eq!(header(&h, "x-at"), Some("12:30"));
    assert_eq!(header(&h, "content-length"), Some("11"));
    let polled = post(&format!("{s}/xhr"), "").await.body;
    let frames: Vec<String> = serde_json::from_str(&polled[1..]).unwrap();
    assert_eq!(
        frames,
        ["MESSAGE\nsubscription:p\nmessage-id:".to_owned()
            + &frames[0]["MESSAGE\nsubscription:p\nmessage-id:".len()..]]
    );
    assert!(
        frames[0].ends_with(
            "\nx-at:12\\c30\ndestination:/topic/news\ncontent-length:11\n\nhello\0world\0"
        ),
        "{:?}",
        frames[0]
    );
    // A JSON body other than a string is sent as JSON text.
    let (status, _) = api(
        &gw,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/news", "body": {"n": 1}}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (_, h, text) = ws.next().await;
    assert_eq!(text, r#"{"n":1}"#);
    assert_eq!(header(&h, "content-type"), Some("application/json"));
    // The sport subscriber got neither.
    let (status, body) = api(
        &gw,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/sport", "body": "goal"}"#,
    )
    .await;
    assert_eq!((status, &body["delivered"]), (200, &serde_json::json!(1)));
    assert_eq!(other.next().await.2, "goal");
}

/// Two sessions of alice (user tabs) and one of bob.
async fn alice_twice_and_bob(gw: &Gateway) -> (Vec<Client>, Client) {
    let alice = format!("Bearer {}", token(SECRET, "alice", 60));
    let mut tabs = Vec::new();
    for i in 0..2 {
        let mut c = Client::connect_with(gw, &[("Authorization", &alice)]).await;
        c.subscribe(&format!("a{i}"), "/user/queue/notifications")
            .await;
        tabs.push(c);
    }
    let mut bob = Client::connect_with(gw, &[("passcode", &token(SECRET, "bob", 60))]).await;
    bob.subscribe("b", "/user/queue/notifications").await;
    (tabs, bob)
}

#[actix_rt::test]
async fn a_notification_reaches_every_session_of_one_user_only() {
    let gw = Gateway::start(&api_config(""));
    let (mut tabs, mut bob) = alice_twice_and_bob(&gw).await;
    let (status, body) = api(
        &gw,
        "POST",
        "/api/users/alice/send",
        r#"{"destination": "/user/queue/notifications", "body": "someone commented"}"#,
    )
    .await;
    assert_eq!((status, body), (200, serde_json::json!({"delivered": 2})));
    for (i, tab) in tabs.iter_mut().enumerate() {
        let (cmd, h, text) = tab.next().await;
        assert_eq!(
            (cmd.as_str(), text.as_str()),
            ("MESSAGE", "someone commented")
        );
        assert_eq!(header(&h, "destination"), Some("/user/queue/notifications"));
        assert_eq!(header(&h, "subscription"), Some(format!("a{i}").as_str()));
    }
    // Bob's next frame is the one meant for him, not alice's.
    let (status, _) = api(
        &gw,
        "POST",
        "/api/users/bob/send",
        r#"{"destination": "/user/queue/notifications", "body": "for bob"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bob.next().await.2, "for bob");
    // Nobody by that name: delivered to none, not an error.
    let (status, body) = api(
        &gw,
        "POST",
        "/api/users/carol/send",
        r#"{"destination": "/user/queue/notifications", "body": "x"}"#,
    )
    .await;
    assert_eq!((status, body), (200, serde_json::json!({"delivered": 0})));
}

#[actix_rt::test]
async fn disconnecting_a_user_ends_all_their_sessions_and_no_one_else() {
    let gw = Gateway::start(&api_config(""));
    let (mut tabs, mut bob) = alice_twice_and_bob(&gw).await;
    let (status, body) = api(&gw, "POST", "/api/users/alice/disconnect", "").await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"disconnected": 2}))
    );
    for tab in &mut tabs {
        let (cmd, h, _) = tab.next().await;
        assert_eq!(cmd, "ERROR");
        assert_eq!(header(&h, "message"), Some("Disconnected by the server"));
        assert_eq!(
            tab.ws.recv().await,
            r#"c[4410,"Disconnected by the server"]"#
        );
    }
    let (_, body) = api(&gw, "GET", "/api/destinations?prefix=/user/", "").await;
    assert_eq!(
        body,
        serde_json::json!({"destinations": [
            {"destination": "/user/bob/queue/notifications", "subscribers": 1}
        ]})
    );
    bob.frame(
        "SEND",
        &[("destination", "/topic/chat/a"), ("receipt", "still")],
        "",
    )
    .await;
    bob.expect_receipt("still").await;
}

#[actix_rt::test]
async fn destinations_lists_subscriber_counts_under_a_prefix() {
    let gw = Gateway::start(&api_config(""));
    let mut a = Client::connect(&gw).await;
    a.subscribe("1", "/topic/news").await;
    a.subscribe("2", "/topic/news/eu").await;
    let mut b = Client::connect(&gw).await;
    b.subscribe("1", "/topic/news").await;
    let (status, body) = api(&gw, "GET", "/api/destinations?prefix=/topic/news", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"destinations": [
            {"destination": "/topic/news", "subscribers": 2},
            {"destination": "/topic/news/eu", "subscribers": 1}
        ]})
    );
    b.frame("UNSUBSCRIBE", &[("id", "1"), ("receipt", "u")], "")
        .await;
    b.expect_receipt("u").await;
    let (_, body) = api(&gw, "GET", "/api/destinations?prefix=/topic/news/", "").await;
    assert_eq!(
        body,
        serde_json::json!({"destinations": [{"destination": "/topic/news/eu", "subscribers": 1}]})
    );
}

#[actix_rt::test]
async fn errors_are_json_with_their_status() {
    let gw = Gateway::start(&api_config("max_body_bytes = 1000"));
    let publish = gw.api_url("/api/publish");
    let ok_body = r#"{"destination": "/topic/news", "body": "x"}"#;
    for auth in [None, Some("Bearer wrong-key-wrong-key-1"), Some(KEY)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = request("POST", &publish, &headers, ok_body).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("key"), "{json}");
        assert!(!r.body.contains("wrong-key"), "{}", r.body);
    }
    for (body, field) in [
        (r#"{"body": "x"}"#, "destination"),
        (r#"{"destination": 5}"#, "destination"),
        (r#"{"destination": "topic/x"}"#, "destination"),
        (r#"{"destination": "/user/queue/x"}"#, "destination"),
        (
            r#"{"destination": "/topic/x", "headers": {"subscription": "s"}}"#,
            "headers.subscription",
        ),
        (
            r#"{"destination": "/topic/x", "headers": {"a": "b\nc"}}"#,
            "headers.a",
        ),
        (
            r#"{"destination": "/topic/x", "headers": {"a": 1}}"#,
            "headers.a",
        ),
        (r#"{"destination": "/topic/x", "to": "y"}"#, "to"),
    ] {
        let (status, json) = api(&gw, "POST", "/api/publish", body).await;
        assert_eq!(
            (status, json["field"].as_str()),
            (400, Some(field)),
            "{body}: {json}"
        );
        assert!(json["error"].as_str().unwrap().starts_with(field), "{json}");
    }
    let (status, json) = api(&gw, "POST", "/api/publish", "{not json").await;
    assert_eq!(status, 400);
    assert!(
        json["error"].as_str().unwrap().contains("invalid JSON"),
        "{json}"
    );
    let (status, json) = api(
        &gw,
        "POST",
        "/api/users/alice/send",
        r#"{"destination": "/topic/x"}"#,
    )
    .await;
    assert_eq!((status, json["field"].as_str()), (400, Some("destination")));
    let (status, json) = api(&gw, "POST", "/api/nothing", ok_body).await;
    assert_eq!(status, 404, "{json}");
    assert!(json["error"].is_string());
    let (status, json) = api(
        &gw,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/x", "service": "nope"}"#,
    )
    .await;
    assert_eq!((status, json["field"].as_str()), (404, Some("service")));
    let (status, json) = api(&gw, "GET", "/api/publish", "").await;
    assert_eq!(status, 405, "{json}");
    let big = format!(
        r#"{{"destination": "/topic/x", "body": "{}"}}"#,
        "x".repeat(1000)
    );
    let (status, json) = api(&gw, "POST", "/api/publish", &big).await;
    assert_eq!(status, 413, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("max_body_bytes"),
        "{json}"
    );
    // The SockJS listener does not serve the API (the static files answer).
    let auth = format!("Bearer {KEY}");
    let r = request(
        "POST",
        &gw.url("/api/publish"),
        &[("Authorization", &auth)],
        ok_body,
    )
    .await;
    assert!(matches!(r.status, 404 | 405), "{} {}", r.status, r.body);
}

#[actix_rt::test]
async fn the_key_comes_from_the_environment_and_must_be_long() {
    let toml = format!("[api]\nlisten = \"127.0.0.1:0\"\n{}", config(""));
    let gw = Gateway::start_with_env(&toml, &[("SOCKJS_GATEWAY__API__KEY", KEY)]);
    let (status, _) = api(&gw, "GET", "/api/destinations", "").await;
    assert_eq!(status, 200);
    let err = sockjs_gateway::Config::from_toml(&format!("[api]\nkey = \"short\"\n{}", config("")))
        .unwrap_err();
    assert!(err.contains("api.key") && !err.contains("short"), "{err}");
}

/// `[api] demo_key` (the embedded demo's): a key made at start, which the
/// demo pages read at `/demo/api` with the API's address, and which the
/// API accepts; none when a real key is set.
#[actix_rt::test]
async fn the_demo_key_is_made_at_start_and_shown_to_the_demo_pages() {
    let gw = Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ndemo_key = true\n{}",
        config("")
    ));
    let r = get(&gw.url("/demo/api")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let demo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let key = demo["key"].as_str().unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(
        demo["url"],
        format!("http://{}", gw.api_addr.as_deref().unwrap())
    );
    let mut c = Client::connect(&gw).await;
    c.subscribe("n", "/topic/news").await;
    let auth = format!("Bearer {key}");
    let r = request(
        "POST",
        &gw.api_url("/api/publish"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"destination": "/topic/news", "body": "from curl"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(c.next().await.2, "from curl");
    // A real key wins: no demo key, nothing shown.
    let gw = Gateway::start(&api_config("demo_key = true"));
    assert_eq!(get(&gw.url("/demo/api")).await.status, 404);
    assert_eq!(api(&gw, "GET", "/api/destinations", "").await.0, 200);
}
