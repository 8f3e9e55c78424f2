//! Publication history per destination, so that a client that was away can
//! recover what it missed: each publication gets the next offset of its
//! destination's stream, and each stream an epoch that changes whenever its
//! history is lost, so a client holding offset N of epoch E knows whether
//! "everything after N" can still be told.
//!
//! [`History`] is the interface services read through; [`MemoryHistory`]
//! keeps streams in this process (a single node), bounded by each stream's
//! [`Retention`]; [`super::redis_history::RedisHistory`] keeps them in
//! Redis for a cluster.

use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of a destination's history is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Publications kept.
    pub size: usize,
    /// How long a stream lives after its last publication.
    pub ttl: Duration,
}

/// A publication as history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Where a stream stands: the last offset given (0 before any) and its
/// epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: Arc<str>,
}

/// What a read of a stream found: where it stands, and the publications
/// after the offset asked for that it still keeps (at most the limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub position: Position,
    pub entries: Vec<Entry>,
}

impl Read {
    /// Whether `entries` are everything that followed `offset` of `epoch`:
    /// the same epoch, an offset the stream gave, and no publication
    /// missing between it and the top (none dropped by retention, none
    /// left out by the read's limit).
    pub fn is_everything_after(&self, offset: u64, epoch: &str) -> bool {
        let top = self.position.offset;
        if *self.position.epoch != *epoch || offset > top {
            return false;
        }
        if offset == top {
            return true;
        }
        match (self.entries.first(), self.entries.last()) {
            (Some(first), Some(last)) => {
                first.offset == offset + 1
                    && last.offset == top
                    && self.entries.len() as u64 == top - offset
            }
            _ => false,
        }
    }
}

/// Where publications are kept, read back. [`MemoryHistory`] holds them in
/// this process and appends in it too ([`History::append_here`]);
/// [`super::redis_history::RedisHistory`] holds them in Redis, where a
/// publication is appended by the same script that publishes it to the
/// other nodes ([`super::Bus::publish_asking`]), so that none is live
/// without being kept.
pub trait History: Send + Sync {
    /// `stream`'s position, and its publications after `after`, at most
    /// `limit`, oldest first. A stream that does not exist is made, empty,
    /// in a new epoch (kept for `retention.ttl`), so that the position a
    /// client is told holds from then on.
    fn read(
        &self,
        stream: &str,
        retention: Retention,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Read, String>>;
    /// Appends a publication in this process, when this store is where
    /// appends happen; `None` when they happen with the publish.
    fn append_here(
        &self,
        stream: &str,
        retention: Retention,
        headers: &[(String, String)],
        body: &str,
    ) -> Option<Position>;
}

/// One destination's stream.
struct Stream {
    epoch: Arc<str>,
    top: u64,
    entries: VecDeque<Entry>,
    /// The last publication, or when the stream was made.
    touched: Instant,
    /// Its retention as last given: what a sweep goes by.
    ttl: Duration,
    /// Bytes of the entries' headers and bodies.
    bytes: usize,
}

impl Stream {
    fn new(now: Instant, ttl: Duration) -> Stream {
        Stream {
            epoch: crate::protocol::ids::random_hex::<6>().into(),
            top: 0,
            entries: VecDeque::new(),
            touched: now,
            ttl,
            bytes: 0,
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.top,
            epoch: self.epoch.clone(),
        }
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.touched) > self.ttl
    }
}

fn entry_bytes(e: &Entry) -> usize {
    e.body.len()
        + e.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// How often appends and reads sweep expired streams away, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Streams in this process. Lost at a restart: every stream then starts
/// again in a new epoch. Memory: each stream's publications (at most its
/// `size`), their headers and bodies counted by [`MemoryHistory::usage`],
/// plus about 200 bytes per stream and 100 per publication of bookkeeping;
/// a stream is dropped once its `ttl` passed without a publication.
pub struct MemoryHistory {
    inner: Mutex<Streams>,
}

struct Streams {
    by_key: HashMap<String, Stream>,
    swept: Instant,
    /// The streams' bytes, summed.
    bytes: usize,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        MemoryHistory {
            inner: Mutex::new(Streams {
                by_key: HashMap::new(),
                swept: Instant::now(),
                bytes: 0,
            }),
        }
    }
}

impl Streams {
    /// `key`'s stream, made anew when there is none or it expired; sweeps
    /// the others now and then.
    fn stream(&mut self, key: &str, retention: Retention, now: Instant) -> &mut Stream {
        if now.saturating_duration_since(self.swept) >= SWEEP_EVERY {
            self.swept = now;
            let mut freed = 0;
            self.by_key.retain(|_, s| {
                let keep = !s.expired(now);
                if !keep {
                    freed += s.bytes;
                }
                keep
            });
            self.bytes -= freed;
        }
        let stream = self
            .by_key
            .entry(key.to_owned())
            .or_insert_with(|| Stream::new(now, retention.ttl));
        if stream.expired(now) {
            self.bytes -= stream.bytes;
            *stream = Stream::new(now, retention.ttl);
        }
        stream.ttl = retention.ttl;
        stream
    }
}

impl Streams {
    /// Shows what the store holds in `/metrics`.
    fn report(&self) {
        let m = &crate::metrics::get().history;
        m.streams.set(self.by_key.len() as i64);
        m.bytes.set(self.bytes as i64);
    }
}

impl MemoryHistory {
    /// Appends a publication to `key`'s stream; its position now.
    pub fn append(
        &self,
        key: &str,
        retention: Retention,
        headers: &[(String, String)],
        body: &str,
        now: Instant,
    ) -> Position {
        let mut inner = self.lock();
        let stream = inner.stream(key, retention, now);
        stream.top += 1;
        stream.touched = now;
        let entry = Entry {
            offset: stream.top,
            headers: headers.to_vec(),
            body: body.to_owned(),
        };
        let before = stream.bytes;
        stream.bytes += entry_bytes(&entry);
        stream.entries.push_back(entry);
        while stream.entries.len() > retention.size {
            if let Some(old) = stream.entries.pop_front() {
                stream.bytes -= entry_bytes(&old);
            }
        }
        let (after, position) = (stream.bytes, stream.position());
        inner.bytes = inner.bytes + after - before;
        inner.report();
        position
    }

    /// [`History::read`] at `now`.
    pub fn read_at(
        &self,
        key: &str,
        retention: Retention,
        after: u64,
        limit: usize,
        now: Instant,
    ) -> Read {
        let mut inner = self.lock();
        let stream = inner.stream(key, retention, now);
        // The first offset still kept; the one after the top when none is.
        let first = stream.entries.front().map_or(stream.top + 1, |e| e.offset);
        let skip = after
            .saturating_sub(first - 1)
            .min(stream.entries.len() as u64) as usize;
        Read {
            position: stream.position(),
            entries: stream
                .entries
                .iter()
                .skip(skip)
                .take(limit)
                .cloned()
                .collect(),
        }
    }

    /// Streams held, and bytes of their publications' headers and bodies.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.by_key.len(), inner.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl History for MemoryHistory {
    fn read(
        &self,
        stream: &str,
        retention: Retention,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Read, String>> {
        let read = self.read_at(stream, retention, after, limit, Instant::now());
        Box::pin(std::future::ready(Ok(read)))
    }

    fn append_here(
        &self,
        stream: &str,
        retention: Retention,
        headers: &[(String, String)],
        body: &str,
    ) -> Option<Position> {
        Some(self.append(stream, retention, headers, body, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_3: Retention = Retention {
        size: 3,
        ttl: Duration::from_secs(60),
    };

    fn bodies(r: &Read) -> Vec<&str> {
        r.entries.iter().map(|e| e.body.as_str()).collect()
    }

    fn position(h: &MemoryHistory, key: &str, t: Instant) -> Position {
        h.read_at(key, KEEP_3, 0, 0, t).position
    }

    #[test]
    fn offsets_count_from_one_per_destination_in_one_epoch() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let start = position(&h, "/topic/a", t);
        assert_eq!(start.offset, 0);
        let one = h.append("/topic/a", KEEP_3, &[], "1", t);
        let two = h.append("/topic/a", KEEP_3, &[], "2", t);
        let other = h.append("/topic/b", KEEP_3, &[], "x", t);
        assert_eq!((one.offset, two.offset, other.offset), (1, 2, 1));
        assert_eq!(one.epoch, start.epoch);
        assert_eq!(two.epoch, start.epoch);
        assert_ne!(other.epoch, start.epoch, "epochs are per stream");
    }

    #[test]
    fn what_followed_an_offset_is_read_in_order() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let e = position(&h, "/t", t).epoch;
        for b in ["1", "2", "3"] {
            h.append("/t", KEEP_3, &[("x".into(), b.into())], b, t);
        }
        let r = h.read_at("/t", KEEP_3, 1, 100, t);
        assert_eq!(r.position.offset, 3);
        assert_eq!(bodies(&r), ["2", "3"]);
        assert!(r.is_everything_after(1, &e));
        let all = h.read_at("/t", KEEP_3, 0, 100, t);
        assert_eq!(bodies(&all), ["1", "2", "3"]);
        assert!(all.is_everything_after(0, &e));
        let none = h.read_at("/t", KEEP_3, 3, 100, t);
        assert_eq!(bodies(&none), [] as [&str; 0]);
        assert!(none.is_everything_after(3, &e));
        // An offset the stream never gave, another epoch, or over the limit.
        assert!(!h
            .read_at("/t", KEEP_3, 4, 100, t)
            .is_everything_after(4, &e));
        assert!(!r.is_everything_after(1, "other"));
        let limited = h.read_at("/t", KEEP_3, 0, 2, t);
        assert_eq!(bodies(&limited), ["1", "2"]);
        assert!(!limited.is_everything_after(0, &e));
        assert!(h.read_at("/t", KEEP_3, 1, 2, t).is_everything_after(1, &e));
    }

    #[test]
    fn retention_by_size_keeps_the_last_and_refuses_older_positions() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let e = position(&h, "/t", t).epoch;
        for i in 1..=5 {
            h.append("/t", KEEP_3, &[], &i.to_string(), t);
        }
        // 3, 4 and 5 are kept: from offset 2 on everything is there.
        let from_2 = h.read_at("/t", KEEP_3, 2, 100, t);
        assert_eq!(bodies(&from_2), ["3", "4", "5"]);
        assert!(from_2.is_everything_after(2, &e));
        let from_1 = h.read_at("/t", KEEP_3, 1, 100, t);
        assert_eq!(bodies(&from_1), ["3", "4", "5"]);
        assert!(!from_1.is_everything_after(1, &e), "2 is no longer kept");
        assert_eq!(h.usage(), (1, 3));
    }

    #[test]
    fn a_stream_past_its_ttl_starts_again_in_a_new_epoch() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let first = h.append("/t", KEEP_3, &[], "1", t);
        let later = t + KEEP_3.ttl + Duration::from_secs(1);
        let r = h.read_at("/t", KEEP_3, 0, 100, later);
        assert!(!r.is_everything_after(0, &first.epoch));
        assert_ne!(r.position.epoch, first.epoch);
        assert_eq!(r.position.offset, 0);
        assert_eq!(h.append("/t", KEEP_3, &[], "2", later).offset, 1);
        // Within the ttl, each publication keeps the stream alive.
        let soon = later + KEEP_3.ttl - Duration::from_secs(1);
        assert_eq!(
            h.append("/t", KEEP_3, &[], "3", soon).epoch,
            r.position.epoch
        );
    }

    #[test]
    fn expired_streams_are_swept_with_their_memory() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        h.append("/old", KEEP_3, &[], "1234", t);
        let later = t + Duration::from_secs(50);
        h.append("/new", KEEP_3, &[("k".into(), "v".into())], "12", later);
        assert_eq!(h.usage(), (2, 8));
        // Any use past /old's ttl drops it.
        position(&h, "/new", t + Duration::from_secs(70));
        assert_eq!(h.usage(), (1, 4));
    }

    #[test]
    fn a_new_store_is_a_new_epoch() {
        let t = Instant::now();
        let a = MemoryHistory::default().append("/t", KEEP_3, &[], "1", t);
        let b = MemoryHistory::default().append("/t", KEEP_3, &[], "1", t);
        assert_ne!(a.epoch, b.epoch, "a restart loses the history");
    }
}
