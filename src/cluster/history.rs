//! Publication history per destination, so that a client that was away can
//! recover what it missed: each publication gets the next offset of its
//! destination's stream, and each stream an epoch that changes whenever its
//! history is lost, so a client holding offset N of epoch E knows whether
//! "everything after N" can still be told.
//!
//! An epoch also changes, without the offsets starting over, when a stream
//! is first written on another Redis master (a failover): the new epoch
//! takes over from the old one at the last offset this master holds of it
//! (a [`Read::links`] entry). A client of the old epoch at or before that
//! offset lost nothing; one past it saw publications this master never
//! got, and is told so. So no offset is ever given to two publications in
//! one epoch.
//!
//! Reading never makes a stream: only a publication does. A client whose
//! destination has no stream yet (or whose node knows no position for it)
//! is given a [`Mark`], a moment of the store's own clock, instead of an
//! offset; recovering from a mark gives what was published from that
//! moment on, when the store can tell that nothing of it was lost.
//!
//! [`History`] is the interface services read through; [`MemoryHistory`]
//! keeps streams in this process (a single node), bounded by each stream's
//! [`Retention`] and by the bytes of all of a service's streams;
//! [`super::redis_history::RedisHistory`] keeps them in Redis for a
//! cluster.

use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// When it was kept, in milliseconds of the store's clock.
    pub at: u64,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Where a stream stands: the last offset given (0 before any) and its
/// epoch; or a [`Mark`], offset 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: Arc<str>,
}

impl Position {
    /// Whether this is a mark rather than a stream's position.
    pub fn is_mark(&self) -> bool {
        self.epoch.starts_with(MARK)
    }
}

/// What starts a mark's epoch; a stream's epoch never does.
const MARK: char = '@';

/// A moment of a store's clock, given as a position (`x-stream-offset: 0`,
/// `x-stream-epoch: @BOOT.MS`): "everything published from MS on". `boot`
/// names the store (it changes when the store loses what it held: a
/// restart of a single node, Redis restarted empty), so that a mark of a
/// store that is gone never recovers anything. An empty `boot` (a node
/// that never reached its store) never does either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub boot: Arc<str>,
    pub at: u64,
}

impl Mark {
    pub fn position(&self) -> Position {
        Position {
            offset: 0,
            epoch: format!("{MARK}{}.{}", self.boot, self.at).into(),
        }
    }

    /// The mark an epoch names, if it is one.
    pub fn parse(epoch: &str) -> Option<Mark> {
        let (boot, at) = epoch.strip_prefix(MARK)?.rsplit_once('.')?;
        Some(Mark {
            boot: boot.into(),
            at: at.parse().ok()?,
        })
    }
}

/// Where a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Since {
    /// After this offset.
    Offset(u64),
    /// From this moment of the store's clock on (a [`Mark`]'s).
    Mark(u64),
}

/// What a read of a stream found: where it stands, the publications after
/// the point asked for that it still keeps (at most the limit), and what
/// the store can tell of losses the stream cannot show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The stream's position; when there is no stream, a mark of the
    /// moment of the read.
    pub position: Position,
    pub entries: Vec<Entry>,
    /// When the stream was made (store clock); `None`: there is none.
    pub created: Option<u64>,
    /// The store: its identity and its clock at the read, and the last
    /// moment it dropped a stream to stay within its bytes (0: never).
    pub boot: Arc<str>,
    pub now: u64,
    pub evicted: u64,
    /// For a read since a mark: the offset of the newest publication made
    /// before it, when history can tell (0: none was); `entries` are then
    /// those after it.
    pub before: Option<u64>,
    /// The stream's earlier epochs that a later one took over from, oldest
    /// first, each with its last offset here: offsets up to it are of that
    /// epoch. A read after an offset past one of them starts at its end.
    pub links: Vec<(Arc<str>, u64)>,
}

impl Read {
    /// The epoch of the publication at `offset`.
    pub fn epoch_of(&self, offset: u64) -> Arc<str> {
        self.links
            .iter()
            .find(|(_, end)| offset <= *end)
            .map_or_else(|| self.position.epoch.clone(), |(e, _)| e.clone())
    }

    /// The last offset of `epoch` here, when a later epoch took over from
    /// it.
    pub fn link_end(&self, epoch: &str) -> Option<u64> {
        self.links
            .iter()
            .find(|(e, _)| **e == *epoch)
            .map(|(_, end)| *end)
    }

    /// Whether `offset` of `epoch` is a point of this stream: of its
    /// epoch, or of an earlier one at or before where it was taken over.
    pub fn continues(&self, offset: u64, epoch: &str) -> bool {
        *self.position.epoch == *epoch || self.link_end(epoch).is_some_and(|end| offset <= end)
    }

    /// Whether `entries` are everything that followed `offset` of `epoch`:
    /// the same epoch (or one this one took over from, at or after
    /// `offset`), an offset the stream gave, and no publication missing
    /// between it and the top (none dropped by retention, none left out by
    /// the read's limit).
    pub fn is_everything_after(&self, offset: u64, epoch: &str) -> bool {
        let top = self.position.offset;
        if self.created.is_none() || !self.continues(offset, epoch) || offset > top {
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

    /// Whether `entries` are everything a client holding `offset` of
    /// `epoch` missed, `epoch` being a stream's or a [`Mark`]'s. From a
    /// mark, nothing may have been lost since it: the same store, every
    /// publication from the mark on still kept, and no stream made after
    /// the mark and gone since (one lives `ttl` at least, unless the store
    /// dropped streams for room).
    pub fn recovers(&self, offset: u64, epoch: &str, ttl: Duration) -> bool {
        let Some(mark) = Mark::parse(epoch) else {
            return self.is_everything_after(offset, epoch);
        };
        if mark.boot.is_empty() || mark.boot != self.boot || self.evicted >= mark.at {
            return false;
        }
        let lived = mark.at.saturating_add(ttl.as_millis() as u64);
        match self.created {
            // None made since the mark could be gone yet.
            None => self.now <= lived,
            Some(created) => {
                if created >= mark.at && created > lived {
                    return false;
                }
                match self.before {
                    Some(from) => self.is_everything_after(from, &self.position.epoch),
                    None => false,
                }
            }
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
    /// `stream`'s position, and its publications from `since` on, at most
    /// `limit`, oldest first; `of`: the epoch an offset `since` is of (an
    /// earlier epoch's is read from where the stream's present one took
    /// over, when that is before it). A stream that does not exist is not
    /// made: the read says so ([`Read::created`]).
    fn read(
        &self,
        stream: &str,
        retention: Retention,
        since: Since,
        of: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'static, Result<Read, String>>;
    /// The store's moment now, as a position: what a client that has
    /// nothing of a destination yet recovers from. At or before the true
    /// moment, never after.
    fn mark(&self) -> Position;
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

/// Bytes a stream costs beyond its key and publications (its record, its
/// epoch, its place in the order of eviction), and a publication beyond
/// its headers and body: what [`MemoryHistory`] counts against its cap.
const STREAM_BYTES: usize = 256;
const ENTRY_BYTES: usize = 96;
const HEADER_BYTES: usize = 48;

/// One destination's stream.
struct Stream {
    epoch: Arc<str>,
    top: u64,
    entries: VecDeque<Entry>,
    /// When it was made, in the store's milliseconds.
    created: u64,
    /// The last publication, or when the stream was made.
    touched: Instant,
    /// Its place in the order of eviction: larger is more recent.
    seq: u64,
    /// Its retention as last given: what a sweep goes by.
    ttl: Duration,
    /// Bytes it costs, counted as [`STREAM_BYTES`] says.
    bytes: usize,
}

impl Stream {
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
    ENTRY_BYTES
        + e.body.len()
        + e.headers
            .iter()
            .map(|(k, v)| HEADER_BYTES + k.len() + v.len())
            .sum::<usize>()
}

/// How often appends and reads sweep expired streams away, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Streams in this process, for one service. Lost at a restart: every
/// stream then starts again in a new epoch (and every mark is of another
/// store). Memory: each stream's publications (at most its `size`), their
/// headers and bodies, and bookkeeping, counted by [`MemoryHistory::usage`]
/// and capped at `max_bytes` in all: past it the streams published to
/// least recently are dropped (their clients learn `x-recovered: false`);
/// a stream is dropped too once its `ttl` passed without a publication.
pub struct MemoryHistory {
    inner: Mutex<Streams>,
    /// Names this store in its marks.
    boot: Arc<str>,
    /// The store's clock: milliseconds since this.
    started: Instant,
    max_bytes: usize,
}

struct Streams {
    by_key: HashMap<Arc<str>, Stream>,
    /// Keys by their stream's `seq`: the least recently published first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    swept: Instant,
    /// The streams' bytes, summed.
    bytes: usize,
    /// The last moment a stream was dropped for room (store clock).
    evicted: u64,
    /// What this store last added to `/metrics` (streams, bytes).
    reported: (i64, i64),
}

impl Default for MemoryHistory {
    fn default() -> Self {
        MemoryHistory::new(crate::config::service::DEFAULT_HISTORY_MAX_BYTES)
    }
}

impl Drop for MemoryHistory {
    fn drop(&mut self) {
        let m = &crate::metrics::get().history;
        let inner = self.lock();
        m.streams.dec_by(inner.reported.0);
        m.bytes.dec_by(inner.reported.1);
    }
}

impl Streams {
    /// Drops streams whose `ttl` passed, now and then.
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < SWEEP_EVERY {
            return;
        }
        self.swept = now;
        let mut freed = 0;
        let order = &mut self.order;
        self.by_key.retain(|_, s| {
            let keep = !s.expired(now);
            if !keep {
                freed += s.bytes;
                order.remove(&s.seq);
            }
            keep
        });
        self.bytes -= freed;
    }

    /// `key`'s stream, if there is one and its `ttl` has not passed.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Stream> {
        self.sweep(now);
        if self.by_key.get(key).is_some_and(|s| s.expired(now)) {
            self.remove(key);
        }
        self.by_key.get_mut(key)
    }

    fn remove(&mut self, key: &str) {
        if let Some(s) = self.by_key.remove(key) {
            self.bytes -= s.bytes;
            self.order.remove(&s.seq);
        }
    }

    /// Shows what the store holds in `/metrics` (summed over services).
    fn report(&mut self) {
        let now = (self.by_key.len() as i64, self.bytes as i64);
        let m = &crate::metrics::get().history;
        m.streams.inc_by(now.0 - self.reported.0);
        m.bytes.inc_by(now.1 - self.reported.1);
        self.reported = now;
    }
}

impl Read {
    /// What `stream` holds from `since` on, at most `limit`.
    fn fill(&mut self, stream: &Stream, since: Since, limit: usize) {
        self.position = stream.position();
        self.created = Some(stream.created);
        let kept = &stream.entries;
        // The first offset still kept; the one after the top when none is.
        let first = kept.front().map_or(stream.top + 1, |e| e.offset);
        let skip = match since {
            Since::Offset(after) => after.saturating_sub(first - 1).min(kept.len() as u64) as usize,
            Since::Mark(t) => {
                // Those made from the mark on are the newest ones.
                let from = kept.iter().rposition(|e| e.at < t).map_or(0, |i| i + 1);
                self.before = match from {
                    0 if first == 1 => Some(0),
                    0 => None,
                    i => Some(kept[i - 1].offset),
                };
                from
            }
        };
        self.entries = kept.iter().skip(skip).take(limit).cloned().collect();
    }
}

impl MemoryHistory {
    /// A store whose streams cost at most `max_bytes` together.
    pub fn new(max_bytes: usize) -> MemoryHistory {
        MemoryHistory {
            inner: Mutex::new(Streams {
                by_key: HashMap::new(),
                order: BTreeMap::new(),
                next_seq: 0,
                swept: Instant::now(),
                bytes: 0,
                evicted: 0,
                reported: (0, 0),
            }),
            boot: crate::protocol::ids::random_hex::<6>().into(),
            started: Instant::now(),
            max_bytes,
        }
    }

    /// `at` on the store's clock, in milliseconds (from 1).
    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64 + 1
    }

    /// Appends a publication to `key`'s stream (made if there is none);
    /// its position now.
    pub fn append(
        &self,
        key: &str,
        retention: Retention,
        headers: &[(String, String)],
        body: &str,
        now: Instant,
    ) -> Position {
        let at = self.millis(now);
        let mut inner = self.lock();
        let inner = &mut *inner;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let found = inner.live(key, now).map(|s| (s.seq, s.bytes));
        let before = match found {
            Some((old, bytes)) => {
                inner.order.remove(&old);
                bytes
            }
            None => {
                let key: Arc<str> = key.into();
                let stream = Stream {
                    epoch: crate::protocol::ids::random_hex::<6>().into(),
                    top: 0,
                    entries: VecDeque::new(),
                    created: at,
                    touched: now,
                    seq,
                    ttl: retention.ttl,
                    bytes: STREAM_BYTES + key.len(),
                };
                inner.by_key.insert(key, stream);
                0
            }
        };
        let (key, _) = inner
            .by_key
            .get_key_value(key)
            .expect("made or found above");
        let key = key.clone();
        let stream = inner.by_key.get_mut(&key).expect("made or found above");
        stream.top += 1;
        stream.touched = now;
        stream.ttl = retention.ttl;
        stream.seq = seq;
        let entry = Entry {
            offset: stream.top,
            at,
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
        let (after, position) = (stream.bytes, stream.position());
        inner.order.insert(seq, key);
        inner.bytes = inner.bytes + after - before;
        // Past the cap, the streams published to least recently go.
        while inner.bytes > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(s) = inner.by_key.remove(&oldest) {
                inner.bytes -= s.bytes;
            }
            inner.evicted = at;
            crate::metrics::get().history.evicted.inc();
        }
        inner.report();
        position
    }

    /// [`History::read`] at `now`.
    pub fn read_at(&self, key: &str, since: Since, limit: usize, now: Instant) -> Read {
        let millis = self.millis(now);
        let mut inner = self.lock();
        let evicted = inner.evicted;
        let mut read = Read {
            position: self.mark_at(millis).position(),
            entries: Vec::new(),
            created: None,
            boot: self.boot.clone(),
            now: millis,
            evicted,
            before: None,
            links: Vec::new(),
        };
        if let Some(stream) = inner.live(key, now) {
            read.fill(stream, since, limit);
        }
        inner.report();
        read
    }

    fn mark_at(&self, millis: u64) -> Mark {
        Mark {
            boot: self.boot.clone(),
            at: millis,
        }
    }

    /// Streams held, and bytes they cost as counted against the cap.
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
        _: Retention,
        since: Since,
        _: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'static, Result<Read, String>> {
        let read = self.read_at(stream, since, limit, Instant::now());
        Box::pin(std::future::ready(Ok(read)))
    }

    fn mark(&self) -> Position {
        self.mark_at(self.millis(Instant::now())).position()
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

    fn after(h: &MemoryHistory, key: &str, offset: u64, t: Instant) -> Read {
        h.read_at(key, Since::Offset(offset), 100, t)
    }

    #[test]
    fn offsets_count_from_one_per_destination_in_one_epoch() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let one = h.append("/topic/a", KEEP_3, &[], "1", t);
        let two = h.append("/topic/a", KEEP_3, &[], "2", t);
        let other = h.append("/topic/b", KEEP_3, &[], "x", t);
        assert_eq!((one.offset, two.offset, other.offset), (1, 2, 1));
        assert_eq!(one.epoch, two.epoch);
        assert_ne!(other.epoch, one.epoch, "epochs are per stream");
        assert!(!one.is_mark());
    }

    #[test]
    fn what_followed_an_offset_is_read_in_order() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        for b in ["1", "2", "3"] {
            h.append("/t", KEEP_3, &[("x".into(), b.into())], b, t);
        }
        let r = after(&h, "/t", 1, t);
        let e = r.position.epoch.clone();
        assert_eq!(r.position.offset, 3);
        assert_eq!(bodies(&r), ["2", "3"]);
        assert!(r.is_everything_after(1, &e));
        let all = after(&h, "/t", 0, t);
        assert_eq!(bodies(&all), ["1", "2", "3"]);
        assert!(all.is_everything_after(0, &e));
        let none = after(&h, "/t", 3, t);
        assert_eq!(bodies(&none), [] as [&str; 0]);
        assert!(none.is_everything_after(3, &e));
        // An offset the stream never gave, another epoch, or over the limit.
        assert!(!after(&h, "/t", 4, t).is_everything_after(4, &e));
        assert!(!r.is_everything_after(1, "other"));
        let limited = h.read_at("/t", Since::Offset(0), 2, t);
        assert_eq!(bodies(&limited), ["1", "2"]);
        assert!(!limited.is_everything_after(0, &e));
        assert!(h
            .read_at("/t", Since::Offset(1), 2, t)
            .is_everything_after(1, &e));
    }

    #[test]
    fn retention_by_size_keeps_the_last_and_refuses_older_positions() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        for i in 1..=5 {
            h.append("/t", KEEP_3, &[], &i.to_string(), t);
        }
        // 3, 4 and 5 are kept: from offset 2 on everything is there.
        let from_2 = after(&h, "/t", 2, t);
        let e = from_2.position.epoch.clone();
        assert_eq!(bodies(&from_2), ["3", "4", "5"]);
        assert!(from_2.is_everything_after(2, &e));
        let from_1 = after(&h, "/t", 1, t);
        assert_eq!(bodies(&from_1), ["3", "4", "5"]);
        assert!(!from_1.is_everything_after(1, &e), "2 is no longer kept");
        let one_entry = ENTRY_BYTES + 1;
        assert_eq!(h.usage(), (1, STREAM_BYTES + 2 + 3 * one_entry));
    }

    /// Issue 28, finding 1: a read makes nothing; it tells there is no
    /// stream, and gives a mark of the moment instead of a position.
    #[test]
    fn a_read_never_makes_a_stream() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        for i in 0..1000 {
            let r = after(&h, &format!("/fresh/{i}"), 0, t);
            assert_eq!(r.created, None);
            assert!(r.position.is_mark(), "{:?}", r.position);
            assert!(!r.is_everything_after(0, &r.position.epoch));
        }
        assert_eq!(h.usage(), (0, 0));
    }

    #[test]
    fn a_stream_past_its_ttl_is_gone_and_starts_again_in_a_new_epoch() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        let first = h.append("/t", KEEP_3, &[], "1", t);
        let later = t + KEEP_3.ttl + Duration::from_secs(1);
        let r = after(&h, "/t", 0, later);
        assert_eq!(r.created, None);
        assert!(!r.recovers(0, &first.epoch, KEEP_3.ttl));
        let again = h.append("/t", KEEP_3, &[], "2", later);
        assert_eq!(again.offset, 1);
        assert_ne!(again.epoch, first.epoch);
        // Within the ttl, each publication keeps the stream alive.
        let soon = later + KEEP_3.ttl - Duration::from_secs(1);
        assert_eq!(h.append("/t", KEEP_3, &[], "3", soon).epoch, again.epoch);
    }

    #[test]
    fn expired_streams_are_swept_with_their_memory() {
        let h = MemoryHistory::default();
        let t = Instant::now();
        h.append("/old", KEEP_3, &[], "1234", t);
        let later = t + Duration::from_secs(50);
        h.append("/new", KEEP_3, &[("k".into(), "v".into())], "12", later);
        let new = STREAM_BYTES + 4 + ENTRY_BYTES + 2 + HEADER_BYTES + 2;
        assert_eq!(h.usage().0, 2);
        // Any use past /old's ttl drops it.
        after(&h, "/new", 0, t + Duration::from_secs(70));
        assert_eq!(h.usage(), (1, new));
    }

    #[test]
    fn a_new_store_is_a_new_epoch_and_another_store_for_marks() {
        let t = Instant::now();
        let (a, b) = (MemoryHistory::default(), MemoryHistory::default());
        let pa = a.append("/t", KEEP_3, &[], "1", t);
        let pb = b.append("/t", KEEP_3, &[], "1", t);
        assert_ne!(pa.epoch, pb.epoch, "a restart loses the history");
        let mark = a.mark();
        let r = b.read_at("/t", Since::Mark(1), 100, t);
        assert!(!r.recovers(0, &mark.epoch, KEEP_3.ttl), "b is not a");
    }

    /// Issue 28, finding 1: what a client recovers from a mark. The store
    /// is driven at chosen instants: `at(s)` is `s` seconds in.
    #[test]
    fn a_mark_recovers_exactly_what_followed_it_or_says_it_cannot() {
        let h = MemoryHistory::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mark_at = |s: u64| h.mark_at(h.millis(at(s))).position();
        let ttl = KEEP_3.ttl;
        let recover = |m: &Position, now: Instant| {
            let since = Mark::parse(&m.epoch).unwrap().at;
            let r = h.read_at("/t", Since::Mark(since), 100, now);
            (r.recovers(0, &m.epoch, ttl), r)
        };
        // Nothing yet, then nothing made since: exact, nothing to send.
        let m0 = mark_at(1);
        let (ok, r) = recover(&m0, at(2));
        assert!(ok && r.entries.is_empty());
        // A stream made after the mark: all of it.
        h.append("/t", KEEP_3, &[], "a", at(3));
        h.append("/t", KEEP_3, &[], "b", at(4));
        let (ok, r) = recover(&m0, at(5));
        assert!(ok);
        assert_eq!(bodies(&r), ["a", "b"]);
        // A mark taken while the stream lives: what came after it only.
        let m1 = mark_at(5);
        h.append("/t", KEEP_3, &[], "c", at(6));
        let (ok, r) = recover(&m1, at(7));
        assert!(ok);
        assert_eq!(bodies(&r), ["c"]);
        // Trimmed past what followed the mark: not exact.
        h.append("/t", KEEP_3, &[], "d", at(8));
        let (ok, _) = recover(&m0, at(9));
        assert!(!ok, "a was dropped by size");
        assert!(recover(&m1, at(9)).0, "c and d are kept, b before them too");
        h.append("/t", KEEP_3, &[], "e", at(10));
        assert!(
            !recover(&m1, at(11)).0,
            "b, the last before m1, was dropped: c may have been too"
        );
    }

    /// A stream made after a mark, published to and gone while the client
    /// was away is a loss, whether or not another stream was made since.
    #[test]
    fn a_stream_made_and_gone_since_a_mark_is_a_loss() {
        let h = MemoryHistory::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let ttl = KEEP_3.ttl;
        let m = h.mark_at(h.millis(at(1))).position();
        let since = Since::Mark(Mark::parse(&m.epoch).unwrap().at);
        h.append("/t", KEEP_3, &[], "lost", at(2));
        // Gone (ttl), nothing since.
        let gone = at(2) + ttl + Duration::from_secs(1);
        let r = h.read_at("/t", since, 100, gone);
        assert_eq!(r.created, None);
        assert!(!r.recovers(0, &m.epoch, ttl));
        // Gone, and another stream made since.
        h.append("/t", KEEP_3, &[], "new", gone);
        let r = h.read_at("/t", since, 100, gone);
        assert_eq!(bodies(&r), ["new"]);
        assert!(!r.recovers(0, &m.epoch, ttl));
    }

    /// Issue 28, finding 1: streams together cost at most the cap; the
    /// least recently published go first, their clients are told, and so
    /// are the holders of marks from before.
    #[test]
    fn streams_past_the_cap_go_least_recently_published_first() {
        let one = STREAM_BYTES + 4 + ENTRY_BYTES + 10;
        let h = MemoryHistory::new(3 * one);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mark = h.mark_at(h.millis(at(0))).position();
        let mut positions = Vec::new();
        for (i, key) in ["/k/0", "/k/1", "/k/2"].into_iter().enumerate() {
            positions.push(h.append(key, KEEP_3, &[], "0123456789", at(i as u64 + 1)));
        }
        assert_eq!(h.usage(), (3, 3 * one));
        // /k/0 is published to again: /k/1 is now the least recent.
        h.append("/k/0", KEEP_3, &[], "", at(4));
        let (streams, bytes) = h.usage();
        assert!(bytes <= 3 * one, "{bytes}");
        assert_eq!(streams, 2);
        let gone = after(&h, "/k/1", 0, at(5));
        assert_eq!(gone.created, None);
        assert!(!gone.recovers(1, &positions[1].epoch, KEEP_3.ttl));
        assert!(after(&h, "/k/0", 1, at(5)).recovers(1, &positions[0].epoch, KEEP_3.ttl));
        // A mark from before the eviction recovers nothing anywhere now.
        let r = h.read_at("/k/2", Since::Mark(1), 100, at(5));
        assert!(!r.recovers(0, &mark.epoch, KEEP_3.ttl));
        // Nor does a key that was never written.
        let r = h.read_at("/never", Since::Mark(1), 100, at(5));
        assert!(!r.recovers(0, &mark.epoch, KEEP_3.ttl));
    }

    #[test]
    fn marks_read_back_and_other_epochs_are_not_marks() {
        let m = Mark {
            boot: "ab12".into(),
            at: 1234,
        };
        let p = m.position();
        assert_eq!((p.offset, &*p.epoch), (0, "@ab12.1234"));
        assert!(p.is_mark());
        assert_eq!(Mark::parse(&p.epoch), Some(m));
        for not in ["ab12", "@ab12", "@ab12.x", "", "ab12.5"] {
            assert_eq!(Mark::parse(not), None, "{not}");
        }
        // A mark of an unknown store recovers nothing.
        let h = MemoryHistory::default();
        let r = h.read_at("/t", Since::Mark(0), 100, Instant::now());
        assert!(!r.recovers(0, "@.0", KEEP_3.ttl));
    }
}
