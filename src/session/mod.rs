//! Sessions: one actor per session whatever its transport, the handler seam
//! it calls into, the hub it asks of its service, the receiver it writes
//! to, and the registry of live sessions.

pub mod actor;
pub mod handler;
pub mod hub;
pub mod outbox;
pub mod receiver;
pub mod registry;
