//! Redis that survives the loss of its server (issue 31): nodes that find
//! the master through Sentinel and follow it through a failover, with
//! publications acknowledged once a replica has them
//! (`redis_min_replicas`); and TLS to Redis with the CA of
//! `redis_ca_file`. Real `redis-server` processes on loopback: a master,
//! a replica and three Sentinels.
mod common;
use common::failover::{publish_until_acked, subscriber, until_all_got, Got};
use common::redis::Redis;
use common::sentinel::{Sentinels, MASTER_NAME};
use common::stomp::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";
const TOPIC: &str = "/topic/news/ha";

/// A node of the cluster on `redis` (its `[cluster]` keys for Redis).
fn node(redis: &str, id: &str) -> Gateway {
    Gateway::start(&format!(
        "[cluster]\n{redis}\nsecret = \"{CLUSTER_SECRET}\"\nnode_id = \"{id}\"\n\
         presence_interval = 0.2\nrequest_timeout = 1\n\
         [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n{}",
        // SockJS heartbeats each second: a client idles through a failover
        // without its reads timing out.
        config("heartbeat_delay = 1\n[[services.stomp.history]]\ndestinations = [\"/topic/news/**\"]\n")
    ))
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    let text = request("GET", &gw.api_url("/metrics"), &[], "").await.body;
    metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Two nodes on `s`'s Sentinels (with `extra` in their `[cluster]`),
/// joined, each with a [`subscriber`]: (the nodes, what each subscriber
/// got).
async fn on_sentinels(s: &Sentinels, extra: &str, name: &str) -> ([Gateway; 2], [Got; 2]) {
    let redis = format!(
        "redis_sentinels = {}\nredis_master_name = \"{MASTER_NAME}\"\n{extra}",
        s.urls()
    );
    let nodes = [
        node(&redis, &format!("{name}-a")),
        node(&redis, &format!("{name}-b")),
    ];
    until_joined(&[&nodes[0], &nodes[1]]).await;
    let got = [
        subscriber(&nodes[0], TOPIC).await,
        subscriber(&nodes[1], TOPIC).await,
    ];
    (nodes, got)
}

/// `kill -9` of the master while both nodes publish, each publication
/// acknowledged once the replica has it: Sentinel promotes the replica,
/// both nodes publish again within 15 s, and each subscriber gets every
/// publication exactly once, in order, with no loss to tell.
#[actix_rt::test]
async fn the_nodes_follow_a_failover_and_lose_no_acknowledged_publication() {
    let mut s = Sentinels::start();
    let ([a, b], [got_a, got_b]) = on_sentinels(&s, "redis_min_replicas = 1", "ha").await;
    let nodes = [&a, &b];
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 1..=50 {
        publish_until_acked(&nodes, TOPIC, n, deadline).await;
    }
    s.master.kill();
    let killed = Instant::now();
    // The old master comes back as the new master's replica once
    // Sentinel promoted the replica (a supervisor restarting it): what
    // redis_min_replicas = 1 needs.
    let supervisor = std::thread::spawn(move || {
        while s.master_port() != Some(s.replica.port) {
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "Sentinel never promoted the replica"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s.master.restart_as_replica_of(s.replica.port);
        s
    });
    let mut first_after = [None, None];
    for n in 51..=150 {
        let i = publish_until_acked(&nodes, TOPIC, n, deadline).await;
        first_after[i].get_or_insert_with(|| killed.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _s = supervisor.join().expect("the supervisor");
    for (i, after) in first_after.iter().enumerate() {
        let after = after.expect("each node acknowledged publications after the kill");
        assert!(
            after < Duration::from_secs(15),
            "node {i} published again only after {after:?}"
        );
    }
    until_all_got(&[&got_a, &got_b], "150", Duration::from_secs(20)).await;
    let want: Vec<String> = (1..=150).map(|n| n.to_string()).collect();
    assert_eq!(*got_a.borrow(), want);
    assert_eq!(*got_b.borrow(), want);
    for gw in [&a, &b] {
        assert!(metric(gw, "sockjs_gateway_redis_failovers_total").await >= 1.0);
    }
}

/// A failover the old master lives through (`SENTINEL FAILOVER`: it is
/// made a replica, the nodes' connections to it stay open and their
/// writes are answered `READONLY`): the nodes leave it for the new master,
/// and every acknowledged publication reaches each subscriber once, in
/// order.
#[actix_rt::test]
async fn nodes_leave_a_master_that_was_made_a_replica() {
    let s = Sentinels::start();
    let ([a, b], [got_a, got_b]) = on_sentinels(&s, "redis_min_replicas = 1", "ro").await;
    let nodes = [&a, &b];
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 1..=30 {
        publish_until_acked(&nodes, TOPIC, n, deadline).await;
    }
    let failover = s.sentinel_command(&format!("SENTINEL FAILOVER {MASTER_NAME}"));
    assert_eq!(failover, "OK", "{failover}");
    let started = Instant::now();
    let mut demoted = false;
    for n in 31..=120 {
        publish_until_acked(&nodes, TOPIC, n, deadline).await;
        demoted |= s.master.info("replication").contains("role:slave");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(demoted, "the old master was never made a replica");
    assert!(started.elapsed() < Duration::from_secs(30));
    until_all_got(&[&got_a, &got_b], "120", Duration::from_secs(20)).await;
    let want: Vec<String> = (1..=120).map(|n| n.to_string()).collect();
    assert_eq!(*got_a.borrow(), want);
    assert_eq!(*got_b.borrow(), want);
    assert_eq!(s.master_port(), Some(s.replica.port));
}

/// With `redis_min_replicas = 1` and the replica stopped, a publication
/// is kept on the master but neither acknowledged (`504`, published:
/// unknown) nor delivered; its retry with the same `idempotency_key`, once
/// the replica is back, is acknowledged as the same publication and
/// delivered then, once.
#[actix_rt::test]
async fn a_publication_no_replica_confirmed_is_held_until_its_retry() {
    let master = Redis::start();
    let replica = Redis::replica_of(&master);
    let redis = format!(
        "redis_url = \"{}\"\nredis_min_replicas = 1\nredis_replica_timeout_ms = 300",
        master.url()
    );
    let (a, b) = (node(&redis, "held-a"), node(&redis, "held-b"));
    until_joined(&[&a, &b]).await;
    let mut c = Client::connect(&b).await;
    c.subscribe("kept", TOPIC).await;
    c.subscribe("plain", "/topic/plain").await;
    let publish = |destination: &str, body: &str, key: &str| {
        json!({"destination": destination, "body": body, "idempotency_key": key}).to_string()
    };
    let (status, answer) = api(&a, "POST", "/api/publish", &publish(TOPIC, "first", "k-0")).await;
    assert_eq!(status, 200, "{answer}");
    let (_, h, body) = c.next().await;
    assert_eq!(body, "first");
    let at = |name| header(&h, name).unwrap().to_owned();
    let (offset, epoch) = (at("x-stream-offset"), at("x-stream-epoch"));
    replica.pause();
    let (status, answer) = api(&a, "POST", "/api/publish", &publish(TOPIC, "held", "k-1")).await;
    assert_eq!(
        (status, &answer["published"]),
        (504, &json!("unknown")),
        "{answer}"
    );
    // Nor read from history: a recovery from "first" finds nothing after
    // it (what a failover may take back is shown to nobody).
    let (cmd, h, _) = recovering(&b, &offset, &epoch).await.next().await;
    assert_eq!(cmd, "RECEIPT");
    assert_eq!(header(&h, "x-recovered"), Some("true"));
    assert_eq!(header(&h, "x-stream-offset"), Some(offset.as_str()));
    // Not delivered: what node a publishes next (no history, so no replica
    // to wait for) comes first, on the same connection to Redis.
    let (status, answer) = api(
        &a,
        "POST",
        "/api/publish",
        &publish("/topic/plain", "next", "k-2"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(c.next().await.2, "next");
    replica.resume();
    let (status, answer) = api(&b, "POST", "/api/publish", &publish(TOPIC, "held", "k-1")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], json!(true), "{answer}");
    let (cmd, _, body) = c.next().await;
    assert_eq!((cmd.as_str(), body.as_str()), ("MESSAGE", "held"));
    // Once: the next one follows it directly.
    let (status, _) = api(&a, "POST", "/api/publish", &publish(TOPIC, "after", "k-3")).await;
    assert_eq!(status, 200);
    assert_eq!(c.next().await.2, "after");
}

/// A client on `gw` that subscribed to [`TOPIC`] recovering from `offset`
/// of `epoch`, with a receipt.
async fn recovering(gw: &Gateway, offset: &str, epoch: &str) -> Client {
    let mut c = Client::connect(gw).await;
    let headers = [
        ("id", "r"),
        ("destination", TOPIC),
        ("receipt", "r"),
        ("x-recover-offset", offset),
        ("x-recover-epoch", epoch),
    ];
    c.frame("SUBSCRIBE", &headers, "").await;
    c
}

/// A subscription with recovery from `offset` of `epoch`: its RECEIPT's
/// `x-recovered`, and, when it recovered, the bodies it got up to `last`.
async fn recover(gw: &Gateway, offset: &str, epoch: &str, last: &str) -> (String, Vec<String>) {
    let mut c = recovering(gw, offset, epoch).await;
    let mut recovered = None;
    let mut bodies = Vec::new();
    loop {
        if recovered.as_deref() == Some("false")
            || (recovered.is_some() && bodies.last().map(String::as_str) == Some(last))
        {
            return (recovered.unwrap_or_default(), bodies);
        }
        let (cmd, h, body) = c.next().await;
        match cmd.as_str() {
            "RECEIPT" => recovered = Some(header(&h, "x-recovered").unwrap_or("").to_owned()),
            "MESSAGE" => bodies.push(body),
            other => panic!("{other} {h:?} {body}"),
        }
    }
}

/// Without `redis_min_replicas`, a failover to a replica that lags loses
/// what only the old master had (21 to 40 here, acknowledged and
/// delivered live while the replica was stopped and cut off): the subscribers that saw them are told
/// (`x-recovered: false`), then get every later publication, none skipped
/// though its offset was seen before; a client that comes back from
/// offset 40 is told, one from 20 recovers what followed.
#[actix_rt::test]
async fn writes_a_failover_lost_are_told_and_no_later_one_is_skipped() {
    let mut s = Sentinels::start();
    let ([a, b], [got_a, got_b]) = on_sentinels(&s, "", "lag").await;
    let mut watcher = Client::connect(&a).await;
    watcher.subscribe("w", TOPIC).await;
    let nodes = [&a, &b];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut positions = Vec::new();
    for n in 1..=40 {
        if n == 21 {
            // The replica stops, and the master drops its link: what the
            // master takes from now on stays there (a SIGSTOP alone leaves
            // it in the replica's socket, read on SIGCONT).
            s.replica.pause();
            assert_eq!(
                s.master.command("CLIENT KILL TYPE replica").as_deref(),
                Some(":1")
            );
        }
        publish_until_acked(&nodes, TOPIC, n, deadline).await;
        let (_, h, body) = watcher.next().await;
        assert_eq!(body, n.to_string());
        let at = |name| header(&h, name).unwrap().to_owned();
        positions.push((at("x-stream-offset"), at("x-stream-epoch")));
    }
    drop(watcher);
    s.master.kill();
    s.replica.resume();
    let killed = Instant::now();
    while s.master_port() != Some(s.replica.port) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "Sentinel never promoted the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 41..=60 {
        publish_until_acked(&nodes, TOPIC, n, deadline).await;
    }
    until_all_got(&[&got_a, &got_b], "60", Duration::from_secs(20)).await;
    let mut want: Vec<String> = (1..=40).map(|n| n.to_string()).collect();
    want.push("LOSS".into());
    want.extend((41..=60).map(|n| n.to_string()));
    assert_eq!(*got_a.borrow(), want);
    assert_eq!(*got_b.borrow(), want);

    let (offset, epoch) = &positions[39];
    let (recovered, _) = recover(&b, offset, epoch, "60").await;
    assert_eq!(recovered, "false", "a client that saw 21 to 40 is told");
    let (offset, epoch) = &positions[19];
    let (recovered, bodies) = recover(&a, offset, epoch, "60").await;
    assert_eq!(recovered, "true");
    let after: Vec<String> = (41..=60).map(|n| n.to_string()).collect();
    assert_eq!(bodies, after, "from 20: what the new master took after it");

    // The API's read labels each entry with its own epoch: 1 to 20 were
    // given the old one, which their offsets go with.
    let path = format!("/api/history?destination={TOPIC}");
    let (status, kept) = api(&a, "GET", &path, "").await;
    assert_eq!(status, 200, "{kept}");
    let old = &positions[0].1;
    assert_ne!(kept["epoch"], json!(old), "a new epoch took over");
    let labels: Vec<(u64, String)> = kept["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|e| {
            (
                e["offset"].as_u64().unwrap(),
                e["epoch"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(u64, String)> = (1..=20).map(|o| (o, old.clone())).collect();
    let new = kept["epoch"].as_str().unwrap();
    want.extend((21..=40).map(|o| (o, new.to_owned())));
    assert_eq!(labels, want);
}

/// A CA, and a certificate it signs for 127.0.0.1, made with openssl.
fn certificates(dir: &std::path::Path, name: &str) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = format!("{name}-ca");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &format!("/CN={ca}"),
        "-keyout",
        &format!("{ca}.key"),
        "-out",
        &format!("{ca}.pem"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.csr"),
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &format!("{name}.csr"),
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        &format!("{name}.pem"),
    ]);
}

/// Nodes reach a Redis that speaks TLS only, checking its certificate
/// against `redis_ca_file`; a CA that did not sign it stops the gateway at
/// start, naming the key.
#[actix_rt::test]
async fn nodes_speak_tls_to_redis_and_a_wrong_ca_stops_them_at_start() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), "server");
    certificates(dir.path(), "other");
    let file = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let tls_port = dead_addr().rsplit(':').next().unwrap().to_owned();
    let (cert, key, ca) = (
        file("server.pem"),
        file("server.key"),
        file("server-ca.pem"),
    );
    let redis = Redis::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let keys = |ca: &str| {
        format!("redis_url = \"rediss://127.0.0.1:{tls_port}/0\"\nredis_ca_file = \"{ca}\"")
    };
    let (a, b) = (node(&keys(&ca), "tls-a"), node(&keys(&ca), "tls-b"));
    until_joined(&[&a, &b]).await;
    let got = subscriber(&b, TOPIC).await;
    let body = json!({"destination": TOPIC, "body": "over tls"}).to_string();
    let (status, answer) = api(&a, "POST", "/api/publish", &body).await;
    assert_eq!(status, 200, "{answer}");
    until_all_got(&[&got], "over tls", Duration::from_secs(20)).await;

    let wrong = refused_at_start(&format!(
        "[cluster]\n{}\nsecret = \"{CLUSTER_SECRET}\"\n{}",
        keys(&file("other-ca.pem")),
        config("")
    ));
    assert!(wrong.contains("cluster.redis_ca_file"), "{wrong}");
    assert!(wrong.contains("other-ca.pem"), "{wrong}");
    drop(redis);
}
