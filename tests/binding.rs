//! Session binding and session id length: who may use a session's URLs.
mod common;
use common::*;

const OTHER: &str = "127.0.0.2";

/// Without binding, as in every SockJS server, a second address that knows
/// the id reads the session's messages and writes into it.
#[actix_rt::test]
async fn unbound_sessions_answer_any_address() {
    let gw = Gateway::start(&echo_config(""));
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let r = request_from(
        OTHER,
        "POST",
        &format!("{s}/xhr_send"),
        &[],
        r#"["injected"]"#,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = request_from(OTHER, "POST", &format!("{s}/xhr"), &[], "").await;
    assert_eq!(r.body, "a[\"injected\"]\n");
}

/// With `session_binding = "ip"` another address gets what an unknown id
/// gets: 404 for sends, a separate new session for polls and streams. The
/// owner's session neither loses nor gains a message.
#[actix_rt::test]
async fn bound_sessions_answer_only_their_address() {
    let gw = Gateway::start(&echo_config("session_binding = \"ip\""));
    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    assert_eq!(
        post(&format!("{s}/xhr_send"), r#"["mine"]"#).await.status,
        204
    );

    let from_other = |method: &'static str, path: &'static str, body: &'static str| {
        let url = format!("{s}/{path}");
        async move { request_from(OTHER, method, &url, &[], body).await }
    };
    let r = from_other("POST", "xhr_send", r#"["injected"]"#).await;
    assert_eq!((r.status, r.body.as_str()), (404, "Not found\n"));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request_from(
        OTHER,
        "POST",
        &format!("{s}/jsonp_send"),
        &form,
        "d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.status, 404);
    // A poll opens the other address's own session; the owner's queued
    // echo stays where it is.
    assert_eq!(from_other("POST", "xhr", "").await.body, "o\n");
    assert_eq!(
        from_other("POST", "xhr_send", r#"["theirs"]"#).await.status,
        204
    );
    assert_eq!(from_other("POST", "xhr", "").await.body, "a[\"theirs\"]\n");
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "a[\"mine\"]\n");
}

/// Behind a trusted proxy the address is the one in `X-Forwarded-For`.
#[actix_rt::test]
async fn binding_follows_the_forwarded_address() {
    let gw = Gateway::start(&echo_config("session_binding = \"ip\""));
    let s = gw.url(&session("/echo"));
    let as_client = |ip: &'static str, path: &'static str, body: &'static str| {
        let url = format!("{s}/{path}");
        async move { request("POST", &url, &[("X-Forwarded-For", ip)], body).await }
    };
    assert_eq!(as_client("203.0.113.5", "xhr", "").await.body, "o\n");
    assert_eq!(
        as_client("203.0.113.6", "xhr_send", r#"["x"]"#)
            .await
            .status,
        404
    );
    assert_eq!(
        as_client("203.0.113.5", "xhr_send", r#"["y"]"#)
            .await
            .status,
        204
    );
    assert_eq!(as_client("203.0.113.5", "xhr", "").await.body, "a[\"y\"]\n");
    // The proxy's own address alone is a third client.
    assert_eq!(post(&format!("{s}/xhr_send"), r#"["z"]"#).await.status, 404);
}

#[actix_rt::test]
async fn short_session_ids_are_refused_when_configured() {
    let gw = Gateway::start(&echo_config("min_session_id_length = 8"));
    for sid in ["a", "abcdefg"] {
        let r = post(&gw.url(&format!("/echo/000/{sid}/xhr")), "").await;
        assert_eq!(r.status, 404, "{sid}");
    }
    let r = post(&gw.url("/echo/000/abcdefgh/xhr"), "").await;
    assert_eq!(r.body, "o\n");
    // The default accepts any id the protocol does.
    let gw = Gateway::start(&echo_config(""));
    assert_eq!(post(&gw.url("/echo/000/a/xhr"), "").await.body, "o\n");
}
