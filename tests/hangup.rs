//! A client that drops a pending poll or stream is noticed at once, even
//! though nothing was written to it, and the session closes with 1002.
mod common;
use common::*;

#[actix_rt::test]
async fn dropped_xhr_poll_closes_the_session_with_1002() {
    let gw = Gateway::start(&echo_config(""));
    let s = session("/echo");
    assert_eq!(post(&gw.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let mut pending = Raw::connect(&gw.addr).await;
    pending
        .send("POST", &format!("{s}/xhr"), "1.1", &[], "")
        .await;
    // The head is written only once the poll is attached to the session.
    assert_eq!(pending.head().await.status, 200);
    assert_eq!(
        post(&gw.url(&format!("{s}/xhr")), "").await.body,
        "c[2010,\"Another connection still open\"]\n"
    );
    drop(pending);
    // Within a generous bound the next poll sees the interruption.
    assert_eq!(
        poll_after_abort(&gw, &s).await,
        "c[1002,\"Connection interrupted\"]\n"
    );
}

#[actix_rt::test]
async fn dropped_xhr_stream_closes_the_session_with_1002() {
    let gw = Gateway::start(&echo_config(""));
    let s = session("/echo");
    let mut st = Raw::connect(&gw.addr).await;
    st.send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    st.head().await;
    drop(st);
    assert_eq!(
        poll_after_abort(&gw, &s).await,
        "c[1002,\"Connection interrupted\"]\n"
    );
}

#[actix_rt::test]
async fn finished_polls_on_a_kept_alive_connection_do_not_interrupt() {
    let gw = Gateway::start(&echo_config(""));
    let s = session("/echo");
    let mut c = Raw::connect(&gw.addr).await;
    c.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    // Closing a connection whose poll already completed is normal.
    // The whole chunked body, up to its last chunk.
    assert!(c.read_until("0\r\n\r\n").await.contains("o\n"));
    drop(c);
    assert_eq!(
        post(&gw.url(&format!("{s}/xhr_send")), r#"["ok"]"#)
            .await
            .status,
        204
    );
    assert_eq!(
        post(&gw.url(&format!("{s}/xhr")), "").await.body,
        "a[\"ok\"]\n"
    );
}

#[actix_rt::test]
async fn a_drop_during_a_later_poll_on_a_reused_connection_is_noticed() {
    let gw = Gateway::start(&echo_config(""));
    let s = session("/echo");
    let mut c = Raw::connect(&gw.addr).await;
    // Two polls answered on one keep-alive connection (the watch is reused)...
    for expected in ["o\n", "a[\"x\"]\n"] {
        c.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
        assert_eq!(c.head().await.status, 200);
        if expected.starts_with('a') {
            assert_eq!(
                post(&gw.url(&format!("{s}/xhr_send")), r#"["x"]"#)
                    .await
                    .status,
                204
            );
        }
        assert!(c.read_until("0\r\n\r\n").await.contains(expected));
    }
    // ...then a third one pending when the client drops the connection.
    c.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
    assert_eq!(c.head().await.status, 200);
    drop(c);
    assert_eq!(
        poll_after_abort(&gw, &s).await,
        "c[1002,\"Connection interrupted\"]\n"
    );
}

#[actix_rt::test]
async fn watched_connections_give_their_descriptors_back() {
    let gw = Gateway::start(&echo_config(""));
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", gw.pid()))
            .unwrap()
            .count()
    };
    let polls = |n: usize| {
        let addr = gw.addr.clone();
        async move {
            for _ in 0..n {
                let s = session("/echo");
                let mut c = Raw::connect(&addr).await;
                c.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
                assert_eq!(c.head().await.status, 200);
                assert!(c.read_until("0\r\n\r\n").await.contains("o\n"));
            }
        }
    };
    // Workers open their own descriptors lazily: count after a first round.
    polls(20).await;
    let settled = || async {
        let mut last = fds();
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let now = fds();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    };
    let before = settled().await;
    polls(20).await;
    // Each closed connection's watch ends and closes its duplicate.
    let mut now = fds();
    for _ in 0..100 {
        if now <= before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        now = fds();
    }
    assert!(now <= before, "descriptors: {before} before, {now} after");
}
