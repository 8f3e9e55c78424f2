//! The per-service origin allow-list on CORS answers and WebSocket upgrades.
mod common;
use common::*;

#[actix_rt::test]
async fn default_is_same_origin_only() {
    let gw = Gateway::start(&echo_config(""));
    let own = format!("http://{}", gw.addr);
    let s = gw.url(&session("/echo"));
    let r = request("POST", &format!("{s}/xhr"), &[("Origin", &own)], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(own.as_str()));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    let evil = [("Origin", "http://evil.example")];
    for (method, path) in [
        ("POST", "/xhr"),
        ("POST", "/xhr_send"),
        ("POST", "/xhr_streaming"),
        ("GET", "/eventsource"),
        ("OPTIONS", "/xhr"),
    ] {
        let r = request(method, &format!("{s}{path}"), &evil, "[]").await;
        assert_eq!(r.status, 403, "{method} {path}");
        assert!(r.header("access-control-allow-origin").is_none());
    }
    assert_eq!(
        request("GET", &gw.url("/echo/info"), &evil, "")
            .await
            .status,
        403
    );
    assert_eq!(
        request("GET", &gw.url("/echo/info"), &[("Origin", "null")], "")
            .await
            .status,
        403
    );
}

#[actix_rt::test]
async fn websocket_upgrades_from_other_sites_are_refused() {
    let gw = Gateway::start(&echo_config(""));
    let url = gw.ws_url(&format!("{}/websocket", session("/echo")));
    let err = Ws::connect_with(&url, &[("Origin", "http://evil.example")])
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("403") || format!("{err:?}").contains("403"),
        "{err:?}"
    );
    assert!(Ws::connect_with(
        &gw.ws_url("/echo/websocket"),
        &[("Origin", "http://evil.example")]
    )
    .await
    .is_err());
    let own = format!("http://{}", gw.addr);
    let mut ws = Ws::connect_with(&url, &[("Origin", &own)]).await.unwrap();
    assert_eq!(ws.recv().await, "o");
}

#[actix_rt::test]
async fn listed_origins_are_echoed_exactly() {
    let gw = Gateway::start(&echo_config("allowed_origins = [\"https://app.example\"]"));
    let r = request(
        "GET",
        &gw.url("/echo/info"),
        &[("Origin", "https://app.example")],
        "",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = request(
        "GET",
        &gw.url("/echo/info"),
        &[("Origin", "https://app.example.evil")],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
}

#[actix_rt::test]
async fn star_allows_any_origin_but_never_answers_star_with_credentials() {
    let gw = Gateway::start(&echo_config("allowed_origins = [\"*\"]"));
    for origin in ["http://anything.example", "null"] {
        let r = request("GET", &gw.url("/echo/info"), &[("Origin", origin)], "").await;
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    }
    let r = get(&gw.url("/echo/info")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
}
