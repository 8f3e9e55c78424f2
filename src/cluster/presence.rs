//! What each node holds, written to Redis every `presence_interval` so that
//! any node can answer for the whole cluster: which nodes are alive and
//! where they are reached, their sessions, subscriptions and users.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub node: String,
    /// Where other nodes forward requests for this node's sessions.
    pub advertise: Option<String>,
    pub services: BTreeMap<String, ServicePresence>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePresence {
    pub sessions: usize,
    /// Subscribers by destination, a user's queue shown as
    /// `/user/{name}/queue/...`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations: BTreeMap<String, usize>,
    /// Signed-in sessions by user.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, usize>,
}

impl Presence {
    /// Subscribers of `destination` in `service` on this node.
    pub fn subscribers(&self, service: &str, destination: &str) -> usize {
        self.services
            .get(service)
            .and_then(|s| s.destinations.get(destination))
            .copied()
            .unwrap_or(0)
    }

    /// Sessions of `user` in `service` on this node.
    pub fn user_sessions(&self, service: &str, user: &str) -> usize {
        self.services
            .get(service)
            .and_then(|s| s.users.get(user))
            .copied()
            .unwrap_or(0)
    }
}
