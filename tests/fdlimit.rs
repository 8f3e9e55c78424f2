//! At the open-file limit the gateway degrades instead of falling over: a
//! child gateway with RLIMIT_NOFILE 512 is flooded with sessions and with
//! bare connections from other addresses.
mod common;
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const NOFILE: u64 = 512;

async fn connect_from(from: &str, gw: &Gateway) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(from.parse().unwrap(), 0))?;
    sock.connect(gw.addr.parse().unwrap()).await
}

/// What became of one attempt: "open" (101), "status N", "reset" (closed
/// before any answer) or "timed out" (a wait in the backlog).
async fn outcome(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return "reset".to_owned(),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() >= 12 {
                let status = String::from_utf8_lossy(&buf[9..12]).into_owned();
                return if status == "101" {
                    "open".into()
                } else {
                    format!("status {status}")
                };
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .unwrap_or_else(|_| "timed out".into())
}

/// A raw WebSocket session attempt; the socket is kept whatever happened.
async fn session_attempt(from: &str, gw: &Gateway) -> (String, Option<TcpStream>) {
    // A connection reset right after the handshake may fail `connect`
    // itself (EPIPE, ECONNRESET): refused all the same.
    let Ok(mut sock) = connect_from(from, gw).await else {
        return ("reset".into(), None);
    };
    let req = "GET /echo/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
               Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Version: 13\r\n\r\n";
    if sock.write_all(req.as_bytes()).await.is_err() {
        return ("reset".into(), None);
    }
    (outcome(&mut sock).await, Some(sock))
}

/// A GET over a fresh connection from 127.0.0.1: (outcome, time taken).
async fn probe(gw: &Gateway, path: &str) -> (String, Duration) {
    let t = Instant::now();
    // Reset right after the handshake, `connect` itself may fail.
    let Ok(mut sock) = connect_from("127.0.0.1", gw).await else {
        return ("reset".into(), t.elapsed());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = match sock.write_all(req.as_bytes()).await {
        Ok(()) => outcome(&mut sock).await,
        Err(_) => "reset".into(),
    };
    (r, t.elapsed())
}

/// The number after `key` in the gateway's log.
fn logged(gw: &Gateway, key: &str) -> usize {
    let log = gw.log();
    let at = log
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} not logged: {log}"))
        + key.len();
    log[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[actix_rt::test]
async fn a_flood_past_the_fd_limit_is_refused_and_harms_no_session() {
    // Polling sessions below poll between the phases, some seconds apart:
    // a disconnect_delay that outlasts the phases keeps them alive.
    let gw = Gateway::start_with_fd_limit(&echo_config("disconnect_delay = 60"), NOFILE);
    assert_eq!(logged(&gw, "open files: limit"), NOFILE as usize);
    let max_connections = logged(&gw, "max_connections");
    let max_sessions = logged(&gw, "service echo: max_sessions");
    assert!(max_sessions < max_connections && max_connections < NOFILE as usize);

    // Sessions opened before the flood, from the address that probes later.
    let mut old = Vec::new();
    for _ in 0..20 {
        let mut ws = Ws::connect(&gw.ws_url(&format!("{}/websocket", session("/echo")))).await;
        assert_eq!(ws.recv().await, "o");
        old.push(ws);
    }

    // And polling sessions, whose every request is a new connection.
    let close = [("Connection", "close")];
    let mut polling = Vec::new();
    for _ in 0..5 {
        let s = gw.url(&session("/echo"));
        assert_eq!(
            request("POST", &format!("{s}/xhr"), &close, "").await.body,
            "o\n"
        );
        polling.push(s);
    }
    let polls_echo = |polling: Vec<String>, word: &'static str| async move {
        for s in &polling {
            let r = request(
                "POST",
                &format!("{s}/xhr_send"),
                &[("Connection", "close")],
                &format!("[\"{word}\"]"),
            )
            .await;
            assert_eq!(r.status, 204, "{s}");
            let r = request("POST", &format!("{s}/xhr"), &[("Connection", "close")], "").await;
            assert_eq!(r.body, format!("a[\"{word}\"]\n"), "{s}");
        }
    };

    // 1. A session flood from another address, past what fds allow.
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut held = Vec::new();
    for _ in 0..12 {
        let batch: Vec<_> = (0..50).map(|_| session_attempt("127.0.0.2", &gw)).collect();
        for (what, sock) in futures_util::future::join_all(batch).await {
            *outcomes.entry(what).or_default() += 1;
            held.extend(sock);
        }
    }
    // Every session slot was taken (a handshake that lost the race for the
    // last slot is answered 101, then closed with 1013).
    let opened = outcomes.get("open").copied().unwrap_or(0);
    // The derived cap counts connections: a polling session holds two.
    let free = max_sessions - old.len() - 2 * polling.len();
    assert!(
        (free..free + 50).contains(&opened),
        "{outcomes:?}, max_sessions {max_sessions}, max_connections {max_connections}"
    );
    for (what, n) in &outcomes {
        assert!(
            what == "open" || what == "status 503" || what == "reset",
            "{n} attempts: {what} ({outcomes:?})"
        );
    }
    // The rest was told at once, and nothing hit the fd limit itself.
    assert!(
        outcomes.get("status 503").copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    // Probes are answered, or refused at once while the connections told
    // 503 drain (actix lingers up to a second on a closing connection);
    // then answered, with every session still held.
    for path in ["/healthz", "/echo/info"] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (r, took) = probe(&gw, path).await;
            assert!(took < Duration::from_secs(1), "{path}: {r} after {took:?}");
            if r == "status 200" {
                break;
            }
            assert_eq!(r, "reset", "{path}");
            assert!(
                Instant::now() < deadline,
                "{path} still refused: {}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (r, _) = session_attempt("127.0.0.1", &gw).await;
    assert_eq!(r, "status 503");
    for (i, ws) in old.iter_mut().enumerate() {
        ws.send(&format!("[\"still {i}\"]")).await;
        assert_eq!(ws.recv().await, format!("a[\"still {i}\"]"));
    }
    polls_echo(polling.clone(), "still").await;

    // 2. Bare connections that never send a request, from a third address,
    // past max_connections: the excess is reset at once, not left in the
    // backlog; the rest meet the request timeout.
    let mut bare = Vec::new();
    for _ in 0..(NOFILE as usize) {
        // Refused may already mean refused at connect.
        bare.extend(connect_from("127.0.0.3", &gw).await.ok());
    }
    let results = futures_util::future::join_all(bare.iter_mut().map(|s| async move {
        let t = Instant::now();
        let mut b = [0u8; 256];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
        (r.is_ok(), t.elapsed())
    }))
    .await;
    let quick = results
        .iter()
        .filter(|(ended, t)| *ended && *t < Duration::from_secs(1))
        .count();
    assert!(
        results.iter().all(|(ended, _)| *ended),
        "a bare connection hung"
    );
    assert!(quick > 0, "none was refused at once");
    let refused_log = gw.log().matches("refusing connections").count();
    assert!((1..=3).contains(&refused_log), "logged {refused_log} times");
    drop(bare);

    // Through all of it: old sessions echo, the fd limit was never hit.
    for (i, ws) in old.iter_mut().enumerate() {
        ws.send(&format!("[\"after {i}\"]")).await;
        assert_eq!(ws.recv().await, format!("a[\"after {i}\"]"));
    }
    polls_echo(polling, "after").await;
    let (r, _) = probe(&gw, "/healthz").await;
    assert_eq!(r, "status 200");
    assert!(!gw.log().contains("Too many open files"), "{}", gw.log());
    drop(held);
}

/// The derived `max_sessions` counts connections: an HTTP session, which
/// holds its poll and the connection its sends come on, takes two places;
/// a WebSocket session one. A `max_sessions` set by hand counts sessions.
#[actix_rt::test]
async fn the_derived_session_cap_counts_an_http_session_twice() {
    const HTTP: usize = 20;
    for (extra, http_weight) in [
        ("disconnect_delay = 60", 2),
        ("disconnect_delay = 60\nmax_sessions = 100", 1),
    ] {
        let gw = Gateway::start_with_fd_limit(&echo_config(extra), 256);
        let max_sessions = logged(&gw, "service echo: max_sessions");
        for _ in 0..HTTP {
            let s = gw.url(&session("/echo"));
            let r = request("POST", &format!("{s}/xhr"), &[("Connection", "close")], "").await;
            assert_eq!(r.body, "o\n");
        }
        // WebSocket sessions, one at a time, until one is refused.
        let mut held = Vec::new();
        loop {
            let (what, sock) = session_attempt("127.0.0.2", &gw).await;
            if what != "open" {
                assert_eq!(what, "status 503");
                break;
            }
            held.extend(sock);
        }
        assert_eq!(held.len(), max_sessions - http_weight * HTTP, "{extra}");
    }
}
