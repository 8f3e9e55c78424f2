//! What one node tells the others: a publication to deliver to their own
//! clients. Pure data and its wire form (JSON on one Redis channel).

use serde::{Deserialize, Serialize};

/// Something every node delivers to its own sessions of `service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The broadcast service (and [`crate::ServiceHub::broadcast`]): `text`
    /// to every session.
    Broadcast { service: String, text: String },
    /// STOMP: a MESSAGE to the subscribers of `key` (a topic, or one user's
    /// `/user/queue/...`), showing `destination`.
    Publish {
        service: String,
        key: String,
        destination: String,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// STOMP: end every session of `user`, saying `message`.
    DisconnectUser {
        service: String,
        user: String,
        message: String,
    },
}

/// An event and the node it comes from: a node skips its own, which it
/// delivered before publishing.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<'a> {
    node: &'a str,
    #[serde(flatten)]
    event: Event,
}

pub fn encode(node: &str, event: Event) -> String {
    serde_json::to_string(&Envelope { node, event }).expect("events serialize")
}

/// The sending node and the event, or why the text is not one.
pub fn decode(text: &[u8]) -> Result<(String, Event), serde_json::Error> {
    let e: Envelope<'_> = serde_json::from_slice(text)?;
    Ok((e.node.to_owned(), e.event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let events = [
            Event::Broadcast {
                service: "chat".into(),
                text: "hi \"there\"\n".into(),
            },
            Event::Publish {
                service: "stomp".into(),
                key: "\0alice\0/user/queue/x".into(),
                destination: "/user/queue/x".into(),
                headers: vec![("content-type".into(), "text/plain".into())],
                body: "é\u{0}".into(),
            },
            Event::DisconnectUser {
                service: "stomp".into(),
                user: "bob".into(),
                message: "bye".into(),
            },
        ];
        for e in events {
            let text = encode("gw-1", e.clone());
            assert_eq!(decode(text.as_bytes()).unwrap(), ("gw-1".to_owned(), e));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"{\"node\":\"x\",\"type\":\"nope\"}").is_err());
        assert!(decode(b"\xff").is_err());
    }
}
