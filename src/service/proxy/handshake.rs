//! The upstream WebSocket handshake request for one session: what the
//! backend learns about the client, and never the SockJS transport.

use crate::service::api::SessionInfo;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

/// Builds the request for `url`:
/// - `X-Forwarded-For`: the client's address as the gateway resolved it
///   (through `trusted_proxies`), not the chain the client could forge;
/// - `X-Forwarded-Proto` and `X-Forwarded-Host`: what the client used;
/// - `Origin`: the page's origin, when the client sent one;
/// - the `forward_headers` taken from the request that opened the session.
pub fn request(url: &str, info: &SessionInfo) -> Result<Request, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    let headers = req.headers_mut();
    let mut set = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    };
    if let Some(addr) = info.remote_addr {
        set("x-forwarded-for", &addr.to_string());
    }
    set("x-forwarded-proto", &info.proto);
    if let Some(host) = &info.host {
        set("x-forwarded-host", host);
    }
    if let Some(origin) = info.header("origin") {
        set("origin", origin);
    }
    for (name, value) in &info.forwarded {
        // The handshake's own headers are the gateway's to set.
        if !is_handshake_header(name) {
            set(name, value);
        }
    }
    Ok(req)
}

fn is_handshake_header(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "upgrade"
            | "sec-websocket-key"
            | "sec-websocket-version"
            | "sec-websocket-extensions"
            | "content-length"
            | "transfer-encoding"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn info() -> SessionInfo {
        SessionInfo {
            id: 1,
            prefix: "/app".into(),
            remote_addr: Some("203.0.113.7".parse().unwrap()),
            proto: "https".into(),
            host: Some("example.com".into()),
            headers: vec![
                ("origin", "https://example.com".into()),
                ("user-agent", "UA".into()),
            ],
            forwarded: vec![
                (Arc::from("cookie"), "sid=abc".into()),
                (Arc::from("upgrade"), "evil".into()),
            ],
        }
    }

    #[test]
    fn the_backend_learns_the_client_not_the_transport() {
        let req = request("ws://127.0.0.1:9000/socket", &info()).unwrap();
        let h = req.headers();
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(req.uri(), "ws://127.0.0.1:9000/socket");
        assert_eq!(get("x-forwarded-for").as_deref(), Some("203.0.113.7"));
        assert_eq!(get("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(get("x-forwarded-host").as_deref(), Some("example.com"));
        assert_eq!(get("origin").as_deref(), Some("https://example.com"));
        assert_eq!(get("cookie").as_deref(), Some("sid=abc"));
        assert_eq!(
            get("upgrade").as_deref(),
            Some("websocket"),
            "not forwardable"
        );
        assert_eq!(get("user-agent"), None, "not in forward_headers");
        assert_eq!(get("host").as_deref(), Some("127.0.0.1:9000"));
    }
}
