//! Who subscribes to what, across a `stomp` service's sessions, and the
//! fan-out of a publication to them.
//!
//! Subscriptions are kept by key: a topic's key is its destination; a user
//! destination's is [`user_key`], so `/user/queue/x` of one user is not
//! another's.

use super::frame::{may_escape, push_header_part, Version};
use crate::protocol::message::{Message, Tail};
use crate::service::api::SessionHandle;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One subscription of one session.
struct Subscriber {
    session: u64,
    id: String,
    version: Version,
    handle: SessionHandle,
}

/// The key of user `user`'s subscriptions to `/user/queue/...`
/// `destination`. NUL cannot occur in a destination or a user name taken
/// from a header line, so keys of users and topics never collide.
pub fn user_key(user: &str, destination: &str) -> String {
    format!("\0{user}\0{destination}")
}

/// A key as a destination: a topic's is itself; a user's is
/// `/user/{user}/...`.
fn shown_key(key: &str) -> String {
    match key.strip_prefix('\0').and_then(|k| k.split_once('\0')) {
        Some((user, destination)) => {
            let rest = destination.strip_prefix("/user").unwrap_or(destination);
            format!("/user/{user}{rest}")
        }
        None => key.to_owned(),
    }
}

/// The lines of a MESSAGE that are its subscription's own: the command,
/// `subscription`, `message-id`, and `ack` under 1.2.
pub fn message_head(subscription: &str, message_id: u64, version: Version) -> String {
    let mut head = String::with_capacity(48 + subscription.len());
    head.push_str("MESSAGE\nsubscription:");
    push_header_part(&mut head, subscription, version >= Version::V1_1, version);
    let _ = write!(head, "\nmessage-id:{message_id}\n");
    if version == Version::V1_2 {
        let _ = writeln!(head, "ack:{message_id}");
    }
    head
}

/// The rest of a MESSAGE, the same for every subscription: `headers`
/// (checked with [`check_header`]), `destination` (a plain path),
/// `content-length`, the body and the closing NUL.
pub fn message_tail(
    headers: &[(String, String)],
    destination: &str,
    body: &str,
    version: Version,
) -> String {
    let escaped = version >= Version::V1_1;
    let mut tail = String::with_capacity(64 + body.len());
    for (name, value) in headers {
        push_header_part(&mut tail, name, escaped, version);
        tail.push(':');
        push_header_part(&mut tail, value, escaped, version);
        tail.push('\n');
    }
    let _ = write!(
        tail,
        "destination:{destination}\ncontent-length:{}\n\n{body}\0",
        body.len()
    );
    tail
}

/// Why a header from a backend (the HTTP API, an app webhook's reply)
/// cannot be added to a MESSAGE: the gateway writes its own, and names and
/// values must not break a header line in any STOMP version.
pub fn check_header(name: &str, value: &str) -> Result<(), &'static str> {
    const OWN: [&str; 5] = [
        "subscription",
        "message-id",
        "destination",
        "content-length",
        "ack",
    ];
    if name.is_empty() || name.contains([':', '\n', '\r', '\0']) {
        return Err("not a STOMP header name");
    }
    if OWN.contains(&name.to_ascii_lowercase().as_str()) {
        return Err("set by the gateway");
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err("a value cannot hold line breaks or NUL");
    }
    Ok(())
}

/// Subscriptions by key.
#[derive(Default)]
pub struct Topics {
    by_destination: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_message_id: AtomicU64,
}

impl Topics {
    pub fn subscribe(
        &self,
        key: &str,
        session: u64,
        id: &str,
        version: Version,
        handle: &SessionHandle,
    ) {
        let mut map = self.lock();
        map.entry(key.to_owned()).or_default().push(Subscriber {
            session,
            id: id.to_owned(),
            version,
            handle: handle.clone(),
        });
    }

    pub fn unsubscribe(&self, key: &str, session: u64, id: &str) {
        let mut map = self.lock();
        if let Some(subs) = map.get_mut(key) {
            subs.retain(|s| !(s.session == session && s.id == id));
            if subs.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Sends a MESSAGE to every subscriber of `key`, showing `destination`
    /// (what they subscribed to); returns how many got it. Each copy is a
    /// short head of its own (subscription, message id) and a tail written
    /// and SockJS-escaped once for all of them: once per header escaping,
    /// as 1.0 escapes nothing.
    pub fn publish(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> usize {
        let map = self.lock();
        let Some(subs) = map.get(key) else {
            return 0;
        };
        let plain = Tail::new(message_tail(headers, destination, body, Version::V1_0));
        // 1.1 and 1.2 differ only on `\r`, which headers here never hold.
        let escaped = if headers.iter().any(|(n, v)| may_escape(n) || may_escape(v)) {
            Tail::new(message_tail(headers, destination, body, Version::V1_2))
        } else {
            plain.clone()
        };
        let first = self
            .next_message_id
            .fetch_add(subs.len() as u64, Ordering::Relaxed);
        for (i, s) in subs.iter().enumerate() {
            let tail = if s.version == Version::V1_0 {
                &plain
            } else {
                &escaped
            };
            s.handle.send(Message::Joined {
                head: message_head(&s.id, first + i as u64, s.version).into(),
                tail: tail.clone(),
            });
        }
        subs.len()
    }

    /// How many subscribe to `key`.
    pub fn subscribers(&self, key: &str) -> usize {
        self.lock().get(key).map_or(0, Vec::len)
    }

    /// A message id for a MESSAGE sent outside [`Topics::publish`].
    pub fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscriber counts of destinations that start with `prefix`, sorted;
    /// a user's `/user/queue/x` is listed as `/user/{user}/queue/x`, the
    /// address a SEND to it uses.
    pub fn destinations(&self, prefix: &str) -> Vec<(String, usize)> {
        let map = self.lock();
        let mut out: Vec<(String, usize)> = map
            .iter()
            .map(|(key, subs)| (shown_key(key), subs.len()))
            .filter(|(d, _)| d.starts_with(prefix))
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Subscriber>>> {
        self.by_destination
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
