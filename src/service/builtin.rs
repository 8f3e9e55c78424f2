//! The services that can be mounted from configuration alone.

use crate::cluster::Cluster;
use crate::config::{AuthConfig, ServiceConfig, ServiceKind};
use crate::service::api::{Handler, Service, SessionCtx, SessionInfo};
use crate::service::proxy::ProxyService;
use crate::service::stomp::StompService;
use std::sync::Arc;

/// A built-in backend.
pub struct Builtin {
    pub service: Arc<dyn Service>,
    /// The same backend, typed, for `kind = "stomp"`: what the HTTP API
    /// publishes through.
    pub stomp: Option<Arc<StompService>>,
}

/// The backend for service `name`'s `kind`, or why its configuration
/// cannot run (the message names the key).
pub fn for_config(
    name: &str,
    config: &ServiceConfig,
    auth: &AuthConfig,
    cluster: &Cluster,
) -> Result<Builtin, String> {
    let service: Arc<dyn Service> = match config.kind {
        ServiceKind::Echo => Arc::new(Echo),
        ServiceKind::Close => Arc::new(CloseAtOnce),
        ServiceKind::Amplify => Arc::new(Amplify),
        ServiceKind::Broadcast => Arc::new(Broadcast),
        ServiceKind::Proxy => Arc::new(ProxyService::new(config)),
        ServiceKind::Stomp => {
            let stomp = Arc::new(StompService::new(name, config, auth, cluster)?);
            return Ok(Builtin {
                service: stomp.clone(),
                stomp: Some(stomp),
            });
        }
    };
    Ok(Builtin {
        service,
        stomp: None,
    })
}

/// Sends every message back.
pub struct Echo;
impl Service for Echo {
    fn new_session(&self, _: &SessionInfo) -> Box<dyn Handler> {
        Box::new(Echo)
    }
}
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        ctx.send(message);
    }
}

/// Closes every session as soon as it opens, with 3000 "Go away!".
pub struct CloseAtOnce;
impl Service for CloseAtOnce {
    fn new_session(&self, _: &SessionInfo) -> Box<dyn Handler> {
        Box::new(CloseAtOnce)
    }
}
impl Handler for CloseAtOnce {
    fn on_open(&mut self, ctx: &mut SessionCtx<'_>) {
        ctx.close(3000, "Go away!");
    }
    fn on_message(&mut self, _: &mut SessionCtx<'_>, _: String) {}
}

/// Message `n` gets back a string of 2^n `x`, n clamped to 1..=18.
pub struct Amplify;
impl Service for Amplify {
    fn new_session(&self, _: &SessionInfo) -> Box<dyn Handler> {
        Box::new(Amplify)
    }
}
impl Handler for Amplify {
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        ctx.send("x".repeat(1 << amplify_exponent(&message)));
    }
}

/// The exponent for the amplify service: a number clamped to 1..=18; anything
/// else counts as 1.
pub fn amplify_exponent(message: &str) -> u32 {
    message
        .trim()
        .parse::<i64>()
        .map(|n| n.clamp(1, 18) as u32)
        .unwrap_or(1)
}

/// Sends every message to every open session of the service.
pub struct Broadcast;
impl Service for Broadcast {
    fn new_session(&self, _: &SessionInfo) -> Box<dyn Handler> {
        Box::new(Broadcast)
    }
}
impl Handler for Broadcast {
    fn on_message(&mut self, ctx: &mut SessionCtx<'_>, message: String) {
        ctx.service().broadcast(message);
    }
}

#[cfg(test)]
mod tests {
    use super::amplify_exponent;

    #[test]
    fn amplify_clamps() {
        assert_eq!(amplify_exponent("3"), 3);
        assert_eq!(amplify_exponent("0"), 1);
        assert_eq!(amplify_exponent("-5"), 1);
        assert_eq!(amplify_exponent("100"), 18);
        assert_eq!(amplify_exponent("x"), 1);
    }
}
