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
        ping_every: hub.config.ping_interval(),
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
    ping_every: Duration,
}

/// How the socket's loop ended.
enum End {
    /// The session let go of the receiver (it closed): close the socket.
    SessionDone(Option<CloseCode>),
    /// The client closed, vanished, or broke the protocol.
    Client(CloseReason, Option<CloseCode>),
}

impl Connection {
    async fn run(mut self) {
        let mut ping = tokio::time::interval(self.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_seen = Instant::now();
        let end = loop {
            tokio::select! {
                out = self.rx.recv() => match out {
                    Some(Outgoing::Data(text)) => {
                        if self.ws.text(text).await.is_err() {
                            break End::Client(CloseReason::Interrupted, None);
                        }
                    }
                    Some(Outgoing::Close(c)) => break End::SessionDone(Some(c)),
                    None => break End::SessionDone(None),
                },
                msg = self.stream.recv() => {
                    last_seen = Instant::now();
                    match msg {
                        Some(Ok(m)) => if let Some(end) = self.on_message(m).await { break end },
                        Some(Err(ProtocolError::Overflow)) => {
                            let c = CloseCode::message_too_big();
                            break End::Client(CloseReason::ProtocolError(c.clone()), Some(c));
                        }
                        // The peer's connection ended, possibly right after its
                        // own close frame: it is gone, not misbehaving.
                        Some(Err(ProtocolError::Io(_))) => break End::Client(CloseReason::Interrupted, None),
                        Some(Err(e)) => {
                            log::debug!("websocket protocol error: {e}");
                            let c = CloseCode::new(1002, "Protocol error");
                            break End::Client(CloseReason::ProtocolError(c.clone()), Some(c));
                        }
                        None => break End::Client(CloseReason::Interrupted, None),
                    }
                },
                _ = ping.tick() => {
                    // A peer that answers nothing for two intervals is dead,
                    // even if TCP has not noticed yet.
                    if last_seen.elapsed() > self.ping_every * 2 {
                        break End::Client(CloseReason::Interrupted, None);
                    }
                    if self.ws.ping(b"").await.is_err() {
                        break End::Client(CloseReason::Interrupted, None);
                    }
                }
            }
        };
        match end {
            End::SessionDone(code) => {
                let reason = code.map(|c| actix_ws::CloseReason {
                    code: c.code.into(),
                    description: Some(c.reason),
                });
                let _ = self
                    .ws
                    .close(reason.or(Some(actix_ws::CloseCode::Normal.into())))
                    .await;
            }
            End::Client(reason, code) => {
                self.addr.do_send(Detach {
                    receiver_id: self.rx.id,
                    reason,
                });
                if let Some(c) = code {
                    let _ = self
                        .ws
                        .close(Some(actix_ws::CloseReason {
                            code: c.code.into(),
                            description: Some(c.reason),
                        }))
                        .await;
                }
            }
        }
    }

    async fn on_message(&mut self, msg: AggregatedMessage) -> Option<End> {
        match msg {
            AggregatedMessage::Text(text) => match self.framing {
                Framing::Raw => self.addr.do_send(Incoming(vec![text.to_string()])),
                Framing::SockJs => match decode_ws_frame(&text) {
                    Ok(msgs) if msgs.is_empty() => {}
                    Ok(msgs) => self.addr.do_send(Incoming(msgs)),
                    Err(e) => {
                        // Broken framing: drop the socket, as SockJS servers do.
                        let c = CloseCode::new(1007, e.message());
                        return Some(End::Client(CloseReason::ProtocolError(c.clone()), Some(c)));
                    }
                },
            },
            AggregatedMessage::Binary(_) => {
                let c = CloseCode::new(1003, "Binary messages are not supported");
                return Some(End::Client(CloseReason::ProtocolError(c.clone()), Some(c)));
            }
            AggregatedMessage::Ping(p) => {
                if self.ws.pong(&p).await.is_err() {
                    return Some(End::Client(CloseReason::Interrupted, None));
                }
            }
            AggregatedMessage::Pong(_) => {}
            AggregatedMessage::Close(reason) => {
                let _ = self.ws.clone().close(reason).await;
                return Some(End::Client(CloseReason::ClientClosed, None));
            }
        }
        None
    }
}
