//! Which node holds each HTTP session, so that any node can serve its polls
//! and sends: the node that makes a session records itself in Redis
//! (`NS:session:SERVICE:SID`, deleted when the session closes), and a node
//! asked for a session it does not hold looks the owner up there and
//! forwards the request ([`crate::transport::forward`]).
//!
//! WebSocket sessions need none of this: one connection is the session.

use super::redis::RedisBus;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Other nodes' sessions remembered here, so that a session's every poll
/// and send does not ask Redis again; bounded in count and age.
const REMEMBERED: usize = 100_000;
const REMEMBER_FOR: Duration = Duration::from_secs(30);

/// Where a session lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node, or no node yet: serve it here.
    Here,
    /// Another live node, reached at this URL.
    Elsewhere(String),
    /// A node that is gone (killed, or left): the session is lost.
    Gone,
    /// Redis cannot tell (it is down): serve it here, as a single node would.
    Unknown,
}

const DELETE_IF_MINE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

pub struct Owners {
    bus: Arc<RedisBus>,
    /// Sessions other nodes hold, by their record's key: their node's URL.
    remembered: DashMap<String, (String, Instant)>,
}

impl Owners {
    pub fn new(bus: Arc<RedisBus>) -> Owners {
        Owners {
            bus,
            remembered: DashMap::new(),
        }
    }

    /// Forgets where session `sid` was: its node did not answer.
    pub fn forget(&self, service: &str, sid: &str) {
        self.remembered.remove(&self.key(service, sid));
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.bus.node
    }

    /// `cluster.secret`, which this node shows on the requests it forwards.
    pub fn secret(&self) -> &str {
        self.bus.config().secret.as_deref().unwrap_or_default()
    }

    /// Whether `shown` is `cluster.secret`: a request that shows it comes
    /// from another node. Compared in constant time.
    pub fn proves_node(&self, shown: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let secret = self.secret().as_bytes();
        !secret.is_empty() && bool::from(secret.ct_eq(shown))
    }

    /// How long a lookup, or a forwarded request's answer, may take.
    pub fn request_timeout(&self) -> std::time::Duration {
        self.bus.config().request_timeout()
    }

    fn key(&self, service: &str, sid: &str) -> String {
        self.bus.session_key(service, sid)
    }

    /// Where session `sid` of `service` lives. With `claim` (a request that
    /// may open it), an unrecorded session is recorded as this node's.
    pub async fn locate(&self, service: &str, sid: &str, claim: bool) -> Owner {
        let key = self.key(service, sid);
        if let Some(e) = self.remembered.get(&key) {
            if e.1.elapsed() < REMEMBER_FOR {
                return Owner::Elsewhere(e.0.clone());
            }
        }
        match tokio::time::timeout(self.request_timeout(), self.owner_of(&key, claim)).await {
            Ok(Ok(Some(node))) if *node == *self.bus.node => Owner::Here,
            Ok(Ok(Some(node))) => match self.bus.find_peer(&node).await {
                Some(p) => match p.advertise {
                    Some(url) => {
                        if self.remembered.len() >= REMEMBERED {
                            self.remembered.clear();
                        }
                        self.remembered.insert(key, (url.clone(), Instant::now()));
                        Owner::Elsewhere(url)
                    }
                    None => {
                        log::warn!("cluster: node {node} holds a session but advertises no URL");
                        Owner::Gone
                    }
                },
                None => Owner::Gone,
            },
            Ok(Ok(None)) => Owner::Here,
            Ok(Err(_)) | Err(_) => Owner::Unknown,
        }
    }

    /// The recorded owner; with `claim`, this node becomes it when there is
    /// none (one round trip either way).
    async fn owner_of(&self, key: &str, claim: bool) -> redis::RedisResult<Option<String>> {
        let Some(mut conn) = self.bus.connection() else {
            return Err((redis::ErrorKind::Io, "Redis is down").into());
        };
        if !claim {
            return redis::cmd("GET").arg(key).query_async(&mut conn).await;
        }
        let (owner,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(key)
            .arg(&*self.bus.node)
            .arg("NX")
            .arg("EX")
            .arg(self.bus.config().session_record_ttl)
            .ignore()
            .cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        Ok(owner)
    }

    /// Forgets this node's session `sid` (it closed); nothing to do while
    /// Redis is down.
    pub fn release(&self, service: &str, sid: &str) {
        let Some(mut conn) = self.bus.connection() else {
            return;
        };
        let key = self.key(service, sid);
        let node = self.bus.node.clone();
        let timeout = self.request_timeout();
        actix_web::rt::spawn(async move {
            // Only this node's record: a session served while Redis was
            // down has none, and its id may be another node's by now.
            let mut del = redis::cmd("EVAL");
            del.arg(DELETE_IF_MINE).arg(1).arg(key).arg(&*node);
            let del = del.query_async::<()>(&mut conn);
            let _ = tokio::time::timeout(timeout, del).await;
        });
    }
}
