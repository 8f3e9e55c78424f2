//! `[services.NAME]`: one mounted service, its transports, limits and
//! the keys of each kind.

use super::{list, prefix, upstream_url, webhook_url, yes, CLIENT_SCRIPT};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// `max_sessions` where no gateway measured the open-file limit (a hub made
/// by hand, outside [`crate::Gateway::start`]).
const FALLBACK_MAX_SESSIONS: usize = 10_000;

/// Headers the proxy kind sets on the upstream handshake itself; the
/// client's own copies are never forwarded (`forward_headers`).
const GATEWAY_SET_HEADERS: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "origin",
];

/// Who may use an HTTP session's URLs (`session_binding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBinding {
    /// Anyone who knows the id, as in every SockJS server.
    #[default]
    None,
    /// Only the client address that made the session, as resolved through
    /// `trusted_proxies`; others are answered as for an unknown session.
    Ip,
}

/// Which built-in backend a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Echo,
    Close,
    Amplify,
    Broadcast,
    /// Each session proxied to an upstream WebSocket (`upstream`).
    Proxy,
    /// STOMP over SockJS: topics (`subscribe`, `send`).
    Stomp,
}

impl ServiceKind {
    /// Every kind, by its configuration name.
    pub const ALL: [(&'static str, ServiceKind); 6] = [
        ("echo", ServiceKind::Echo),
        ("close", ServiceKind::Close),
        ("amplify", ServiceKind::Amplify),
        ("broadcast", ServiceKind::Broadcast),
        ("proxy", ServiceKind::Proxy),
        ("stomp", ServiceKind::Stomp),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("every kind is listed")
    }
}

impl Serialize for ServiceKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

// By hand rather than derived: through the `config` crate a derived enum
// reports "does not have variant constructor", not the valid kinds.
impl<'de> Deserialize<'de> for ServiceKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                serde::de::Error::custom(format!(
                    "unknown kind {name:?}; valid kinds: {}",
                    valid.join(", ")
                ))
            })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// URL prefix, e.g. `/echo`. Must start with `/` and not end with one.
    pub prefix: String,
    /// Built-in backend; services mounted from Rust code ignore it.
    #[serde(default = "default_kind")]
    pub kind: ServiceKind,
    /// sockjs-client URL loaded by the iframe page: an absolute path or an
    /// http(s) URL. Unset, the local copy under the prefix
    /// (`PREFIX/sockjs.min.js`); see [`ServiceConfig::sockjs_url`].
    #[serde(default)]
    pub sockjs_url: Option<String>,
    /// SockJS WebSocket transport (`/{server}/{session}/websocket`).
    #[serde(default = "yes")]
    pub websocket: bool,
    /// Raw WebSocket endpoint `PREFIX/websocket`.
    #[serde(default = "yes")]
    pub raw_websocket: bool,
    #[serde(default = "yes")]
    pub xhr_polling: bool,
    #[serde(default = "yes")]
    pub xhr_streaming: bool,
    #[serde(default = "yes")]
    pub eventsource: bool,
    #[serde(default = "yes")]
    pub htmlfile: bool,
    #[serde(default = "yes")]
    pub jsonp_polling: bool,
    /// Seconds between `h` frames on a stream or WebSocket (WebSocket peers
    /// also get a ping then, and one silent for two heartbeats is dropped);
    /// a poll that waited this long from its start is answered `h`.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_delay: f64,
    /// Seconds without a receiver after which a session is forgotten.
    #[serde(default = "default_disconnect")]
    pub disconnect_delay: f64,
    /// Bytes a streaming response carries before it ends and the client reconnects.
    #[serde(default = "default_response_limit")]
    pub response_limit: usize,
    /// Set a `JSESSIONID` cookie (for sticky load balancers).
    #[serde(default)]
    pub jsessionid: bool,
    /// Origins allowed for cross-origin requests and WebSocket upgrades.
    /// Empty: same origin only. `"*"`: any origin.
    #[serde(default, deserialize_with = "list::deserialize")]
    pub allowed_origins: Vec<String>,
    /// Largest HTTP send body and WebSocket message accepted, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Outgoing bytes a session may hold for a slow or absent receiver before
    /// it is closed with 1008 "Outgoing queue limit exceeded".
    #[serde(default = "default_max_queued")]
    pub max_queued_bytes: usize,
    /// Live sessions; new sessions past it get 503. Default: derived from
    /// the open-file limit ([`ServiceConfig::max_sessions`]).
    #[serde(default)]
    pub max_sessions: Option<usize>,
    /// Sessions open at once from one client address (as resolved through
    /// `trusted_proxies`; IPv6 by /64), on this node; 0: no limit.
    #[serde(default)]
    pub max_sessions_per_ip: usize,
    /// New sessions per second from one client address, with a burst of
    /// as many, on this node; 0: no limit.
    #[serde(default)]
    pub max_new_sessions_per_ip: u32,
    /// `kind = "stomp"`: sessions of one user at once, on every node
    /// together (from presence in a cluster); 0: no limit.
    #[serde(default)]
    pub max_sessions_per_user: usize,
    /// Messages per second one session may send, with a burst of as many;
    /// 0: no limit.
    #[serde(default)]
    pub max_messages_per_second: u32,
    /// Whether an HTTP session answers only the address that made it.
    #[serde(default)]
    pub session_binding: SessionBinding,
    /// Shortest session id accepted (sockjs-client makes 8 characters);
    /// shorter ids get 404.
    #[serde(default = "default_min_session_id_length")]
    pub min_session_id_length: usize,
    /// `kind = "stomp"`: destinations clients may SUBSCRIBE to (patterns:
    /// `*` within a segment, `**` across segments).
    #[serde(default = "default_subscribe", deserialize_with = "list::deserialize")]
    pub subscribe: Vec<String>,
    /// `kind = "stomp"`: destinations clients may SEND to.
    #[serde(default, deserialize_with = "list::deserialize")]
    pub send: Vec<String>,
    /// `kind = "stomp"`: where SENDs to `/app/**` go, as JSON POSTs.
    #[serde(default)]
    pub app_webhook: Option<String>,
    /// `kind = "stomp"`: asked whether a SUBSCRIBE may go ahead (after the
    /// static `subscribe` check), as a JSON POST; fails closed.
    #[serde(default)]
    pub subscribe_webhook: Option<String>,
    /// `kind = "stomp"`: the destinations whose SUBSCRIBEs ask the
    /// subscribe webhook (patterns, as in `subscribe`).
    #[serde(
        default = "default_subscribe_webhook_destinations",
        deserialize_with = "list::deserialize"
    )]
    pub subscribe_webhook_destinations: Vec<String>,
    /// `kind = "stomp"`: seconds a subscribe webhook's answer is reused for
    /// the same user and destination; 0 asks every time.
    #[serde(default)]
    pub subscribe_webhook_cache: f64,
    /// `kind = "stomp"`: seconds a webhook (app, connect or subscribe) has to answer.
    #[serde(default = "default_webhook_timeout")]
    pub webhook_timeout: f64,
    /// `kind = "stomp"`: frames of one session that may wait behind a
    /// webhook call; more get an ERROR.
    #[serde(default = "default_max_pending_frames")]
    pub max_pending_frames: usize,
    /// `kind = "stomp"`: bytes of one STOMP frame.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// `kind = "stomp"`: header lines in one STOMP frame.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// `kind = "stomp"`: subscriptions one session may hold.
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions: usize,
    /// `kind = "stomp"`: bytes of one destination, in frames and in the
    /// HTTP API: a destination is kept per subscriber, repeated in every
    /// MESSAGE and counted across the cluster.
    #[serde(default = "default_max_destination_bytes")]
    pub max_destination_bytes: usize,
    /// `kind = "stomp"`: bytes of all of one session's subscriptions, their
    /// ids and destinations together.
    #[serde(default = "default_max_subscription_bytes")]
    pub max_subscription_bytes: usize,
    /// `kind = "stomp"`: which destinations keep a history of their
    /// publications, and how much, for recovery (`[[services.NAME.history]]`
    /// tables; the first whose `destinations` match applies).
    #[serde(default)]
    pub history: Vec<HistoryConfig>,
    /// `kind = "stomp"`: publications one SUBSCRIBE may recover at most;
    /// a client that missed more is told `x-recovered: false`.
    #[serde(default = "default_max_recovered")]
    pub max_recovered: usize,
    /// `kind = "stomp"` on a single node: bytes all of the service's
    /// in-memory history may cost (publications and bookkeeping); past it
    /// the streams published to least recently are dropped.
    #[serde(default = "default_history_max_bytes")]
    pub history_max_bytes: usize,
    /// `kind = "stomp"`: seconds an API publication's `idempotency_key` is
    /// remembered: a retry with the same key within it publishes nothing.
    #[serde(default = "default_idempotency_window")]
    pub idempotency_window: u64,
    /// `kind = "stomp"` on a single node: idempotency keys remembered at
    /// most (with `[cluster]` they are in Redis, for the window).
    #[serde(default = "default_idempotency_max_keys")]
    pub idempotency_max_keys: u64,
    /// `kind = "proxy"`: the upstream WebSocket URLs (`ws://`, `wss://`),
    /// tried round-robin.
    #[serde(default, deserialize_with = "list::deserialize")]
    pub upstream: Vec<String>,
    /// Headers of the request that opened a session that the backend gets
    /// (for a proxy: in the upstream handshake). Names, any case.
    #[serde(default, deserialize_with = "list::deserialize")]
    pub forward_headers: Vec<String>,
    /// Seconds an upstream has to accept the WebSocket handshake.
    #[serde(default = "default_connect_timeout")]
    pub upstream_connect_timeout: f64,
    /// Seconds an upstream that could not be reached is skipped.
    #[serde(default = "default_retry_delay")]
    pub upstream_retry_delay: f64,
    /// Seconds between pings to an upstream; one silent for two intervals
    /// is dead.
    #[serde(default = "default_heartbeat")]
    pub upstream_ping_interval: f64,
    /// Outgoing bytes (queued or in flight to the client) at which a proxy
    /// stops reading its upstream, resuming at half of it: backpressure
    /// before `max_queued_bytes` closes the session. Default: 64 KiB, or a
    /// quarter of `max_queued_bytes` if that is less.
    #[serde(default)]
    pub high_water_bytes: Option<usize>,
}

/// One `[[services.NAME.history]]` table: the destinations it covers and
/// what each keeps.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Destination patterns, as in `subscribe` (`/user/queue/**` for each
    /// user's own queues).
    #[serde(deserialize_with = "list::deserialize")]
    pub destinations: Vec<String>,
    /// Publications kept per destination (per user and destination for
    /// `/user/queue/...`).
    #[serde(default = "default_history_size")]
    pub size: usize,
    /// Seconds a destination's history lives after its last publication.
    #[serde(default = "default_history_ttl")]
    pub ttl: u64,
}

/// The longest `subscribe_webhook_cache` accepted: a day.
const MAX_SUBSCRIBE_WEBHOOK_CACHE: f64 = 86_400.0;
/// The longest `ttl` accepted: a year.
const MAX_HISTORY_TTL: u64 = 366 * 24 * 3600;
/// The largest `size` accepted.
const MAX_HISTORY_SIZE: usize = 1_000_000;

impl HistoryConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }
}

impl ServiceConfig {
    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window)
    }
}

fn default_history_size() -> usize {
    100
}
fn default_history_ttl() -> u64 {
    600
}
fn default_max_recovered() -> usize {
    1000
}
/// 64 MiB.
pub const DEFAULT_HISTORY_MAX_BYTES: usize = 64 << 20;
fn default_history_max_bytes() -> usize {
    DEFAULT_HISTORY_MAX_BYTES
}
fn default_idempotency_window() -> u64 {
    300
}
fn default_idempotency_max_keys() -> u64 {
    100_000
}
/// The longest `idempotency_window` accepted: a day.
const MAX_IDEMPOTENCY_WINDOW: u64 = 86_400;

fn default_kind() -> ServiceKind {
    ServiceKind::Echo
}
fn default_heartbeat() -> f64 {
    25.0
}
fn default_disconnect() -> f64 {
    5.0
}
fn default_response_limit() -> usize {
    128 * 1024
}
fn default_max_message() -> usize {
    1024 * 1024
}
fn default_max_queued() -> usize {
    1024 * 1024
}
fn default_subscribe() -> Vec<String> {
    vec!["/topic/**".into()]
}
fn default_subscribe_webhook_destinations() -> Vec<String> {
    vec!["/**".into()]
}
fn default_max_frame_bytes() -> usize {
    64 * 1024
}
fn default_max_headers() -> usize {
    64
}
fn default_webhook_timeout() -> f64 {
    5.0
}
fn default_max_pending_frames() -> usize {
    100
}
fn default_max_subscriptions() -> usize {
    100
}
fn default_max_destination_bytes() -> usize {
    256
}
fn default_max_subscription_bytes() -> usize {
    16 * 1024
}
fn default_min_session_id_length() -> usize {
    1
}
fn default_connect_timeout() -> f64 {
    5.0
}
fn default_retry_delay() -> f64 {
    5.0
}

impl ServiceConfig {
    /// A service with every default, for code that mounts services itself.
    pub fn new(prefix: impl Into<String>) -> Self {
        let mut c: ServiceConfig =
            serde_json::from_value(serde_json::json!({ "prefix": prefix.into() }))
                .expect("defaults deserialize");
        c.prefix = c.prefix.trim_end_matches('/').to_owned();
        c
    }

    /// The script the iframe page loads: `sockjs_url`, or the local copy
    /// under this service's prefix.
    pub fn sockjs_url(&self) -> String {
        match &self.sockjs_url {
            Some(url) => url.clone(),
            None => format!("{}/{CLIENT_SCRIPT}", self.prefix),
        }
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_delay)
    }
    pub fn disconnect(&self) -> Duration {
        Duration::from_secs_f64(self.disconnect_delay)
    }
    pub fn allows_any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.webhook_timeout)
    }
    pub fn subscribe_webhook_cache(&self) -> Duration {
        Duration::from_secs_f64(self.subscribe_webhook_cache)
    }
    pub fn upstream_connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_connect_timeout)
    }
    pub fn upstream_retry_delay(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_retry_delay)
    }
    pub fn upstream_ping_interval(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_ping_interval)
    }
    /// `max_sessions`, or its default: the connections the open-file limit
    /// allows ([`crate::limits::fds`]) but a reserve for other requests,
    /// halved for a proxy, whose sessions also hold an upstream socket
    /// each; counted in WebSocket sessions (see
    /// [`ServiceConfig::http_session_weight`]).
    pub fn max_sessions(&self) -> usize {
        let per_session = if self.kind == ServiceKind::Proxy {
            2
        } else {
            1
        };
        self.max_sessions.unwrap_or_else(|| {
            crate::limits::fds::budget().map_or(FALLBACK_MAX_SESSIONS, |b| {
                b.default_max_sessions(per_session)
            })
        })
    }

    /// How many sessions an HTTP session counts as against `max_sessions`:
    /// the connections it holds when the cap is derived from them, one when
    /// `max_sessions` is set (a plain count).
    pub fn http_session_weight(&self) -> usize {
        match self.max_sessions {
            Some(_) => 1,
            None => crate::limits::fds::HTTP_SESSION_CONNECTIONS,
        }
    }

    /// `high_water_bytes`, or its default.
    pub fn high_water(&self) -> usize {
        self.high_water_bytes
            .unwrap_or((self.max_queued_bytes / 4).min(64 * 1024))
            .max(1)
    }

    pub(super) fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("services.{name}.{k}");
        prefix::check(&self.prefix).map_err(|e| format!("{}: {e}", key("prefix")))?;
        if let Some(url) = &self.sockjs_url {
            // The protocol asks for an absolute path or URL: a relative one
            // resolves against wherever the iframe page was served from.
            if !(url.starts_with('/') || url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(format!(
                    "{}: must be an absolute path (\"/...\") or an http(s) URL, got {url:?}",
                    key("sockjs_url")
                ));
            }
        }
        for (k, v) in [
            ("heartbeat_delay", self.heartbeat_delay),
            ("disconnect_delay", self.disconnect_delay),
            ("upstream_connect_timeout", self.upstream_connect_timeout),
            ("upstream_retry_delay", self.upstream_retry_delay),
            ("upstream_ping_interval", self.upstream_ping_interval),
            ("webhook_timeout", self.webhook_timeout),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 1e7) {
                return Err(format!(
                    "{}: must be a positive number of seconds, got {v}",
                    key(k)
                ));
            }
        }
        for (k, v) in [
            ("response_limit", self.response_limit),
            ("max_message_bytes", self.max_message_bytes),
            ("max_queued_bytes", self.max_queued_bytes),
            ("max_sessions", self.max_sessions.unwrap_or(1)),
            ("high_water_bytes", self.high_water_bytes.unwrap_or(1)),
            ("max_frame_bytes", self.max_frame_bytes),
            ("max_headers", self.max_headers),
            ("max_subscriptions", self.max_subscriptions),
            ("max_destination_bytes", self.max_destination_bytes),
            ("max_subscription_bytes", self.max_subscription_bytes),
            ("max_pending_frames", self.max_pending_frames),
            ("max_recovered", self.max_recovered),
            ("history_max_bytes", self.history_max_bytes),
            ("idempotency_max_keys", self.idempotency_max_keys as usize),
        ] {
            if v == 0 {
                return Err(format!("{}: must be greater than 0", key(k)));
            }
        }
        let max_id = crate::protocol::ids::MAX_ID_LEN;
        if !(1..=max_id).contains(&self.min_session_id_length) {
            return Err(format!(
                "{}: must be from 1 to {max_id} (the longest id accepted), got {}",
                key("min_session_id_length"),
                self.min_session_id_length
            ));
        }
        if self
            .high_water_bytes
            .is_some_and(|h| h >= self.max_queued_bytes)
        {
            return Err(format!(
                "{}: must be below max_queued_bytes ({}), which closes the session",
                key("high_water_bytes"),
                self.max_queued_bytes
            ));
        }
        for (i, name) in self.forward_headers.iter().enumerate() {
            if actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!(
                    "{}[{i}]: {name:?} is not a header name",
                    key("forward_headers")
                ));
            }
            // The gateway sets these itself, from what it resolved; a
            // client's own would override them.
            if GATEWAY_SET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "{}[{i}]: {name:?} is set by the gateway itself (from the client address, scheme, \
                     host and origin it resolved) and cannot be forwarded as the client sent it",
                    key("forward_headers")
                ));
            }
        }
        let stomp_only = [
            ("history", !self.history.is_empty()),
            ("subscribe_webhook", self.subscribe_webhook.is_some()),
            ("max_sessions_per_user", self.max_sessions_per_user > 0),
        ];
        for (k, set) in stomp_only {
            if set && self.kind != ServiceKind::Stomp {
                return Err(format!(
                    "{}: only a kind = \"stomp\" service has it (this one is {:?})",
                    key(k),
                    self.kind.name()
                ));
            }
        }
        if !(1..=MAX_IDEMPOTENCY_WINDOW).contains(&self.idempotency_window) {
            return Err(format!(
                "{}: must be from 1 to {MAX_IDEMPOTENCY_WINDOW} seconds, got {}",
                key("idempotency_window"),
                self.idempotency_window
            ));
        }
        for (i, h) in self.history.iter().enumerate() {
            let key = |k: &str| format!("{}[{i}].{k}", key("history"));
            if h.destinations.is_empty() {
                return Err(format!(
                    "{}: name at least one pattern",
                    key("destinations")
                ));
            }
            if !(1..=MAX_HISTORY_SIZE).contains(&h.size) {
                return Err(format!(
                    "{}: must be from 1 to {MAX_HISTORY_SIZE}, got {}",
                    key("size"),
                    h.size
                ));
            }
            if !(1..=MAX_HISTORY_TTL).contains(&h.ttl) {
                return Err(format!(
                    "{}: must be from 1 to {MAX_HISTORY_TTL} seconds, got {}",
                    key("ttl"),
                    h.ttl
                ));
            }
        }
        if let Some(url) = &self.app_webhook {
            webhook_url::check(url).map_err(|e| format!("{}: {e}", key("app_webhook")))?;
        }
        if let Some(url) = &self.subscribe_webhook {
            webhook_url::check(url).map_err(|e| format!("{}: {e}", key("subscribe_webhook")))?;
        }
        let c = self.subscribe_webhook_cache;
        if !(c.is_finite() && (0.0..=MAX_SUBSCRIBE_WEBHOOK_CACHE).contains(&c)) {
            return Err(format!(
                "{}: must be from 0 to {MAX_SUBSCRIBE_WEBHOOK_CACHE} seconds, got {c}",
                key("subscribe_webhook_cache")
            ));
        }
        match (self.kind, self.upstream.is_empty()) {
            (ServiceKind::Proxy, true) => {
                return Err(format!(
                    "{}: kind = \"proxy\" needs at least one upstream URL",
                    key("upstream")
                ))
            }
            (ServiceKind::Proxy, false) => {
                for (i, url) in self.upstream.iter().enumerate() {
                    upstream_url::check(url)
                        .map_err(|e| format!("{}[{i}]: {e}", key("upstream")))?;
                }
            }
            (kind, false) => {
                return Err(format!(
                    "{}: only a kind = \"proxy\" service has upstreams (this one is {:?})",
                    key("upstream"),
                    kind.name()
                ))
            }
            (_, true) => {}
        }
        Ok(())
    }
}
