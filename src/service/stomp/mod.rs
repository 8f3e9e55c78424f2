//! The `stomp` service kind (issue 8), being built: so far its frame codec
//! ([`frame`]), pure functions the session handler will drive. Not yet
//! mountable by config.

pub mod frame;
