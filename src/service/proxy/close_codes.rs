//! Close codes between the two ends of a proxied session, as pure
//! functions. The README's "Close codes" table documents the same.

use crate::protocol::CloseCode;
use crate::service::api::CloseReason;

/// The upstream answered the handshake with HTTP `status` instead of
/// `101`: the client gets `4000 + status` (401 becomes 4401), a code in
/// 4000-4999 so that sockjs-client does not fall back to other transports.
pub fn refused(status: u16) -> CloseCode {
    let code = 4000 + status.clamp(100, 999);
    CloseCode::new(
        code,
        format!("Upstream refused the session (HTTP {status})"),
    )
}

/// No upstream could be reached (connection refused, DNS, TLS, timeout).
pub fn unreachable() -> CloseCode {
    CloseCode::new(4900, "Upstream unreachable")
}

/// The upstream connection died: reset, or silent past two ping intervals.
pub fn upstream_lost() -> CloseCode {
    CloseCode::new(4901, "Upstream connection lost")
}

/// The upstream sent a binary message that is not UTF-8 text: SockJS
/// carries text only.
pub fn upstream_binary() -> CloseCode {
    CloseCode::new(4902, "Upstream sent binary data")
}

/// The upstream stopped taking the client's messages and the bytes held
/// for it passed `max_queued_bytes`.
pub fn upstream_not_reading() -> CloseCode {
    CloseCode::new(4903, "Upstream not reading")
}

/// The upstream sent a message larger than `max_message_bytes`.
pub fn upstream_too_big() -> CloseCode {
    CloseCode::new(4904, "Upstream message too big")
}

/// What the client gets when the upstream closes with `code` and `reason`
/// (`None`: a close frame without a code).
pub fn from_upstream(code: Option<u16>, reason: &str) -> CloseCode {
    match code {
        // Application codes, and the standard codes an endpoint may send,
        // pass through unchanged.
        Some(c @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => CloseCode::new(c, reason),
        // No code (1005) is a normal close.
        None | Some(1005) => CloseCode::new(1000, "Normal closure"),
        // Codes that must not appear in a close frame, or unassigned ones.
        Some(other) => CloseCode::new(1011, format!("Upstream closed with code {other}: {reason}")),
    }
}

/// The close frame the upstream gets when the client side ends.
pub fn to_upstream(reason: &CloseReason) -> (u16, String) {
    match reason {
        CloseReason::ClientClosed => (1000, "Client closed".into()),
        CloseReason::TimedOut => (1001, "Client timed out".into()),
        CloseReason::Interrupted => (1001, "Client connection interrupted".into()),
        CloseReason::QueueOverflow => (
            1008,
            "Client not reading: outgoing queue limit exceeded".into(),
        ),
        CloseReason::ProtocolError(c) => (1002, format!("Client protocol error: {}", c.reason)),
        CloseReason::Server(c) if sendable(c.code) => (c.code, c.reason.clone()),
        CloseReason::Server(c) => (1000, c.reason.clone()),
    }
}

/// Whether an endpoint may put `code` in a WebSocket close frame.
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_failures_are_4xxx_and_distinct() {
        assert_eq!(refused(401).code, 4401);
        assert_eq!(refused(503).code, 4503);
        assert!(refused(403).reason.contains("HTTP 403"));
        let codes = [
            unreachable().code,
            upstream_lost().code,
            upstream_binary().code,
            upstream_not_reading().code,
            upstream_too_big().code,
        ];
        for c in codes {
            assert!((4000..=4999).contains(&c));
            assert!(!(4400..=4599).contains(&c), "{c} collides with a refusal");
        }
        let mut sorted = codes.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len());
    }

    #[test]
    fn upstream_codes_pass_through_or_map() {
        assert_eq!(
            from_upstream(Some(4001), "nope"),
            CloseCode::new(4001, "nope")
        );
        assert_eq!(from_upstream(Some(3000), "x"), CloseCode::new(3000, "x"));
        assert_eq!(
            from_upstream(Some(1000), "bye"),
            CloseCode::new(1000, "bye")
        );
        assert_eq!(from_upstream(Some(1011), "oops").code, 1011);
        assert_eq!(from_upstream(None, "").code, 1000);
        assert_eq!(from_upstream(Some(1006), "").code, 1011);
        assert_eq!(from_upstream(Some(2999), "").code, 1011);
    }

    #[test]
    fn client_endings_tell_the_upstream_which() {
        assert_eq!(to_upstream(&CloseReason::ClientClosed).0, 1000);
        assert_eq!(
            to_upstream(&CloseReason::TimedOut),
            (1001, "Client timed out".into())
        );
        assert!(to_upstream(&CloseReason::Interrupted)
            .1
            .contains("interrupted"));
        assert_eq!(to_upstream(&CloseReason::QueueOverflow).0, 1008);
        let bad = CloseReason::ProtocolError(CloseCode::new(1007, "Broken JSON encoding."));
        assert_eq!(
            to_upstream(&bad),
            (1002, "Client protocol error: Broken JSON encoding.".into())
        );
        let shutdown = CloseReason::Server(CloseCode::new(1001, "Server shutting down"));
        assert_eq!(
            to_upstream(&shutdown),
            (1001, "Server shutting down".into())
        );
        let sockjs_only = CloseReason::Server(CloseCode::new(2010, "x"));
        assert_eq!(to_upstream(&sockjs_only).0, 1000);
    }
}
