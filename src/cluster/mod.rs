//! Many gateway nodes as one: what a node publishes reaches the clients of
//! every node, and any node can serve a request for a session that another
//! node holds.
//!
//! - [`Bus`]: the one interface services publish through. [`Alone`] is a
//!   single process (no `[cluster]`); [`redis::RedisBus`] fans out over
//!   Redis pub/sub, keeps the connection up, and writes and reads each
//!   node's [`presence`].
//! - [`event`]: what travels between nodes, and its wire form.
//! - [`owners`]: which node holds each HTTP session, so that a poll or a
//!   send reaching another node is forwarded to it.
//!
//! A node delivers its own publications to its own clients before handing
//! them to the bus, and skips them when Redis echoes them back: each client
//! gets each publication once, and a node cut off from Redis still serves
//! its own clients.

pub mod event;
pub mod owners;
pub mod presence;
pub mod redis;

pub use event::Event;
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

/// Where services publish what the other nodes must deliver too.
pub trait Bus: Send + Sync {
    /// Hands `event` to every other node; the caller has delivered it here.
    fn publish(&self, event: Event);
    fn state(&self) -> State;
    /// The other live nodes, as of their last presence write.
    fn peers(&self) -> Arc<Vec<Presence>>;
}

impl dyn Bus {
    /// Publishes the event `make` builds, built only when there are other
    /// nodes to tell (a single process allocates nothing).
    pub fn publish_with(&self, make: impl FnOnce() -> Event) {
        if self.state() != State::Alone {
            self.publish(make());
        }
    }
}

/// What a node does with the other nodes' events, and what it reports of
/// itself: implemented by the layer that holds the services.
pub trait Inbox: Send + Sync {
    fn deliver(&self, event: Event);
    /// This node's sessions, subscriptions and users.
    fn presence(&self) -> Presence;
    /// The HTTP sessions this node holds, as (service, session id): their
    /// owner records are written again when Redis comes back (it may have
    /// lost them).
    fn held_sessions(&self) -> Vec<(String, Box<str>)>;
}

/// A single gateway process.
pub struct Alone;

impl Bus for Alone {
    fn publish(&self, _: Event) {}
    fn state(&self) -> State {
        State::Alone
    }
    fn peers(&self) -> Arc<Vec<Presence>> {
        Arc::default()
    }
}

/// What a service needs of the cluster: the bus, and where HTTP sessions
/// live when there is more than one node.
#[derive(Clone)]
pub struct Cluster {
    pub bus: Arc<dyn Bus>,
    pub owners: Option<Arc<owners::Owners>>,
}

impl Cluster {
    pub fn alone() -> Cluster {
        Cluster {
            bus: Arc::new(Alone),
            owners: None,
        }
    }
}
