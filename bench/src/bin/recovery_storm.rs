//! Recovery storm (issue 20): `--clients` STOMP clients on one node (the
//! victim), each signed in as its own user and subscribed to one shared
//! topic and to its own user queue, each keeping the position its RECEIPTs
//! give. The victim is killed (SIGKILL); `--messages` publications go to
//! the topic and to every user's queue through the survivors' HTTP API;
//! then every client reconnects at once, to the survivors in turn, and
//! subscribes again with `x-recover-offset` and `x-recover-epoch`.
//! Reported (a `RESULT` JSON line): the time from the storm's start until
//! each client recovered everything (p50, p99, max), the recovered
//! messages, those lost or out of order, and the survivors' and Redis's
//! CPU per recovered message.
//!   recovery-storm --victim ws://127.0.0.1:8091/stomp --victim-pid P \
//!     --survivors ws://127.0.0.1:8092/stomp,ws://127.0.0.1:8093/stomp \
//!     --api http://127.0.0.1:8096,http://127.0.0.1:8097 --api-key K \
//!     --secret S --server-pids P2,P3 --redis-pid R

#[path = "../api_client.rs"]
mod api_client;
#[path = "../stats.rs"]
#[allow(dead_code)]
mod stats;
#[path = "../stomp_conn.rs"]
mod stomp_conn;

use api_client::Api;
use clap::Parser;
use std::sync::Arc;
use std::time::Instant;
use stomp_conn::Conn;

#[derive(Parser, Debug)]
struct Args {
    /// The node the clients start on, as `ws://HOST:PORT/PREFIX`.
    #[arg(long)]
    victim: String,
    /// Killed once the clients are in; without it, the clients drop their
    /// own connections instead (the node lives on).
    #[arg(long)]
    victim_pid: Option<i32>,
    /// The nodes the clients come back to.
    #[arg(long, value_delimiter = ',')]
    survivors: Vec<String>,
    /// The survivors' API base URLs, used in turn.
    #[arg(long, value_delimiter = ',')]
    api: Vec<String>,
    #[arg(long)]
    api_key: String,
    /// The JWT secret (HS256) the nodes accept.
    #[arg(long)]
    secret: String,
    #[arg(long, default_value_t = 5000)]
    clients: usize,
    #[arg(long, default_value_t = 50)]
    messages: u64,
    #[arg(long, default_value = "/topic/storm")]
    topic: String,
    /// The survivors' PIDs (CPU).
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    #[arg(long)]
    redis_pid: Option<u32>,
    /// API requests in flight while publishing.
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// The topic only, no user queues (as a Socket.IO broadcast).
    #[arg(long)]
    topic_only: bool,
}

/// A STOMP client over a SockJS WebSocket.
struct Client {
    conn: Conn,
}

const QUEUE: &str = "/user/queue/storm";

impl Client {
    async fn open(base: &str, n: usize, token: &str) -> Result<Client, String> {
        let url = format!("{base}/000/r{}x{n}/websocket", std::process::id());
        let connect =
            format!("CONNECT\naccept-version:1.2\nhost:/\nAuthorization:Bearer {token}\n\n\0");
        Ok(Client {
            conn: Conn::open(&url, true, &connect).await?,
        })
    }

    /// Subscribes (recovering from `from` if given); returns the offsets of
    /// the MESSAGEs before the RECEIPT, and the RECEIPT's headers.
    async fn subscribe(
        &mut self,
        id: &str,
        destination: &str,
        from: Option<&(u64, String)>,
    ) -> Result<(Vec<u64>, Vec<(String, String)>), String> {
        let mut frame = format!("SUBSCRIBE\nid:{id}\ndestination:{destination}\nreceipt:{id}\n");
        if let Some((offset, epoch)) = from {
            frame.push_str(&format!(
                "x-recover-offset:{offset}\nx-recover-epoch:{epoch}\n"
            ));
        }
        frame.push_str("\n\0");
        self.conn.send(&frame).await?;
        let mut offsets = Vec::new();
        loop {
            let f = self.conn.next().await?;
            let h = headers(&f);
            match f.split('\n').next() {
                Some("RECEIPT") => return Ok((offsets, h)),
                Some("MESSAGE") => offsets.push(
                    header(&h, "x-stream-offset")
                        .and_then(|o| o.parse().ok())
                        .ok_or("a MESSAGE without x-stream-offset")?,
                ),
                _ => return Err(format!("unexpected {:?}", &f[..f.len().min(200)])),
            }
        }
    }
}

fn headers(frame: &str) -> Vec<(String, String)> {
    let head = frame.split("\n\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn position(h: &[(String, String)]) -> Result<(u64, String), String> {
    Ok((
        header(h, "x-stream-offset")
            .and_then(|o| o.parse().ok())
            .ok_or("a RECEIPT without x-stream-offset")?,
        header(h, "x-stream-epoch")
            .ok_or("a RECEIPT without x-stream-epoch")?
            .to_owned(),
    ))
}

fn token(secret: &str, user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": user, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}

/// Publishes every request in `bodies` (path, JSON) through the APIs,
/// `publishers` at a time.
async fn publish_all(args: &Args, requests: Vec<(String, String)>) -> Result<(), String> {
    let queue = Arc::new(std::sync::Mutex::new(requests.into_iter()));
    let mut tasks = Vec::new();
    for p in 0..args.publishers {
        let api = args.api[p % args.api.len()].clone();
        let key = args.api_key.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut api = Api::connect(&api, &key).await?;
            loop {
                let next = queue.lock().unwrap().next();
                let Some((path, json)) = next else { break };
                api.post(&path, json).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// CPU seconds of processes `pids`, summed.
fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| stats::process_cpu_seconds(*p))
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let n = args.clients;
    eprintln!("opening {n} clients on the victim");
    let mut opened = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let batch = futures_util::future::join_all(chunk.iter().map(|&i| {
            let args = args.clone();
            async move {
                let token = token(&args.secret, &format!("u{i}"));
                let mut c = Client::open(&args.victim, i, &token).await?;
                let (_, t) = c.subscribe("t", &args.topic, None).await?;
                let q = if args.topic_only {
                    (0, String::new())
                } else {
                    position(&c.subscribe("q", QUEUE, None).await?.1)?
                };
                Ok::<_, String>((c, position(&t)?, q))
            }
        }))
        .await;
        for r in batch {
            opened.push(r.unwrap_or_else(|e| panic!("a client: {e}")));
        }
    }
    let positions: Vec<((u64, String), (u64, String))> = opened
        .iter()
        .map(|(_, t, q)| (t.clone(), q.clone()))
        .collect();

    match args.victim_pid {
        Some(pid) => {
            eprintln!("killing the victim (pid {pid})");
            unsafe { libc::kill(pid, libc::SIGKILL) };
            drop(opened);
        }
        None => {
            eprintln!("the clients drop their connections");
            for (mut c, _, _) in opened {
                let _ = c.conn.ws.close(None).await;
            }
        }
    }

    let mut requests = Vec::new();
    for m in 1..=args.messages {
        requests.push((
            "/api/publish".to_owned(),
            serde_json::json!({"destination": args.topic, "body": format!("topic {m}"), "count": false})
                .to_string(),
        ));
        for i in (0..n).filter(|_| !args.topic_only) {
            requests.push((
                format!("/api/users/u{i}/send"),
                serde_json::json!({"destination": QUEUE, "body": format!("q {m}"), "count": false})
                    .to_string(),
            ));
        }
    }
    let published = requests.len();
    let started = Instant::now();
    publish_all(&args, requests)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "published {published} in {:.1} s; the storm",
        started.elapsed().as_secs_f64()
    );

    let redis = args.redis_pid.map(|p| vec![p]).unwrap_or_default();
    let (cpu0, redis0) = (cpu(&args.server_pids), cpu(&redis));
    let storm = Instant::now();
    let results =
        futures_util::future::join_all(positions.into_iter().enumerate().map(|(i, (t, q))| {
            let args = args.clone();
            async move {
                let base = &args.survivors[i % args.survivors.len()];
                let token = token(&args.secret, &format!("u{i}"));
                let mut c = Client::open(base, i, &token).await?;
                let mut lost = 0u64;
                let mut recovered = 0u64;
                let wanted = [("t", args.topic.as_str(), &t), ("q", QUEUE, &q)];
                let wanted = if args.topic_only {
                    &wanted[..1]
                } else {
                    &wanted[..]
                };
                for &(id, d, from) in wanted {
                    let (offsets, receipt) = c.subscribe(id, d, Some(from)).await?;
                    if header(&receipt, "x-recovered") != Some("true") {
                        if std::env::var_os("DEBUG").is_some() {
                            eprintln!("client {i} {d}: not recovered from {from:?}: {receipt:?}");
                        }
                        lost += args.messages;
                        continue;
                    }
                    let want: Vec<u64> = (from.0 + 1..=from.0 + args.messages).collect();
                    // The topic may have more after ours: count what we expect.
                    let got: Vec<u64> = offsets.iter().copied().take(want.len()).collect();
                    if got != want {
                        lost += args.messages;
                    } else {
                        recovered += args.messages;
                    }
                }
                Ok::<_, String>((storm.elapsed().as_secs_f64(), recovered, lost))
            }
        }))
        .await;
    let elapsed = storm.elapsed().as_secs_f64();
    let (cpu1, redis1) = (cpu(&args.server_pids), cpu(&redis));
    let mut times = Vec::new();
    let (mut recovered, mut lost, mut errors) = (0u64, 0u64, 0usize);
    for r in results {
        match r {
            Ok((t, rec, l)) => {
                times.push(t);
                recovered += rec;
                lost += l;
            }
            Err(e) => {
                errors += 1;
                lost += if args.topic_only { 1 } else { 2 } * args.messages;
                if errors <= 3 {
                    eprintln!("a client: {e}");
                }
            }
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per = |s: f64| {
        if recovered > 0 {
            1e6 * s / recovered as f64
        } else {
            0.0
        }
    };
    println!(
        "RESULT {}",
        serde_json::json!({
            "clients": n,
            "messages_per_destination": args.messages,
            "recovered": recovered,
            "lost": lost,
            "errors": errors,
            "p50_s": percentile(&times, 0.5),
            "p99_s": percentile(&times, 0.99),
            "all_s": elapsed,
            "server_cpu_us_per_recovered": per(cpu1 - cpu0),
            "redis_cpu_us_per_recovered": per(redis1 - redis0),
        })
    );
}
