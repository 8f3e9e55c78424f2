//! `[cluster]`: many gateway nodes sharing one Redis ([`crate::cluster`]).
//! Without the section, everything stays in this process.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// One Redis server: `redis://[:password@]host:port/db`, `rediss://`
    /// for TLS; may carry a password, so it is never logged whole
    /// ([`ClusterConfig::redis_shown`]). Exactly one of this,
    /// `redis_sentinels` and `redis_cluster_nodes`.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The Sentinels that name the master (`redis://host:26379`, or
    /// `rediss://` for Sentinels that speak TLS), with `redis_master_name`:
    /// the nodes follow the master they name through failovers.
    #[serde(default, deserialize_with = "super::list::deserialize")]
    pub redis_sentinels: Vec<String>,
    /// Seed nodes of a Redis Cluster (`redis://10.0.0.1:7000`, `rediss://`
    /// for TLS): the nodes learn the others from them, publish each
    /// destination on its own shard (`SPUBLISH`) and hear only the
    /// destinations their sessions hold (`SSUBSCRIBE`).
    #[serde(default, deserialize_with = "super::list::deserialize")]
    pub redis_cluster_nodes: Vec<String>,
    /// The name the Sentinels monitor the master under.
    #[serde(default)]
    pub redis_master_name: Option<String>,
    /// The data nodes' ACL user and password (over any in `redis_url`);
    /// best from the environment. Never logged.
    #[serde(default)]
    pub redis_username: Option<String>,
    #[serde(default)]
    pub redis_password: Option<String>,
    /// The Sentinels' password (`requirepass` in sentinel.conf). Never
    /// logged.
    #[serde(default)]
    pub redis_sentinel_password: Option<String>,
    /// The CA (PEM) that signed the Redis servers' TLS certificates, for
    /// `rediss://`; without it, the system's roots.
    #[serde(default)]
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// TLS without checking the server's certificate: for testing only.
    #[serde(default)]
    pub redis_tls_insecure: bool,
    /// Replicas that must hold a kept publication before it is
    /// acknowledged (Redis `WAIT`); 0: acknowledged once the master has it.
    #[serde(default)]
    pub redis_min_replicas: u32,
    /// How long a publication waits for `redis_min_replicas`, in
    /// milliseconds; past it, its answer is `504` (published: unknown).
    #[serde(default = "default_replica_timeout_ms")]
    pub redis_replica_timeout_ms: u64,
    /// What the nodes prove to each other on forwarded requests, so that a
    /// client that reaches a node directly cannot pose as a node (and have
    /// its `X-Forwarded-For` believed). Required, at least 32 characters;
    /// best from `SOCKJS_GATEWAY__CLUSTER__SECRET`. Never logged.
    #[serde(default)]
    pub secret: Option<String>,
    /// This node's name among the others; random at start when unset.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How the other nodes reach this one (`http://10.0.0.3:8080`): where
    /// they forward requests for sessions this node holds.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Prefix of every Redis key and channel the gateway uses, so that
    /// clusters can share one Redis.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Seconds between a node's presence writes; a node not heard from in
    /// three of them counts as dead.
    #[serde(default = "default_presence_interval")]
    pub presence_interval: f64,
    /// Publications waiting for Redis; past this, new ones reach this
    /// node's clients only (and are counted as dropped).
    #[serde(default = "default_max_pending_publishes")]
    pub max_pending_publishes: usize,
    /// Seconds to wait for Redis on a lookup, and for an owner node to
    /// answer a forwarded request's head.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: f64,
    /// On a Redis Cluster, seconds a read of history waits for a shard
    /// that is failing over (its master lost, a replica taking over)
    /// before it gives up, and the subscribers it was for are told they
    /// may have missed something.
    #[serde(default = "default_failover_timeout")]
    pub redis_failover_timeout: f64,
    /// Seconds a session's owner record lives in Redis without the session
    /// closing (it is deleted when the session closes); bounds what a node
    /// killed outright leaves behind.
    #[serde(default = "default_session_record_ttl")]
    pub session_record_ttl: u64,
}

/// The shortest `secret` accepted.
pub const MIN_SECRET_LEN: usize = 32;

fn default_replica_timeout_ms() -> u64 {
    1000
}
fn default_namespace() -> String {
    "sockjs-gateway".into()
}
fn default_presence_interval() -> f64 {
    1.0
}
fn default_max_pending_publishes() -> usize {
    10_000
}
fn default_failover_timeout() -> f64 {
    15.0
}
fn default_request_timeout() -> f64 {
    2.0
}
fn default_session_record_ttl() -> u64 {
    86_400
}

impl ClusterConfig {
    pub fn presence_interval(&self) -> Duration {
        Duration::from_secs_f64(self.presence_interval)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout)
    }

    pub fn failover_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.redis_failover_timeout)
    }

    /// Where Redis is, with any password replaced, for logs and errors:
    /// the URL, or the master's name and its Sentinels.
    pub fn redis_shown(&self) -> String {
        if !self.redis_cluster_nodes.is_empty() {
            return format!(
                "Redis Cluster seeded by {}",
                self.redis_cluster_nodes
                    .iter()
                    .map(|s| shown_url(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        match (&self.redis_url, &self.redis_master_name) {
            (Some(url), _) => shown_url(url),
            (None, Some(name)) => format!(
                "master {name:?} of Sentinels {}",
                self.redis_sentinels
                    .iter()
                    .map(|s| shown_url(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, None) => "(none)".into(),
        }
    }

    /// How long a publication may wait for Redis: its answer, and the
    /// replicas' when `redis_min_replicas` asks for them.
    pub fn publish_timeout(&self) -> Duration {
        let replicas = if self.redis_min_replicas > 0 {
            Duration::from_millis(self.redis_replica_timeout_ms)
        } else {
            Duration::ZERO
        };
        self.request_timeout() + replicas
    }

    /// Whether the nodes share a Redis Cluster (`redis_cluster_nodes`).
    pub fn is_redis_cluster(&self) -> bool {
        !self.redis_cluster_nodes.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.is_redis_cluster() {
            if self.redis_url.is_some() || !self.redis_sentinels.is_empty() {
                return Err(
                    "cluster.redis_cluster_nodes: give one of cluster.redis_url, cluster.redis_sentinels and cluster.redis_cluster_nodes, not two"
                        .into(),
                );
            }
            if self.redis_master_name.is_some() {
                return Err(
                    "cluster.redis_master_name: only with cluster.redis_sentinels, not cluster.redis_cluster_nodes"
                        .into(),
                );
            }
            if self.redis_sentinel_password.is_some() {
                return Err(
                    "cluster.redis_sentinel_password: only with cluster.redis_sentinels, not cluster.redis_cluster_nodes"
                        .into(),
                );
            }
            let tls = |u: &String| u.starts_with("rediss://");
            for url in &self.redis_cluster_nodes {
                check_url("cluster.redis_cluster_nodes", url)?;
            }
            if self.redis_cluster_nodes.iter().any(tls) != self.redis_cluster_nodes.iter().all(tls)
            {
                return Err(
                    "cluster.redis_cluster_nodes: every node with rediss:// (TLS) or none".into(),
                );
            }
        } else {
            self.validate_server()?;
        }
        self.validate_rest()
    }

    /// One server or Sentinels: which, and their URLs.
    fn validate_server(&self) -> Result<(), String> {
        match (&self.redis_url, self.redis_sentinels.is_empty()) {
            (Some(_), false) => {
                return Err(
                    "cluster.redis_url and cluster.redis_sentinels: give one, not both (one server, or the Sentinels that name the master)"
                        .into(),
                )
            }
            (None, true) => {
                return Err(
                    "cluster.redis_url: required (redis://host:port/db), or cluster.redis_sentinels with cluster.redis_master_name, or cluster.redis_cluster_nodes"
                        .into(),
                )
            }
            (Some(url), true) => check_url("cluster.redis_url", url)?,
            (None, false) => {
                for url in &self.redis_sentinels {
                    check_url("cluster.redis_sentinels", url)?;
                }
                match &self.redis_master_name {
                    Some(n) if !n.is_empty() && !n.contains(char::is_whitespace) => {}
                    Some(n) => {
                        return Err(format!(
                            "cluster.redis_master_name: a name without spaces expected, got {n:?}"
                        ))
                    }
                    None => {
                        return Err(
                            "cluster.redis_master_name: required with cluster.redis_sentinels (the name the Sentinels monitor the master under)"
                                .into(),
                        )
                    }
                }
            }
        }
        if self.redis_url.is_some() && self.redis_master_name.is_some() {
            return Err(
                "cluster.redis_master_name: only with cluster.redis_sentinels, not cluster.redis_url"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_rest(&self) -> Result<(), String> {
        if let Some(path) = &self.redis_ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                format!("cluster.redis_ca_file: cannot read {}: {e}", path.display())
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "cluster.redis_ca_file: {} holds no PEM certificate",
                    path.display()
                ));
            }
        }
        if self.redis_replica_timeout_ms == 0 || self.redis_replica_timeout_ms > 60_000 {
            return Err(format!(
                "cluster.redis_replica_timeout_ms: must be from 1 to 60000, got {}",
                self.redis_replica_timeout_ms
            ));
        }
        match &self.secret {
            None => {
                return Err(format!(
                    "cluster.secret: required: a secret of at least {MIN_SECRET_LEN} characters, the same on \
                     every node, that nodes prove to each other on forwarded requests \
                     (SOCKJS_GATEWAY__CLUSTER__SECRET)"
                ))
            }
            Some(s) if s.len() < MIN_SECRET_LEN => {
                return Err(format!(
                    "cluster.secret: must be at least {MIN_SECRET_LEN} characters (it was {})",
                    s.len()
                ))
            }
            Some(_) => {}
        }
        if let Some(id) = &self.node_id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!(
                    "cluster.node_id: 1 to 64 of A-Z a-z 0-9 - _ . expected, got {id:?}"
                ));
            }
        }
        if let Some(a) = &self.advertise {
            let ok = (a.starts_with("http://") || a.starts_with("https://"))
                && a.parse::<actix_web::http::Uri>()
                    .is_ok_and(|u| u.host().is_some() && u.query().is_none());
            if !ok {
                return Err(format!(
                    "cluster.advertise: expected http://HOST:PORT (how other nodes reach this one), got {a:?}"
                ));
            }
        }
        if self.namespace.is_empty() || self.namespace.contains(char::is_whitespace) {
            return Err(format!(
                "cluster.namespace: a non-empty name without spaces expected, got {:?}",
                self.namespace
            ));
        }
        for (k, v) in [
            ("presence_interval", self.presence_interval),
            ("request_timeout", self.request_timeout),
            ("redis_failover_timeout", self.redis_failover_timeout),
        ] {
            if !(v.is_finite() && (0.01..=3600.0).contains(&v)) {
                return Err(format!(
                    "cluster.{k}: must be from 0.01 to 3600 seconds, got {v}"
                ));
            }
        }
        if self.max_pending_publishes == 0 {
            return Err("cluster.max_pending_publishes: must be greater than 0".into());
        }
        if self.session_record_ttl == 0 {
            return Err("cluster.session_record_ttl: must be greater than 0".into());
        }
        Ok(())
    }
}

/// Checks a Redis URL (of `key`) as the `redis` crate reads it.
fn check_url(key: &str, url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(format!(
            "{key}: expected redis://host:port (or rediss:// for TLS), got {:?}",
            shown_url(url)
        ));
    }
    if let Err(e) = redis::Client::open(url) {
        return Err(format!(
            "{key}: {:?} is not usable: {}",
            shown_url(url),
            e.to_string().replace(url, &shown_url(url))
        ));
    }
    Ok(())
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClusterConfig")
            .field("redis", &self.redis_shown())
            .field("redis_username", &self.redis_username)
            .field("redis_password", &secret(&self.redis_password))
            .field(
                "redis_sentinel_password",
                &secret(&self.redis_sentinel_password),
            )
            .field("redis_ca_file", &self.redis_ca_file)
            .field("redis_tls_insecure", &self.redis_tls_insecure)
            .field("redis_min_replicas", &self.redis_min_replicas)
            .field("redis_replica_timeout_ms", &self.redis_replica_timeout_ms)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .field("namespace", &self.namespace)
            .field("presence_interval", &self.presence_interval)
            .field("max_pending_publishes", &self.max_pending_publishes)
            .field("request_timeout", &self.request_timeout)
            .field("redis_failover_timeout", &self.redis_failover_timeout)
            .field("session_record_ttl", &self.session_record_ttl)
            .finish()
    }
}

/// `url` with the credentials between `://` and `@` replaced.
fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            shown_url("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://<redacted>@10.0.0.1:6379/0"
        );
        assert_eq!(
            shown_url("rediss://user:pw@host/2"),
            "rediss://<redacted>@host/2"
        );
        assert_eq!(
            shown_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
