//! The `stomp` kind: STOMP over SockJS, spoken frame by frame over a
//! SockJS WebSocket and over xhr-polling.
mod common;
use common::stomp::*;
use common::*;

#[actix_rt::test]
async fn connected_carries_version_heartbeat_server_and_session() {
    let gw = Gateway::start(&config(""));
    for (accept, want) in [
        (Some("1.0,1.1"), "1.1"),
        (None, "1.0"),
        (Some("1.2"), "1.2"),
    ] {
        let mut c = Client::open(&gw).await;
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-version", a)).into_iter().collect();
        c.frame("STOMP", &headers, "").await;
        let (cmd, h, _) = c.next().await;
        assert_eq!(cmd, "CONNECTED");
        assert_eq!(header(&h, "version"), Some(want));
        assert_eq!(header(&h, "heart-beat"), Some("0,0"));
        assert!(header(&h, "server").unwrap().starts_with("sockjs-gateway/"));
        assert!(header(&h, "session").is_some());
    }
}

#[actix_rt::test]
async fn a_topic_send_reaches_every_subscriber_once() {
    let gw = Gateway::start(&config(""));
    let mut a = Client::connect(&gw).await;
    let mut b = Client::connect(&gw).await;
    a.frame(
        "SUBSCRIBE",
        &[
            ("id", "s1"),
            ("destination", "/topic/chat/room"),
            ("receipt", "r1"),
        ],
        "",
    )
    .await;
    a.expect_receipt("r1").await;
    b.frame(
        "SUBSCRIBE",
        &[
            ("id", "x"),
            ("destination", "/topic/chat/room"),
            ("receipt", "r2"),
        ],
        "",
    )
    .await;
    assert_eq!(b.next().await.0, "RECEIPT");
    // A body with a NUL, carried by content-length.
    b.frame(
        "SEND",
        &[
            ("destination", "/topic/chat/room"),
            ("content-type", "text/plain"),
            ("content-length", "8"),
        ],
        "hi\0there",
    )
    .await;
    for (c, sub) in [(&mut a, "s1"), (&mut b, "x")] {
        let (cmd, h, body) = c.next().await;
        assert_eq!(cmd, "MESSAGE");
        assert_eq!(header(&h, "subscription"), Some(sub));
        assert_eq!(header(&h, "destination"), Some("/topic/chat/room"));
        assert_eq!(header(&h, "content-type"), Some("text/plain"));
        assert_eq!(header(&h, "content-length"), Some("8"));
        assert!(header(&h, "message-id").is_some());
        assert_eq!(header(&h, "ack"), header(&h, "message-id"));
        assert_eq!(body, "hi\0there");
    }
    // Once UNSUBSCRIBE is confirmed, a gets no more messages: its next
    // frame is its DISCONNECT receipt.
    a.frame("UNSUBSCRIBE", &[("id", "s1"), ("receipt", "u")], "")
        .await;
    assert_eq!(a.next().await.0, "RECEIPT");
    b.frame("SEND", &[("destination", "/topic/chat/room")], "again")
        .await;
    assert_eq!(b.next().await.2, "again");
    a.frame("DISCONNECT", &[("receipt", "bye")], "").await;
    a.expect_receipt("bye").await;
}

#[actix_rt::test]
async fn frames_split_over_messages_and_packed_together_are_read() {
    let gw = Gateway::start(&config(""));
    let mut c = Client::open(&gw).await;
    // stompjs splitLargeFrames: one CONNECT over three SockJS messages,
    // then two frames and heart-beats in one.
    c.send(&["CONN", "ECT\naccept-version:1.2\n", "\n\0"]).await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c.send(&["\nSUBSCRIBE\nid:1\ndestination:/topic/a\n\n\0\nSUBSCRIBE\nid:2\ndestination:/topic/b\nreceipt:both\n\n\0\n"])
        .await;
    c.expect_receipt("both").await;
}

#[actix_rt::test]
async fn refusals_are_an_error_then_a_close() {
    let gw = Gateway::start(&config("max_subscriptions = 1\nmax_frame_bytes = 200"));
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 5] = [
        (
            &[("id", "1"), ("destination", "/queue/x")],
            "SUBSCRIBE",
            "Forbidden subscription",
        ),
        (
            &[("destination", "/topic/other")],
            "SEND",
            "Forbidden destination",
        ),
        (
            &[("destination", "/topic/a")],
            "SUBSCRIBE",
            "Missing header id",
        ),
        (&[], "NOPE", "Unknown command"),
        (
            &[
                ("id", "1"),
                ("destination", "/topic/a"),
                ("x", &"y".repeat(300)),
            ],
            "SUBSCRIBE",
            "Frame too large",
        ),
    ];
    for (headers, command, why) in cases {
        let mut c = Client::connect(&gw).await;
        let mut h = headers.to_vec();
        h.push(("receipt", "r"));
        c.frame(command, &h, "").await;
        let (cmd, h, _) = c.next().await;
        assert_eq!(cmd, "ERROR", "{command}");
        assert!(header(&h, "message").unwrap().starts_with(why), "{h:?}");
        assert_eq!(c.ws.recv().await, "c[4400,\"STOMP error\"]", "{command}");
    }
    // Past max_subscriptions; and anything before CONNECT.
    let mut c = Client::connect(&gw).await;
    c.frame("SUBSCRIBE", &[("id", "1"), ("destination", "/topic/a")], "")
        .await;
    c.frame("SUBSCRIBE", &[("id", "2"), ("destination", "/topic/b")], "")
        .await;
    let (cmd, h, _) = c.next().await;
    assert_eq!(
        (cmd.as_str(), header(&h, "message")),
        ("ERROR", Some("Too many subscriptions"))
    );
    let mut c = Client::open(&gw).await;
    c.frame("SEND", &[("destination", "/topic/chat/a")], "x")
        .await;
    assert_eq!(
        header(&c.next().await.1, "message"),
        Some("Expected CONNECT")
    );
}

/// The same over xhr-polling: the protocol does not care which transport.
#[actix_rt::test]
async fn stomp_works_over_polling_and_reaches_websocket_subscribers() {
    let gw = Gateway::start(&config(""));
    let mut ws = Client::connect(&gw).await;
    ws.frame(
        "SUBSCRIBE",
        &[
            ("id", "w"),
            ("destination", "/topic/chat/x"),
            ("receipt", "ok"),
        ],
        "",
    )
    .await;
    assert_eq!(ws.next().await.0, "RECEIPT");
    let s = gw.url(&session("/stomp"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let send = |frame: &str| serde_json::to_string(&[frame]).unwrap();
    post(
        &format!("{s}/xhr_send"),
        &send("CONNECT\naccept-version:1.2\n\n\0"),
    )
    .await;
    assert!(post(&format!("{s}/xhr"), "")
        .await
        .body
        .starts_with("a[\"CONNECTED\\nversion:1.2\\n"));
    post(
        &format!("{s}/xhr_send"),
        &send("SEND\ndestination:/topic/chat/x\n\nfrom polling\0"),
    )
    .await;
    let (cmd, _, body) = ws.next().await;
    assert_eq!((cmd.as_str(), body.as_str()), ("MESSAGE", "from polling"));
}

#[test]
fn bad_patterns_and_webhook_urls_stop_the_gateway() {
    for (extra, key) in [
        ("subscribe = [\"topic/**\"]", "services.stomp.subscribe[0]"),
        (
            "app_webhook = \"ws://127.0.0.1:9/stomp\"",
            "services.stomp.app_webhook",
        ),
        ("max_subscriptions = 0", "services.stomp.max_subscriptions"),
        ("webhook_timeout = 0", "services.stomp.webhook_timeout"),
    ] {
        let toml = format!(
            "[auth]\nanonymous = true\n[services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\n{extra}\n"
        );
        let err = refused_at_start(&toml);
        assert!(err.contains(key), "{extra}: {err}");
    }
    let toml = "[auth]\nconnect_webhook = \"http://u:hunter2@127.0.0.1/c\"\n\
                [services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\n";
    let err = sockjs_gateway::Config::from_toml(toml).unwrap_err();
    assert!(
        err.contains("auth.connect_webhook") && !err.contains("hunter2"),
        "{err}"
    );
}

/// A JWT in CONNECT names the user; `/user/NAME/queue/x` reaches every
/// session of that user subscribed to `/user/queue/x`, and nobody else's.
#[actix_rt::test]
async fn user_destinations_reach_every_session_of_that_user_only() {
    let gw = Gateway::start(&config(""));
    let alice = format!("Bearer {}", token(SECRET, "alice", 60));
    let bob = token(SECRET, "bob", 60);
    let mut tabs = Vec::new();
    for i in 0..2 {
        let mut c = Client::connect_with(&gw, &[("Authorization", &alice)]).await;
        let id = format!("a{i}");
        c.frame(
            "SUBSCRIBE",
            &[
                ("id", &id),
                ("destination", "/user/queue/notes"),
                ("receipt", "ok"),
            ],
            "",
        )
        .await;
        assert_eq!(c.next().await.0, "RECEIPT");
        tabs.push(c);
    }
    let mut b = Client::connect_with(&gw, &[("passcode", &bob)]).await;
    b.frame(
        "SUBSCRIBE",
        &[
            ("id", "b"),
            ("destination", "/user/queue/notes"),
            ("receipt", "ok"),
        ],
        "",
    )
    .await;
    assert_eq!(b.next().await.0, "RECEIPT");

    let mut sender = Client::connect(&gw).await;
    sender
        .frame(
            "SEND",
            &[("destination", "/user/alice/queue/notes")],
            "for alice",
        )
        .await;
    for (i, c) in tabs.iter_mut().enumerate() {
        let (cmd, h, body) = c.next().await;
        assert_eq!(
            (cmd.as_str(), body.as_str()),
            ("MESSAGE", "for alice"),
            "tab {i}"
        );
        assert_eq!(header(&h, "destination"), Some("/user/queue/notes"));
        assert_eq!(header(&h, "subscription"), Some(format!("a{i}").as_str()));
    }
    // Bob's next frame answers his own later request, not alice's note.
    b.frame("UNSUBSCRIBE", &[("id", "b"), ("receipt", "later")], "")
        .await;
    b.expect_receipt("later").await;
}

#[actix_rt::test]
async fn bad_tokens_and_anonymous_user_queues_are_refused() {
    let gw = Gateway::start(&config(""));
    let cases = [
        (
            format!("Bearer {}", token("another-secret", "eve", 60)),
            "Invalid token: bad signature",
        ),
        (
            format!("Bearer {}", token(SECRET, "eve", -600)),
            "Invalid token: expired",
        ),
        ("Bearer not-a-token".to_owned(), "Invalid token: malformed"),
    ];
    for (auth, why) in &cases {
        let mut c = Client::open(&gw).await;
        c.frame(
            "CONNECT",
            &[("accept-version", "1.2"), ("Authorization", auth)],
            "",
        )
        .await;
        let (cmd, h, _) = c.next().await;
        assert_eq!((cmd.as_str(), header(&h, "message")), ("ERROR", Some(*why)));
        assert_eq!(c.ws.recv().await, "c[4400,\"STOMP error\"]");
    }
    let mut anon = Client::connect(&gw).await;
    anon.frame(
        "SUBSCRIBE",
        &[("id", "1"), ("destination", "/user/queue/notes")],
        "",
    )
    .await;
    let (_, h, _) = anon.next().await;
    assert_eq!(
        header(&h, "message"),
        Some("User destinations need a signed-in user")
    );
    // Without `anonymous`, no token is no entry.
    let strict = config("").replace("anonymous = true", "anonymous = false");
    let gw = Gateway::start(&strict);
    let mut c = Client::open(&gw).await;
    c.frame("CONNECT", &[("accept-version", "1.2")], "").await;
    assert_eq!(
        header(&c.next().await.1, "message"),
        Some("Authentication required")
    );
}

/// The secret may come from the environment; a stomp service without any
/// way to authenticate does not start.
#[actix_rt::test]
async fn the_jwt_secret_can_come_from_the_environment() {
    let toml = "[services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\n";
    let err = sockjs_gateway::Config::from_toml(toml).unwrap_err();
    assert!(err.contains("auth"), "{err}");
    let gw = Gateway::start_with_env(toml, &[("SOCKJS_GATEWAY__AUTH__JWT_SECRET", SECRET)]);
    let t = format!("Bearer {}", token(SECRET, "carol", 60));
    let mut c = Client::open(&gw).await;
    c.frame(
        "CONNECT",
        &[("accept-version", "1.2"), ("Authorization", &t)],
        "",
    )
    .await;
    assert_eq!(c.next().await.0, "CONNECTED");
}

/// `Bearer` and a demo token for `user` from `gw`'s `/demo/token`.
async fn demo_token(gw: &Gateway, user: &str) -> String {
    let r = get(&gw.url(&format!("/demo/token?user={user}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reply: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    format!("Bearer {}", reply["token"].as_str().unwrap())
}

/// A client on `on` signed in as `user` with a demo token from `from`: it
/// subscribes to a user queue, which anonymous sessions may not.
async fn demo_user(from: &Gateway, on: &Gateway, user: &str) -> Client {
    let t = demo_token(from, user).await;
    let mut c = Client::connect_with(on, &[("Authorization", &t)]).await;
    c.subscribe("1", "/user/queue/x").await;
    c
}

/// `[auth] demo_login`: the demo page's sign-in mints tokens the service
/// accepts, signed with a secret nobody else has; never beside a real one.
#[actix_rt::test]
async fn demo_login_mints_tokens_for_the_demo_only() {
    let toml = "[auth]\ndemo_login = true\n[services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\nsubscribe = [\"/user/queue/**\"]\n";
    let gw = Gateway::start(toml);
    let mut c = demo_user(&gw, &gw, "dora").await;
    c.frame("SEND", &[("destination", "/user/dora/queue/x")], "")
        .await;
    // Not allowed to send, so an ERROR: but the user was dora, or the
    // subscription above would have been refused as anonymous.
    assert_eq!(c.next().await.0, "ERROR");
    // A token signed with a secret the gateway does not have is refused.
    let forged = format!("Bearer {}", token(SECRET, "dora", 60));
    let (cmd, h, _) = connect_answer(&gw, &forged).await;
    assert_eq!(
        (cmd.as_str(), header(&h, "message")),
        ("ERROR", Some("Invalid token: bad signature"))
    );
    assert_eq!(get(&gw.url("/demo/token?user=a%2Fb")).await.status, 400);
    let with_secret = toml.replace("[auth]\n", "[auth]\njwt_secret = \"x\"\n");
    let err = sockjs_gateway::Config::from_toml(&with_secret).unwrap_err();
    assert!(err.contains("auth.demo_login"), "{err}");
}

/// `[auth] demo_login_secret`: nodes given the same one accept each other's
/// demo tokens (the compose demo, behind a round-robin balancer); it is
/// never shown, needs demo_login, and is long enough for HS256.
#[actix_rt::test]
async fn demo_tokens_from_one_node_sign_in_on_another_with_a_shared_secret() {
    let shared = "compose-demo-secret-0123456789-abcdef";
    let toml = format!(
        "[auth]\ndemo_login = true\ndemo_login_secret = \"{shared}\"\n\
         [services.stomp]\nprefix = \"/stomp\"\nkind = \"stomp\"\nsubscribe = [\"/user/queue/**\"]\n"
    );
    let (one, two) = (Gateway::start(&toml), Gateway::start(&toml));
    demo_user(&one, &two, "dora").await;
    // A node with a secret of its own refuses one's tokens.
    let alone = Gateway::start(&toml.replace(shared, "another-secret-0123456789-abcdefghij"));
    let t = demo_token(&one, "dora").await;
    assert_eq!(connect_answer(&alone, &t).await.0, "ERROR");

    let config = sockjs_gateway::Config::from_toml(&toml).unwrap();
    assert!(!format!("{config:?}").contains(shared));
    for (bad, why) in [
        (
            toml.replace("demo_login = true\n", ""),
            "used only with demo_login",
        ),
        (toml.replace(shared, "short"), "at least 32 characters"),
    ] {
        let err = sockjs_gateway::Config::from_toml(&bad).unwrap_err();
        assert!(
            err.contains("auth.demo_login_secret") && err.contains(why),
            "{err}"
        );
    }
}
