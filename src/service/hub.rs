//! One mounted service: its configuration, its backend and its sessions.

use crate::config::ServiceConfig;
use crate::protocol::CloseCode;
use crate::service::api::CloseReason;
use crate::service::api::Service;
use crate::session::actor::{CloseSession, Push};
use crate::session::registry::Registry;
use std::sync::Arc;

pub struct ServiceHub {
    pub config: ServiceConfig,
    /// Peers whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub backend: Arc<dyn Service>,
    pub registry: Registry,
}

impl ServiceHub {
    pub fn new(
        config: ServiceConfig,
        backend: Arc<dyn Service>,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Arc<Self> {
        let registry = Registry::new(config.max_sessions);
        Arc::new(ServiceHub {
            config,
            trusted_proxies,
            backend,
            registry,
        })
    }

    /// Sends a message to every open session of this service, whatever
    /// transport each uses. The message is shared, not copied, per session.
    pub fn broadcast(&self, message: impl Into<Arc<str>>) {
        let message = message.into();
        self.registry
            .for_each(|addr| addr.do_send(Push(message.clone())));
    }

    /// Closes every session of this service with `code` (e.g. at shutdown).
    pub fn close_all(&self, code: &CloseCode) {
        self.registry
            .for_each(|addr| addr.do_send(CloseSession(CloseReason::Server(code.clone()))));
    }

    /// Live sessions of this service.
    pub fn session_count(&self) -> usize {
        self.registry.len()
    }
}
