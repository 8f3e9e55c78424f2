//! The `stomp` service kind: STOMP 1.0-1.2 over every SockJS transport.
//! The frame codec ([`frame`]), destination patterns ([`destination`]),
//! subscriptions and their fan-out ([`topics`]), each user's sessions
//! ([`users`]), the per-session protocol ([`session`]): CONNECT,
//! SUBSCRIBE and UNSUBSCRIBE, SEND to `/topic/...` and to a user's
//! `/user/{name}/queue/...`, receipts, ERROR, DISCONNECT; who the user is
//! ([`auth`]: a JWT in CONNECT); what a client recovers on SUBSCRIBE
//! ([`recovery`]) from the destinations that keep history. What the backend does from outside a
//! session (publish, reach a user, end a user's sessions) is on
//! [`StompService`], which the HTTP API calls.

pub mod auth;
pub mod demo_login;
pub mod destination;
pub mod expiry;
pub mod frame;
pub mod recovery;
pub mod session;
pub mod topics;
pub mod users;
pub mod webhook;

use crate::cluster::history::{History, Position, Read, Retention, Since};
use crate::cluster::presence::{self, Counted, Counts};
use crate::cluster::{
    event, Answers, Asks, Bus, Cluster, Delivery, Event, Failed, Keep, Once, State,
};
use crate::config::{AuthConfig, ServiceConfig};
use crate::metrics::ServiceMetrics;
use crate::service::api::{Handler, Service, SessionInfo};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// A `stomp` service: its rules and subscriptions, shared by its sessions.
pub struct StompService {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// The service's name, as the nodes of a cluster name it.
    pub(crate) service: String,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) subscribe: Vec<String>,
    pub(crate) send: Vec<String>,
    pub(crate) limits: frame::Limits,
    pub(crate) max_subscriptions: usize,
    pub(crate) max_destination_bytes: usize,
    pub(crate) max_subscription_bytes: usize,
    pub(crate) topics: topics::Topics,
    pub(crate) users: users::Users,
    pub(crate) auth: auth::Verifier,
    pub(crate) connect_webhook: Option<String>,
    pub(crate) app_webhook: Option<String>,
    /// Set when either webhook is.
    pub(crate) webhooks: Option<webhook::Webhooks>,
    pub(crate) max_pending_frames: usize,
    /// Asked about SUBSCRIBEs to `subscribe_webhook_destinations`.
    pub(crate) subscribe_webhook: Option<String>,
    pub(crate) subscribe_webhook_destinations: Vec<String>,
    /// Its answers by user and destination, for `subscribe_webhook_cache`.
    pub(crate) subscribe_answers: Option<moka::sync::Cache<(String, String), bool>>,
    /// `[auth] expire_sessions` and `token_refresh_notice`.
    pub(crate) expire_sessions: bool,
    pub(crate) token_refresh_notice: u64,
    pub(crate) max_sessions_per_user: usize,
    pub(crate) max_messages_per_second: u32,
    pub(crate) metrics: ServiceMetrics,
    /// Where publications are kept, and which destinations keep them.
    pub(crate) history: Arc<dyn History>,
    pub(crate) kept: Vec<(Vec<String>, Retention)>,
    pub(crate) max_recovered: usize,
    /// How long an API publication's `idempotency_key` is remembered.
    pub(crate) idempotency_window: std::time::Duration,
    /// The keys claimed, on a single node (a cluster claims them in
    /// Redis), by destination and key: the first publication's position.
    pub(crate) claims: Option<moka::sync::Cache<(String, String), Option<Position>>>,
}

/// What an event (a publication, a user's disconnection or count) reaches:
/// here, at once; its position when this process keeps it; and what Redis
/// and the other nodes answer, when it went through them.
pub struct Reach {
    pub here: usize,
    pub position: Option<Position>,
    /// An earlier publication claimed its idempotency key: nothing was
    /// published (`position` is the earlier one's).
    pub duplicate: bool,
    pub answers: Option<BoxFuture<'static, Answers>>,
}

impl Reach {
    fn here(here: usize, position: Option<Position>) -> Reach {
        Reach {
            here,
            position,
            duplicate: false,
            answers: None,
        }
    }

    /// An earlier publication claimed its idempotency key (at `position`,
    /// where history keeps it): nothing was published, nobody reached.
    fn duplicate(position: Option<Position>) -> Reach {
        Reach {
            duplicate: true,
            ..Reach::here(0, position)
        }
    }

    /// What Redis and the other nodes will answer; `here` counted now.
    fn later(here: usize, answers: BoxFuture<'static, Answers>) -> Reach {
        Reach {
            here,
            position: None,
            duplicate: false,
            answers: Some(answers),
        }
    }

    /// Not published: `why`, certainly (the bus could not take it).
    fn refused(why: &str) -> Reach {
        Reach::later(
            0,
            Box::pin(std::future::ready(Answers {
                published: Some(Err(Failed::not(why))),
                elsewhere: None,
            })),
        )
    }
}

impl StompService {
    /// Service `name`, or why its configuration cannot run, naming the key:
    /// a destination pattern it cannot match by, or a JWT key it cannot read.
    pub fn new(
        name: &str,
        config: &ServiceConfig,
        auth_config: &AuthConfig,
        cluster: &Cluster,
    ) -> Result<StompService, String> {
        for (k, list) in [("subscribe", &config.subscribe), ("send", &config.send)] {
            for (i, p) in list.iter().enumerate() {
                destination::check(p).map_err(|e| format!("services.{name}.{k}[{i}]: {e}"))?;
            }
        }
        for (i, h) in config.history.iter().enumerate() {
            for (j, p) in h.destinations.iter().enumerate() {
                destination::check(p)
                    .map_err(|e| format!("services.{name}.history[{i}].destinations[{j}]: {e}"))?;
            }
        }
        for (i, p) in config.subscribe_webhook_destinations.iter().enumerate() {
            destination::check(p)
                .map_err(|e| format!("services.{name}.subscribe_webhook_destinations[{i}]: {e}"))?;
        }
        let auth = auth::Verifier::new(auth_config)?;
        let any_webhook = auth_config.connect_webhook.is_some()
            || config.app_webhook.is_some()
            || config.subscribe_webhook.is_some();
        let cache = config.subscribe_webhook_cache();
        Ok(StompService {
            shared: Arc::new(Shared {
                service: name.to_owned(),
                bus: cluster.bus.clone(),
                subscribe: config.subscribe.clone(),
                send: config.send.clone(),
                limits: frame::Limits {
                    max_frame_bytes: config.max_frame_bytes,
                    max_headers: config.max_headers,
                },
                max_subscriptions: config.max_subscriptions,
                max_destination_bytes: config.max_destination_bytes,
                max_subscription_bytes: config.max_subscription_bytes,
                topics: {
                    let (bus, service) = (cluster.bus.clone(), name.to_owned());
                    topics::Topics::following(Box::new(move |key, held| {
                        bus.follow(&event::stream_tag(&service, key), held)
                    }))
                },
                users: {
                    let (bus, service) = (cluster.bus.clone(), name.to_owned());
                    users::Users::following(Box::new(move |user, held| {
                        bus.follow(&event::user_tag(&service, user), held)
                    }))
                },
                auth,
                connect_webhook: auth_config.connect_webhook.clone(),
                app_webhook: config.app_webhook.clone(),
                webhooks: any_webhook.then(|| {
                    webhook::Webhooks::new(config.webhook_timeout(), config.max_queued_bytes)
                }),
                max_pending_frames: config.max_pending_frames,
                subscribe_webhook: config.subscribe_webhook.clone(),
                subscribe_webhook_destinations: config.subscribe_webhook_destinations.clone(),
                subscribe_answers: (config.subscribe_webhook.is_some() && !cache.is_zero()).then(
                    || {
                        moka::sync::Cache::builder()
                            .max_capacity(MAX_CACHED_ANSWERS)
                            .time_to_live(cache)
                            .build()
                    },
                ),
                expire_sessions: auth_config.expire_sessions,
                token_refresh_notice: auth_config.token_refresh_notice,
                max_sessions_per_user: config.max_sessions_per_user,
                max_messages_per_second: config.max_messages_per_second,
                metrics: crate::metrics::get().service(name),
                history: cluster.history_of(config.history_max_bytes),
                kept: config
                    .history
                    .iter()
                    .map(|h| {
                        let retention = Retention {
                            size: h.size,
                            ttl: h.ttl(),
                        };
                        (h.destinations.clone(), retention)
                    })
                    .collect(),
                max_recovered: config.max_recovered,
                idempotency_window: config.idempotency_window(),
                claims: cluster.history.is_none().then(|| {
                    moka::sync::Cache::builder()
                        .max_capacity(config.idempotency_max_keys)
                        .time_to_live(config.idempotency_window())
                        .build()
                }),
            }),
        })
    }
}

/// Subscribe webhook answers kept at most (`subscribe_webhook_cache`); the
/// least used go first.
const MAX_CACHED_ANSWERS: u64 = 100_000;

/// Why the backend's publication was refused: the field at fault, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub why: String,
}

fn refused(field: impl Into<String>, why: impl Into<String>) -> Refused {
    Refused {
        field: field.into(),
        why: why.into(),
    }
}

/// What the backend publishes from outside a session (the HTTP API).
impl StompService {
    /// Sends `body` to every subscriber of `destination` (not a user's:
    /// see [`StompService::send_to_user`]); with `once`, only if no
    /// publication to it claimed that idempotency key before.
    pub fn publish(
        &self,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
        count: bool,
        once: Option<&str>,
    ) -> Result<Reach, Refused> {
        self.shared.check_destination(destination)?;
        if destination.starts_with("/user/") {
            return Err(refused(
                "destination",
                "user destinations are sent with POST /api/users/{user}/send",
            ));
        }
        check_headers(headers)?;
        Ok(self.shared.publish(
            destination,
            destination,
            headers,
            body,
            Via::Api { count },
            once,
        ))
    }

    /// Sends `body` to every session of `user` subscribed to
    /// `destination` (`/user/queue/...`, as the sessions name it).
    pub fn send_to_user(
        &self,
        user: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
        (count, once): (bool, Option<&str>),
    ) -> Result<Reach, Refused> {
        users::check_name(user).map_err(|why| refused("user", why))?;
        self.shared.check_destination(destination)?;
        if !destination.starts_with("/user/") {
            return Err(refused(
                "destination",
                "must start with /user/ (as the user's sessions subscribe to it, e.g. /user/queue/notifications)",
            ));
        }
        if destination == session::GATEWAY_QUEUE {
            return Err(refused(
                "destination",
                "/user/queue/gateway is the gateway's own (token notices)",
            ));
        }
        check_headers(headers)?;
        Ok(self.shared.publish(
            &topics::user_key(user, destination),
            destination,
            headers,
            body,
            Via::Api { count },
            once,
        ))
    }

    /// What history keeps of `destination` (a topic, or a user's queue as
    /// `/user/NAME/queue/...`): publications after `since`, at most
    /// `limit`, and where its stream stands.
    pub fn history(
        &self,
        destination: &str,
        since: u64,
        limit: usize,
    ) -> Result<BoxFuture<'static, Result<Read, String>>, Refused> {
        self.shared.check_destination(destination)?;
        let key = match topics::addressed_user(destination) {
            Some((user, queue)) => {
                users::check_name(user).map_err(|why| refused("destination", why))?;
                topics::user_key(user, &queue)
            }
            None if destination.starts_with("/user/") => {
                return Err(refused(
                    "destination",
                    "a user's queue is named /user/NAME/queue/...",
                ))
            }
            None => destination.to_owned(),
        };
        let Some(retention) = self.shared.retention(topics::subscribed_destination(&key)) else {
            return Err(refused(
                "destination",
                "no [[history]] table of this service covers it",
            ));
        };
        Ok(self.shared.history.read(
            &self.shared.stream(&key),
            retention,
            Since::Offset(since),
            None,
            limit,
        ))
    }

    /// Publications this service keeps and one recovery sends, at most.
    pub fn max_recovered(&self) -> usize {
        self.shared.max_recovered
    }

    /// The link to the other nodes is back: what this node's subscribers
    /// missed meanwhile is read from history and sent, in order.
    pub fn relinked(&self) {
        for (key, gap) in self.shared.topics.hold_all() {
            self.shared.fill(key, gap);
        }
    }

    /// This node hears `destination`'s publications (as a stream names
    /// it: `/user/NAME/...` for a user's queue) from now on, again: what
    /// its subscribers here missed before is read from history.
    pub fn heard(&self, destination: &str) {
        let key = match topics::addressed_user(destination) {
            Some((user, queue)) => topics::user_key(user, &queue),
            None => destination.to_owned(),
        };
        if let Some(gap) = self.shared.topics.hold(&key) {
            self.shared.fill(key, gap);
        }
    }

    /// Ends every session of `user`, on every node; counts them.
    pub fn disconnect_user(&self, user: &str) -> Reach {
        let message = "Disconnected by the server";
        self.shared.asking(
            Event::DisconnectUser {
                service: self.shared.service.clone(),
                user: user.to_owned(),
                message: message.to_owned(),
            },
            || self.shared.users.disconnect(user, message),
            || self.shared.users.count(user),
        )
    }

    /// `user`'s signed-in sessions, counted by every node now.
    pub fn user_sessions(&self, user: &str) -> Reach {
        let count = || self.shared.users.count(user);
        self.shared.asking(
            Event::CountUser {
                service: self.shared.service.clone(),
                user: user.to_owned(),
            },
            count,
            count,
        )
    }

    /// Subscriber counts here by destination, for destinations under
    /// `prefix`.
    pub fn destinations(&self, prefix: &str) -> Vec<(String, usize)> {
        self.shared.topics.destinations(prefix)
    }

    /// What this node holds, for the other nodes' counts: subscribers by
    /// destination and sessions by user, as fields of service `name`.
    pub fn count_into(&self, name: &str, counts: &mut Counts) {
        for (destination, n) in self.destinations("") {
            counts.insert(presence::field(name, Counted::Destination, &destination), n);
        }
        for (user, n) in self.shared.users.counts() {
            counts.insert(presence::field(name, Counted::User, &user), n);
        }
    }

    /// An event from the bus (any node's), for this node's sessions; how
    /// many it reached (or counted).
    pub fn deliver(&self, event: Event) -> usize {
        match event {
            Event::Publish {
                key,
                destination,
                headers,
                body,
                offset,
                epoch,
                ..
            } => {
                let position = offset.zip(epoch).map(|(offset, epoch)| Position {
                    offset,
                    epoch: epoch.into(),
                });
                let (reached, gap) = self.shared.topics.deliver(&key, || {
                    topics::Outgoing::new(&destination, &headers, &body, position.as_ref())
                });
                if let Some(gap) = gap {
                    self.shared.fill(key, gap);
                }
                reached
            }
            Event::DisconnectUser { user, message, .. } => {
                self.shared.users.disconnect(&user, &message)
            }
            Event::CountUser { user, .. } => self.shared.users.count(&user),
            Event::Broadcast { .. } => 0,
        }
    }
}

impl Shared {
    /// Why a destination from a client or the backend is refused, if it is:
    /// not a plain path, or longer than `max_destination_bytes`.
    pub(crate) fn check_destination(&self, d: &str) -> Result<(), Refused> {
        if !destination::is_plain(d) {
            return Err(refused(
                "destination",
                "must be a path starting with / and without line breaks, NUL, : or \\",
            ));
        }
        if d.len() > self.max_destination_bytes {
            return Err(refused(
                "destination",
                format!(
                    "longer than {} bytes (max_destination_bytes)",
                    self.max_destination_bytes
                ),
            ));
        }
        Ok(())
    }

    /// What `destination` (as subscribed: a topic or `/user/queue/...`)
    /// keeps, if anything: the first history table that matches it.
    pub(crate) fn retention(&self, destination: &str) -> Option<Retention> {
        self.kept
            .iter()
            .find(|(patterns, _)| destination::any_matches(patterns, destination))
            .map(|(_, r)| *r)
    }

    /// The subscribe webhook to ask about a SUBSCRIBE to `destination`, if
    /// any.
    pub(crate) fn subscribe_webhook_for(&self, destination: &str) -> Option<&str> {
        self.subscribe_webhook
            .as_deref()
            .filter(|_| destination::any_matches(&self.subscribe_webhook_destinations, destination))
    }

    /// The history stream of `key`: the service's name and the key as a
    /// destination.
    pub(crate) fn stream(&self, key: &str) -> String {
        event::stream_tag(&self.service, key)
    }

    /// Sends a MESSAGE to the subscribers of `key` on every node, kept in
    /// history when its destination keeps one. From the API, a publication
    /// Redis cannot keep now is refused (the backend is told, and tries
    /// again), and the other nodes count their deliveries if asked; from a
    /// client's SEND, whom no error could reach, it is delivered here,
    /// without a position. With `once` (an API publication's
    /// `idempotency_key`), nothing is published if an earlier publication
    /// to the destination claimed it within `idempotency_window`: the
    /// claim and the offset are one step.
    pub(crate) fn publish(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
        via: Via,
        once: Option<&str>,
    ) -> Reach {
        let from_api = via != Via::Send;
        let count = via == Via::Api { count: true };
        let stream = self.stream(key);
        let claim = || (stream.clone(), once.unwrap_or_default().to_owned());
        let Some(retention) = self.retention(destination) else {
            if let Some(claims) = self.claims.as_ref().filter(|_| once.is_some()) {
                if !claims.entry(claim()).or_insert(None).is_fresh() {
                    return Reach::duplicate(None);
                }
            } else if let Some(key_text) = once {
                let asks = Asks {
                    keep: None,
                    once: Some(self.once(&stream, key_text)),
                    count,
                };
                let event = self.event(key, destination, headers, body);
                return match self.bus.publish_asking(event, asks) {
                    Ok(answers) => Reach::later(self.topics.subscribers(key), answers),
                    Err(_) => Reach::refused("too many publications are waiting for Redis"),
                };
            }
            if count {
                return self.asking(
                    self.event(key, destination, headers, body),
                    || self.topics.publish(key, destination, headers, body),
                    || self.topics.subscribers(key),
                );
            }
            let by = self
                .bus
                .publish_with(|| self.event(key, destination, headers, body));
            let here = match by {
                Delivery::Here => self.topics.publish(key, destination, headers, body),
                Delivery::Bus => self.topics.subscribers(key),
            };
            return Reach::here(here, None);
        };
        let appended = self
            .topics
            .publish_appended(key, destination, headers, body, || {
                let claims = self.claims.as_ref().filter(|_| once.is_some());
                if let Some(Some(first)) = claims.and_then(|c| c.get(&claim())) {
                    return Some(topics::Appended::Earlier(first));
                }
                let position = self
                    .history
                    .append_here(&stream, retention, headers, body)?;
                if let Some(c) = claims {
                    c.insert(claim(), Some(position.clone()));
                }
                Some(topics::Appended::New(position))
            });
        match appended {
            Some((here, topics::Appended::New(position))) => {
                return Reach::here(here, Some(position))
            }
            Some((_, topics::Appended::Earlier(position))) => {
                return Reach::duplicate(Some(position))
            }
            None => {}
        }
        let asks = Asks {
            once: once.map(|k| self.once(&stream, k)),
            keep: Some(Keep {
                stream,
                retention,
                fallback: !from_api,
            }),
            count,
        };
        let event = self.event(key, destination, headers, body);
        match self.bus.publish_asking(event, asks) {
            Ok(answers) => Reach::later(self.topics.subscribers(key), answers),
            Err(_) if !from_api => {
                Reach::here(self.topics.publish(key, destination, headers, body), None)
            }
            Err(_) => Reach::refused("too many publications are waiting for Redis"),
        }
    }

    /// `key`'s claim on `stream`'s destination.
    fn once(&self, stream: &str, key: &str) -> Once {
        Once {
            stream: stream.to_owned(),
            key: key.to_owned(),
            window: self.idempotency_window,
        }
    }

    /// Publishes `event` asking the other nodes to count what it reached:
    /// done here with `here_now` when there are no other nodes or the bus
    /// is full, else counted here with `here_later` (the echo delivers it).
    fn asking(
        &self,
        event: Event,
        here_now: impl FnOnce() -> usize,
        here_later: impl FnOnce() -> usize,
    ) -> Reach {
        if self.bus.state() == State::Alone {
            return Reach::here(here_now(), None);
        }
        let asks = Asks {
            keep: None,
            once: None,
            count: true,
        };
        match self.bus.publish_asking(event, asks) {
            Ok(answers) => Reach::later(here_later(), answers),
            Err(_) => Reach::here(here_now(), None),
        }
    }

    fn event(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Event {
        Event::Publish {
            service: self.service.clone(),
            key: key.to_owned(),
            destination: destination.to_owned(),
            headers: headers.to_vec(),
            body: body.to_owned(),
            offset: None,
            epoch: None,
        }
    }

    /// Reads `key`'s gap from history, then sends it and what was held
    /// meanwhile ([`topics::Topics::filled`]), reading on while it asks.
    pub(crate) fn fill(self: &Arc<Self>, key: String, gap: topics::Gap) {
        let Some(retention) = self.retention(topics::subscribed_destination(&key)) else {
            let _ = self.topics.filled(
                &key,
                &gap,
                Err("no history is kept here".into()),
                Duration::ZERO,
                || self.history.mark(),
            );
            return;
        };
        let shared = self.clone();
        actix_web::rt::spawn(async move {
            let mut gap = gap;
            loop {
                let limit = gap
                    .missing()
                    .map_or(shared.max_recovered, |n| n as usize)
                    .min(MAX_FILL);
                let read = shared
                    .history
                    .read(
                        &shared.stream(&key),
                        retention,
                        gap.since,
                        Some(&gap.epoch),
                        limit,
                    )
                    .await;
                let mark = || shared.history.mark();
                match shared.topics.filled(&key, &gap, read, retention.ttl, mark) {
                    topics::Filled::Done => return,
                    topics::Filled::Then(next) => gap = next,
                }
            }
        });
    }
}

/// Where a publication comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// A client's SEND.
    Send,
    /// The HTTP API; with `count`, the other nodes report what they reached.
    Api { count: bool },
}

/// Publications one fill of a gap reads at most.
const MAX_FILL: usize = 100_000;

fn check_headers(headers: &[(String, String)]) -> Result<(), Refused> {
    for (name, value) in headers {
        topics::check_header(name, value).map_err(|why| refused(format!("headers.{name}"), why))?;
    }
    Ok(())
}

impl Service for StompService {
    fn new_session(&self, info: &SessionInfo) -> Box<dyn Handler> {
        Box::new(session::StompSession::new(self.shared.clone(), info))
    }
}
