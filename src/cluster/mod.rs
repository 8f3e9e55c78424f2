//! Many gateway nodes as one: what a node publishes reaches the clients of
//! every node, and any node can serve a request for a session that another
//! node holds.
//!
//! - [`Bus`]: the one interface services publish through. [`Alone`] is a
//!   single process (no `[cluster]`); [`redis::RedisBus`] fans out over
//!   Redis pub/sub, keeps the connection up, and writes and reads each
//!   node's [`presence`].
//! - [`redis_server`]: where the Redis master is: one server, or the one
//!   Sentinels name (followed through failovers), or a Redis Cluster's
//!   masters; TLS to any. [`redis_conn`]: a connection to either, and hash
//!   slots. [`redis_batch`]: publications sent as a pipeline per master,
//!   and again where they did not run. [`redis_shards`]: on a Redis Cluster, the sharded channels a
//!   node hears, kept through slot moves and failovers.
//! - [`event`]: what travels between nodes, and its wire form.
//! - [`history`]: publications kept per destination, with offsets and
//!   epochs, for recovery: in this process ([`history::MemoryHistory`])
//!   or in Redis ([`redis_history::RedisHistory`]).
//! - [`owners`]: which node holds each HTTP session, so that a poll or a
//!   send reaching another node is forwarded to it.
//! - [`tally`]: what the other nodes report they reached with an event,
//!   for the API's true `delivered` counts.
//!
//! A node delivers its own publications to its own clients when Redis
//! echoes them back, as every other node does: every client sees the
//! publications of every node in the one order Redis gave them. While Redis
//! is unreachable a node delivers its own publications itself, so its own
//! clients are still served; and one whose echo the link lost on the way
//! is delivered then, so none is lost or delivered twice here.

pub mod event;
pub mod history;
pub mod owners;
pub mod presence;
pub mod redis;
pub mod redis_batch;
pub mod redis_conn;
pub mod redis_history;
pub mod redis_server;
pub mod redis_shards;
pub mod tally;

pub use event::Event;
use futures_util::future::BoxFuture;
use history::{History, MemoryHistory, Position, Retention};
pub use presence::Presence;
use std::sync::Arc;

/// How this node stands with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No cluster configured.
    Alone,
    /// Connected to Redis: publications reach every node.
    Up,
    /// Redis is unreachable: publications reach this node's clients only.
    Degraded,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Alone => "alone",
            State::Up => "up",
            State::Degraded => "degraded",
        }
    }
}

/// Where services publish what every node delivers to its clients.
pub trait Bus: Send + Sync {
    /// Delivers `event` on every node, this one included (through its
    /// [`Inbox`]), in the order every node sees; or, when it cannot take
    /// it (no other nodes, or too many waiting), tells the caller to
    /// deliver it here.
    fn publish(&self, event: Event) -> Delivery;
    /// Publishes `event` as [`Bus::publish`] does, and does what `asks`
    /// asks: keep it in history in the same step, count what the other
    /// nodes reached with it; resolves to the answers. The event comes back
    /// when the bus cannot take it now: the caller delivers it here.
    fn publish_asking(
        &self,
        event: Event,
        asks: Asks,
    ) -> Result<BoxFuture<'static, Answers>, Event>;
    /// Resolves once everything published before has reached Redis (or
    /// failed to): what anyone publishes after that, on any node, comes
    /// after it everywhere.
    fn flushed(&self) -> BoxFuture<'static, ()>;
    fn state(&self) -> State;
    /// The other live nodes, as of their last presence write.
    fn peers(&self) -> Arc<Vec<Presence>>;
    /// The sum of these [`presence::field`]s over the other live nodes'
    /// counts; 0 alone, or when Redis does not answer in time.
    fn counted_elsewhere(&self, fields: Vec<String>) -> BoxFuture<'static, usize>;
    /// The other live nodes' counts whose field starts with `prefix`, one
    /// entry per node and field.
    fn listed_elsewhere(&self, prefix: String) -> BoxFuture<'static, Vec<(String, usize)>>;
    /// This node's sessions hold `tag` ([`Event::tag`]) from now on, or
    /// no longer (`false`): called once per change, in order. On a Redis
    /// Cluster a node hears only the tags it holds, each on a sharded
    /// channel; elsewhere every node hears every event.
    fn follow(&self, _tag: &str, _held: bool) {}
    /// Resolves once this node hears `tag`'s events (a first holder's
    /// [`Bus::follow`] asked for them), or after `request_timeout`; `None`
    /// when it hears them now (or hears every event).
    fn hearing(&self, _tag: &str) -> Option<BoxFuture<'static, ()>> {
        None
    }
}

/// What a publication asks of the bus beyond delivery.
#[derive(Debug, Default)]
pub struct Asks {
    /// Appended to a history stream by the same step that publishes it.
    pub keep: Option<Keep>,
    /// Published only if no publication claimed this idempotency key
    /// before, the claim made by the same step that publishes it.
    pub once: Option<Once>,
    /// The other nodes report what they reached with it.
    pub count: bool,
}

/// An idempotency key to claim with a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    /// What the key is scoped to: the destination's stream name (its
    /// service and destination), whether or not history keeps it.
    pub stream: String,
    pub key: String,
    /// How long the claim lasts.
    pub window: std::time::Duration,
}

/// Where a publication is kept.
#[derive(Debug)]
pub struct Keep {
    pub stream: String,
    pub retention: Retention,
    /// Delivered here without a position when Redis cannot take it,
    /// rather than failed (a client's SEND, whom no error could reach).
    pub fallback: bool,
}

/// What a publication's asks got.
#[derive(Debug)]
pub struct Answers {
    /// With `keep` or `once`: whether it was published (and where it is
    /// kept), or why not.
    pub published: Option<Result<Published, Failed>>,
    /// With `count`: what the other nodes reported; `None` when it did
    /// not reach them (no link).
    pub elsewhere: Option<tally::Elsewhere>,
}

/// A publication that is out: its position where history keeps it; with
/// `duplicate`, an earlier one with its idempotency key was, and this one
/// was not published (the position is the earlier one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub position: Option<Position>,
    pub duplicate: bool,
}

/// Why a publication that had to go through Redis did not (unless
/// `fallback` delivered it here), and whether it may all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub why: String,
    /// `false`: nothing was or will be delivered (Redis was not reached,
    /// or refused it). `true`: the gateway cannot know (Redis took it and
    /// did not answer in time, or the connection broke on the way).
    pub maybe_published: bool,
}

impl Failed {
    /// Nothing was published.
    pub fn not(why: impl Into<String>) -> Failed {
        Failed {
            why: why.into(),
            maybe_published: false,
        }
    }
}

/// Who delivers a publication to this node's clients.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The caller, now: there are no other nodes, or the bus is full.
    Here,
    /// The bus, when the publication comes back in the cluster's order.
    Bus,
}

impl dyn Bus {
    /// Publishes the event `make` builds, built only when there are other
    /// nodes (a single process allocates nothing).
    pub fn publish_with(&self, make: impl FnOnce() -> Event) -> Delivery {
        if self.state() == State::Alone {
            return Delivery::Here;
        }
        self.publish(make())
    }
}

/// What a node does with the other nodes' events, and what it reports of
/// itself: implemented by the layer that holds the services.
pub trait Inbox: Send + Sync {
    /// Delivers `event` to this node's sessions; how many it reached (or,
    /// for a count, how many it counted).
    fn deliver(&self, event: Event) -> usize;
    /// This node's sessions by service.
    fn presence(&self) -> Presence;
    /// This node's subscribers by destination and sessions by user.
    fn counts(&self) -> presence::Counts;
    /// The HTTP sessions this node holds, as (service, session id): their
    /// owner records are written again when Redis comes back (it may have
    /// lost them).
    fn held_sessions(&self) -> Vec<(String, Box<str>)>;
    /// The link to the other nodes is (back) up, before any event is read
    /// on it: what was published meanwhile is to be read from history.
    fn relinked(&self);
    /// This node hears the events of `tag` from now on (again): what was
    /// published to it before is to be read from history (a Redis
    /// Cluster's sharded subscription, made or made again).
    fn heard(&self, tag: &str);
}

/// A single gateway process.
pub struct Alone;

impl Bus for Alone {
    fn publish(&self, _: Event) -> Delivery {
        Delivery::Here
    }
    fn publish_asking(&self, event: Event, _: Asks) -> Result<BoxFuture<'static, Answers>, Event> {
        Err(event)
    }
    fn flushed(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
    fn state(&self) -> State {
        State::Alone
    }
    fn peers(&self) -> Arc<Vec<Presence>> {
        Arc::default()
    }
    fn counted_elsewhere(&self, _: Vec<String>) -> BoxFuture<'static, usize> {
        Box::pin(std::future::ready(0))
    }
    fn listed_elsewhere(&self, _: String) -> BoxFuture<'static, Vec<(String, usize)>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// What a service needs of the cluster: the bus, where HTTP sessions live
/// when there is more than one node, and where publications are kept.
#[derive(Clone)]
pub struct Cluster {
    pub bus: Arc<dyn Bus>,
    pub owners: Option<Arc<owners::Owners>>,
    /// Where every service's publications are kept (Redis); `None`: each
    /// service keeps its own in memory ([`Cluster::history_of`]).
    pub history: Option<Arc<dyn History>>,
}

impl Cluster {
    pub fn alone() -> Cluster {
        Cluster {
            bus: Arc::new(Alone),
            owners: None,
            history: None,
        }
    }

    /// Where a service keeps its publications: the cluster's store, or its
    /// own in memory, costing at most `max_bytes`.
    pub fn history_of(&self, max_bytes: usize) -> Arc<dyn History> {
        match &self.history {
            Some(h) => h.clone(),
            None => Arc::new(MemoryHistory::new(max_bytes)),
        }
    }
}
