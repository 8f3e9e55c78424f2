//! Connection-level limits that keep the gateway standing under abuse,
//! whatever the transport: open files and connections ([`fds`]) and the
//! accept-error log at their edge ([`accept_log`]), the size
//! of a request head ([`head`]) and the time a peer may leave written bytes
//! unread ([`write_timeout`]); and memory handed back once a load has
//! passed ([`trim`]). Used by every layer above; uses none of them.

pub mod accept_log;
pub mod fds;
pub mod head;
pub mod trim;
pub mod write_timeout;
