//! Where the gateway nodes of a test share their state: one Redis server or
//! a Redis Cluster. The tests of history and of the cluster that need no
//! fault of one server run on both ([`on_each_store!`]).

use super::redis::Redis;
use super::redis_cluster::RedisCluster;

/// What names the Redis the nodes share in their `[cluster]` table.
pub trait Shared {
    fn config(&self) -> String;
}

impl Shared for Redis {
    fn config(&self) -> String {
        format!("redis_url = \"{}\"", self.url())
    }
}

impl Shared for Store {
    fn config(&self) -> String {
        Store::config(self)
    }
}

pub enum Store {
    One(Redis),
    Cluster(RedisCluster),
}

impl Store {
    pub fn one() -> Store {
        Store::One(Redis::start())
    }

    pub fn cluster() -> Store {
        Store::Cluster(RedisCluster::start())
    }

    /// The `[cluster]` key that names it.
    pub fn config(&self) -> String {
        match self {
            Store::One(r) => format!("redis_url = \"{}\"", r.url()),
            Store::Cluster(c) => c.config(),
        }
    }

    /// The servers that hold keys (a cluster's masters).
    fn masters(&self) -> Vec<&Redis> {
        match self {
            Store::One(r) => vec![r],
            Store::Cluster(c) => c.masters(),
        }
    }

    /// One inline command about one key: its first reply line, from the
    /// server that holds the key.
    pub fn command(&self, cmd: &str) -> Option<String> {
        let mut last = None;
        for m in self.masters() {
            let answer = m.command(cmd);
            if !answer.as_deref().is_some_and(|a| a.starts_with("-MOVED")) {
                return answer;
            }
            last = answer;
        }
        last
    }

    /// How many keys match `pattern`, on every server.
    pub fn count_keys(&self, pattern: &str) -> usize {
        self.masters()
            .iter()
            .map(|m| {
                m.command(&format!("KEYS {pattern}"))
                    .and_then(|l| l.trim_start_matches('*').parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// The fields of node `node`'s counts, in every key they are spread
    /// over.
    pub fn counts_len(&self, node: &str) -> usize {
        let key = format!("sockjs-gateway:node:{node}:counts");
        let keys: Vec<String> = match self {
            Store::One(_) => vec![key],
            Store::Cluster(_) => (0..16).map(|b| format!("{key}:{b}")).collect(),
        };
        keys.iter()
            .map(|k| {
                self.command(&format!("HLEN {k}"))
                    .and_then(|l| l.trim_start_matches(':').parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Kills the pub/sub connections process `pid` holds (on a cluster, on
    /// every node that has one); whether there was one.
    pub fn kill_pubsub_of(&self, pid: u32) -> bool {
        let mut killed = false;
        for m in self.masters() {
            killed |= m.kill_pubsub_of(pid);
        }
        killed
    }
}

/// Runs the async test function `$name(Store)` twice: on one Redis
/// (`$name::one_redis`) and on a Redis Cluster (`$name::redis_cluster`).
#[macro_export]
macro_rules! on_each_store {
    ($name:ident) => {
        mod $name {
            #[actix_rt::test]
            async fn one_redis() {
                super::$name(super::common::store::Store::one()).await
            }
            #[actix_rt::test]
            async fn redis_cluster() {
                super::$name(super::common::store::Store::cluster()).await
            }
        }
    };
}
