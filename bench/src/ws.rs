//! WebSocket scenarios: echo with messages in flight, idle sessions held
//! with heartbeats, and broadcast fan-out. Every payload is checked.

use crate::stats::{self, Tally};
use crate::{Args, Protocol};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The WebSocket URL of session `n` under `base` (an http:// service URL).
pub fn ws_url(base: &str, protocol: Protocol, n: usize) -> String {
    let base = base.replacen("http://", "ws://", 1);
    match protocol {
        Protocol::Sockjs => format!("{base}/000/b{}x{n}/websocket", std::process::id()),
        Protocol::Raw => base,
    }
}

/// Read buffer for sockets that receive bursts (idle, broadcast).
const BURST_READ_BUFFER: usize = 4096;

/// `read_buffer`: tungstenite zeroes that much before every read, so an
/// echo socket that gets one small frame at a time keeps it small.
pub async fn connect(url: &str, protocol: Protocol, read_buffer: usize) -> Result<Ws, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    if protocol == Protocol::Sockjs {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "o" => {}
            other => return Err(format!("expected open frame, got {other:?}")),
        }
    }
    Ok(ws)
}

/// The messages carried by one received text message.
pub fn messages(protocol: Protocol, text: &str) -> Result<Vec<String>, String> {
    match protocol {
        Protocol::Raw => Ok(vec![text.to_owned()]),
        Protocol::Sockjs => match text.as_bytes().first() {
            Some(b'h') => Ok(Vec::new()),
            Some(b'a') => {
                serde_json::from_str(&text[1..]).map_err(|e| format!("bad frame {text:?}: {e}"))
            }
            _ => Err(format!("unexpected frame {text:?}")),
        },
    }
}

/// The frame carrying `payload` as the client sends it.
pub fn frame(protocol: Protocol, payload: &str) -> String {
    frame_with(protocol, payload.len(), |out| out.push_str(payload))
}

/// A client frame whose message `body` writes: `["…"]` for SockJS (the
/// bodies are plain ASCII without quotes or backslashes), as is for raw.
/// One allocation (the load tool's own cost per message counts: it shares
/// the machine).
fn frame_with(protocol: Protocol, len: usize, body: impl FnOnce(&mut String)) -> String {
    let mut out = String::with_capacity(len + 4);
    if protocol == Protocol::Sockjs {
        out.push_str("[\"");
    }
    body(&mut out);
    if protocol == Protocol::Sockjs {
        out.push_str("\"]");
    }
    out
}

/// Payload `seq` of session `s`, padded to `size` bytes.
pub fn payload(s: usize, seq: u64, size: usize) -> String {
    let mut p = String::with_capacity(size);
    push_payload(&mut p, s, seq, size);
    p
}

/// Appends payload `seq` of session `s`: `s:seq:` then `x` up to `size`.
pub fn push_payload(out: &mut String, s: usize, seq: u64, size: usize) {
    const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    let start = out.len();
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(s));
    out.push(':');
    out.push_str(digits.format(seq));
    out.push(':');
    let mut pad = size.saturating_sub(out.len() - start);
    while pad > 0 {
        let n = pad.min(PAD.len());
        out.push_str(&PAD[..n]);
        pad -= n;
    }
}

/// The frame carrying payload `seq` of session `s`.
fn payload_frame(protocol: Protocol, s: usize, seq: u64, size: usize) -> String {
    // The `s:seq:` prefix may make a short payload longer than `size`.
    frame_with(protocol, size + 24, |out| push_payload(out, s, seq, size))
}

/// Whether `text` carries exactly `expected` and nothing else: the usual
/// case, checked without a JSON parser.
fn is_single_echo(protocol: Protocol, text: &str, expected: &str) -> bool {
    match protocol {
        Protocol::Raw => text == expected,
        Protocol::Sockjs => {
            text.strip_prefix("a[\"")
                .and_then(|t| t.strip_suffix("\"]"))
                == Some(expected)
        }
    }
}

/// Echo: each session keeps `inflight` messages outstanding; counted in the
/// window after `warmup`.
pub async fn echo(args: &Args) -> (Tally, f64) {
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    let (protocol, inflight, size) = (args.protocol, args.inflight, args.size);
    let total = stats::per_session(args.sessions, |s, mut tally| {
        let url = ws_url(&args.url, protocol, s);
        async move {
            let r = echo_session(&url, protocol, s, inflight, size, start, end, &mut tally).await;
            (tally, r)
        }
    })
    .await;
    (total, args.duration)
}

#[allow(clippy::too_many_arguments)]
async fn echo_session(
    url: &str,
    protocol: Protocol,
    s: usize,
    inflight: usize,
    size: usize,
    start: Instant,
    end: Instant,
    tally: &mut Tally,
) -> Result<(), String> {
    let read_buffer = (2 * inflight * (size + 64)).clamp(512, BURST_READ_BUFFER);
    let mut ws = connect(url, protocol, read_buffer).await?;
    let mut sent: VecDeque<Instant> = VecDeque::new();
    let (mut next_send, mut next_recv) = (0u64, 0u64);
    let mut expected = String::with_capacity(size + 24);
    for _ in 0..inflight {
        ws.send(Message::text(payload_frame(protocol, s, next_send, size)))
            .await
            .map_err(|e| e.to_string())?;
        sent.push_back(Instant::now());
        next_send += 1;
    }
    // One timer for the whole run, not one per message.
    let deadline = tokio::time::sleep_until(end.into());
    tokio::pin!(deadline);
    loop {
        let msg = tokio::select! {
            biased;
            m = ws.next() => match m {
                Some(Ok(m)) => m,
                other => return Err(format!("session {s} ended: {other:?}")),
            },
            _ = &mut deadline => return Ok(()),
        };
        let Message::Text(text) = msg else { continue };
        // The usual case, one message per frame, is checked without parsing.
        expected.clear();
        push_payload(&mut expected, s, next_recv, size);
        let count = match text.as_str() {
            t if is_single_echo(protocol, t, &expected) => 1,
            t => {
                let msgs = messages(protocol, t)?;
                for (i, m) in msgs.iter().enumerate() {
                    if *m != payload(s, next_recv + i as u64, size) {
                        return Err(format!(
                            "session {s}: expected message {}, got {m:.40}",
                            next_recv + i as u64
                        ));
                    }
                }
                msgs.len()
            }
        };
        for _ in 0..count {
            next_recv += 1;
            let at = sent.pop_front().ok_or("more echoes than sends")?;
            let now = Instant::now();
            if now >= start {
                tally.record(now - at);
            }
            if now < end {
                ws.send(Message::text(payload_frame(protocol, s, next_send, size)))
                    .await
                    .map_err(|e| e.to_string())?;
                sent.push_back(now);
                next_send += 1;
            }
        }
    }
}

/// Idle: open `sessions` sockets, hold them `hold` seconds, count the ones
/// lost. Heartbeats (`h`) must keep arriving on SockJS sessions.
pub async fn idle(args: &Args, opened: impl FnOnce()) -> (Tally, u64) {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let hold = Duration::from_secs_f64(args.hold);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let (go_tx, go_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = Vec::new();
    for s in 0..args.sessions {
        let url = ws_url(&args.url, args.protocol, s);
        let (protocol, sem, ready, mut go) =
            (args.protocol, sem.clone(), ready_tx.clone(), go_rx.clone());
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.expect("semaphore");
            let ws = match connect(&url, protocol, BURST_READ_BUFFER).await {
                Ok(ws) => ws,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return (false, 0u64);
                }
            };
            drop(permit);
            let _ = ready.send(Ok(()));
            let (_tx, mut rx) = ws.split();
            let until = loop {
                if let Some(t) = *go.borrow_and_update() {
                    break t;
                }
                tokio::select! {
                    r = go.changed() => if r.is_err() { return (false, 0) },
                    m = rx.next() => if !matches!(m, Some(Ok(_))) { return (false, 0) },
                }
            };
            let mut heartbeats = 0;
            loop {
                match tokio::time::timeout_at(until.into(), rx.next()).await {
                    Err(_) => return (true, heartbeats),
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "h" => heartbeats += 1,
                    Ok(Some(Ok(_))) => {}
                    Ok(_) => return (false, heartbeats),
                }
            }
        }));
    }
    drop(ready_tx);
    let mut tally = Tally::new();
    for _ in 0..args.sessions {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => tally.error(e),
            None => break,
        }
    }
    opened();
    let _ = go_tx.send(Some(Instant::now() + hold));
    let mut lost = 0;
    let mut min_heartbeats = u64::MAX;
    for t in tasks {
        let (alive, hb) = t.await.expect("idle task");
        if alive {
            tally.done += 1;
            min_heartbeats = min_heartbeats.min(hb);
        } else {
            lost += 1;
        }
    }
    if args.protocol == Protocol::Sockjs
        && args.min_heartbeats > 0
        && min_heartbeats < args.min_heartbeats
        && tally.done > 0
    {
        tally.error(format!(
            "a session got only {min_heartbeats} heartbeats (< {})",
            args.min_heartbeats
        ));
    }
    (tally, lost)
}

/// Broadcast: `sessions` receivers; one of them sends `messages` at once;
/// every receiver must get all of them in order. Returns deliveries and the
/// seconds from the first send to the last delivery.
/// `connected` runs once every receiver is connected, just before the burst.
pub async fn broadcast(args: &Args, connected: impl FnOnce()) -> (Tally, f64) {
    let epoch = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let (total, size) = (args.messages, args.size);
    let mut tasks = Vec::new();
    for s in 0..args.sessions {
        let url = ws_url(&args.url, Protocol::Sockjs, s);
        let (ready, mut go, sem) = (ready_tx.clone(), go_rx.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            let permit = sem.acquire_owned().await.expect("semaphore");
            let ws = match connect(&url, Protocol::Sockjs, BURST_READ_BUFFER).await {
                Ok(ws) => ws,
                Err(e) => {
                    let _ = ready.send(Err(e.clone()));
                    tally.error(e);
                    return (tally, epoch);
                }
            };
            drop(permit);
            let _ = ready.send(Ok(()));
            let (mut tx, mut rx) = ws.split();
            let _ = go.wait_for(|g| *g).await;
            if s == 0 {
                for seq in 0..total {
                    let mut p = format!("{seq}:{}:", epoch.elapsed().as_micros());
                    while p.len() < size {
                        p.push('x');
                    }
                    if let Err(e) = tx.send(Message::text(frame(Protocol::Sockjs, &p))).await {
                        tally.error(e.to_string());
                    }
                }
            }
            let mut next = 0u64;
            let mut last = epoch;
            while next < total as u64 {
                let text = match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue,
                    other => {
                        tally.error(format!("receiver {s} after {next} messages: {other:?}"));
                        break;
                    }
                };
                let msgs = match messages(Protocol::Sockjs, text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        tally.error(e);
                        break;
                    }
                };
                for m in msgs {
                    let mut parts = m.splitn(3, ':');
                    let seq: u64 = parts
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(u64::MAX);
                    let sent_us: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                    if seq != next {
                        tally.error(format!("receiver {s}: expected message {next}, got {seq}"));
                    }
                    next = seq.wrapping_add(1);
                    last = Instant::now();
                    let lat = (last - epoch).as_micros() as u64;
                    tally.record(Duration::from_micros(lat.saturating_sub(sent_us)));
                }
            }
            (tally, last)
        }));
    }
    drop(ready_tx);
    for _ in 0..args.sessions {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    connected();
    let started = Instant::now();
    let _ = go_tx.send(true);
    let mut tally = Tally::new();
    let mut last = started;
    for t in tasks {
        let (t, l) = t.await.expect("broadcast task");
        last = last.max(l);
        tally.merge(t);
    }
    (tally, (last - started).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_asked_size_and_frames_wrap_them() {
        let p = payload(7, 42, 16);
        assert_eq!(p, "7:42:xxxxxxxxxxx");
        assert_eq!(payload(7, 42, 2), "7:42:");
        assert_eq!(payload(1, 2, 200).len(), 200);
        assert_eq!(
            payload_frame(Protocol::Sockjs, 7, 42, 16),
            format!("[\"{p}\"]")
        );
        assert_eq!(payload_frame(Protocol::Raw, 7, 42, 16), p);
    }

    #[test]
    fn the_echo_shortcut_accepts_only_the_one_expected_message() {
        let p = payload(3, 9, 32);
        assert!(is_single_echo(Protocol::Sockjs, &format!("a[\"{p}\"]"), &p));
        assert!(is_single_echo(Protocol::Raw, &p, &p));
        let other = payload(3, 10, 32);
        assert!(!is_single_echo(
            Protocol::Sockjs,
            &format!("a[\"{other}\"]"),
            &p
        ));
        assert!(!is_single_echo(
            Protocol::Sockjs,
            &format!("a[\"{p}\",\"{p}\"]"),
            &p
        ));
        assert!(!is_single_echo(Protocol::Sockjs, &format!("[\"{p}\"]"), &p));
        // What the shortcut rejects still decodes through the parser.
        let two = format!("a[\"{p}\",\"{other}\"]");
        assert_eq!(messages(Protocol::Sockjs, &two).unwrap(), vec![p, other]);
    }
}
