//! `kind = "proxy"` against a real upstream WebSocket server on loopback:
//! messages both ways on every transport family, what the backend learns
//! in the handshake, and every close path.
mod common;
use common::upstream::Upstream;
use common::*;
use std::time::Duration;

fn proxy_config(upstreams: &[String], extra: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[services.app]\nprefix = \"/app\"\nkind = \"proxy\"\nupstream = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// A WebSocket session through the proxy; returns it after `o`.
async fn ws_session(gw: &Gateway) -> Ws {
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/app")))).await;
    assert_eq!(ws.recv().await, "o");
    ws
}

#[actix_rt::test]
async fn websocket_messages_pass_both_ways_in_order() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/echo")], ""));
    let mut ws = ws_session(&gw).await;
    for i in 0..200 {
        ws.send(&format!("[\"m{i}\",\"n{i}\"]")).await;
    }
    let mut got = Vec::new();
    while got.len() < 400 {
        let frame = ws.recv().await;
        let msgs: Vec<String> = serde_json::from_str(&frame[1..]).unwrap();
        got.extend(msgs);
    }
    let want: Vec<String> = (0..200)
        .flat_map(|i| [format!("m{i}"), format!("n{i}")])
        .collect();
    assert_eq!(got, want);
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "one upstream connection per session");
    assert_eq!(seen[0].path, "/echo", "the transport never shows");
}

#[actix_rt::test]
async fn polling_messages_survive_the_gaps_between_polls() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/push")], ""));
    let s = gw.url(&session("/app"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    // The upstream's greeting arrived while no poll was pending.
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "a[\"welcome\"]\n");
    for batch in 0..5 {
        let body: Vec<String> = (0..20).map(|i| format!("b{batch}-{i}")).collect();
        let r = post(
            &format!("{s}/xhr_send"),
            &serde_json::to_string(&body).unwrap(),
        )
        .await;
        assert_eq!(r.status, 204);
    }
    let mut got = Vec::new();
    while got.len() < 100 {
        let frame = post(&format!("{s}/xhr"), "").await.body;
        let msgs: Vec<String> = serde_json::from_str(frame.trim_end()[1..].as_ref()).unwrap();
        got.extend(msgs);
    }
    let want: Vec<String> = (0..5)
        .flat_map(|b| (0..20).map(move |i| format!("b{b}-{i}")))
        .collect();
    assert_eq!(got, want);
}

#[actix_rt::test]
async fn streaming_messages_survive_rollovers() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/echo")], "response_limit = 64"));
    let s = gw.url(&session("/app"));
    let want: Vec<String> = (0..60).map(|i| format!("x{i}")).collect();
    let mut got = Vec::new();
    let mut responses = 0;
    while got.len() < want.len() {
        let mut st = Stream::open("POST", &format!("{s}/xhr_streaming")).await;
        responses += 1;
        assert_eq!(st.read_exact(2049).await.len(), 2049);
        if responses == 1 {
            assert_eq!(st.next_line().await.as_deref(), Some("o\n"));
            for chunk in want.chunks(20) {
                let r = post(
                    &format!("{s}/xhr_send"),
                    &serde_json::to_string(chunk).unwrap(),
                )
                .await;
                assert_eq!(r.status, 204);
            }
        }
        // Frames until this response reaches its limit and ends.
        while let Some(line) = st.next_line().await {
            if let Some(a) = line.strip_prefix('a') {
                let msgs: Vec<String> = serde_json::from_str(a.trim_end()).unwrap();
                got.extend(msgs);
            }
            if got.len() >= want.len() {
                break;
            }
        }
    }
    assert_eq!(got, want);
    assert!(
        responses >= 2,
        "the messages crossed a rollover ({responses} responses)"
    );
}

#[actix_rt::test]
async fn the_backend_learns_the_client_and_the_forwarded_headers() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(
        &[up.url("/echo")],
        "forward_headers = [\"Cookie\", \"authorization\"]\nallowed_origins = [\"http://page.example\"]",
    ));
    let url = gw.ws_url(&format!("{}/websocket", session("/app")));
    let mut ws = Ws::connect_with(
        &url,
        &[
            ("Cookie", "sid=s3cret"),
            ("Authorization", "Bearer t0ken"),
            ("User-Agent", "test-agent"),
            ("Origin", "http://page.example"),
            ("X-Forwarded-For", "198.51.100.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "public.example"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ws.recv().await, "o");
    let h = &up.seen()[0].headers;
    // The test client is on 127.0.0.1, a trusted proxy by default, so its
    // X-Forwarded-* headers are believed.
    for (name, want) in [
        ("cookie", "sid=s3cret"),
        ("authorization", "Bearer t0ken"),
        ("x-forwarded-for", "198.51.100.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "public.example"),
        ("origin", "http://page.example"),
    ] {
        assert_eq!(h.get(name).map(String::as_str), Some(want), "{name}");
    }
    assert_eq!(h.get("user-agent"), None, "not in forward_headers");
    assert!(!h.keys().any(|k| k.contains("sockjs")));
}

#[actix_rt::test]
async fn a_polling_session_forwards_the_headers_of_the_request_that_opened_it() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(
        &[up.url("/cookie")],
        "forward_headers = \"cookie\"",
    ));
    let s = gw.url(&session("/app"));
    let r = request("POST", &format!("{s}/xhr"), &[("Cookie", "sid=abc")], "").await;
    assert_eq!(r.body, "o\n");
    // Later requests' headers do not change what the backend was told.
    let r = request(
        "POST",
        &format!("{s}/xhr_send"),
        &[("Cookie", "sid=other")],
        "[\"hi\"]",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "a[\"hi\"]\n");
    assert_eq!(up.seen()[0].headers["cookie"], "sid=abc");
}

#[actix_rt::test]
async fn a_refusing_upstream_closes_the_session_before_it_opens() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(
        &[up.url("/cookie")],
        "forward_headers = \"cookie\"",
    ));
    // Polling: the first answer is the close itself, no `o`.
    let s = gw.url(&session("/app"));
    assert_eq!(
        post(&format!("{s}/xhr"), "").await.body,
        "c[4401,\"Upstream refused the session (HTTP 401)\"]\n"
    );
    // WebSocket: the same close frame as the first frame.
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/app")))).await;
    assert_eq!(
        ws.recv().await,
        "c[4401,\"Upstream refused the session (HTTP 401)\"]"
    );
    for status in [403, 503] {
        let gw = Gateway::start(&proxy_config(&[up.url(&format!("/refuse/{status}"))], ""));
        let s = gw.url(&session("/app"));
        let body = post(&format!("{s}/xhr"), "").await.body;
        assert!(body.starts_with(&format!("c[{},", 4000 + status)), "{body}");
    }
}

#[actix_rt::test]
async fn an_unreachable_upstream_is_told_apart_from_a_refusing_one() {
    let dead = dead_addr();
    let gw = Gateway::start(&proxy_config(&[format!("ws://{dead}/")], ""));
    let s = gw.url(&session("/app"));
    assert_eq!(
        post(&format!("{s}/xhr"), "").await.body,
        "c[4900,\"Upstream unreachable\"]\n"
    );
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/app")))).await;
    assert_eq!(ws.recv().await, "c[4900,\"Upstream unreachable\"]");
}

#[actix_rt::test]
async fn a_dead_upstream_is_skipped_and_retried_later() {
    let dead = dead_addr();
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(
        &[format!("ws://{dead}/echo"), up.url("/echo")],
        "upstream_retry_delay = 0.5",
    ));
    let open = |gw: &Gateway| {
        let s = gw.url(&session("/app"));
        async move { post(&format!("{s}/xhr"), "").await.body }
    };
    // Round-robin starts at the dead one; then it is skipped.
    assert_eq!(open(&gw).await, "c[4900,\"Upstream unreachable\"]\n");
    for _ in 0..4 {
        assert_eq!(open(&gw).await, "o\n");
    }
    assert_eq!(up.seen().len(), 4);
    // After the retry delay the dead one is tried again; once it is back,
    // sessions reach it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let revived = Upstream::start_on(&dead);
    let mut opened = 0;
    for _ in 0..4 {
        if open(&gw).await == "o\n" {
            opened += 1;
        }
    }
    assert_eq!(opened, 4);
    assert!(
        !revived.seen().is_empty(),
        "the revived upstream got sessions"
    );
}

#[actix_rt::test]
async fn an_application_close_from_the_upstream_reaches_the_client() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/close/4001")], ""));
    let mut ws = ws_session(&gw).await;
    ws.send("[\"hi\"]").await;
    assert_eq!(ws.recv().await, "c[4001,\"bye from upstream\"]");
    let gw = Gateway::start(&proxy_config(&[up.url("/close/1000")], ""));
    let s = gw.url(&session("/app"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    post(&format!("{s}/xhr_send"), "[\"hi\"]").await;
    assert_eq!(
        post(&format!("{s}/xhr"), "").await.body,
        "c[1000,\"bye from upstream\"]\n"
    );
}

#[actix_rt::test]
async fn the_upstream_is_told_why_the_client_side_ended() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/echo")], "disconnect_delay = 0.3"));
    // The client closes its WebSocket.
    let ws = ws_session(&gw).await;
    ws.close().await;
    let seen = up
        .wait_for("a close", |s| s.len() == 1 && s[0].close.is_some())
        .await;
    assert_eq!(seen[0].close, Some((1000, "Client closed".into())));
    // A polling client that never comes back.
    let s = gw.url(&session("/app"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let seen = up
        .wait_for("a timeout close", |s| s.len() == 2 && s[1].close.is_some())
        .await;
    assert_eq!(seen[1].close, Some((1001, "Client timed out".into())));
    // A poll dropped while pending.
    let s = session("/app");
    assert_eq!(post(&gw.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let mut poll = Raw::connect(&gw.addr).await;
    poll.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
    assert_eq!(poll.head().await.status, 200);
    drop(poll);
    let seen = up
        .wait_for("an interrupted close", |s| {
            s.len() == 3 && s[2].close.is_some()
        })
        .await;
    assert_eq!(
        seen[2].close,
        Some((1001, "Client connection interrupted".into()))
    );
}

#[actix_rt::test]
async fn a_gateway_shutdown_tells_the_upstream() {
    let up = Upstream::start();
    let mut gw = Gateway::start(&proxy_config(&[up.url("/echo")], "[shutdown]\ngrace = 2"));
    let mut ws = ws_session(&gw).await;
    gw.signal(libc::SIGTERM);
    assert_eq!(ws.recv().await, "c[1001,\"Server shutting down\"]");
    let seen = up
        .wait_for("a close", |s| s.first().is_some_and(|c| c.close.is_some()))
        .await;
    assert_eq!(seen[0].close, Some((1001, "Server shutting down".into())));
    gw.wait_exit(Duration::from_secs(10)).await.expect("exits");
}

#[actix_rt::test]
async fn an_upstream_that_resets_closes_the_session() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/reset")], ""));
    let mut ws = ws_session(&gw).await;
    ws.send("[\"hi\"]").await;
    assert_eq!(ws.recv().await, "c[4901,\"Upstream connection lost\"]");
}

#[actix_rt::test]
async fn a_silent_upstream_is_dropped_after_two_ping_intervals() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(
        &[up.url("/deaf")],
        "upstream_ping_interval = 0.2",
    ));
    let mut ws = ws_session(&gw).await;
    let started = std::time::Instant::now();
    assert_eq!(ws.recv().await, "c[4901,\"Upstream connection lost\"]");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[actix_rt::test]
async fn binary_from_the_upstream_passes_as_text_when_it_is_utf8() {
    let up = Upstream::start();
    let gw = Gateway::start(&proxy_config(&[up.url("/binary")], ""));
    let mut ws = ws_session(&gw).await;
    ws.send("[\"zażółć\"]").await;
    assert_eq!(ws.recv().await, "a[\"zażółć\"]");
    ws.send("[\"bad\"]").await;
    assert_eq!(ws.recv().await, "c[4902,\"Upstream sent binary data\"]");
    let seen = up
        .wait_for("a close", |s| s.first().is_some_and(|c| c.close.is_some()))
        .await;
    assert_eq!(seen[0].close.as_ref().map(|c| c.0), Some(1003));
}

/// A client that does not poll while its upstream floods: the gateway stops
/// reading the upstream instead of buffering (or closing with 1008), and
/// the client later gets every message, in order.
#[actix_rt::test]
async fn a_slow_client_slows_its_upstream_instead_of_overflowing() {
    let up = Upstream::start();
    // 4 MiB from the upstream against a 256 KiB queue limit.
    let gw = Gateway::start(&proxy_config(
        &[up.url("/flood/4096")],
        "max_queued_bytes = 262144\nhigh_water_bytes = 65536",
    ));
    let s = gw.url(&session("/app"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    // Let the upstream run into the backpressure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut next = 0;
    while next < 4096 {
        let body = post(&format!("{s}/xhr"), "").await.body;
        assert!(
            body.starts_with("a["),
            "at message {next}: {}",
            &body[..body.len().min(80)]
        );
        let msgs: Vec<String> = serde_json::from_str(body.trim_end()[1..].as_ref()).unwrap();
        assert!(
            msgs.len() * 1024 <= 2 * 262144,
            "one poll carried {} messages",
            msgs.len()
        );
        for m in msgs {
            let n: usize = m.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(n, next, "lost, duplicated or reordered");
            next += 1;
        }
    }
}
