//! A real upstream WebSocket server on loopback for the proxy tests, with
//! behaviours chosen by the request path, recording what it saw.

// tungstenite's handshake callback returns its error response by value.
#![allow(clippy::result_large_err)]

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// What the upstream saw of one connection.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub messages: Vec<String>,
    /// The close frame the gateway sent: (code, reason).
    pub close: Option<(u16, String)>,
    pub ended: bool,
}

pub struct Upstream {
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts a server. Paths:
    /// - `/echo`: sends every text message back;
    /// - `/push`: sends "welcome" at once, then echoes;
    /// - `/refuse/NNN`: answers the handshake with HTTP NNN;
    /// - `/cookie`: refuses with 401 unless a `cookie` header has `sid=`;
    /// - `/close/CODE`: closes with CODE "bye from upstream" after the first message;
    /// - `/binary`: echoes every message back as a binary frame; "bad" gets invalid UTF-8;
    /// - `/reset`: drops the TCP connection after the first message;
    /// - `/deaf`: accepts, then never reads (so never answers pings);
    /// - `/flood/N`: sends messages "0".."N-1" (1 KiB each) as fast as TCP takes them.
    pub fn start() -> Upstream {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(bind: &str) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        let bind = bind.to_owned();
        let rec = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&bind).await.unwrap();
                tx.send(listener.local_addr().unwrap().to_string()).unwrap();
                let serve = async {
                    loop {
                        let (tcp, _) = listener.accept().await.unwrap();
                        tokio::spawn(connection(tcp, rec.clone()));
                    }
                };
                tokio::select! { _ = serve => {}, _ = stopped => {} }
            });
        });
        Upstream {
            addr: rx.recv().unwrap(),
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Every connection so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits up to 5 s for `done` to hold of the connections seen.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        for _ in 0..500 {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("upstream never saw {what}: {:?}", self.seen());
    }

    /// Stops listening (open connections end with the runtime).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn connection(tcp: tokio::net::TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let record = Arc::new(Mutex::new(Seen::default()));
    let rec = record.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let mut r = rec.lock().unwrap();
        r.path = req.uri().path().to_owned();
        for (k, v) in req.headers() {
            r.headers
                .insert(k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned());
        }
        let refuse = |status: u16| {
            let mut e = ErrorResponse::new(Some("refused".into()));
            *e.status_mut() = StatusCode::from_u16(status).unwrap();
            Err(e)
        };
        if let Some(code) = r.path.strip_prefix("/refuse/") {
            return refuse(code.parse().unwrap());
        }
        if r.path == "/cookie" && !r.headers.get("cookie").is_some_and(|c| c.contains("sid=")) {
            return refuse(401);
        }
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async(tcp, callback).await;
    let path = record.lock().unwrap().path.clone();
    let index = {
        let mut all = seen.lock().unwrap();
        all.push(record.lock().unwrap().clone());
        all.len() - 1
    };
    let Ok(mut ws) = ws else { return };
    let update = |f: &dyn Fn(&mut Seen)| f(&mut seen.lock().unwrap()[index]);
    if path == "/deaf" {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    if path == "/push" {
        ws.send(Message::text("welcome")).await.unwrap();
    }
    if let Some(n) = path.strip_prefix("/flood/") {
        let n: usize = n.parse().unwrap();
        let pad = "x".repeat(1024);
        for i in 0..n {
            if ws.send(Message::text(format!("{i} {pad}"))).await.is_err() {
                return;
            }
        }
    }
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let t = t.to_string();
                update(&|s| s.messages.push(t.clone()));
                if path == "/reset" {
                    return; // dropped without a close frame
                }
                if let Some(code) = path.strip_prefix("/close/") {
                    let frame = CloseFrame {
                        code: code.parse::<u16>().unwrap().into(),
                        reason: "bye from upstream".into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    continue;
                }
                let reply = if path == "/binary" {
                    if t == "bad" {
                        Message::binary(vec![0xff, 0xfe])
                    } else {
                        Message::binary(t.into_bytes())
                    }
                } else {
                    Message::text(t)
                };
                if ws.send(reply).await.is_err() {
                    break;
                }
            }
            Ok(Message::Close(frame)) => {
                let c = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                update(&|s| s.close = c.clone());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    update(&|s| s.ended = true);
}
