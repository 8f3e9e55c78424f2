//! Configurable limits: body and message size, outgoing queue, sessions.
mod common;
use common::*;

#[actix_rt::test]
async fn oversized_send_body_gets_413_and_the_session_survives() {
    let gw = Gateway::start(&echo_config("max_message_bytes = 1000"));
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let big = format!("[\"{}\"]", "x".repeat(2000));
    let r = post(&format!("{s}/xhr_send"), &big).await;
    assert_eq!(r.status, 413);
    assert!(r.body.contains("max_message_bytes"), "{}", r.body);
    let r = request(
        "POST",
        &format!("{s}/jsonp_send"),
        &[("Content-Type", "text/plain")],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        post(&format!("{s}/xhr_send"), r#"["small"]"#).await.status,
        204
    );
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "a[\"small\"]\n");
}

#[actix_rt::test]
async fn outgoing_queue_overflow_closes_only_that_session() {
    let gw = Gateway::start(&echo_config("max_queued_bytes = 1000"));
    let slow = gw.url(&session("/echo"));
    let other = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{slow}/xhr"), "").await.body, "o\n");
    assert_eq!(post(&format!("{other}/xhr"), "").await.body, "o\n");
    // No receiver is attached: echoes pile up until the limit.
    for _ in 0..3 {
        post(
            &format!("{slow}/xhr_send"),
            &format!("[\"{}\"]", "z".repeat(400)),
        )
        .await;
    }
    assert_eq!(
        post(&format!("{slow}/xhr"), "").await.body,
        "c[1008,\"Outgoing queue limit exceeded\"]\n"
    );
    assert_eq!(
        post(&format!("{other}/xhr_send"), r#"["fine"]"#)
            .await
            .status,
        204
    );
    assert_eq!(
        post(&format!("{other}/xhr"), "").await.body,
        "a[\"fine\"]\n"
    );
}

#[actix_rt::test]
async fn sessions_past_max_sessions_get_503() {
    let gw = Gateway::start(&echo_config("max_sessions = 2"));
    let a = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{a}/xhr"), "").await.body, "o\n");
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    let r = post(&gw.url(&format!("{}/xhr", session("/echo"))), "").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("max_sessions"));
    assert!(
        Ws::connect_with(&gw.ws_url(&format!("{}/websocket", session("/echo"))), &[])
            .await
            .is_err()
    );
    // Existing sessions carry on.
    assert_eq!(post(&format!("{a}/xhr_send"), r#"["x"]"#).await.status, 204);
    assert_eq!(post(&format!("{a}/xhr"), "").await.body, "a[\"x\"]\n");
    // A slot frees when a session ends.
    ws.close().await;
    let mut status = 503;
    for _ in 0..50 {
        status = post(&gw.url(&format!("{}/xhr", session("/echo"))), "")
            .await
            .status;
        if status == 200 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn a_websocket_reader_that_stalls_is_closed_at_the_queue_limit() {
    let toml = "[services.amplify]\nprefix = \"/amplify\"\nkind = \"amplify\"\nmax_queued_bytes = 2000000\n";
    let gw = Gateway::start(toml);
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/amplify")))).await;
    assert_eq!(ws.recv().await, "o");
    // Ask for 256 KiB replies without reading them: once socket buffers are
    // full, what waits for this reader passes 2 MB and the session closes.
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = rss(gw.pid());
    for _ in 0..400 {
        ws.send(r#"["18"]"#).await;
    }
    // Reading now: the replies that made it, then the close frame.
    let mut frames = 0;
    let close = loop {
        let frame = ws.recv().await;
        if frame.starts_with('c') {
            break frame;
        }
        frames += 1;
        assert!(frames < 400, "never closed");
    };
    assert_eq!(close, "c[1008,\"Outgoing queue limit exceeded\"]");
    assert!(
        frames < 200,
        "{frames} replies were queued for a reader that did not read"
    );
    // 400 replies would be 100 MiB; the server held a bounded amount.
    let grown_kib = rss(gw.pid()).saturating_sub(before);
    assert!(grown_kib < 64 * 1024, "server RSS grew by {grown_kib} KiB");
}

/// Request heads past `max_header_bytes` get 431 and a closed connection,
/// before any route or WebSocket upgrade runs; smaller ones pass.
#[actix_rt::test]
async fn oversized_request_heads_get_431() {
    let head = |n: usize| [("Cookie", format!("c={}", "x".repeat(n)))];
    let status = |url: String, headers: [(&'static str, String); 1]| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = request("GET", &url, &h, "").await;
        (r.status, r.header("connection").map(str::to_owned), r.body)
    };
    // The default is 32 KiB: a 20 KB cookie passes, a 40 KB one does not.
    let gw = Gateway::start(&echo_config(""));
    assert_eq!(status(gw.url("/echo/info"), head(20_000)).await.0, 200);
    let (code, conn, body) = status(gw.url("/echo/info"), head(40_000)).await;
    assert_eq!((code, conn.as_deref()), (431, Some("close")));
    assert!(body.contains("max_header_bytes"), "{body}");

    let gw = Gateway::start(&format!("max_header_bytes = 2048\n{}", echo_config("")));
    assert_eq!(status(gw.url("/healthz"), head(1500)).await.0, 200);
    assert_eq!(status(gw.url("/healthz"), head(2100)).await.0, 431);
    let ws = gw.ws_url("/echo/websocket");
    assert!(Ws::connect_with(&ws, &[("Cookie", "c=1")]).await.is_ok());
    let big = format!("c={}", "x".repeat(2100));
    match Ws::connect_with(&ws, &[("Cookie", big.as_str())]).await {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 431),
        other => panic!("expected 431, got {:?}", other.map(|_| "a socket")),
    }
}
