//! Links between nodes: how a node hands a request for an HTTP session
//! that another node holds ([`crate::transport::forward`]) to that node.
//! Each worker keeps one WebSocket to each owner it forwards to, and every
//! forwarded request and its answer travel on it as frames ([`wire`]), so a
//! forward costs neither node a connection, an HTTP client's work or an
//! HTTP parse, and what is ready for one node leaves in one message
//! ([`outgoing`]).
//!
//! The forwarding side is [`client`], the owner's [`server`].

pub mod client;
mod outgoing;
pub mod server;
pub mod wire;

/// Where a node takes links (only from nodes: see [`server`]).
pub const LINK_PATH: &str = "/_cluster/link";

/// Body bytes of one answer the owner may send beyond what the forwarding
/// node has passed on to its client.
pub const WINDOW: usize = 256 * 1024;

/// How often the forwarding node pings a link, and how long either side
/// lets it stay silent (no frame, no ping or pong) before it counts as
/// broken: a peer whose host vanished sends no FIN.
pub const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
pub const SILENT_FOR: std::time::Duration = std::time::Duration::from_secs(15);
