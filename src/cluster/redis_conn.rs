//! A connection to Redis as the bus uses it: one multiplexed connection to
//! the master (one server, or the one the Sentinels name), or a Redis
//! Cluster's, which sends each command to the master of its key's hash
//! slot and follows `MOVED` and `ASK`. A pipeline to a cluster keeps to
//! one slot ([`Pipes`]), or is sent to one master whose slots it holds
//! ([`Conn::send`], for a batch of publications: [`super::redis_batch`]).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

#[derive(Clone)]
pub enum Conn {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::One(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::One(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Sends `pipe`: every command's answer, errors among them. On a
    /// cluster, to the master of `slot` (whichever slots its commands
    /// are on: those of another master answer `MOVED`).
    pub async fn send(&mut self, pipe: Pipeline, slot: u16) -> redis::RedisResult<Vec<Value>> {
        let n = pipe.len();
        match self {
            Conn::One(c) => c.req_packed_commands(&pipe, 0, n).await,
            Conn::Cluster(c) => {
                let route = Route::new(slot, SlotAddr::Master);
                c.route_pipeline(pipe, 0, n, SingleNodeRoutingInfo::SpecificNode(route))
                    .await
            }
        }
    }
}

/// Hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`, as Redis computes it: of its `{tag}` when it
/// has a non-empty one.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// A hash tag of slot `slot`: the shortest decimal number that hashes
/// there, so that a key `...{TAG}...` lands in that slot.
pub fn tag_of_slot(slot: u16) -> &'static str {
    static TAGS: std::sync::LazyLock<Vec<Box<str>>> = std::sync::LazyLock::new(|| {
        let mut tags: Vec<Option<Box<str>>> = vec![None; SLOTS as usize];
        let mut left = SLOTS as usize;
        let mut n = 0u64;
        while left > 0 {
            let s = n.to_string();
            let slot = crc16::State::<crc16::XMODEM>::calculate(s.as_bytes()) % SLOTS;
            if tags[slot as usize].is_none() {
                tags[slot as usize] = Some(s.into());
                left -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(|t| t.expect("every slot")).collect()
    });
    &TAGS[slot as usize]
}

/// Commands sent together: one pipeline on one server; on a Redis
/// Cluster, one per hash slot, sent at once (a pipeline must keep to one
/// slot there).
pub struct Pipes {
    sharded: bool,
    pipes: Vec<(u16, redis::Pipeline)>,
    /// Where each answer read is: its pipeline, its place there.
    read: Vec<(usize, usize)>,
    /// Answers read so far, by pipeline.
    counts: Vec<usize>,
}

impl Pipes {
    pub fn new(sharded: bool) -> Pipes {
        Pipes {
            sharded,
            pipes: Vec::new(),
            read: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Adds `cmd` on `key`'s slot; `read`: its answer is returned.
    pub fn add(&mut self, key: &str, cmd: Cmd, read: bool) -> &mut Self {
        let slot = if self.sharded { slot(key) } else { 0 };
        let p = match self.pipes.iter().position(|(s, _)| *s == slot) {
            Some(p) => p,
            None => {
                self.pipes.push((slot, redis::pipe()));
                self.counts.push(0);
                self.pipes.len() - 1
            }
        };
        let pipe = &mut self.pipes[p].1;
        pipe.add_command(cmd);
        if read {
            self.read.push((p, self.counts[p]));
            self.counts[p] += 1;
        } else {
            pipe.ignore();
        }
        self
    }

    /// Sends them; the answers read, in the order they were added.
    pub async fn query(self, conn: &mut Conn) -> redis::RedisResult<Vec<Value>> {
        let sends = self.pipes.iter().map(|(_, pipe)| {
            let mut conn = conn.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        });
        let mut answers = Vec::with_capacity(self.pipes.len());
        for answer in futures_util::future::join_all(sends).await {
            answers.push(answer?);
        }
        self.read
            .iter()
            .map(|&(p, at)| {
                answers[p].get(at).cloned().ok_or_else(|| {
                    (
                        redis::ErrorKind::Client,
                        "Redis gave fewer answers than asked",
                    )
                        .into()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_own() {
        // CLUSTER KEYSLOT's answers (Redis 7.0).
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), 8363);
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        assert_eq!(
            slot("ns:history:{svc:/topic/a}"),
            slot("ns:ev:{svc:/topic/a}")
        );
    }

    #[test]
    fn every_slot_has_a_tag_of_its_own() {
        for s in [0, 1, 8363, 12182, SLOTS - 1] {
            assert_eq!(slot(&format!("x:{{{}}}", tag_of_slot(s))), s);
        }
    }
}
