//! Publication history per destination, so that a client that was away can
//! recover what it missed: each publication gets the next offset of its
//! destination's stream, and each stream an epoch that changes whenever its
//! history is lost, so a client holding offset N of epoch E knows whether
//! "everything after N" can still be told.
//!
//! [`History`] is the interface; [`MemoryHistory`] keeps streams in this
//! process (a single node), bounded by each stream's [`Retention`]. Not yet
//! wired to the `stomp` service (issue 20 is under way): the Redis store
//! and the service's use of it come next.

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

/// What a recovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Everything after the client's offset, in order (maybe nothing).
    Complete(Vec<Entry>),
    /// Not everything: another epoch, publications no longer kept, an
    /// offset the stream never gave, or more than the limit.
    Incomplete,
}

pub trait History: Send + Sync {
    /// Appends a publication to `key`'s stream; its position now.
    fn append(
        &self,
        key: &str,
        retention: Retention,
        headers: &[(String, String)],
        body: &str,
        now: Instant,
    ) -> Position;
    /// Where `key`'s stream stands (a stream is made, empty, if there is
    /// none, so that its epoch holds from now on).
    fn position(&self, key: &str, retention: Retention, now: Instant) -> Position;
    /// What followed `offset` of `epoch` in `key`, at most `limit`
    /// publications, and where the stream stands.
    fn since(
        &self,
        key: &str,
        retention: Retention,
        offset: u64,
        epoch: &str,
        limit: usize,
        now: Instant,
    ) -> (Position, Recovered);
}

/// One destination's stream.
struct Stream {
    epoch: Arc<str>,
    top: u64,
    entries: VecDeque<Entry>,
    /// The last publication, or when the stream was made.
    touched: Instant,
    /// Bytes of the entries' headers and bodies.
    bytes: usize,
}

impl Stream {
    fn new(now: Instant) -> Stream {
        Stream {
            epoch: crate::protocol::ids::random_hex::<6>().into(),
            top: 0,
            entries: VecDeque::new(),
            touched: now,
            bytes: 0,
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.top,
            epoch: self.epoch.clone(),
        }
    }

    fn expired(&self, retention: Retention, now: Instant) -> bool {
        now.saturating_duration_since(self.touched) > retention.ttl
    }
}

fn entry_bytes(e: &Entry) -> usize {
    e.body.len()
        + e.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Streams in this process. Lost at a restart: every stream then starts
/// again in a new epoch.
#[derive(Default)]
pub struct MemoryHistory {
    streams: Mutex<HashMap<String, Stream>>,
}

impl MemoryHistory {
    /// `key`'s stream, made anew when there is none or it expired.
    fn stream<'a>(
        streams: &'a mut HashMap<String, Stream>,
        key: &str,
        retention: Retention,
        now: Instant,
    ) -> &'a mut Stream {
        let stream = streams
            .entry(key.to_owned())
            .or_insert_with(|| Stream::new(now));
        if stream.expired(retention, now) {
            *stream = Stream::new(now);
        }
        stream
    }

    /// Drops the streams whose ttl passed (each stream's own, as
    /// `retention` says for its key): what keeps memory bounded by what was
    /// published within the ttls.
    pub fn sweep(&self, retention: impl Fn(&str) -> Retention, now: Instant) {
        self.lock()
            .retain(|key, stream| !stream.expired(retention(key), now));
    }

    /// Streams held, and bytes of their publications' headers and bodies.
    pub fn usage(&self) -> (usize, usize) {
        let streams = self.lock();
        (streams.len(), streams.values().map(|s| s.bytes).sum())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stream>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl History for MemoryHistory {
    fn append(
        &self,
        key: &str,
        retention: Retention,
        headers: &[(String, String)],
        body: &str,
        now: Instant,
    ) -> Position {
        let mut streams = self.lock();
        let stream = Self::stream(&mut streams, key, retention, now);
        stream.top += 1;
        stream.touched = now;
        let entry = Entry {
            offset: stream.top,
            headers: headers.to_vec(),
            body: body.to_owned(),
        };
        stream.bytes += entry_bytes(&entry);
        stream.entries.push_back(entry);
        while stream.entries.len() > retention.size {
            if let Some(old) = stream.entries.pop_front() {
                stream.bytes -= entry_bytes(&old);
            }
        }
        stream.position()
    }

    fn position(&self, key: &str, retention: Retention, now: Instant) -> Position {
        Self::stream(&mut self.lock(), key, retention, now).position()
    }

    fn since(
        &self,
        key: &str,
        retention: Retention,
        offset: u64,
        epoch: &str,
        limit: usize,
        now: Instant,
    ) -> (Position, Recovered) {
        let mut streams = self.lock();
        let stream = Self::stream(&mut streams, key, retention, now);
        let position = stream.position();
        // The first offset still kept; everything after the top when none is.
        let first = stream.entries.front().map_or(stream.top + 1, |e| e.offset);
        let complete = *stream.epoch == *epoch
            && offset <= stream.top
            && offset + 1 >= first
            && stream.top - offset <= limit as u64;
        if !complete {
            return (position, Recovered::Incomplete);
        }
        let skip = (offset + 1 - first) as usize;
        let missed = stream.entries.iter().skip(skip).cloned().collect();
        (position, Recovered::Complete(missed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_3: Retention = Retention {
        size: 3,
        ttl: Duration::from_secs(60),
    };

    fn bodies(r: &Recovered) -> Vec<&str> {
        match r {
            Recovered::Complete(entries) => entries.iter().map(|e| e.body.as_str()).collect(),
            Recovered::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn offsets_count_from_one_per_destination_in_one_epoch() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let start = h.position("/topic/a", KEEP_3, t);
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
    fn what_followed_an_offset_is_recovered_in_order() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let e = h.position("/t", KEEP_3, t).epoch;
        for b in ["1", "2", "3"] {
            h.append("/t", KEEP_3, &[("x".into(), b.into())], b, t);
        }
        let (top, r) = h.since("/t", KEEP_3, 1, &e, 100, t);
        assert_eq!(top.offset, 3);
        assert_eq!(bodies(&r), ["2", "3"]);
        assert_eq!(
            bodies(&h.since("/t", KEEP_3, 0, &e, 100, t).1),
            ["1", "2", "3"]
        );
        assert_eq!(
            bodies(&h.since("/t", KEEP_3, 3, &e, 100, t).1),
            [] as [&str; 0]
        );
        // An offset the stream never gave, another epoch, or over the limit.
        assert_eq!(
            h.since("/t", KEEP_3, 4, &e, 100, t).1,
            Recovered::Incomplete
        );
        assert_eq!(
            h.since("/t", KEEP_3, 1, "other", 100, t).1,
            Recovered::Incomplete
        );
        assert_eq!(h.since("/t", KEEP_3, 0, &e, 2, t).1, Recovered::Incomplete);
        assert_eq!(bodies(&h.since("/t", KEEP_3, 1, &e, 2, t).1), ["2", "3"]);
    }

    #[test]
    fn retention_by_size_keeps_the_last_and_refuses_older_positions() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let e = h.position("/t", KEEP_3, t).epoch;
        for i in 1..=5 {
            h.append("/t", KEEP_3, &[], &i.to_string(), t);
        }
        // 3, 4 and 5 are kept: from offset 2 on everything is there.
        assert_eq!(
            bodies(&h.since("/t", KEEP_3, 2, &e, 100, t).1),
            ["3", "4", "5"]
        );
        assert_eq!(
            h.since("/t", KEEP_3, 1, &e, 100, t).1,
            Recovered::Incomplete
        );
        assert_eq!(h.usage(), (1, 3));
    }

    #[test]
    fn a_stream_past_its_ttl_starts_again_in_a_new_epoch() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let first = h.append("/t", KEEP_3, &[], "1", t);
        let later = t + KEEP_3.ttl + Duration::from_secs(1);
        let (now, r) = h.since("/t", KEEP_3, 0, &first.epoch, 100, later);
        assert_eq!(r, Recovered::Incomplete);
        assert_ne!(now.epoch, first.epoch);
        assert_eq!(now.offset, 0);
        assert_eq!(h.append("/t", KEEP_3, &[], "2", later).offset, 1);
        // Within the ttl, each publication keeps the stream alive.
        let soon = later + KEEP_3.ttl - Duration::from_secs(1);
        assert_eq!(h.append("/t", KEEP_3, &[], "3", soon).epoch, now.epoch);
    }

    #[test]
    fn a_sweep_drops_expired_streams_and_their_memory() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        h.append("/old", KEEP_3, &[], "1234", t);
        let later = t + Duration::from_secs(50);
        h.append("/new", KEEP_3, &[("k".into(), "v".into())], "12", later);
        assert_eq!(h.usage(), (2, 8));
        h.sweep(|_| KEEP_3, t + Duration::from_secs(70));
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
