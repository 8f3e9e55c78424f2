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

use super::destination::any_matches;
use super::frame::{truncate, Decoder, Frame, Item, Version};
use super::recovery::{self, Asked};
use super::topics::{addressed_user, message_head, message_tail, user_key};
use super::webhook::{self, Failure};
use super::{auth, Shared, Via};
use crate::cluster::history::Read;
use crate::service::api::{CloseReason, Handler, SessionCtx, SessionInfo};
use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Poll;

/// The close code after an ERROR frame: the STOMP session is over, and
/// the client should not fall back to another transport for it.
pub const CLOSE_AFTER_ERROR: u16 = 4400;

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
}

/// A SUBSCRIBE to a destination with history, waiting for its read.
struct Subscribing {
    key: String,
    id: String,
    asked: Option<Asked>,
    receipt: Option<String>,
}

/// A call under way, and the frame waiting for it.
enum Call {
    Webhook(webhook::Call, Pending),
    History(BoxFuture<'static, Result<Read, String>>, Subscribing),
}

/// What became of a frame.
enum Step {
    /// Handled; its receipt, if it asked for one, goes out now.
    Done,
    /// Waiting for a webhook; the receipt goes out with the answer.
    Calling,
    /// It ended the session (DISCONNECT), receipt first.
    Ended,
}

/// A frame the session refuses: the ERROR's `message`, and details.
struct Refusal {
    message: String,
    detail: String,
}

fn refuse(message: impl Into<String>, detail: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        detail: detail.into(),
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
        ctx.close(CLOSE_AFTER_ERROR, "STOMP error");
        self.done = true;
        self.waiting.clear();
        self.call = None;
    }

    /// Handles the frames that wait, in order, until one calls a webhook.
    fn run(&mut self, ctx: &mut SessionCtx<'_>) {
        while self.call.is_none() && !self.done {
            let Some(f) = self.waiting.pop_front() else {
                break;
            };
            match self.frame(ctx, &f) {
                Ok(Step::Done) => self.receipt(ctx, f.get("receipt")),
                Ok(Step::Calling | Step::Ended) => {}
                Err(r) => self.error(ctx, r, f.get("receipt")),
            }
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
            "SEND" => return self.send(f),
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
        let authorization = f.get("Authorization").or_else(|| f.get("authorization"));
        let token = auth::token(authorization, f.get("passcode"));
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
        let user = self
            .shared
            .auth
            .user(authorization, f.get("passcode"))
            .map_err(|why| refuse(why, "CONNECT was refused"))?;
        self.connected(ctx, version, user);
        Ok(Step::Done)
    }

    /// The CONNECT was accepted for `user`.
    fn connected(&mut self, ctx: &mut SessionCtx<'_>, version: Version, user: Option<String>) {
        self.user = user;
        self.version = Some(version);
        self.decoder.set_version(version);
        if let Some(user) = &self.user {
            self.shared
                .users
                .add(user, self.session, version, ctx.handle());
        }
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
                };
                match user {
                    Ok(None) if !self.shared.auth.anonymous() => self.error(
                        ctx,
                        refuse("Authentication refused", "the backend named no user"),
                        receipt.as_deref(),
                    ),
                    Ok(user) => {
                        self.connected(ctx, version, user);
                        self.receipt(ctx, receipt.as_deref());
                    }
                    Err(r) => self.error(ctx, r, receipt.as_deref()),
                }
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
        }
    }

    /// Logs a failed webhook call (never its body) and says so to the client.
    fn webhook_failed(&self, which: &str, why: &str) -> Refusal {
        log::warn!("stomp session {}: {which} webhook: {why}", self.session);
        refuse(
            format!("The {which} webhook failed: {why}"),
            "try again later",
        )
    }

    /// A message from the app webhook's reply, to this session's own
    /// subscriptions to its destination.
    fn reply(&self, ctx: &mut SessionCtx<'_>, r: &webhook::Reply) {
        let version = self.version();
        for (id, (_, destination)) in &self.subscriptions {
            if *destination != r.destination {
                continue;
            }
            let mut text = message_head(id, self.shared.topics.next_message_id(), version);
            text.push_str(&message_tail(&r.headers, destination, &r.body, version));
            ctx.send(text);
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
        if !any_matches(&self.shared.subscribe, destination) {
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
        let retention = self.shared.retention(destination);
        let asked = match retention {
            Some(_) => recovery::asked(f).map_err(|why| refuse("Invalid recovery headers", why))?,
            None => None,
        };
        self.shared.topics.subscribe(
            &key,
            self.session,
            id,
            self.version(),
            &ctx.handle(),
            retention.is_some(),
        );
        self.subscriptions
            .insert(id.to_owned(), (key.clone(), destination.to_owned()));
        self.subscription_bytes += bytes;
        let Some(retention) = retention else {
            return Ok(Step::Done);
        };
        // Live publications wait in the subscription while history is read.
        let (after, limit) = match &asked {
            Some(a) => (a.offset, self.shared.max_recovered),
            None => (0, 0),
        };
        let read = self
            .shared
            .history
            .read(&self.shared.stream(&key), retention, after, limit);
        let subscribing = Subscribing {
            key,
            id: id.to_owned(),
            asked,
            receipt: f.get("receipt").map(str::to_owned),
        };
        self.call = Some(Call::History(read, subscribing));
        Ok(Step::Calling)
    }

    /// A SUBSCRIBE's read of history is in: the recovered publications,
    /// the receipt with the outcome and the stream's position, then what
    /// arrived live meanwhile.
    fn subscribed(&mut self, ctx: &mut SessionCtx<'_>, s: Subscribing, read: Result<Read, String>) {
        let Subscribing {
            key,
            id,
            asked,
            receipt,
        } = s;
        let read = read
            .map_err(|why| {
                log::warn!(
                    "stomp session {}: could not read history of {}: {why}",
                    self.session,
                    super::topics::shown_key(&key)
                )
            })
            .ok();
        let recovery = self.shared.topics.recovered(
            &key,
            self.session,
            &id,
            read.as_ref(),
            asked.as_ref().map(|a| (a.offset, a.epoch.as_str())),
        );
        for m in recovery.messages {
            ctx.send(m);
        }
        if let Some(receipt) = receipt {
            let mut frame = Frame::new("RECEIPT").header("receipt-id", receipt);
            if let Some(recovered) = recovery.recovered {
                frame = frame.header("x-recovered", if recovered { "true" } else { "false" });
            }
            if let Some(read) = &read {
                frame = frame
                    .header("x-stream-offset", read.position.offset.to_string())
                    .header("x-stream-epoch", read.position.epoch.to_string());
            }
            ctx.send(frame.encode(self.version()));
        }
    }

    fn send(&mut self, f: &Frame) -> Result<Step, Refusal> {
        let destination = destination(&self.shared, f)?;
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
                .publish(destination, destination, &headers, &f.body, Via::Send);
            return Ok(Step::Done);
        }
        // `/user/{name}/queue/x` reaches every session of user `name`
        // subscribed to `/user/queue/x`, as in Spring.
        if let Some((user, shown)) = addressed_user(destination) {
            self.shared.publish(
                &user_key(user, &shown),
                &shown,
                &headers,
                &f.body,
                Via::Send,
            );
            return Ok(Step::Done);
        }
        Err(refuse(
            "Unsupported destination",
            format!("{destination}: clients send to /topic/... or /user/NAME/... here"),
        ))
    }
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
                None => break,
            }
            self.run(ctx);
        }
        // More calls may come with later frames.
        Poll::Pending
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
