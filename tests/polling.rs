//! xhr-polling, jsonp-polling and the send endpoints, through the session.
mod common;
use common::*;
use std::time::{Duration, Instant};

const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

fn config() -> String {
    echo_config("allowed_origins = [\"*\"]")
        + "[services.close]\nprefix = \"/close\"\nkind = \"close\"\n"
        + "[services.cookie]\nprefix = \"/cookie\"\njsessionid = true\n"
        + "[services.amplify]\nprefix = \"/amplify\"\nkind = \"amplify\"\n"
}

#[actix_rt::test]
async fn xhr_polling_round_trip_with_headers() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let r = request(
        "POST",
        &format!("{s}/xhr"),
        &[("Origin", "http://test")],
        "",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "o\n"));
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    assert_eq!(r.header("access-control-allow-origin"), Some("http://test"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    let r = request(
        "POST",
        &format!("{s}/xhr_send"),
        &[("Origin", "http://test")],
        r#"["x"]"#,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    assert_eq!(r.header("access-control-allow-origin"), Some("http://test"));

    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "a[\"x\"]\n");
}

#[actix_rt::test]
async fn queued_messages_arrive_once_and_in_order_across_polls() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let mut expected = Vec::new();
    for batch in 0..20 {
        let msgs: Vec<String> = (0..5).map(|i| format!("m{}", batch * 5 + i)).collect();
        let body = serde_json::to_string(&msgs).unwrap();
        assert_eq!(post(&format!("{s}/xhr_send"), &body).await.status, 204);
        expected.extend(msgs);
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let r = post(&format!("{s}/xhr"), "").await;
        let frame = r.body.strip_suffix('\n').unwrap();
        let arr: Vec<String> =
            serde_json::from_str(frame.strip_prefix('a').expect("a message frame")).unwrap();
        got.extend(arr);
    }
    assert_eq!(got, expected);
}

#[actix_rt::test]
async fn a_pending_poll_gets_a_message_sent_later() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let poll = actix_rt::spawn({
        let url = format!("{s}/xhr");
        async move { post(&url, "").await.body }
    });
    // The poll is pending while nothing is queued; a send then answers it.
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert!(!poll.is_finished());
    assert_eq!(
        post(&format!("{s}/xhr_send"), r#"["late"]"#).await.status,
        204
    );
    assert_eq!(poll.await.unwrap(), "a[\"late\"]\n");
}

#[actix_rt::test]
async fn second_receiver_gets_2010_and_first_keeps_the_session() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let mut first = Stream::open("POST", &format!("{s}/xhr")).await;
    let r = post(&format!("{s}/xhr"), "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "c[2010,\"Another connection still open\"]\n")
    );
    assert_eq!(
        post(&format!("{s}/xhr_send"), r#"["still"]"#).await.status,
        204
    );
    assert_eq!(first.read_until("\n").await, "a[\"still\"]\n");
}

#[actix_rt::test]
async fn send_errors_use_the_protocol_texts() {
    let gw = Gateway::start(&config());
    assert_eq!(
        post(
            &gw.url(&format!("{}/xhr_send", session("/echo"))),
            r#"["x"]"#
        )
        .await
        .status,
        404
    );
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let r = post(&format!("{s}/xhr_send"), r#"["x"#).await;
    assert_eq!((r.status, r.body.as_str()), (500, "Broken JSON encoding."));
    let r = post(&format!("{s}/xhr_send"), "").await;
    assert_eq!((r.status, r.body.as_str()), (500, "Payload expected."));
    let r = post(&format!("{s}/xhr_send"), r#"[1, 2]"#).await;
    assert_eq!((r.status, r.body.as_str()), (500, "Broken JSON encoding."));
    // The session survives all of that.
    assert_eq!(post(&format!("{s}/xhr_send"), "[]").await.status, 204);
    assert_eq!(post(&format!("{s}/xhr_send"), r#"["a"]"#).await.status, 204);
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "a[\"a\"]\n");
}

#[actix_rt::test]
async fn any_content_type_is_accepted_for_xhr_send() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let cts = [
        "text/plain",
        "T",
        "application/json",
        "application/xml",
        "application/json; charset=utf-8",
        "text/xml",
    ];
    for ct in cts {
        assert_eq!(
            request(
                "POST",
                &format!("{s}/xhr_send"),
                &[("Content-Type", ct)],
                r#"["a"]"#
            )
            .await
            .status,
            204
        );
    }
    let expected = format!("a[{}]\n", vec!["\"a\""; cts.len()].join(","));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, expected);
}

#[actix_rt::test]
async fn lone_surrogates_become_replacement_characters() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    assert_eq!(
        post(&format!("{s}/xhr_send"), r#"["a\ud800b","\ud83d\ude00"]"#)
            .await
            .status,
        204
    );
    // U+FFFD is itself in the range SockJS escapes.
    assert_eq!(
        post(&format!("{s}/xhr"), "").await.body,
        "a[\"a\\ufffdb\",\"\u{1f600}\"]\n"
    );
}

#[actix_rt::test]
async fn server_escapes_the_code_points_browsers_mangle() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let chars: String = (0x20u32..0x10000)
        .filter_map(char::from_u32)
        .filter(|c| matches!(*c as u32, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff))
        .collect();
    let body = serde_json::to_string(&[&chars]).unwrap();
    assert_eq!(post(&format!("{s}/xhr_send"), &body).await.status, 204);
    let frame = post(&format!("{s}/xhr"), "").await.body;
    let expected: String = chars
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    assert_eq!(frame, format!("a[\"{expected}\"]\n"));
}

#[actix_rt::test]
async fn close_service_serves_the_close_frame_until_forgotten() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/close"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    for _ in 0..3 {
        assert_eq!(
            post(&format!("{s}/xhr"), "").await.body,
            "c[3000,\"Go away!\"]\n"
        );
    }
}

#[actix_rt::test]
async fn jsonp_polling_and_jsonp_send() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/echo"));
    let r = get(&format!("{s}/jsonp?c=%63allback")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "/**/callback(\"o\");\r\n");
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));

    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request("POST", &format!("{s}/jsonp_send"), &form, "d=%5B%22x%22%5D").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    let r = request(
        "POST",
        &format!("{s}/jsonp_send"),
        &[("Content-Type", "text/plain")],
        r#"["%61bc"]"#,
    )
    .await;
    assert_eq!(r.body, "ok");
    assert_eq!(
        get(&format!("{s}/jsonp?c=x")).await.body,
        "/**/x(\"a[\\\"x\\\",\\\"%61bc\\\"]\");\r\n"
    );

    for body in ["", "d=", "p=p"] {
        let r = request("POST", &format!("{s}/jsonp_send"), &form, body).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (500, "Payload expected."),
            "{body:?}"
        );
    }
    // Broken JSON, and a UTF-8 sequence cut short (once repaired to U+FFFD
    // and accepted).
    for body in ["d=%5B%22x", "d=%5B%22%E2%82%22%5D"] {
        let r = request("POST", &format!("{s}/jsonp_send"), &form, body).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (500, "Broken JSON encoding."),
            "{body:?}"
        );
    }
}

#[actix_rt::test]
async fn jsonp_and_htmlfile_callbacks_are_checked() {
    let gw = Gateway::start(&config());
    for t in ["jsonp", "htmlfile"] {
        let r = get(&gw.url(&format!("/echo/a/a/{t}"))).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (500, "\"callback\" parameter required"),
            "{t}"
        );
        for cb in ["%20", "*", "abc(", "abc%28", "a%22b", "x%3Balert(1)", "a-b"] {
            let r = get(&gw.url(&format!("/echo/a/a/{t}?c={cb}"))).await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (500, "invalid \"callback\" parameter"),
                "{t} {cb}"
            );
        }
    }
}

#[actix_rt::test]
async fn jsessionid_is_echoed_or_set_to_dummy() {
    let gw = Gateway::start(&config());
    let r = post(&gw.url(&format!("{}/xhr", session("/cookie"))), "").await;
    assert_eq!(
        r.header("set-cookie").map(|c| c.split(';').next().unwrap()),
        Some("JSESSIONID=dummy")
    );
    assert!(r
        .header("set-cookie")
        .unwrap()
        .to_lowercase()
        .contains("path=/"));
    let r = request(
        "POST",
        &gw.url(&format!("{}/xhr", session("/cookie"))),
        &[("Cookie", "JSESSIONID=abcdef")],
        "",
    )
    .await;
    assert_eq!(
        r.header("set-cookie").map(|c| c.split(';').next().unwrap()),
        Some("JSESSIONID=abcdef")
    );
    let s = gw.url(&session("/cookie"));
    get(&format!("{s}/jsonp?c=x")).await;
    let r = request(
        "POST",
        &format!("{s}/jsonp_send"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "d=%5B%5D",
    )
    .await;
    assert_eq!(
        r.header("set-cookie").map(|c| c.split(';').next().unwrap()),
        Some("JSESSIONID=dummy")
    );
    // Services without it set no cookie.
    assert!(post(&gw.url(&format!("{}/xhr", session("/echo"))), "")
        .await
        .header("set-cookie")
        .is_none());
}

#[actix_rt::test]
async fn amplify_clamps_its_exponent() {
    let gw = Gateway::start(&config());
    let s = gw.url(&session("/amplify"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    post(&format!("{s}/xhr_send"), r#"["3","0","30"]"#).await;
    let body = post(&format!("{s}/xhr"), "").await.body;
    let arr: Vec<String> = serde_json::from_str(&body.trim_end()[1..]).unwrap();
    assert_eq!(
        arr.iter().map(String::len).collect::<Vec<_>>(),
        vec![8, 2, 1 << 18]
    );
}

#[actix_rt::test]
async fn heartbeat_answers_a_pending_poll_after_its_own_delay() {
    // A poll gets `h` heartbeat_delay after it began, never sooner: the
    // service's ticker, whose phase has nothing to do with the poll, would
    // answer most of these early.
    let gw = Gateway::start(&echo_config("heartbeat_delay = 0.3"));
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    for (i, poll) in ["xhr", "jsonp?c=cb", "xhr", "jsonp?c=cb"]
        .iter()
        .enumerate()
    {
        let t = Instant::now();
        let r = if poll.starts_with("jsonp") {
            get(&format!("{s}/{poll}")).await
        } else {
            post(&format!("{s}/{poll}"), "").await
        };
        let frame = if i % 2 == 0 {
            "h\n"
        } else {
            "/**/cb(\"h\");\r\n"
        };
        assert_eq!(r.body, frame, "poll {i}");
        let waited = t.elapsed();
        assert!(
            (Duration::from_millis(300)..Duration::from_secs(2)).contains(&waited),
            "poll {i} answered after {waited:?}"
        );
    }
}

#[actix_rt::test]
async fn session_is_forgotten_after_disconnect_delay() {
    let gw = Gateway::start(&echo_config("disconnect_delay = 0.3"));
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    assert_eq!(post(&format!("{s}/xhr_send"), r#"["x"]"#).await.status, 204);
    // Wait until the server forgets it: a send then gets 404.
    let t = Instant::now();
    while post(&format!("{s}/xhr_send"), "[]").await.status == 204 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "session never expired"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "expired too early: {:?}",
        t.elapsed()
    );
    // The id now starts a new session.
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
}

#[actix_rt::test]
async fn polling_keeps_the_session_alive_past_disconnect_delay() {
    let gw = Gateway::start(&echo_config("disconnect_delay = 0.4"));
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    for i in 0..8 {
        actix_rt::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            post(&format!("{s}/xhr_send"), &format!("[\"{i}\"]"))
                .await
                .status,
            204,
            "poll {i}"
        );
        assert_eq!(
            post(&format!("{s}/xhr"), "").await.body,
            format!("a[\"{i}\"]\n")
        );
    }
}
