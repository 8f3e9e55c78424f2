//! What an attacker tried against the gateway, each refused: a STOMP head
//! that costs quadratic CPU before any CONNECT, oversized destinations and
//! subscriptions, a foreign page writing into a session over JSONP, token
//! subjects that change what a user queue means, addresses spoofed into the
//! access log, and configurations that would leave a door open.
mod common;
use common::redis::Redis;
use common::stomp::*;
use common::*;
use std::time::{Duration, Instant};

/// CPU seconds (user and system) the process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime: fields 14 and 15 of the whole line.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / per_second
}

/// The attack's SockJS messages: a STOMP head sent a short line at a time.
fn short_lines(n: usize) -> String {
    let mut texts = vec!["SEND\n"];
    texts.extend(std::iter::repeat_n("a\n", n));
    serde_json::to_string(&texts).unwrap()
}

/// Issue 18, finding 1: one `xhr_send` of 32,000 short lines cost 5 s of
/// CPU when the decoder rescanned its buffer on every message. With the
/// default limits the head is refused at `max_headers`; with the limits
/// lifted the whole head is buffered, and the cost is still linear. Over
/// the WebSocket transport too.
#[actix_rt::test]
async fn a_head_of_short_lines_costs_linear_cpu_before_connect() {
    let lifted = "max_headers = 1000000\nmax_frame_bytes = 4194304\nmax_message_bytes = 4194304\n";
    for (extra, why) in [("", "max_headers"), (lifted, "Header without a colon")] {
        let gw = Gateway::start(&config(extra));
        let attack = short_lines(32_000);

        let s = gw.url(&session("/stomp"));
        assert_eq!(post(&format!("{s}/xhr"), "").await.body, "o\n");
        let before = cpu_seconds(gw.pid());
        let r = post(&format!("{s}/xhr_send"), &attack).await;
        assert_eq!(r.status, 204);
        // The blank line that ends the head, for the lifted limits.
        post(&format!("{s}/xhr_send"), r#"["\n"]"#).await;
        let cost = cpu_seconds(gw.pid()) - before;
        let poll = post(&format!("{s}/xhr"), "").await.body;
        assert!(
            poll.starts_with("a[\"ERROR\\n") && poll.contains(why),
            "{poll}"
        );
        assert!(cost < 1.0, "xhr_send, limits {extra:?}: {cost} s of CPU");

        let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/stomp")))).await;
        assert_eq!(ws.recv().await, "o");
        let before = cpu_seconds(gw.pid());
        ws.send(&attack).await;
        ws.send(r#"["\n"]"#).await;
        let error = ws.recv().await;
        let cost = cpu_seconds(gw.pid()) - before;
        assert!(
            error.starts_with("a[\"ERROR\\n") && error.contains(why),
            "{error}"
        );
        assert!(cost < 1.0, "websocket, limits {extra:?}: {cost} s of CPU");
    }
}

/// Issue 18, finding 2: a destination is at most `max_destination_bytes`
/// (in SUBSCRIBE, SEND and the API), and one session's subscriptions at
/// most `max_subscription_bytes` together; an UNSUBSCRIBE gives its bytes
/// back.
#[actix_rt::test]
async fn destinations_and_subscriptions_are_bounded() {
    let gw = Gateway::start(&config(&format!(
        "max_subscription_bytes = 120\n[api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n"
    )));
    let long = format!("/topic/{}", "x".repeat(300));
    for command in ["SUBSCRIBE", "SEND"] {
        let mut c = Client::connect(&gw).await;
        c.frame(command, &[("id", "1"), ("destination", &long)], "")
            .await;
        let (cmd, h, body) = c.next().await;
        assert_eq!(
            (cmd.as_str(), header(&h, "message")),
            ("ERROR", Some("Invalid destination")),
            "{command}"
        );
        assert!(body.contains("max_destination_bytes"), "{body}");
    }
    let (status, body) = api(
        &gw,
        "POST",
        "/api/publish",
        &serde_json::json!({"destination": long, "body": "x"}).to_string(),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("destination")));

    // 120 bytes: two subscriptions of 1 + 49 bytes fit, a third does not.
    let mut c = Client::connect(&gw).await;
    let d = |n: u8| format!("/topic/{}", char::from(b'a' + n).to_string().repeat(42));
    c.subscribe("1", &d(1)).await;
    c.subscribe("2", &d(2)).await;
    c.frame("UNSUBSCRIBE", &[("id", "1"), ("receipt", "u")], "")
        .await;
    c.expect_receipt("u").await;
    c.subscribe("3", &d(3)).await;
    c.frame("SUBSCRIBE", &[("id", "4"), ("destination", &d(4))], "")
        .await;
    let (cmd, h, body) = c.next().await;
    assert_eq!(
        (cmd.as_str(), header(&h, "message")),
        ("ERROR", Some("Too many subscriptions"))
    );
    assert!(body.contains("max_subscription_bytes"), "{body}");
}

/// Issue 18, finding 6: a page whose origin is not allowed cannot write
/// into a session over `jsonp_send` (a hidden form post, which browsers
/// send with the page's Origin), as it cannot over `xhr_send`.
#[actix_rt::test]
async fn a_foreign_origin_cannot_send_over_jsonp() {
    let gw = Gateway::start(&echo_config("allowed_origins = [\"https://app.example\"]"));
    let s = gw.url(&session("/echo"));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert!(get(&format!("{s}/jsonp?c=cb")).await.body.contains("\"o\""));
    for (origin, status) in [
        (Some("https://evil.example"), 403),
        (Some("https://app.example"), 200),
        (None, 200),
    ] {
        let mut headers = form.to_vec();
        headers.extend(origin.map(|o| ("Origin", o)));
        let r = request(
            "POST",
            &format!("{s}/jsonp_send"),
            &headers,
            "d=%5B%22x%22%5D",
        )
        .await;
        assert_eq!(r.status, status, "{origin:?}: {}", r.body);
    }
    // Only the two allowed sends arrived.
    let body = get(&format!("{s}/jsonp?c=cb")).await.body;
    assert!(body.contains(r#"a[\"x\",\"x\"]"#), "{body}");
}

/// Issue 18, finding 11: one user-name rule for every source. A token whose
/// `sub` holds a `/` or a control character is refused.
#[actix_rt::test]
async fn a_token_subject_must_be_a_plain_user_name() {
    let gw = Gateway::start(&config(""));
    for sub in ["bob/queue", "a\nb", "a\0b", &"x".repeat(300)] {
        let t = format!("Bearer {}", token(SECRET, sub, 60));
        let (cmd, h, _) = connect_answer(&gw, &t).await;
        assert_eq!(cmd, "ERROR", "{sub:?}");
        let message = header(&h, "message").unwrap();
        assert!(message.starts_with("Invalid token: sub"), "{message}");
    }
    let t = format!("Bearer {}", token(SECRET, "alice@example.com", 60));
    Client::connect_with(&gw, &[("Authorization", &t)]).await;
}

/// Issue 18, finding 8: the access log names the client as resolved
/// through `trusted_proxies`, not what any client writes in `Forwarded` or
/// `X-Forwarded-For`.
#[actix_rt::test]
async fn the_access_log_shows_the_resolved_client() {
    let gw = Gateway::start_with_fd_limit(
        &format!(
            "trusted_proxies = []\naccess_log = true\n{}",
            echo_config("")
        ),
        4096,
    );
    request(
        "GET",
        &gw.url("/echo/info"),
        &[
            ("Forwarded", "for=203.0.113.66"),
            ("X-Forwarded-For", "203.0.113.66"),
        ],
        "",
    )
    .await;
    let until = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(l) = gw.log().lines().find(|l| l.contains("/echo/info")) {
            break l.to_owned();
        }
        assert!(Instant::now() < until, "no access log line:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!line.contains("203.0.113.66"), "{line}");
    assert!(line.contains("127.0.0.1 \"GET /echo/info"), "{line}");
}

/// What start-up refuses, naming the key: demo sign-in beside a connect
/// webhook (finding 3), a short JWT secret (11), forwarding headers the
/// gateway sets itself (10), a cluster without a secret (5).
#[test]
fn start_up_refuses_open_doors() {
    let stomp = "[services.s]\nprefix = \"/s\"\nkind = \"stomp\"\n";
    for (toml, key) in [
        (
            format!(
                "[auth]\ndemo_login = true\nconnect_webhook = \"http://127.0.0.1:9/c\"\n{stomp}"
            ),
            "auth.demo_login",
        ),
        (
            format!("[auth]\njwt_secret = \"only-31-characters-long-secret!\"\n{stomp}"),
            "auth.jwt_secret",
        ),
        (
            "[services.p]\nprefix = \"/p\"\nkind = \"proxy\"\nupstream = \"ws://127.0.0.1:9/\"\n\
             forward_headers = [\"X-Forwarded-Host\"]\n"
                .to_owned(),
            "services.p.forward_headers[0]",
        ),
        (
            "[cluster]\nredis_url = \"redis://127.0.0.1:9/0\"\n[services.e]\nprefix = \"/e\"\n"
                .to_owned(),
            "cluster.secret",
        ),
    ] {
        let err = refused_at_start(&toml);
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// The image's configuration is safe to run as it is (findings 3 and 4):
/// no demo sign-in and no proxy believed unless a variable says so; the
/// embedded demo, which signs anyone in, listens on loopback only.
#[test]
fn shipped_configs_open_no_door() {
    let image =
        sockjs_gateway::Config::from_toml(include_str!("../config/container.toml")).unwrap();
    assert!(!image.auth.demo_login);
    assert!(
        image.trusted_proxies.is_empty(),
        "{:?}",
        image.trusted_proxies
    );
    let demo = sockjs_gateway::Config::from_toml(sockjs_gateway::config::DEFAULT_TOML).unwrap();
    assert!(demo.auth.demo_login);
    assert!(demo.listen.starts_with("127.0.0.1:"), "{}", demo.listen);
}

/// Issue 28, finding 8: a page on a foreign name that resolves to
/// 127.0.0.1 (DNS rebinding) asks `/demo/api` under its own `Host`; only a
/// loopback name or address gets the key.
#[actix_rt::test]
async fn the_demo_key_is_shown_only_under_a_loopback_host() {
    let gw = Gateway::start(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ndemo_key = true\n{}",
        config("")
    ));
    let port = gw.addr.rsplit(':').next().unwrap().to_owned();
    for host in ["evil.example", &format!("evil.example:{port}"), "10.0.0.1"] {
        let r = request("GET", &gw.url("/demo/api"), &[("Host", host)], "").await;
        assert_eq!(r.status, 403, "{host}: {}", r.body);
        assert!(!r.body.contains("key\""), "{host}: {}", r.body);
        assert!(r.body.contains("loopback"), "{host}: {}", r.body);
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = request("GET", &gw.url("/demo/api"), &[("Host", &host)], "").await;
        assert_eq!(r.status, 200, "{host}: {}", r.body);
        assert!(r.body.contains("\"key\""), "{host}: {}", r.body);
    }
}

/// A token for `sub` with the given `exp`, whatever it is.
fn token_expiring_at(sub: &str, exp: u64) -> String {
    let claims = serde_json::json!({"sub": sub, "aud": "gw", "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Issue 28, finding 7: with `expire_sessions`, a token whose `exp` is
/// past what the clock can hold panicked the session. It never expires:
/// the session works, no notice comes, and nothing panics.
#[actix_rt::test]
async fn an_exp_past_the_clock_never_expires() {
    let gw = Gateway::start_with_fd_limit(
        &config("").replace(
            "jwt_audience = \"gw\"\n",
            "jwt_audience = \"gw\"\nexpire_sessions = true\ntoken_refresh_notice = 60\n",
        ),
        4096,
    );
    for exp in [1u64 << 63, u64::MAX] {
        let t = format!("Bearer {}", token_expiring_at("alice", exp));
        let mut c = Client::connect_with(&gw, &[("Authorization", &t)]).await;
        c.subscribe("g", "/user/queue/gateway").await;
        c.subscribe("n", "/user/queue/n").await;
        c.frame(
            "SEND",
            &[("destination", "/user/alice/queue/n")],
            "still here",
        )
        .await;
        let (cmd, h, body) = c.next().await;
        assert_eq!((cmd.as_str(), body.as_str()), ("MESSAGE", "still here"));
        assert_eq!(header(&h, "subscription"), Some("n"), "no notice first");
    }
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

/// Issue 28, finding 4: behind a trusted proxy that writes the client as
/// `IP:port` or `unknown`, the entry to its left is the client's own
/// writing. The proxy's entry is the client: forged entries to its left
/// get no one past `max_sessions_per_ip`.
#[actix_rt::test]
async fn forwarded_entries_that_do_not_parse_are_not_skipped() {
    let gw = Gateway::start_with_fd_limit(
        &format!(
            "trusted_proxies = [\"127.0.0.0/8\"]\naccess_log = true\n{}",
            echo_config("max_sessions_per_ip = 1")
        ),
        4096,
    );
    for proxy_wrote in ["203.0.113.7:51234", "[2001:db8::7]:443", "unknown"] {
        let mut answers = Vec::new();
        for n in 1..=3 {
            let xff = format!("198.51.100.{n}, {proxy_wrote}");
            let url = gw.url(&format!("{}/xhr", session("/echo")));
            let r = request("POST", &url, &[("X-Forwarded-For", &xff)], "").await;
            answers.push(r.body);
        }
        assert_eq!(answers[0], "o\n", "{proxy_wrote}");
        for refused in &answers[1..] {
            assert_eq!(refused, "c[4429,\"Too many sessions\"]\n", "{proxy_wrote}");
        }
    }
    // The access log names what the proxy wrote, never the forged entries.
    let until = Instant::now() + Duration::from_secs(5);
    while gw.log().matches("/xhr").count() < 9 {
        assert!(Instant::now() < until, "no access log lines:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.log();
    assert!(!log.contains("198.51.100."), "{log}");
    for shown in ["203.0.113.7 \"POST", "2001:db8::7 \"POST", "unknown \"POST"] {
        assert_eq!(log.matches(shown).count(), 3, "{shown}: {log}");
    }
}

/// Issue 28, finding 6: `max_messages_per_second` counted SockJS messages,
/// and one message may carry up to `max_pending_frames` STOMP frames. A
/// stomp service counts frames: 100 SENDs in one message, with a limit of
/// 5 a second, publish none past the limit.
#[actix_rt::test]
async fn a_message_of_many_stomp_frames_counts_each_frame() {
    let gw = Gateway::start(&config("max_messages_per_second = 5"));
    let mut watcher = Client::connect(&gw).await;
    watcher.subscribe("w", "/topic/chat/a").await;
    let mut flood = Client::connect(&gw).await;
    let send = "SEND\ndestination:/topic/chat/a\n\nflood\0";
    // A second message asks for a receipt: it comes only if the first
    // message's frames were all taken.
    let receipt = "SUBSCRIBE\nid:s\ndestination:/topic/chat/b\nreceipt:r\n\n\0";
    flood.send(&[&send.repeat(100), receipt]).await;
    let (cmd, h, body) = flood.next().await;
    assert_eq!(
        (cmd.as_str(), header(&h, "message")),
        ("ERROR", Some("Too many messages")),
        "{body}"
    );
    assert!(body.contains("STOMP frames per second"), "{body}");
    // The watcher's own SEND comes after whatever the flood published.
    watcher
        .frame("SEND", &[("destination", "/topic/chat/a")], "marker")
        .await;
    let mut flooded = 0;
    loop {
        let (cmd, _, body) = watcher.next().await;
        assert_eq!(cmd, "MESSAGE");
        if body == "marker" {
            break;
        }
        flooded += 1;
    }
    assert!(
        flooded <= 5,
        "{flooded} of the flood's SENDs were published"
    );
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// `pairs` SUBSCRIBE + UNSUBSCRIBE pairs to fresh destinations under
/// `/topic/news/`, from two anonymous sessions, 50 pairs a SockJS message;
/// done once each session's last receipt is in.
async fn subscribe_and_leave(gw: &Gateway, pairs: usize, round: &str) {
    let sessions = (0..2).map(|who| async move {
        let mut c = Client::connect(gw).await;
        for chunk in 0..pairs / 2 / 50 {
            let mut text = String::new();
            for i in 0..50 {
                let n = chunk * 50 + i;
                text.push_str(&format!(
                    "SUBSCRIBE\nid:{n}\ndestination:/topic/news/{round}-{who}-{n}\n\n\0\
                     UNSUBSCRIBE\nid:{n}\n\n\0"
                ));
            }
            c.send(&[&text]).await;
        }
        c.subscribe("done", "/topic/done").await;
    });
    futures_util::future::join_all(sessions).await;
}

/// Issue 28, finding 1: every SUBSCRIBE to a destination with history
/// read it, and a read made the stream, which lived for `ttl` (86 MB for
/// 200,000 pairs). A SUBSCRIBE that does not recover reads nothing, and
/// no read makes anything.
#[actix_rt::test]
async fn subscriptions_to_fresh_destinations_leave_no_history_behind() {
    let gw = Gateway::start(&config(&format!(
        "[[services.stomp.history]]\ndestinations = [\"/topic/news/**\"]\nsize = 100\nttl = 600\n\
         [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\nmetrics = true\n"
    )));
    // Warm up, so that what the allocator keeps for a busy session is
    // counted before.
    subscribe_and_leave(&gw, 20_000, "warm").await;
    let before = rss(gw.pid());
    subscribe_and_leave(&gw, 200_000, "flood").await;
    let after = rss(gw.pid());
    assert!(
        after < before + (5 << 20),
        "RSS grew by {} KiB over 200,000 pairs",
        (after.saturating_sub(before)) >> 10
    );
    let metrics = get(&gw.api_url("/metrics")).await.body;
    assert_eq!(
        metric_value(&metrics, "sockjs_gateway_history_streams"),
        Some(0.0)
    );
}

/// Issue 28, finding 1, in a cluster: a SUBSCRIBE wrote a meta key for
/// `ttl` in Redis and took one of the node's 32 read permits. Now Redis
/// sees nothing of it: the same keys before and after.
#[actix_rt::test]
async fn subscriptions_to_fresh_destinations_write_nothing_to_redis() {
    let redis = Redis::start();
    let gw = Gateway::start(&format!(
        "[cluster]\nredis_url = \"{}\"\nsecret = \"test-cluster-secret-0123456789abcdef\"\n\
         node_id = \"one\"\npresence_interval = 0.2\n{}",
        redis.url(),
        config(&format!(
            "[[services.stomp.history]]\ndestinations = [\"/topic/news/**\"]\n\
             [api]\nlisten = \"127.0.0.1:0\"\nkey = \"{KEY}\"\n"
        ))
    ));
    until_joined(&[&gw]).await;
    let history_keys = || redis.command("KEYS sockjs-gateway:history:*");
    let before = history_keys();
    subscribe_and_leave(&gw, 20_000, "flood").await;
    assert_eq!(history_keys(), before, "only the store's name, if anything");
    assert_eq!(before.as_deref(), Some("*1"));
}
