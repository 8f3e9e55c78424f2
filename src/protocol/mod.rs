//! The SockJS 0.3.3 wire protocol as pure functions: frames, escaping, ids,
//! messages (shared fan-out tails), client payloads, transport wrapping,
//! and the byte scanning they share.
//! No I/O here.

pub mod escape;
pub mod frame;
pub mod ids;
pub mod message;
pub mod payload;
pub mod scan;
pub mod wrap;

pub use frame::{CloseCode, Frame};
pub use message::Message;
pub use payload::PayloadError;
pub use wrap::Wrapping;
