//! History and recovery (`[[services.NAME.history]]`): offsets and epochs on
//! MESSAGE frames and API answers, recovery on SUBSCRIBE with
//! `x-recover-offset` and `x-recover-epoch`, `GET /api/history`; on one
//! node (in memory) and on many (Redis), through reconnects, a lost node,
//! a Redis restart and a lost pub/sub link.
mod common;
use common::redis::Redis;
use common::stomp::*;
use common::store::{Shared, Store};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// History for news topics and every user queue; `/topic/plain` keeps none.
fn history(size: usize, extra: &str) -> String {
    config(&format!(
        "{extra}\n[[services.stomp.history]]\n\
         destinations = [\"/topic/news/**\", \"/user/queue/**\"]\nsize = {size}\nttl = 600\n"
    ))
}

const API: &str = "[api]\nlisten = \"127.0.0.1:0\"\n";

fn single(size: usize, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{API}key = \"{KEY}\"\nmetrics = true\n{}",
        history(size, extra)
    ))
}

/// The value of an unlabelled series in `/metrics`.
async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = get(&gw.api_url("/metrics")).await.body;
    metric_value(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn node(redis: &impl Shared, id: &str) -> Gateway {
    Gateway::start(&format!(
        "[cluster]\n{}\nsecret = \"test-cluster-secret-0123456789abcdef\"\n\
         node_id = \"{id}\"\npresence_interval = 0.2\n{API}key = \"{KEY}\"\n{}",
        redis.config(),
        history(1000, "")
    ))
}

/// `POST /api/publish`: its status and answer.
async fn try_publish(gw: &Gateway, destination: &str, body: &str) -> (u16, Value) {
    let publication = json!({ "destination": destination, "body": body });
    api(gw, "POST", "/api/publish", &publication.to_string()).await
}

async fn publish(gw: &Gateway, destination: &str, body: &str) -> Value {
    let (status, answer) = try_publish(gw, destination, body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// A MESSAGE's body and position.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    body: String,
    offset: u64,
    epoch: String,
}

/// What a SUBSCRIBE with a receipt brought: the messages before the
/// RECEIPT, and the RECEIPT's headers.
struct Subscribed {
    messages: Vec<Got>,
    receipt: Vec<(String, String)>,
}

impl Subscribed {
    fn recovered(&self) -> Option<&str> {
        header(&self.receipt, "x-recovered")
    }
    fn position(&self) -> (u64, String) {
        (
            header(&self.receipt, "x-stream-offset")
                .expect("x-stream-offset")
                .parse()
                .unwrap(),
            header(&self.receipt, "x-stream-epoch")
                .expect("x-stream-epoch")
                .to_owned(),
        )
    }
}

fn got(frame: (String, Vec<(String, String)>, String)) -> Got {
    let (cmd, h, body) = frame;
    assert_eq!(cmd, "MESSAGE", "{h:?} {body}");
    Got {
        offset: header(&h, "x-stream-offset")
            .unwrap_or_else(|| panic!("no offset: {h:?}"))
            .parse()
            .unwrap(),
        epoch: header(&h, "x-stream-epoch").expect("epoch").to_owned(),
        body,
    }
}

async fn subscribe(
    c: &mut Client,
    id: &str,
    destination: &str,
    from: Option<(u64, &str)>,
) -> Subscribed {
    let offset = from.map(|(o, _)| o.to_string());
    let mut headers = vec![("id", id), ("destination", destination), ("receipt", id)];
    if let (Some(o), Some((_, e))) = (&offset, from) {
        headers.push(("x-recover-offset", o));
        headers.push(("x-recover-epoch", e));
    }
    c.frame("SUBSCRIBE", &headers, "").await;
    let mut messages = Vec::new();
    loop {
        let frame = c.next().await;
        if frame.0 == "RECEIPT" {
            assert_eq!(header(&frame.1, "receipt-id"), Some(id));
            return Subscribed {
                messages,
                receipt: frame.1,
            };
        }
        messages.push(got(frame));
    }
}

fn bodies(messages: &[Got]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

#[actix_rt::test]
async fn a_client_recovers_what_it_missed_on_one_node() {
    let gw = single(1000, "");
    let mut a = Client::connect(&gw).await;
    let first = subscribe(&mut a, "s", "/topic/news/x", None).await;
    assert_eq!(first.recovered(), None, "it did not ask");
    // No stream yet: a mark of the moment, which no stream's epoch is.
    let (offset, mark) = first.position();
    assert_eq!(offset, 0);
    assert!(mark.starts_with('@'), "{mark}");
    let mut epoch = String::new();
    for i in 1..=3 {
        let answer = publish(&gw, "/topic/news/x", &format!("n{i}")).await;
        if i == 1 {
            epoch = answer["epoch"].as_str().unwrap().to_owned();
            assert!(!epoch.starts_with('@'), "{epoch}");
        }
        assert_eq!(
            answer,
            json!({"delivered": 1, "offset": i, "epoch": epoch.clone()})
        );
        let m = got(a.next().await);
        assert_eq!((m.body.as_str(), m.offset), (format!("n{i}").as_str(), i));
        assert_eq!(m.epoch, epoch);
    }
    drop(a);
    for i in 4..=8 {
        publish(&gw, "/topic/news/x", &format!("n{i}")).await;
    }

    // Back after n3: n4..n8 in order, then the receipt, then live ones.
    let mut b = Client::connect(&gw).await;
    let back = subscribe(&mut b, "s", "/topic/news/x", Some((3, &epoch))).await;
    assert_eq!(bodies(&back.messages), ["n4", "n5", "n6", "n7", "n8"]);
    assert_eq!(back.recovered(), Some("true"));
    assert_eq!(back.position(), (8, epoch.clone()));
    publish(&gw, "/topic/news/x", "n9").await;
    assert_eq!(got(b.next().await).offset, 9);

    // Up to date: nothing to recover, and that is a recovery.
    let mut c = Client::connect(&gw).await;
    let current = subscribe(&mut c, "s", "/topic/news/x", Some((9, &epoch))).await;
    assert!(current.messages.is_empty());
    assert_eq!(current.recovered(), Some("true"));
    // Another epoch, or an offset the stream never gave: live ones only.
    for (i, from) in [(0, "0000"), (10, epoch.as_str())].into_iter().enumerate() {
        let s = subscribe(&mut c, &format!("x{i}"), "/topic/news/x", Some(from)).await;
        assert!(s.messages.is_empty());
        assert_eq!(s.recovered(), Some("false"), "{from:?}");
        assert_eq!(s.position(), (9, epoch.clone()));
    }

    // What history keeps, through the API.
    let (status, kept) = api(
        &gw,
        "GET",
        "/api/history?destination=/topic/news/x&since=5&limit=2",
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        kept,
        json!({"epoch": epoch, "top": 9, "publications": [
            {"offset": 6, "epoch": epoch, "body": "n6", "headers": {}},
            {"offset": 7, "epoch": epoch, "body": "n7", "headers": {}},
        ]})
    );
    // What the store holds and what recoveries did, in /metrics: one
    // stream of nine bodies of two bytes, with their bookkeeping.
    let bytes = metric(&gw, "sockjs_gateway_history_bytes").await;
    assert!((18.0..4096.0).contains(&bytes), "{bytes}");
    for (name, value) in [
        ("sockjs_gateway_history_streams", 1.0),
        ("sockjs_gateway_history_recovered_total", 5.0),
        ("sockjs_gateway_history_recoveries_failed_total", 2.0),
    ] {
        assert_eq!(metric(&gw, name).await, value, "{name}");
    }
    // A destination without history is as before.
    let plain = publish(&gw, "/topic/plain", "p").await;
    assert_eq!(plain, json!({"delivered": 0}));
    let (status, err) = api(&gw, "GET", "/api/history?destination=/topic/plain", "").await;
    assert_eq!((status, err["field"].as_str()), (400, Some("destination")));
}

#[actix_rt::test]
async fn a_users_queue_keeps_its_history_while_the_user_is_away() {
    let gw = single(1000, "");
    let send = |n: u32| {
        json!({"destination": "/user/queue/alerts", "body": format!("a{n}"),
               "headers": {"content-type": "text/plain"}})
        .to_string()
    };
    let (_, one) = api(&gw, "POST", "/api/users/alice/send", &send(1)).await;
    assert_eq!(one["delivered"], 0);
    assert_eq!(one["offset"], 1);
    let epoch = one["epoch"].as_str().unwrap().to_owned();
    api(&gw, "POST", "/api/users/alice/send", &send(2)).await;
    // Bob's queue of the same name is his own stream.
    let (_, bob) = api(&gw, "POST", "/api/users/bob/send", &send(9)).await;
    assert_eq!(bob["offset"], 1);

    let alice = format!("Bearer {}", token(SECRET, "alice", 60));
    let mut tab = Client::connect_with(&gw, &[("Authorization", &alice)]).await;
    let s = subscribe(&mut tab, "q", "/user/queue/alerts", Some((0, &epoch))).await;
    assert_eq!(bodies(&s.messages), ["a1", "a2"]);
    assert_eq!(s.recovered(), Some("true"));
    let (_, kept) = api(
        &gw,
        "GET",
        "/api/history?destination=/user/alice/queue/alerts",
        "",
    )
    .await;
    assert_eq!(kept["top"], 2);
    assert_eq!(
        kept["publications"][0],
        json!({"offset": 1, "epoch": epoch, "body": "a1", "headers": {"content-type": "text/plain"}})
    );
}

#[actix_rt::test]
async fn recovery_fails_beyond_the_size_kept_and_max_recovered() {
    let gw = single(5, "max_recovered = 3");
    let mut epoch = String::new();
    for i in 1..=10 {
        epoch = publish(&gw, "/topic/news/x", &i.to_string()).await["epoch"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let mut c = Client::connect(&gw).await;
    // 6..10 are kept; from 4, 5 is missing.
    let s = subscribe(&mut c, "a", "/topic/news/x", Some((4, &epoch))).await;
    assert_eq!(s.recovered(), Some("false"));
    assert!(s.messages.is_empty());
    // From 6, four are missed: more than max_recovered.
    let s = subscribe(&mut c, "b", "/topic/news/x", Some((6, &epoch))).await;
    assert_eq!(s.recovered(), Some("false"));
    let s = subscribe(&mut c, "c", "/topic/news/x", Some((7, &epoch))).await;
    assert_eq!(s.recovered(), Some("true"));
    assert_eq!(bodies(&s.messages), ["8", "9", "10"]);
    // Headers that cannot be used are an ERROR.
    c.frame(
        "SUBSCRIBE",
        &[
            ("id", "d"),
            ("destination", "/topic/news/x"),
            ("x-recover-offset", "soon"),
            ("x-recover-epoch", "e"),
        ],
        "",
    )
    .await;
    let (cmd, h, _) = c.next().await;
    assert_eq!(cmd, "ERROR");
    assert_eq!(header(&h, "message"), Some("Invalid recovery headers"));
}

#[actix_rt::test]
async fn a_backend_cannot_set_the_position_headers() {
    let gw = single(10, "");
    let (status, err) = api(
        &gw,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/news/x", "body": "b", "headers": {"x-stream-offset": "1"}}"#,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("headers.x-stream-offset"))
    );
}

on_each_store!(a_hundred_missed_are_recovered_through_another_node);
async fn a_hundred_missed_are_recovered_through_another_node(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    // Subscribed on node one before anything was published: a mark.
    let mut c = Client::connect(&one).await;
    let (offset, mark) = subscribe(&mut c, "s", "/topic/news/x", None)
        .await
        .position();
    assert_eq!(offset, 0);
    assert!(mark.starts_with('@'), "{mark}");
    drop(c);
    let mut epoch = None;
    for i in 1..=100 {
        let gw = if i % 2 == 0 { &one } else { &two };
        let answer = publish(gw, "/topic/news/x", &i.to_string()).await;
        let e = answer["epoch"].as_str().unwrap().to_owned();
        assert_eq!(epoch.get_or_insert_with(|| e.clone()), &e);
        assert_eq!(answer["offset"].as_u64(), Some(i));
    }
    // Recovered from the mark on node two: the whole stream, made since.
    let mut c = Client::connect(&two).await;
    let s = subscribe(&mut c, "s", "/topic/news/x", Some((0, &mark))).await;
    assert_eq!(s.recovered(), Some("true"));
    let offsets: Vec<u64> = s.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (1..=100).collect::<Vec<_>>());
    assert!(s.messages.iter().all(|m| m.body == m.offset.to_string()));
    // Live ones follow, from either node.
    publish(&one, "/topic/news/x", "101").await;
    assert_eq!(got(c.next().await).offset, 101);
}

/// Offsets a client got, checked as they come: each the one after the last.
struct Seen {
    last: u64,
    epoch: String,
}

impl Seen {
    fn take(&mut self, m: &Got, who: usize) {
        // From a mark (nothing yet), the stream's epoch comes with its first.
        if self.epoch.starts_with('@') && self.last == 0 {
            self.epoch = m.epoch.clone();
        }
        assert_eq!(m.epoch, self.epoch, "client {who}");
        assert_eq!(m.offset, self.last + 1, "client {who}: after {}", self.last);
        self.last = m.offset;
    }
}

on_each_store!(clients_resubscribing_in_a_loop_see_every_offset_once_in_order);
async fn clients_resubscribing_in_a_loop_see_every_offset_once_in_order(redis: Store) {
    const TOTAL: u64 = 1500;
    const CLIENTS: usize = 20;
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut c = Client::connect(&one).await;
    let (_, epoch) = subscribe(&mut c, "s", "/topic/news/race", None)
        .await
        .position();
    drop(c);

    let nodes = [&one, &two];
    let publisher = async {
        for i in 1..=TOTAL {
            publish(nodes[i as usize % 2], "/topic/news/race", &i.to_string()).await;
        }
    };
    let clients = futures_util::future::join_all((0..CLIENTS).map(|who| {
        let epoch = epoch.clone();
        async move {
            let mut seen = Seen { last: 0, epoch };
            let mut rounds = 0;
            while seen.last < TOTAL {
                rounds += 1;
                // A new session each round, on either node.
                let mut c = Client::connect(nodes[(who + rounds) % 2]).await;
                let from = (seen.last, seen.epoch.clone());
                let s = subscribe(&mut c, "s", "/topic/news/race", Some((from.0, &from.1))).await;
                assert_eq!(s.recovered(), Some("true"), "client {who}");
                for m in &s.messages {
                    seen.take(m, who);
                    assert_eq!(m.body, m.offset.to_string());
                }
                // Some live ones, then away again.
                let stay = 1 + (who + rounds) % 7;
                for _ in 0..stay {
                    if seen.last >= TOTAL {
                        break;
                    }
                    let m = got(c.next().await);
                    seen.take(&m, who);
                    assert_eq!(m.body, m.offset.to_string());
                }
            }
            rounds
        }
    }));
    let (_, rounds) = futures_util::join!(publisher, clients);
    assert!(
        rounds.iter().all(|&r| r > 1),
        "every client came back: {rounds:?}"
    );
}

#[actix_rt::test]
async fn redis_restarted_empty_starts_a_new_epoch_and_recovery_says_so() {
    let mut redis = Redis::start();
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let first = publish(&one, "/topic/news/x", "before").await;
    let old = first["epoch"].as_str().unwrap().to_owned();
    redis.restart();
    until_joined(&[&one, &two]).await;
    let after = publish(&two, "/topic/news/x", "after").await;
    assert_eq!(after["offset"], 1);
    let new = after["epoch"].as_str().unwrap();
    assert_ne!(new, old);
    let mut c = Client::connect(&one).await;
    let s = subscribe(&mut c, "s", "/topic/news/x", Some((1, &old))).await;
    assert_eq!(s.recovered(), Some("false"));
    assert!(s.messages.is_empty());
    assert_eq!(s.position(), (1, new.to_owned()));
}

/// Publishes until Redis takes it: a node that lost its link answers 503
/// for a destination with history, and the backend tries again.
async fn publish_kept(gw: &Gateway, destination: &str, body: &str) -> u64 {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, answer) = try_publish(gw, destination, body).await;
        match status {
            200 => return answer["offset"].as_u64().expect("an offset"),
            503 => {
                assert!(Instant::now() < until, "Redis never took it: {answer}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => panic!("{status} {answer}"),
        }
    }
}

#[actix_rt::test]
async fn clients_that_stay_connected_miss_nothing_when_the_pubsub_link_drops() {
    const TOTAL: u64 = 600;
    let redis = Redis::start();
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut clients = Vec::new();
    let mut epoch = String::new();
    for i in 0..6 {
        let mut c = Client::connect(if i % 2 == 0 { &one } else { &two }).await;
        epoch = subscribe(&mut c, "s", "/topic/news/link", None)
            .await
            .position()
            .1;
        clients.push(c);
    }
    // Node two loses its pub/sub link three times while both publish: node
    // one's publications meanwhile reach its clients only through history.
    let kills = std::cell::Cell::new(0);
    let publishers = futures_util::future::join_all((0..2).map(|p| {
        let (one, two, redis, kills) = (&one, &two, &redis, &kills);
        async move {
            for i in 0..TOTAL / 2 {
                // One through each node: node one's go on while node two's
                // link is down.
                let gw = if p == 0 { one } else { two };
                publish_kept(gw, "/topic/news/link", &format!("{p}-{i}")).await;
                if p == 0 && i % 100 == 50 {
                    // Once node two is linked again after the last kill.
                    let until = Instant::now() + Duration::from_secs(5);
                    while !redis.kill_pubsub_of(two.pid()) {
                        assert!(Instant::now() < until, "node two never linked again");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    kills.set(kills.get() + 1);
                }
            }
        }
    }));
    let readers = futures_util::future::join_all(clients.iter_mut().enumerate().map(|(who, c)| {
        let epoch = epoch.clone();
        async move {
            let mut seen = Seen { last: 0, epoch };
            while seen.last < TOTAL {
                seen.take(&got(c.next().await), who);
            }
        }
    }));
    futures_util::join!(publishers, readers);
    assert_eq!(kills.get(), 3);
}

on_each_store!(the_clients_of_a_killed_node_recover_everything_on_another);
async fn the_clients_of_a_killed_node_recover_everything_on_another(redis: Store) {
    let (mut one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let alice = format!("Bearer {}", token(SECRET, "alice", 60));
    let mut tab = Client::connect_with(&one, &[("Authorization", &alice)]).await;
    let topic = subscribe(&mut tab, "t", "/topic/news/x", None)
        .await
        .position();
    let queue = subscribe(&mut tab, "q", "/user/queue/n", None)
        .await
        .position();
    one.signal(9);
    one.wait_exit(Duration::from_secs(5)).await.expect("killed");
    for i in 1..=50 {
        publish(&two, "/topic/news/x", &i.to_string()).await;
        let (status, _) = api(
            &two,
            "POST",
            "/api/users/alice/send",
            &json!({"destination": "/user/queue/n", "body": i.to_string()}).to_string(),
        )
        .await;
        assert_eq!(status, 200);
    }
    let mut tab = Client::connect_with(&two, &[("Authorization", &alice)]).await;
    for (id, d, (offset, epoch)) in [
        ("t", "/topic/news/x", &topic),
        ("q", "/user/queue/n", &queue),
    ] {
        let s = subscribe(&mut tab, id, d, Some((*offset, epoch))).await;
        assert_eq!(s.recovered(), Some("true"), "{d}");
        let offsets: Vec<u64> = s.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (1..=50).collect::<Vec<_>>(), "{d}");
    }
}

/// A single node, or a node on `redis`, whose `/topic/news/**` history
/// lives `ttl` seconds, with `extra` service keys.
fn short_lived(redis: Option<&dyn Shared>, ttl: u64, extra: &str) -> Gateway {
    let cluster = redis.map_or(String::new(), |r| {
        format!(
            "[cluster]\n{}\nsecret = \"test-cluster-secret-0123456789abcdef\"\n\
             node_id = \"one\"\npresence_interval = 0.2\n",
            r.config()
        )
    });
    Gateway::start(&format!(
        "{cluster}{API}key = \"{KEY}\"\nmetrics = true\n{}",
        config(&format!(
            "{extra}\n[[services.stomp.history]]\n\
             destinations = [\"/topic/news/**\"]\nsize = 100\nttl = {ttl}\n"
        ))
    ))
}

/// Subscribes without recovering (so it is told a mark), leaves, and
/// has `body` published meanwhile; the mark.
async fn away_from_a_mark(gw: &Gateway, destination: &str, body: &str) -> String {
    let mut c = Client::connect(gw).await;
    let (offset, mark) = subscribe(&mut c, "s", destination, None).await.position();
    assert_eq!(offset, 0);
    assert!(mark.starts_with('@'), "{mark}");
    drop(c);
    publish(gw, destination, body).await;
    mark
}

on_each_store!(a_mark_recovers_what_followed_it_and_a_stream_gone_since_is_a_loss);
/// Issue 28, finding 1: no read makes a stream, so a fresh subscription is
/// told a mark; recovering from it is exact. A stream made after the mark
/// and gone (its `ttl`) while the client was away is a loss, and says so;
/// one still there is recovered whole.
async fn a_mark_recovers_what_followed_it_and_a_stream_gone_since_is_a_loss(redis: Store) {
    // Redis's marks are set a second early (clocks), so its ttl is longer.
    for (redis, ttl) in [(None, 2), (Some(&redis as &dyn Shared), 4)] {
        let gw = short_lived(redis, ttl, "");
        if redis.is_some() {
            until_joined(&[&gw]).await;
        }
        let kept = away_from_a_mark(&gw, "/topic/news/kept", "while away").await;
        let lost = away_from_a_mark(&gw, "/topic/news/lost", "gone since").await;
        let mut c = Client::connect(&gw).await;
        let s = subscribe(&mut c, "k", "/topic/news/kept", Some((0, &kept))).await;
        assert_eq!(s.recovered(), Some("true"), "{kept}");
        assert_eq!(bodies(&s.messages), ["while away"]);
        assert_eq!(s.position().0, 1);
        // Past the ttl, the stream made since the mark is gone.
        tokio::time::sleep(Duration::from_millis(ttl * 1000 + 1500)).await;
        let s = subscribe(&mut c, "l", "/topic/news/lost", Some((0, &lost))).await;
        assert_eq!(s.recovered(), Some("false"), "redis: {}", redis.is_some());
        assert!(s.messages.is_empty());
        // And again with a new stream made since: still a loss.
        publish(&gw, "/topic/news/lost", "new").await;
        let s = subscribe(&mut c, "m", "/topic/news/lost", Some((0, &lost))).await;
        assert_eq!(s.recovered(), Some("false"), "redis: {}", redis.is_some());
    }
}

/// A subscription on a node that delivers the destination already is told
/// the position of the last publication delivered there, with no read:
/// exactly what it recovers from later.
#[actix_rt::test]
async fn a_subscription_is_told_the_last_position_its_node_delivered() {
    let gw = single(100, "");
    let mut a = Client::connect(&gw).await;
    subscribe(&mut a, "s", "/topic/news/k", None).await;
    let mut epoch = String::new();
    for i in 1..=3 {
        epoch = publish(&gw, "/topic/news/k", &i.to_string()).await["epoch"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(got(a.next().await).offset, i);
    }
    let mut b = Client::connect(&gw).await;
    let s = subscribe(&mut b, "s", "/topic/news/k", None).await;
    assert_eq!(s.position(), (3, epoch.clone()));
    drop(b);
    for i in 4..=5 {
        publish(&gw, "/topic/news/k", &i.to_string()).await;
    }
    let mut b = Client::connect(&gw).await;
    let s = subscribe(&mut b, "s", "/topic/news/k", Some((3, &epoch))).await;
    assert_eq!(s.recovered(), Some("true"));
    assert_eq!(bodies(&s.messages), ["4", "5"]);
}

/// Issue 28, finding 1: whatever clients publish, the in-memory history of
/// a service costs at most `history_max_bytes`; the streams published to
/// least recently go, and a client holding a position in one is told
/// `x-recovered: false`.
#[actix_rt::test]
async fn in_memory_history_stays_within_its_bytes() {
    let cap = 40_000;
    let gw = short_lived(None, 600, &format!("history_max_bytes = {cap}"));
    let body = "b".repeat(100);
    let mut positions = Vec::new();
    for i in 0..300 {
        let answer = publish(&gw, &format!("/topic/news/{i}"), &body).await;
        positions.push(answer["epoch"].as_str().unwrap().to_owned());
    }
    let bytes = metric(&gw, "sockjs_gateway_history_bytes").await;
    assert!(bytes <= cap as f64 && bytes > cap as f64 / 2.0, "{bytes}");
    let streams = metric(&gw, "sockjs_gateway_history_streams").await;
    assert!(streams < 300.0 && streams > 10.0, "{streams}");
    assert_eq!(
        metric(&gw, "sockjs_gateway_history_evicted_total").await,
        300.0 - streams
    );
    let mut c = Client::connect(&gw).await;
    let first = subscribe(&mut c, "a", "/topic/news/0", Some((1, &positions[0]))).await;
    assert_eq!(first.recovered(), Some("false"), "the oldest went first");
    let last = subscribe(&mut c, "b", "/topic/news/299", Some((0, &positions[299]))).await;
    assert_eq!(last.recovered(), Some("true"));
    assert_eq!(bodies(&last.messages), [body.as_str()]);
}

/// A MESSAGE as it came: body, offset, epoch, and whether it told a loss.
async fn next_told(c: &mut Client) -> (String, u64, String, bool) {
    let (cmd, h, body) = c.next().await;
    assert_eq!(cmd, "MESSAGE", "{h:?} {body}");
    let offset = header(&h, "x-stream-offset")
        .expect("an offset")
        .parse()
        .unwrap();
    let epoch = header(&h, "x-stream-epoch").expect("an epoch").to_owned();
    (
        body,
        offset,
        epoch,
        header(&h, "x-recovered") == Some("false"),
    )
}

on_each_store!(a_node_fills_what_it_missed_for_subscriptions_told_a_mark);
/// Issue 29: a node whose subscriptions have no position yet (they were
/// told a mark) and whose link drops reads back what it missed meanwhile
/// from their mark; it skipped such keys before.
async fn a_node_fills_what_it_missed_for_subscriptions_told_a_mark(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut c = Client::connect(&one).await;
    let (_, mark) = subscribe(&mut c, "s", "/topic/news/h", None)
        .await
        .position();
    assert!(mark.starts_with('@'));
    // Node one stops, loses its pub/sub link, and a publication is made
    // meanwhile: it never sees it live.
    one.signal(libc::SIGSTOP);
    assert!(redis.kill_pubsub_of(one.pid()));
    publish(&two, "/topic/news/h", "missed").await;
    one.signal(libc::SIGCONT);
    publish_kept(&two, "/topic/news/h", "after").await;
    let (body, offset, _, told) = next_told(&mut c).await;
    assert_eq!((body.as_str(), offset, told), ("missed", 1, false));
    let (body, offset, _, _) = next_told(&mut c).await;
    assert_eq!((body.as_str(), offset), ("after", 2));
}

/// Issue 29, the 2,888 silent losses: a node paused while Redis restarts
/// empty relinks after the others published the new epoch's first
/// offsets. Its clients are told they may have missed the old epoch's
/// last publications, then get the new epoch from offset 1, in order.
#[actix_rt::test]
async fn a_node_that_relinks_into_a_new_epoch_tells_and_reads_it_from_the_start() {
    let mut redis = Redis::start();
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut c = Client::connect(&one).await;
    subscribe(&mut c, "s", "/topic/news/e", None).await;
    for i in 1..=3 {
        publish(&two, "/topic/news/e", &format!("old{i}")).await;
        assert_eq!(next_told(&mut c).await.1, i);
    }
    one.signal(libc::SIGSTOP);
    redis.restart();
    let mut epoch = String::new();
    for i in 1..=5 {
        let answer = publish_kept(&two, "/topic/news/e", &format!("new{i}")).await;
        assert_eq!(answer, i);
    }
    let (_, kept) = api(&two, "GET", "/api/history?destination=/topic/news/e", "").await;
    epoch.push_str(kept["epoch"].as_str().unwrap());
    one.signal(libc::SIGCONT);
    let (body, offset, told_epoch, told) = next_told(&mut c).await;
    assert!(told, "the loss is told first: {body:?} at {offset}");
    assert_eq!(
        (body.as_str(), offset, told_epoch.as_str()),
        ("", 0, epoch.as_str())
    );
    for i in 1..=5 {
        let (body, offset, e, told) = next_told(&mut c).await;
        assert_eq!(
            (body, offset, e, told),
            (format!("new{i}"), i, epoch.clone(), false)
        );
    }
    publish_kept(&two, "/topic/news/e", "new6").await;
    assert_eq!(next_told(&mut c).await.0, "new6");
}

on_each_store!(publishing_goes_on_while_a_nodes_subscription_is_down);
/// Issue 29: killing only a node's pub/sub connection made its API answer
/// 503 though Redis and its publishing connection were fine. Publishing
/// does not wait on the subscription: every publication is taken, and
/// every client, on either node, gets each once, in order.
async fn publishing_goes_on_while_a_nodes_subscription_is_down(redis: Store) {
    const TOTAL: u64 = 200;
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut clients = Vec::new();
    for gw in [&one, &two] {
        let mut c = Client::connect(gw).await;
        subscribe(&mut c, "s", "/topic/news/sub", None).await;
        clients.push(c);
    }
    let kills = std::cell::Cell::new(0);
    let publisher = async {
        for i in 1..=TOTAL {
            let (status, answer) = try_publish(&two, "/topic/news/sub", &i.to_string()).await;
            assert_eq!(status, 200, "publication {i}: {answer}");
            if i % 60 == 30 && redis.kill_pubsub_of(two.pid()) {
                kills.set(kills.get() + 1);
            }
        }
    };
    let readers =
        futures_util::future::join_all(clients.iter_mut().enumerate().map(|(who, c)| async move {
            let mut seen = Seen {
                last: 0,
                epoch: "@".to_owned(),
            };
            while seen.last < TOTAL {
                let m = got(c.next().await);
                seen.take(&m, who);
                assert_eq!(m.body, m.offset.to_string());
            }
        }));
    futures_util::join!(publisher, readers);
    assert!(
        kills.get() >= 2,
        "the subscription was killed {} times",
        kills.get()
    );
}
