//! HTTP and WebSocket adapters: each turns requests into session receivers
//! and client messages. No transport holds application state.

pub mod binding;
pub mod callback;
pub mod client_addr;
pub mod forward;
pub mod hangup;
pub mod headers;
pub mod link;
pub mod pages;
pub mod polling;
pub mod receive;
pub mod routes;
pub mod send;
pub mod streaming;
pub mod websocket;
