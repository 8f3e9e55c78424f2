//! `[shutdown]`: what happens on SIGTERM or SIGINT.

use serde::{Deserialize, Serialize};

/// What happens on SIGTERM or SIGINT.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Seconds between the signal and closing sessions, while `/readyz`
    /// answers 503 and everything else is served as before: time for a
    /// load balancer to stop sending new sessions here.
    #[serde(default)]
    pub drain_delay: f64,
    /// Seconds to wait for in-flight responses after sessions were closed.
    #[serde(default = "default_grace")]
    pub grace: f64,
    /// Close frame sent to every open session.
    #[serde(default = "default_shutdown_code")]
    pub close_code: u16,
    #[serde(default = "default_shutdown_reason")]
    pub close_reason: String,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_delay: 0.0,
            grace: default_grace(),
            close_code: default_shutdown_code(),
            close_reason: default_shutdown_reason(),
        }
    }
}

fn default_grace() -> f64 {
    10.0
}
fn default_shutdown_code() -> u16 {
    1001
}
fn default_shutdown_reason() -> String {
    "Server shutting down".into()
}

impl ShutdownConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("shutdown.grace", self.grace),
            ("shutdown.drain_delay", self.drain_delay),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err(format!("{key}: must be from 0 to 86400 seconds, got {v}"));
            }
        }
        Ok(())
    }
}
