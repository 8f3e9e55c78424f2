//! # sockjs-gateway
//!
//! A SockJS 0.3.3 server on actix. Browsers running `sockjs-client` get one
//! WebSocket-like connection over whichever transport works for them
//! (websocket, xhr-streaming, eventsource, htmlfile, xhr-polling,
//! jsonp-polling); every transport maps onto one session actor, so a
//! backend never knows which one a client uses.
//!
//! ## Layout
//!
//! - [`protocol`]: frames, SockJS JSON escaping, messages (a fan-out's
//!   shared, escaped-once tail), id and callback checks, client payload
//!   decoding, transport wrapping. Pure functions.
//! - [`session`]: the session actor ([`session::actor`]): queue, the one
//!   receiver, heartbeat and disconnect timers, state; the seam it calls
//!   the backend through ([`session::handler`]: `Handler`, `SessionCtx`,
//!   deferred opening, asynchronous work and backpressure in the session's
//!   task); the receiver handed to transports ([`session::receiver`]) and
//!   the queue under it ([`session::outbox`]); the registry of live
//!   sessions ([`session::registry`]).
//! - [`transport`]: one file per transport family ([`transport::polling`],
//!   [`transport::streaming`], [`transport::send`],
//!   [`transport::websocket`], whose socket runs inside its session's
//!   task), the fixed pages ([`transport::pages`]),
//!   shared headers, CORS and origin policy ([`transport::headers`]),
//!   requests for a session another node holds ([`transport::forward`]),
//!   hang-up detection ([`transport::hangup`]), URL routing
//!   ([`transport::routes`]).
//! - [`service`]: the backend API ([`service::api`]), a mounted service
//!   ([`service::hub`]), the built-in services ([`service::builtin`]),
//!   other nodes' events delivered here ([`service::inbox`]), the
//!   `proxy` kind, one upstream WebSocket per session
//!   ([`service::proxy`]: upstream choice, handshake, close codes), and the
//!   `stomp` kind ([`service::stomp`]: frame codec, destination patterns,
//!   subscriptions and fan-out, users' sessions, the per-session protocol,
//!   JWT auth, the connect and app webhooks, the demo's sign-in).
//! - [`api`]: the HTTP API backends publish through, on its own listener
//!   (endpoints, key check, JSON errors).
//! - [`cluster`]: many nodes on one Redis: the bus services publish
//!   through ([`cluster::Bus`]: alone, or [`cluster::redis`]), what travels
//!   between nodes ([`cluster::event`]), what each node reports of itself
//!   ([`cluster::presence`]), which node holds each HTTP session
//!   ([`cluster::owners`]); the requests for another node's session are
//!   forwarded by [`transport::forward`], and other nodes' events reach
//!   this node's services through [`service::inbox`].
//! - [`metrics`]: Prometheus metrics (sessions by transport and close
//!   reason, messages, polls, rollovers, upstream connects, the cluster's
//!   publications and forwards), served at `/metrics` on the API's
//!   listener; each service holds its handles.
//! - [`limits`]: connection-level limits, whatever the transport, below
//!   every other layer: the open-file budget, `max_connections` and the
//!   derived `max_sessions` ([`limits::fds`]), the accept-error log rate
//!   ([`limits::accept_log`]), request head size ([`limits::head`]),
//!   stalled readers cut off ([`limits::write_timeout`]), memory handed
//!   back after a load ([`limits::trim`]).
//! - [`config`]: configuration and its defaults, with comma-separated
//!   lists from the environment ([`config::list`]), `[cluster]`
//!   ([`config::cluster`]), the rules for
//!   routable prefixes ([`config::prefix`]), upstream URLs
//!   ([`config::upstream_url`]), webhook URLs ([`config::webhook_url`])
//!   and near-miss variable names ([`config::env`]); [`server`]:
//!   assembling it all into an actix-web server, the API's listener and
//!   the demo's sign-in included.
//!
//! ## A backend in Rust
//!
//! Depend on the crate (from a checkout or this repository; it is not on
//! crates.io), with actix-web for the runtime and a logger:
//!
//! ```toml
//! [dependencies]
//! sockjs-gateway = { path = "../sockjs-gateway" }
//! actix-web = { version = "4", default-features = false, features = ["macros"] }
//! env_logger = "0.11"
//! ```
//!
//! A [`Service`] makes one [`Handler`] per session. Handlers run inside the
//! session's actor, one callback at a time.
//!
//! ```
//! use sockjs_gateway::{Config, Gateway, Handler, Service, SessionCtx, SessionInfo};
//! use std::sync::Arc;
//!
//! /// Greets each client, then upper-cases what it says to everyone.
//! struct Shout;
//!
//! impl Service for Shout {
//!     fn new_session(&self, _info: &SessionInfo) -> Box<dyn Handler> {
//!         Box::new(ShoutSession)
//!     }
//! }
//!
//! struct ShoutSession;
//!
//! impl Handler for ShoutSession {
//!     fn on_open(&mut self, ctx: &mut SessionCtx<'_>) {
//!         ctx.send("welcome");
//!     }
//!     fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
//!         if message == "bye" {
//!             ctx.close(3001, "bye");
//!         } else {
//!             ctx.service().broadcast(message.to_uppercase());
//!         }
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! // The gateway logs through the `log` crate: start a logger to see it.
//! let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
//!     .try_init();
//! let toml = r#"
//!     listen = "127.0.0.1:0"
//!     [services.shout]
//!     prefix = "/shout"
//! "#;
//! let config = Config::from_toml(toml).expect("valid config");
//! actix_web::rt::System::new().block_on(async {
//!     let running = Gateway::new(config).backend("shout", Arc::new(Shout)).start()?;
//!     println!("listening on {:?}", running.addrs);
//!     // A program would call `running.serve_until_signal().await`: it
//!     // serves until SIGTERM or Ctrl-C, then sends every session a close
//!     // frame. Here the server runs in the background and stops at once.
//!     let handle = running.server.handle();
//!     actix_web::rt::spawn(running.server);
//!     handle.stop(true).await;
//!     Ok(())
//! })
//! # }
//! ```

// Request checks return the HTTP answer itself as their error; it is built
// once per refused request, never copied in a loop.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod cluster;
pub mod config;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod service;
pub mod session;
pub mod transport;

pub use config::{Config, ServiceConfig};
pub use protocol::CloseCode;
pub use server::{Gateway, Running, Shutdown};
pub use service::api::{
    CloseReason, Handler, Open, Service, SessionCtx, SessionHandle, SessionInfo,
};
pub use service::hub::ServiceHub;
