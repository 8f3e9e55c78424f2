//! Gateway nodes on a Redis Cluster (`redis_cluster_nodes`), with a real
//! six-process cluster on loopback (three masters, three replicas): each
//! destination is published on its own shard, a master killed under a
//! publish loop or a slot migrated under one loses nothing acknowledged.
//! (Every test of tests/history.rs and tests/cluster.rs that needs no
//! fault of one server runs on a cluster too.)
mod common;
use common::failover::{publish_until_acked, subscriber, until_all_got};
use common::redis_cluster::RedisCluster;
use common::stomp::*;
use common::*;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// A node on `redis` with history for `/topic/news/**` (and `extra` in its
/// `[cluster]`).
fn node(redis: &RedisCluster, id: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[cluster]\n{}\n{extra}\nsecret = \"{CLUSTER_SECRET}\"\nnode_id = \"{id}\"\n\
         presence_interval = 0.2\nrequest_timeout = 1\n\
         [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n{}",
        redis.config(),
        config(
            "heartbeat_delay = 1\n[[services.stomp.history]]\n\
             destinations = [\"/topic/news/**\"]\nsize = 1000\n"
        )
    ))
}

/// The stream keys of destination `d` of service `stomp`.
fn stream_key(d: &str) -> String {
    format!("sockjs-gateway:history:{{stomp:{d}}}")
}

/// Publications to 1,000 destinations through three nodes: each shard
/// holds about a third of the streams, and a client on a third node gets
/// exactly the publications of what it subscribed to.
#[actix_rt::test]
async fn publications_to_a_thousand_destinations_land_on_every_shard() {
    let redis = RedisCluster::start();
    let nodes = [
        node(&redis, "one", ""),
        node(&redis, "two", ""),
        node(&redis, "three", ""),
    ];
    until_joined(&[&nodes[0], &nodes[1], &nodes[2]]).await;
    let watched: Vec<String> = (0..1000)
        .step_by(100)
        .map(|i| format!("/topic/news/d{i}"))
        .collect();
    let mut c = Client::connect(&nodes[2]).await;
    for (i, d) in watched.iter().enumerate() {
        c.subscribe(&i.to_string(), d).await;
    }
    // Read as they come (a client that reads nothing for long is cut).
    let got = Rc::new(RefCell::new(Vec::new()));
    let into = got.clone();
    actix_rt::spawn(async move {
        loop {
            let (cmd, headers, body) = c.next().await;
            assert_eq!(cmd, "MESSAGE", "{headers:?}");
            into.borrow_mut().push(body);
        }
    });
    for i in 0..1000 {
        let body = json!({"destination": format!("/topic/news/d{i}"), "body": format!("p{i}")});
        let (status, answer) = api(&nodes[i % 3], "POST", "/api/publish", &body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["offset"], 1, "{answer}");
    }
    // Every shard holds its part of the streams, and every slot's boot key.
    let masters = redis.masters();
    assert_eq!(masters.len(), 3);
    let mut streams = Vec::new();
    let mut boots = 0;
    for m in &masters {
        let count = |pattern: &str| -> usize {
            m.command(&format!("KEYS {pattern}"))
                .and_then(|l| l.trim_start_matches('*').parse().ok())
                .unwrap()
        };
        streams.push(count("sockjs-gateway:history:{stomp:/topic/news/d*}"));
        boots += count("sockjs-gateway:history:boot:*");
    }
    assert_eq!(streams.iter().sum::<usize>(), 1000, "{streams:?}");
    assert!(streams.iter().all(|&n| n > 250), "{streams:?}");
    assert_eq!(boots, 16384);
    // A stream lives on the master that serves its slot.
    let key = stream_key("/topic/news/d7");
    let owner = &redis.nodes[redis.owner_of(redis.slot(&key))];
    assert_eq!(
        owner.command(&format!("EXISTS {key}")).as_deref(),
        Some(":1")
    );
    // The subscriber got what it subscribed to: one each, in any order of
    // destinations.
    let until = Instant::now() + Duration::from_secs(10);
    while got.borrow().len() < watched.len() {
        assert!(Instant::now() < until, "got only {:?}", got.borrow());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = got.borrow().clone();
    got.sort();
    let mut want: Vec<String> = (0..1000).step_by(100).map(|i| format!("p{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

/// `kill -9` of the master of a topic's slot while three nodes publish to
/// it, each publication acknowledged once a replica has it: the cluster
/// promotes the replica, the nodes publish again, and each subscriber
/// gets every publication exactly once, in order, with no loss to tell.
#[actix_rt::test]
async fn a_killed_masters_replica_takes_over_and_nothing_acknowledged_is_lost() {
    const TOPIC: &str = "/topic/news/failover";
    let mut redis = RedisCluster::start();
    let extra = "redis_min_replicas = 1";
    let nodes = [
        node(&redis, "one", extra),
        node(&redis, "two", extra),
        node(&redis, "three", extra),
    ];
    let nodes: Vec<&Gateway> = nodes.iter().collect();
    until_joined(&nodes).await;
    let got: Vec<_> = [
        subscriber(nodes[0], TOPIC).await,
        subscriber(nodes[1], TOPIC).await,
    ]
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    for n in 1..=50 {
        publish_until_acked(&nodes, TOPIC, n, deadline).await;
    }
    let slot = redis.slot(&stream_key(TOPIC));
    let master = redis.owner_of(slot);
    redis.nodes[master].kill();
    let killed = Instant::now();
    let publishing = async {
        for n in 51..=150 {
            publish_until_acked(&nodes, TOPIC, n, deadline).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // The killed master comes back (a supervisor restarting it) and joins
    // as its replica's replica, once the replica took over: what
    // redis_min_replicas = 1 needs.
    let supervisor = async {
        loop {
            let now = redis.nodes.iter().enumerate().find(|(i, n)| {
                *i != master && n.info("replication").contains("role:master") && {
                    let owner = redis.owner_of(slot);
                    owner == *i
                }
            });
            if now.is_some() {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "the replica never took over"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        redis.nodes[master].restart();
    };
    futures_util::join!(publishing, supervisor);
    let want: Vec<String> = (1..=150).map(|n| n.to_string()).collect();
    until_all_got(&[&got[0], &got[1]], "150", Duration::from_secs(30)).await;
    assert_eq!(*got[0].borrow(), want);
    assert_eq!(*got[1].borrow(), want);
}

/// `redis-cli --cluster reshard` moves a topic's slot to another master
/// while the nodes publish to it: the subscriptions that slot held are
/// ended by the server and made again on the new owner, and each
/// subscriber gets every publication exactly once, in order.
#[actix_rt::test]
async fn a_slot_migrated_during_a_publish_loop_loses_nothing() {
    let redis = RedisCluster::start();
    // A topic in the lowest slot of its master: the one reshard moves.
    let masters: Vec<usize> = (0..3).map(|i| redis.owner_of(i * 5461)).collect();
    let lowest: Vec<u16> = [0u16, 5461, 10923].to_vec();
    let topic = (0..)
        .map(|n| format!("/topic/news/m{n}"))
        .find(|t| lowest.contains(&redis.slot(&stream_key(t))))
        .unwrap();
    let slot = redis.slot(&stream_key(&topic));
    let from = redis.owner_of(slot);
    let to = *masters.iter().find(|&&m| m != from).unwrap();
    let nodes = [
        node(&redis, "one", ""),
        node(&redis, "two", ""),
        node(&redis, "three", ""),
    ];
    let nodes: Vec<&Gateway> = nodes.iter().collect();
    until_joined(&nodes).await;
    let got = [
        subscriber(nodes[0], &topic).await,
        subscriber(nodes[1], &topic).await,
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 1..=50 {
        publish_until_acked(&nodes, &topic, n, deadline).await;
    }
    let (done, resharding) = std::sync::mpsc::channel();
    let mut reshard = redis.reshard(from, to, 1);
    let mover = std::thread::spawn(move || {
        let out = reshard.output().expect("redis-cli runs");
        let _ = done.send(());
        out
    });
    let mut n = 51;
    let mut moved_at = None;
    while n <= 300 && (moved_at.is_none() || n < moved_at.unwrap() + 50) {
        publish_until_acked(&nodes, &topic, n, deadline).await;
        if moved_at.is_none() && resharding.try_recv().is_ok() {
            moved_at = Some(n);
        }
        n += 1;
    }
    let out = mover.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(redis.owner_of(slot), to, "the slot moved");
    let last = n - 1;
    let want: Vec<String> = (1..=last).map(|n| n.to_string()).collect();
    until_all_got(
        &[&got[0], &got[1]],
        &last.to_string(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(*got[0].borrow(), want);
    assert_eq!(*got[1].borrow(), want);
}

/// A destination let go and taken again at once, over and over (an
/// UNSUBSCRIBE and a SUBSCRIBE in one message): the node's sharded
/// subscription ends up on, and each publication of another node, with
/// no history to fill a gap, arrives on the new subscription.
#[actix_rt::test]
async fn a_destination_let_go_and_taken_again_at_once_is_still_heard() {
    let redis = RedisCluster::start();
    let nodes = [node(&redis, "one", ""), node(&redis, "two", "")];
    until_joined(&[&nodes[0], &nodes[1]]).await;
    let topic = "/topic/live/x";
    let mut c = Client::connect(&nodes[0]).await;
    c.subscribe("s0", topic).await;
    let frame = |command: &str, headers: &[(&str, &str)]| {
        let mut text = format!("{command}\n");
        for (k, v) in headers {
            text.push_str(&format!("{k}:{v}\n"));
        }
        text + "\n\0"
    };
    for n in 1..=40 {
        let (before, now) = (format!("s{}", n - 1), format!("s{n}"));
        let off = frame("UNSUBSCRIBE", &[("id", &before)]);
        let on = frame(
            "SUBSCRIBE",
            &[("id", &now), ("destination", topic), ("receipt", &now)],
        );
        c.send(&[&off, &on]).await;
        c.expect_receipt(&now).await;
        let body = json!({"destination": topic, "body": format!("p{n}")});
        let (status, answer) = api(&nodes[1], "POST", "/api/publish", &body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        let next = tokio::time::timeout(Duration::from_secs(5), c.next()).await;
        let (cmd, headers, got) = next.unwrap_or_else(|_| panic!("p{n} never came"));
        assert_eq!(
            (cmd.as_str(), got.as_str()),
            ("MESSAGE", format!("p{n}").as_str()),
            "{headers:?}"
        );
        assert_eq!(header(&headers, "subscription"), Some(now.as_str()));
    }
}
