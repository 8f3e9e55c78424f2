//! A Redis Cluster of the test's own: six `redis-server --cluster-enabled
//! yes` processes on free loopback ports, made one cluster of three masters
//! with a replica each by `redis-cli --cluster create`; each stopped by
//! its own PID.

use super::redis::Redis;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct RedisCluster {
    /// Masters first, then their replicas, as `--cluster create` was given
    /// them (it pairs them itself: [`RedisCluster::masters`] says which).
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..6)
            .map(|_| {
                Redis::start_on_free_ports(|bus| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus.to_string(),
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(str::to_owned)
                    .to_vec()
                })
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|r| format!("127.0.0.1:{}", r.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = RedisCluster { nodes };
        c.wait_ok();
        c
    }

    /// Waits until every node says the cluster is ok and every replica is
    /// linked to its master.
    pub fn wait_ok(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().all(|n| {
                n.bulk("CLUSTER INFO")
                    .is_some_and(|i| i.contains("cluster_state:ok"))
                    && n.info("replication").lines().all(|l| {
                        !l.starts_with("role:slave")
                            || n.info("replication").contains("master_link_status:up")
                    })
            });
            if ok {
                return;
            }
            assert!(Instant::now() < until, "the Redis Cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seed URLs, as `redis_cluster_nodes` names them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The `[cluster]` key that names it.
    pub fn config(&self) -> String {
        let urls: Vec<String> = self.urls().iter().map(|u| format!("\"{u}\"")).collect();
        format!("redis_cluster_nodes = [{}]", urls.join(", "))
    }

    /// The nodes that are masters now.
    pub fn masters(&self) -> Vec<&Redis> {
        self.nodes
            .iter()
            .filter(|n| n.info("replication").contains("role:master"))
            .collect()
    }
}

impl RedisCluster {
    /// The hash slot of `key`, as this cluster computes it.
    pub fn slot(&self, key: &str) -> u16 {
        self.nodes[0]
            .command(&format!("CLUSTER KEYSLOT {key}"))
            .and_then(|l| l.trim_start_matches(':').parse().ok())
            .expect("CLUSTER KEYSLOT answers")
    }

    /// The node that serves `slot` now (as a master says).
    pub fn owner_of(&self, slot: u16) -> usize {
        let m = self.masters()[0];
        let port = m
            .bulk("CLUSTER NODES")
            .expect("CLUSTER NODES answers")
            .lines()
            .find_map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let serves = f.iter().skip(8).any(|r| match r.split_once('-') {
                    Some((a, b)) => {
                        a.parse::<u16>().is_ok_and(|a| a <= slot)
                            && b.parse::<u16>().is_ok_and(|b| slot <= b)
                    }
                    None => r.parse::<u16>().ok() == Some(slot),
                });
                let port = f.get(1)?.split(['@', ':']).nth(1)?.parse::<u16>().ok()?;
                (f.get(2)?.contains("master") && serves).then_some(port)
            })
            .expect("a master serves the slot");
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("one of ours")
    }

    /// Node `i`'s id in the cluster.
    pub fn id_of(&self, i: usize) -> String {
        self.nodes[i]
            .bulk("CLUSTER MYID")
            .expect("CLUSTER MYID answers")
    }

    /// `redis-cli --cluster reshard`, to run: moves `slots` slots (the
    /// lowest ones) of node `from` to node `to`, keys and all.
    pub fn reshard(&self, from: usize, to: usize, slots: usize) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", self.nodes[from].port))
            .args(["--cluster-from", &self.id_of(from)])
            .args(["--cluster-to", &self.id_of(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"]);
        cmd
    }
}
