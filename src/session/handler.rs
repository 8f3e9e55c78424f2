//! The seam between a session and its backend: the per-session
//! [`Handler`] callbacks, what they may do ([`SessionCtx`]), what they
//! learn ([`SessionInfo`], [`CloseReason`]). It sits below the actor, which
//! calls it; `service::api` re-exports it for backends.

use crate::protocol::{CloseCode, Message};
use crate::session::actor::{CloseSession, Push, SessionActor};
use crate::session::hub::Hub;
use actix::Addr;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::Poll;

/// Per-session callbacks. They run inside the session's actor, one at a
/// time and in order, so a handler needs no locking for its own state.
pub trait Handler: 'static {
    /// The client's first request arrived; nothing was sent to it yet.
    /// [`Open::Now`] (the default) opens the session at once. With
    /// [`Open::Later`] the client waits, with no `o` and no heartbeats,
    /// until the handler calls [`SessionCtx::open`] (typically from
    /// [`Handler::poll`]) or closes the session, which the client then
    /// sees as a close without an open.
    fn on_connect(&mut self, _ctx: &mut SessionCtx<'_>) -> Open {
        Open::Now
    }
    /// The session is open; messages sent here arrive right after `o`.
    fn on_open(&mut self, _ctx: &mut SessionCtx<'_>) {}
    /// One message from the client, in the order the client sent it.
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String);
    /// How much of `max_messages_per_second` a message from the client
    /// takes: 1 (the default) counts SockJS messages; a protocol that
    /// carries several requests in one message counts them, so that one
    /// message cannot carry a second's worth many times over.
    fn rate_cost(&self, _message: &str) -> u32 {
        1
    }
    /// The client sent faster than `max_messages_per_second`; the messages
    /// past it were dropped. The default closes the session with `4429`
    /// "Too many messages"; a protocol with its own errors says so first.
    fn on_rate_limited(&mut self, ctx: &mut SessionCtx<'_>) {
        ctx.close(CLOSE_TOO_MANY, "Too many messages");
    }
    /// The session closed; called exactly once if `on_open` was called.
    fn on_close(&mut self, _info: &SessionInfo, _reason: &CloseReason) {}
    /// Asynchronous work inside the session's own task (an upstream
    /// connection, say): polled when that task is woken by what `cx`'s
    /// waker was given to, after every client message, and when a wait
    /// asked for with [`SessionCtx::wake_when_backlog_at_most`] ends.
    /// Returning `Ready` ends the polling for good; the default has none.
    fn poll(&mut self, _ctx: &mut SessionCtx<'_>, _cx: &mut std::task::Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

/// The close code of a session refused by a limit: too many sessions
/// from its address or of its user, or too many messages.
pub const CLOSE_TOO_MANY: u16 = CloseCode::TOO_MANY;

/// When a session opens: see [`Handler::on_connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    Now,
    Later,
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
    /// The reason as an index into [`crate::metrics::CLOSE_REASONS`].
    pub fn metric_index(&self) -> usize {
        match self {
            CloseReason::Server(_) => 0,
            CloseReason::Interrupted => 1,
            CloseReason::TimedOut => 2,
            CloseReason::ClientClosed => 3,
            CloseReason::QueueOverflow => 4,
            CloseReason::ProtocolError(_) => 5,
        }
    }

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
#[derive(Clone)]
pub struct SessionInfo {
    /// Opaque id, unique in this process. Not the SockJS session id, which
    /// the protocol keeps from applications.
    pub id: u64,
    /// The service prefix, e.g. `/echo` (shared by the service's sessions).
    pub prefix: Arc<str>,
    /// The client's address: the peer address, or, when the peer is one of
    /// `trusted_proxies`, the rightmost `X-Forwarded-For` entry that is not;
    /// `None` when that entry is no address (`unknown`, say).
    pub remote_addr: Option<IpAddr>,
    /// The scheme the client used: `X-Forwarded-Proto` from a trusted
    /// proxy, else `http` (the gateway does not terminate TLS).
    pub proto: Arc<str>,
    /// The host the client asked for: `X-Forwarded-Host` from a trusted
    /// proxy, else `Host`.
    pub host: Option<String>,
    /// Request headers that carry no credentials (no cookies, no
    /// authorization), by lowercase name.
    pub headers: Vec<(&'static str, String)>,
    /// The headers named in the service's `forward_headers`, from the
    /// request that opened the session, by lowercase name. They may carry
    /// credentials, so `Debug` shows their names only.
    pub forwarded: Vec<(Arc<str>, String)>,
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

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let forwarded: Vec<&str> = self.forwarded.iter().map(|(k, _)| k.as_ref()).collect();
        f.debug_struct("SessionInfo")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("remote_addr", &self.remote_addr)
            .field("proto", &self.proto)
            .field("host", &self.host)
            .field("headers", &self.headers)
            .field("forwarded (names only)", &forwarded)
            .finish()
    }
}

/// What a handler may do while it runs.
pub struct SessionCtx<'a> {
    pub(crate) info: &'a Arc<SessionInfo>,
    pub(crate) outbox: &'a mut Vec<Message>,
    pub(crate) requests: &'a mut Requests,
    pub(crate) backlog: usize,
    /// For `handle()`: an address is made only when one is asked for.
    pub(crate) session: &'a actix::Context<SessionActor>,
    pub(crate) hub: &'a dyn Hub,
}

/// What a handler asked for during one call, applied by the session after it.
#[derive(Default)]
pub(crate) struct Requests {
    pub close: Option<CloseCode>,
    pub open: bool,
    pub drain_at: Option<usize>,
    pub hold_client: Option<bool>,
}

impl SessionCtx<'_> {
    pub fn info(&self) -> &SessionInfo {
        self.info
    }
    /// Sends a message to this session's client.
    pub fn send(&mut self, message: impl Into<Message>) {
        self.outbox.push(message.into());
    }
    /// Closes this session after what was sent so far is delivered.
    pub fn close(&mut self, code: u16, reason: impl Into<String>) {
        self.requests
            .close
            .get_or_insert_with(|| CloseCode::new(code, reason));
    }
    /// Opens a session whose [`Handler::on_connect`] answered [`Open::Later`].
    pub fn open(&mut self) {
        self.requests.open = true;
    }
    /// Bytes on their way to the client: queued in the session and handed
    /// to its transport but not yet taken by it. A handler that produces
    /// data on its own (a proxy) stops producing while this is high.
    pub fn backlog(&self) -> usize {
        self.backlog
    }
    /// Has [`Handler::poll`] called again once [`SessionCtx::backlog`] is
    /// at most `bytes`.
    pub fn wake_when_backlog_at_most(&mut self, bytes: usize) {
        self.requests.drain_at = Some(bytes);
    }
    /// Stops (`true`) or resumes (`false`) taking messages from a client
    /// whose transport can wait: a WebSocket is then not read, so TCP slows
    /// the client down. HTTP sends are answered as they come.
    pub fn hold_client(&mut self, hold: bool) {
        self.requests.hold_client = Some(hold);
    }
    /// A handle for sending later, from other tasks or threads.
    pub fn handle(&self) -> SessionHandle {
        SessionHandle {
            addr: actix::AsyncContext::address(self.session),
            info: self.info.clone(),
        }
    }
    /// The service this session belongs to (for broadcast).
    pub fn service(&self) -> &dyn Hub {
        self.hub
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
    pub fn send(&self, message: impl Into<Message>) {
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
