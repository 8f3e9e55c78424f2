//! The fd-limit abuse scenario of issue 10, as separate processes (each
//! process has its own open-file limit, so one flood needs several):
//!
//! - `fd-flood hold --from 127.0.0.2 --count 10000 ADDR`: opens raw
//!   WebSocket sessions (`/echo/websocket`) from one local address, 200 at
//!   a time, and holds those that open; prints what became of each attempt
//!   (open, refused with a status, connection refused or reset, timed out).
//! - `fd-flood old --from 127.0.0.1 --count 100 ADDR`: opens sessions, then
//!   echoes on every one each second, printing how many still answer.
//! - `fd-flood probe --from 127.0.0.1 ADDR`: `/healthz`, `/echo/info` and
//!   one new session, each with a 5 s limit, and how long each took.
//!
//! Every line printed is JSON, for scripts.
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Open sessions, then hold them.
    Hold(Sessions),
    /// Open sessions, then echo on each every second.
    Old(Sessions),
    Probe {
        #[arg(long)]
        from: IpAddr,
        addr: SocketAddr,
    },
}

#[derive(clap::Args)]
struct Sessions {
    #[arg(long)]
    from: IpAddr,
    #[arg(long)]
    count: usize,
    /// Seconds to keep them, after the last one is opened.
    #[arg(long, default_value_t = 3600.0)]
    hold: f64,
    addr: SocketAddr,
}

const LIMIT: Duration = Duration::from_secs(5);

async fn connect(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.bind(SocketAddr::new(from, 0))?;
    sock.connect(addr).await
}

/// One session attempt: the socket, or what went wrong in a word.
async fn open(from: IpAddr, addr: SocketAddr) -> Result<WebSocketStream<TcpStream>, String> {
    let attempt = async {
        let tcp = connect(from, addr)
            .await
            .map_err(|e| format!("{:?}", e.kind()))?;
        let url = format!("ws://{addr}/echo/websocket");
        match tokio_tungstenite::client_async(url, tcp).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                Err(format!("status {}", resp.status().as_u16()))
            }
            Err(tokio_tungstenite::tungstenite::Error::Io(e)) => Err(format!("{:?}", e.kind())),
            Err(e) => Err(format!("{e}")),
        }
    };
    match tokio::time::timeout(LIMIT, attempt).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    }
}

fn tally(outcomes: &std::collections::BTreeMap<String, usize>) -> String {
    serde_json::to_string(outcomes).unwrap()
}

async fn hold(from: IpAddr, count: usize, hold: f64, addr: SocketAddr) {
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut held = Vec::new();
    let started = Instant::now();
    let mut remaining = count;
    while remaining > 0 {
        let batch = remaining.min(200);
        remaining -= batch;
        let attempts: Vec<_> = (0..batch).map(|_| tokio::spawn(open(from, addr))).collect();
        for a in attempts {
            match a.await.unwrap() {
                Ok(ws) => {
                    *outcomes.entry("open".into()).or_default() += 1;
                    held.push(ws);
                }
                Err(e) => *outcomes.entry(e).or_default() += 1,
            }
        }
    }
    println!(
        "{{\"mode\":\"hold\",\"from\":\"{from}\",\"attempts\":{count},\"secs\":{:.1},\"outcomes\":{}}}",
        started.elapsed().as_secs_f64(),
        tally(&outcomes)
    );
    // Hold, answering pings (tungstenite does, while it is read).
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(hold);
    let readers: Vec<_> = held
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let _ = tokio::time::timeout_at(deadline, async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                ws
            })
        })
        .collect();
    for r in readers {
        let _ = r.await;
    }
}

async fn old(from: IpAddr, count: usize, hold: f64, addr: SocketAddr) {
    let mut sessions = Vec::new();
    for _ in 0..count {
        sessions.push(open(from, addr).await.expect("old session"));
    }
    let started = Instant::now();
    let mut first_error: Option<String> = None;
    while started.elapsed().as_secs_f64() < hold {
        let mut alive = 0;
        let mut next = Vec::new();
        for (i, mut ws) in sessions.into_iter().enumerate() {
            let text = format!("ping {i}");
            let echoed = tokio::time::timeout(LIMIT, async {
                ws.send(Message::text(text.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.as_str() == text => return Ok(()),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e.to_string()),
                        None => return Err("closed".into()),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            match echoed {
                Ok(()) => {
                    alive += 1;
                    next.push(ws);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        sessions = next;
        println!(
            "{{\"mode\":\"old\",\"t\":{:.1},\"alive\":{alive},\"of\":{count},\"first_error\":{}}}",
            started.elapsed().as_secs_f64(),
            serde_json::to_string(&first_error).unwrap()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A plain GET over a fresh connection: status, or what went wrong.
async fn get(from: IpAddr, addr: SocketAddr, path: &str) -> String {
    let attempt = async {
        let mut tcp = connect(from, addr)
            .await
            .map_err(|e| format!("{:?}", e.kind()))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("{:?}", e.kind()))?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head)
            .await
            .map_err(|e| format!("{:?}", e.kind()))?;
        Ok::<_, String>(format!("status {}", String::from_utf8_lossy(&head[9..12])))
    };
    match tokio::time::timeout(LIMIT, attempt).await {
        Ok(Ok(s)) | Ok(Err(s)) => s,
        Err(_) => "timed out".into(),
    }
}

async fn probe(from: IpAddr, addr: SocketAddr) {
    for path in ["/healthz", "/echo/info"] {
        let t = Instant::now();
        let r = get(from, addr, path).await;
        println!(
            "{{\"mode\":\"probe\",\"what\":\"{path}\",\"result\":\"{r}\",\"ms\":{}}}",
            t.elapsed().as_millis()
        );
    }
    let t = Instant::now();
    let r = match open(from, addr).await {
        Ok(_) => "open".to_owned(),
        Err(e) => e,
    };
    println!(
        "{{\"mode\":\"probe\",\"what\":\"session\",\"result\":\"{r}\",\"ms\":{}}}",
        t.elapsed().as_millis()
    );
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match args.mode {
            Mode::Hold(s) => hold(s.from, s.count, s.hold, s.addr).await,
            Mode::Old(s) => old(s.from, s.count, s.hold, s.addr).await,
            Mode::Probe { from, addr } => probe(from, addr).await,
        }
    });
}
