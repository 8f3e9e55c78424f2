//! The session actor: one per SockJS session, whatever the transport.
//!
//! It owns the outgoing queue, the one attached receiver, the heartbeat and
//! disconnect timers, and the backend's handler. Transports only attach
//! receivers, pass in client messages and report dropped connections.

use super::receiver::{Delivery, Receiver};
use crate::protocol::{CloseCode, Frame};
use crate::service::api::{CloseReason, Handler as BackendHandler, SessionCtx, SessionInfo};
use crate::service::hub::ServiceHub;
use actix::prelude::*;
use std::sync::Arc;

pub struct SessionActor {
    key: u64,
    /// SockJS session id; `None` for WebSocket sessions, which end with
    /// their socket and cannot be re-attached.
    sid: Option<Box<str>>,
    hub: Arc<ServiceHub>,
    info: Arc<SessionInfo>,
    /// Taken when the backend has been told the session closed.
    handler: Option<Box<dyn BackendHandler>>,
    opened: bool,
    /// The close frame every later receiver gets, once closed.
    closed: Option<CloseCode>,
    queue: Vec<Arc<str>>,
    queued_bytes: usize,
    /// What the handler sent during its current call (kept for its buffer).
    sent: Vec<Arc<str>>,
    /// Client messages that raced ahead of the first receiver; handled
    /// right after `on_open` so none is lost.
    early: Vec<String>,
    receiver: Option<Receiver>,
    disconnect_timer: Option<SpawnHandle>,
    expired: bool,
}

/// Attach a receiver (a poll, a stream or a WebSocket).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub Receiver);

/// The transport lost or ended the receiver's connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub receiver_id: u64,
    pub reason: CloseReason,
}

/// Messages from the client, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Incoming(pub Vec<String>);

/// A message for the client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Push(pub Arc<str>);

/// Heartbeat time (sent by the service's one ticker to every session).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Heartbeat;

/// Close from the server side.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession(pub CloseReason);

impl SessionActor {
    pub fn new(key: u64, sid: Option<&str>, hub: Arc<ServiceHub>, info: SessionInfo) -> Self {
        let handler = hub.backend.new_session(&info);
        SessionActor {
            key,
            sid: sid.map(Into::into),
            hub,
            info: Arc::new(info),
            handler: Some(handler),
            opened: false,
            closed: None,
            queue: Vec::new(),
            queued_bytes: 0,
            sent: Vec::new(),
            early: Vec::new(),
            receiver: None,
            disconnect_timer: None,
            expired: false,
        }
    }

    /// Attaches a receiver (also called directly by a socket running inside
    /// this session's task).
    pub fn attach(&mut self, mut r: Receiver, ctx: &mut Context<Self>) {
        if self.receiver.is_some() {
            let c = CloseCode::another_connection();
            r.deliver(Frame::Close(c.code, &c.reason));
            return;
        }
        if let (Some(c), true) = (&self.closed, self.queue.is_empty()) {
            r.deliver(Frame::Close(c.code, &c.reason));
            return;
        }
        if let Some(t) = self.disconnect_timer.take() {
            ctx.cancel_future(t);
        }
        self.receiver = Some(r);
        if !self.opened {
            self.opened = true;
            self.deliver(Frame::Open, ctx);
            self.run_handler(ctx, |h, sctx| h.on_open(sctx));
            let early = std::mem::take(&mut self.early);
            self.incoming(early, ctx);
        }
        self.flush(ctx);
    }

    /// Delivers one frame to the attached receiver and handles its outcome.
    fn deliver(&mut self, frame: Frame<'_>, ctx: &mut Context<Self>) {
        if let Some(r) = self.receiver.as_mut() {
            let outcome = r.deliver(frame);
            self.handle_outcome(outcome, ctx);
        }
    }

    /// Sends what is queued, then the close frame if closed, while a receiver takes it.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while let Some(r) = self.receiver.as_mut() {
            if !self.queue.is_empty() {
                // Cleared, not taken: a chatty session reuses its buffer.
                let outcome = r.deliver(Frame::Messages(&self.queue));
                self.queue.clear();
                self.queued_bytes = 0;
                self.handle_outcome(outcome, ctx);
            } else if let Some(c) = &self.closed {
                let outcome = r.deliver(Frame::Close(c.code, &c.reason));
                self.handle_outcome(outcome, ctx);
            } else {
                return;
            }
        }
    }

    fn handle_outcome(&mut self, outcome: Delivery, ctx: &mut Context<Self>) {
        match outcome {
            Delivery::Kept => {}
            Delivery::Finished => self.release_receiver(ctx),
            Delivery::Gone => {
                // The connection vanished under us: what was just written may be
                // lost, so the session cannot go on as if it were delivered.
                self.close_with(CloseReason::Interrupted);
                self.release_receiver(ctx);
            }
        }
    }

    fn release_receiver(&mut self, ctx: &mut Context<Self>) {
        self.receiver = None;
        self.after_receiver_left(ctx);
    }

    /// A WebSocket session ends with its socket; an HTTP session waits
    /// `disconnect_delay` for the next receiver.
    fn after_receiver_left(&mut self, ctx: &mut Context<Self>) {
        if self.sid.is_none() {
            self.expire(ctx);
            return;
        }
        if let Some(t) = self.disconnect_timer.take() {
            ctx.cancel_future(t);
        }
        let delay = self.hub.config.disconnect();
        self.disconnect_timer = Some(ctx.run_later(delay, |act, ctx| {
            act.disconnect_timer = None;
            if act.receiver.is_none() {
                act.expire(ctx);
            }
        }));
    }

    fn enqueue(&mut self, msg: Arc<str>) {
        if self.closed.is_some() {
            return;
        }
        self.queued_bytes += msg.len();
        self.queue.push(msg);
        let in_flight = self.receiver.as_ref().map_or(0, Receiver::in_flight);
        if self.queued_bytes + in_flight > self.hub.config.max_queued_bytes {
            self.queue.clear();
            self.queued_bytes = 0;
            self.close_with(CloseReason::QueueOverflow);
        }
    }

    /// Marks the session closed (once) and tells the backend.
    fn close_with(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason.close_code());
        if let Some(mut h) = self.handler.take() {
            if self.opened {
                h.on_close(&self.info, &reason);
            }
        }
    }

    fn run_handler(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut dyn BackendHandler, &mut SessionCtx<'_>),
    ) {
        let Some(handler) = self.handler.as_mut() else {
            return;
        };
        // Reused across calls: most handlers send something on every message.
        let mut sent = std::mem::take(&mut self.sent);
        let mut close = None;
        let mut sctx = SessionCtx {
            info: &self.info,
            outbox: &mut sent,
            close: &mut close,
            session: ctx,
            hub: &self.hub,
        };
        f(handler.as_mut(), &mut sctx);
        for m in sent.drain(..) {
            self.enqueue(m);
        }
        self.sent = sent;
        if let Some(c) = close {
            self.close_with(CloseReason::Server(c));
        }
    }

    fn incoming(&mut self, messages: impl IntoIterator<Item = String>, ctx: &mut Context<Self>) {
        for m in messages {
            if self.closed.is_some() {
                return;
            }
            self.run_handler(ctx, |h, sctx| h.on_message(sctx, m));
        }
    }

    /// Messages from the client, in order (`Incoming`, or called directly by
    /// a socket running inside this session's task).
    pub fn client_messages(
        &mut self,
        messages: impl IntoIterator<Item = String>,
        ctx: &mut Context<Self>,
    ) {
        if !self.opened {
            self.early.extend(messages);
            return;
        }
        self.incoming(messages, ctx);
        self.flush(ctx);
    }

    /// The transport lost or ended receiver `receiver_id` (`Detach`, or
    /// called directly by a socket running inside this session's task).
    pub fn receiver_lost(
        &mut self,
        receiver_id: u64,
        reason: CloseReason,
        ctx: &mut Context<Self>,
    ) {
        if self.receiver.as_ref().map(Receiver::id) != Some(receiver_id) {
            return;
        }
        self.close_with(reason);
        self.release_receiver(ctx);
    }

    /// Forgets the session: no receiver came back, or its WebSocket ended.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        if self.expired {
            return;
        }
        self.expired = true;
        self.close_with(CloseReason::TimedOut);
        self.hub.registry.remove(self.sid.as_deref(), self.key);
        ctx.stop();
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // An HTTP session made for a receiver that never arrives must not live forever.
        if self.sid.is_some() {
            self.after_receiver_left(ctx);
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Covers stops not initiated by `expire` (e.g. the system shutting down).
        self.hub.registry.remove(self.sid.as_deref(), self.key);
        self.close_with(CloseReason::TimedOut);
    }
}

impl Handler<Heartbeat> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: Heartbeat, ctx: &mut Context<Self>) {
        if self.closed.is_none() {
            self.deliver(Frame::Heartbeat, ctx);
        }
    }
}

impl Handler<Attach> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) {
        self.attach(msg.0, ctx);
    }
}

impl Handler<Detach> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: Detach, ctx: &mut Context<Self>) {
        self.receiver_lost(msg.receiver_id, msg.reason, ctx);
    }
}

impl Handler<Incoming> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: Incoming, ctx: &mut Context<Self>) {
        self.client_messages(msg.0, ctx);
    }
}

impl Handler<Push> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: Push, ctx: &mut Context<Self>) {
        self.enqueue(msg.0);
        self.flush(ctx);
    }
}

impl Handler<CloseSession> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: CloseSession, ctx: &mut Context<Self>) {
        self.close_with(msg.0);
        self.flush(ctx);
    }
}
