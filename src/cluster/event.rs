//! What a node publishes to every node (itself included): something each
//! delivers to its own clients. Pure data and its wire form (JSON on one
//! Redis channel).

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
        /// Where history keeps it: its offset and its stream's epoch, as
        /// Redis assigned them (written into the payload there).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// STOMP: end every session of `user`, saying `message`.
    DisconnectUser {
        service: String,
        user: String,
        message: String,
    },
    /// STOMP: nothing to deliver; each node counts `user`'s sessions (for
    /// an answer asked for with [`crate::cluster::Asks::count`]).
    CountUser { service: String, user: String },
}

impl Event {
    /// What the event is about, as a Redis Cluster hash tag: the stream of
    /// a publication (`SERVICE:DESTINATION`, as its history keys are
    /// tagged), a user's sessions (`SERVICE:/user/NAME`, which no stream
    /// is: a user's queues have a path after the name), or a service
    /// (`SERVICE`, a broadcast). A node hears the events of the tags its
    /// sessions hold ([`super::Bus::follow`]), each on a channel of the
    /// tag's own slot.
    pub fn tag(&self) -> String {
        match self {
            Event::Broadcast { service, .. } => service.clone(),
            Event::Publish { service, key, .. } => stream_tag(service, key),
            Event::DisconnectUser { service, user, .. } | Event::CountUser { service, user } => {
                user_tag(service, user)
            }
        }
    }
}

/// The tag (and history stream name) of `service`'s key `key`.
pub fn stream_tag(service: &str, key: &str) -> String {
    format!("{service}:{}", shown_key(key))
}

/// The tag of `user`'s sessions of `service`.
pub fn user_tag(service: &str, user: &str) -> String {
    format!("{service}:/user/{user}")
}

/// A key as a destination: a topic's is itself; a user's (`\0NAME\0`
/// and the destination its sessions subscribe to, `/user/...`) is
/// `/user/NAME/...`. One per key: user names hold no `/`, and no topic
/// key starts with `/user/`.
pub fn shown_key(key: &str) -> String {
    match key.strip_prefix('\0').and_then(|k| k.split_once('\0')) {
        Some((user, destination)) => {
            let rest = destination.strip_prefix("/user").unwrap_or(destination);
            format!("/user/{user}{rest}")
        }
        None => key.to_owned(),
    }
}

/// An event, the node it comes from and its number there: the sending node
/// keeps its own events until Redis echoes them, and knows each echo by
/// its number. With `count`, each node that gets it says how many of its
/// sessions it reached (see [`super::tally`]).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<'a, E> {
    node: &'a str,
    seq: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    count: bool,
    #[serde(flatten)]
    event: E,
}

/// An event as read: who sent it, its number there, whether it asks to be
/// counted, and what it says.
#[derive(Debug, PartialEq)]
pub struct Received {
    pub node: String,
    pub seq: u64,
    pub count: bool,
    pub event: Event,
}

pub fn encode(node: &str, seq: u64, count: bool, event: &Event) -> String {
    serde_json::to_string(&Envelope {
        node,
        seq,
        count,
        event,
    })
    .expect("events serialize")
}

/// The event in `text`, or why the text is not one.
pub fn decode(text: &[u8]) -> Result<Received, serde_json::Error> {
    let e: Envelope<'_, Event> = serde_json::from_slice(text)?;
    Ok(Received {
        node: e.node.to_owned(),
        seq: e.seq,
        count: e.count,
        event: e.event,
    })
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
                offset: None,
                epoch: None,
            },
            Event::DisconnectUser {
                service: "stomp".into(),
                user: "bob".into(),
                message: "bye".into(),
            },
            Event::CountUser {
                service: "stomp".into(),
                user: "bob".into(),
            },
        ];
        for (seq, event) in events.into_iter().enumerate() {
            let count = seq % 2 == 1;
            let text = encode("gw-1", seq as u64, count, &event);
            let want = Received {
                node: "gw-1".into(),
                seq: seq as u64,
                count,
                event,
            };
            assert_eq!(decode(text.as_bytes()).unwrap(), want);
        }
    }

    #[test]
    fn a_position_written_in_front_by_redis_is_read() {
        let event = Event::Publish {
            service: "stomp".into(),
            key: "/topic/a".into(),
            destination: "/topic/a".into(),
            headers: vec![],
            body: "x".into(),
            offset: None,
            epoch: None,
        };
        let text = encode("gw-1", 7, false, &event);
        // What the history script publishes: the position, then the rest.
        let kept = format!("{{\"offset\":42,\"epoch\":\"ab12\",{}", &text[1..]);
        let got = decode(kept.as_bytes()).unwrap();
        assert_eq!((got.node.as_str(), got.seq), ("gw-1", 7));
        let Event::Publish { offset, epoch, .. } = got.event else {
            panic!("a publication");
        };
        assert_eq!((offset, epoch.as_deref()), (Some(42), Some("ab12")));
    }

    #[test]
    fn tags_of_streams_users_and_services_differ() {
        let publish = |key: &str| Event::Publish {
            service: "s".into(),
            key: key.into(),
            destination: "/user/queue/x".into(),
            headers: vec![],
            body: String::new(),
            offset: None,
            epoch: None,
        };
        assert_eq!(publish("/topic/a").tag(), "s:/topic/a");
        assert_eq!(publish("\0bob\0/user/queue/x").tag(), "s:/user/bob/queue/x");
        let user = Event::CountUser {
            service: "s".into(),
            user: "bob".into(),
        };
        assert_eq!(user.tag(), "s:/user/bob");
        let all = Event::Broadcast {
            service: "s".into(),
            text: String::new(),
        };
        assert_eq!(all.tag(), "s");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"{\"node\":\"x\",\"seq\":1,\"type\":\"nope\"}").is_err());
        assert!(decode(b"\xff").is_err());
    }
}
