//! WebSocket transports: SockJS-framed (`/{server}/{session}/websocket`) and
//! raw (`PREFIX/websocket`). Each socket gets its own session, which ends
//! with the socket (the protocol lets two sockets share one session id).

use crate::protocol::payload::decode_ws_frame;
use crate::protocol::CloseCode;
use crate::service::api::CloseReason;
use crate::service::hub::ServiceHub;
use crate::session::actor::{Attach, Detach, Incoming, SessionActor};
use crate::session::receiver::{self, Outgoing, ReceiverKind, ReceiverRx};
use crate::transport::headers::{self, Origin, TEXT_PLAIN};
use crate::transport::receive::start_session;
use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    if hub.registry.len() >= hub.config.max_sessions {
        return headers::service_unavailable();
    }
    let (resp, ws, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    let max = hub.config.max_message_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let Ok(addr) = hub
        .registry
        .create_anonymous(|key| start_session(hub, req, None, key))
    else {
        // Lost a race for the last session slot after the handshake.
        actix_web::rt::spawn(ws.close(Some(
            (actix_ws::CloseCode::Again, "Too many sessions").into(),
        )));
        return resp;
    };
    let kind = match framing {
        Framing::SockJs => ReceiverKind::WebSocket,
        Framing::Raw => ReceiverKind::RawWebSocket,
    };
    let (receiver, rx) = receiver::channel(kind);
    addr.do_send(Attach(receiver));
    let conn = Connection {
        ws,
        stream,
        rx,
        addr,
        framing,
        heartbeat: hub.config.heartbeat(),
        last_seen: Instant::now(),
    };
    actix_web::rt::spawn(conn.run());
    resp
}

struct Connection {
    ws: Session,
    stream: AggregatedMessageStream,
    rx: ReceiverRx,
    addr: Addr<SessionActor>,
    framing: Framing,
    heartbeat: Duration,
    /// When the peer last sent anything (a message, a pong, a ping).
    last_seen: Instant,
}

/// How the socket's loop ended.
enum End {
    /// The session let go of the receiver (it closed): close the socket.
    SessionDone(Option<CloseCode>),
    /// The client closed, vanished, or broke the protocol.
    Client(CloseReason, Option<CloseCode>),
}

/// What to do about one message from the client.
enum Step {
    Continue,
    Pong(bytes::Bytes),
    End(End),
}

impl Connection {
    /// The socket's life. It has no timer of its own: the session's
    /// heartbeat arrives as an item and drives `h`, pings and the dead-peer
    /// check. The task's future is held per open socket, so the rare awaits
    /// (pings, pongs, closing) are boxed instead of sized into it.
    async fn run(mut self) {
        let end = loop {
            tokio::select! {
                out = self.rx.recv() => match out {
                    Some(Outgoing::Data(text)) => {
                        if self.ws.text(text).await.is_err() {
                            break End::Client(CloseReason::Interrupted, None);
                        }
                    }
                    Some(Outgoing::Heartbeat) => {
                        if let Some(end) = Box::pin(self.heartbeat()).await {
                            break end;
                        }
                    }
                    Some(Outgoing::Close(c)) => break End::SessionDone(Some(c)),
                    None => break End::SessionDone(None),
                },
                msg = self.stream.recv() => {
                    self.last_seen = Instant::now();
                    let step = match msg {
                        Some(Ok(m)) => self.on_message(m),
                        Some(Err(ProtocolError::Overflow)) => {
                            let c = CloseCode::message_too_big();
                            Step::End(End::Client(CloseReason::ProtocolError(c.clone()), Some(c)))
                        }
                        // The peer's connection ended, possibly right after its
                        // own close frame: it is gone, not misbehaving.
                        Some(Err(ProtocolError::Io(_))) | None => Step::End(End::Client(CloseReason::Interrupted, None)),
                        Some(Err(e)) => {
                            log::debug!("websocket protocol error: {e}");
                            let c = CloseCode::new(1002, "Protocol error");
                            Step::End(End::Client(CloseReason::ProtocolError(c.clone()), Some(c)))
                        }
                    };
                    match step {
                        Step::Continue => {}
                        Step::Pong(p) => if Box::pin(self.ws.pong(&p)).await.is_err() {
                            break End::Client(CloseReason::Interrupted, None);
                        },
                        Step::End(end) => break end,
                    }
                },
            }
        };
        Box::pin(self.finish(end)).await;
    }

    /// Heartbeat time: a peer silent for two heartbeats is dead even if TCP
    /// has not noticed; otherwise send `h` (SockJS framing) and a ping,
    /// which browsers answer on their own.
    async fn heartbeat(&mut self) -> Option<End> {
        let gone = Some(End::Client(CloseReason::Interrupted, None));
        if self.last_seen.elapsed() > self.heartbeat * 2 {
            return gone;
        }
        if self.framing == Framing::SockJs && self.ws.text("h").await.is_err() {
            return gone;
        }
        if self.ws.ping(b"").await.is_err() {
            return gone;
        }
        None
    }

    async fn finish(self, end: End) {
        let reason = |c: CloseCode| actix_ws::CloseReason {
            code: c.code.into(),
            description: Some(c.reason),
        };
        match end {
            End::SessionDone(code) => {
                let _ = self
                    .ws
                    .close(Some(
                        code.map_or(actix_ws::CloseCode::Normal.into(), reason),
                    ))
                    .await;
            }
            End::Client(why, code) => {
                self.addr.do_send(Detach {
                    receiver_id: self.rx.id,
                    reason: why,
                });
                let _ = self.ws.close(code.map(reason)).await;
            }
        }
    }

    fn on_message(&mut self, msg: AggregatedMessage) -> Step {
        match msg {
            AggregatedMessage::Text(text) => match self.framing {
                Framing::Raw => self.addr.do_send(Incoming(vec![text.to_string()])),
                Framing::SockJs => match decode_ws_frame(&text) {
                    Ok(msgs) if msgs.is_empty() => {}
                    Ok(msgs) => self.addr.do_send(Incoming(msgs)),
                    Err(e) => {
                        // Broken framing: drop the socket, as SockJS servers do.
                        let c = CloseCode::new(1007, e.message());
                        return Step::End(End::Client(
                            CloseReason::ProtocolError(c.clone()),
                            Some(c),
                        ));
                    }
                },
            },
            AggregatedMessage::Binary(_) => {
                let c = CloseCode::new(1003, "Binary messages are not supported");
                return Step::End(End::Client(CloseReason::ProtocolError(c.clone()), Some(c)));
            }
            AggregatedMessage::Ping(p) => return Step::Pong(p),
            AggregatedMessage::Pong(_) => {}
            // `finish` answers with a close frame.
            AggregatedMessage::Close(_) => {
                return Step::End(End::Client(CloseReason::ClientClosed, None))
            }
        }
        Step::Continue
    }
}
