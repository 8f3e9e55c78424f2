//! WebSocket transports: SockJS-framed (`/{server}/{session}/websocket`) and
//! raw (`PREFIX/websocket`). Each socket gets its own session, which ends
//! with the socket (the protocol lets two sockets share one session id).

use crate::protocol::payload::decode_ws_frame;
use crate::protocol::CloseCode;
use crate::service::api::CloseReason;
use crate::service::hub::ServiceHub;
use crate::session::actor::SessionActor;
use crate::session::receiver::{self, Outgoing, Receiver, ReceiverKind, ReceiverRx};
use crate::transport::client_addr::Trust;
use crate::transport::headers::{self, Origin, TEXT_PLAIN};
use crate::transport::receive::start_session_with;
use actix::{ActorFuture, AsyncContext, Context};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Message, ProtocolError, Session};
use futures_util::{Sink, Stream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    SockJs,
    Raw,
}

/// Checks the handshake the way SockJS servers do, so proxies that rewrite
/// `Connection` or `Upgrade` get a clear 400.
fn check_upgrade(req: &HttpRequest) -> Result<(), HttpResponse> {
    let has = |name: header::HeaderName, token: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has(header::UPGRADE, "websocket") {
        return Err(HttpResponse::BadRequest()
            .content_type(TEXT_PLAIN)
            .body("Can \"Upgrade\" only to \"WebSocket\"."));
    }
    if !has(header::CONNECTION, "upgrade") {
        return Err(HttpResponse::BadRequest()
            .content_type(TEXT_PLAIN)
            .body("\"Connection\" must be \"Upgrade\"."));
    }
    Ok(())
}

pub async fn websocket(
    req: &HttpRequest,
    hub: &Arc<ServiceHub>,
    body: web::Payload,
    framing: Framing,
) -> HttpResponse {
    if let Err(resp) = check_upgrade(req) {
        return resp;
    }
    // Cross-site WebSocket hijacking: browsers send Origin on upgrades and
    // nothing else stops another site's page from opening a socket.
    if let Err(resp) = Origin::check(req, &hub.config) {
        return resp;
    }
    if hub.registry.is_full() {
        return headers::service_unavailable();
    }
    let admitted = hub.admit(|| Trust::of(hub).limit_addr(req));
    let (resp, ws, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    let slot = match admitted {
        Ok(slot) => slot,
        Err(_) => {
            // Refused by a limit of its address: told in the socket, as a
            // SockJS client reads a close (`c[4429,...]`) there.
            actix_web::rt::spawn(refuse(ws, framing, CloseCode::too_many_sessions()));
            return resp;
        }
    };
    let max = hub.config.max_message_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let kind = match framing {
        Framing::SockJs => ReceiverKind::WebSocket,
        Framing::Raw => ReceiverKind::RawWebSocket,
    };
    let (receiver, rx) = receiver::channel(kind);
    let socket = Socket {
        attach: Some(Box::new(receiver)),
        ws,
        stream,
        rx,
        framing,
        silent_heartbeats: 0,
        out: None,
        ping_due: false,
        pong_due: None,
        ended: false,
    };
    // The socket runs inside the session's own task: a client message is a
    // call into the session, not a mailbox hop to another task.
    let mut socket = Some(socket);
    let started = hub.registry.create_anonymous(|key| {
        start_session_with(hub, req, None, key, slot, |ctx| {
            if let Some(socket) = socket.take() {
                ctx.spawn(socket);
            }
        })
    });
    if let (Err(_), Some(mut socket)) = (started, socket) {
        // Lost a race for the last session slot after the handshake.
        socket.ended = true;
        let why = (actix_ws::CloseCode::Again, "Too many sessions").into();
        actix_web::rt::spawn(socket.ws.clone().close(Some(why)));
    }
    resp
}

/// Closes a socket that gets no session: the close frame first when
/// SockJS-framed, then the WebSocket close with the same code.
async fn refuse(mut ws: Session, framing: Framing, close: CloseCode) {
    if framing == Framing::SockJs && ws.text(close.frame()).await.is_err() {
        return;
    }
    let why = actix_ws::CloseReason {
        code: actix_ws::CloseCode::Other(close.code),
        description: Some(close.reason),
    };
    let _ = ws.close(Some(why)).await;
}

/// One WebSocket, driven from inside its session's task.
struct Socket {
    /// Handed to the session on the first poll (boxed: the socket lives
    /// as long as its session, this only until then).
    attach: Option<Box<Receiver>>,
    ws: Session,
    stream: AggregatedMessageStream,
    rx: ReceiverRx,
    framing: Framing,
    /// Heartbeats since the peer last sent anything (a message, a pong, a
    /// ping): counted rather than timed, so no clock is read per message.
    silent_heartbeats: u8,
    /// A message taken for the socket that the socket could not take yet.
    /// (Boxed, as is the pong below: rare, and the socket lives as long as
    /// its session.)
    out: Option<Box<Message>>,
    ping_due: bool,
    pong_due: Option<Box<bytes::Bytes>>,
    /// The socket's end was handled (see `Drop`).
    ended: bool,
}

/// The client vanished (or stopped answering).
fn gone() -> End {
    End::Client(CloseReason::Interrupted, None)
}

/// How the socket's loop ended.
enum End {
    /// The session let go of the receiver (it closed): close the socket.
    SessionDone(Option<CloseCode>),
    /// The client closed, vanished, or broke the protocol.
    Client(CloseReason, Option<CloseCode>),
}

impl End {
    /// The client broke the protocol: the session and the socket close with `c`.
    fn protocol_error(c: CloseCode) -> End {
        End::Client(CloseReason::ProtocolError(c.clone()), Some(c))
    }
}

/// What to do about one message from the client.
enum Step {
    Continue,
    Pong(bytes::Bytes),
    End(End),
}

/// Most polls that find work do not loop more than this before yielding,
/// so one busy socket cannot hold its worker thread.
const POLL_BUDGET: usize = 64;

/// The socket's life, as a hand-written poll loop in the session's context
/// rather than an `async` block in a task of its own: it runs once per open
/// socket, and a task plus an `async` state machine would carry the
/// in-progress send and `select!` branches in every one of them. There is
/// no timer here either: the session's heartbeat arrives as an item and
/// drives `h`, pings and the dead-peer check.
impl ActorFuture<SessionActor> for Socket {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        session: &mut SessionActor,
        ctx: &mut Context<SessionActor>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        // Frames the session pushes while the socket calls into it are taken
        // by the socket's next step; the step that finds nothing registers
        // for wake-ups again before the socket waits.
        this.rx.quiet();
        if let Some(receiver) = this.attach.take() {
            session.attach(*receiver, ctx);
        }
        for _ in 0..POLL_BUDGET {
            match this.step(session, ctx, cx) {
                Ok(true) => continue,
                Ok(false) => return Poll::Pending,
                Err(end) => {
                    this.end(end, session, ctx);
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A session that closes stops at once, and a stopping context polls
/// nothing more, so its last frames (the `c` frame) may still be in the
/// channel: they are sent from a task of their own, then the socket closes.
impl Drop for Socket {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut pending: Vec<Message> = self.out.take().map(|m| *m).into_iter().collect();
        let mut code = None;
        while let Some(item) = self.rx.try_recv() {
            match item {
                Outgoing::Data(text) => pending.push(Message::Text(text)),
                Outgoing::Close(c) => code = Some(c),
                Outgoing::Heartbeat => {}
            }
        }
        let mut ws = self.ws.clone();
        actix_web::rt::spawn(async move {
            for m in pending {
                if futures_util::SinkExt::send(&mut ws, m).await.is_err() {
                    return;
                }
            }
            let _ = ws.close(Some(close_reason(code))).await;
        });
    }
}

/// The WebSocket close for a session's close code (1000 when it has none:
/// the SockJS `c` frame already carried it).
fn close_reason(code: Option<CloseCode>) -> actix_ws::CloseReason {
    match code {
        Some(c) => actix_ws::CloseReason {
            code: c.code.into(),
            description: Some(c.reason),
        },
        None => actix_ws::CloseCode::Normal.into(),
    }
}

/// The close for a frame actix rejected as `InvalidData` (RFC 6455 7.4.1):
/// 1007 for a text message that is not UTF-8, 1002 for the rest (reserved
/// bits set without an extension). A single text frame carries the
/// `Utf8Error` itself; an aggregated one only its text.
fn invalid_frame_close(e: &std::io::Error) -> CloseCode {
    let not_utf8 = e.get_ref().is_some_and(|inner| {
        inner.is::<std::str::Utf8Error>() || inner.to_string().contains("utf-8")
    });
    if not_utf8 {
        CloseCode::new(1007, "Invalid UTF-8 in a text frame")
    } else {
        log::debug!("websocket protocol error: {e}");
        CloseCode::new(1002, "Protocol error")
    }
}

impl Socket {
    /// One round of work: what the client sent, then all the socket takes of
    /// what the session has for it. `Ok(true)` if anything moved.
    fn step(
        &mut self,
        session: &mut SessionActor,
        ctx: &mut Context<SessionActor>,
        cx: &mut std::task::Context<'_>,
    ) -> Result<bool, End> {
        let received = self.receive(session, ctx, cx)?;
        let sent = self.send(cx)?;
        Ok(received || sent)
    }

    /// Takes one message from the client, if there is one.
    fn receive(
        &mut self,
        session: &mut SessionActor,
        ctx: &mut Context<SessionActor>,
        cx: &mut std::task::Context<'_>,
    ) -> Result<bool, End> {
        // The backend's consumer is behind: TCP holds the client back.
        if session.client_held() {
            return Ok(false);
        }
        let Poll::Ready(msg) = Pin::new(&mut self.stream).poll_next(cx) else {
            return Ok(false);
        };
        self.silent_heartbeats = 0;
        let step = match msg {
            Some(Ok(m)) => self.on_message(m, session, ctx),
            Some(Err(ProtocolError::Overflow)) => {
                let c = CloseCode::message_too_big();
                Step::End(End::protocol_error(c))
            }
            // actix reports a text frame that is not UTF-8, and reserved
            // bits set, as `InvalidData`: broken frames, not a lost peer.
            Some(Err(ProtocolError::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => {
                Step::End(End::protocol_error(invalid_frame_close(&e)))
            }
            // The peer's connection ended, possibly right after its own
            // close frame: it is gone, not misbehaving.
            Some(Err(ProtocolError::Io(_))) | None => Step::End(gone()),
            Some(Err(e)) => {
                log::debug!("websocket protocol error: {e}");
                let c = CloseCode::new(1002, "Protocol error");
                Step::End(End::protocol_error(c))
            }
        };
        match step {
            Step::Continue => {}
            Step::Pong(p) => self.pong_due = Some(Box::new(p)),
            Step::End(end) => return Err(end),
        }
        Ok(true)
    }

    /// Hands the socket what is due until it is full or nothing is left.
    fn send(&mut self, cx: &mut std::task::Context<'_>) -> Result<bool, End> {
        let mut moved = false;
        loop {
            let msg = match self.out.take() {
                Some(msg) => *msg,
                None => match self.next_outgoing(cx)? {
                    Some(msg) => msg,
                    None => return Ok(moved),
                },
            };
            let mut ws = Pin::new(&mut self.ws);
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    ws.as_mut().start_send(msg).map_err(|_| gone())?;
                    // The channel under the socket has nothing to flush.
                    if let Poll::Ready(Err(_)) = ws.poll_flush(cx) {
                        return Err(gone());
                    }
                    moved = true;
                }
                Poll::Ready(Err(_)) => return Err(gone()),
                Poll::Pending => {
                    self.out = Some(Box::new(msg));
                    return Ok(moved);
                }
            }
        }
    }

    /// The next message for the socket: pongs and pings first, then what
    /// the session sent. `None` if nothing is due.
    fn next_outgoing(&mut self, cx: &mut std::task::Context<'_>) -> Result<Option<Message>, End> {
        loop {
            if let Some(p) = self.pong_due.take() {
                return Ok(Some(Message::Pong(*p)));
            }
            if std::mem::take(&mut self.ping_due) {
                return Ok(Some(Message::Ping(bytes::Bytes::new())));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Outgoing::Data(text))) => return Ok(Some(Message::Text(text))),
                Poll::Ready(Some(Outgoing::Heartbeat)) => {
                    // A peer silent for two heartbeats is dead even if TCP has
                    // not noticed; else `h` (SockJS) and a ping, which
                    // browsers answer on their own.
                    self.silent_heartbeats = self.silent_heartbeats.saturating_add(1);
                    if self.silent_heartbeats > 2 {
                        return Err(gone());
                    }
                    self.ping_due = true;
                    if self.framing == Framing::SockJs {
                        return Ok(Some(Message::Text("h".into())));
                    }
                }
                Poll::Ready(Some(Outgoing::Close(c))) => return Err(End::SessionDone(Some(c))),
                Poll::Ready(None) => return Err(End::SessionDone(None)),
                Poll::Pending => return Ok(None),
            }
        }
    }

    /// Closes the socket (and tells the session, if the client ended it).
    fn end(&mut self, end: End, session: &mut SessionActor, ctx: &mut Context<SessionActor>) {
        self.ended = true;
        let reason = match end {
            End::SessionDone(code) => Some(close_reason(code)),
            End::Client(why, code) => {
                session.receiver_lost(self.rx.id, why, ctx);
                code.map(|c| close_reason(Some(c)))
            }
        };
        actix_web::rt::spawn(self.ws.clone().close(reason));
    }

    fn on_message(
        &mut self,
        msg: AggregatedMessage,
        session: &mut SessionActor,
        ctx: &mut Context<SessionActor>,
    ) -> Step {
        match msg {
            AggregatedMessage::Text(text) => match self.framing {
                Framing::Raw => {
                    session.client_messages([text.to_string()], ctx);
                }
                Framing::SockJs => match decode_ws_frame(&text) {
                    Ok(msgs) if msgs.is_empty() => {}
                    Ok(msgs) => {
                        session.client_messages(msgs, ctx);
                    }
                    Err(e) => {
                        // Broken framing: drop the socket, as SockJS servers do.
                        let c = CloseCode::new(1007, e.message());
                        return Step::End(End::protocol_error(c));
                    }
                },
            },
            AggregatedMessage::Binary(_) => {
                let c = CloseCode::new(1003, "Binary messages are not supported");
                return Step::End(End::protocol_error(c));
            }
            AggregatedMessage::Ping(p) => return Step::Pong(p),
            AggregatedMessage::Pong(_) => {}
            // RFC 6455 5.5.1: the answering close echoes the peer's code.
            AggregatedMessage::Close(reason) => {
                let echo = reason.map(|r| CloseCode::new(r.code.into(), ""));
                return Step::End(End::Client(CloseReason::ClientClosed, echo));
            }
        }
        Step::Continue
    }
}
