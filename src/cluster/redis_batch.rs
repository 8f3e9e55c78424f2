//! A batch of commands sent to Redis at once, each with an answer of its
//! own (one refused command fails no other). On one server: one pipeline.
//! On a Redis Cluster: one pipeline per master, by a map of the slots
//! ([`SlotMap`], `CLUSTER SLOTS`), sent at once: with publications spread
//! over many destinations a batch spans nearly as many slots as it has
//! commands, and a pipeline per slot would be a request per command.
//!
//! On a cluster, the commands that did not run (their slot moved, its
//! master is failing over or lacks the scripts) are sent again, a while
//! apart, within a deadline, the map read again meanwhile: of each slot,
//! those after its last command that ran, so that a destination's
//! commands keep their order.

use super::redis_conn::{Conn, SLOTS};
use super::{redis_history, Failed};
use redis::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Errors of a Redis Cluster with which a command did not run, and may
/// once the cluster settles.
const NOT_RUN: [&str; 7] = [
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
    "NOSCRIPT",
    "MASTERDOWN",
];

/// How long commands that did not run wait before they are sent again.
const RESEND_PAUSE: Duration = Duration::from_millis(100);

/// The masters of a Redis Cluster's slots, as one of its nodes told: a
/// number per master, by slot.
pub struct SlotMap {
    masters: Vec<u16>,
}

/// No master known for a slot.
const NO_MASTER: u16 = u16::MAX;

impl SlotMap {
    /// Asks a node (`CLUSTER SLOTS`).
    pub async fn read(
        conn: &mut (impl redis::aio::ConnectionLike + Send),
    ) -> redis::RedisResult<SlotMap> {
        let answer = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(conn)
            .await?;
        SlotMap::parse(&answer).ok_or_else(|| {
            (
                redis::ErrorKind::Parse,
                "CLUSTER SLOTS gave an answer not understood",
            )
                .into()
        })
    }

    /// `CLUSTER SLOTS`' answer: ranges of slots, each with its master's
    /// host and port first.
    fn parse(answer: &Value) -> Option<SlotMap> {
        let Value::Array(ranges) = answer else {
            return None;
        };
        let mut masters = vec![NO_MASTER; SLOTS as usize];
        let mut numbers: HashMap<(String, i64), u16> = HashMap::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let host: String = redis::from_redis_value_ref(master.first()?).ok()?;
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            let next = numbers.len() as u16;
            let number = *numbers.entry((host, *port)).or_insert(next);
            let first = usize::try_from(*first).ok()?;
            let last = usize::try_from(*last).ok()?;
            masters.get_mut(first..=last)?.fill(number);
        }
        Some(SlotMap { masters })
    }

    /// The slots of each master, lowest first.
    pub fn slots_by_master(&self) -> Vec<Vec<u16>> {
        let mut by: Vec<Vec<u16>> = Vec::new();
        for (slot, &m) in self.masters.iter().enumerate() {
            if m == NO_MASTER {
                continue;
            }
            if by.len() <= m as usize {
                by.resize(m as usize + 1, Vec::new());
            }
            by[m as usize].push(slot as u16);
        }
        by.retain(|slots| !slots.is_empty());
        by
    }

    /// The number of `slot`'s master, if one is known.
    fn master(&self, slot: u16) -> Option<u16> {
        let m = *self.masters.get(slot as usize)?;
        (m != NO_MASTER).then_some(m)
    }
}

/// Commands to send together, in order, each on its hash slot; those
/// `held` for replicas are followed by a `WAIT` in their pipeline.
#[derive(Default)]
pub struct Batch {
    cmds: Vec<(u16, redis::Cmd, bool)>,
}

impl Batch {
    /// Adds `cmd` on `slot` (any on one server); its number in the batch.
    pub fn add(&mut self, slot: u16, cmd: redis::Cmd, held: bool) -> usize {
        self.cmds.push((slot, cmd, held));
        self.cmds.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Of each slot, the commands after its last one that ran, which did
    /// not run (`again`): sending those again keeps a slot's order.
    fn to_send_again(&self, again: &[bool]) -> Vec<usize> {
        let mut closed = HashSet::new();
        let mut chosen = Vec::new();
        for (i, (slot, _, _)) in self.cmds.iter().enumerate().rev() {
            if closed.contains(slot) {
                continue;
            }
            if again[i] {
                chosen.push(i);
            } else {
                closed.insert(*slot);
            }
        }
        chosen.reverse();
        chosen
    }

    /// `chosen`'s commands by pipeline: on one server, all in one; on a
    /// cluster, one per master of `map` (per slot where it knows none),
    /// each with the slot it is routed by.
    fn pipelines(&self, chosen: &[usize], map: Option<&SlotMap>) -> Vec<(u16, Vec<usize>)> {
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        let mut group_of: HashMap<u32, usize> = HashMap::new();
        for &i in chosen {
            let slot = self.cmds[i].0;
            let key = match map.and_then(|m| m.master(slot)) {
                Some(master) => u32::from(master),
                None => u32::from(NO_MASTER) + 1 + u32::from(slot),
            };
            let g = *group_of.entry(key).or_insert_with(|| {
                groups.push((slot, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        groups
    }
}

/// What became of one command of a batch.
pub struct Done {
    /// Redis's answer (an error among them), or why none came.
    pub answer: Result<Value, Failed>,
    /// Held for replicas: how many replicas confirmed having it (`WAIT`),
    /// if its pipeline's `WAIT` answered.
    pub replicas: Option<u32>,
}

/// How a bus sends its batches.
pub struct Sender<'a> {
    /// Whether Redis is a cluster: pipelines per master, and sent again.
    pub sharded: bool,
    /// The map pipelines are grouped by, read again when commands did not
    /// run.
    pub map: &'a RwLock<Option<Arc<SlotMap>>>,
    /// How long a batch may take, sending again included.
    pub within: Duration,
    /// With held commands: the `WAIT` for that many replicas, for that
    /// many milliseconds.
    pub wait: (u32, u64),
    pub namespace: &'a str,
    /// Told when a master answered that it is a replica now.
    pub demoted: &'a tokio::sync::Notify,
}

impl Sender<'_> {
    /// Sends `batch`; what became of each command, in order.
    pub async fn send(&self, conn: &mut Conn, batch: &Batch) -> Vec<Done> {
        let n = batch.cmds.len();
        let mut done: Vec<Done> = (0..n)
            .map(|_| Done {
                answer: Err(Failed::not("not sent")),
                replicas: None,
            })
            .collect();
        let mut again = vec![false; n];
        let until = Instant::now() + self.within;
        let mut chosen: Vec<usize> = (0..n).collect();
        loop {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner()).clone();
            let groups = if self.sharded {
                batch.pipelines(&chosen, map.as_deref())
            } else {
                vec![(0, chosen.clone())]
            };
            self.send_once(conn, batch, groups, &mut done, &mut again)
                .await;
            if !self.sharded {
                return done;
            }
            chosen = batch.to_send_again(&again);
            if chosen.is_empty() || Instant::now() + RESEND_PAUSE > until {
                return done;
            }
            self.settle(conn, batch, &chosen, &done).await;
        }
    }

    /// Before sending `chosen` again: loads the scripts where a master
    /// lacks them, or pauses; for a redirect, sends one command of the
    /// slot on its own (the crate follows it and maps the slots again, as
    /// it does not from a pipeline's answers); reads the map again.
    async fn settle(&self, conn: &mut Conn, batch: &Batch, chosen: &[usize], done: &[Done]) {
        let code = |i: usize| match &done[i].answer {
            Ok(Value::ServerError(e)) => NOT_RUN.iter().copied().find(|c| *c == e.code()),
            _ => None,
        };
        if chosen.iter().any(|&i| code(i) == Some("NOSCRIPT")) {
            if let Err(e) = load_scripts(conn).await {
                log::warn!("cluster: could not load the scripts: {e}");
            }
        } else {
            tokio::time::sleep(RESEND_PAUSE).await;
        }
        let redirected: HashSet<u16> = chosen
            .iter()
            .filter(|&&i| matches!(code(i), Some("MOVED" | "ASK")))
            .map(|&i| batch.cmds[i].0)
            .collect();
        for slot in redirected {
            let mut exists = redis::cmd("EXISTS");
            exists.arg(redis_history::slot_boot_key(self.namespace, slot));
            let nudge = exists.query_async::<()>(conn);
            let _ = tokio::time::timeout(RESEND_PAUSE * 10, nudge).await;
        }
        let read = tokio::time::timeout(RESEND_PAUSE * 10, SlotMap::read(conn)).await;
        if let Ok(Ok(map)) = read {
            *self.map.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(map));
        }
    }

    /// Sends `groups` at once, one pipeline each; records each command's
    /// answer in `done`, and whether it did not run in `again`.
    async fn send_once(
        &self,
        conn: &mut Conn,
        batch: &Batch,
        groups: Vec<(u16, Vec<usize>)>,
        done: &mut [Done],
        again: &mut [bool],
    ) {
        let within = self.within;
        let (replicas, wait_ms) = self.wait;
        let sends = groups.iter().map(|(slot, members)| {
            let mut pipe = redis::pipe();
            for &i in members {
                pipe.add_command(batch.cmds[i].1.clone());
            }
            let waits = members.iter().any(|&i| batch.cmds[i].2);
            if waits {
                pipe.cmd("WAIT").arg(replicas).arg(wait_ms);
            }
            let mut conn = conn.clone();
            let slot = *slot;
            async move {
                (
                    waits,
                    tokio::time::timeout(within, conn.send(pipe, slot)).await,
                )
            }
        });
        let answers = futures_util::future::join_all(sends).await;
        for ((_, members), (waits, answer)) in groups.iter().zip(answers) {
            match answer {
                Ok(Ok(values)) => {
                    // A master demoted to a replica (a failover it did not
                    // see from inside): find the master now.
                    if values.iter().any(|v| code_of(v) == Some("READONLY")) {
                        self.demoted.notify_one();
                    }
                    let confirmed = if waits {
                        values
                            .get(members.len())
                            .and_then(|v| redis::from_redis_value_ref::<u32>(v).ok())
                    } else {
                        None
                    };
                    for (at, &i) in members.iter().enumerate() {
                        let Some(v) = values.get(at) else {
                            done[i].answer =
                                Err(Failed::not("Redis gave fewer answers than asked"));
                            again[i] = false;
                            continue;
                        };
                        again[i] = code_of(v).is_some();
                        done[i] = Done {
                            answer: Ok(v.clone()),
                            replicas: confirmed,
                        };
                    }
                }
                Ok(Err(e)) => {
                    let (failed, not_run) = if e.is_io_error()
                        || e.is_timeout()
                        || e.is_connection_dropped()
                        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
                    {
                        // Never sent when no connection to the slot's
                        // master was found; else it may have run.
                        let not_run = e.kind() == redis::ErrorKind::ClusterConnectionNotFound;
                        let failed = Failed {
                            why: e.to_string(),
                            maybe_published: !not_run,
                        };
                        (failed, not_run)
                    } else {
                        // Refused by Redis as a whole: none of it ran.
                        let not_run = e.code().is_some_and(|c| NOT_RUN.contains(&c));
                        (Failed::not(e.to_string()), not_run)
                    };
                    for &i in members {
                        done[i].answer = Err(failed.clone());
                        again[i] = not_run;
                    }
                }
                Err(_) => {
                    let failed = Failed {
                        why: format!("Redis did not answer within {within:?}"),
                        maybe_published: true,
                    };
                    for &i in members {
                        done[i].answer = Err(failed.clone());
                        again[i] = false;
                    }
                }
            }
        }
    }
}

/// The error of a Redis Cluster with which a command did not run, if
/// `v` is one.
fn code_of(v: &Value) -> Option<&'static str> {
    match v {
        Value::ServerError(e) => NOT_RUN.iter().copied().find(|c| *c == e.code()),
        _ => None,
    }
}

/// Loads the scripts a batch calls by hash on every node of a Redis
/// Cluster.
pub async fn load_scripts(conn: &mut Conn) -> redis::RedisResult<()> {
    for script in [
        &*redis_history::APPEND,
        &*redis_history::PUBLISH_ONCE,
        &*redis_history::CONFIRM,
    ] {
        // Sent to every node by the crate.
        script.load_async(conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(slots: &[u16]) -> Batch {
        let mut b = Batch::default();
        for &s in slots {
            b.add(s, redis::cmd("PING"), false);
        }
        b
    }

    #[test]
    fn only_a_slots_commands_after_its_last_that_ran_are_sent_again() {
        // Slot 1: ran, not, not → its last two. Slot 2: not, ran → none
        // (the first failed for good: sending it after the second would
        // reorder them). Slot 3: not → it.
        let b = batch(&[1, 2, 1, 2, 3, 1]);
        let again = [false, true, true, false, true, true];
        assert_eq!(b.to_send_again(&again), vec![2, 4, 5]);
        assert!(b.to_send_again(&[false; 6]).is_empty());
    }

    fn range(first: i64, last: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![
                Value::BulkString(host.into()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])
    }

    #[test]
    fn pipelines_go_one_per_master_and_one_per_slot_where_none_is_known() {
        let map = SlotMap::parse(&Value::Array(vec![
            range(0, 5460, "127.0.0.1", 7000),
            range(5461, 10922, "127.0.0.1", 7001),
            range(10923, 16000, "127.0.0.1", 7000),
        ]))
        .expect("parsed");
        assert_eq!(map.master(0), map.master(16000));
        assert_ne!(map.master(0), map.master(5461));
        assert_eq!(map.master(16001), None);
        let by = map.slots_by_master();
        assert_eq!(by.len(), 2);
        assert_eq!(
            (by[0].len(), by[0][0], by[0].last()),
            (5461 + 5078, 0, Some(&16000))
        );
        assert_eq!((by[1].len(), by[1][0]), (5462, 5461));
        let b = batch(&[1, 6000, 12000, 16383, 2, 16383]);
        assert_eq!(
            b.pipelines(&[0, 1, 2, 3, 4, 5], Some(&map)),
            vec![(1, vec![0, 2, 4]), (6000, vec![1]), (16383, vec![3, 5])]
        );
        assert_eq!(
            b.pipelines(&[1, 3], None),
            vec![(6000, vec![1]), (16383, vec![3])]
        );
        assert!(SlotMap::parse(&Value::Int(1)).is_none());
    }
}
