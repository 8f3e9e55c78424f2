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
//! Layers, each using only those above it in this list (a test in
//! `tests/layers.rs` fails on an import that runs the other way):
//!
//! - Leaves, used by every layer and using none: [`protocol`] (frames,
//!   SockJS JSON escaping, messages with a fan-out's shared, escaped-once
//!   tail, id and callback checks, client payload decoding, transport
//!   wrapping, the client in `X-Forwarded-For` ([`protocol::forwarded_for`]),
//!   whether a `Host` names this machine ([`protocol::loopback_host`]):
//!   pure functions); [`limits`] (the open-file budget,
//!   `max_connections` and the derived `max_sessions` ([`limits::fds`]), the
//!   accept-error log rate, request head size, stalled readers cut off,
//!   sessions per client address ([`limits::per_address`]) and messages
//!   per session ([`limits::message_rate`]), memory handed back after a
//!   load); [`metrics`] (Prometheus handles,
//!   served at `/metrics` on the API's listener).
//! - [`config`]: plain values and the checks of their shape, one file per
//!   section ([`config::service`], [`config::auth`], [`config::api`],
//!   [`config::cluster`], [`config::shutdown`], the top-level limits),
//!   with comma-separated lists from the environment ([`config::list`]),
//!   routable prefixes, upstream and webhook URLs, and near-miss variable
//!   names. What only a service kind can check (a `stomp` service's
//!   destination patterns and JWT key) it checks when it is built.
//! - [`session`]: the session actor ([`session::actor`]: queue, the one
//!   receiver, heartbeat and disconnect timers, state); the seam it calls
//!   the backend through ([`session::handler`]: `Handler`, `SessionCtx`,
//!   deferred opening, asynchronous work and backpressure in the session's
//!   task); what it asks of its service ([`session::hub::Hub`]: config,
//!   metrics, a handler per session, forgetting, broadcasting); the
//!   receiver handed to transports ([`session::receiver`]) and the queue
//!   under it ([`session::outbox`]); the registry of live sessions.
//! - [`cluster`]: many nodes on one Redis: the bus services publish
//!   through ([`cluster::Bus`]: alone, or [`cluster::redis`], on the
//!   master [`cluster::redis_server`] finds: one server, Sentinel's, or a
//!   Redis Cluster's masters, over TLS or not; [`cluster::redis_conn`]:
//!   one connection type for them, and hash slots; [`cluster::redis_shards`]:
//!   on a Redis Cluster, the sharded channels a node hears), what travels
//!   between nodes ([`cluster::event`]), what each node reports of itself
//!   ([`cluster::presence`]: a small presence, and counts written as
//!   changes), which node holds each HTTP session ([`cluster::owners`]),
//!   publications kept per destination for recovery ([`cluster::history`]:
//!   offsets, epochs, marks of a store's moment for destinations with no
//!   stream, and the in-memory store, capped per service;
//!   [`cluster::redis_history`]: the Redis store, appended to by the
//!   script that publishes, never written by a read).
//! - [`service`]: the backend API ([`service::api`]), a mounted service
//!   ([`service::hub`], which implements the session's `Hub` over the
//!   cluster), the built-in services ([`service::builtin`]), other nodes'
//!   events delivered here ([`service::inbox`]), the `proxy` kind
//!   ([`service::proxy`]: upstream choice, handshake, close codes) and the
//!   `stomp` kind ([`service::stomp`]: frame codec, destination patterns,
//!   subscriptions and fan-out with history positions, recovery on
//!   SUBSCRIBE, users and their session cap, the per-session protocol,
//!   JWT auth and token expiry ([`service::stomp::expiry`]), the connect,
//!   app and subscribe webhooks, the demo's sign-in).
//! - [`transport`]: one file per transport family ([`transport::polling`],
//!   [`transport::streaming`], [`transport::send`],
//!   [`transport::websocket`], whose socket runs inside its session's
//!   task), finding or making a session for a receiving request
//!   ([`transport::receive`]), the fixed pages ([`transport::pages`]),
//!   headers, CORS and origin policy ([`transport::headers`]), the `c`
//!   callback ([`transport::callback`]), who speaks for the client
//!   ([`transport::client_addr`]: trusted proxies, and other nodes by
//!   `cluster.secret`), requests for a session another node holds
//!   ([`transport::forward`], called by `receive` and `send`, calling
//!   neither) and the links between nodes they travel on
//!   ([`transport::link`]: frames, the forwarding side, the owner's side,
//!   which runs them through the routes), hang-up detection
//!   ([`transport::hangup`]), URL routing ([`transport::routes`]).
//! - [`api`]: the HTTP API backends publish through, on its own listener
//!   (endpoints, key check, JSON errors).
//! - [`server`]: assembling it all into an actix-web server, the API's
//!   listener and the demo's sign-in included.
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
