//! The four SockJS frames the server sends: `o`, `h`, `a[...]`, `c[code,"reason"]`.

use super::escape::{push_json_string, Context};
use super::message::Message;

/// A frame before any transport wrapping.
#[derive(Clone, Copy, Debug)]
pub enum Frame<'a> {
    Open,
    Heartbeat,
    Messages(&'a [Message]),
    Close(u16, &'a str),
}

impl Frame<'_> {
    /// The frame's text as SockJS defines it.
    pub fn encode(&self) -> String {
        match *self {
            Frame::Open => "o".to_owned(),
            Frame::Heartbeat => "h".to_owned(),
            Frame::Messages(msgs) => {
                // Exact when nothing needs escaping: a buffer with no spare
                // capacity becomes the socket's `Bytes` without another allocation.
                let quoted: usize = msgs.iter().map(Message::quoted_len).sum();
                let mut out = String::with_capacity(3 + quoted + msgs.len().saturating_sub(1));
                out.push_str("a[");
                for (i, m) in msgs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    m.push_json(&mut out);
                }
                out.push(']');
                out
            }
            Frame::Close(code, reason) => {
                let mut out = format!("c[{code},");
                push_json_string(&mut out, reason, Context::Script);
                out.push(']');
                out
            }
        }
    }
}

/// A close code with its reason, as carried by a `c` frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseCode {
    pub code: u16,
    pub reason: String,
}

impl CloseCode {
    /// A limit refused the session or its messages (as HTTP's 429).
    pub const TOO_MANY: u16 = 4429;

    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseCode {
            code,
            reason: reason.into(),
        }
    }
    /// The application closed the session without naming a reason.
    pub fn go_away() -> Self {
        CloseCode::new(3000, "Go away!")
    }
    /// Sent to a receiver that arrives while another is attached.
    pub fn another_connection() -> Self {
        CloseCode::new(2010, "Another connection still open")
    }
    /// The attached receiver's connection dropped.
    pub fn interrupted() -> Self {
        CloseCode::new(1002, "Connection interrupted")
    }
    /// The session's outgoing queue passed `max_queued_bytes`.
    pub fn queue_overflow() -> Self {
        CloseCode::new(1008, "Outgoing queue limit exceeded")
    }
    /// A WebSocket message passed `max_message_bytes`.
    pub fn message_too_big() -> Self {
        CloseCode::new(1009, "Message too big")
    }
    /// An HTTP session whose node is gone (killed, or left the cluster):
    /// what another node answers for it.
    pub fn node_gone() -> Self {
        CloseCode::new(4503, "The node holding this session is gone")
    }
    /// A session refused at open by `max_sessions_per_ip` or
    /// `max_new_sessions_per_ip`.
    pub fn too_many_sessions() -> Self {
        CloseCode::new(Self::TOO_MANY, "Too many sessions")
    }
    pub fn frame(&self) -> String {
        Frame::Close(self.code, &self.reason).encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn simple_frames() {
        assert_eq!(Frame::Open.encode(), "o");
        assert_eq!(Frame::Heartbeat.encode(), "h");
    }

    #[test]
    fn message_frame_escapes_each_message() {
        let msgs: Vec<Message> = vec!["a".into(), "b\"c".into(), "\u{2028}".into()];
        assert_eq!(Frame::Messages(&msgs).encode(), r#"a["a","b\"c","\u2028"]"#);
    }

    #[test]
    fn plain_message_frames_fill_their_buffer_exactly() {
        for msgs in [vec!["abc".into()], vec!["a".into(), "bc".into(), "".into()]] {
            let msgs: Vec<Message> = msgs.into_iter().map(|m: Arc<str>| m.into()).collect();
            let frame = Frame::Messages(&msgs).encode();
            assert_eq!(frame.capacity(), frame.len(), "{frame}");
        }
    }

    #[test]
    fn empty_message_list_is_an_empty_array() {
        assert_eq!(Frame::Messages(&[]).encode(), "a[]");
    }

    #[test]
    fn close_frames_match_the_protocol_text() {
        assert_eq!(CloseCode::go_away().frame(), r#"c[3000,"Go away!"]"#);
        assert_eq!(
            CloseCode::another_connection().frame(),
            r#"c[2010,"Another connection still open"]"#
        );
        assert_eq!(
            CloseCode::interrupted().frame(),
            r#"c[1002,"Connection interrupted"]"#
        );
        assert_eq!(CloseCode::new(4000, "x\"y").frame(), r#"c[4000,"x\"y"]"#);
    }
}
