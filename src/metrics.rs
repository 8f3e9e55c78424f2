//! Prometheus metrics, served as OpenMetrics text at `GET /metrics` on the
//! API's listener, with the official client (`prometheus-client`).
//!
//! One registry per process. Each service takes its handles once
//! ([`ServiceMetrics`]), so counting on the hot path is one atomic add and
//! never a label lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// Transports as metrics name them; [`ServiceMetrics`] arrays follow this
/// order.
pub const TRANSPORTS: [&str; 7] = [
    "websocket",
    "raw_websocket",
    "xhr_polling",
    "jsonp_polling",
    "xhr_streaming",
    "eventsource",
    "htmlfile",
];

/// Why sessions close, as metrics name it; [`ServiceMetrics::sessions_closed`]
/// follows this order.
pub const CLOSE_REASONS: [&str; 6] = [
    "server",
    "interrupted",
    "timed_out",
    "client_closed",
    "queue_overflow",
    "protocol_error",
];

/// How an upstream connect (`kind = "proxy"`) ended.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamConnect {
    Accepted = 0,
    Refused = 1,
    Unreachable = 2,
}
const UPSTREAM_RESULTS: [&str; 3] = ["accepted", "refused", "unreachable"];

/// The limits that refuse sessions or messages, by their configuration
/// key; [`ServiceMetrics::limited`] follows this order.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    SessionsPerIp = 0,
    NewSessionsPerIp = 1,
    SessionsPerUser = 2,
    MessagesPerSecond = 3,
}
const LIMITS: [&str; 4] = [
    "max_sessions_per_ip",
    "max_new_sessions_per_ip",
    "max_sessions_per_user",
    "max_messages_per_second",
];

/// What the subscribe webhook answered (`kind = "stomp"`).
#[derive(Debug, Clone, Copy)]
pub enum SubscribeAnswer {
    Allowed = 0,
    Refused = 1,
    Failed = 2,
    /// From `subscribe_webhook_cache`, without a call.
    Cached = 3,
}
const SUBSCRIBE_ANSWERS: [&str; 4] = ["allowed", "refused", "failed", "cached"];

/// What became of a session's token (`[auth] expire_sessions`).
#[derive(Debug, Clone, Copy)]
pub enum TokenEvent {
    Refreshed = 0,
    Expired = 1,
}
const TOKEN_EVENTS: [&str; 2] = ["refreshed", "expired"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    service: String,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    service: String,
    answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    service: String,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    service: String,
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    service: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    service: String,
    result: &'static str,
}

/// The cluster's own figures ([`crate::cluster::redis`]).
#[derive(Default, Clone)]
pub struct ClusterMetrics {
    /// Events handed to Redis.
    pub publishes_sent: Counter,
    /// Other nodes' events delivered here.
    pub publishes_received: Counter,
    /// Events that reached this node's clients only (Redis down, or its
    /// queue full).
    pub publishes_dropped: Counter,
    /// Requests for another node's session, forwarded to it.
    pub forwarded_requests: Counter,
    /// Links open to other nodes, over which requests are forwarded
    /// ([`crate::transport::link`]; one per worker and node).
    pub links: Gauge,
    /// 1 while connected to Redis.
    pub redis_connected: Gauge,
    /// Masters reached other than the one before: failovers (or restarts).
    pub redis_failovers: Counter,
    /// Batches of kept publications fewer replicas confirmed than
    /// `redis_min_replicas` asks (each answered 504).
    pub publishes_unreplicated: Counter,
}

/// History's figures ([`crate::cluster::history`] and the `stomp` kind's
/// recovery).
#[derive(Default, Clone)]
pub struct HistoryMetrics {
    /// Streams the in-memory store holds.
    pub streams: Gauge,
    /// Bytes the in-memory store's streams cost, as counted against
    /// `history_max_bytes`: publications with their bookkeeping.
    pub bytes: Gauge,
    /// Streams the in-memory store dropped to stay within
    /// `history_max_bytes`.
    pub evicted: Counter,
    /// Publications sent by recoveries on SUBSCRIBE.
    pub recovered: Counter,
    /// SUBSCRIBEs that asked to recover and were told `x-recovered: false`.
    pub recoveries_failed: Counter,
    /// Publications a node read back from history to close a gap (a lost
    /// link, a missed offset).
    pub gaps_filled: Counter,
    /// Live subscriptions told they may have missed publications a node
    /// could not read back (`x-recovered: false` in a MESSAGE).
    pub losses_told: Counter,
}

pub struct Metrics {
    registry: Registry,
    sessions_open: Family<TransportLabels, Gauge>,
    sessions_opened: Family<TransportLabels, Counter>,
    sessions_closed: Family<ReasonLabels, Counter>,
    messages_in: Family<ServiceLabel, Counter>,
    messages_out: Family<ServiceLabel, Counter>,
    bytes_in: Family<ServiceLabel, Counter>,
    bytes_out: Family<ServiceLabel, Counter>,
    polls: Family<ServiceLabel, Counter>,
    stream_rollovers: Family<ServiceLabel, Counter>,
    queue_overflow_closes: Family<ServiceLabel, Counter>,
    upstream_connects: Family<ResultLabels, Counter>,
    limited: Family<LimitLabels, Counter>,
    subscribe_webhook: Family<AnswerLabels, Counter>,
    tokens: Family<EventLabels, Counter>,
    pub cluster: ClusterMetrics,
    pub history: HistoryMetrics,
}

/// A service's handles, taken once.
#[derive(Default, Clone)]
pub struct ServiceMetrics {
    /// By [`TRANSPORTS`]: the transport that opened the session.
    pub sessions_open: [Gauge; 7],
    pub sessions_opened: [Counter; 7],
    /// By [`CLOSE_REASONS`].
    pub sessions_closed: [Counter; 6],
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Poll requests (xhr and jsonp).
    pub polls: Counter,
    /// Streaming responses ended by `response_limit` (the client opens
    /// the next).
    pub stream_rollovers: Counter,
    pub queue_overflow_closes: Counter,
    /// By [`UpstreamConnect`].
    pub upstream_connects: [Counter; 3],
    /// By [`Limit`].
    pub limited: [Counter; 4],
    /// By [`SubscribeAnswer`].
    pub subscribe_webhook: [Counter; 4],
    /// By [`TokenEvent`].
    pub tokens: [Counter; 2],
}

/// One handle of `family` per name in `names`, labelled by `label(name)`.
fn each<S: Clone + std::hash::Hash + Eq, M: Clone + Default, const N: usize>(
    family: &Family<S, M>,
    names: [&'static str; N],
    label: impl Fn(&'static str) -> S,
) -> [M; N] {
    names.map(|n| family.get_or_create(&label(n)).clone())
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sockjs_gateway");
        let m = Metrics {
            sessions_open: Family::default(),
            sessions_opened: Family::default(),
            sessions_closed: Family::default(),
            messages_in: Family::default(),
            messages_out: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            polls: Family::default(),
            stream_rollovers: Family::default(),
            queue_overflow_closes: Family::default(),
            upstream_connects: Family::default(),
            limited: Family::default(),
            subscribe_webhook: Family::default(),
            tokens: Family::default(),
            cluster: ClusterMetrics::default(),
            history: HistoryMetrics::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "sessions_open",
            "Open sessions, by the transport that opened them",
            m.sessions_open.clone(),
        );
        r.register(
            "sessions_opened",
            "Sessions opened",
            m.sessions_opened.clone(),
        );
        r.register(
            "sessions_closed",
            "Sessions closed, by reason",
            m.sessions_closed.clone(),
        );
        r.register(
            "messages_in",
            "Messages from clients",
            m.messages_in.clone(),
        );
        r.register(
            "messages_out",
            "Messages queued to clients",
            m.messages_out.clone(),
        );
        r.register(
            "bytes_in",
            "Bytes of messages from clients",
            m.bytes_in.clone(),
        );
        r.register(
            "bytes_out",
            "Bytes of messages queued to clients",
            m.bytes_out.clone(),
        );
        r.register("polls", "Poll requests", m.polls.clone());
        r.register(
            "stream_rollovers",
            "Streaming responses ended by response_limit",
            m.stream_rollovers.clone(),
        );
        r.register(
            "queue_overflow_closes",
            "Sessions closed as their queue passed max_queued_bytes",
            m.queue_overflow_closes.clone(),
        );
        r.register(
            "upstream_connects",
            "Upstream WebSocket connects (kind = proxy), by result",
            m.upstream_connects.clone(),
        );
        r.register(
            "limited",
            "Sessions and messages refused by a limit, by its key",
            m.limited.clone(),
        );
        r.register(
            "subscribe_webhook",
            "SUBSCRIBEs decided by the subscribe webhook, by answer",
            m.subscribe_webhook.clone(),
        );
        r.register(
            "tokens",
            "Session tokens refreshed through /gateway/token or expired",
            m.tokens.clone(),
        );
        let c = r.sub_registry_with_prefix("cluster");
        c.register(
            "publishes_sent",
            "Publications handed to Redis",
            m.cluster.publishes_sent.clone(),
        );
        c.register(
            "publishes_received",
            "Other nodes' publications delivered here",
            m.cluster.publishes_received.clone(),
        );
        c.register(
            "publishes_dropped",
            "Publications that reached this node's clients only",
            m.cluster.publishes_dropped.clone(),
        );
        c.register(
            "forwarded_requests",
            "Requests for another node's session forwarded to it",
            m.cluster.forwarded_requests.clone(),
        );
        c.register(
            "links",
            "Links open to other nodes, which forwarded requests take",
            m.cluster.links.clone(),
        );
        c.register(
            "redis_connected",
            "1 while connected to the Redis master",
            m.cluster.redis_connected.clone(),
        );
        c.register(
            "publishes_unreplicated",
            "Kept publications that fewer replicas confirmed than redis_min_replicas asks (answered 504)",
            m.cluster.publishes_unreplicated.clone(),
        );
        // sockjs_gateway_redis_failovers_total, the name docs/cluster.md
        // gives operators, outside cluster_.
        r.register(
            "redis_failovers",
            "Redis masters this node reached other than the one before: failovers (or restarts)",
            m.cluster.redis_failovers.clone(),
        );
        let h = r.sub_registry_with_prefix("history");
        h.register(
            "streams",
            "Streams the in-memory history holds",
            m.history.streams.clone(),
        );
        h.register(
            "bytes",
            "Bytes the in-memory history's streams cost (publications and bookkeeping)",
            m.history.bytes.clone(),
        );
        h.register(
            "evicted",
            "Streams the in-memory history dropped to stay within history_max_bytes",
            m.history.evicted.clone(),
        );
        h.register(
            "recovered",
            "Publications sent by recoveries on SUBSCRIBE",
            m.history.recovered.clone(),
        );
        h.register(
            "recoveries_failed",
            "SUBSCRIBEs that asked to recover and got x-recovered: false",
            m.history.recoveries_failed.clone(),
        );
        h.register(
            "gaps_filled",
            "Publications read back from history to close a gap",
            m.history.gaps_filled.clone(),
        );
        h.register(
            "losses_told",
            "Live subscriptions told they may have missed publications (x-recovered: false)",
            m.history.losses_told.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The handles of service `name`; its series appear (at zero) at once.
    pub fn service(&self, name: &str) -> ServiceMetrics {
        let service = || name.to_owned();
        let one = |f: &Family<ServiceLabel, Counter>| {
            f.get_or_create(&ServiceLabel { service: service() })
                .clone()
        };
        let by_transport = |transport| TransportLabels {
            service: service(),
            transport,
        };
        ServiceMetrics {
            sessions_open: each(&self.sessions_open, TRANSPORTS, by_transport),
            sessions_opened: each(&self.sessions_opened, TRANSPORTS, by_transport),
            sessions_closed: each(&self.sessions_closed, CLOSE_REASONS, |reason| {
                ReasonLabels {
                    service: service(),
                    reason,
                }
            }),
            messages_in: one(&self.messages_in),
            messages_out: one(&self.messages_out),
            bytes_in: one(&self.bytes_in),
            bytes_out: one(&self.bytes_out),
            polls: one(&self.polls),
            stream_rollovers: one(&self.stream_rollovers),
            queue_overflow_closes: one(&self.queue_overflow_closes),
            upstream_connects: each(&self.upstream_connects, UPSTREAM_RESULTS, |result| {
                ResultLabels {
                    service: service(),
                    result,
                }
            }),
            limited: each(&self.limited, LIMITS, |limit| LimitLabels {
                service: service(),
                limit,
            }),
            subscribe_webhook: each(&self.subscribe_webhook, SUBSCRIBE_ANSWERS, |answer| {
                AnswerLabels {
                    service: service(),
                    answer,
                }
            }),
            tokens: each(&self.tokens, TOKEN_EVENTS, |event| EventLabels {
                service: service(),
                event,
            }),
        }
    }

    /// `GET /metrics`.
    pub async fn serve() -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(get().encode())
    }

    /// Every metric as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
