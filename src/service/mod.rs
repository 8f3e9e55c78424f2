//! The backend-facing API and the built-in services.

pub mod api;
pub mod builtin;
pub mod hub;
pub mod inbox;
pub mod proxy;
pub mod stomp;
