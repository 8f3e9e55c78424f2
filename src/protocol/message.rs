//! A message on its way to a client. Most are one text; the copies of a
//! fan-out (one STOMP publication to many subscribers) differ only in a
//! short head, and share a tail that was JSON-escaped once for all of them.

use super::escape::{push_json_escaped, push_json_string, Context};
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Message {
    Text(Arc<str>),
    /// `head` followed by `tail`'s text.
    Joined {
        head: Box<str>,
        tail: Arc<Tail>,
    },
}

/// The shared part of a fan-out's messages, with its SockJS escaping done
/// once, at the publication.
#[derive(Debug)]
pub struct Tail {
    text: Box<str>,
    escaped: Box<str>,
}

impl Tail {
    pub fn new(text: impl Into<Box<str>>) -> Arc<Tail> {
        let text = text.into();
        let mut escaped = String::with_capacity(text.len());
        push_json_escaped(&mut escaped, &text, Context::Script);
        Arc::new(Tail {
            text,
            escaped: escaped.into(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Message {
    /// Its text's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Joined { head, tail } => head.len() + tail.text.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An upper bound of its JSON string literal's length, when nothing
    /// in a text or head needs escaping: exact for plain messages.
    pub(crate) fn quoted_len(&self) -> usize {
        2 + match self {
            Message::Text(t) => t.len(),
            Message::Joined { head, tail } => head.len() + tail.escaped.len(),
        }
    }

    /// Appends it as a JSON string literal with SockJS escaping (an `a`
    /// frame's element). A shared tail is copied, not escaped again.
    pub fn push_json(&self, out: &mut String) {
        match self {
            Message::Text(t) => push_json_string(out, t, Context::Script),
            Message::Joined { head, tail } => {
                out.push('"');
                push_json_escaped(out, head, Context::Script);
                out.push_str(&tail.escaped);
                out.push('"');
            }
        }
    }

    /// Its text (for a raw WebSocket, which carries messages unframed).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Message::Text(t) => Cow::Borrowed(t),
            Message::Joined { head, tail } => {
                let mut s = String::with_capacity(head.len() + tail.text.len());
                s.push_str(head);
                s.push_str(&tail.text);
                Cow::Owned(s)
            }
        }
    }
}

impl From<Arc<str>> for Message {
    fn from(t: Arc<str>) -> Self {
        Message::Text(t)
    }
}

impl From<String> for Message {
    fn from(t: String) -> Self {
        Message::Text(t.into())
    }
}

impl From<&str> for Message {
    fn from(t: &str) -> Self {
        Message::Text(t.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::escape::json_string;

    #[test]
    fn a_joined_message_encodes_as_its_whole_text_would() {
        let tail = Tail::new("b\"\n\u{2028}<\0 tail");
        for head in ["", "plain head\n", "quote\" and \u{200c}"] {
            let m = Message::Joined {
                head: head.into(),
                tail: tail.clone(),
            };
            let whole = format!("{head}{}", tail.text());
            let mut out = String::new();
            m.push_json(&mut out);
            assert_eq!(out, json_string(&whole, Context::Script));
            assert_eq!(m.text(), whole);
            assert_eq!(m.len(), whole.len());
        }
    }

    #[test]
    fn a_text_message_is_its_text() {
        let m = Message::from("x\"y");
        let mut out = String::new();
        m.push_json(&mut out);
        assert_eq!(out, r#""x\"y""#);
        assert_eq!(m.text(), "x\"y");
        assert_eq!(m.quoted_len(), 5);
    }
}
