//! Prometheus metrics at `GET /metrics` on the API's listener
//! (`[api] metrics = true`), against the real binary: the series exist from
//! the start and move as sessions open, talk and close.
mod common;
use common::*;
use std::time::{Duration, Instant};

async fn scrape(gw: &Gateway) -> String {
    let r = get(&gw.api_url("/metrics")).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    r.body
}

/// Waits until `series` reads `want`, within 5 s.
async fn until(gw: &Gateway, series: &str, want: f64) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(gw).await;
        if metric_value(&text, series) == Some(want) {
            return;
        }
        assert!(Instant::now() < until, "{series} never {want}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const OPEN_WS: &str = r#"sockjs_gateway_sessions_open{service="echo",transport="websocket"}"#;
const OPENED_WS: &str =
    r#"sockjs_gateway_sessions_opened_total{service="echo",transport="websocket"}"#;
const OPEN_XHR: &str = r#"sockjs_gateway_sessions_open{service="echo",transport="xhr_polling"}"#;
const CLOSED_BY_CLIENT: &str =
    r#"sockjs_gateway_sessions_closed_total{service="echo",reason="client_closed"}"#;
const IN: &str = r#"sockjs_gateway_messages_in_total{service="echo"}"#;
const OUT: &str = r#"sockjs_gateway_messages_out_total{service="echo"}"#;
const BYTES_IN: &str = r#"sockjs_gateway_bytes_in_total{service="echo"}"#;
const POLLS: &str = r#"sockjs_gateway_polls_total{service="echo"}"#;

#[actix_rt::test]
async fn metrics_move_as_sessions_open_talk_and_close() {
    let gw = Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nmetrics = true\n{}",
        echo_config("")
    ));
    let text = scrape(&gw).await;
    for series in [
        OPEN_WS,
        OPENED_WS,
        OPEN_XHR,
        CLOSED_BY_CLIENT,
        IN,
        OUT,
        POLLS,
    ] {
        assert_eq!(metric_value(&text, series), Some(0.0), "{series}:\n{text}");
    }
    for name in [
        "sockjs_gateway_stream_rollovers_total",
        "sockjs_gateway_queue_overflow_closes_total",
        "sockjs_gateway_bytes_out_total",
        "sockjs_gateway_upstream_connects_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
            "{name}"
        );
    }

    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
    assert_eq!(ws.recv().await, "o");
    ws.send(r#"["hello"]"#).await;
    assert_eq!(ws.recv().await, r#"a["hello"]"#);
    let text = scrape(&gw).await;
    assert_eq!(metric_value(&text, OPEN_WS), Some(1.0));
    assert_eq!(metric_value(&text, OPENED_WS), Some(1.0));
    assert_eq!(metric_value(&text, IN), Some(1.0));
    assert_eq!(metric_value(&text, BYTES_IN), Some(5.0));
    assert_eq!(metric_value(&text, OUT), Some(1.0));

    let s = gw.url(&session("/echo"));
    assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
    let text = scrape(&gw).await;
    assert_eq!(metric_value(&text, OPEN_XHR), Some(1.0));
    assert_eq!(metric_value(&text, POLLS), Some(1.0));

    ws.close().await;
    until(&gw, OPEN_WS, 0.0).await;
    until(&gw, CLOSED_BY_CLIENT, 1.0).await;
    assert_eq!(metric_value(&scrape(&gw).await, OPEN_XHR), Some(1.0));
}

#[actix_rt::test]
async fn without_a_key_only_the_metrics_are_served() {
    let gw = Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nmetrics = true\n{}",
        echo_config("")
    ));
    let r = post(&gw.api_url("/api/publish"), "{}").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no [api] key"), "{}", r.body);
    assert_eq!(get(&gw.api_url("/metrics")).await.status, 200);
}

/// With metrics off, `/metrics` on the API's listener says so and names
/// the setting, with the key or without it.
#[actix_rt::test]
async fn metrics_that_are_off_say_how_to_turn_them_on() {
    let key = "a-key-for-the-metrics-test";
    let gw = Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{key}\"\n{}",
        echo_config("")
    ));
    let bearer = format!("Bearer {key}");
    for headers in [vec![], vec![("Authorization", bearer.as_str())]] {
        let r = request("GET", &gw.api_url("/metrics"), &headers, "").await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(
            r.body.contains("metrics are off") && r.body.contains("api.metrics = true"),
            "{}",
            r.body
        );
    }
}

/// The dashboard in the repository queries only metrics the gateway
/// exports (a renamed metric would leave a panel empty).
#[actix_rt::test]
async fn the_grafana_dashboard_queries_metrics_that_exist() {
    let redis = common::redis::Redis::start();
    let gw = Gateway::start(&format!(
        "[cluster]\nredis_url = \"{}\"\nsecret = \"test-cluster-secret-0123456789abcdef\"\n[api]\nlisten = \"127.0.0.1:0\"\nmetrics = true\n{}",
        redis.url(),
        echo_config("")
    ));
    let text = scrape(&gw).await;
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/grafana/sockjs-gateway.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut names = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("sockjs_gateway_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(names.len() >= 11, "{names:?}");
    for name in names {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "{name} is not exported:\n{text}"
        );
    }
}
