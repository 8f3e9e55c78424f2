//! One STOMP session over one SockJS session: CONNECT, subscriptions,
//! SEND to topics, receipts, errors, DISCONNECT.
//!
//! Heart-beats: CONNECTED always says `heart-beat:0,0`. SockJS already
//! keeps the connection alive and finds dead peers (its `h` frames, and
//! WebSocket pings), on every transport; STOMP heart-beats on top would be
//! a second clock that sockjs-client's transports can delay (a poll in
//! flight, a stream rolling over), and a client that expects them and
//! misses them closes a healthy session. With `0,0` the client sends none
//! and expects none. A client's bare line ends are still accepted.

use super::destination::any_matches;
use super::frame::{Decoder, Frame, Item, Version};
use super::topics::user_key;
use super::Shared;
use crate::service::api::{CloseReason, Handler, SessionCtx, SessionInfo};
use std::collections::HashMap;
use std::sync::Arc;

/// The close code after an ERROR frame: the STOMP session is over, and
/// the client should not fall back to another transport for it.
pub const CLOSE_AFTER_ERROR: u16 = 4400;

pub struct StompSession {
    shared: Arc<Shared>,
    decoder: Decoder,
    /// Set by CONNECT.
    version: Option<Version>,
    /// Subscription id -> subscription key (see `topics`).
    subscriptions: HashMap<String, String>,
    /// Named at CONNECT; `None` for an anonymous session.
    user: Option<String>,
    session: u64,
    /// An ERROR or DISCONNECT ended it: ignore what follows.
    done: bool,
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
            user: None,
            session: info.id,
            done: false,
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
    }

    fn frame(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<(), Refusal> {
        if self.version.is_none() && !matches!(f.command.as_str(), "CONNECT" | "STOMP") {
            return Err(refuse(
                "Expected CONNECT",
                format!("{} came before CONNECT", f.command),
            ));
        }
        match f.command.as_str() {
            "CONNECT" | "STOMP" => self.connect(ctx, f)?,
            "SUBSCRIBE" => self.subscribe(ctx, f)?,
            "UNSUBSCRIBE" => {
                let id = required(f, "id")?;
                match self.subscriptions.remove(id) {
                    Some(key) => self.shared.topics.unsubscribe(&key, self.session, id),
                    None => return Err(refuse("Unknown subscription", format!("id {id:?}"))),
                }
            }
            "SEND" => self.send(f)?,
            // Every MESSAGE is acknowledged as it is sent (auto).
            "ACK" | "NACK" | "BEGIN" | "COMMIT" | "ABORT" => {}
            "DISCONNECT" => {
                self.receipt(ctx, f);
                ctx.close(1000, "DISCONNECT");
                self.done = true;
                return Ok(());
            }
            other => return Err(refuse("Unexpected frame", other.to_owned())),
        }
        self.receipt(ctx, f);
        Ok(())
    }

    fn receipt(&self, ctx: &mut SessionCtx<'_>, f: &Frame) {
        if let Some(id) = f.get("receipt") {
            ctx.send(
                Frame::new("RECEIPT")
                    .header("receipt-id", id)
                    .encode(self.version()),
            );
        }
    }

    fn connect(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<(), Refusal> {
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
        self.user = self
            .shared
            .auth
            .user(authorization, f.get("passcode"))
            .map_err(|why| refuse(why, "CONNECT was refused"))?;
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
        Ok(())
    }

    fn subscribe(&mut self, ctx: &mut SessionCtx<'_>, f: &Frame) -> Result<(), Refusal> {
        let destination = destination(f)?;
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
        self.shared
            .topics
            .subscribe(&key, self.session, id, self.version(), &ctx.handle());
        self.subscriptions.insert(id.to_owned(), key);
        Ok(())
    }

    fn send(&mut self, f: &Frame) -> Result<(), Refusal> {
        let destination = destination(f)?;
        if !any_matches(&self.shared.send, destination) {
            return Err(refuse(
                "Forbidden destination",
                format!("{destination} is not in the service's send list"),
            ));
        }
        let headers: Vec<(String, String)> = f
            .get("content-type")
            .filter(|v| !v.contains(['\n', '\r', ':', '\\']))
            .map(|v| vec![("content-type".to_owned(), v.to_owned())])
            .unwrap_or_default();
        if destination.starts_with("/topic/") {
            self.shared
                .topics
                .publish(destination, destination, &headers, &f.body);
            return Ok(());
        }
        // `/user/{name}/queue/x` reaches every session of user `name`
        // subscribed to `/user/queue/x`, as in Spring.
        if let Some((user, rest)) = destination
            .strip_prefix("/user/")
            .and_then(|r| r.split_once('/'))
        {
            let shown = format!("/user/{rest}");
            self.shared
                .topics
                .publish(&user_key(user, &shown), &shown, &headers, &f.body);
            return Ok(());
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

/// A frame's destination, which must be a plain path: it is copied into
/// MESSAGE frames for every subscriber unescaped.
fn destination(f: &Frame) -> Result<&str, Refusal> {
    let d = required(f, "destination")?;
    if !d.starts_with('/') || d.contains(['\n', '\r', ':', '\\']) {
        return Err(refuse("Invalid destination", format!("{d:?}")));
    }
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
        for item in items {
            let Item::Frame(f) = item else { continue };
            if let Err(r) = self.frame(ctx, &f) {
                return self.error(ctx, r, f.get("receipt"));
            }
            if self.done {
                return;
            }
        }
    }

    fn on_close(&mut self, _info: &SessionInfo, _reason: &CloseReason) {
        for (id, key) in self.subscriptions.drain() {
            self.shared.topics.unsubscribe(&key, self.session, &id);
        }
        if let (Some(user), Some(_)) = (&self.user, self.version) {
            self.shared.users.remove(user, self.session);
        }
    }
}
