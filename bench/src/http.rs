//! HTTP scenarios, each session on two keep-alive connections as a browser
//! uses them: one receiving (polls or streams), one sending (xhr_send).

use crate::stats::{self, Tally};
use crate::ws::{frame, messages, payload};
use crate::{Args, Protocol};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receiving {
    Polling,
    XhrStreaming,
    EventSource,
}

struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(host: &str) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| format!("connect {host}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn {
            send,
            host: host.to_owned(),
        })
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: &str,
    ) -> Result<Response<Incoming>, String> {
        self.send.ready().await.map_err(|e| e.to_string())?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| e.to_string())?;
        self.send
            .send_request(req)
            .await
            .map_err(|e| format!("{path}: {e}"))
    }

    async fn text(
        &mut self,
        method: Method,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        let resp = self.request(method, path, body).await?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A streaming response read frame by frame.
struct FrameReader {
    body: Incoming,
    buf: BytesMut,
    delim: &'static [u8],
}

impl FrameReader {
    /// The next frame's text, without the transport's wrapping; `None` when
    /// the response ended (the response limit was reached).
    async fn next(&mut self) -> Result<Option<String>, String> {
        loop {
            if let Some(pos) = self
                .buf
                .windows(self.delim.len())
                .position(|w| w == self.delim)
            {
                let frame = self.buf.split_to(pos);
                self.buf.advance(self.delim.len());
                let text = String::from_utf8_lossy(&frame).into_owned();
                let text = text
                    .strip_prefix("data: ")
                    .map(str::to_owned)
                    .unwrap_or(text);
                return Ok(Some(text));
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(None),
            }
        }
    }
}

/// Opens a streaming receiver and reads past its prelude.
async fn open_stream(
    recv: &mut Conn,
    path: &str,
    receiving: Receiving,
) -> Result<FrameReader, String> {
    let (method, url, prelude): (Method, String, &'static [u8]) = match receiving {
        Receiving::XhrStreaming => (Method::POST, format!("{path}/xhr_streaming"), b"\n"),
        _ => (Method::GET, format!("{path}/eventsource"), b"\r\n"),
    };
    let resp = recv.request(method, &url, "").await?;
    let mut r = FrameReader {
        body: resp.into_body(),
        buf: BytesMut::new(),
        delim: prelude,
    };
    r.next().await?.ok_or("stream ended in its prelude")?;
    if receiving == Receiving::EventSource {
        r.delim = b"\r\n\r\n";
    }
    Ok(r)
}

/// The messages of one frame; HTTP receivers also see `o`, and empty lines.
fn frame_messages(text: &str) -> Result<Vec<String>, String> {
    match text {
        "" | "o" => Ok(Vec::new()),
        _ => messages(Protocol::Sockjs, text),
    }
}

pub async fn run(args: &Args, receiving: Receiving) -> (Tally, f64) {
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    let base = args.url.trim_start_matches("http://").to_owned();
    let (host, prefix) = match base.find('/') {
        Some(i) => (base[..i].to_owned(), base[i..].to_owned()),
        None => (base.clone(), String::new()),
    };
    let via = args.via.as_deref().map(|v| {
        let v = v.trim_start_matches("http://");
        v.split('/').next().unwrap_or(v).to_owned()
    });
    let size = args.size;
    let total = stats::per_session(args.sessions, |s, mut tally| {
        let (host, path) = (
            host.clone(),
            format!("{prefix}/000/h{}x{s}", std::process::id()),
        );
        let via = via.clone();
        async move {
            let r = session(
                &host,
                via.as_deref(),
                &path,
                receiving,
                s,
                size,
                start,
                end,
                &mut tally,
            )
            .await;
            (tally, r)
        }
    })
    .await;
    (total, args.duration)
}

#[allow(clippy::too_many_arguments)]
async fn session(
    host: &str,
    via: Option<&str>,
    path: &str,
    receiving: Receiving,
    s: usize,
    size: usize,
    start: Instant,
    end: Instant,
    tally: &mut Tally,
) -> Result<(), String> {
    let mut recv = Conn::open(host).await?;
    let mut send = Conn::open(host).await?;
    let mut stream: Option<FrameReader> = None;
    // Open the session.
    match receiving {
        Receiving::Polling => {
            let (_, body) = recv.text(Method::POST, &format!("{path}/xhr"), "").await?;
            if body != "o\n" {
                return Err(format!("expected o, got {body:?}"));
            }
        }
        _ if via.is_some() => return Err("--via is for xhr-polling".into()),
        _ => {
            let mut r = open_stream(&mut recv, path, receiving).await?;
            match r.next().await? {
                Some(f) if f == "o" => {}
                other => return Err(format!("expected o, got {other:?}")),
            }
            stream = Some(r);
        }
    }
    if let Some(via) = via {
        recv = Conn::open(via).await?;
        send = Conn::open(via).await?;
    }
    let mut seq = 0u64;
    while Instant::now() < end {
        let p = payload(s, seq, size);
        let sent_at = Instant::now();
        let send_body = frame(Protocol::Sockjs, &p);
        let mut got = Vec::new();
        match receiving {
            Receiving::Polling => {
                // A poll is pending while the message is sent, as in browsers.
                let poll_url = format!("{path}/xhr");
                let send_url = format!("{path}/xhr_send");
                let (polled, sent) = tokio::join!(
                    recv.text(Method::POST, &poll_url, ""),
                    send.text(Method::POST, &send_url, &send_body)
                );
                if sent?.0 != 204 {
                    return Err("xhr_send failed".into());
                }
                got.extend(frame_messages(polled?.1.trim_end())?);
                while got.is_empty() {
                    got.extend(frame_messages(
                        recv.text(Method::POST, &poll_url, "").await?.1.trim_end(),
                    )?);
                }
            }
            _ => {
                let (status, _) = send
                    .text(Method::POST, &format!("{path}/xhr_send"), &send_body)
                    .await?;
                if status != 204 {
                    return Err(format!("xhr_send answered {status}"));
                }
                while got.is_empty() {
                    let r = stream.as_mut().expect("stream open");
                    match r.next().await? {
                        Some(f) => got.extend(frame_messages(&f)?),
                        // Response limit reached: reconnect, as clients do.
                        None => stream = Some(open_stream(&mut recv, path, receiving).await?),
                    }
                }
            }
        }
        for m in got {
            if m != p {
                return Err(format!("session {s}: expected message {seq}, got {m:.40}"));
            }
        }
        let now = Instant::now();
        if now >= start && now < end {
            tally.record(now - sent_at);
        }
        seq += 1;
    }
    Ok(())
}
