//! Answers that say whether a publication went out, and retries that
//! deliver once (issue 29, items 2 and 3): `POST /api/publish` and
//! `/api/users/{user}/send` with an `idempotency_key`, on one node (in
//! memory) and on many (claimed in Redis with the offset), and what a
//! publication answers when Redis is down (`503`, nothing went out) or
//! took it without answering in time (`504`, it may have).
mod common;
use common::redis::Redis;
use common::stomp::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// History for `/topic/news/**`; `/topic/plain` keeps none.
fn stomp(extra: &str) -> String {
    config(&format!(
        "{extra}\n[[services.stomp.history]]\ndestinations = [\"/topic/news/**\"]\n"
    ))
}

fn single() -> Gateway {
    Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n{}",
        stomp("")
    ))
}

/// A node on `redis` whose Redis requests time out after `timeout` s.
fn node(redis: &Redis, id: &str, timeout: f64) -> Gateway {
    Gateway::start(&format!(
        "[cluster]\nredis_url = \"{}\"\nsecret = \"test-cluster-secret-0123456789abcdef\"\n\
         node_id = \"{id}\"\npresence_interval = 0.2\nrequest_timeout = {timeout}\n\
         [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n{}",
        redis.url(),
        stomp("")
    ))
}

async fn publish(gw: &Gateway, destination: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut p = json!({ "destination": destination, "body": body });
    if let Some(k) = key {
        p["idempotency_key"] = json!(k);
    }
    api(gw, "POST", "/api/publish", &p.to_string()).await
}

/// The bodies of the next MESSAGEs `c` gets, up to and including `last`.
async fn bodies_until(c: &mut Client, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let (cmd, _, body) = c.next().await;
        assert_eq!(cmd, "MESSAGE");
        got.push(body.clone());
        if body == last {
            return got;
        }
    }
}

#[actix_rt::test]
async fn a_retry_with_the_same_key_publishes_nothing_on_one_node() {
    let gw = single();
    let mut c = Client::connect(&gw).await;
    c.subscribe("n", "/topic/news/a").await;
    c.subscribe("p", "/topic/plain").await;
    let (status, first) = publish(&gw, "/topic/news/a", "once", Some("k-1")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["delivered"], 1);
    assert_eq!(first.get("duplicate"), None);
    let (status, again) = publish(&gw, "/topic/news/a", "once", Some("k-1")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again,
        json!({"delivered": 0, "offset": first["offset"], "epoch": first["epoch"], "duplicate": true})
    );
    // Without history: the same, with no position.
    for expected in [
        json!({"delivered": 1}),
        json!({"delivered": 0, "duplicate": true}),
    ] {
        let (status, answer) = publish(&gw, "/topic/plain", "plain once", Some("k-1")).await;
        assert_eq!((status, answer), (200, expected));
    }
    // Another key, or another destination with the same key: published.
    publish(&gw, "/topic/news/a", "other key", Some("k-2")).await;
    let (_, other) = publish(&gw, "/topic/news/b", "other destination", Some("k-1")).await;
    assert_eq!(other.get("duplicate"), None, "{other}");
    publish(&gw, "/topic/news/a", "end", None).await;
    publish(&gw, "/topic/plain", "end", None).await;
    let got = bodies_until(&mut c, "end").await;
    let got2 = bodies_until(&mut c, "end").await;
    let mut all: Vec<String> = got.into_iter().chain(got2).collect();
    all.sort();
    assert_eq!(all, ["end", "end", "once", "other key", "plain once"]);
    // A user's queue takes a key too.
    let send = json!({"destination": "/user/queue/n", "body": "b", "idempotency_key": "u"});
    let (_, one) = api(&gw, "POST", "/api/users/alice/send", &send.to_string()).await;
    let (_, two) = api(&gw, "POST", "/api/users/alice/send", &send.to_string()).await;
    assert_eq!(
        (one.get("duplicate"), &two["duplicate"]),
        (None, &json!(true))
    );
}

#[actix_rt::test]
async fn an_idempotency_key_is_a_short_string() {
    let gw = single();
    let long = "k".repeat(129);
    for key in [json!(""), json!(long), json!(12)] {
        let p = json!({"destination": "/topic/news/a", "body": "x", "idempotency_key": key});
        let (status, answer) = api(&gw, "POST", "/api/publish", &p.to_string()).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some("idempotency_key"))
        );
    }
    let p =
        json!({"destination": "/topic/news/a", "body": "x", "idempotency_key": "k".repeat(128)});
    assert_eq!(
        api(&gw, "POST", "/api/publish", &p.to_string()).await.0,
        200
    );
}

/// Two racing retries on two nodes publish once: the key is claimed by
/// the script that gives the offset.
#[actix_rt::test]
async fn racing_retries_on_two_nodes_publish_once() {
    let redis = Redis::start();
    let (one, two) = (node(&redis, "one", 2.0), node(&redis, "two", 2.0));
    until_joined(&[&one, &two]).await;
    let mut c = Client::connect(&one).await;
    c.subscribe("n", "/topic/news/race").await;
    c.subscribe("p", "/topic/plain").await;
    for destination in ["/topic/news/race", "/topic/plain"] {
        let tries = (0..16).map(|i| {
            let gw = if i % 2 == 0 { &one } else { &two };
            publish(gw, destination, "the one", Some("race-key"))
        });
        let answers = futures_util::future::join_all(tries).await;
        assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
        let firsts: Vec<&Value> = answers
            .iter()
            .map(|(_, a)| a)
            .filter(|a| a.get("duplicate").is_none())
            .collect();
        assert_eq!(firsts.len(), 1, "{answers:?}");
        // Every duplicate names the one publication.
        for (_, a) in &answers {
            assert_eq!(
                (&a["offset"], &a["epoch"]),
                (&firsts[0]["offset"], &firsts[0]["epoch"])
            );
        }
        publish(&one, destination, "after", None).await;
        assert_eq!(bodies_until(&mut c, "after").await, ["the one", "after"]);
    }
}

/// Publishes until Redis takes it again after an outage.
async fn until_published(gw: &Gateway, destination: &str, body: &str, key: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, answer) = publish(gw, destination, body, Some(key)).await;
        if status == 200 {
            return answer;
        }
        assert!([503, 504].contains(&status), "{status} {answer}");
        assert!(Instant::now() < until, "never published: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 29: a publication Redis took but did not answer in time was
/// later delivered though the API said 503. It says 504, "unknown", and a
/// retry with its key is told it went out, delivering nothing twice. A
/// publication Redis never got is a 503, `"published": false`.
#[actix_rt::test]
async fn a_timeout_says_unknown_and_a_retry_delivers_once() {
    let mut redis = Redis::start();
    let gw = node(&redis, "one", 0.5);
    until_joined(&[&gw]).await;
    let mut c = Client::connect(&gw).await;
    c.subscribe("n", "/topic/news/t").await;
    publish(&gw, "/topic/news/t", "before", None).await;
    assert_eq!(bodies_until(&mut c, "before").await, ["before"]);
    // Redis stops answering: it will run what it got once it goes on.
    redis.pause();
    let (status, answer) = publish(&gw, "/topic/news/t", "taken", Some("t-1")).await;
    redis.resume();
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["published"], "unknown", "{answer}");
    let again = until_published(&gw, "/topic/news/t", "taken", "t-1").await;
    assert_eq!(again["duplicate"], true, "{again}");
    publish(&gw, "/topic/news/t", "after", None).await;
    assert_eq!(bodies_until(&mut c, "after").await, ["taken", "after"]);
    // Redis gone: once the node knows it, nothing goes out, and the
    // answer says so (a request on a connection that just broke may have
    // reached Redis: 504 until then).
    redis.kill();
    let until = Instant::now() + Duration::from_secs(10);
    let (status, answer) = loop {
        let (status, answer) = publish(&gw, "/topic/news/t", "refused", Some("t-2")).await;
        if status == 503 || Instant::now() > until {
            break (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (status, &answer["published"]),
        (503, &json!(false)),
        "{answer}"
    );
    // Back: the retry publishes it, once.
    redis.restart();
    let published = until_published(&gw, "/topic/news/t", "refused", "t-2").await;
    assert_eq!(published.get("duplicate"), None, "{published}");
}
