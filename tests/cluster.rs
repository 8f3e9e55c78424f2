//! Many nodes on one Redis (`[cluster]`), against real `redis-server` and
//! gateway processes: publications reach every node's clients once, an
//! HTTP session is served through any node, a dead node's sessions close at
//! once, and a Redis outage degrades to local delivery and recovers.
mod common;
use common::redis::Redis;
use common::stomp::*;
use common::store::{Shared, Store};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// A node named `id` with a broadcast service at `/chat`, echo at `/echo`,
/// STOMP at `/stomp` and the API.
fn node(redis: &impl Shared, id: &str) -> Gateway {
    node_with(redis, id, "")
}

/// [`node`] with more `[cluster]` keys.
fn node_with(redis: &impl Shared, id: &str, cluster: &str) -> Gateway {
    Gateway::start(&format!(
        "{}{cluster}\n\
         [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n\
         [services.chat]\nprefix = \"/chat\"\nkind = \"broadcast\"\n\
         [services.echo]\nprefix = \"/echo\"\nkind = \"echo\"\n{}",
        cluster_section(redis, id),
        config("")
    ))
}

/// The `[cluster]` table of node `id` on `redis`.
fn cluster_section(redis: &impl Shared, id: &str) -> String {
    format!(
        "[cluster]\n{}\nsecret = \"{CLUSTER_SECRET}\"\nnode_id = \"{id}\"\n\
         presence_interval = 0.2\n",
        redis.config()
    )
}

/// An HTTP session opened on node `one`, and a poll for it sent through
/// node `two` that `one` now holds as the session's receiver.
async fn forwarded_poll(one: &Gateway, two: &Gateway) -> (String, Raw) {
    let s = session("/echo");
    assert_eq!(post(&one.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let mut pending = Raw::connect(&two.addr).await;
    pending
        .send("POST", &format!("{s}/xhr"), "1.1", &[], "")
        .await;
    assert_eq!(pending.head().await.status, 200);
    (s, pending)
}

async fn chat(gw: &Gateway) -> Ws {
    let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/chat")))).await;
    assert_eq!(ws.recv().await, "o");
    ws
}

on_each_store!(a_broadcast_reaches_every_node_exactly_once);
async fn a_broadcast_reaches_every_node_exactly_once(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut a = chat(&one).await;
    let mut b = chat(&two).await;
    // A polling client on node two too.
    let p = two.url(&session("/chat"));
    assert_eq!(post(&format!("{p}/xhr"), "").await.body, "o\n");

    a.send(r#"["hello"]"#).await;
    assert_eq!(a.recv().await, r#"a["hello"]"#);
    assert_eq!(b.recv().await, r#"a["hello"]"#);
    assert_eq!(post(&format!("{p}/xhr"), "").await.body, "a[\"hello\"]\n");
    // The next frame everyone gets is the next message: nothing twice.
    b.send(r#"["again"]"#).await;
    assert_eq!(a.recv().await, r#"a["again"]"#);
    assert_eq!(b.recv().await, r#"a["again"]"#);
    assert_eq!(post(&format!("{p}/xhr"), "").await.body, "a[\"again\"]\n");
    // One publication each way, counted by both ends.
    for gw in [&one, &two] {
        let text = get(&gw.api_url("/metrics")).await.body;
        for (name, n) in [
            ("sockjs_gateway_cluster_publishes_sent_total", 1.0),
            ("sockjs_gateway_cluster_publishes_received_total", 1.0),
            ("sockjs_gateway_cluster_redis_connected", 1.0),
        ] {
            assert_eq!(metric_value(&text, name), Some(n), "{name}:\n{text}");
        }
    }
}

on_each_store!(stomp_publications_users_and_counts_span_the_nodes);
async fn stomp_publications_users_and_counts_span_the_nodes(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let alice = format!("Bearer {}", token(SECRET, "alice", 60));
    let mut tab = Client::connect_with(&two, &[("Authorization", &alice)]).await;
    tab.subscribe("n", "/user/queue/notifications").await;
    tab.subscribe("t", "/topic/news").await;
    let mut here = Client::connect(&one).await;
    here.subscribe("t", "/topic/news").await;
    // Node one counts node two's subscribers once its presence is read.
    until_api(&one, "/api/destinations?prefix=/topic/", |b| {
        b["destinations"] == json!([{"destination": "/topic/news", "subscribers": 2}])
    })
    .await;
    let (_, user) = api(&one, "GET", "/api/users/alice", "").await;
    assert_eq!(
        user,
        json!({"user": "alice", "sessions": 1, "cluster": "up"})
    );

    let (status, body) = api(
        &one,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/news", "body": "extra"}"#,
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"delivered": 2, "cluster": "up"}))
    );
    assert_eq!(tab.next().await.2, "extra");
    assert_eq!(here.next().await.2, "extra");

    // A client's SEND on node one reaches node two's subscribers.
    here.frame(
        "SEND",
        &[("destination", "/user/alice/queue/notifications")],
        "hi",
    )
    .await;
    let (cmd, h, text) = tab.next().await;
    assert_eq!((cmd.as_str(), text.as_str()), ("MESSAGE", "hi"));
    assert_eq!(header(&h, "subscription"), Some("n"));

    let (_, body) = api(
        &one,
        "POST",
        "/api/users/alice/send",
        r#"{"destination": "/user/queue/notifications", "body": "for alice"}"#,
    )
    .await;
    assert_eq!(body["delivered"], 1);
    assert_eq!(tab.next().await.2, "for alice");

    let (_, body) = api(&one, "POST", "/api/users/alice/disconnect", "").await;
    assert_eq!(body["disconnected"], 1);
    assert_eq!(tab.next().await.0, "ERROR");
    assert_eq!(
        tab.ws.recv().await,
        r#"c[4410,"Disconnected by the server"]"#
    );
}

on_each_store!(publications_through_different_nodes_keep_their_order_everywhere);
/// A backend publishing through a load balancer reaches a different node
/// each time: its publications, each sent once the last was answered, keep
/// their order on every node (each node delivers its own publications in
/// the order Redis gives them too, not before the others' it answered).
async fn publications_through_different_nodes_keep_their_order_everywhere(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut clients = Vec::new();
    for gw in [&one, &two, &one, &two] {
        let mut c = Client::connect(gw).await;
        c.subscribe("t", "/topic/order").await;
        clients.push(c);
    }
    until_api(&one, "/api/destinations?prefix=/topic/", |b| {
        b["destinations"] == json!([{"destination": "/topic/order", "subscribers": 4}])
    })
    .await;
    let sent: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    for (i, body) in sent.iter().enumerate() {
        let via = if i % 2 == 0 { &one } else { &two };
        let publication = json!({"destination": "/topic/order", "body": body}).to_string();
        let (status, answer) = api(via, "POST", "/api/publish", &publication).await;
        assert_eq!((status, &answer["delivered"]), (200, &json!(4)), "{answer}");
    }
    for c in &mut clients {
        let mut got = Vec::new();
        for _ in &sent {
            got.push(c.next().await.2);
        }
        assert_eq!(got, sent);
    }
}

/// A node delivers its own publications when Redis echoes them; one sent
/// to a Redis that hangs and dies without echoing it still reaches the
/// node's clients, once, when the link is found lost. The API waits for
/// Redis as long as `request_timeout` says.
#[actix_rt::test]
async fn a_publication_redis_never_echoed_is_delivered_here_once() {
    let mut redis = Redis::start();
    let one = node_with(&redis, "one", "request_timeout = 1");
    until_joined(&[&one]).await;
    let mut c = Client::connect(&one).await;
    c.subscribe("t", "/topic/x").await;
    redis.pause();
    let stuck = r#"{"destination": "/topic/x", "body": "stuck"}"#;
    // Answered once the publication was sent and not acknowledged in time.
    let asked = Instant::now();
    let (status, body) = api(&one, "POST", "/api/publish", stuck).await;
    assert_eq!((status, &body["delivered"]), (200, &json!(1)), "{body}");
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    redis.kill();
    assert_eq!(c.next().await.2, "stuck");
    redis.restart();
    until_joined(&[&one]).await;
    let next = r#"{"destination": "/topic/x", "body": "next"}"#;
    api(&one, "POST", "/api/publish", next).await;
    // The next message is the next publication: nothing twice.
    assert_eq!(c.next().await.2, "next");
}

/// The messages of the `a` frames in `body`.
fn messages(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix('a'))
        .flat_map(|a| serde_json::from_str::<Vec<String>>(a).unwrap())
        .collect()
}

on_each_store!(an_http_session_is_served_through_any_node);
async fn an_http_session_is_served_through_any_node(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    // Opened on node one; sends and polls alternate between the nodes, as
    // a round-robin balancer would send them.
    let s = session("/echo");
    assert_eq!(post(&one.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let nodes = [&one, &two];
    for i in 0..20 {
        let r = post(
            &nodes[i % 2].url(&format!("{s}/xhr_send")),
            &format!("[\"m{i}\"]"),
        )
        .await;
        assert_eq!(r.status, 204, "send {i}: {}", r.body);
    }
    let mut got = Vec::new();
    let mut polls = 0;
    while got.len() < 20 {
        let r = post(&nodes[(polls + 1) % 2].url(&format!("{s}/xhr")), "").await;
        assert_eq!(r.status, 200);
        got.extend(messages(&r.body));
        polls += 1;
    }
    let sent: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(got, sent);
    let forwarded = |gw: &Gateway| {
        let url = gw.api_url("/metrics");
        async move {
            let text = get(&url).await.body;
            metric_value(&text, "sockjs_gateway_cluster_forwarded_requests_total").unwrap()
        }
    };
    // Node two forwarded its 10 sends and at least one poll; node one,
    // which holds the session, nothing.
    assert!(forwarded(&two).await >= 11.0);
    assert_eq!(forwarded(&one).await, 0.0);
    // Over a link (one per worker that forwarded), not a request each.
    let links = |gw: &Gateway| {
        let url = gw.api_url("/metrics");
        async move { metric_value(&get(&url).await.body, "sockjs_gateway_cluster_links").unwrap() }
    };
    assert!(links(&two).await >= 1.0);
    assert_eq!(links(&one).await, 0.0);

    // A stream through node two, fed by a send through node one.
    let mut stream = Stream::open("POST", &two.url(&format!("{s}/xhr_streaming"))).await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.read_exact(2049).await,
        format!("{}\n", "h".repeat(2048))
    );
    post(&one.url(&format!("{s}/xhr_send")), r#"["streamed"]"#).await;
    assert_eq!(
        stream.next_line().await.as_deref(),
        Some("a[\"streamed\"]\n")
    );
}

on_each_store!(a_forwarded_poll_whose_client_leaves_frees_its_session_at_once);
async fn a_forwarded_poll_whose_client_leaves_frees_its_session_at_once(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let (s, pending) = forwarded_poll(&one, &two).await;
    // The owner holds the forwarded poll as its session's receiver...
    assert_eq!(
        post(&one.url(&format!("{s}/xhr")), "").await.body,
        "c[2010,\"Another connection still open\"]\n"
    );
    // ...until its client, on the other node, goes away.
    drop(pending);
    assert_eq!(
        poll_after_abort(&one, &s).await,
        "c[1002,\"Connection interrupted\"]\n"
    );
}

on_each_store!(a_node_that_shuts_down_closes_forwarded_polls_and_its_links);
async fn a_node_that_shuts_down_closes_forwarded_polls_and_its_links(redis: Store) {
    // A grace far longer than the test waits: an open link would hold the
    // graceful stop that long.
    let mut one = node_with(&redis, "one", "[shutdown]\ngrace = 30");
    let two = node(&redis, "two");
    until_joined(&[&one, &two]).await;
    let (_, mut pending) = forwarded_poll(&one, &two).await;
    one.signal(libc::SIGTERM);
    // The poll through the other node hears the shutdown...
    assert!(pending
        .read_until("\r\n0\r\n\r\n")
        .await
        .contains("c[1001,\"Server shutting down\"]"));
    // ...and the node stops without waiting for its grace.
    assert!(one.wait_exit(Duration::from_secs(10)).await.is_some());
}

on_each_store!(a_forwarded_stream_to_a_slow_reader_loses_nothing);
async fn a_forwarded_stream_to_a_slow_reader_loses_nothing(redis: Store) {
    // Streams long enough to carry everything, and a session queue that
    // holds it while the reader does not read.
    let big = "[services.big]\nprefix = \"/big\"\nkind = \"echo\"\n\
               response_limit = 33554432\nmax_queued_bytes = 33554432\n";
    let start = |id: &str| {
        Gateway::start(&format!(
            "{}[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n{big}",
            cluster_section(&redis, id)
        ))
    };
    let (one, two) = (start("one"), start("two"));
    until_joined(&[&one, &two]).await;
    let s = session("/big");
    assert_eq!(post(&one.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let mut stream = Stream::open("POST", &two.url(&format!("{s}/xhr_streaming"))).await;
    assert_eq!(stream.status, 200);
    stream.read_exact(2049).await;
    // 8 MiB while nobody reads: far more than the link lets the owner send
    // ahead (256 KiB), so the owner waits for the reader and sends on as
    // it reads.
    let pad = "x".repeat(16 * 1024);
    let count = 512;
    for i in 0..count {
        let r = post(
            &one.url(&format!("{s}/xhr_send")),
            &format!("[\"{i} {pad}\"]"),
        )
        .await;
        assert_eq!(r.status, 204, "send {i}: {}", r.body);
    }
    for i in 0..count {
        let line = stream.next_line().await.expect("the stream goes on");
        assert_eq!(line, format!("a[\"{i} {pad}\"]\n"), "message {i}");
    }
}

on_each_store!(a_node_that_takes_no_link_is_forwarded_to_over_http);
async fn a_node_that_takes_no_link_is_forwarded_to_over_http(redis: Store) {
    use actix_web::{web, HttpRequest, HttpResponse};
    // One worker: links are per worker, so is the memory of a refusal.
    let two = Gateway::start(&format!(
        "workers = 1\n{}[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n{}",
        cluster_section(&redis, "two"),
        echo_config("")
    ));
    until_joined(&[&two]).await;
    // A node of an earlier version: it knows no link (404 at its path),
    // and answers a forwarded poll over HTTP.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    let (addr, _old) = serve(move |cfg| {
        let log = log.clone();
        cfg.default_service(web::to(move |req: HttpRequest| {
            let log = log.clone();
            async move {
                let by = req
                    .headers()
                    .get("x-sockjs-gateway-forwarded-by")
                    .map(|v| v.to_str().unwrap().to_owned());
                log.lock().unwrap().push(format!("{} {by:?}", req.path()));
                if req.path().ends_with("/xhr") {
                    HttpResponse::Ok().body("a[\"from the old node\"]\n")
                } else {
                    HttpResponse::NotFound().finish()
                }
            }
        }));
    });
    let s = session("/echo");
    let sid = s.rsplit('/').next().unwrap();
    let presence = json!({"node": "old", "advertise": format!("http://{addr}"), "services": {}});
    redis.command(&format!("SET sockjs-gateway:node:old '{presence}' EX 60"));
    redis.command(&format!("SET sockjs-gateway:session:echo:{sid} old EX 60"));
    for _ in 0..3 {
        let r = post(&two.url(&format!("{s}/xhr")), "").await;
        assert_eq!(r.body, "a[\"from the old node\"]\n");
    }
    // The link was tried once, then each poll went as HTTP, as from a node.
    let seen = seen.lock().unwrap().clone();
    let tries = seen
        .iter()
        .filter(|l| l.starts_with("/_cluster/link "))
        .count();
    assert_eq!(tries, 1, "{seen:?}");
    let polls = seen
        .iter()
        .filter(|l| l.ends_with("/xhr Some(\"two\")"))
        .count();
    assert_eq!(polls, 3, "{seen:?}");
    let metrics = get(&two.api_url("/metrics")).await.body;
    assert_eq!(
        metric_value(&metrics, "sockjs_gateway_cluster_links"),
        Some(0.0)
    );
}

on_each_store!(a_session_whose_node_died_closes_at_once);
async fn a_session_whose_node_died_closes_at_once(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let s = session("/echo");
    assert_eq!(post(&one.url(&format!("{s}/xhr")), "").await.body, "o\n");
    drop(one); // SIGKILL
    let started = Instant::now();
    let r = post(&two.url(&format!("{s}/xhr")), "").await;
    assert_eq!(
        r.body,
        "c[4503,\"The node holding this session is gone\"]\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A send to it is a send to an unknown session.
    assert_eq!(
        post(&two.url(&format!("{s}/xhr_send")), r#"["x"]"#)
            .await
            .status,
        404
    );
    // New sessions are served by the live node.
    let fresh = session("/echo");
    assert_eq!(
        post(&two.url(&format!("{fresh}/xhr")), "").await.body,
        "o\n"
    );
}

#[actix_rt::test]
async fn a_redis_outage_keeps_local_delivery_and_recovers() {
    let mut redis = Redis::start();
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut a = chat(&one).await;
    let mut b = chat(&two).await;

    redis.kill();
    until_api(&one, "/api/cluster", |b| b["state"] == "degraded").await;
    let text = get(&one.api_url("/metrics")).await.body;
    assert_eq!(
        metric_value(&text, "sockjs_gateway_cluster_redis_connected"),
        Some(0.0)
    );
    let (_, body) = api(
        &one,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/x"}"#,
    )
    .await;
    assert_eq!(body, json!({"delivered": 0, "cluster": "degraded"}));
    a.send(r#"["while down"]"#).await;
    assert_eq!(a.recv().await, r#"a["while down"]"#);

    redis.restart();
    until_joined(&[&one, &two]).await;
    a.send(r#"["back"]"#).await;
    assert_eq!(a.recv().await, r#"a["back"]"#);
    // Node two never got the message from the outage, late or at all.
    assert_eq!(b.recv().await, r#"a["back"]"#);
    b.send(r#"["and back"]"#).await;
    assert_eq!(a.recv().await, r#"a["and back"]"#);
}

#[actix_rt::test]
async fn a_restarted_redis_learns_again_who_holds_each_session() {
    let mut redis = Redis::start();
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let s = session("/echo");
    assert_eq!(post(&one.url(&format!("{s}/xhr")), "").await.body, "o\n");
    // Restarted empty: the session's record is gone with it...
    redis.restart();
    until_joined(&[&one, &two]).await;
    // ...and node one wrote it again when it reconnected, so node two
    // still forwards to it.
    let r = post(&two.url(&format!("{s}/xhr_send")), r#"["still mine"]"#).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        post(&two.url(&format!("{s}/xhr")), "").await.body,
        "a[\"still mine\"]\n"
    );
}

/// The cluster's secret in these tests.
const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";

on_each_store!(only_a_node_that_proves_the_secret_speaks_for_the_client);
/// Issue 18, findings 5 and 7. Nodes that trust only 127.0.0.1 as a proxy,
/// clients on 127.0.0.2 and .3: a node passes on the client as it resolved
/// it and none of the forwarding headers the client wrote; the "forwarded"
/// marker means something only with the cluster's secret.
async fn only_a_node_that_proves_the_secret_speaks_for_the_client(redis: Store) {
    let upstream = common::upstream::Upstream::start();
    let config = |id: &str| {
        format!(
            "trusted_proxies = [\"127.0.0.1/32\"]\n{}\
             [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n\
             [services.bound]\nprefix = \"/bound\"\nkind = \"echo\"\nsession_binding = \"ip\"\n\
             [services.echo]\nprefix = \"/echo\"\nkind = \"echo\"\n\
             [services.app]\nprefix = \"/app\"\nkind = \"proxy\"\nupstream = \"ws://{}/echo\"\n",
            cluster_section(&redis, id),
            upstream.addr
        )
    };
    let (one, two) = (
        Gateway::start(&config("one")),
        Gateway::start(&config("two")),
    );
    until_joined(&[&one, &two]).await;
    let (client, attacker) = ("127.0.0.2", "127.0.0.3");

    // A bound session opened on node one is reached through node two by
    // its own client: node one believes node two about the address.
    let s = session("/bound");
    let on = |gw: &Gateway, what: &str| gw.url(&format!("{s}/{what}"));
    let r = request_from(client, "POST", &on(&one, "xhr"), &[], "").await;
    assert_eq!(r.body, "o\n");
    let r = request_from(client, "POST", &on(&one, "xhr_send"), &[], r#"["hi"]"#).await;
    assert_eq!(r.status, 204);
    let r = request_from(client, "POST", &on(&two, "xhr"), &[], "").await;
    assert_eq!(r.body, "a[\"hi\"]\n");
    // Another client that poses as node two, without the secret or with a
    // wrong one, is not believed: it gets a session of its own.
    request_from(client, "POST", &on(&one, "xhr_send"), &[], r#"["again"]"#).await;
    let wrong = "a-wrong-secret-a-wrong-secret-a-wrong";
    for (secret, from) in [(None, attacker), (Some(wrong), "127.0.0.4")] {
        let mut headers = vec![
            ("X-Sockjs-Gateway-Forwarded-By", "two"),
            ("X-Forwarded-For", client),
        ];
        headers.extend(secret.map(|s| ("X-Sockjs-Gateway-Secret", s)));
        let r = request_from(from, "POST", &on(&one, "xhr"), &headers, "").await;
        assert_eq!(r.body, "o\n", "{secret:?}");
    }
    let r = request_from(client, "POST", &on(&one, "xhr"), &[], "").await;
    assert_eq!(r.body, "a[\"again\"]\n");

    // The marker alone does not make node two answer for a session node
    // one holds (with a copy of its own): the request is forwarded.
    let s = session("/echo");
    assert_eq!(post(&one.url(&format!("{s}/xhr")), "").await.body, "o\n");
    post(&one.url(&format!("{s}/xhr_send")), r#"["held by one"]"#).await;
    let r = request_from(
        attacker,
        "POST",
        &two.url(&format!("{s}/xhr")),
        &[("X-Sockjs-Gateway-Forwarded-By", "one")],
        "",
    )
    .await;
    assert_eq!(r.body, "a[\"held by one\"]\n");

    // A session that node one makes for a request node two forwarded (its
    // record names node one): the upstream learns the client as node two
    // resolved it, not the forwarding headers the client wrote.
    let sid = format!("planted{}", rand_id());
    redis.command(&format!("SET sockjs-gateway:session:app:{sid} one"));
    let r = request_from(
        attacker,
        "POST",
        &two.url(&format!("/app/000/{sid}/xhr")),
        &[
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-For", "198.51.100.1"),
        ],
        "",
    )
    .await;
    assert_eq!(r.body, "o\n");
    let seen = upstream
        .wait_for("the planted session's handshake", |s| !s.is_empty())
        .await;
    let h = &seen[0].headers;
    assert_eq!(h.get("x-forwarded-for").map(String::as_str), Some(attacker));
    assert_eq!(h.get("x-forwarded-proto").map(String::as_str), Some("http"));
    assert_eq!(
        h.get("x-forwarded-host").map(String::as_str),
        Some(two.addr.as_str())
    );
    // Nor can a client open a link between nodes: without the secret, or
    // with a wrong one, there is nothing at its path.
    let upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let handshake = |secret: Option<&'static str>| {
        let mut headers = upgrade.to_vec();
        headers.extend(secret.map(|s| ("x-sockjs-gateway-secret", s)));
        headers.push(("x-sockjs-gateway-forwarded-by", "two"));
        let addr = one.addr.clone();
        async move {
            let mut raw = Raw::connect(&addr).await;
            raw.send("GET", "/_cluster/link", "1.1", &headers, "").await;
            raw.head().await.status
        }
    };
    for secret in [None, Some("not-the-secret"), Some("")] {
        assert_eq!(handshake(secret).await, 404, "secret {secret:?}");
    }
    // With it, the handshake is answered (what a node does).
    assert_eq!(handshake(Some(CLUSTER_SECRET)).await, 101);
}

on_each_store!(presence_stays_small_whatever_clients_subscribe_to);
/// Issue 18, finding 2: a node's presence, which every other node reads
/// every interval, does not grow with what its clients subscribe to; the
/// counts live in a hash written as changes, read a field at a time.
async fn presence_stays_small_whatever_clients_subscribe_to(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    let mut c = Client::connect(&one).await;
    for i in 0..50 {
        let d = format!("/topic/p/{i}/{}", "x".repeat(200));
        c.subscribe(&i.to_string(), &d).await;
    }
    until_api(&two, "/api/destinations?prefix=/topic/p/", |b| {
        b["destinations"].as_array().map(Vec::len) == Some(50)
    })
    .await;
    let len = |cmd: &str| -> usize {
        let reply = redis.command(cmd).unwrap();
        reply.trim_start_matches(':').parse().unwrap()
    };
    assert!(len("STRLEN sockjs-gateway:node:one") < 512);
    assert_eq!(redis.counts_len("one"), 50);
    let d7 = format!("/topic/p/7/{}", "x".repeat(200));
    let (_, body) = api(
        &two,
        "POST",
        "/api/publish",
        &json!({"destination": d7, "body": "x"}).to_string(),
    )
    .await;
    assert_eq!(body["delivered"], 1);
    // Gone subscriptions are deleted from the hash.
    c.ws.close().await;
    let until = Instant::now() + Duration::from_secs(10);
    while redis.counts_len("one") != 0 {
        assert!(Instant::now() < until, "the counts were never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_each_store!(delivered_counts_what_every_node_reached_at_once);
/// `delivered` counts what the nodes delivered, as each reports it, not
/// what presence said a moment ago; a node that does not report in time
/// makes the answer `partial`.
async fn delivered_counts_what_every_node_reached_at_once(redis: Store) {
    let (one, two) = (node(&redis, "one"), node(&redis, "two"));
    until_joined(&[&one, &two]).await;
    // Alice opens two tabs on node two; the backend, through node one,
    // writes to her at once (before any presence write could tell).
    let alice = format!("Bearer {}", token(SECRET, "alice", 60));
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let mut tab = Client::connect_with(&two, &[("Authorization", &alice)]).await;
        tab.subscribe("n", "/user/queue/n").await;
        tabs.push(tab);
    }
    let mut here = Client::connect(&one).await;
    here.subscribe("t", "/topic/news").await;
    let mut there = Client::connect(&two).await;
    there.subscribe("t", "/topic/news").await;

    let (_, user) = api(&one, "GET", "/api/users/alice", "").await;
    assert_eq!(
        user,
        json!({"user": "alice", "sessions": 2, "cluster": "up"})
    );
    let (status, sent) = api(
        &one,
        "POST",
        "/api/users/alice/send",
        r#"{"destination": "/user/queue/n", "body": "hi"}"#,
    )
    .await;
    assert_eq!(
        (status, sent),
        (200, json!({"delivered": 2, "cluster": "up"}))
    );
    for tab in &mut tabs {
        assert_eq!(tab.next().await.2, "hi");
    }
    let (_, news) = api(
        &one,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/news", "body": "n"}"#,
    )
    .await;
    assert_eq!(news, json!({"delivered": 2, "cluster": "up"}));

    // Node two hangs: it got the publication and never says what it did.
    two.signal(libc::SIGSTOP);
    let asked = Instant::now();
    let (_, hung) = api(
        &one,
        "POST",
        "/api/publish",
        r#"{"destination": "/topic/news", "body": "n2"}"#,
    )
    .await;
    assert_eq!(
        hung,
        json!({"delivered": 1, "partial": true, "cluster": "up"})
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    two.signal(libc::SIGCONT);
}

/// Two nodes whose `/echo` takes messages of up to `max_message_bytes`.
fn echo_nodes(redis: &impl Shared, max_message_bytes: usize) -> (Gateway, Gateway) {
    let config = |id: &str| {
        format!(
            "{}[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n\
             [services.echo]\nprefix = \"/echo\"\nkind = \"echo\"\n\
             max_message_bytes = {max_message_bytes}\nmax_queued_bytes = {}\n",
            cluster_section(redis, id),
            2 * max_message_bytes + 1024
        )
    };
    (
        Gateway::start(&config("one")),
        Gateway::start(&config("two")),
    )
}

/// Polls of sessions node two holds, held through node one: they share
/// node one's link to node two with whatever else goes that way.
async fn bystanders(one: &Gateway, two: &Gateway) -> Vec<(String, Raw)> {
    let mut polls = Vec::new();
    for _ in 0..4 {
        polls.push(forwarded_poll(two, one).await);
    }
    polls
}

/// Each bystander's poll answers what its session got: the link held.
async fn bystanders_still_served(two: &Gateway, polls: Vec<(String, Raw)>) {
    for (i, (s, mut pending)) in polls.into_iter().enumerate() {
        let text = format!("[\"still linked {i}\"]");
        let r = post(&two.url(&format!("{s}/xhr_send")), &text).await;
        assert_eq!(r.status, 204, "{}", r.body);
        // The whole chunked body: the frame, then the last chunk.
        let got = pending.read_until("\r\n0\r\n\r\n").await;
        assert!(
            got.contains(&format!("a{text}\n")),
            "bystander {i}: {got:?}"
        );
    }
}

on_each_store!(concurrent_large_sends_do_not_break_the_link_between_nodes);
/// Issue 28, finding 2: node one sent all that was ready for node two as
/// one message, and node two dropped the link over its largest request
/// plus room: concurrent sends each within `max_message_bytes` broke every
/// other session's forwarded poll (4503). Batches now stay within what the
/// owner takes.
async fn concurrent_large_sends_do_not_break_the_link_between_nodes(redis: Store) {
    let max = 1 << 20;
    let (one, two) = echo_nodes(&redis, max);
    until_joined(&[&one, &two]).await;
    let polls = bystanders(&one, &two).await;
    // The attacker's own session on node two, written to through node one.
    let s = session("/echo");
    assert_eq!(post(&two.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let body = format!("[\"{}\"]", "x".repeat(max - 16));
    let url = one.url(&format!("{s}/xhr_send"));
    let sends = (0..12).map(|_| post(&url, &body));
    let answers = futures_util::future::join_all(sends).await;
    assert_eq!(answers[0].status, 204, "{}", answers[0].body);
    for a in &answers {
        // Past its queue the attacker's session closes: later sends 404.
        assert!([204, 404].contains(&a.status), "{} {}", a.status, a.body);
        assert!(!a.body.contains("4503"), "{}", a.body);
    }
    bystanders_still_served(&two, polls).await;
}

on_each_store!(an_answer_of_any_allowed_size_does_not_break_the_link);
/// Issue 28, finding 2, the other way: an answer of a message over 16 MiB
/// (tungstenite's frame limit on the forwarding side) broke the link. It
/// goes in pieces.
async fn an_answer_of_any_allowed_size_does_not_break_the_link(redis: Store) {
    let max = 20 << 20;
    let (one, two) = echo_nodes(&redis, max);
    until_joined(&[&one, &two]).await;
    let polls = bystanders(&one, &two).await;
    let s = session("/echo");
    assert_eq!(post(&two.url(&format!("{s}/xhr")), "").await.body, "o\n");
    let big = "y".repeat(17 << 20);
    let r = post(&two.url(&format!("{s}/xhr_send")), &format!("[\"{big}\"]")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let echoed = post(&one.url(&format!("{s}/xhr")), "").await.body;
    assert_eq!(
        echoed.len(),
        big.len() + 6,
        "{}",
        &echoed[..echoed.len().min(80)]
    );
    assert!(echoed.starts_with("a[\"yyy") && echoed.ends_with("y\"]\n"));
    bystanders_still_served(&two, polls).await;
}

on_each_store!(a_refused_session_leaves_no_record_in_redis);
/// Issue 28, finding 3: a poll for an unknown session claimed it in Redis
/// (`session_record_ttl`, a day) before the limits per address ran, so a
/// refused session left a record. The limits run first now.
async fn a_refused_session_leaves_no_record_in_redis(redis: Store) {
    let gw = Gateway::start(&format!(
        "{}[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n{}",
        cluster_section(&redis, "one"),
        echo_config("max_sessions_per_ip = 1")
    ));
    until_joined(&[&gw]).await;
    let records = || redis.count_keys("sockjs-gateway:session:*");
    let open = |from: &'static str| {
        let url = gw.url(&format!("{}/xhr", session("/echo")));
        async move { request_from(from, "POST", &url, &[], "").await.body }
    };
    assert_eq!(open("127.0.0.2").await, "o\n");
    assert_eq!(records(), 1, "the session is recorded");
    for _ in 0..200 {
        assert_eq!(open("127.0.0.2").await, "c[4429,\"Too many sessions\"]\n");
    }
    assert_eq!(records(), 1, "refused sessions left records");
    // Another address opens, and is recorded.
    assert_eq!(open("127.0.0.3").await, "o\n");
    assert_eq!(records(), 2);
}
