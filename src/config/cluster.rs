//! `[cluster]`: many gateway nodes sharing one Redis ([`crate::cluster`]).
//! Without the section, everything stays in this process.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port/db`; may carry a password, so it is
    /// never logged whole ([`ClusterConfig::redis_url_shown`]).
    pub redis_url: String,
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
    /// Seconds a session's owner record lives in Redis without the session
    /// closing (it is deleted when the session closes); bounds what a node
    /// killed outright leaves behind.
    #[serde(default = "default_session_record_ttl")]
    pub session_record_ttl: u64,
}

/// The shortest `secret` accepted.
pub const MIN_SECRET_LEN: usize = 32;

fn default_namespace() -> String {
    "sockjs-gateway".into()
}
fn default_presence_interval() -> f64 {
    1.0
}
fn default_max_pending_publishes() -> usize {
    10_000
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

    /// The Redis URL with any password replaced, for logs and errors.
    pub fn redis_url_shown(&self) -> String {
        shown_url(&self.redis_url)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let url = &self.redis_url;
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!(
                "cluster.redis_url: expected redis://host:port/db, got {:?}",
                shown_url(url)
            ));
        }
        if let Err(e) = redis::Client::open(url.as_str()) {
            return Err(format!(
                "cluster.redis_url: {:?} is not usable: {}",
                shown_url(url),
                e.to_string().replace(url.as_str(), &shown_url(url))
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

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &self.redis_url_shown())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .field("namespace", &self.namespace)
            .field("presence_interval", &self.presence_interval)
            .field("max_pending_publishes", &self.max_pending_publishes)
            .field("request_timeout", &self.request_timeout)
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
