//! `kind = "proxy"`: every SockJS session becomes one WebSocket connection
//! to an upstream (a backend in any language), so the backend sees an
//! ordinary WebSocket per client whatever transport the client uses.
//!
//! - [`pool`]: which upstream a session connects to (round-robin with a
//!   passive health check).
//! - [`handshake`]: the upstream handshake request (forwarded headers).
//! - [`close_codes`]: the close codes between the two ends.
//! - this file: the per-session link, polled inside the session's task
//!   ([`Handler::poll`]): the client gets `o` only once the upstream has
//!   accepted; the upstream is read only while the client's backlog is
//!   below `high_water_bytes`, so a slow client slows its backend through
//!   TCP instead of filling the gateway's memory.

pub mod close_codes;
pub mod handshake;
pub mod pool;

use crate::config::ServiceConfig;
use crate::metrics::UpstreamConnect;
use crate::protocol::CloseCode;
use crate::service::api::{CloseReason, Handler, Open, Service, SessionCtx, SessionInfo};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use pool::Pool;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The upstream socket. Plain `ws://` gets its own variant: the TLS
/// stream type is over a kilobyte, and every idle session would carry it.
// The plain variant is the common one, kept inline (the link is boxed).
#[allow(clippy::large_enum_variant)]
enum Upstream {
    Plain(WebSocketStream<tokio::net::TcpStream>),
    Tls(Box<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>>),
}

impl Stream for Upstream {
    type Item = Result<Message, WsError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Upstream::Plain(ws) => Pin::new(ws).poll_next(cx),
            Upstream::Tls(ws) => Pin::new(ws.as_mut()).poll_next(cx),
        }
    }
}

impl Sink<Message> for Upstream {
    type Error = WsError;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Upstream::Plain(ws) => Pin::new(ws).poll_ready(cx),
            Upstream::Tls(ws) => Pin::new(ws.as_mut()).poll_ready(cx),
        }
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        match self.get_mut() {
            Upstream::Plain(ws) => Pin::new(ws).start_send(item),
            Upstream::Tls(ws) => Pin::new(ws.as_mut()).start_send(item),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Upstream::Plain(ws) => Pin::new(ws).poll_flush(cx),
            Upstream::Tls(ws) => Pin::new(ws.as_mut()).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Upstream::Plain(ws) => Pin::new(ws).poll_close(cx),
            Upstream::Tls(ws) => Pin::new(ws.as_mut()).poll_close(cx),
        }
    }
}

/// Opens the upstream WebSocket: plain TCP for `ws://`, TLS (rustls with
/// the webpki roots) for `wss://`.
async fn connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    config: WebSocketConfig,
) -> Result<Upstream, WsError> {
    let uri = request.uri();
    if uri.scheme_str() == Some("wss") {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
        return Ok(Upstream::Tls(Box::new(ws)));
    }
    let host = uri.host().unwrap_or_default();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await?;
    Ok(Upstream::Plain(ws))
}

/// A proxy service: its upstreams and limits, shared by its sessions.
pub struct ProxyService {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    connect_timeout: Duration,
    ping_interval: Duration,
    high_water: usize,
    /// Client bytes held for an upstream that does not take them.
    max_outbound: usize,
    max_message: usize,
}

impl ProxyService {
    pub fn new(config: &ServiceConfig) -> ProxyService {
        ProxyService {
            shared: Arc::new(Shared {
                pool: Pool::new(config.upstream.clone(), config.upstream_retry_delay()),
                connect_timeout: config.upstream_connect_timeout(),
                ping_interval: config.upstream_ping_interval(),
                high_water: config.high_water(),
                max_outbound: config.max_queued_bytes,
                max_message: config.max_message_bytes,
            }),
        }
    }
}

impl Service for ProxyService {
    fn new_session(&self, _info: &SessionInfo) -> Box<dyn Handler> {
        Box::new(ProxySession {
            shared: self.shared.clone(),
            state: State::Idle,
        })
    }
}

struct ProxySession {
    shared: Arc<Shared>,
    state: State,
}

type Connecting = Pin<Box<dyn Future<Output = Result<Upstream, CloseCode>>>>;

enum State {
    /// Waiting for the client's first request.
    Idle,
    Connecting(Connecting),
    Open(Box<Link>),
    Done,
}

/// An open upstream connection.
struct Link {
    ws: Upstream,
    /// Client messages not yet handed to the upstream socket.
    outbound: VecDeque<String>,
    outbound_bytes: usize,
    needs_flush: bool,
    ping: tokio::time::Interval,
    ping_due: bool,
    /// Ping intervals since the upstream last sent anything.
    silent_pings: u8,
    /// The upstream socket, counted against the open-file budget.
    _fd: Option<crate::limits::fds::Held>,
}

/// How a link ended, from the upstream's side.
enum LinkEnd {
    /// The upstream sent a close frame (code, reason).
    Closed(Option<(u16, String)>),
    /// Reset, or silent past two pings.
    Lost,
    /// A binary message that is not UTF-8.
    Binary,
    TooBig,
}

/// Work done per poll before yielding, so one busy link cannot hold its
/// worker thread.
const BUDGET: usize = 64;

impl Handler for ProxySession {
    fn on_connect(&mut self, ctx: &mut SessionCtx<'_>) -> Open {
        let shared = self.shared.clone();
        let (index, url) = shared.pool.pick(Instant::now());
        let url = url.to_owned();
        let request = handshake::request(&url, ctx.info());
        let connects = ctx.service().metrics().upstream_connects.clone();
        let counted = move |r: UpstreamConnect| connects[r as usize].inc();
        self.state = State::Connecting(Box::pin(async move {
            let request = request.map_err(|_| close_codes::unreachable())?;
            // tungstenite zero-fills its whole read buffer: a small one
            // keeps idle sessions small, and is still one read per small
            // message (a large one reserves its length once its header is
            // in). Writes go out at each flush.
            let config = WebSocketConfig::default()
                .read_buffer_size(512)
                .write_buffer_size(0)
                .max_message_size(Some(shared.max_message))
                .max_frame_size(Some(shared.max_message));
            let why = match tokio::time::timeout(shared.connect_timeout, connect(request, config))
                .await
            {
                Ok(Ok(ws)) => {
                    shared.pool.succeeded(index);
                    counted(UpstreamConnect::Accepted);
                    return Ok(ws);
                }
                // An answer, not a failure: the upstream is up and said no.
                Ok(Err(WsError::Http(resp))) => {
                    counted(UpstreamConnect::Refused);
                    return Err(close_codes::refused(resp.status().as_u16()));
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no handshake within {:?}", shared.connect_timeout),
            };
            log::warn!("upstream {url} unreachable: {why}");
            counted(UpstreamConnect::Unreachable);
            shared.pool.failed(index, Instant::now());
            Err(close_codes::unreachable())
        }));
        Open::Later
    }

    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        let State::Open(link) = &mut self.state else {
            return;
        };
        link.outbound_bytes += message.len();
        link.outbound.push_back(message);
        if link.outbound_bytes > self.shared.max_outbound {
            let c = close_codes::upstream_not_reading();
            if let State::Open(link) = std::mem::replace(&mut self.state, State::Done) {
                close_upstream(link.ws, 1008, "Not reading: queue limit exceeded".into());
            }
            ctx.close(c.code, c.reason);
        }
    }

    fn on_close(&mut self, _info: &SessionInfo, reason: &CloseReason) {
        if let State::Open(link) = std::mem::replace(&mut self.state, State::Done) {
            let (code, why) = close_codes::to_upstream(reason);
            close_upstream(link.ws, code, why);
        }
    }

    fn poll(&mut self, ctx: &mut SessionCtx<'_>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                State::Idle => return Poll::Pending,
                State::Connecting(connecting) => match connecting.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(ws)) => {
                        self.state =
                            State::Open(Box::new(Link::new(ws, self.shared.ping_interval)));
                        ctx.open();
                        // On to the link, so that its socket wakes this task.
                    }
                    Poll::Ready(Err(c)) => {
                        self.state = State::Done;
                        ctx.close(c.code, c.reason);
                        return Poll::Ready(());
                    }
                },
                State::Open(link) => {
                    let Err(end) = link.poll(ctx, cx, &self.shared) else {
                        return Poll::Pending;
                    };
                    let State::Open(link) = std::mem::replace(&mut self.state, State::Done) else {
                        unreachable!("the link was open");
                    };
                    let c = match end {
                        LinkEnd::Closed(frame) => {
                            // The reply to the upstream's close still has to go out.
                            drain_upstream(link.ws);
                            let (code, reason) =
                                frame.map_or((None, String::new()), |(c, r)| (Some(c), r));
                            close_codes::from_upstream(code, &reason)
                        }
                        LinkEnd::Lost => close_codes::upstream_lost(),
                        LinkEnd::Binary => {
                            close_upstream(link.ws, 1003, "SockJS carries text only".into());
                            close_codes::upstream_binary()
                        }
                        LinkEnd::TooBig => {
                            close_upstream(link.ws, 1009, "Message too big".into());
                            close_codes::upstream_too_big()
                        }
                    };
                    ctx.close(c.code, c.reason);
                    return Poll::Ready(());
                }
                State::Done => return Poll::Ready(()),
            }
        }
    }
}

impl Link {
    fn new(ws: Upstream, ping_every: Duration) -> Link {
        let start = tokio::time::Instant::now() + ping_every;
        let mut ping = tokio::time::interval_at(start, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Link {
            ws,
            outbound: VecDeque::new(),
            outbound_bytes: 0,
            needs_flush: false,
            ping,
            ping_due: false,
            silent_pings: 0,
            _fd: crate::limits::fds::hold_other(),
        }
    }

    /// Moves what can move both ways; `Err` when the upstream side ended.
    fn poll(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        cx: &mut Context<'_>,
        shared: &Shared,
    ) -> Result<(), LinkEnd> {
        let mut backlog = ctx.backlog();
        for _ in 0..BUDGET {
            let mut moved = self.write(cx)?;
            // An upstream that reads slowly holds back a WebSocket client;
            // HTTP sends are bounded by max_queued_bytes instead.
            ctx.hold_client(self.outbound_bytes >= shared.high_water);
            if self.ping.poll_tick(cx).is_ready() {
                if self.silent_pings >= 2 {
                    return Err(LinkEnd::Lost);
                }
                self.silent_pings += 1;
                self.ping_due = true;
                moved = true;
            }
            if backlog >= shared.high_water {
                // The client is behind: leave the upstream's data in its
                // socket (TCP then slows the backend) until it catches up.
                ctx.wake_when_backlog_at_most(shared.high_water / 2);
            } else if let Poll::Ready(item) = Pin::new(&mut self.ws).poll_next(cx) {
                moved = true;
                self.silent_pings = 0;
                match item {
                    Some(Ok(Message::Text(text))) => {
                        backlog += text.len();
                        ctx.send(text.as_str());
                    }
                    Some(Ok(Message::Binary(data))) => match std::str::from_utf8(&data) {
                        Ok(text) => {
                            backlog += text.len();
                            ctx.send(text);
                        }
                        Err(_) => return Err(LinkEnd::Binary),
                    },
                    // tungstenite queues the pong; the next write flushes it.
                    Some(Ok(Message::Ping(_))) => self.needs_flush = true,
                    Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        return Err(LinkEnd::Closed(
                            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                        ))
                    }
                    Some(Err(WsError::Capacity(_))) => return Err(LinkEnd::TooBig),
                    Some(Err(_)) | None => return Err(LinkEnd::Lost),
                }
            }
            if !moved {
                return Ok(());
            }
        }
        cx.waker().wake_by_ref();
        Ok(())
    }

    /// Hands the upstream socket what is due: a ping, then client messages
    /// in order; then flushes. `Ok(true)` if anything moved.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkEnd> {
        let mut moved = false;
        let mut ws = Pin::new(&mut self.ws);
        while self.ping_due || !self.outbound.is_empty() {
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Err(LinkEnd::Lost),
                Poll::Pending => return Ok(moved),
            }
            let msg = if std::mem::take(&mut self.ping_due) {
                Message::Ping(Default::default())
            } else {
                let m = self.outbound.pop_front().expect("checked non-empty");
                self.outbound_bytes -= m.len();
                Message::Text(m.into())
            };
            ws.as_mut().start_send(msg).map_err(|_| LinkEnd::Lost)?;
            self.needs_flush = true;
            moved = true;
        }
        if self.needs_flush {
            match ws.poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(_)) => return Err(LinkEnd::Lost),
                Poll::Pending => {}
            }
        }
        Ok(moved)
    }
}

/// How long a closing upstream gets to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Sends the upstream a close frame and waits (briefly) for its answer,
/// in a task of its own: the session is gone by then.
fn close_upstream(mut ws: Upstream, code: u16, reason: String) {
    let frame = CloseFrame {
        code: code.into(),
        reason: truncate(reason, 123).into(),
    };
    actix_web::rt::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            if ws.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    });
}

/// Lets the upstream's close handshake finish (our reply is queued).
fn drain_upstream(mut ws: Upstream) {
    actix_web::rt::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    });
}

/// A close reason fits in 123 bytes; cut at a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
