//! What the failover tests share (Sentinel, Redis Cluster): subscribers
//! that gather what they get, a publisher that tries again until a
//! publication is acknowledged, and a wait for every subscriber.

use super::stomp::*;
use super::*;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a [`subscriber`] got, in order.
pub type Got = Rc<RefCell<Vec<String>>>;

/// A STOMP client on `gw` subscribed to `topic`, whose MESSAGEs are
/// gathered (as `body`, or `LOSS` for an `x-recovered: false`) until it is
/// dropped. No heart-beats: it idles through a failover.
pub async fn subscriber(gw: &Gateway, topic: &str) -> Got {
    let mut c = Client::open(gw).await;
    c.frame(
        "CONNECT",
        &[("accept-version", "1.2"), ("heart-beat", "0,0")],
        "",
    )
    .await;
    assert_eq!(c.next().await.0, "CONNECTED");
    c.subscribe("s", topic).await;
    let got = Rc::new(RefCell::new(Vec::new()));
    let into = got.clone();
    actix_rt::spawn(async move {
        loop {
            let (cmd, headers, body) = c.next().await;
            assert_eq!(cmd, "MESSAGE", "{headers:?} {body}");
            let seen = match header(&headers, "x-recovered") {
                Some("false") => {
                    eprintln!("a loss told: {headers:?}");
                    "LOSS".to_owned()
                }
                _ => body,
            };
            into.borrow_mut().push(seen);
        }
    });
    got
}

/// Publishes `n` to `topic` with the idempotency key `k-n` through `nodes`
/// in turn, again on any answer but 200, until one is 200; returns which
/// node answered it. Anything but 200, 503 and 504 fails the test.
pub async fn publish_until_acked(
    nodes: &[&Gateway],
    topic: &str,
    n: usize,
    deadline: Instant,
) -> usize {
    let body =
        json!({"destination": topic, "body": n.to_string(), "idempotency_key": format!("k-{n}")});
    for attempt in 0.. {
        let i = (n + attempt) % nodes.len();
        let (status, answer) = api(nodes[i], "POST", "/api/publish", &body.to_string()).await;
        match status {
            200 => return i,
            503 => assert_eq!(answer["published"], json!(false), "{answer}"),
            504 => assert_eq!(answer["published"], json!("unknown"), "{answer}"),
            other => panic!("publication {n}: {other} {answer}"),
        }
        // Shown when the test fails.
        eprintln!("publication {n}: {status} {answer}; again");
        assert!(
            Instant::now() < deadline,
            "publication {n} was never acknowledged: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// Until every gathered list ends with `last`, or `within`.
pub async fn until_all_got(lists: &[&Got], last: &str, within: Duration) {
    let until = Instant::now() + within;
    while !lists
        .iter()
        .all(|l| l.borrow().last().map(String::as_str) == Some(last))
    {
        assert!(
            Instant::now() < until,
            "not every client got {last}: {:?}",
            lists
                .iter()
                .map(|l| l.borrow().iter().rev().take(3).cloned().collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
