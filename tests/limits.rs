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

/// A client text frame (masked with a zero key, so the payload is as is).
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// TCP connections on the gateway's port that a process still holds open
/// (from /proc/net/tcp: not listening, and with an inode, which a socket
/// loses once its last fd is closed).
fn held_connections(gw: &Gateway) -> usize {
    let port: u16 = gw.addr.rsplit(':').next().unwrap().parse().unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
            local_port == port && f[3] != "0A" && f[9] != "0"
        })
        .count()
}

/// Readers that stop reading (20 WebSockets, 5 xhr-streams, with queue
/// limits far away) are cut off after `write_timeout`: their connections
/// are reset and the gateway lets go of them. A reader that reads is not.
#[actix_rt::test]
async fn stalled_readers_are_cut_off_after_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let toml = "write_timeout = 1\n[services.amplify]\nprefix = \"/amplify\"\nkind = \"amplify\"\n\
                response_limit = 100000000\nmax_queued_bytes = 100000000\n";
    let gw = Gateway::start(toml);
    let mut healthy = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/amplify")))).await;
    assert_eq!(healthy.recv().await, "o");

    // A small receive buffer, so that what the gateway sends cannot all fit
    // in the client's socket: the window closes and stays closed.
    let connect = || async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let sock = sock.connect(gw.addr.parse().unwrap()).await.unwrap();
        Raw {
            sock,
            buf: Vec::new(),
        }
    };
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut raw = connect().await;
        let path = format!("{}/websocket", session("/amplify"));
        raw.send("GET", &path, "1.1", &upgrade, "").await;
        assert_eq!(raw.head().await.status, 101);
        // 40 replies of 256 KiB: far more than socket buffers hold.
        for _ in 0..40 {
            raw.sock
                .write_all(&masked_text(br#"["18"]"#))
                .await
                .unwrap();
        }
        stalled.push(raw);
    }
    for _ in 0..5 {
        let s = session("/amplify");
        let mut raw = connect().await;
        raw.send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
            .await;
        assert_eq!(raw.head().await.status, 200);
        for _ in 0..40 {
            let r = post(&gw.url(&format!("{s}/xhr_send")), r#"["18"]"#).await;
            assert_eq!(r.status, 204);
        }
        stalled.push(raw);
    }

    // The gateway lets go of all 25 (the healthy socket stays).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while held_connections(&gw) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} connections still held",
            held_connections(&gw)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Each stalled client finds its connection reset once it reads again.
    for (i, mut raw) in stalled.into_iter().enumerate() {
        let mut buf = vec![0u8; 1 << 20];
        let end = loop {
            match raw.sock.read(&mut buf).await {
                Ok(0) => break "eof",
                Ok(_) => continue,
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{i}");
                    break "reset";
                }
            }
        };
        assert_eq!(end, "reset", "stalled reader {i}");
    }
    healthy.send(r#"["3"]"#).await;
    assert_eq!(healthy.recv().await, r#"a["xxxxxxxx"]"#);
}
