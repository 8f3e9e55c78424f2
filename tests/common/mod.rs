//! Test harness: runs the real `sockjs-gateway` binary on a loopback port
//! with a given config, and small clients for HTTP, streams and WebSockets.
#![allow(dead_code)]

pub mod failover;
pub mod redis;
pub mod redis_cluster;
pub mod sentinel;
pub mod stomp;
pub mod store;
pub mod upstream;

use awc::ws;
use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway process; killed (by its own PID) when dropped.
pub struct Gateway {
    child: Child,
    pub addr: String,
    /// The HTTP API's address, when the config has an `[api]` key.
    pub api_addr: Option<String>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the binary with `toml` as its config file on a free port.
    pub fn start(toml: &str) -> Gateway {
        Self::start_with_env(toml, &[])
    }

    pub fn start_with_env(toml: &str, env: &[(&str, &str)]) -> Gateway {
        Self::spawn(toml, |cmd, _| {
            cmd.envs(env.iter().copied());
        })
    }

    /// Starts the binary with an open-file limit of `nofile` (soft and
    /// hard), logging at info into a file that [`Gateway::log`] reads.
    pub fn start_with_fd_limit(toml: &str, nofile: u64) -> Gateway {
        use std::os::unix::process::CommandExt;
        Self::spawn(toml, |cmd, dir| {
            let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
            cmd.env("RUST_LOG", "info").stderr(log);
            // SAFETY: only setrlimit, which is async-signal-safe, runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: nofile,
                        rlim_max: nofile,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
    }

    /// What the gateway logged (after [`Gateway::start_with_fd_limit`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn spawn(toml: &str, setup: impl FnOnce(&mut Command, &std::path::Path)) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockjs-gateway"));
        cmd.arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped());
        setup(&mut cmd, dir.path());
        let mut child = cmd.spawn().expect("gateway binary runs");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let api_addr = toml.contains("[api]").then(|| {
            let mut api = String::new();
            stdout.read_line(&mut api).unwrap();
            let addr = api.trim().rsplit("http://").next().unwrap_or_default();
            assert!(addr.starts_with("127.0.0.1:"), "api did not start: {api:?}");
            addr.to_owned()
        });
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "gateway did not start: {line:?}"
        );
        Gateway {
            child,
            addr,
            api_addr,
            _dir: dir,
        }
    }

    /// A URL on the HTTP API's listener.
    pub fn api_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.api_addr.as_deref().expect("[api] configured"),
            path
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to this gateway process (our own child, by PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child we spawned and still own.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls session path `s` until its answer is no longer "another connection
/// still open" (the server has seen the earlier receiver go), within 1 s.
pub async fn poll_after_abort(gw: &Gateway, s: &str) -> String {
    let mut body = String::new();
    for _ in 0..50 {
        body = post(&gw.url(&format!("{s}/xhr")), "").await.body;
        if !body.starts_with("c[2010") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    body
}

/// A backend a test talks to: an HTTP server on a loopback port with the
/// app `routes` configures, one worker. Its address, and its handle (it
/// stops with the test's runtime).
pub fn serve(
    routes: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> (String, actix_web::dev::ServerHandle) {
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
    let addr = server.addrs()[0].to_string();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (addr, handle)
}

/// A config with one echo service at `/echo` plus `extra` keys for it.
/// A loopback address that was free a moment ago: nothing listens there.
pub fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    dead_addr().rsplit(':').next().unwrap().parse().unwrap()
}

pub fn echo_config(extra: &str) -> String {
    format!("[services.echo]\nprefix = \"/echo\"\nkind = \"echo\"\n{extra}\n")
}

/// Runs the binary with `toml` as its config and expects it to refuse to
/// start: exit status 2 within 10 s (a gateway that starts instead is
/// stopped, and the test fails). Returns what it printed on stderr.
pub fn refused_at_start(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockjs-gateway"))
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > until {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{toml}\n{err}");
    err
}

/// A fresh random session path under `prefix`.
pub fn session(prefix: &str) -> String {
    format!("{prefix}/000/{}", rand_id())
}

pub fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s{:x}{}", t, N.fetch_add(1, Ordering::Relaxed))
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .disable_redirects()
        .finish()
}

/// A whole response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    send_request(client(), method, url, headers, body).await
}

/// A request from another loopback address (e.g. 127.0.0.2): a second
/// client machine, as far as the gateway can tell.
pub async fn request_from(
    local: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let connector = awc::Connector::new().local_address(local.parse().unwrap());
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(10))
        .finish();
    send_request(client, method, url, headers, body).await
}

async fn send_request(
    client: awc::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = client.request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req
        .send_body(body.to_owned())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = resp.body().limit(64 << 20).await.unwrap();
    Resp {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub async fn get(url: &str) -> Resp {
    request("GET", url, &[], "").await
}

pub async fn post(url: &str, body: &str) -> Resp {
    request("POST", url, &[], body).await
}

/// A streaming response read incrementally.
pub struct Stream {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    body: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                Item = Result<actix_web::web::Bytes, awc::error::PayloadError>,
            >,
        >,
    >,
    buf: Vec<u8>,
}

impl Stream {
    pub async fn open(method: &str, url: &str) -> Stream {
        Self::open_with(method, url, &[]).await
    }

    pub async fn open_with(method: &str, url: &str, headers: &[(&str, &str)]) -> Stream {
        let mut req = awc::Client::builder()
            .timeout(Duration::from_secs(3600))
            .finish()
            .request(method.parse().unwrap(), url);
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let resp = req.send().await.unwrap();
        Stream {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: Box::pin(resp),
            buf: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Reads until `done` finds the end of what is wanted in the buffer
    /// (within 5 s), and takes that much off the front.
    async fn read_while(&mut self, what: &str, done: impl Fn(&[u8]) -> Option<usize>) -> String {
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = done(&self.buf) {
                    return end;
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                    other => panic!(
                        "stream ended after {:?}: {other:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {what}, have {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        });
        let rest = self.buf.split_off(end);
        String::from_utf8(std::mem::replace(&mut self.buf, rest)).unwrap()
    }

    /// Reads exactly `n` more bytes.
    pub async fn read_exact(&mut self, n: usize) -> String {
        self.read_while(&format!("{n} bytes"), |buf| (buf.len() >= n).then_some(n))
            .await
    }

    /// Reads up to and including the next occurrence of `delim`.
    pub async fn read_until(&mut self, delim: &str) -> String {
        let d = delim.as_bytes();
        self.read_while(&format!("{delim:?}"), |buf| {
            buf.windows(d.len())
                .position(|w| w == d)
                .map(|p| p + d.len())
        })
        .await
    }

    /// The next `\n`-terminated line, or `None` once the response has
    /// ended (within 5 s).
    pub async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                    let rest = self.buf.split_off(p + 1);
                    let line = std::mem::replace(&mut self.buf, rest);
                    return Some(String::from_utf8(line).unwrap());
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                    _ => return None,
                }
            }
        })
        .await
        .expect("timed out waiting for a line")
    }

    /// Asserts that the response ends (within 5 s) with nothing more.
    pub async fn expect_end(&mut self) {
        let next = tokio::time::timeout(Duration::from_secs(5), self.body.next())
            .await
            .expect("stream did not end");
        assert!(
            next.is_none() && self.buf.is_empty(),
            "expected end, got {next:?} / {:?}",
            self.buf
        );
    }
}

/// A WebSocket client connection.
pub struct Ws {
    pub conn: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        Self::connect_with(url, &[])
            .await
            .unwrap_or_else(|e| panic!("ws connect {url}: {e}"))
    }

    pub async fn connect_with(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, awc::error::WsClientError> {
        Self::connect_as(awc::Client::new(), url, headers).await
    }

    /// Connects from another loopback address (e.g. 127.0.0.2).
    pub async fn connect_from(local: &str, url: &str) -> Ws {
        let connector = awc::Connector::new().local_address(local.parse().unwrap());
        let client = awc::Client::builder().connector(connector).finish();
        Self::connect_as(client, url, &[])
            .await
            .unwrap_or_else(|e| panic!("ws connect {url} from {local}: {e}"))
    }

    async fn connect_as(
        client: awc::Client,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, awc::error::WsClientError> {
        let mut req = client.ws(url).max_frame_size(64 << 20);
        for (k, v) in headers {
            req = req.set_header(*k, *v);
        }
        let (_, conn) = req.connect().await?;
        Ok(Ws { conn })
    }

    pub async fn send(&mut self, text: &str) {
        self.conn
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// Writes one client frame as given: `first` is the FIN/RSV/opcode
    /// byte, the payload is masked with a zero key (so sent as is). For
    /// frames the codec would refuse to build.
    pub async fn send_raw_frame(&mut self, first: u8, payload: &[u8]) {
        assert!(payload.len() < 126, "short frames only");
        let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        let io = self.conn.io_mut();
        io.write_all(&frame).await.unwrap();
        io.flush().await.unwrap();
    }

    /// Sends a close frame with `code`.
    pub async fn send_close(&mut self, code: u16) {
        let reason = ws::CloseReason {
            code: code.into(),
            description: None,
        };
        self.conn
            .send(ws::Message::Close(Some(reason)))
            .await
            .unwrap();
    }

    /// The next frame from the server (within 5 s), skipping pings.
    pub async fn next(&mut self) -> ws::Frame {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(5), self.conn.next())
                .await
                .expect("timed out waiting for a websocket frame");
            match f {
                Some(Ok(ws::Frame::Ping(p))) => {
                    self.conn.send(ws::Message::Pong(p)).await.unwrap();
                }
                Some(Ok(frame)) => return frame,
                other => panic!("websocket ended: {other:?}"),
            }
        }
    }

    /// The next frame without answering pings (a dead peer); `None` once the
    /// connection is gone.
    pub async fn next_unanswered(&mut self) -> Option<ws::Frame> {
        tokio::time::timeout(Duration::from_secs(5), self.conn.next())
            .await
            .expect("timed out waiting for a websocket frame")
            .and_then(Result::ok)
    }

    /// The next text frame.
    pub async fn recv(&mut self) -> String {
        match self.next().await {
            ws::Frame::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// Expects a close frame; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        match self.next().await {
            ws::Frame::Close(Some(r)) => (r.code.into(), r.description.unwrap_or_default()),
            ws::Frame::Close(None) => (1005, String::new()),
            other => panic!("expected close, got {other:?}"),
        }
    }

    /// The closing handshake: send Close, wait for the server's Close.
    pub async fn close(mut self) {
        let _ = self.conn.send(ws::Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(f)) = self.conn.next().await {
                if matches!(f, ws::Frame::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A raw HTTP/1.x exchange over TCP, for tests that must control the socket.
pub struct Raw {
    pub sock: TcpStream,
    pub buf: Vec<u8>,
}

/// A parsed response head from a raw connection.
#[derive(Debug)]
pub struct RawHead {
    pub version: u8,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl RawHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    pub async fn connect(addr: &str) -> Raw {
        Raw {
            sock: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Sends a request with the given HTTP version (e.g. "1.0").
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        version: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        let mut req = format!(
            "{method} {path} HTTP/{version}\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.sock.write_all(req.as_bytes()).await.unwrap();
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), self.sock.read(&mut chunk))
            .await
            .expect("timed out reading")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads and parses a response head (with httparse).
    pub async fn head(&mut self) -> RawHead {
        loop {
            let mut hdrs = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut hdrs);
            if let httparse::Status::Complete(len) = resp.parse(&self.buf).unwrap() {
                let head = RawHead {
                    version: resp.version.unwrap(),
                    status: resp.code.unwrap(),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                self.buf.drain(..len);
                return head;
            }
            assert!(
                self.fill().await > 0,
                "connection closed before a response head"
            );
        }
    }

    /// Reads exactly `n` body bytes (no chunk decoding).
    pub async fn read_exact(&mut self, n: usize) -> String {
        while self.buf.len() < n {
            assert!(
                self.fill().await > 0,
                "closed early, have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        String::from_utf8(self.buf.drain(..n).collect()).unwrap()
    }

    /// Reads up to and including `delim` (raw bytes, no chunk decoding).
    pub async fn read_until(&mut self, delim: &str) -> String {
        let d = delim.as_bytes();
        loop {
            if let Some(pos) = self.buf.windows(d.len()).position(|w| w == d) {
                return String::from_utf8(self.buf.drain(..pos + d.len()).collect()).unwrap();
            }
            assert!(
                self.fill().await > 0,
                "closed early, have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Whether the server closes the connection (within 5 s) with nothing more sent.
    pub async fn closed_by_server(&mut self) -> bool {
        self.fill().await == 0 && self.buf.is_empty()
    }
}

/// The value of the series `series` (name and labels, as written) in a
/// `/metrics` text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
