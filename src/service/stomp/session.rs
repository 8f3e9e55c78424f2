//! One STOMP session over one SockJS session: CONNECT, subscriptions,
//! SEND to topics and to the app webhook, receipts, errors, DISCONNECT.
//!
//! Frames are handled one at a time, in order. A frame that calls the
//! backend (CONNECT with the connect webhook, SEND to `/app/...`) holds
//! the frames after it until the answer is in; meanwhile a WebSocket
//! client is not read, and at most `max_pending_frames` wait.
//!
//! Heart-beats: CONNECTED always says `heart-beat:0,0`. SockJS already
//! keeps the connection alive and finds dead peers (its `h` frames, and
//! WebSocket pings), on every transport; STOMP heart-beats on top would be
//! a second clock that sockjs-client's transports can delay (a poll in
//! flight, a stream rolling over), and a client that expects them and
//! misses them closes a healthy session. With `0,0` the client sends none
//! and expects none. A client's bare line ends are still accepted.

use super::auth::Identity;
use super::destination::any_matches;
use super::expiry::{self, Expiry};
use super::frame::{truncate, Decoder, Frame, Item, Version};
use super::recovery::{self, Asked};
use super::topics::{addressed_user, message_head, message_tail, user_key};
use super::webhook::{self, Failure};
use super::{auth, Shared, Via};
use crate::cluster::history::{Mark, Position, Read, Retention, Since};
use crate::cluster::presence::{self, Counted};
use crate::metrics::{Limit, SubscribeAnswer, TokenEvent};
use crate::service::api::{CloseReason, Handler, SessionCtx, SessionInfo, CLOSE_TOO_MANY};
use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Poll;

/// The close code after an ERROR frame: the STOMP session is over, and
/// the client should not fall back to another transport for it.
pub const CLOSE_AFTER_ERROR: u16 = 4400;

/// The close code after `Token expired` (`[auth] expire_sessions`): sign
/// in again, with a new token.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4401;

/// Where a client sends a fresh token (`Authorization: Bearer ...` or
/// `passcode`) before its session's expires.
pub const TOKEN_DESTINATION: &str = "/gateway/token";

/// The gateway's own notices to a session (`x-token-expires-in`); a
/// signed-in session may always subscribe to it, and nobody else sends
/// to it.
pub const GATEWAY_QUEUE: &str = "/user/queue/gateway";

pub struct StompSession {
    shared: Arc<Shared>,
    decoder: Decoder,
    /// Set by CONNECT.
    version: Option<Version>,
    /// Subscription id -> its key (see `topics`) and destination.
    subscriptions: HashMap<String, (String, String)>,
    /// Bytes of the subscriptions' ids and destinations.
    subscription_bytes: usize,
    /// Named at CONNECT; `None` for an anonymous session.
    user: Option<String>,
    session: u64,
    /// An ERROR or DISCONNECT ended it: ignore what follows.
    done: bool,
    /// Frames not handled yet: those after a frame waiting for an answer.
    waiting: VecDeque<Frame>,
    /// The call under way (a webhook, a read of history), and what to do
    /// with its answer.
    call: Option<Call>,
    /// The client's messages are held back (while a call is under way).
    holding: bool,
    /// When its token expires (`[auth] expire_sessions`).
    expiry: Option<Expiry>,
}

/// A frame waiting for an answer.
enum Pending {
    Connect {
        version: Version,
        receipt: Option<String>,
    },
    App {
        receipt: Option<String>,
    },
    /// Asking the subscribe webhook.
    Subscribe(NewSubscription),
}

/// A SUBSCRIBE that passed the session's own checks.
struct NewSubscription {
    key: String,
    id: String,
    destination: String,
    retention: Option<Retention>,
    asked: Option<Asked>,
    receipt: Option<String>,
}

/// A SUBSCRIBE that asked to recover, waiting for its read of history.
struct Subscribing {
    key: String,
    id: String,
    asked: Asked,
    receipt: Option<String>,
    /// How long the destination's history lives.
    ttl: std::time::Duration,
    /// A mark taken before the subscription was made.
    mark: Position,
}

/// A CONNECT whose user is known, to be let in if the user's sessions
/// allow (`max_sessions_per_user`).
struct Admission {
    version: Version,
    identity: Identity,
    receipt: Option<String>,
}

/// A call under way, and the frame waiting for it.
enum Call {
    Webhook(webhook::Call, Pending),
    History(BoxFuture<'static, Result<Read, String>>, Subscribing),
    /// The user's sessions on the other nodes.
    UserCount(BoxFuture<'static, usize>, Admission),
    /// This node does not hear a new subscription's destination (or a
    /// new user's sessions) yet: a Redis Cluster's sharded subscription is
    /// being made. The answer waits for it, so that what is published
    /// after the receipt (or CONNECTED) reaches the client.
    Hearing(BoxFuture<'static, ()>, Heard),
}

/// What waits for the cluster to hear a tag.
enum Heard {
    Connect(Version, Identity, Option<String>),
    Subscribe(Registered),
}

/// A subscription made here whose receipt (and any recovery) is still to
/// come.
struct Registered {
    key: String,
    id: String,
    retention: Option<Retention>,
    asked: Option<Asked>,
    receipt: Option<String>,
    top: Option<Position>,
    mark: Option<Position>,
}

/// What became of a frame.
enum Step {
    /// Handled; its receipt, if it asked for one, goes out now.
    Done,
    /// Handled, and its receipt (with more to tell) is out already.
    Answered,
    /// Waiting for a webhook; the receipt goes out with the answer.
    Calling,
    /// It ended the session (DISCONNECT), receipt first.
    Ended,
}

/// A frame the session refuses: the ERROR's `message`, details, and the
/// close code that follows.
struct Refusal {
    message: String,
    detail: String,
    close: u16,
}

fn refuse(message: impl Into<String>, detail: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        detail: detail.into(),
        close: CLOSE_AFTER_ERROR,
    }
}

impl Refusal {
    /// Closes with `code` rather than [`CLOSE_AFTER_ERROR`].
    fn closing(self, code: u16) -> Refusal {
        Refusal {
            close: code,
            ..self
        }
    }
}

impl StompSession {
    pub(crate) fn new(shared: Arc<Shared>, info: &SessionInfo) -> StompSession {
        StompSession {
            decoder: Decoder::new(shared.limits),
            shared,
            version: None,
            subscriptions: HashMap::new(),
            subscription_bytes: 0,
            user: None,
            session: info.id,
            done: false,
            waiting: VecDeque::new(),
            call: None,
            holding: false,
            expiry: None,
        }
    }

    fn version(&self) -> Version {
        self.version.unwrap_or(Version::V1_0)
    }

    /// Sends ERROR (with the receipt it refused, if any) and closes.
    fn error(&mut self, ctx: &mut SessionCtx<'_>, r: Refusal, receipt: Option<&str>) {
        let mut f = Frame::new("ERROR")
            // Escaped as the version says; 1.0 has no escape for a line end.
            .header("message", r.message.replace(['\n', '\r'], " "))
            .header("content-type", "text/plain");
        if let Some(id) = receipt {
            f = f.header("receipt-id", id);
        }
        ctx.send(f.body(r.detail).encode(self.version()));
        // A close of its own says what it is; every other ERROR closes alike.
        let reason = match r.close {
            CLOSE_AFTER_ERROR => "STOMP error".to_owned(),
            _ => r.message,
        };
        ctx.close(r.close, reason);
        self.done = true;
        self.waiting.clear();
        self.call = None;
        self.expiry = None;
    }

    /// Sends the receipt of a frame handled after an answer, or the ERROR.
    fn finish(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        step: Result<Step, Refusal>,
        receipt: Option<&str>,
    ) {
        match step {
            Ok(Step::Done) => self.receipt(ctx, receipt),
            Ok(Step::Answered | Step::Calling | Step::Ended) => {}
            Err(r) => self.error(ctx, r, receipt),
        }
    }

    /// Handles the frames that wait, in order, until one calls a webhook.
    fn run(&mut self, ctx: &mut SessionCtx<'_>) {
        while self.call.is_none() && !self.done {
            let Some(f) = self.waiting.pop_front() else {
                break;
            };
            let step = self.frame(ctx, &f);
            self.finish(ctx, step, f.get("receipt"));
        }
        let hold = self.call.is_some();
        if hold != self.holding {
            self.holding = hold;
            ctx.hold_client(hold);
        }
    }

    fn frame(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<Step, Refusal> {
        if self.version.is_none() && !matches!(f.command.as_str(), "CONNECT" | "STOMP") {
            return Err(refuse(
                "Expected CONNECT",
                format!("{} came before CONNECT", f.command),
            ));
        }
        match f.command.as_str() {
            "CONNECT" | "STOMP" => return self.connect(ctx, f),
            "SUBSCRIBE" => return self.subscribe(ctx, f),
            "UNSUBSCRIBE" => {
                let id = required(f, "id")?;
                match self.subscriptions.remove(id) {
                    Some((key, destination)) => {
                        self.subscription_bytes -= id.len() + destination.len();
                        self.shared.topics.unsubscribe(&key, self.session, id)
                    }
                    None => return Err(refuse("Unknown subscription", format!("id {id:?}"))),
                }
            }
            "SEND" => return self.send(ctx, f),
            // Every MESSAGE is acknowledged as it is sent (auto).
            "ACK" | "NACK" | "BEGIN" | "COMMIT" | "ABORT" => {}
            "DISCONNECT" => {
                self.receipt(ctx, f.get("receipt"));
                ctx.close(1000, "DISCONNECT");
                self.done = true;
                return Ok(Step::Ended);
            }
            other => return Err(refuse("Unexpected frame", other.to_owned())),
        }
        Ok(Step::Done)
    }

    fn receipt(&self, ctx: &mut SessionCtx<'_>, receipt: Option<&str>) {
        if let Some(id) = receipt {
            ctx.send(
                Frame::new("RECEIPT")
                    .header("receipt-id", id)
                    .encode(self.version()),
            );
        }
    }

    fn connect(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<Step, Refusal> {
        if self.version.is_some() {
            return Err(refuse("Already connected", "a second CONNECT"));
        }
        let Some(version) = Version::negotiate(f.get("accept-version")) else {
            return Err(refuse(
                "Supported protocol versions are 1.0 1.1 1.2",
                format!("accept-version was {:?}", f.get("accept-version")),
            ));
        };
        let token = token_of(f);
        // A token goes to the JWT check when one is configured; anything
        // else to the connect webhook, when there is one.
        if let (Some(url), Some(hooks)) = (&self.shared.connect_webhook, &self.shared.webhooks) {
            if token.is_none() || !self.shared.auth.has_keys() {
                let info = ctx.info();
                let cookie = info
                    .forwarded
                    .iter()
                    .find(|(k, _)| k.as_ref() == "cookie")
                    .map(|(_, v)| v.as_str());
                let body =
                    webhook::connect_request(self.session, &f.headers, cookie, info.remote_addr);
                let receipt = f.get("receipt").map(str::to_owned);
                let call = hooks.call(url, body);
                self.call = Some(Call::Webhook(call, Pending::Connect { version, receipt }));
                return Ok(Step::Calling);
            }
        }
        let identity = self
            .shared
            .auth
            .user(token)
            .map_err(|why| refuse(why, "CONNECT was refused"))?;
        self.unexpired(&identity, "CONNECT with a fresh token")?;
        self.admit(
            ctx,
            Admission {
                version,
                identity,
                receipt: f.get("receipt").map(str::to_owned),
            },
        )
    }

    /// A CONNECT whose user is known: let in unless the user has
    /// `max_sessions_per_user` already, counted on every node.
    fn admit(&mut self, ctx: &mut SessionCtx<'_>, a: Admission) -> Result<Step, Refusal> {
        if let (Some(user), true) = (&a.identity.user, self.shared.max_sessions_per_user > 0) {
            if !self.shared.bus.peers().is_empty() {
                let field = presence::field(&self.shared.service, Counted::User, user);
                let count = self.shared.bus.counted_elsewhere(vec![field]);
                self.call = Some(Call::UserCount(count, a));
                return Ok(Step::Calling);
            }
        }
        self.admitted(ctx, a, 0)
    }

    /// [`Self::admit`], knowing the user's sessions on the other nodes.
    fn admitted(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        a: Admission,
        elsewhere: usize,
    ) -> Result<Step, Refusal> {
        if let Some(user) = &a.identity.user {
            let max = self.shared.max_sessions_per_user;
            let room = (max > 0).then(|| max.saturating_sub(elsewhere));
            if !self
                .shared
                .users
                .add(user, self.session, a.version, ctx.handle(), room)
            {
                self.shared.metrics.limited[Limit::SessionsPerUser as usize].inc();
                return Err(refuse(
                    "Too many sessions",
                    format!("at most {max} sessions of one user (max_sessions_per_user)"),
                )
                .closing(CLOSE_TOO_MANY));
            }
        }
        let heard = a.identity.user.as_ref().and_then(|user| {
            let tag = crate::cluster::event::user_tag(&self.shared.service, user);
            self.shared.bus.hearing(&tag)
        });
        if let Some(wait) = heard {
            self.call = Some(Call::Hearing(
                wait,
                Heard::Connect(a.version, a.identity, a.receipt),
            ));
            return Ok(Step::Calling);
        }
        self.connected(ctx, a.version, a.identity);
        Ok(Step::Done)
    }

    /// The CONNECT was accepted for this identity (and counted in `users`).
    fn connected(&mut self, ctx: &mut SessionCtx<'_>, version: Version, identity: Identity) {
        self.user = identity.user;
        self.version = Some(version);
        self.decoder.set_version(version);
        self.set_expiry(identity.exp);
        ctx.send(
            Frame::new("CONNECTED")
                .header("version", version.as_str())
                .header("heart-beat", "0,0")
                .header(
                    "server",
                    concat!("sockjs-gateway/", env!("CARGO_PKG_VERSION")),
                )
                .header("session", self.session.to_string())
                .encode(version),
        );
    }

    /// The backend answered the call for a frame.
    fn answered(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        pending: Pending,
        answer: Result<serde_json::Value, Failure>,
    ) {
        match pending {
            Pending::Connect { version, receipt } => {
                let user = match answer {
                    Ok(reply) => webhook::connect_user(&reply)
                        .map_err(|why| self.webhook_failed("connect", &why)),
                    Err(Failure::Refused(message)) => Err(refuse(
                        "Authentication refused",
                        message.unwrap_or_default(),
                    )),
                    Err(Failure::Failed(why)) => Err(self.webhook_failed("connect", &why)),
                    Err(Failure::Status(status, message)) => {
                        Err(self.webhook_status("connect", status, message))
                    }
                };
                let step = match user {
                    Ok(None) if !self.shared.auth.anonymous() => Err(refuse(
                        "Authentication refused",
                        "the backend named no user",
                    )),
                    Ok(user) => self.admit(
                        ctx,
                        Admission {
                            version,
                            identity: Identity { user, exp: None },
                            receipt: receipt.clone(),
                        },
                    ),
                    Err(r) => Err(r),
                };
                self.finish(ctx, step, receipt.as_deref());
            }
            Pending::App { receipt } => {
                let replies = match answer {
                    Ok(reply) => {
                        webhook::app_replies(&reply).map_err(|why| self.webhook_failed("app", &why))
                    }
                    Err(Failure::Refused(message)) => {
                        Err(refuse("SEND refused", message.unwrap_or_default()))
                    }
                    Err(Failure::Failed(why)) => Err(self.webhook_failed("app", &why)),
                    Err(Failure::Status(status, message)) => {
                        Err(self.webhook_status("app", status, message))
                    }
                };
                match replies {
                    Ok(replies) => {
                        for r in replies {
                            self.reply(ctx, &r);
                        }
                        self.receipt(ctx, receipt.as_deref());
                    }
                    Err(r) => self.error(ctx, r, receipt.as_deref()),
                }
            }
            Pending::Subscribe(s) => {
                let receipt = s.receipt.clone();
                let step = match self.subscribe_answer(answer) {
                    Ok((allow, message)) => {
                        if let (Some(cache), Some(user)) =
                            (&self.shared.subscribe_answers, &self.user)
                        {
                            cache.insert((user.clone(), s.destination.clone()), allow);
                        }
                        if allow {
                            self.subscribe_now(ctx, s)
                        } else {
                            Err(subscription_refused(&s.destination, message))
                        }
                    }
                    Err(r) => Err(Refusal {
                        detail: s.destination.clone(),
                        ..r
                    }),
                };
                self.finish(ctx, step, receipt.as_deref());
            }
        }
    }

    /// What the subscribe webhook answered: allowed or not (with its
    /// message), or a failure, which refuses too.
    fn subscribe_answer(
        &self,
        answer: Result<serde_json::Value, Failure>,
    ) -> Result<(bool, Option<String>), Refusal> {
        let counted = |a: SubscribeAnswer| self.shared.metrics.subscribe_webhook[a as usize].inc();
        let decided =
            match answer {
                Ok(reply) => match reply.get("allow") {
                    Some(serde_json::Value::Bool(allow)) => {
                        let message = reply.get("message").and_then(|m| m.as_str());
                        Ok((*allow, message.map(str::to_owned)))
                    }
                    _ => Err(self
                        .webhook_failed("subscribe", "the reply has no \"allow\": true or false")),
                },
                Err(Failure::Refused(message)) => Ok((false, message)),
                Err(Failure::Failed(why)) => Err(self.webhook_failed("subscribe", &why)),
                Err(Failure::Status(status, message)) => {
                    Err(self.webhook_status("subscribe", status, message))
                }
            };
        match &decided {
            Ok((true, _)) => counted(SubscribeAnswer::Allowed),
            Ok((false, _)) => counted(SubscribeAnswer::Refused),
            Err(_) => counted(SubscribeAnswer::Failed),
        };
        decided
    }

    /// Logs a failed webhook call (never its body) and says so to the client.
    fn webhook_failed(&self, which: &str, why: &str) -> Refusal {
        log::warn!("stomp session {}: {which} webhook: {why}", self.session);
        refuse(
            format!("The {which} webhook failed: {why}"),
            "try again later",
        )
    }

    /// A webhook that answered another status: the client gets the
    /// backend's own `message` when it gave one, as with a refusal.
    fn webhook_status(&self, which: &str, status: u16, message: Option<String>) -> Refusal {
        let refusal = self.webhook_failed(which, &format!("status {status}"));
        match message {
            Some(detail) => Refusal { detail, ..refusal },
            None => refusal,
        }
    }

    /// A message from the app webhook's reply, to this session's own
    /// subscriptions to its destination.
    fn reply(&self, ctx: &mut SessionCtx<'_>, r: &webhook::Reply) {
        self.to_own(ctx, &r.destination, &r.headers, &r.body);
    }

    /// A MESSAGE to this session's own subscriptions to `destination` only
    /// (not through the topics: other sessions never get it).
    fn to_own(
        &self,
        ctx: &mut SessionCtx<'_>,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) {
        let version = self.version();
        for (id, (_, subscribed)) in &self.subscriptions {
            if subscribed == destination {
                let mut text = message_head(id, self.shared.topics.next_message_id(), version);
                text.push_str(&message_tail(headers, destination, body, version));
                ctx.send(text);
            }
        }
    }

    fn subscribe(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<Step, Refusal> {
        let destination = destination(&self.shared, f)?;
        // 1.0 makes the id optional; the destination then names it.
        let id = match (f.get("id"), self.version()) {
            (Some(id), _) => id,
            (None, Version::V1_0) => destination,
            (None, _) => return Err(refuse("Missing header id", "SUBSCRIBE needs an id")),
        };
        // The gateway's own queue is every signed-in session's to read.
        let own_queue = destination == GATEWAY_QUEUE && self.user.is_some();
        if !own_queue && !any_matches(&self.shared.subscribe, destination) {
            return Err(refuse(
                "Forbidden subscription",
                format!("{destination} is not in the service's subscribe list"),
            ));
        }
        if self.subscriptions.contains_key(id) {
            return Err(refuse("Duplicate subscription id", id.to_owned()));
        }
        if self.subscriptions.len() >= self.shared.max_subscriptions {
            return Err(refuse(
                "Too many subscriptions",
                format!(
                    "at most {} per session (max_subscriptions)",
                    self.shared.max_subscriptions
                ),
            ));
        }
        let bytes = id.len() + destination.len();
        if self.subscription_bytes + bytes > self.shared.max_subscription_bytes {
            return Err(refuse(
                "Too many subscriptions",
                format!(
                    "at most {} bytes of subscription ids and destinations per session (max_subscription_bytes)",
                    self.shared.max_subscription_bytes
                ),
            ));
        }
        let key = match (destination.starts_with("/user/"), &self.user) {
            (false, _) => destination.to_owned(),
            (true, Some(user)) => user_key(user, destination),
            (true, None) => {
                return Err(refuse(
                    "User destinations need a signed-in user",
                    format!("{destination}: this session is anonymous"),
                ))
            }
        };
        let retention = match own_queue {
            true => None,
            false => self.shared.retention(destination),
        };
        let asked = match retention {
            Some(_) => recovery::asked(f).map_err(|why| refuse("Invalid recovery headers", why))?,
            None => None,
        };
        let s = NewSubscription {
            key,
            id: id.to_owned(),
            destination: destination.to_owned(),
            retention,
            asked,
            receipt: f.get("receipt").map(str::to_owned),
        };
        let Some(url) = self
            .shared
            .subscribe_webhook_for(destination)
            .filter(|_| !own_queue)
        else {
            return self.subscribe_now(ctx, s);
        };
        let cached = match (&self.shared.subscribe_answers, &self.user) {
            (Some(cache), Some(user)) => cache.get(&(user.clone(), s.destination.clone())),
            _ => None,
        };
        match cached {
            Some(allow) => {
                self.shared.metrics.subscribe_webhook[SubscribeAnswer::Cached as usize].inc();
                if allow {
                    self.subscribe_now(ctx, s)
                } else {
                    Err(subscription_refused(&s.destination, None))
                }
            }
            None => {
                let body = webhook::subscribe_request(
                    self.session,
                    self.user.as_deref(),
                    destination,
                    &f.headers,
                );
                let hooks = self
                    .shared
                    .webhooks
                    .as_ref()
                    .expect("a client with any webhook");
                let call = hooks.call(url, body);
                self.call = Some(Call::Webhook(call, Pending::Subscribe(s)));
                Ok(Step::Calling)
            }
        }
    }

    /// Registers a SUBSCRIBE that every check allowed. One to a
    /// destination with history is told where it starts (the position this
    /// node knows, or a mark), with no read of history; one that asks to
    /// recover then reads it (the receipt comes after).
    fn subscribe_now(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        s: NewSubscription,
    ) -> Result<Step, Refusal> {
        let NewSubscription {
            key,
            id,
            destination,
            retention,
            asked,
            receipt,
        } = s;
        // Taken before the subscription is made: at or before its moment.
        let mark = retention.map(|_| self.shared.history.mark());
        let top = self.shared.topics.subscribe(
            &key,
            (self.session, &id),
            self.version(),
            &ctx.handle(),
            retention.is_some() && asked.is_some(),
            mark.as_ref(),
        );
        self.subscription_bytes += id.len() + destination.len();
        let own_queue = destination == GATEWAY_QUEUE;
        self.subscriptions
            .insert(id.clone(), (key.clone(), destination));
        if own_queue && self.expiry.as_ref().is_some_and(|e| e.notice_due()) {
            self.notify_expiry(ctx);
        }
        let registered = Registered {
            key,
            id,
            retention,
            asked,
            receipt,
            top,
            mark,
        };
        if let Some(wait) = self
            .shared
            .bus
            .hearing(&self.shared.stream(&registered.key))
        {
            self.call = Some(Call::Hearing(wait, Heard::Subscribe(registered)));
            return Ok(Step::Calling);
        }
        self.subscribe_then(ctx, registered)
    }

    /// A subscription is made (and heard here): its receipt, or the read
    /// of history it asked for.
    fn subscribe_then(&mut self, ctx: &mut SessionCtx<'_>, r: Registered) -> Result<Step, Refusal> {
        let Registered {
            key,
            id,
            retention,
            asked,
            receipt,
            top,
            mark,
        } = r;
        let (Some(retention), Some(mark)) = (retention, mark) else {
            return Ok(Step::Done);
        };
        let Some(asked) = asked else {
            if let Some(receipt) = receipt {
                self.subscribed_receipt(ctx, receipt, None, &top.unwrap_or(mark));
            }
            return Ok(Step::Answered);
        };
        // Live publications wait in the subscription while history is read.
        let since = match Mark::parse(&asked.epoch) {
            Some(m) => Since::Mark(m.at),
            None => Since::Offset(asked.offset),
        };
        let read = self.shared.history.read(
            &self.shared.stream(&key),
            retention,
            since,
            Some(&asked.epoch),
            self.shared.max_recovered,
        );
        let subscribing = Subscribing {
            key,
            id,
            asked,
            receipt,
            ttl: retention.ttl,
            mark,
        };
        self.call = Some(Call::History(read, subscribing));
        Ok(Step::Calling)
    }

    /// A recovering SUBSCRIBE's read of history is in: the recovered
    /// publications, the receipt with the outcome and where the
    /// subscription stands, then what arrived live meanwhile.
    fn subscribed(&mut self, ctx: &mut SessionCtx<'_>, s: Subscribing, read: Result<Read, String>) {
        let (read, error) = match read {
            Ok(read) => (Some(read), None),
            Err(why) => {
                log::warn!(
                    "stomp session {}: could not read history of {}: {why}",
                    self.session,
                    super::topics::shown_key(&s.key)
                );
                (None, Some(format!("history could not be read: {why}")))
            }
        };
        let recovery = self.shared.topics.recovered(
            &s.key,
            (self.session, &s.id),
            read.as_ref(),
            (s.asked.offset, &s.asked.epoch),
            s.ttl,
            &s.mark,
        );
        for m in recovery.messages {
            ctx.send(m);
        }
        if let Some(receipt) = s.receipt {
            let recovered = Some((recovery.recovered, error.as_deref()));
            self.subscribed_receipt(ctx, receipt, recovered, &recovery.position);
        }
    }

    /// The RECEIPT of a SUBSCRIBE to a destination with history: where the
    /// subscription starts, and whether it recovered, when it asked to
    /// (and why not, when history could not be read).
    fn subscribed_receipt(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        receipt: String,
        recovered: Option<(bool, Option<&str>)>,
        position: &Position,
    ) {
        let mut frame = Frame::new("RECEIPT").header("receipt-id", receipt);
        if let Some((recovered, error)) = recovered {
            frame = frame.header("x-recovered", if recovered { "true" } else { "false" });
            if let Some(error) = error {
                frame = frame.header("x-recover-error", error);
            }
        }
        frame = frame
            .header("x-stream-offset", position.offset.to_string())
            .header("x-stream-epoch", position.epoch.to_string());
        ctx.send(frame.encode(self.version()));
    }

    fn send(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<Step, Refusal> {
        let destination = destination(&self.shared, f)?;
        if destination == TOKEN_DESTINATION {
            return self.refresh(ctx, f);
        }
        if !any_matches(&self.shared.send, destination) {
            return Err(refuse(
                "Forbidden destination",
                format!("{destination} is not in the service's send list"),
            ));
        }
        if destination == "/app" || destination.starts_with("/app/") {
            let (Some(url), Some(hooks)) = (&self.shared.app_webhook, &self.shared.webhooks) else {
                return Err(refuse(
                    "No app webhook",
                    format!("{destination}: this service has no app_webhook"),
                ));
            };
            let body = webhook::app_request(
                self.session,
                self.user.as_deref(),
                destination,
                &f.headers,
                &f.body,
            );
            let receipt = f.get("receipt").map(str::to_owned);
            let call = hooks.call(url, body);
            self.call = Some(Call::Webhook(call, Pending::App { receipt }));
            return Ok(Step::Calling);
        }
        let headers: Vec<(String, String)> = f
            .get("content-type")
            .filter(|v| !v.contains(['\n', '\r', ':', '\\']))
            .map(|v| vec![("content-type".to_owned(), v.to_owned())])
            .unwrap_or_default();
        if destination.starts_with("/topic/") {
            self.shared
                .publish(destination, destination, &headers, &f.body, Via::Send, None);
            return Ok(Step::Done);
        }
        // `/user/{name}/queue/x` reaches every session of user `name`
        // subscribed to `/user/queue/x`, as in Spring.
        if let Some((user, shown)) = addressed_user(destination) {
            if shown == GATEWAY_QUEUE {
                return Err(refuse(
                    "Reserved destination",
                    format!("{destination}: only the gateway sends to {GATEWAY_QUEUE}"),
                ));
            }
            self.shared.publish(
                &user_key(user, &shown),
                &shown,
                &headers,
                &f.body,
                Via::Send,
                None,
            );
            return Ok(Step::Done);
        }
        Err(refuse(
            "Unsupported destination",
            format!("{destination}: clients send to /topic/... or /user/NAME/... here"),
        ))
    }
}

impl StompSession {
    /// A SEND to [`TOKEN_DESTINATION`]: a new token for the same user,
    /// checked as at CONNECT, from which the session's expiry now counts.
    fn refresh(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<Step, Refusal> {
        let Some(token) = token_of(f) else {
            return Err(refuse(
                "Missing token",
                format!(
                    "a SEND to {TOKEN_DESTINATION} carries Authorization: Bearer TOKEN or passcode"
                ),
            ));
        };
        let identity = self
            .shared
            .auth
            .verify(token)
            .map_err(|why| refuse(why, "the new token was refused"))?;
        if identity.user.is_none() || identity.user != self.user {
            return Err(refuse(
                "Token refused",
                "the new token must name the session's own user (sub)",
            ));
        }
        self.unexpired(&identity, "the new token has expired already")?;
        self.shared.metrics.tokens[TokenEvent::Refreshed as usize].inc();
        self.set_expiry(identity.exp);
        if self.expiry.as_ref().is_some_and(|e| e.notice_due()) {
            self.notify_expiry(ctx);
        }
        Ok(Step::Done)
    }

    /// With `expire_sessions`, a token whose `exp` has passed (the verifier
    /// allows some leeway) starts or renews no session.
    fn unexpired(&self, identity: &Identity, detail: &str) -> Result<(), Refusal> {
        match self.shared.expire_sessions && identity.exp.is_some_and(expiry::passed) {
            true => Err(token_expired(detail)),
            false => Ok(()),
        }
    }

    /// Counts the session's life to `exp`, with `expire_sessions`.
    fn set_expiry(&mut self, exp: Option<u64>) {
        self.expiry = match (self.shared.expire_sessions, exp) {
            (true, Some(exp)) => Some(Expiry::new(exp, self.shared.token_refresh_notice)),
            _ => None,
        };
    }

    /// Tells the session's subscriptions to [`GATEWAY_QUEUE`] when its
    /// token expires (`x-token-expires-in`, seconds).
    fn notify_expiry(&self, ctx: &mut SessionCtx<'_>) {
        let Some(e) = &self.expiry else { return };
        let left = e.seconds_left();
        let headers = [
            ("x-token-expires-in".to_owned(), left.to_string()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let body = format!(r#"{{"token_expires_in":{left}}}"#);
        self.to_own(ctx, GATEWAY_QUEUE, &headers, &body);
    }

    /// The expiry's clock: the notice when due, then the end.
    fn poll_expiry(&mut self, ctx: &mut SessionCtx<'_>, cx: &mut std::task::Context<'_>) {
        while let Some(e) = self.expiry.as_mut() {
            match e.poll(cx) {
                Poll::Pending => return,
                Poll::Ready(expiry::Due::Notice) => self.notify_expiry(ctx),
                Poll::Ready(expiry::Due::End) => {
                    self.shared.metrics.tokens[TokenEvent::Expired as usize].inc();
                    return self.error(
                        ctx,
                        token_expired("sign in again with a fresh token"),
                        None,
                    );
                }
            }
        }
    }
}

/// The ERROR `Token expired`, and its close code.
fn token_expired(detail: &str) -> Refusal {
    refuse("Token expired", detail).closing(CLOSE_TOKEN_EXPIRED)
}

/// The ERROR for a SUBSCRIBE the subscribe webhook refused.
fn subscription_refused(destination: &str, message: Option<String>) -> Refusal {
    refuse(
        format!("Subscription to {destination} refused"),
        message.unwrap_or_else(|| "refused by the subscribe webhook".into()),
    )
}

/// The token a frame carries (CONNECT, or a SEND to [`TOKEN_DESTINATION`]):
/// `Authorization: Bearer`, else `passcode`.
fn token_of(f: &Frame) -> Option<&str> {
    let authorization = f.get("Authorization").or_else(|| f.get("authorization"));
    auth::token(authorization, f.get("passcode"))
}

fn required<'f>(f: &'f Frame, name: &str) -> Result<&'f str, Refusal> {
    f.get(name).ok_or_else(|| {
        refuse(
            format!("Missing header {name}"),
            format!("{} needs {name}", f.command),
        )
    })
}

/// A frame's destination, which must be a plain path (it is copied into
/// MESSAGE frames for every subscriber unescaped) within
/// `max_destination_bytes`.
fn destination<'f>(shared: &Shared, f: &'f Frame) -> Result<&'f str, Refusal> {
    let d = required(f, "destination")?;
    shared.check_destination(d).map_err(|r| {
        refuse(
            "Invalid destination",
            format!("{:?}: {}", truncate(d, 64), r.why),
        )
    })?;
    Ok(d)
}

impl Handler for StompSession {
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        if self.done {
            return;
        }
        let items = match self.decoder.feed(&message) {
            Ok(items) => items,
            Err(e) => return self.error(ctx, refuse(e.0, "malformed frame"), None),
        };
        self.waiting
            .extend(items.into_iter().filter_map(|item| match item {
                Item::Frame(f) => Some(f),
                _ => None,
            }));
        if self.waiting.len() > self.shared.max_pending_frames {
            return self.error(
                ctx,
                refuse(
                    "Too many frames waiting",
                    format!(
                        "at most {} frames wait for a webhook's answer (max_pending_frames)",
                        self.shared.max_pending_frames
                    ),
                ),
                None,
            );
        }
        self.run(ctx);
    }

    fn poll(&mut self, ctx: &mut SessionCtx<'_>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // Each answer may let the next waiting frame start another call.
        loop {
            match self.call.take() {
                Some(Call::Webhook(mut call, pending)) => match call.as_mut().poll(cx) {
                    Poll::Ready(answer) => self.answered(ctx, pending, answer),
                    Poll::Pending => {
                        self.call = Some(Call::Webhook(call, pending));
                        break;
                    }
                },
                Some(Call::History(mut read, subscribing)) => match read.as_mut().poll(cx) {
                    Poll::Ready(read) => self.subscribed(ctx, subscribing, read),
                    Poll::Pending => {
                        self.call = Some(Call::History(read, subscribing));
                        break;
                    }
                },
                Some(Call::UserCount(mut count, a)) => match count.as_mut().poll(cx) {
                    Poll::Ready(elsewhere) => {
                        let receipt = a.receipt.clone();
                        let step = self.admitted(ctx, a, elsewhere);
                        self.finish(ctx, step, receipt.as_deref());
                    }
                    Poll::Pending => {
                        self.call = Some(Call::UserCount(count, a));
                        break;
                    }
                },
                Some(Call::Hearing(mut wait, heard)) => match wait.as_mut().poll(cx) {
                    Poll::Ready(()) => match heard {
                        Heard::Connect(version, identity, receipt) => {
                            self.connected(ctx, version, identity);
                            self.finish(ctx, Ok(Step::Done), receipt.as_deref());
                        }
                        Heard::Subscribe(r) => {
                            let receipt = r.receipt.clone();
                            let step = self.subscribe_then(ctx, r);
                            self.finish(ctx, step, receipt.as_deref());
                        }
                    },
                    Poll::Pending => {
                        self.call = Some(Call::Hearing(wait, heard));
                        break;
                    }
                },
                None => break,
            }
            self.run(ctx);
        }
        if !self.done {
            self.poll_expiry(ctx, cx);
        }
        // More calls may come with later frames.
        Poll::Pending
    }

    /// Every frame counts: a frame ends with NUL, so a message costs its
    /// NULs (a body with NULs of its own counts them too), and at least 1
    /// (a piece of a frame, or bare line ends).
    fn rate_cost(&self, message: &str) -> u32 {
        let frames = message.bytes().filter(|&b| b == 0).count();
        frames.clamp(1, u32::MAX as usize) as u32
    }

    fn on_rate_limited(&mut self, ctx: &mut SessionCtx<'_>) {
        if self.done {
            return;
        }
        let r = refuse(
            "Too many messages",
            format!(
                "at most {} STOMP frames per second (max_messages_per_second)",
                self.shared.max_messages_per_second
            ),
        );
        self.error(ctx, r.closing(CLOSE_TOO_MANY), None);
    }

    fn on_close(&mut self, _info: &SessionInfo, _reason: &CloseReason) {
        for (id, (key, _)) in self.subscriptions.drain() {
            self.shared.topics.unsubscribe(&key, self.session, &id);
        }
        if let (Some(user), Some(_)) = (&self.user, self.version) {
            self.shared.users.remove(user, self.session);
        }
    }
}
