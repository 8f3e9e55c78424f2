//! The `stomp` service kind: STOMP 1.0-1.2 over every SockJS transport.
//! The frame codec ([`frame`]), destination patterns ([`destination`]),
//! subscriptions and their fan-out ([`topics`]), each user's sessions
//! ([`users`]), the per-session protocol ([`session`]): CONNECT,
//! SUBSCRIBE and UNSUBSCRIBE, SEND to `/topic/...` and to a user's
//! `/user/{name}/queue/...`, receipts, ERROR, DISCONNECT; who the user is
//! ([`auth`]: a JWT in CONNECT). What the backend does from outside a
//! session (publish, reach a user, end a user's sessions) is on
//! [`StompService`], which the HTTP API calls.

pub mod auth;
pub mod demo_login;
pub mod destination;
pub mod frame;
pub mod session;
pub mod topics;
pub mod users;
pub mod webhook;

use crate::cluster::presence::{self, Counted, Counts};
use crate::cluster::{Bus, Delivery, Event};
use crate::config::{AuthConfig, ServiceConfig};
use crate::service::api::{Handler, Service, SessionInfo};
use std::sync::Arc;

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
}

impl StompService {
    /// Service `name`, or why its configuration cannot run, naming the key:
    /// a destination pattern it cannot match by, or a JWT key it cannot read.
    pub fn new(
        name: &str,
        config: &ServiceConfig,
        auth_config: &AuthConfig,
        bus: Arc<dyn Bus>,
    ) -> Result<StompService, String> {
        for (k, list) in [("subscribe", &config.subscribe), ("send", &config.send)] {
            for (i, p) in list.iter().enumerate() {
                destination::check(p).map_err(|e| format!("services.{name}.{k}[{i}]: {e}"))?;
            }
        }
        let auth = auth::Verifier::new(auth_config)?;
        Ok(StompService {
            shared: Arc::new(Shared {
                service: name.to_owned(),
                bus,
                subscribe: config.subscribe.clone(),
                send: config.send.clone(),
                limits: frame::Limits {
                    max_frame_bytes: config.max_frame_bytes,
                    max_headers: config.max_headers,
                },
                max_subscriptions: config.max_subscriptions,
                max_destination_bytes: config.max_destination_bytes,
                max_subscription_bytes: config.max_subscription_bytes,
                topics: topics::Topics::default(),
                users: users::Users::default(),
                auth,
                connect_webhook: auth_config.connect_webhook.clone(),
                app_webhook: config.app_webhook.clone(),
                webhooks: (auth_config.connect_webhook.is_some() || config.app_webhook.is_some())
                    .then(|| {
                        webhook::Webhooks::new(config.webhook_timeout(), config.max_queued_bytes)
                    }),
                max_pending_frames: config.max_pending_frames,
            }),
        })
    }
}

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
    /// see [`StompService::send_to_user`]); returns how many got it.
    pub fn publish(
        &self,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<usize, Refused> {
        self.shared.check_destination(destination)?;
        if destination.starts_with("/user/") {
            return Err(refused(
                "destination",
                "user destinations are sent with POST /api/users/{user}/send",
            ));
        }
        check_headers(headers)?;
        Ok(self.shared.publish(destination, destination, headers, body))
    }

    /// Sends `body` to every session of `user` subscribed to
    /// `destination` (`/user/queue/...`, as the sessions name it).
    pub fn send_to_user(
        &self,
        user: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<usize, Refused> {
        users::check_name(user).map_err(|why| refused("user", why))?;
        self.shared.check_destination(destination)?;
        if !destination.starts_with("/user/") {
            return Err(refused(
                "destination",
                "must start with /user/ (as the user's sessions subscribe to it, e.g. /user/queue/notifications)",
            ));
        }
        check_headers(headers)?;
        Ok(self.shared.publish(
            &topics::user_key(user, destination),
            destination,
            headers,
            body,
        ))
    }

    /// Ends every session of `user`, on every node; returns how many here.
    pub fn disconnect_user(&self, user: &str) -> usize {
        let message = "Disconnected by the server";
        let by = self.shared.bus.publish_with(|| Event::DisconnectUser {
            service: self.shared.service.clone(),
            user: user.to_owned(),
            message: message.to_owned(),
        });
        match by {
            Delivery::Here => self.shared.users.disconnect(user, message),
            Delivery::Bus => self.shared.users.count(user),
        }
    }

    /// Subscriber counts here by destination, for destinations under
    /// `prefix`.
    pub fn destinations(&self, prefix: &str) -> Vec<(String, usize)> {
        self.shared.topics.destinations(prefix)
    }

    /// Sessions of `user` here.
    pub fn user_sessions(&self, user: &str) -> usize {
        self.shared.users.count(user)
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

    /// A publication from the bus (any node's), to this node's subscribers.
    pub fn deliver(&self, event: Event) {
        match event {
            Event::Publish {
                key,
                destination,
                headers,
                body,
                ..
            } => {
                self.shared
                    .topics
                    .publish(&key, &destination, &headers, &body);
            }
            Event::DisconnectUser { user, message, .. } => {
                self.shared.users.disconnect(&user, &message);
            }
            Event::Broadcast { .. } => {}
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

    /// Sends a MESSAGE to the subscribers of `key` on every node; returns
    /// how many here.
    pub(crate) fn publish(
        &self,
        key: &str,
        destination: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> usize {
        let by = self.bus.publish_with(|| Event::Publish {
            service: self.service.clone(),
            key: key.to_owned(),
            destination: destination.to_owned(),
            headers: headers.to_vec(),
            body: body.to_owned(),
        });
        match by {
            Delivery::Here => self.topics.publish(key, destination, headers, body),
            Delivery::Bus => self.topics.subscribers(key),
        }
    }
}

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
