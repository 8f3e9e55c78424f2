//! `[api]`: the HTTP API for backends, and the metrics endpoint.

use serde::{Deserialize, Serialize};

/// `[api]`: the HTTP API backends publish through. It is served only when
/// `key` is set (`SOCKJS_GATEWAY__API__KEY`); `Debug` hides the key.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of its own listener, `HOST:PORT`; loopback by default.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// The key callers send as `Authorization: Bearer <key>`.
    #[serde(default)]
    pub key: Option<String>,
    /// Largest request body, in bytes; larger gets 413.
    #[serde(default = "default_api_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Serve Prometheus metrics at `GET /metrics` on this listener, with
    /// no key (the listener then runs even without `key`).
    #[serde(default)]
    pub metrics: bool,
    /// The embedded demo only: without `key`, make a random one at start,
    /// print it, and show it to the demo pages (`GET /demo/api`). Both
    /// listeners must then be on loopback.
    #[serde(default)]
    pub demo_key: bool,
}

/// The shortest `[api] key` accepted: a guessable key opens publishing to
/// every user.
pub const MIN_API_KEY_LEN: usize = 16;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_api_listen(),
            key: None,
            max_body_bytes: default_api_max_body_bytes(),
            metrics: false,
            demo_key: false,
        }
    }
}

impl ApiConfig {
    /// The key, when the API is on.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref().filter(|k| !k.is_empty())
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("metrics", &self.metrics)
            .field("demo_key", &self.demo_key)
            .finish()
    }
}

fn default_api_listen() -> String {
    "127.0.0.1:8081".into()
}
fn default_api_max_body_bytes() -> usize {
    1024 * 1024
}

impl ApiConfig {
    /// Whether a demo key is made at start: `demo_key`, no `key`, and both
    /// listeners (`listen` is the main one's) on loopback, since the key is
    /// shown to any page that asks. Says why not when it was asked for.
    pub fn makes_demo_key(&self, listen: &str) -> bool {
        if !self.demo_key || self.key.is_some() {
            return false;
        }
        let loopback = |addr: &str| {
            addr.parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback())
        };
        let ok = loopback(&self.listen) && loopback(listen);
        if !ok {
            log::warn!(
                "api.demo_key: no demo key made, as listen ({listen}) or api.listen ({}) is not \
                 loopback; the API is off until api.key is set (SOCKJS_GATEWAY__API__KEY)",
                self.listen
            );
        }
        ok
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if let Some(key) = self.key() {
            if key.len() < MIN_API_KEY_LEN {
                return Err(format!(
                    "api.key: must be at least {MIN_API_KEY_LEN} characters (it was {})",
                    key.len()
                ));
            }
            if self.max_body_bytes == 0 {
                return Err("api.max_body_bytes: must be greater than 0".into());
            }
        }
        if self.key().is_some() || self.metrics || self.demo_key {
            super::check_listen("api.listen", &self.listen)?;
        }
        Ok(())
    }
}
