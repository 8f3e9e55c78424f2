//! The `stomp` service kind (issue 8, being built): STOMP 1.0-1.2 over
//! every SockJS transport. So far: the frame codec ([`frame`]), destination
//! patterns ([`destination`]), topic subscriptions and their fan-out
//! ([`topics`]), and the per-session protocol ([`session`]): CONNECT,
//! SUBSCRIBE and UNSUBSCRIBE, SEND to `/topic/...` and to a user's
//! `/user/{name}/queue/...`, receipts, ERROR, DISCONNECT; who the user is
//! ([`auth`]: a JWT in CONNECT). `/app` webhooks, the connect webhook and
//! the HTTP API come next.

pub mod auth;
pub mod destination;
pub mod frame;
pub mod session;
pub mod topics;

use crate::config::{AuthConfig, ServiceConfig};
use crate::service::api::{Handler, Service, SessionInfo};
use std::sync::Arc;

/// A `stomp` service: its rules and subscriptions, shared by its sessions.
pub struct StompService {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) subscribe: Vec<String>,
    pub(crate) send: Vec<String>,
    pub(crate) limits: frame::Limits,
    pub(crate) max_subscriptions: usize,
    pub(crate) topics: topics::Topics,
    pub(crate) auth: auth::Verifier,
}

impl StompService {
    pub fn new(config: &ServiceConfig, auth: &AuthConfig) -> StompService {
        // Checked at start (`Config::validate`); a key file gone since then
        // leaves a service that refuses every CONNECT, and says why.
        let auth = auth::Verifier::new(auth).unwrap_or_else(|e| {
            log::error!("service {}: {e}; every CONNECT is refused", config.prefix);
            auth::Verifier::refusing_all()
        });
        StompService {
            shared: Arc::new(Shared {
                subscribe: config.subscribe.clone(),
                send: config.send.clone(),
                limits: frame::Limits {
                    max_frame_bytes: config.max_frame_bytes,
                    max_headers: config.max_headers,
                },
                max_subscriptions: config.max_subscriptions,
                topics: topics::Topics::default(),
                auth,
            }),
        }
    }
}

impl Service for StompService {
    fn new_session(&self, info: &SessionInfo) -> Box<dyn Handler> {
        Box::new(session::StompSession::new(self.shared.clone(), info))
    }
}
