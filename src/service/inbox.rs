//! This node's services as the other nodes see them: where their events
//! are delivered, and what this node reports of itself (its presence).

use crate::cluster::presence::{Counts, ServicePresence};
use crate::cluster::{Event, Inbox, Presence};
use crate::service::hub::ServiceHub;
use crate::service::stomp::StompService;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Services {
    pub hubs: BTreeMap<String, Arc<ServiceHub>>,
    pub brokers: BTreeMap<String, Arc<StompService>>,
}

impl Inbox for Services {
    fn deliver(&self, event: Event) -> usize {
        match &event {
            Event::Broadcast { service, text } => match self.hubs.get(service) {
                Some(hub) => {
                    hub.deliver_broadcast(text.as_str().into());
                    hub.session_count()
                }
                None => {
                    log::debug!("cluster: a broadcast for {service:?}, not mounted here");
                    0
                }
            },
            Event::Publish { service, .. }
            | Event::DisconnectUser { service, .. }
            | Event::CountUser { service, .. } => match self.brokers.get(service) {
                Some(broker) => broker.deliver(event),
                None => {
                    log::debug!("cluster: a STOMP event for {service:?}, not mounted here");
                    0
                }
            },
        }
    }

    fn held_sessions(&self) -> Vec<(String, Box<str>)> {
        self.hubs
            .iter()
            .flat_map(|(name, hub)| {
                hub.registry
                    .sids()
                    .into_iter()
                    .map(|sid| (name.clone(), sid))
            })
            .collect()
    }

    fn relinked(&self) {
        for broker in self.brokers.values() {
            broker.relinked();
        }
    }

    fn heard(&self, tag: &str) {
        for (service, broker) in &self.brokers {
            if let Some(destination) = tag
                .strip_prefix(service.as_str())
                .and_then(|t| t.strip_prefix(':'))
            {
                broker.heard(destination);
            }
        }
    }

    fn presence(&self) -> Presence {
        let services = self
            .hubs
            .iter()
            .map(|(name, hub)| {
                let sessions = hub.session_count();
                (name.clone(), ServicePresence { sessions })
            })
            .collect();
        Presence {
            services,
            ..Default::default()
        }
    }

    fn counts(&self) -> Counts {
        let mut counts = Counts::new();
        for (name, broker) in &self.brokers {
            broker.count_into(name, &mut counts);
        }
        counts
    }
}
