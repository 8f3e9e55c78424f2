//! Health endpoints and graceful shutdown on SIGTERM/SIGINT.
mod common;
use common::*;
use std::time::{Duration, Instant};

const SHUTDOWN: &str = "[shutdown]\ngrace = 30\nclose_code = 4500\nclose_reason = \"bye now\"\n";

#[actix_rt::test]
async fn health_and_readiness() {
    let gw = Gateway::start(&echo_config(""));
    let r = get(&gw.url("/healthz")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = get(&gw.url("/readyz")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
}

#[actix_rt::test]
async fn sigterm_closes_every_session_and_exits_0() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut gw = Gateway::start(&(SHUTDOWN.to_owned() + &echo_config("")));
        let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
        assert_eq!(ws.recv().await, "o");
        let mut st = Stream::open(
            "POST",
            &gw.url(&format!("{}/xhr_streaming", session("/echo"))),
        )
        .await;
        st.read_exact(2049).await;
        assert_eq!(st.read_until("\n").await, "o\n");
        let poll_session = gw.url(&session("/echo"));
        assert_eq!(post(&format!("{poll_session}/xhr"), "").await.body, "o\n");
        let mut poll = Raw::connect(&gw.addr).await;
        poll.send(
            "POST",
            &format!(
                "{}/xhr",
                &poll_session[poll_session.find("/echo").unwrap()..]
            ),
            "1.1",
            &[],
            "",
        )
        .await;
        assert_eq!(poll.head().await.status, 200);

        let t = Instant::now();
        gw.signal(sig);
        assert_eq!(ws.recv().await, r#"c[4500,"bye now"]"#);
        assert_eq!(st.read_until("\n").await, "c[4500,\"bye now\"]\n");
        st.expect_end().await;
        assert!(poll
            .read_until("\r\n0\r\n\r\n")
            .await
            .contains("c[4500,\"bye now\"]\n"));
        let status = gw
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("gateway exits");
        assert_eq!(status.code(), Some(0), "signal {sig}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

#[actix_rt::test]
async fn in_flight_requests_hold_shutdown_until_a_second_signal() {
    let mut gw = Gateway::start(&(SHUTDOWN.to_owned() + &echo_config("")));
    let s = session("/echo");
    assert_eq!(post(&gw.url(&format!("{s}/xhr")), "").await.body, "o\n");
    // A send whose body is only half uploaded is in flight. The server's
    // `100 Continue` shows it has the request and is waiting for the body.
    let mut slow = Raw::connect(&gw.addr).await;
    use tokio::io::AsyncWriteExt;
    let head = format!("POST {s}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n");
    slow.sock.write_all(head.as_bytes()).await.unwrap();
    assert!(slow.read_until("\r\n\r\n").await.contains(" 100 Continue"));
    slow.sock.write_all(b"[\"part").await.unwrap();
    gw.signal(libc::SIGTERM);
    // Within the 30 s grace the gateway waits for it, accepting nothing new...
    assert!(
        gw.wait_exit(Duration::from_millis(500)).await.is_none(),
        "exited before the grace period"
    );
    assert!(
        tokio::net::TcpStream::connect(&gw.addr).await.is_err(),
        "still accepting"
    );
    // ...and a second signal ends it at once.
    let t = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits on the second signal");
    assert_eq!(status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[actix_rt::test]
async fn sigterm_drains_first_readyz_503_while_sessions_go_on() {
    let toml = "[shutdown]\ndrain_delay = 1\nclose_code = 4500\nclose_reason = \"bye now\"\n";
    let mut gw = Gateway::start(&(toml.to_owned() + &echo_config("")));
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    let t = Instant::now();
    gw.signal(libc::SIGTERM);
    // The balancer is told at once...
    let mut readyz = get(&gw.url("/readyz")).await;
    while readyz.status == 200 {
        readyz = get(&gw.url("/readyz")).await;
    }
    assert_eq!((readyz.status, readyz.body.as_str()), (503, "draining\n"));
    // ...while open sessions and new ones are served as before.
    ws.send(r#"["still here"]"#).await;
    assert_eq!(ws.recv().await, r#"a["still here"]"#);
    let s = session("/echo");
    assert_eq!(post(&gw.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let mut poll = Raw::connect(&gw.addr).await;
    poll.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
    assert_eq!(poll.head().await.status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Then, the delay over, every session is closed and the process ends.
    assert_eq!(ws.recv().await, r#"c[4500,"bye now"]"#);
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert!(poll
        .read_until("\r\n0\r\n\r\n")
        .await
        .contains("c[4500,\"bye now\"]\n"));
    let status = gw.wait_exit(Duration::from_secs(10)).await.expect("exits");
    assert_eq!(status.code(), Some(0));
}
