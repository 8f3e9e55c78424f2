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

/// The most one message carries when it holds several frames: what is
/// ready beyond it leaves in the next. One frame alone may be larger (a
/// request with a large body), never larger than its peer takes.
pub const BATCH: usize = 256 * 1024;

/// Body bytes in one `Chunk` frame at most: a larger piece of an answer
/// goes as several.
pub const CHUNK: usize = 64 * 1024;

/// The most an answer's `Head` frame holds: headers past it are left out
/// (the gateway's own answers carry a few hundred bytes).
pub const HEAD: usize = 64 * 1024;

/// The largest message the forwarding node takes: a batch of answers, or
/// one `Head` (every frame of an answer is at most [`BATCH`] or [`HEAD`]).
pub const ANSWERS_MAX: usize = BATCH + HEAD;

/// The largest message an owner takes: a batch of requests, or one
/// request of the largest body any service takes (`max_message_bytes`)
/// with a head within `max_header_bytes`, and the frame's own fields and
/// the headers the forwarding node adds. Both sides know it from the
/// config they share, so no client's request can make a message the owner
/// refuses, which would drop the link for every session on it.
pub fn requests_max(largest_body: usize, max_header_bytes: usize) -> usize {
    (largest_body + max_header_bytes + 64 * 1024).max(BATCH)
}

/// How often the forwarding node pings a link, and how long either side
/// lets it stay silent (no frame, no ping or pong) before it counts as
/// broken: a peer whose host vanished sends no FIN.
pub const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
pub const SILENT_FOR: std::time::Duration = std::time::Duration::from_secs(15);
