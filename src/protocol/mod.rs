//! The SockJS 0.3.3 wire protocol as pure functions: frames, escaping, ids,
//! messages (shared fan-out tails), client payloads, transport wrapping,
//! the client in `X-Forwarded-For`, whether a `Host` names this machine,
//! and the byte scanning they share.
//! No I/O here.

pub mod escape;
pub mod forwarded_for;
pub mod frame;
pub mod ids;
pub mod loopback_host;
pub mod message;
pub mod payload;
pub mod scan;
pub mod wrap;

pub use frame::{CloseCode, Frame};
pub use message::Message;
pub use payload::PayloadError;
pub use wrap::Wrapping;
