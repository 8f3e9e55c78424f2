//! Who subscribes to what, across a `stomp` service's sessions, and the
//! fan-out of a publication to them.
//!
//! Subscriptions are kept by key: a topic's key is its destination; a user
//! destination's is [`user_key`], so `/user/queue/x` of one user is not
//! another's.

use super::frame::Version;
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
    /// (what they subscribed to); returns how many got it. The headers and
    /// body after the per-subscriber ones are written once and shared by
    /// every copy.
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
        let mut tail = String::with_capacity(64 + body.len());
        for (name, value) in headers {
            let _ = writeln!(tail, "{name}:{value}");
        }
        let _ = writeln!(tail, "destination:{destination}");
        let _ = write!(tail, "content-length:{}\n\n{body}\0", body.len());
        let first = self
            .next_message_id
            .fetch_add(subs.len() as u64, Ordering::Relaxed);
        for (i, s) in subs.iter().enumerate() {
            let id = first + i as u64;
            let ack = if s.version == Version::V1_2 {
                format!("ack:{id}\n")
            } else {
                String::new()
            };
            let head = format!("MESSAGE\nsubscription:{}\nmessage-id:{id}\n{ack}", s.id);
            s.handle.send(head + &tail);
        }
        subs.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Subscriber>>> {
        self.by_destination
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
