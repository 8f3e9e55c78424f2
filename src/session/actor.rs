//! The session actor: one per SockJS session, whatever the transport.
//!
//! It owns the outgoing queue, the one attached receiver, the heartbeat and
//! disconnect timers, and the backend's handler. Transports only attach
//! receivers, pass in client messages and report dropped connections.

use super::handler::{
    CloseReason, Handler as BackendHandler, Open, Requests, SessionCtx, SessionInfo,
};
use super::receiver::{Delivery, Receiver};
use crate::limits::message_rate::MessageRate;
use crate::limits::per_address::Slot;
use crate::metrics::Limit;
use crate::protocol::{CloseCode, Frame, Message};
use crate::session::hub::Hub;
use actix::prelude::*;
use std::sync::Arc;
use std::task::{Poll, Waker};

pub struct SessionActor {
    key: u64,
    /// SockJS session id; `None` for WebSocket sessions, which end with
    /// their socket and cannot be re-attached.
    sid: Option<Box<str>>,
    hub: Arc<dyn Hub>,
    info: Arc<SessionInfo>,
    /// Taken when the backend has been told the session closed.
    handler: Option<Box<dyn BackendHandler>>,
    opened: bool,
    /// The handler asked to open later ([`Open::Later`]); the receiver waits.
    opening: bool,
    /// The handler's own asynchronous work, while it goes on (boxed: only
    /// some handlers have any, and every idle session carries the actor).
    task: Option<Box<Polling>>,
    /// The handler holds back the client's messages (see `client_held`).
    client_held: bool,
    /// The close frame every later receiver gets, once closed.
    closed: Option<Box<CloseCode>>,
    queue: Vec<Message>,
    queued_bytes: usize,
    /// Client messages that raced ahead of the first receiver; handled
    /// right after `on_open` so none is lost. Boxed on purpose: rare, and
    /// 8 bytes here instead of a `Vec`'s 24 in every session.
    #[allow(clippy::box_collection)]
    early: Option<Box<Vec<String>>>,
    receiver: Option<Receiver>,
    /// The `disconnect_delay` timer while no receiver is attached, or the
    /// heartbeat timer of the poll that waits; the default handle (which
    /// actix never gives a future: it counts from 1) while neither runs.
    timer: SpawnHandle,
    expired: bool,
    /// The transport that opened it, for the open-sessions gauge
    /// ([`crate::metrics::TRANSPORTS`]).
    transport: Option<u8>,
    /// What limits this session, if any does: boxed, so that a session
    /// without limits carries a null pointer only.
    limits: Option<Box<Limits>>,
}

/// The state of the task that polls [`BackendHandler::poll`].
struct Polling {
    waker: Waker,
    /// Wake it once the backlog is at most this.
    drain_at: Option<usize>,
}

thread_local! {
    /// What a handler sends during one call, reused across calls and
    /// sessions on this worker: most handlers send something on every
    /// message. Taken out for a call, so a call within a call gets its own.
    static SENT: std::cell::Cell<Vec<Message>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A session's limits.
struct Limits {
    /// `max_messages_per_second`, when set.
    rate: Option<MessageRate>,
    /// Its place in `max_sessions_per_ip`, given back when it is dropped.
    _slot: Option<Slot>,
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

/// Messages from the client, in order. The answer: whether every one was
/// taken (`false`: the session passed `max_messages_per_second`).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Incoming(pub Vec<String>);

/// A message for the client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Push(pub Message);

/// Heartbeat time (sent by the service's one ticker to every session; a
/// poll has a timer of its own instead, see [`SessionActor::poll_heartbeat`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Heartbeat;

/// Close from the server side.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession(pub CloseReason);

impl SessionActor {
    /// `slot`: the session's place among its address's, if counted.
    pub fn new(
        key: u64,
        sid: Option<&str>,
        hub: Arc<dyn Hub>,
        info: SessionInfo,
        slot: Option<Slot>,
    ) -> Self {
        let handler = hub.new_handler(&info);
        let rate = MessageRate::new(hub.config().max_messages_per_second);
        let limits =
            (rate.is_some() || slot.is_some()).then(|| Box::new(Limits { rate, _slot: slot }));
        SessionActor {
            key,
            sid: sid.map(Into::into),
            hub,
            info: Arc::new(info),
            handler: Some(handler),
            opened: false,
            opening: false,
            task: None,
            client_held: false,
            closed: None,
            queue: Vec::new(),
            queued_bytes: 0,
            early: None,
            receiver: None,
            timer: SpawnHandle::default(),
            expired: false,
            transport: None,
            limits,
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
        self.stop_timer(ctx);
        if self.transport.is_none() {
            let t = r.transport();
            self.transport = Some(t as u8);
            self.hub.metrics().sessions_opened[t].inc();
            self.hub.metrics().sessions_open[t].inc();
        }
        self.receiver = Some(r);
        if !self.opened && !self.opening {
            let mut open = Open::Now;
            self.run_handler(ctx, |h, sctx| open = h.on_connect(sctx));
            // Unless the handler already opened or closed it.
            if !self.opened && self.closed.is_none() {
                match open {
                    Open::Now => self.open_now(ctx),
                    Open::Later => {
                        // The receiver waits, without `o`, for the handler's decision.
                        self.opening = true;
                        self.wake_task();
                    }
                }
            }
        }
        self.flush(ctx);
        self.poll_heartbeat(ctx);
    }

    /// A poll still waiting gets `h` after `heartbeat_delay` of its own, as
    /// sockjs-node does, rather than at the service's next tick: a tick
    /// could end a poll a moment after it began, which costs the client a
    /// request, brings every idle polling client back at the same instant,
    /// and answers a poll the client has just given up (sockjs-client
    /// cannot cancel a JSONP script, which then calls a callback it
    /// removed: a page error).
    fn poll_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let Some(id) = self
            .receiver
            .as_ref()
            .filter(|r| r.is_poll())
            .map(Receiver::id)
        else {
            return;
        };
        self.stop_timer(ctx);
        self.timer = ctx.run_later(self.hub.config().heartbeat(), move |act, ctx| {
            act.timer = SpawnHandle::default();
            if act.receiver.as_ref().map(Receiver::id) == Some(id) {
                act.beat(ctx);
            }
        });
    }

    /// `h` to the receiver, while the session is open.
    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.closed.is_none() && self.opened {
            self.deliver(Frame::Heartbeat, ctx);
        }
    }

    /// Sends `o`, tells the handler, and hands it what the client sent
    /// early. Every caller flushes afterwards.
    fn open_now(&mut self, ctx: &mut Context<Self>) {
        self.opening = false;
        self.opened = true;
        self.deliver(Frame::Open, ctx);
        self.run_handler(ctx, |h, sctx| h.on_open(sctx));
        let early = self.early.take().map(|e| *e).unwrap_or_default();
        self.incoming(early, ctx);
    }

    /// Bytes on their way to the client: queued here, or handed to the
    /// receiver's transport and not yet taken.
    fn backlog(&self) -> usize {
        self.queued_bytes + self.receiver.as_ref().map_or(0, Receiver::in_flight)
    }

    fn wake_task(&self) {
        if let Some(t) = &self.task {
            t.waker.wake_by_ref();
        }
    }

    /// Wakes the handler's polling if the backlog it waits for was reached,
    /// else has the receiver's transport wake it.
    fn check_drain(&mut self) {
        // Most sessions wait for nothing: that is known before any count.
        let Some(at) = self.task.as_ref().and_then(|t| t.drain_at) else {
            return;
        };
        let backlog = self.backlog();
        let Some(task) = self.task.as_mut() else {
            return;
        };
        if backlog <= at {
            task.drain_at = None;
            task.waker.wake_by_ref();
        } else if let Some(r) = &self.receiver {
            r.wake_when_at_most(at.saturating_sub(self.queued_bytes), &task.waker);
        }
    }

    /// One round of the handler's asynchronous work ([`BackendHandler::poll`]).
    fn poll_handler(
        &mut self,
        ctx: &mut Context<Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        if self.handler.is_none() {
            self.task = None;
            return Poll::Ready(());
        }
        match self.task.as_mut() {
            Some(t) => {
                if !t.waker.will_wake(cx.waker()) {
                    t.waker = cx.waker().clone();
                }
                // A wait for the backlog ends with this poll; the handler
                // asks again if need be.
                t.drain_at = None;
            }
            None => {
                self.task = Some(Box::new(Polling {
                    waker: cx.waker().clone(),
                    drain_at: None,
                }))
            }
        }
        let mut result = Poll::Pending;
        self.run_handler(ctx, |h, sctx| result = h.poll(sctx, cx));
        // What it sent, or a close, goes out now.
        self.flush(ctx);
        if result.is_ready() || self.handler.is_none() {
            self.task = None;
            return Poll::Ready(());
        }
        result
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
            // Nothing but a close goes out before `o`.
            if !self.queue.is_empty() && self.opened {
                // Cleared, not taken: a chatty session reuses its buffer.
                let outcome = r.deliver(Frame::Messages(&self.queue));
                self.queue.clear();
                self.queued_bytes = 0;
                self.handle_outcome(outcome, ctx);
            } else if let Some(c) = &self.closed {
                let outcome = r.deliver(Frame::Close(c.code, &c.reason));
                self.handle_outcome(outcome, ctx);
            } else {
                break;
            }
        }
        self.check_drain();
    }

    fn handle_outcome(&mut self, outcome: Delivery, ctx: &mut Context<Self>) {
        match outcome {
            Delivery::Kept => {}
            Delivery::Finished => {
                if self.closed.is_none()
                    && self.receiver.as_ref().is_some_and(Receiver::is_streaming)
                {
                    self.hub.metrics().stream_rollovers.inc();
                }
                self.release_receiver(ctx)
            }
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
        self.check_drain();
        self.after_receiver_left(ctx);
    }

    /// A WebSocket session ends with its socket; an HTTP session waits
    /// `disconnect_delay` for the next receiver.
    fn after_receiver_left(&mut self, ctx: &mut Context<Self>) {
        if self.sid.is_none() {
            self.expire(ctx);
            return;
        }
        self.stop_timer(ctx);
        let delay = self.hub.config().disconnect();
        self.timer = ctx.run_later(delay, |act, ctx| {
            act.timer = SpawnHandle::default();
            if act.receiver.is_none() {
                act.expire(ctx);
            }
        });
    }

    fn stop_timer(&mut self, ctx: &mut Context<Self>) {
        let t = std::mem::take(&mut self.timer);
        if t != SpawnHandle::default() {
            ctx.cancel_future(t);
        }
    }

    fn enqueue(&mut self, msg: Message) {
        if self.closed.is_some() {
            return;
        }
        self.queued_bytes += msg.len();
        self.hub.metrics().messages_out.inc();
        self.hub.metrics().bytes_out.inc_by(msg.len() as u64);
        self.queue.push(msg);
        let in_flight = self.receiver.as_ref().map_or(0, Receiver::in_flight);
        if self.queued_bytes + in_flight > self.hub.config().max_queued_bytes {
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
        self.closed = Some(Box::new(reason.close_code()));
        let m = self.hub.metrics();
        m.sessions_closed[reason.metric_index()].inc();
        if matches!(reason, CloseReason::QueueOverflow) {
            m.queue_overflow_closes.inc();
        }
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
        let backlog = self.backlog();
        let Some(handler) = self.handler.as_mut() else {
            return;
        };
        // Reused across calls: most handlers send something on every message.
        let mut sent = SENT.take();
        let mut requests = Requests::default();
        let mut sctx = SessionCtx {
            info: &self.info,
            outbox: &mut sent,
            requests: &mut requests,
            backlog,
            session: ctx,
            hub: &*self.hub,
        };
        f(handler.as_mut(), &mut sctx);
        for m in sent.drain(..) {
            self.enqueue(m);
        }
        SENT.set(sent);
        if let Some(c) = requests.close {
            self.close_with(CloseReason::Server(c));
        }
        if requests.open && self.opening && self.closed.is_none() {
            self.open_now(ctx);
        }
        if let Some(at) = requests.drain_at {
            // Only a handler's own polling asks to wait for the backlog.
            if let Some(t) = self.task.as_mut() {
                t.drain_at = Some(at);
            }
            self.check_drain();
        }
        if let Some(hold) = requests.hold_client {
            if self.client_held && !hold {
                // A WebSocket waiting to be read is polled in this task.
                self.wake_task();
            }
            self.client_held = hold;
        }
    }

    /// Whether a transport that can wait should leave the client's messages
    /// unread for now (the handler's consumer is behind).
    pub fn client_held(&self) -> bool {
        self.client_held
    }

    fn incoming(&mut self, messages: impl IntoIterator<Item = String>, ctx: &mut Context<Self>) {
        for m in messages {
            if self.closed.is_some() {
                return;
            }
            self.incoming_one(m, ctx);
        }
        // A handler with asynchronous work may have something new to do.
        self.wake_task();
    }

    fn incoming_one(&mut self, m: String, ctx: &mut Context<Self>) {
        self.hub.metrics().messages_in.inc();
        self.hub.metrics().bytes_in.inc_by(m.len() as u64);
        self.run_handler(ctx, |h, sctx| h.on_message(sctx, m));
    }

    /// Messages from the client, in order (`Incoming`, or called directly by
    /// a socket running inside this session's task). `false` when some
    /// passed `max_messages_per_second`: those before are handled, the
    /// handler is told ([`BackendHandler::on_rate_limited`]), and the rest
    /// dropped.
    pub fn client_messages(
        &mut self,
        messages: impl IntoIterator<Item = String>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let limits = self.limits.take();
        let rate = limits.as_ref().and_then(|l| l.rate.as_ref());
        let mut limited = false;
        for m in messages {
            if self.opened && self.closed.is_some() {
                break;
            }
            if let Some(r) = rate {
                let cost = self.handler.as_deref().map_or(1, |h| h.rate_cost(&m));
                if !r.allow(cost) {
                    limited = true;
                    break;
                }
            }
            if !self.opened {
                self.early.get_or_insert_with(Default::default).push(m);
            } else {
                self.incoming_one(m, ctx);
            }
        }
        if self.opened {
            // A handler with asynchronous work may have something new to do.
            self.wake_task();
        }
        self.limits = limits;
        if limited && self.closed.is_none() {
            self.hub.metrics().limited[Limit::MessagesPerSecond as usize].inc();
            self.run_handler(ctx, |h, sctx| h.on_rate_limited(sctx));
            if self.closed.is_none() {
                // A handler that goes on may have work for its task.
                self.wake_task();
            }
        }
        if self.opened {
            self.flush(ctx);
        }
        !limited
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
        self.hub.forget(self.sid.as_deref(), self.key);
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
        ctx.spawn(HandlerTask);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Covers stops not initiated by `expire` (e.g. the system shutting down).
        self.hub.forget(self.sid.as_deref(), self.key);
        self.close_with(CloseReason::TimedOut);
        if let Some(t) = self.transport.take() {
            self.hub.metrics().sessions_open[t as usize].dec();
        }
    }
}

impl Handler<Heartbeat> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: Heartbeat, ctx: &mut Context<Self>) {
        // A poll has its own timer (poll_heartbeat).
        if !self.receiver.as_ref().is_some_and(Receiver::is_poll) {
            self.beat(ctx);
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
    type Result = bool;
    fn handle(&mut self, msg: Incoming, ctx: &mut Context<Self>) -> bool {
        self.client_messages(msg.0, ctx)
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

/// Polls the handler's asynchronous work inside the session's own task.
struct HandlerTask;

impl ActorFuture<SessionActor> for HandlerTask {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        session: &mut SessionActor,
        ctx: &mut Context<SessionActor>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        session.poll_handler(ctx, cx)
    }
}
