//! The demo's sign-in (`[auth] demo_login`): `GET /demo/token?user=NAME`
//! (and `&ttl=SECONDS`) answers a token for that user, so the notifications page can show
//! "my notifications" without a login service. Anyone who can reach it
//! can be anyone: it exists for demos, with a secret made at start that
//! nothing else knows.

use crate::config::AuthConfig;
use actix_web::{web, HttpResponse};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

/// How long a demo token lasts, in seconds, unless `ttl` asks otherwise
/// (within `TTLS`).
const TTL: u64 = 3600;
const TTLS: std::ops::RangeInclusive<u64> = 5..=86_400;

/// A random HS256 secret for this process (hex, 32 bytes).
pub fn random_secret() -> String {
    crate::protocol::ids::random_hex::<32>()
}

/// What the endpoint signs with, and the claims the verifier requires.
#[derive(Clone)]
pub struct DemoLogin {
    key: EncodingKey,
    audience: Option<String>,
    issuer: Option<String>,
}

impl DemoLogin {
    /// For an `[auth]` whose `jwt_secret` was set to a random one.
    pub fn new(auth: &AuthConfig) -> Option<DemoLogin> {
        let secret = auth.jwt_secret.as_deref().filter(|_| auth.demo_login)?;
        Some(DemoLogin {
            key: EncodingKey::from_secret(secret.as_bytes()),
            audience: auth.jwt_audience.clone(),
            issuer: auth.jwt_issuer.clone(),
        })
    }

    pub fn route(self) -> actix_web::Route {
        let login = web::Data::new(self);
        web::get().to(move |q: web::Query<UserQuery>| {
            let login = login.clone();
            async move { login.token(&q.user, q.ttl.unwrap_or(TTL)) }
        })
    }

    fn token(&self, user: &str, ttl: u64) -> HttpResponse {
        if !TTLS.contains(&ttl) {
            return HttpResponse::BadRequest().json(json!({
                "error": format!("ttl: {} to {} seconds", TTLS.start(), TTLS.end()),
                "field": "ttl",
            }));
        }
        let valid = (1..=64).contains(&user.len())
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return HttpResponse::BadRequest().json(json!({
                "error": "user: 1 to 64 letters, digits, '-', '_' or '.'",
                "field": "user",
            }));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = json!({ "sub": user, "iat": now, "exp": now + ttl });
        if let Some(aud) = &self.audience {
            claims["aud"] = json!(aud);
        }
        if let Some(iss) = &self.issuer {
            claims["iss"] = json!(iss);
        }
        match jsonwebtoken::encode(&Header::default(), &claims, &self.key) {
            Ok(token) => HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({ "user": user, "token": token, "expires_in": ttl })),
            Err(e) => {
                log::error!("demo_login: cannot sign a token: {e}");
                HttpResponse::InternalServerError().json(json!({ "error": "cannot sign a token" }))
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct UserQuery {
    user: String,
    /// Seconds the token lasts (short ones show token renewal).
    ttl: Option<u64>,
}
