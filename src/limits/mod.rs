//! Connection-level limits that keep the gateway standing under abuse,
//! whatever the transport: the size of a request head ([`head`]) and the
//! time a peer may leave written bytes unread ([`write_timeout`]).

pub mod head;
pub mod write_timeout;
