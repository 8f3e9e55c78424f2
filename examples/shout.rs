//! The README's library example: a service that upper-cases every message
//! and sends it to all sessions. `tests/readme.rs` keeps the two equal.
//!   cargo run --release --example shout   (then connect to /shout)
use sockjs_gateway::{Config, Gateway, Handler, Service, SessionCtx, SessionInfo};
use std::sync::Arc;

struct Shout;
impl Service for Shout {
    fn new_session(&self, _info: &SessionInfo) -> Box<dyn Handler> {
        Box::new(ShoutSession)
    }
}
struct ShoutSession;
impl Handler for ShoutSession {
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        ctx.service().broadcast(message.to_uppercase());
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    // The gateway logs through the `log` crate: start a logger to see it.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config::from_toml("[services.shout]\nprefix = \"/shout\"\n").unwrap();
    let running = Gateway::new(config)
        .backend("shout", Arc::new(Shout))
        .start()?;
    // On SIGTERM or Ctrl-C: close frames to every session, then a graceful
    // stop. (Awaiting `running.server` alone would die on Ctrl-C without
    // telling any client.)
    running.serve_until_signal().await
}
