//! `[auth]`: how a STOMP CONNECT names its user.

use super::webhook_url;
use serde::{Deserialize, Serialize};

/// HS256 wants a key as long as its hash (32 bytes).
pub const MIN_DEMO_LOGIN_SECRET_LEN: usize = 32;
/// The shortest `jwt_secret` accepted: 256 bits, as RFC 7518 asks of HS256.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// `[auth]`: how a STOMP CONNECT names its user. Secrets can come from the
/// environment (`SOCKJS_GATEWAY__AUTH__JWT_SECRET`); `Debug` hides them.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for JWTs.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// PEM file with the RS256 or ES256 public key for JWTs.
    #[serde(default)]
    pub jwt_public_key_file: Option<String>,
    /// Required `aud`, if set.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// Required `iss`, if set.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// A backend that names the user of a CONNECT without a token (or with
    /// one, when no JWT key is set): it gets the CONNECT headers and the
    /// Cookie of the request that opened the session.
    #[serde(default)]
    pub connect_webhook: Option<String>,
    /// Sessions without a token are let in, with no user.
    #[serde(default)]
    pub anonymous: bool,
    /// A session signed in with a JWT ends (ERROR `Token expired`, close
    /// 4401) when its token's `exp` passes, unless the client sent a newer
    /// token to `/gateway/token` before.
    #[serde(default)]
    pub expire_sessions: bool,
    /// Seconds before `exp` at which a session is told (a MESSAGE on
    /// `/user/queue/gateway` with `x-token-expires-in`), with
    /// `expire_sessions`.
    #[serde(default = "default_token_refresh_notice")]
    pub token_refresh_notice: u64,
    /// For demos only: `GET /demo/token?user=NAME` mints a token for any
    /// user, signed with a secret made at start. Refused together with a
    /// `jwt_secret` or key file, whose tokens would then be forgeable.
    #[serde(default)]
    pub demo_login: bool,
    /// The secret `demo_login` signs with instead of one made at start, so
    /// that several nodes accept each other's demo tokens (the compose
    /// demo). It guards nothing, since anyone can get a token.
    #[serde(default)]
    pub demo_login_secret: Option<String>,
}

fn default_token_refresh_notice() -> u64 {
    60
}

/// Every key at its default, as an absent `[auth]` has it.
impl Default for AuthConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults deserialize")
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("connect_webhook", &self.connect_webhook)
            .field("anonymous", &self.anonymous)
            .field("expire_sessions", &self.expire_sessions)
            .field("token_refresh_notice", &self.token_refresh_notice)
            .field("demo_login", &self.demo_login)
            .field(
                "demo_login_secret",
                &self.demo_login_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AuthConfig {
    /// The section's own rules; `stomp`: whether a `stomp` service is
    /// mounted, which needs some way to let sessions in.
    pub(super) fn validate(&self, stomp: bool) -> Result<(), String> {
        if self.demo_login && (self.jwt_secret.is_some() || self.jwt_public_key_file.is_some()) {
            return Err(
                "auth.demo_login: anyone could mint tokens; it cannot be used with jwt_secret or jwt_public_key_file"
                    .into(),
            );
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < MIN_JWT_SECRET_LEN {
                return Err(format!(
                    "auth.jwt_secret: must be at least {MIN_JWT_SECRET_LEN} bytes (it was {}): a shorter HS256 secret can be guessed from one token",
                    secret.len()
                ));
            }
        }
        if self.demo_login && self.connect_webhook.is_some() {
            return Err(
                "auth.demo_login: anyone could sign in as any user past the connect webhook; it cannot be used with connect_webhook"
                    .into(),
            );
        }
        if let Some(secret) = &self.demo_login_secret {
            if !self.demo_login {
                return Err("auth.demo_login_secret: used only with demo_login = true".into());
            }
            if secret.len() < MIN_DEMO_LOGIN_SECRET_LEN {
                return Err(format!(
                    "auth.demo_login_secret: must be at least {MIN_DEMO_LOGIN_SECRET_LEN} characters (it was {})",
                    secret.len()
                ));
            }
        }
        if let Some(url) = &self.connect_webhook {
            webhook_url::check(url).map_err(|e| format!("auth.connect_webhook: {e}"))?;
        }
        if stomp
            && self.jwt_secret.is_none()
            && self.jwt_public_key_file.is_none()
            && self.connect_webhook.is_none()
            && !self.anonymous
            && !self.demo_login
        {
            return Err(
                "auth: a stomp service needs jwt_secret, jwt_public_key_file, connect_webhook or anonymous = true"
                    .into(),
            );
        }
        Ok(())
    }
}
