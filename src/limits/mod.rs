//! Connection-level limits that keep the gateway standing under abuse,
//! whatever the transport: the size of a request head ([`head`]).

pub mod head;
