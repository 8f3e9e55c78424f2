//! Configuration: built-in defaults, then one TOML file (the embedded
//! `config/default.toml`, or the file given with `--config`), then
//! environment variables `SOCKJS_GATEWAY__<KEY>__<SUBKEY>` (double
//! underscore nests: `SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY=10`),
//! then command-line overrides. List-valued keys also take a
//! comma-separated string, so they can be set from the environment.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

pub mod cluster;
pub mod env;
pub mod list;
pub mod prefix;
pub mod upstream_url;
pub mod webhook_url;

/// The embedded default configuration: the demo on 127.0.0.1:8080.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SOCKJS_GATEWAY";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, `HOST:PORT`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Write an access log line per request (target `sockjs_gateway::access`).
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Directory served at `/` (the demo pages); empty to serve none.
    #[serde(default = "default_static_dir")]
    pub static_dir: String,
    /// The sockjs-client build served at [`SOCKJS_CLIENT_URL`], installed
    /// from npm (`npm ci`); empty to serve none.
    #[serde(default = "default_sockjs_client_path")]
    pub sockjs_client_path: String,
    /// The @stomp/stompjs build served at [`STOMP_CLIENT_URL`] for the
    /// notifications demo, installed from npm; empty to serve none.
    #[serde(default = "default_stomp_client_path")]
    pub stomp_client_path: String,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Peers whose `X-Forwarded-For` is believed (proxies such as nginx).
    #[serde(
        default = "default_trusted_proxies",
        deserialize_with = "list::deserialize"
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Client connections held at once; more are reset on accept. Default:
    /// what the open-file limit allows ([`crate::limits::fds`]).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Largest request head (request line and headers) in bytes; larger
    /// gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Seconds a peer may leave written bytes unread (a stalled WebSocket
    /// or streaming reader) before its connection is aborted.
    #[serde(default = "default_write_timeout")]
    pub write_timeout: f64,
    /// Hand freed memory back to the system once a load has passed
    /// ([`crate::limits::trim`]).
    #[serde(default = "yes")]
    pub trim_memory: bool,
    /// Who STOMP sessions are (`kind = "stomp"`): tokens in CONNECT.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The HTTP publish API for backends ([`crate::api`]).
    #[serde(default)]
    pub api: ApiConfig,
    /// Many nodes on one Redis ([`crate::cluster`]); none: this process
    /// alone.
    #[serde(default)]
    pub cluster: Option<cluster::ClusterConfig>,
    /// Mounted services by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
}

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

/// Where the gateway serves its local copy of sockjs-client at the root.
pub const SOCKJS_CLIENT_URL: &str = "/sockjs-client/sockjs.min.js";

/// Where the gateway serves its local copy of @stomp/stompjs.
pub const STOMP_CLIENT_URL: &str = "/stomp-client/stomp.umd.min.js";

/// The same copy's name under every service prefix (`PREFIX/sockjs.min.js`).
/// The iframe page's default `sockjs_url` is the absolute path of this name
/// under the prefix, so whatever routes the prefix also routes the script,
/// and the URL stays absolute as the SockJS protocol asks.
pub const CLIENT_SCRIPT: &str = "sockjs.min.js";

/// What happens on SIGTERM or SIGINT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Seconds between the signal and closing sessions, while `/readyz`
    /// answers 503 and everything else is served as before: time for a
    /// load balancer to stop sending new sessions here.
    #[serde(default)]
    pub drain_delay: f64,
    /// Seconds to wait for in-flight responses after sessions were closed.
    #[serde(default = "default_grace")]
    pub grace: f64,
    /// Close frame sent to every open session.
    #[serde(default = "default_shutdown_code")]
    pub close_code: u16,
    #[serde(default = "default_shutdown_reason")]
    pub close_reason: String,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_delay: 0.0,
            grace: default_grace(),
            close_code: default_shutdown_code(),
            close_reason: default_shutdown_reason(),
        }
    }
}

fn default_grace() -> f64 {
    10.0
}
fn default_shutdown_code() -> u16 {
    1001
}
fn default_shutdown_reason() -> String {
    "Server shutting down".into()
}
fn default_trusted_proxies() -> Vec<ipnet::IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("valid"),
        "::1/128".parse().expect("valid"),
    ]
}
fn default_static_dir() -> String {
    "static".into()
}
fn default_stomp_client_path() -> String {
    "node_modules/@stomp/stompjs/bundles/stomp.umd.min.js".into()
}
fn default_sockjs_client_path() -> String {
    "node_modules/sockjs-client/dist/sockjs.min.js".into()
}

/// `[auth]`: how a STOMP CONNECT names its user. Secrets can come from the
/// environment (`SOCKJS_GATEWAY__AUTH__JWT_SECRET`); `Debug` hides them.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for JWTs.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// PEM file with the RS256 or ES256 public key for JWTs.
    #[serde(default)]
    pub jwt_public_key_file: Option<String>,
    /// Required `aud`, if set.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// Required `iss`, if set.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// A backend that names the user of a CONNECT without a token (or with
    /// one, when no JWT key is set): it gets the CONNECT headers and the
    /// Cookie of the request that opened the session.
    #[serde(default)]
    pub connect_webhook: Option<String>,
    /// Sessions without a token are let in, with no user.
    #[serde(default)]
    pub anonymous: bool,
    /// For demos only: `GET /demo/token?user=NAME` mints a token for any
    /// user, signed with a secret made at start. Refused together with a
    /// `jwt_secret` or key file, whose tokens would then be forgeable.
    #[serde(default)]
    pub demo_login: bool,
    /// The secret `demo_login` signs with instead of one made at start, so
    /// that several nodes accept each other's demo tokens (the compose
    /// demo). It guards nothing, since anyone can get a token.
    #[serde(default)]
    pub demo_login_secret: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("connect_webhook", &self.connect_webhook)
            .field("anonymous", &self.anonymous)
            .field("demo_login", &self.demo_login)
            .field(
                "demo_login_secret",
                &self.demo_login_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[api]`: the HTTP API backends publish through. It is served only when
/// `key` is set (`SOCKJS_GATEWAY__API__KEY`); `Debug` hides the key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of its own listener, `HOST:PORT`; loopback by default.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// The key callers send as `Authorization: Bearer <key>`.
    #[serde(default)]
    pub key: Option<String>,
    /// Largest request body, in bytes; larger gets 413.
    #[serde(default = "default_api_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Serve Prometheus metrics at `GET /metrics` on this listener, with
    /// no key (the listener then runs even without `key`).
    #[serde(default)]
    pub metrics: bool,
}

/// The shortest `[api] key` accepted: a guessable key opens publishing to
/// every user.
pub const MIN_API_KEY_LEN: usize = 16;
/// HS256 wants a key as long as its hash (32 bytes).
pub const MIN_DEMO_LOGIN_SECRET_LEN: usize = 32;
/// The shortest `jwt_secret` accepted: 256 bits, as RFC 7518 asks of HS256.
pub const MIN_JWT_SECRET_LEN: usize = 32;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_api_listen(),
            key: None,
            max_body_bytes: default_api_max_body_bytes(),
            metrics: false,
        }
    }
}

impl ApiConfig {
    /// The key, when the API is on.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref().filter(|k| !k.is_empty())
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("metrics", &self.metrics)
            .finish()
    }
}

fn default_api_listen() -> String {
    "127.0.0.1:8081".into()
}
fn default_api_max_body_bytes() -> usize {
    1024 * 1024
}

/// Who may use an HTTP session's URLs (`session_binding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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
    /// Seconds between `h` frames sent to an attached receiver; WebSocket
    /// peers also get a ping then, and one silent for two heartbeats is dropped.
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
    /// `kind = "stomp"`: seconds a webhook (app or connect) has to answer.
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

fn yes() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
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
/// What nginx in front passes by default (4 x 8k header buffers), so the
/// gateway never refuses a head the shipped proxy config accepted.
fn default_max_header_bytes() -> usize {
    32 * 1024
}
fn default_subscribe() -> Vec<String> {
    vec!["/topic/**".into()]
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
fn default_write_timeout() -> f64 {
    20.0
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
    pub fn upstream_connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_connect_timeout)
    }
    pub fn upstream_retry_delay(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_retry_delay)
    }
    pub fn upstream_ping_interval(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_ping_interval)
    }
    /// `max_sessions`, or its default: 90 % of the connections the
    /// open-file limit allows ([`crate::limits::fds`]), halved for a proxy,
    /// whose sessions also hold an upstream socket each.
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

    /// `high_water_bytes`, or its default.
    pub fn high_water(&self) -> usize {
        self.high_water_bytes
            .unwrap_or((self.max_queued_bytes / 4).min(64 * 1024))
            .max(1)
    }

    fn validate(&self, name: &str) -> Result<(), String> {
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
        for (k, list) in [("subscribe", &self.subscribe), ("send", &self.send)] {
            for (i, p) in list.iter().enumerate() {
                crate::service::stomp::destination::check(p)
                    .map_err(|e| format!("{}[{i}]: {e}", key(k)))?;
            }
        }
        if let Some(url) = &self.app_webhook {
            webhook_url::check(url).map_err(|e| format!("{}: {e}", key("app_webhook")))?;
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

impl Config {
    /// Loads the configuration: `file` (or the embedded default), then the
    /// environment, then `overrides` (key path, value), such as the
    /// command line's `--listen`. Errors name the offending key.
    pub fn load(file: Option<&str>, overrides: &[(&str, &str)]) -> Result<Config, String> {
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        Self::load_from(file, env, overrides)
    }

    fn load_from(
        file: Option<&str>,
        env: config::Environment,
        overrides: &[(&str, &str)],
    ) -> Result<Config, String> {
        let mut b = config::Config::builder();
        for (key, value) in overrides {
            b = b
                .set_override(*key, *value)
                .map_err(|e| format!("configuration error: {key}: {e}"))?;
        }
        b = match file {
            Some(path) => {
                b.add_source(config::File::new(path, config::FileFormat::Toml).required(true))
            }
            None => b.add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            )),
        };
        Self::build(b.add_source(env))
    }

    /// Parses a configuration from TOML text alone (no environment), for
    /// code that embeds the gateway.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        Self::build(
            config::Config::builder()
                .add_source(config::File::from_str(text, config::FileFormat::Toml)),
        )
    }

    /// Merges the sources, then deserializes and validates the result.
    fn build(b: config::ConfigBuilder<config::builder::DefaultState>) -> Result<Config, String> {
        let cfg: Config = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("configuration error: {e}"))?;
        cfg.validate()
            .map_err(|e| format!("configuration error: {e}"))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        check_listen("listen", &self.listen)?;
        for (key, v) in [
            ("shutdown.grace", self.shutdown.grace),
            ("shutdown.drain_delay", self.shutdown.drain_delay),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err(format!("{key}: must be from 0 to 86400 seconds, got {v}"));
            }
        }
        // TCP_USER_TIMEOUT counts milliseconds; below one second a slow but
        // healthy network could be cut off.
        if !(self.write_timeout.is_finite() && (1.0..=86_400.0).contains(&self.write_timeout)) {
            return Err(format!(
                "write_timeout: must be from 1 to 86400 seconds, got {}",
                self.write_timeout
            ));
        }
        if self.max_connections == Some(0) {
            return Err("max_connections: must be greater than 0".into());
        }
        let ceiling = crate::limits::head::CEILING;
        if !(1024..=ceiling).contains(&self.max_header_bytes) {
            return Err(format!(
                "max_header_bytes: must be from 1024 to {ceiling} (actix-http's own limit), got {}",
                self.max_header_bytes
            ));
        }
        if let Some(key) = self.api.key() {
            if key.len() < MIN_API_KEY_LEN {
                return Err(format!(
                    "api.key: must be at least {MIN_API_KEY_LEN} characters (it was {})",
                    key.len()
                ));
            }
            if self.api.max_body_bytes == 0 {
                return Err("api.max_body_bytes: must be greater than 0".into());
            }
        }
        if self.api.key().is_some() || self.api.metrics {
            check_listen("api.listen", &self.api.listen)?;
        }
        if self.auth.demo_login
            && (self.auth.jwt_secret.is_some() || self.auth.jwt_public_key_file.is_some())
        {
            return Err(
                "auth.demo_login: anyone could mint tokens; it cannot be used with jwt_secret or jwt_public_key_file"
                    .into(),
            );
        }
        if let Some(secret) = &self.auth.jwt_secret {
            if secret.len() < MIN_JWT_SECRET_LEN {
                return Err(format!(
                    "auth.jwt_secret: must be at least {MIN_JWT_SECRET_LEN} bytes (it was {}): a shorter HS256 secret can be guessed from one token",
                    secret.len()
                ));
            }
        }
        if self.auth.demo_login && self.auth.connect_webhook.is_some() {
            return Err(
                "auth.demo_login: anyone could sign in as any user past the connect webhook; it cannot be used with connect_webhook"
                    .into(),
            );
        }
        if let Some(secret) = &self.auth.demo_login_secret {
            if !self.auth.demo_login {
                return Err("auth.demo_login_secret: used only with demo_login = true".into());
            }
            if secret.len() < MIN_DEMO_LOGIN_SECRET_LEN {
                return Err(format!(
                    "auth.demo_login_secret: must be at least {MIN_DEMO_LOGIN_SECRET_LEN} characters (it was {})",
                    secret.len()
                ));
            }
        }
        if let Some(url) = &self.auth.connect_webhook {
            webhook_url::check(url).map_err(|e| format!("auth.connect_webhook: {e}"))?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if self.services.is_empty() {
            return Err("services: no service is configured".into());
        }
        for (name, svc) in &self.services {
            svc.validate(name)?;
        }
        if self.services.values().any(|s| s.kind == ServiceKind::Stomp) {
            crate::service::stomp::auth::Verifier::new(&self.auth)?;
        }
        // Each pair once; one prefix inside the other leaves a service unreachable.
        let all: Vec<(&String, &ServiceConfig)> = self.services.iter().collect();
        for (i, (name, svc)) in all.iter().enumerate() {
            for (other, o) in &all[i + 1..] {
                let (outer, inner) = if o.prefix.len() < svc.prefix.len() {
                    ((other, o), (name, svc))
                } else {
                    ((name, svc), (other, o))
                };
                if prefix::contains(&outer.1.prefix, &inner.1.prefix) {
                    let how = if outer.1.prefix == inner.1.prefix {
                        "is already used by"
                    } else {
                        "lies inside"
                    };
                    return Err(format!(
                        "services.{}.prefix: {:?} {how} services.{}.prefix ({:?}); \
                         one of them could never be reached",
                        inner.0, inner.1.prefix, outer.0, outer.1.prefix
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A listen address: `HOST:PORT` (a socket address, or a host name and a
/// port, which binding resolves).
fn check_listen(key: &str, value: &str) -> Result<(), String> {
    if value.parse::<std::net::SocketAddr>().is_err() && !value.contains(':') {
        return Err(format!("{key}: expected HOST:PORT, got {value:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> config::Environment {
        let map = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(map))
    }

    /// The embedded default with these environment variables.
    fn with_env(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::load_from(None, env(vars), &[])
    }

    #[test]
    fn embedded_default_serves_echo_and_chat_on_8080() {
        let c = with_env(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.services["echo"].prefix, "/echo");
        assert_eq!(c.services["echo"].kind, ServiceKind::Echo);
        assert_eq!(c.services["chat"].kind, ServiceKind::Broadcast);
        assert_eq!(c.services["echo"].heartbeat_delay, 25.0);
        assert!(c.services["echo"].allowed_origins.is_empty());
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let c = with_env(&[
            ("SOCKJS_GATEWAY__LISTEN", "0.0.0.0:9000"),
            ("SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY", "7.5"),
            ("SOCKJS_GATEWAY__SERVICES__ECHO__WEBSOCKET", "false"),
        ])
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.services["echo"].heartbeat_delay, 7.5);
        assert!(!c.services["echo"].websocket);
    }

    #[test]
    fn a_cluster_comes_from_the_environment_and_its_password_stays_hidden() {
        assert!(with_env(&[]).unwrap().cluster.is_none());
        let url = "redis://:hunter2hunter2@127.0.0.1:6379/0";
        let secret = "s3cret-of-the-nodes-s3cret-of-the-nodes";
        let c = with_env(&[
            ("SOCKJS_GATEWAY__CLUSTER__REDIS_URL", url),
            ("SOCKJS_GATEWAY__CLUSTER__SECRET", secret),
        ])
        .unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.redis_url, url);
        assert_eq!(cluster.secret.as_deref(), Some(secret));
        assert_eq!(cluster.namespace, "sockjs-gateway");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains(secret));
        for (key, value, named) in [
            ("REDIS_URL", "http://127.0.0.1:6379", "cluster.redis_url"),
            ("NODE_ID", "gw 1", "cluster.node_id"),
            ("ADVERTISE", "10.0.0.3:8080", "cluster.advertise"),
            ("PRESENCE_INTERVAL", "0", "cluster.presence_interval"),
            ("SECRET", "short", "cluster.secret"),
        ] {
            let var = format!("SOCKJS_GATEWAY__CLUSTER__{key}");
            let mut vars = vec![(var.as_str(), value)];
            if key != "REDIS_URL" {
                vars.push(("SOCKJS_GATEWAY__CLUSTER__REDIS_URL", url));
            }
            if key != "SECRET" {
                vars.push(("SOCKJS_GATEWAY__CLUSTER__SECRET", secret));
            }
            let e = with_env(&vars).unwrap_err();
            assert!(e.contains(named), "{key}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        // No secret at all: refused, naming the key and its variable.
        let e = with_env(&[("SOCKJS_GATEWAY__CLUSTER__REDIS_URL", url)]).unwrap_err();
        assert!(
            e.contains("cluster.secret") && e.contains("SOCKJS_GATEWAY__CLUSTER__SECRET"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__WEBSOCKET", "maybe")]).unwrap_err();
        assert!(e.contains("services.echo.websocket"), "{e}");
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__DISCONNECT_DELAY", "0")]).unwrap_err();
        assert!(e.contains("services.echo.disconnect_delay"), "{e}");
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__CHAT__PREFIX", "/echo")]).unwrap_err();
        assert!(e.contains("services.chat.prefix"), "{e}");
    }

    #[test]
    fn list_keys_take_comma_separated_environment_values() {
        let c = with_env(&[
            (
                "SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("SOCKJS_GATEWAY__TRUSTED_PROXIES", "10.0.0.0/8, ::1/128"),
        ])
        .unwrap();
        assert_eq!(
            c.services["echo"].allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            c.trusted_proxies,
            [
                "10.0.0.0/8".parse().unwrap(),
                "::1/128".parse::<ipnet::IpNet>().unwrap()
            ]
        );
        let one = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS", "*")]).unwrap();
        assert!(one.services["echo"].allows_any_origin());
        let e =
            with_env(&[("SOCKJS_GATEWAY__TRUSTED_PROXIES", "10.0.0.0/8,nonsense")]).unwrap_err();
        assert!(
            e.contains("trusted_proxies") && e.contains("nonsense"),
            "{e}"
        );
    }

    #[test]
    fn overrides_beat_the_environment_and_are_validated() {
        let c = Config::load_from(
            None,
            env(&[("SOCKJS_GATEWAY__LISTEN", "0.0.0.0:9000")]),
            &[("listen", "127.0.0.1:0")],
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        let e = Config::load_from(None, env(&[]), &[("listen", "nonsense")]).unwrap_err();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let e = Config::from_toml("[services.x]\nprefix = \"/x\"\nkind = \"chat\"\n").unwrap_err();
        assert!(e.contains("services.x.kind"), "{e}");
        assert!(
            e.contains("echo, close, amplify, broadcast, proxy, stomp"),
            "{e}"
        );
        for (name, kind) in ServiceKind::ALL {
            // What each kind needs besides its name.
            let (top, extra) = match kind {
                ServiceKind::Proxy => ("", "upstream = \"ws://a\"\n"),
                ServiceKind::Stomp => ("[auth]\nanonymous = true\n", ""),
                _ => ("", ""),
            };
            let c = Config::from_toml(&format!(
                "{top}[services.x]\nprefix = \"/x\"\nkind = \"{name}\"\n{extra}"
            ))
            .unwrap();
            assert_eq!(c.services["x"].kind, kind);
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn unroutable_and_overlapping_prefixes_are_refused() {
        let svc = |name: &str, prefix: &str| format!("[services.{name}]\nprefix = {prefix:?}\n");
        for bad in ["/", "/a b", "/a?b", "//a"] {
            let e = Config::from_toml(&svc("x", bad)).unwrap_err();
            assert!(e.contains("services.x.prefix"), "{bad}: {e}");
        }
        let e = Config::from_toml(&(svc("outer", "/a") + &svc("inner", "/a/b"))).unwrap_err();
        assert!(
            e.contains("services.inner.prefix") && e.contains("services.outer.prefix"),
            "{e}"
        );
        assert!(e.contains("inside"), "{e}");
        Config::from_toml(&(svc("one", "/a") + &svc("two", "/ab"))).unwrap();
    }

    #[test]
    fn proxy_services_need_valid_upstreams_and_others_have_none() {
        let proxy = |extra: &str| {
            Config::from_toml(&format!(
                "[services.app]\nprefix = \"/app\"\nkind = \"proxy\"\n{extra}\n"
            ))
        };
        let c = proxy(
            "upstream = [\"ws://127.0.0.1:9000/socket\", \"wss://b.example/ws\"]\n\
             forward_headers = [\"Cookie\", \"authorization\"]\nupstream_connect_timeout = 2",
        )
        .unwrap();
        let app = &c.services["app"];
        assert_eq!(app.kind, ServiceKind::Proxy);
        assert_eq!(app.upstream.len(), 2);
        assert_eq!(app.upstream_connect_timeout(), Duration::from_secs(2));
        assert_eq!(app.upstream_ping_interval(), Duration::from_secs(25));
        for (extra, key) in [
            ("", "services.app.upstream"),
            ("upstream = [\"http://x\"]", "services.app.upstream[0]"),
            (
                "upstream = [\"ws://a\", \"ws://b:0\"]",
                "services.app.upstream[1]",
            ),
            (
                "upstream = \"ws://a\"\nforward_headers = [\"bad header\"]",
                "services.app.forward_headers[0]",
            ),
            (
                "upstream = \"ws://a\"\nupstream_connect_timeout = 0",
                "services.app.upstream_connect_timeout",
            ),
            (
                "upstream = \"ws://a\"\nhigh_water_bytes = 2000000",
                "services.app.high_water_bytes",
            ),
        ] {
            let e = proxy(extra).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let e = Config::from_toml("[services.e]\nprefix = \"/e\"\nupstream = \"ws://a\"\n")
            .unwrap_err();
        assert!(
            e.contains("services.e.upstream") && e.contains("proxy"),
            "{e}"
        );
        let env = with_env(&[
            ("SOCKJS_GATEWAY__SERVICES__APP__PREFIX", "/app"),
            ("SOCKJS_GATEWAY__SERVICES__APP__KIND", "proxy"),
            (
                "SOCKJS_GATEWAY__SERVICES__APP__UPSTREAM",
                "ws://a:1/x,ws://b:2/y",
            ),
        ])
        .unwrap();
        assert_eq!(env.services["app"].upstream, ["ws://a:1/x", "ws://b:2/y"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT", "1")]).unwrap_err();
        assert!(e.contains("heartbeat"), "{e}");
    }

    #[test]
    fn protocol_test_file_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/protocol-test.toml");
        let c = Config::load_from(Some(path), env(&[]), &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8081");
        assert_eq!(c.services["echo"].response_limit, 4096);
        assert!(!c.services["disabled_websocket_echo"].websocket);
        assert!(c.services["cookie_needed_echo"].jsessionid);
        assert!(c.services.values().all(|s| s.allows_any_origin()));
        assert!(!c.services.contains_key("chat"));
    }

    #[test]
    fn service_defaults_for_library_users() {
        let s = ServiceConfig::new("/x/");
        assert_eq!(s.prefix, "/x");
        assert_eq!(s.disconnect(), Duration::from_secs(5));
        assert_eq!(s.response_limit, 131072);
    }
}
