//! stomp-fanout: STOMP topic fan-out over WebSocket, against any broker
//! that speaks STOMP over a WebSocket (the gateway's `stomp` kind,
//! RabbitMQ's Web-STOMP). `subscribers` connections subscribe to one
//! topic; a separate publisher SENDs `messages` to it, either paced (the
//! next only once every subscriber has the previous one) or as a burst.
//! Every subscriber must get every message once, in order; deliveries/s
//! and latency (send to receipt) are printed as a `RESULT {json}` line.
//!
//!   stomp-fanout --url ws://127.0.0.1:8090/stomp/websocket --subscribers 1000 --mode paced
//!   stomp-fanout --url ws://127.0.0.1:8090/stomp --framing sockjs ...
//!   stomp-fanout --url ws://127.0.0.1:15674/ws --login guest ...
//!   stomp-fanout --url ws://A/stomp/websocket,ws://B/stomp/websocket \
//!     --api http://A-api --api-key KEY --server-pid PA,PB,PREDIS
//!
//! With several URLs (nodes of a cluster), subscriber `s` connects to URL
//! `s mod n`; the publisher to the first, or with `--api` through the HTTP
//! API's `POST /api/publish`. With several PIDs, the server CPU is their
//! sum, and a `CPU {json}` line gives each one's seconds.

// Shared with sockjs-bench; this tool uses part of it.
#[path = "../api_client.rs"]
mod api_client;
#[allow(dead_code)]
#[path = "../stats.rs"]
mod stats;
#[path = "../stomp_conn.rs"]
mod stomp_conn;

use api_client::Api;
use clap::{Parser, ValueEnum};
use stats::{Report, Tally};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stomp_conn::Conn;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Mode {
    /// The next publish once every subscriber has the previous one.
    Paced,
    /// Every message published at once.
    Burst,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Framing {
    /// STOMP frames as WebSocket text messages.
    Plain,
    /// STOMP frames inside SockJS frames at URL/000/<id>/websocket.
    Sockjs,
}

#[derive(Parser, Debug, Clone)]
struct Args {
    /// WebSocket URL of the broker; comma-separated for several nodes.
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Publish through this HTTP API (`POST /api/publish`) instead of a
    /// STOMP SEND.
    #[arg(long)]
    api: Option<String>,
    #[arg(long, default_value = "")]
    api_key: String,
    /// With `--api`: have every node count its deliveries before the API
    /// answers (its default). Off, the API answers once the publication is
    /// on its way, as a backend that does not read `delivered` asks
    /// (`"count": false`): what this tool measures is the fan-out.
    #[arg(long)]
    count: bool,
    #[arg(long, value_enum, default_value = "plain")]
    framing: Framing,
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    #[arg(long, default_value_t = 100)]
    messages: usize,
    #[arg(long, value_enum, default_value = "paced")]
    mode: Mode,
    /// Body bytes per message.
    #[arg(long, default_value_t = 128)]
    size: usize,
    #[arg(long, default_value = "/topic/bench")]
    destination: String,
    /// CONNECT login and passcode (RabbitMQ: guest).
    #[arg(long)]
    login: Option<String>,
    /// The broker's PIDs, for their CPU share; comma-separated.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    #[arg(long, default_value = "server")]
    label: String,
}

/// Connection `n`, to URL `n mod` the number of URLs.
async fn open(args: &Args, n: usize) -> Result<Conn, String> {
    open_at(args, n, &args.url[n % args.url.len()]).await
}

async fn open_at(args: &Args, n: usize, base: &str) -> Result<Conn, String> {
    let url = match args.framing {
        Framing::Plain => base.to_owned(),
        Framing::Sockjs => format!("{base}/000/s{}x{n}/websocket", std::process::id()),
    };
    let login = args.login.as_deref().unwrap_or("");
    let connect = format!(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{login}\nheart-beat:0,0\n\n\0"
    );
    Conn::open(&url, args.framing == Framing::Sockjs, &connect).await
}

/// The body of a MESSAGE: `seq:sent_us:` padding.
fn body(seq: usize, sent_us: u128, size: usize) -> String {
    let mut b = format!("{seq}:{sent_us}:");
    while b.len() < size {
        b.push('x');
    }
    b
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tally, seconds, cpu, server_cpu) = rt.block_on(run(Arc::new(args.clone())));
    let lost = (args.subscribers * args.messages) as u64
        - tally.done.min((args.subscribers * args.messages) as u64);
    let report = Report {
        scenario: format!("stomp-{:?}", args.mode).to_lowercase(),
        label: args.label.clone(),
        sessions: args.subscribers,
        tally,
        seconds,
        lost,
        rss_per_session_kib: None,
        client_cpu: cpu,
        server_cpu,
    };
    report.print();
    if report.tally.errors > 0 || report.lost > 0 {
        std::process::exit(1);
    }
}

/// Who publishes: a STOMP client on the first URL, or the HTTP API.
enum Publisher {
    Stomp(Box<Conn>),
    Api { api: Api, count: bool },
}

impl Publisher {
    async fn open(args: &Args, n: usize) -> Result<Publisher, String> {
        let Some(api) = &args.api else {
            let conn = open_at(args, n, &args.url[0]).await?;
            return Ok(Publisher::Stomp(Box::new(conn)));
        };
        Ok(Publisher::Api {
            api: Api::connect(api, &args.api_key).await?,
            count: args.count,
        })
    }

    async fn publish(&mut self, destination: &str, body: &str) -> Result<(), String> {
        match self {
            Publisher::Stomp(c) => {
                c.send(&format!(
                    "SEND\ndestination:{destination}\ncontent-type:text/plain\n\n{body}\0"
                ))
                .await
            }
            Publisher::Api { api, count } => {
                let json =
                    serde_json::json!({ "destination": destination, "body": body, "count": count });
                api.post("/api/publish", json.to_string()).await
            }
        }
    }
}

/// Returns the deliveries, the seconds from the first publish to the last
/// delivery, and the CPU seconds of this tool and of the server over them.
async fn run(args: Arc<Args>) -> (Tally, f64, f64, Option<f64>) {
    let epoch = Instant::now();
    let n = args.subscribers;
    // received[seq]: subscribers that have message seq (paced mode waits on it).
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..args.messages).map(|_| AtomicUsize::new(0)).collect());
    let progress = Arc::new(tokio::sync::Notify::new());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let sem = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::new();
    for s in 0..n {
        let (args, received, progress, ready, sem) = (
            args.clone(),
            received.clone(),
            progress.clone(),
            ready_tx.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            let permit = sem.acquire_owned().await.expect("semaphore");
            let subscribed = async {
                let mut c = open(&args, s).await?;
                c.send(&format!(
                    "SUBSCRIBE\nid:0\ndestination:{}\nack:auto\nreceipt:s\n\n\0",
                    args.destination
                ))
                .await?;
                c.expect("RECEIPT").await?;
                Ok::<Conn, String>(c)
            };
            let mut c = match subscribed.await {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(e.clone()));
                    tally.error(format!("subscriber {s}: {e}"));
                    return (tally, epoch);
                }
            };
            drop(permit);
            let _ = ready.send(Ok(()));
            let mut last = epoch;
            for expected in 0..args.messages {
                let f = match c.expect("MESSAGE").await {
                    Ok(f) => f,
                    Err(e) => {
                        tally.error(format!("subscriber {s} after {expected} messages: {e}"));
                        break;
                    }
                };
                let now = Instant::now();
                let body = f.split_once("\n\n").map_or("", |(_, b)| b);
                let mut parts = body.splitn(3, ':');
                let seq: usize = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(usize::MAX);
                let sent_us: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                if seq != expected {
                    tally.error(format!(
                        "subscriber {s}: expected message {expected}, got {seq}"
                    ));
                    break;
                }
                let lat = (now - epoch).as_micros() as u64;
                tally.record(Duration::from_micros(lat.saturating_sub(sent_us)));
                last = now;
                if received[seq].fetch_add(1, Ordering::AcqRel) + 1 == n {
                    progress.notify_one();
                }
            }
            (tally, last)
        }));
    }
    drop(ready_tx);
    let mut ok = true;
    for _ in 0..n {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                eprintln!("a subscriber failed: {e}");
                ok = false;
                break;
            }
            None => break,
        }
    }
    let mut publisher = match Publisher::open(&args, n).await {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("publisher: {e}");
            None
        }
    };
    let cpu0 = stats::cpu_seconds();
    let server0: Vec<Option<f64>> = args
        .server_pid
        .iter()
        .map(|&p| stats::process_cpu_seconds(p))
        .collect();
    let started = Instant::now();
    if let (true, Some(p)) = (ok, publisher.as_mut()) {
        for seq in 0..args.messages {
            let b = body(seq, epoch.elapsed().as_micros(), args.size);
            if let Err(e) = p.publish(&args.destination, &b).await {
                eprintln!("publisher: {e}");
                break;
            }
            if args.mode == Mode::Paced {
                while received[seq].load(Ordering::Acquire) < n {
                    if tokio::time::timeout(Duration::from_secs(60), progress.notified())
                        .await
                        .is_err()
                    {
                        eprintln!("paced: message {seq} did not reach every subscriber in 60 s");
                        break;
                    }
                }
            }
        }
    }
    let mut tally = Tally::new();
    let mut last = started;
    for t in tasks {
        let (t, l) = t.await.expect("subscriber task");
        last = last.max(l);
        tally.merge(t);
    }
    let seconds = (last.max(started) - started).as_secs_f64().max(1e-6);
    let cpu = stats::cpu_seconds() - cpu0;
    let by_pid: Vec<Option<f64>> = args
        .server_pid
        .iter()
        .zip(server0)
        .map(|(&p, before)| Some(stats::process_cpu_seconds(p)? - before?))
        .collect();
    let server = (!by_pid.is_empty() && by_pid.iter().all(Option::is_some))
        .then(|| by_pid.iter().flatten().sum::<f64>());
    // Shares over the measured seconds; the subscribers' wait after the
    // last delivery is not counted.
    let scale = seconds / started.elapsed().as_secs_f64().max(1e-6);
    if args.server_pid.len() > 1 {
        let each: serde_json::Map<String, serde_json::Value> = args
            .server_pid
            .iter()
            .zip(&by_pid)
            .map(|(p, c)| (p.to_string(), serde_json::json!(c.map(|c| c * scale))))
            .collect();
        println!("CPU {}", serde_json::Value::Object(each));
    }
    (tally, seconds, cpu * scale, server.map(|s| s * scale))
}
