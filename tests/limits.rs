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
