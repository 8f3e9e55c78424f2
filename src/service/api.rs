//! What a backend sees of a session: it opens, sends messages, is sent
//! messages, closes. Never which transport carries it.

use crate::protocol::CloseCode;
use crate::service::hub::ServiceHub;
use crate::session::actor::{CloseSession, Push, SessionActor};
use actix::Addr;
use std::net::IpAddr;
use std::sync::Arc;

/// A backend: makes one [`Handler`] per session.
pub trait Service: Send + Sync + 'static {
    /// A new session is opening; return the handler for its life.
    fn new_session(&self, info: &SessionInfo) -> Box<dyn Handler>;
}

/// Per-session callbacks. They run inside the session's actor, one at a
/// time and in order, so a handler needs no locking for its own state.
pub trait Handler: 'static {
    /// The session is open; messages sent here arrive right after `o`.
    fn on_open(&mut self, _ctx: &mut SessionCtx<'_>) {}
    /// One message from the client, in the order the client sent it.
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String);
    /// The session closed; called exactly once if `on_open` was called.
    fn on_close(&mut self, _info: &SessionInfo, _reason: &CloseReason) {}
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The server side closed it with this code (an application close, or a
    /// gateway shutdown).
    Server(CloseCode),
    /// The client's connection dropped while it was receiving (`1002`).
    Interrupted,
    /// No receiver came back within `disconnect_delay`.
    TimedOut,
    /// The client closed its WebSocket.
    ClientClosed,
    /// Outgoing data passed `max_queued_bytes`; the client got `1008`.
    QueueOverflow,
    /// The client broke the protocol (bad JSON or an oversized message on a WebSocket).
    ProtocolError(CloseCode),
}

impl CloseReason {
    /// The close frame the client gets for this reason.
    pub fn close_code(&self) -> CloseCode {
        match self {
            CloseReason::Server(c) | CloseReason::ProtocolError(c) => c.clone(),
            CloseReason::Interrupted => CloseCode::interrupted(),
            CloseReason::TimedOut => CloseCode::go_away(),
            CloseReason::ClientClosed => CloseCode::new(1000, "Normal closure"),
            CloseReason::QueueOverflow => CloseCode::queue_overflow(),
        }
    }
}

/// Facts about a session that are safe to show a backend.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Opaque id, unique in this process. Not the SockJS session id, which
    /// the protocol keeps from applications.
    pub id: u64,
    /// The service prefix, e.g. `/echo` (shared by the service's sessions).
    pub prefix: Arc<str>,
    /// The client's address: the peer address, or, when the peer is one of
    /// `trusted_proxies`, the rightmost `X-Forwarded-For` entry that is not.
    pub remote_addr: Option<IpAddr>,
    /// Request headers that carry no credentials (no cookies, no
    /// authorization), by lowercase name.
    pub headers: Vec<(&'static str, String)>,
}

impl SessionInfo {
    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A cloneable handle to a session, usable from any thread or task.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) addr: Addr<SessionActor>,
    pub(crate) info: Arc<SessionInfo>,
}

impl SessionHandle {
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }
    /// Queues a message; dropped if the session has closed.
    pub fn send(&self, message: impl Into<Arc<str>>) {
        self.addr.do_send(Push(message.into()));
    }
    /// Closes the session with a code (3000-4999 for applications) and reason.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        self.addr
            .do_send(CloseSession(CloseReason::Server(CloseCode::new(
                code, reason,
            ))));
    }
    /// Whether the session still exists.
    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }
}

/// What a handler may do while it runs.
pub struct SessionCtx<'a> {
    pub(crate) info: &'a Arc<SessionInfo>,
    pub(crate) outbox: &'a mut Vec<Arc<str>>,
    pub(crate) close: &'a mut Option<CloseCode>,
    /// For `handle()`: an address is made only when one is asked for.
    pub(crate) session: &'a actix::Context<SessionActor>,
    pub(crate) hub: &'a ServiceHub,
}

impl SessionCtx<'_> {
    pub fn info(&self) -> &SessionInfo {
        self.info
    }
    /// Sends a message to this session's client.
    pub fn send(&mut self, message: impl Into<Arc<str>>) {
        self.outbox.push(message.into());
    }
    /// Closes this session after what was sent so far is delivered.
    pub fn close(&mut self, code: u16, reason: impl Into<String>) {
        self.close
            .get_or_insert_with(|| CloseCode::new(code, reason));
    }
    /// A handle for sending later, from other tasks or threads.
    pub fn handle(&self) -> SessionHandle {
        SessionHandle {
            addr: actix::AsyncContext::address(self.session),
            info: self.info.clone(),
        }
    }
    /// The service this session belongs to (for broadcast).
    pub fn service(&self) -> &ServiceHub {
        self.hub
    }
}
