//! The SockJS 0.3.3 wire protocol as pure functions: frames, escaping, ids,
//! client payloads, transport wrapping, and the byte scanning they share.
//! No I/O here.

pub mod escape;
pub mod frame;
pub mod ids;
pub mod payload;
pub mod scan;
pub mod wrap;

pub use frame::{CloseCode, Frame};
pub use payload::PayloadError;
pub use wrap::Wrapping;
