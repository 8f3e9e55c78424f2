//! One mounted service: its configuration, its backend and its sessions.

use crate::cluster::{Cluster, Delivery, Event};
use crate::config::ServiceConfig;
use crate::limits::per_address::{AddressLimits, Refused, Slot};
use crate::metrics::Limit;
use crate::metrics::ServiceMetrics;
use crate::protocol::{CloseCode, Message};
use crate::service::api::CloseReason;
use crate::service::api::Service;
use crate::session::actor::{CloseSession, Heartbeat, Push};
use crate::session::handler::{Handler, SessionInfo};
use crate::session::hub::Hub;
use crate::session::registry::Registry;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct ServiceHub {
    /// The service's name in the configuration (`[services.NAME]`): how
    /// the nodes of a cluster name it to each other.
    pub name: Arc<str>,
    pub config: ServiceConfig,
    /// `config.prefix`, shared with every session's info.
    pub prefix: Arc<str>,
    /// Peers whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `config.forward_headers`, lower case.
    pub forward_headers: Vec<Arc<str>>,
    pub backend: Arc<dyn Service>,
    pub registry: Registry,
    /// The other nodes, if any.
    pub cluster: Cluster,
    pub metrics: ServiceMetrics,
    /// `max_sessions_per_ip` and `max_new_sessions_per_ip`, when either is set.
    pub address_limits: Option<Arc<AddressLimits>>,
}

impl ServiceHub {
    pub fn new(
        name: &str,
        config: ServiceConfig,
        backend: Arc<dyn Service>,
        trusted_proxies: Vec<ipnet::IpNet>,
        cluster: Cluster,
    ) -> Arc<Self> {
        let registry = Registry::new(config.max_sessions(), config.http_session_weight());
        let prefix = config.prefix.as_str().into();
        let forward_headers = config
            .forward_headers
            .iter()
            .map(|h| h.to_ascii_lowercase().into())
            .collect();
        let address_limits =
            AddressLimits::new(config.max_sessions_per_ip, config.max_new_sessions_per_ip);
        Arc::new(ServiceHub {
            address_limits,
            name: name.into(),
            config,
            prefix,
            trusted_proxies,
            forward_headers,
            backend,
            registry,
            cluster,
            metrics: crate::metrics::get().service(name),
        })
    }

    /// Sends a message to every open session of this service, on every
    /// node, whatever transport each uses. The message is shared, not
    /// copied, per session.
    pub fn broadcast(&self, message: impl Into<Arc<str>>) {
        let message = message.into();
        let by = self.cluster.bus.publish_with(|| Event::Broadcast {
            service: self.name.to_string(),
            text: message.to_string(),
        });
        if by == Delivery::Here {
            self.deliver_broadcast(message);
        }
    }

    /// A broadcast to this node's sessions only (as the bus delivers it).
    pub fn deliver_broadcast(&self, message: Arc<str>) {
        self.registry
            .for_each(|addr| addr.do_send(Push(Message::Text(message.clone()))));
    }

    /// Forgets a session that ended: here, and as its owner in the cluster.
    pub fn forget(&self, sid: Option<&str>, key: u64) {
        if self.registry.remove(sid, key) {
            if let (Some(sid), Some(owners)) = (sid, &self.cluster.owners) {
                owners.release(&self.name, sid);
            }
        }
    }

    /// Counts a new session of the client at `addr` against the limits per
    /// address, or says which refuses it (and counts the refusal). The
    /// address is resolved only when there are limits.
    pub fn admit(&self, addr: impl FnOnce() -> Option<IpAddr>) -> Result<Option<Slot>, Refused> {
        let Some(limits) = &self.address_limits else {
            return Ok(None);
        };
        limits.admit(addr()).inspect_err(|r| self.refused(*r))
    }

    /// Whether the client at `addr` may ask `GET /info` now.
    pub fn admit_info(&self, addr: impl FnOnce() -> Option<IpAddr>) -> Result<(), Refused> {
        let Some(limits) = &self.address_limits else {
            return Ok(());
        };
        limits.info(addr()).inspect_err(|r| self.refused(*r))
    }

    fn refused(&self, r: Refused) {
        let limit = match r {
            Refused::Open => Limit::SessionsPerIp,
            Refused::Rate => Limit::NewSessionsPerIp,
        };
        self.metrics.limited[limit as usize].inc();
    }

    /// Starts the service's heartbeat: every `heartbeat_delay`, each session
    /// sends `h` to its receiver. One timer per service rather than one per
    /// session keeps an idle session small. Needs a running actix system;
    /// stops when the service is dropped.
    pub fn start_heartbeat(self: &Arc<Self>) {
        every(self.config.heartbeat(), self, |hub| {
            hub.registry.for_each(|addr| addr.do_send(Heartbeat))
        });
        if let Some(limits) = &self.address_limits {
            // Addresses seen once leave the rate limiters' memory.
            every(Duration::from_secs(5), limits, AddressLimits::sweep);
        }
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

/// Runs `work` on `target` every `period` (the first after one period),
/// until `target` is dropped.
fn every<T: Send + Sync + 'static>(period: Duration, target: &Arc<T>, work: impl Fn(&T) + 'static) {
    let target = Arc::downgrade(target);
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(target) = target.upgrade() else {
                return;
            };
            work(&target);
        }
    });
}

impl Hub for ServiceHub {
    fn config(&self) -> &ServiceConfig {
        &self.config
    }
    fn metrics(&self) -> &ServiceMetrics {
        &self.metrics
    }
    fn new_handler(&self, info: &SessionInfo) -> Box<dyn Handler> {
        self.backend.new_session(info)
    }
    fn forget(&self, sid: Option<&str>, key: u64) {
        ServiceHub::forget(self, sid, key);
    }
    fn broadcast_text(&self, message: Arc<str>) {
        self.broadcast(message);
    }
}
