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
use crate::cluster::history::{Entry, Mark, Position, Read, Since};
use crate::protocol::message::{Message, Tail};
use crate::service::api::SessionHandle;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where a subscription's MESSAGEs go: its session (tests record them).
pub trait Sink: Clone {
    fn send(&self, message: Message);
}

impl Sink for SessionHandle {
    fn send(&self, message: Message) {
        SessionHandle::send(self, message)
    }
}

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
struct Subscriber<H> {
    session: u64,
    id: String,
    version: Version,
    handle: H,
    /// The position of the last publication it got: none older is sent.
    last: Option<At>,
    /// While its first read of history is under way: live publications,
    /// held.
    held: Option<Vec<Arc<Outgoing>>>,
}

impl<H: Sink> Subscriber<H> {
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
struct Key<H> {
    subs: Vec<Subscriber<H>>,
    /// The position of the last publication delivered here.
    top: Option<At>,
    /// The mark of the first subscription, from which what the key missed
    /// while the link was down is read; looked at only while there is no
    /// `top` (which, once set, is never unset).
    start: Option<Position>,
    /// While a gap is read from history: live publications, held.
    held: Option<Vec<Arc<Outgoing>>>,
}

impl<H> Default for Key<H> {
    fn default() -> Self {
        Key {
            subs: Vec::new(),
            top: None,
            start: None,
            held: None,
        }
    }
}

/// Publications this node missed of one key: those from `since` on, of
/// `epoch` (a stream's, or a mark's), up to `upto` (unknown after a lost
/// link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub since: Since,
    pub epoch: Arc<str>,
    pub upto: Option<u64>,
    /// The position a live publication came with, when its epoch is not
    /// `epoch`: one that took over from it (a failover) goes on from
    /// `since`; a stream that started over is read from its start up to
    /// that publication, nothing told (the old one's publications all came
    /// here).
    pub live: Option<At>,
}

impl Gap {
    /// Publications it holds at most, when known.
    pub fn missing(&self) -> Option<u64> {
        match self.since {
            Since::Offset(after) => self.upto.map(|u| u.saturating_sub(after)),
            Since::Mark(_) => None,
        }
    }
}

/// What to do after a gap's read: nothing more, or read the next part (a
/// stream that started over, from its first publication).
#[must_use]
pub enum Filled {
    Done,
    Then(Gap),
}

/// The key of user `user`'s subscriptions to `/user/queue/...`
/// `destination`. NUL cannot occur in a destination or a user name taken
/// from a header line, so keys of users and topics never collide.
pub fn user_key(user: &str, destination: &str) -> String {
    format!("\0{user}\0{destination}")
}

pub use crate::cluster::event::shown_key;

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

/// What an append here did.
pub enum Appended {
    /// Kept at this position, to be sent.
    New(Position),
    /// An earlier publication with its idempotency key is at this
    /// position: nothing was kept, nothing is sent.
    Earlier(Position),
}

/// Whether `read` holds every publication `gap` misses.
fn gap_filled(gap: &Gap, read: &Read, ttl: std::time::Duration) -> bool {
    match gap.since {
        Since::Mark(_) => read.recovers(0, &gap.epoch, ttl),
        Since::Offset(after) => {
            if read.created.is_none() || !read.continues(after, &gap.epoch) {
                return false;
            }
            let top = read.position.offset;
            let wanted = gap.upto.map_or(top, |u| u.min(top));
            if wanted <= after {
                return true;
            }
            match (read.entries.first(), read.entries.last()) {
                (Some(first), Some(last)) => first.offset == after + 1 && last.offset >= wanted,
                _ => false,
            }
        }
    }
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
pub struct Topics<H = SessionHandle> {
    by_key: Mutex<HashMap<String, Key<H>>>,
    next_message_id: AtomicU64,
    /// Told, under the lock (so in order), when a key gets its first
    /// subscriber here (`true`) or loses its last.
    follow: Option<Follow>,
}

/// What a registry tells when a key (or user) is held here from now on
/// (`true`), or no longer.
pub type Follow = Box<dyn Fn(&str, bool) + Send + Sync>;

impl<H> Default for Topics<H> {
    fn default() -> Self {
        Topics {
            by_key: Mutex::default(),
            next_message_id: AtomicU64::default(),
            follow: None,
        }
    }
}

impl<H> Topics<H> {
    /// Topics that tell `follow` of each key's first and last subscriber.
    pub fn following(follow: Follow) -> Self {
        Topics {
            follow: Some(follow),
            ..Topics::default()
        }
    }
}

impl<H: Sink> Topics<H> {
    /// Adds a subscription; one `holding` live publications until
    /// [`Topics::recovered`] (a recovery). Returns the position of the
    /// key's last publication delivered here, if it has one: the new
    /// subscription gets every one after it. `mark` (a destination with
    /// history): taken before, from which the key reads what it misses
    /// while the link is down, until it has a position.
    pub fn subscribe(
        &self,
        key: &str,
        (session, id): (u64, &str),
        version: Version,
        handle: &H,
        holding: bool,
        mark: Option<&Position>,
    ) -> Option<Position> {
        let mut map = self.lock();
        let k = match map.entry(key.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if let Some(follow) = &self.follow {
                    follow(key, true);
                }
                e.insert(Key::default())
            }
        };
        if k.top.is_none() && k.start.is_none() {
            k.start = mark.cloned();
        }
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
                if let Some(follow) = &self.follow {
                    follow(key, false);
                }
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
    /// get a key's publications in the order of their offsets (and an
    /// idempotency key is claimed once). `None` (and nothing sent) when
    /// `append` does not append here; nothing is sent either for an
    /// [`Appended::Earlier`].
    pub fn publish_appended(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
        append: impl FnOnce() -> Option<Appended>,
    ) -> Option<(usize, Appended)> {
        let mut map = self.lock();
        let position = match append()? {
            Appended::New(p) => p,
            earlier => return Some((0, earlier)),
        };
        let n = match map.get_mut(key) {
            Some(k) => self.send(
                k,
                &Outgoing::new(destination, headers, body, Some(&position)),
            ),
            None => 0,
        };
        Some((n, Appended::New(position)))
    }

    /// Delivers a publication (from the bus, or made here), which `make`
    /// writes only if `key` has subscribers here; returns how many
    /// subscribe, and the gap before it, if there is one: it is then held,
    /// with what follows, until [`Topics::filled`]. A gap is offsets
    /// missing after the last one here, or the first ones of a stream that
    /// started over (another epoch, not from offset 1).
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
            let gap = if e == epoch && *offset > top + 1 {
                Some(Gap {
                    since: Since::Offset(*top),
                    epoch: epoch.clone(),
                    upto: Some(offset - 1),
                    live: None,
                })
            } else if e != epoch && *offset > 1 {
                // Another epoch past its start: one that took over from
                // this key's (read on from its top), or a stream that
                // started over (read from its start).
                Some(Gap {
                    since: Since::Offset(*top),
                    epoch: epoch.clone(),
                    upto: None,
                    live: Some((*offset, e.clone())),
                })
            } else {
                None
            };
            if let Some(gap) = gap {
                k.held = Some(vec![out]);
                return (n, Some(gap));
            }
        }
        self.send(k, &out);
        (n, None)
    }

    /// Sends `out` to every subscriber of `k` that has not had it; moves
    /// the key's top. One delivered here already may still be missing in
    /// a subscription whose own read of history is under way: it gets it,
    /// held, to sort out when its read is in.
    fn send(&self, k: &mut Key<H>, out: &Arc<Outgoing>) -> usize {
        if !out.is_after(&k.top) {
            for s in k.subs.iter_mut().filter(|s| s.held.is_some()) {
                s.offer(out, 0);
            }
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
    /// it missed, then what was held meanwhile, in order. What cannot be
    /// sent (trimmed, gone, unreadable, or a stream that started over,
    /// whose earlier publications may have been missed) is told to each
    /// subscription ([`Topics::tell_loss`]); a stream that started over is
    /// then read from its first publication (the `Then` gap), before what
    /// was held. `ttl`: the destination's history's; `mark`: a mark now,
    /// for a loss told when history could not be read.
    pub fn filled(
        &self,
        key: &str,
        gap: &Gap,
        read: Result<Read, String>,
        ttl: std::time::Duration,
        mark: impl FnOnce() -> Position,
    ) -> Filled {
        let mut map = self.lock();
        let Some(k) = map.get_mut(key) else {
            return Filled::Done;
        };
        let destination = subscribed_destination(key);
        let shown = || shown_key(key);
        let mut then = Filled::Done;
        // Publications delivered here past the last one of this key's epoch
        // that the master holds now: lost in a failover.
        let lost_after = match (&read, gap.since) {
            (Ok(read), Since::Offset(after)) => read
                .link_end(&gap.epoch)
                .filter(|end| *end < after && *read.position.epoch != *gap.epoch),
            _ => None,
        };
        match (read, lost_after, &gap.live) {
            (Ok(read), Some(end), _) => {
                log::warn!(
                    "stomp: {} lost publications this node delivered (past offset {end} of its epoch {}) in a Redis failover; its subscribers are told",
                    shown(),
                    gap.epoch
                );
                let from = Position {
                    offset: end,
                    epoch: read.epoch_of(end + 1),
                };
                self.tell_loss(
                    k,
                    destination,
                    &from,
                    "publications were lost in a Redis failover",
                );
                for e in read.entries.iter().filter(|e| e.offset > end) {
                    let out = Outgoing::from_entry(destination, e, &read.epoch_of(e.offset));
                    self.send(k, &out);
                }
            }
            (Ok(read), _, _) if gap_filled(gap, &read, ttl) => {
                crate::metrics::get()
                    .history
                    .gaps_filled
                    .inc_by(read.entries.len() as u64);
                for e in &read.entries {
                    let out = Outgoing::from_entry(destination, e, &read.epoch_of(e.offset));
                    self.send(k, &out);
                }
                if read.created.is_some() && k.top.is_none() {
                    k.top = Some((read.position.offset, read.position.epoch.clone()));
                }
            }
            (Ok(read), _, Some((offset, epoch))) if read.created.is_some() => {
                // Seen live, a stream that started over: from its start.
                then = Filled::Then(Gap {
                    since: Since::Offset(0),
                    epoch: epoch.clone(),
                    upto: Some(offset.saturating_sub(1)),
                    live: None,
                });
            }
            (Ok(read), _, _) if read.created.is_some() && read.position.epoch != gap.epoch => {
                log::info!(
                    "stomp: the history of {} started over; its subscribers are told what this node may have missed",
                    shown()
                );
                let new = Position {
                    offset: 0,
                    epoch: read.position.epoch.clone(),
                };
                self.tell_loss(
                    k,
                    destination,
                    &new,
                    "the destination's history started over",
                );
                // Once per gap: a stream that starts over again meanwhile
                // is told, not chased.
                if gap.since != Since::Offset(0) {
                    then = Filled::Then(Gap {
                        since: Since::Offset(0),
                        epoch: new.epoch,
                        upto: None,
                        live: None,
                    });
                }
            }
            (Ok(read), _, _) => {
                log::info!(
                    "stomp: what this node missed of {} is no longer all in history; its subscribers are told",
                    shown()
                );
                let why = match read.created {
                    Some(_) => "missed publications are no longer in history",
                    None => "the destination's history is gone",
                };
                self.tell_loss(k, destination, &read.position, why);
            }
            (Err(why), _, _) => {
                log::warn!(
                    "stomp: could not read what this node missed of {} from history: {why}; its subscribers are told",
                    shown()
                );
                let at = mark();
                self.tell_loss(k, destination, &at, "history could not be read");
            }
        }
        if let Filled::Done = then {
            for out in k.held.take().unwrap_or_default() {
                self.send(k, &out);
            }
        }
        then
    }

    /// Tells every subscription of `k` that does not read history itself
    /// now that it may have missed publications: a MESSAGE with
    /// `x-recovered: false`, `x-recover-error: why`, no body, and
    /// `position`, from which it goes on (a stream's moves the key's top,
    /// so nothing at or before it follows).
    fn tell_loss(&self, k: &mut Key<H>, destination: &str, position: &Position, why: &str) {
        let headers = [
            ("x-recovered".to_owned(), "false".to_owned()),
            ("x-recover-error".to_owned(), why.to_owned()),
        ];
        let out = Outgoing::new(destination, &headers, "", Some(position));
        let real = (!position.is_mark()).then(|| (position.offset, position.epoch.clone()));
        let mut told = 0;
        for s in k.subs.iter_mut().filter(|s| s.held.is_none()) {
            let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
            s.handle.send(s.message(&out, id));
            s.last = real.clone();
            told += 1;
        }
        if real.is_some() {
            k.top = real;
        }
        crate::metrics::get().history.losses_told.inc_by(told);
    }

    /// The link to the other nodes is back: every key holds its live
    /// publications from now on, until what it missed is read
    /// ([`Topics::filled`]): from its last position here, or, if none yet,
    /// from the mark of its first subscription. Returns those keys and
    /// their gaps.
    pub fn hold_all(&self) -> Vec<(String, Gap)> {
        let mut map = self.lock();
        map.iter_mut()
            .filter_map(|(key, k)| Some((key.clone(), Self::hold_key(k)?)))
            .collect()
    }

    /// As [`Topics::hold_all`] for `key` alone: this node hears its
    /// publications from now on (again), and may have missed some.
    pub fn hold(&self, key: &str) -> Option<Gap> {
        Self::hold_key(self.lock().get_mut(key)?)
    }

    fn hold_key(k: &mut Key<H>) -> Option<Gap> {
        if k.held.is_some() {
            return None;
        }
        let gap = match (&k.top, &k.start) {
            (Some((top, epoch)), _) => Gap {
                since: Since::Offset(*top),
                epoch: epoch.clone(),
                upto: None,
                live: None,
            },
            (None, Some(mark)) => {
                let m = Mark::parse(&mark.epoch)?;
                Gap {
                    since: Since::Mark(m.at),
                    epoch: mark.epoch.clone(),
                    upto: None,
                    live: None,
                }
            }
            (None, None) => return None,
        };
        k.held = Some(Vec::new());
        Some(gap)
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
                let out = Outgoing::from_entry(destination, e, &read.epoch_of(e.offset));
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Key<H>>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What a subscription got: its MESSAGEs' texts, in order.
    #[derive(Clone, Default)]
    struct Got(Arc<Mutex<Vec<String>>>);

    impl Sink for Got {
        fn send(&self, message: Message) {
            self.0.lock().unwrap().push(message.text().into_owned());
        }
    }

    /// A MESSAGE's header `name`, or `""`.
    fn header(m: &str, name: &str) -> String {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or("")
            .to_owned()
    }

    impl Got {
        /// Each MESSAGE's `x-stream-epoch`.
        fn epochs(&self) -> Vec<String> {
            let got = self.0.lock().unwrap();
            got.iter().map(|m| header(m, "x-stream-epoch")).collect()
        }

        /// Each MESSAGE as `body@offset` (a loss told as `LOSS@offset`).
        fn seen(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|m| {
                    let body = m.split_once("\n\n").unwrap().1.trim_end_matches('\0');
                    let shown = match header(m, "x-recovered") == "false" {
                        true => "LOSS",
                        false => body,
                    };
                    format!("{shown}@{}", header(m, "x-stream-offset"))
                })
                .collect()
        }
    }

    const TTL: Duration = Duration::from_secs(60);
    const KEY: &str = "/topic/t";

    fn at(offset: u64, epoch: &str) -> Position {
        Position {
            offset,
            epoch: epoch.into(),
        }
    }

    fn publication(offset: u64, epoch: &str) -> Arc<Outgoing> {
        Outgoing::new(KEY, &[], &format!("p{offset}"), Some(&at(offset, epoch)))
    }

    fn entry(offset: u64) -> Entry {
        Entry {
            offset,
            at: offset,
            headers: Vec::new(),
            body: format!("p{offset}"),
        }
    }

    /// A read of stream `epoch` at `top` holding `kept` offsets.
    fn read(top: u64, epoch: &str, kept: std::ops::RangeInclusive<u64>) -> Read {
        Read {
            position: at(top, epoch),
            entries: kept.map(entry).collect(),
            created: Some(0),
            boot: "b".into(),
            now: 100,
            evicted: 0,
            before: None,
            links: Vec::new(),
        }
    }

    fn mark() -> Position {
        Mark {
            boot: "b".into(),
            at: 1,
        }
        .position()
    }

    fn subscribe(t: &Topics<Got>, session: u64, holding: bool) -> Got {
        let got = Got::default();
        let m = mark();
        t.subscribe(KEY, (session, "s"), Version::V1_2, &got, holding, Some(&m));
        got
    }

    /// Issue 29: a subscription whose read of history is under way must
    /// not lose a publication that another subscription's read already
    /// counted delivered here: B's read (top 7) came in first, 6 and 7 came
    /// live after, and A's read (top 5) last.
    #[test]
    fn a_read_that_finishes_first_takes_nothing_from_a_slower_one() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, true);
        let b = subscribe(&t, 2, true);
        let rb = read(7, "E", 1..=7);
        let r = t.recovered(KEY, (2, "s"), Some(&rb), (7, "E"), TTL, &mark());
        assert!(r.recovered);
        for o in [6, 7] {
            assert_eq!(t.deliver(KEY, || publication(o, "E")).1, None);
        }
        let ra = read(5, "E", 1..=5);
        let r = t.recovered(KEY, (1, "s"), Some(&ra), (5, "E"), TTL, &mark());
        assert!(r.recovered);
        assert_eq!(
            r.position,
            at(5, "E"),
            "the RECEIPT is before what was held"
        );
        t.deliver(KEY, || publication(8, "E"));
        assert_eq!(a.seen(), ["p6@6", "p7@7", "p8@8"]);
        assert_eq!(b.seen(), ["p8@8"]);
    }

    /// Issue 29: a key with no position yet (its subscriptions were told a
    /// mark) still reads what it missed while the link was down, from the
    /// first subscription's mark.
    #[test]
    fn a_key_without_a_position_reads_its_outage_from_its_mark() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, false);
        let gaps = t.hold_all();
        assert_eq!(gaps.len(), 1, "the key without a position is held too");
        let (key, gap) = &gaps[0];
        assert_eq!(gap.since, Since::Mark(1));
        t.deliver(KEY, || publication(3, "E"));
        let mut r = read(2, "E", 1..=2);
        r.before = Some(0);
        assert!(matches!(t.filled(key, gap, Ok(r), TTL, mark), Filled::Done));
        assert_eq!(a.seen(), ["p1@1", "p2@2", "p3@3"]);
    }

    /// Issue 29, the 2,888 silent losses: a node that relinks after
    /// Redis restarted empty finds another epoch. Its subscriptions are
    /// told they may have missed the old one's last publications, then get
    /// the new one from offset 1, then what was held.
    #[test]
    fn a_relink_into_a_new_epoch_tells_the_loss_then_reads_it_from_the_start() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, false);
        t.deliver(KEY, || publication(3, "OLD"));
        let (key, gap) = t.hold_all().pop().unwrap();
        assert_eq!(gap.since, Since::Offset(3));
        t.deliver(KEY, || publication(81, "NEW"));
        let next = match t.filled(&key, &gap, Ok(read(80, "NEW", 1..=80)), TTL, mark) {
            Filled::Then(next) => next,
            Filled::Done => panic!("the new epoch is read from its start"),
        };
        assert_eq!((next.since, &*next.epoch), (Since::Offset(0), "NEW"));
        assert!(matches!(
            t.filled(&key, &next, Ok(read(80, "NEW", 1..=80)), TTL, mark),
            Filled::Done
        ));
        let seen = a.seen();
        assert_eq!(seen[..2], ["p3@3", "LOSS@0"]);
        let rest: Vec<String> = (1..=81).map(|o| format!("p{o}@{o}")).collect();
        assert_eq!(seen[2..], rest[..]);
    }

    /// A live publication of another epoch that is not its first, of a
    /// stream that started over: the first ones are read before it.
    #[test]
    fn a_new_epoch_seen_live_past_its_start_is_read_from_its_start() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, false);
        t.deliver(KEY, || publication(3, "OLD"));
        let gap = t.deliver(KEY, || publication(3, "NEW")).1.expect("a gap");
        assert_eq!((gap.since, &*gap.epoch), (Since::Offset(3), "OLD"));
        let mut after_3 = read(3, "NEW", 1..=2);
        after_3.entries.clear();
        let next = match t.filled(KEY, &gap, Ok(after_3), TTL, mark) {
            Filled::Then(next) => next,
            Filled::Done => panic!("a stream that started over is read from its start"),
        };
        assert_eq!((next.since, &*next.epoch), (Since::Offset(0), "NEW"));
        let _ = t.filled(KEY, &next, Ok(read(3, "NEW", 1..=2)), TTL, mark);
        assert_eq!(a.seen(), ["p3@3", "p1@1", "p2@2", "p3@3"]);
    }

    /// A read of a stream whose epoch `epoch` took over from `old` at
    /// offset `end` (a failover).
    fn linked(
        top: u64,
        epoch: &str,
        old: &str,
        end: u64,
        kept: std::ops::RangeInclusive<u64>,
    ) -> Read {
        let mut r = read(top, epoch, kept);
        r.links = vec![(old.into(), end)];
        r
    }

    /// Issue 31: after a failover the stream goes on in another epoch from
    /// the last offset the new master holds. A node that had delivered no
    /// further goes on with nothing told, each publication in its epoch.
    #[test]
    fn an_epoch_that_took_over_where_this_node_stood_goes_on_untold() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, false);
        t.deliver(KEY, || publication(5, "E1"));
        let gap = t.deliver(KEY, || publication(7, "E2")).1.expect("a gap");
        let r = linked(7, "E2", "E1", 5, 6..=7);
        assert!(matches!(
            t.filled(KEY, &gap, Ok(r), TTL, mark),
            Filled::Done
        ));
        t.deliver(KEY, || publication(8, "E2"));
        assert_eq!(a.seen(), ["p5@5", "p6@6", "p7@7", "p8@8"]);
        assert_eq!(a.epochs(), ["E1", "E2", "E2", "E2"]);
    }

    /// Issue 31: a node that delivered offsets the new master never got
    /// (6 and 7 of E1; it holds E1 up to 5) tells its subscriptions, then
    /// sends the new epoch's publications from 6 on: none is skipped
    /// though its offset was seen before.
    #[test]
    fn offsets_lost_in_a_failover_are_told_and_none_after_is_skipped() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, false);
        for o in 5..=7 {
            t.deliver(KEY, || publication(o, "E1"));
        }
        let gap = t.deliver(KEY, || publication(8, "E2")).1.expect("a gap");
        // The read starts where E2 took over: the script's clamp.
        let r = linked(8, "E2", "E1", 5, 6..=8);
        assert!(matches!(
            t.filled(KEY, &gap, Ok(r), TTL, mark),
            Filled::Done
        ));
        t.deliver(KEY, || publication(9, "E2"));
        assert_eq!(
            a.seen(),
            ["p5@5", "p6@6", "p7@7", "LOSS@5", "p6@6", "p7@7", "p8@8", "p9@9"]
        );
    }

    /// Issue 31: a client that comes back with an offset of the old epoch
    /// recovers across the take-over when it is at or before it, and is
    /// told otherwise.
    #[test]
    fn a_recovery_from_the_old_epoch_goes_on_up_to_the_take_over() {
        let t = Topics::<Got>::default();
        let _a = subscribe(&t, 1, true);
        let _b = subscribe(&t, 2, true);
        let r = linked(8, "E2", "E1", 5, 5..=8);
        let ok = t.recovered(KEY, (1, "s"), Some(&r), (4, "E1"), TTL, &mark());
        assert!(ok.recovered);
        assert_eq!(ok.messages.len(), 4);
        assert_eq!(ok.position, at(8, "E2"));
        let r = linked(8, "E2", "E1", 5, 6..=8);
        let lost = t.recovered(KEY, (2, "s"), Some(&r), (7, "E1"), TTL, &mark());
        assert!(!lost.recovered);
    }

    /// What a gap's read cannot give is told, once per subscription, with
    /// the position it goes on from; nothing at or before it follows.
    #[test]
    fn a_gap_that_history_cannot_fill_is_told() {
        let t = Topics::<Got>::default();
        let a = subscribe(&t, 1, false);
        t.deliver(KEY, || publication(3, "E"));
        let gap = t.deliver(KEY, || publication(9, "E")).1.expect("a gap");
        // 4 and 5 were trimmed away.
        let _ = t.filled(KEY, &gap, Ok(read(9, "E", 6..=9)), TTL, mark);
        t.deliver(KEY, || publication(10, "E"));
        assert_eq!(a.seen(), ["p3@3", "LOSS@9", "p10@10"]);
        // Unreadable: told, with a mark to go on from.
        let (key, gap) = t.hold_all().pop().unwrap();
        let _ = t.filled(&key, &gap, Err("down".into()), TTL, mark);
        assert_eq!(a.seen().last().unwrap(), "LOSS@0");
    }
}
