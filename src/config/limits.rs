//! The top-level limits (`max_connections`, `max_header_bytes`,
//! `write_timeout`, `trim_memory`): their defaults and checks. The keys sit
//! at the top level of the file; the code that enforces them is in
//! [`crate::limits`].

use super::Config;

/// What nginx in front passes by default (4 x 8k header buffers), so the
/// gateway never refuses a head the shipped proxy config accepted.
pub(super) fn default_max_header_bytes() -> usize {
    32 * 1024
}
pub(super) fn default_write_timeout() -> f64 {
    20.0
}

pub(super) fn validate(config: &Config) -> Result<(), String> {
    // TCP_USER_TIMEOUT counts milliseconds; below one second a slow but
    // healthy network could be cut off.
    if !(config.write_timeout.is_finite() && (1.0..=86_400.0).contains(&config.write_timeout)) {
        return Err(format!(
            "write_timeout: must be from 1 to 86400 seconds, got {}",
            config.write_timeout
        ));
    }
    if config.max_connections == Some(0) {
        return Err("max_connections: must be greater than 0".into());
    }
    let ceiling = crate::limits::head::CEILING;
    if !(1024..=ceiling).contains(&config.max_header_bytes) {
        return Err(format!(
            "max_header_bytes: must be from 1024 to {ceiling} (actix-http's own limit), got {}",
            config.max_header_bytes
        ));
    }
    Ok(())
}
