//! Who subscribes to what, across a `stomp` service's sessions, and the
//! fan-out of a publication to them.
//!
//! Subscriptions are kept by key: a topic's key is its destination; a user
//! destination's is [`user_key`], so `/user/queue/x` of one user is not
//! another's.
//!
//! For destinations with history, publications carry their position, and
//! this is where none is sent twice or out of order: each key remembers the
//! last offset delivered here, so a publication after a gap is held while
//! the gap is read from history ([`Topics::deliver`], [`Topics::filled`]);
//! each subscription remembers the last offset it got, and holds live
//! publications while its recovery reads history ([`Topics::recovered`]).
//! A key's last offset here is also what a new subscription is told it
//! starts from, with no read of history ([`Topics::subscribe`]).

use super::frame::{may_escape, push_header_part, Version};
use crate::cluster::history::{Entry, Position, Read};
use crate::protocol::message::{Message, Tail};
use crate::service::api::SessionHandle;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A stream position as publications carry it.
type At = (u64, Arc<str>);

/// A publication ready for its subscribers: its position in history, if it
/// has one, and its shared tail, written once per header escaping.
pub struct Outgoing {
    at: Option<At>,
    plain: Arc<Tail>,
    escaped: Arc<Tail>,
}

impl Outgoing {
    pub fn new(
        destination: &str,
        headers: &[(String, String)],
        body: &str,
        position: Option<&Position>,
    ) -> Arc<Outgoing> {
        let mut all;
        let headers = match position {
            None => headers,
            Some(p) => {
                all = headers.to_vec();
                all.push(("x-stream-offset".into(), p.offset.to_string()));
                all.push(("x-stream-epoch".into(), p.epoch.to_string()));
                &all[..]
            }
        };
        let plain = Tail::new(message_tail(headers, destination, body, Version::V1_0));
        // 1.1 and 1.2 differ only on `\r`, which headers here never hold.
        let escaped = if headers.iter().any(|(n, v)| may_escape(n) || may_escape(v)) {
            Tail::new(message_tail(headers, destination, body, Version::V1_2))
        } else {
            plain.clone()
        };
        Arc::new(Outgoing {
            at: position.map(|p| (p.offset, p.epoch.clone())),
            plain,
            escaped,
        })
    }

    fn from_entry(destination: &str, e: &Entry, epoch: &Arc<str>) -> Arc<Outgoing> {
        let position = Position {
            offset: e.offset,
            epoch: epoch.clone(),
        };
        Outgoing::new(destination, &e.headers, &e.body, Some(&position))
    }

    /// Whether it comes after `last` (another epoch counts as after: the
    /// stream started over).
    fn is_after(&self, last: &Option<At>) -> bool {
        match (&self.at, last) {
            (Some((o, e)), Some((l, le))) => e != le || o > l,
            _ => true,
        }
    }
}

/// One subscription of one session.
struct Subscriber {
    session: u64,
    id: String,
    version: Version,
    handle: SessionHandle,
    /// The position of the last publication it got: none older is sent.
    last: Option<At>,
    /// While its first read of history is under way: live publications,
    /// held.
    held: Option<Vec<Arc<Outgoing>>>,
}

impl Subscriber {
    fn message(&self, out: &Outgoing, message_id: u64) -> Message {
        let tail = if self.version == Version::V1_0 {
            &out.plain
        } else {
            &out.escaped
        };
        Message::Joined {
            head: message_head(&self.id, message_id, self.version).into(),
            tail: tail.clone(),
        }
    }

    /// Sends `out` unless it holds live ones or got it already.
    fn offer(&mut self, out: &Arc<Outgoing>, message_id: u64) {
        if let Some(held) = &mut self.held {
            held.push(out.clone());
        } else if out.is_after(&self.last) {
            self.handle.send(self.message(out, message_id));
            if out.at.is_some() {
                self.last = out.at.clone();
            }
        }
    }
}

/// The subscribers of one key, and where its history stands here.
#[derive(Default)]
struct Key {
    subs: Vec<Subscriber>,
    /// The position of the last publication delivered here.
    top: Option<At>,
    /// While a gap is read from history: live publications, held.
    held: Option<Vec<Arc<Outgoing>>>,
}

/// Publications this node missed of one key: those after `after`, of
/// `epoch`, up to `upto` (unknown after a lost link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub after: u64,
    pub epoch: Arc<str>,
    pub upto: Option<u64>,
}

/// The key of user `user`'s subscriptions to `/user/queue/...`
/// `destination`. NUL cannot occur in a destination or a user name taken
/// from a header line, so keys of users and topics never collide.
pub fn user_key(user: &str, destination: &str) -> String {
    format!("\0{user}\0{destination}")
}

/// A key as a destination: a topic's is itself; a user's is
/// `/user/{user}/...`. One per key: user names hold no `/`, and no topic
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

/// A user's queue as a sender names it, `/user/NAME/...`: the user, and
/// the destination that user's sessions subscribe to (`/user/...`).
pub fn addressed_user(destination: &str) -> Option<(&str, String)> {
    let (user, rest) = destination.strip_prefix("/user/")?.split_once('/')?;
    Some((user, format!("/user/{rest}")))
}

/// The destination a key's subscribers subscribed to: a topic, or
/// `/user/queue/...`.
pub fn subscribed_destination(key: &str) -> &str {
    match key.strip_prefix('\0').and_then(|k| k.split_once('\0')) {
        Some((_, destination)) => destination,
        None => key,
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
    const OWN: [&str; 7] = [
        "subscription",
        "message-id",
        "destination",
        "content-length",
        "ack",
        "x-stream-offset",
        "x-stream-epoch",
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

/// What a subscription's recovery gave it.
pub struct Recovery {
    /// Whether everything after the position it asked for was sent.
    pub recovered: bool,
    /// The recovered publications, to send before anything else.
    pub messages: Vec<Message>,
    /// Where the subscription stands once they are sent: what its RECEIPT
    /// tells, so that a client that keeps it and recovers from it later
    /// misses nothing that came after.
    pub position: Position,
}

/// Subscriptions by key.
#[derive(Default)]
pub struct Topics {
    by_key: Mutex<HashMap<String, Key>>,
    next_message_id: AtomicU64,
}

impl Topics {
    /// Adds a subscription; one `holding` live publications until
    /// [`Topics::recovered`] (a recovery). Returns the position of the
    /// key's last publication delivered here, if it has one: the new
    /// subscription gets every one after it.
    pub fn subscribe(
        &self,
        key: &str,
        session: u64,
        id: &str,
        version: Version,
        handle: &SessionHandle,
        holding: bool,
    ) -> Option<Position> {
        let mut map = self.lock();
        let k = map.entry(key.to_owned()).or_default();
        k.subs.push(Subscriber {
            session,
            id: id.to_owned(),
            version,
            handle: handle.clone(),
            last: None,
            held: holding.then(Vec::new),
        });
        k.top.as_ref().map(|(offset, epoch)| Position {
            offset: *offset,
            epoch: epoch.clone(),
        })
    }

    pub fn unsubscribe(&self, key: &str, session: u64, id: &str) {
        let mut map = self.lock();
        if let Some(k) = map.get_mut(key) {
            k.subs.retain(|s| !(s.session == session && s.id == id));
            if k.subs.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Sends a MESSAGE to every subscriber of `key`, showing `destination`
    /// (what they subscribed to); returns how many got it. Each copy is a
    /// short head of its own (subscription, message id) and a tail written
    /// and SockJS-escaped once for all of them.
    pub fn publish(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> usize {
        self.deliver(key, || Outgoing::new(destination, headers, body, None))
            .0
    }

    /// Appends a publication with `append` and delivers it with the
    /// position that gives, both under the lock, so that subscribers here
    /// get a key's publications in the order of their offsets. `None`
    /// (and nothing sent) when `append` does not append here.
    pub fn publish_appended(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
        append: impl FnOnce() -> Option<Position>,
    ) -> Option<(usize, Position)> {
        let mut map = self.lock();
        let position = append()?;
        let Some(k) = map.get_mut(key) else {
            return Some((0, position));
        };
        let out = Outgoing::new(destination, headers, body, Some(&position));
        let n = self.send(k, &out);
        Some((n, position))
    }

    /// Delivers a publication (from the bus, or made here), which `make`
    /// writes only if `key` has subscribers here; returns how many
    /// subscribe, and the gap before it, if there is one: it is then held,
    /// with what follows, until [`Topics::filled`].
    pub fn deliver(&self, key: &str, make: impl FnOnce() -> Arc<Outgoing>) -> (usize, Option<Gap>) {
        let mut map = self.lock();
        let Some(k) = map.get_mut(key) else {
            return (0, None);
        };
        let out = make();
        let n = k.subs.len();
        if let Some(held) = &mut k.held {
            held.push(out);
            return (n, None);
        }
        if let (Some((top, epoch)), Some((offset, e))) = (&k.top, &out.at) {
            if e == epoch && *offset > top + 1 {
                let gap = Gap {
                    after: *top,
                    epoch: epoch.clone(),
                    upto: Some(offset - 1),
                };
                k.held = Some(vec![out]);
                return (n, Some(gap));
            }
        }
        self.send(k, &out);
        (n, None)
    }

    /// Sends `out` to every subscriber of `k` that has not had it; moves
    /// the key's top.
    fn send(&self, k: &mut Key, out: &Arc<Outgoing>) -> usize {
        if !out.is_after(&k.top) {
            return k.subs.len();
        }
        let first = self
            .next_message_id
            .fetch_add(k.subs.len() as u64, Ordering::Relaxed);
        for (i, s) in k.subs.iter_mut().enumerate() {
            s.offer(out, first + i as u64);
        }
        if out.at.is_some() {
            k.top = out.at.clone();
        }
        k.subs.len()
    }

    /// A gap of `key` was read from history (or could not be): sends what
    /// it missed, then what was held meanwhile, in order.
    pub fn filled(&self, key: &str, gap: &Gap, read: Result<Read, String>) {
        let mut map = self.lock();
        let Some(k) = map.get_mut(key) else {
            return;
        };
        let destination = subscribed_destination(key);
        match read {
            Ok(read) if read.position.epoch == gap.epoch => {
                // Read after `gap.after`: each one was missed here.
                let m = &crate::metrics::get().history;
                m.gaps_filled.inc_by(read.entries.len() as u64);
                for e in &read.entries {
                    let out = Outgoing::from_entry(destination, e, &read.position.epoch);
                    self.send(k, &out);
                }
            }
            Ok(_) => log::info!(
                "stomp: the history of {} started over; what this node missed of it is lost",
                shown_key(key)
            ),
            Err(why) => log::warn!(
                "stomp: could not read what this node missed of {} from history: {why}",
                shown_key(key)
            ),
        }
        for out in k.held.take().unwrap_or_default() {
            self.send(k, &out);
        }
    }

    /// The link to the other nodes is back: every key that has a position
    /// here holds its live publications from now on, until what it missed
    /// is read ([`Topics::filled`]); returns those keys and their gaps.
    pub fn hold_all(&self) -> Vec<(String, Gap)> {
        let mut map = self.lock();
        let mut gaps = Vec::new();
        for (key, k) in map.iter_mut() {
            if let (Some((top, epoch)), None) = (&k.top, &k.held) {
                gaps.push((
                    key.clone(),
                    Gap {
                        after: *top,
                        epoch: epoch.clone(),
                        upto: None,
                    },
                ));
                k.held = Some(Vec::new());
            }
        }
        gaps
    }

    /// The read of history for subscription `id` of `session` to `key`,
    /// which asked to recover from `asked`, is in (or failed): the
    /// publications after `asked`, when history still has all of them
    /// (retention `ttl`), are returned to be sent first, and what the
    /// subscription held goes out after them, none twice. `mark`: a mark
    /// taken before the subscription was made.
    pub fn recovered(
        &self,
        key: &str,
        (session, id): (u64, &str),
        read: Option<&Read>,
        asked: (u64, &str),
        ttl: std::time::Duration,
        mark: &Position,
    ) -> Recovery {
        let mut map = self.lock();
        let mut recovery = Recovery {
            recovered: false,
            messages: Vec::new(),
            position: mark.clone(),
        };
        let Some(k) = map.get_mut(key) else {
            return recovery;
        };
        let real = read.filter(|r| r.created.is_some());
        if let (Some(read), None) = (real, &k.top) {
            // Where live publications of this key are measured from here.
            k.top = Some((read.position.offset, read.position.epoch.clone()));
        }
        let Some(s) = k
            .subs
            .iter_mut()
            .find(|s| s.session == session && s.id == id)
        else {
            return recovery;
        };
        let (offset, epoch) = asked;
        if let Some(read) = read.filter(|r| r.recovers(offset, epoch, ttl)) {
            recovery.recovered = true;
            s.last = real.map(|r| (r.before.unwrap_or(offset), r.position.epoch.clone()));
            let destination = subscribed_destination(key);
            for e in &read.entries {
                let out = Outgoing::from_entry(destination, e, &read.position.epoch);
                let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
                recovery.messages.push(s.message(&out, id));
                s.last = out.at.clone();
            }
        }
        let m = &crate::metrics::get().history;
        if recovery.recovered {
            m.recovered.inc_by(recovery.messages.len() as u64);
        } else {
            m.recoveries_failed.inc();
        }
        let held = s.held.take().unwrap_or_default();
        // The first held one that goes out comes right after the position
        // told; without one, what the subscription got, or the stream's
        // top, or the mark.
        let next = held
            .iter()
            .filter(|out| out.is_after(&s.last))
            .find_map(|out| out.at.clone());
        recovery.position = match (next, &s.last, real) {
            (Some((o, e)), _, _) => Position {
                offset: o - 1,
                epoch: e,
            },
            (None, Some((o, e)), _) => Position {
                offset: *o,
                epoch: e.clone(),
            },
            (None, None, Some(read)) => read.position.clone(),
            (None, None, None) => mark.clone(),
        };
        for out in held {
            let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
            s.offer(&out, id);
        }
        recovery
    }

    /// How many subscribe to `key`.
    pub fn subscribers(&self, key: &str) -> usize {
        self.lock().get(key).map_or(0, |k| k.subs.len())
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
            .map(|(key, k)| (shown_key(key), k.subs.len()))
            .filter(|(d, _)| d.starts_with(prefix))
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Key>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }
}
