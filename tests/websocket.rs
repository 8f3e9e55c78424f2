//! SockJS WebSocket and raw WebSocket transports.
mod common;
use common::*;
use std::time::{Duration, Instant};

fn config(extra: &str) -> String {
    echo_config(extra) + "[services.close]\nprefix = \"/close\"\nkind = \"close\"\n"
}

#[actix_rt::test]
async fn sockjs_websocket_echo_ignores_empty_frames() {
    let gw = Gateway::start(&config(""));
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    ws.send("").await;
    ws.send("[]").await;
    ws.send(r#"["a","b\u2028"]"#).await;
    assert_eq!(ws.recv().await, r#"a["a","b\u2028"]"#);
    ws.send(r#""single""#).await;
    assert_eq!(ws.recv().await, r#"a["single"]"#);
    ws.close().await;
}

#[actix_rt::test]
async fn sockjs_websocket_close_frame_then_socket_close() {
    let gw = Gateway::start(&config(""));
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/close")))).await;
    assert_eq!(ws.recv().await, "o");
    assert_eq!(ws.recv().await, r#"c[3000,"Go away!"]"#);
    // The SockJS code travels in the `c` frame; the socket closes normally
    // (codes such as 2010 are not valid WebSocket close codes).
    let (code, _) = ws.expect_close().await;
    assert_eq!(code, 1000);
}

#[actix_rt::test]
async fn broken_json_drops_the_socket() {
    let gw = Gateway::start(&config(""));
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    ws.send(r#"["a"#).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (1007, "Broken JSON encoding."));
}

/// RFC 6455 7.4.1: 1007 for a text frame that is not UTF-8, 1002 for
/// reserved bits without an extension, and a client's close code echoed;
/// on both framings, whole frames and fragmented ones.
#[actix_rt::test]
async fn websocket_close_codes_follow_rfc_6455() {
    let gw = Gateway::start(&config(""));
    for path in [
        format!("{}/websocket", session("/echo")),
        "/echo/websocket".into(),
    ] {
        let sockjs = path != "/echo/websocket";
        let connect = || async {
            let mut ws = Ws::connect(&gw.ws_url(&path)).await;
            if sockjs {
                assert_eq!(ws.recv().await, "o");
            }
            ws
        };
        // A lone continuation byte, in a single text frame.
        let mut ws = connect().await;
        ws.send_raw_frame(0x81, b"[\"\x80\"]").await;
        assert_eq!(ws.expect_close().await.0, 1007, "{path}: single frame");
        // A UTF-8 sequence cut between two fragments that never completes.
        let mut ws = connect().await;
        ws.send_raw_frame(0x01, b"[\"\xe2\x82").await;
        ws.send_raw_frame(0x80, b"\"]").await;
        assert_eq!(ws.expect_close().await.0, 1007, "{path}: fragments");
        // RSV1 set on a valid text frame; nothing was negotiated.
        let mut ws = connect().await;
        ws.send_raw_frame(0xC1, b"[\"a\"]").await;
        assert_eq!(ws.expect_close().await.0, 1002, "{path}: rsv1");
        for code in [1000, 4001] {
            let mut ws = connect().await;
            ws.send_close(code).await;
            assert_eq!(ws.expect_close().await.0, code, "{path}: echo {code}");
        }
    }
}

#[actix_rt::test]
async fn two_websockets_may_share_a_session_id() {
    let gw = Gateway::start(&config(""));
    let url = gw.ws_url(&format!("{}/websocket", session("/echo")));
    let mut a = Ws::connect(&url).await;
    let mut b = Ws::connect(&url).await;
    assert_eq!(a.recv().await, "o");
    assert_eq!(b.recv().await, "o");
    a.send(r#"["a"]"#).await;
    b.send(r#"["b"]"#).await;
    assert_eq!(a.recv().await, r#"a["a"]"#);
    assert_eq!(b.recv().await, r#"a["b"]"#);
    a.close().await;
    b.close().await;
    let mut c = Ws::connect(&url).await;
    assert_eq!(c.recv().await, "o");
}

#[actix_rt::test]
async fn heartbeats_flow_over_websocket() {
    let gw = Gateway::start(&config("heartbeat_delay = 0.2"));
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    assert_eq!(ws.recv().await, "h");
    assert_eq!(ws.recv().await, "h");
}

#[actix_rt::test]
async fn raw_websocket_carries_bare_messages() {
    let gw = Gateway::start(&config(""));
    let mut ws = Ws::connect(&gw.ws_url("/echo/websocket")).await;
    ws.send("Hello world!\u{ffff}").await;
    assert_eq!(ws.recv().await, "Hello world!\u{ffff}");
    ws.send("[\"not parsed\"]").await;
    assert_eq!(ws.recv().await, "[\"not parsed\"]");
    let mut closed = Ws::connect(&gw.ws_url("/close/websocket")).await;
    assert_eq!(closed.expect_close().await, (3000, "Go away!".to_owned()));
}

#[actix_rt::test]
async fn bad_upgrades_get_clear_errors() {
    let gw = Gateway::start(&config(""));
    let url = gw.url("/echo/0/0/websocket");
    let r = get(&url).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Can \"Upgrade\" only to \"WebSocket\".")
    );
    let r = request(
        "GET",
        &url,
        &[("Upgrade", "WebSocket"), ("Connection", "close")],
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "\"Connection\" must be \"Upgrade\".")
    );
    for h in [
        &[("Upgrade", "WebSocket"), ("Connection", "Upgrade")][..],
        &[],
    ] {
        let r = request("POST", &url, h, "").await;
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET"));
    }
}

#[actix_rt::test]
async fn oversized_messages_close_with_1009() {
    let gw = Gateway::start(&config("max_message_bytes = 1000"));
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    ws.send(&format!("[\"{}\"]", "x".repeat(900))).await;
    assert!(ws.recv().await.starts_with("a[\"xxx"));
    ws.send(&format!("[\"{}\"]", "x".repeat(2000))).await;
    assert_eq!(ws.expect_close().await.0, 1009);
    let mut raw = Ws::connect(&gw.ws_url("/echo/websocket")).await;
    raw.send(&"y".repeat(2000)).await;
    assert_eq!(raw.expect_close().await.0, 1009);
}

#[actix_rt::test]
async fn a_peer_that_never_answers_pings_is_dropped() {
    let gw = Gateway::start(&config("heartbeat_delay = 0.2"));
    let mut ws = Ws::connect(&gw.ws_url("/echo/websocket")).await;
    let t = Instant::now();
    // Read without answering: pings arrive, then the server gives up.
    let mut pings = 0;
    while let Some(frame) = ws.next_unanswered().await {
        if matches!(frame, awc::ws::Frame::Ping(_)) {
            pings += 1;
        }
    }
    assert!(pings >= 1, "no ping before the drop");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[actix_rt::test]
async fn a_peer_that_answers_pings_stays() {
    let gw = Gateway::start(&config("heartbeat_delay = 0.1"));
    let mut ws = Ws::connect(&gw.ws_url("/echo/websocket")).await;
    // `Ws::next` answers pings; the connection outlives several intervals.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        ws.send("ping?").await;
        assert_eq!(ws.recv().await, "ping?");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}
