//! Who a STOMP session's user is, from its CONNECT frame.
//!
//! Browsers cannot set headers on SockJS requests, so the credentials
//! travel in CONNECT (stompjs `connectHeaders`): `Authorization: Bearer
//! <JWT>`, or the JWT as `passcode`. It is verified with the `[auth]`
//! HS256 secret or RS256/ES256 public key; `exp` is required, `nbf` checked
//! when present, `aud` and `iss` when configured; `sub` is the user. No
//! token: anonymous if `[auth] anonymous`, else refused.

use crate::config::AuthConfig;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::borrow::Cow;

/// How tokens are checked; built once per service from `[auth]`.
pub struct Verifier {
    keys: Vec<(DecodingKey, Validation)>,
    anonymous: bool,
}

/// Who a CONNECT signs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `None` for an anonymous session.
    pub user: Option<String>,
    /// The token's `exp` (Unix seconds), when a token named the user.
    pub exp: Option<u64>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            user: None,
            exp: None,
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
}

impl Verifier {
    /// Reads the key file, if any. Errors name the `[auth]` key at fault;
    /// that some way in is configured is `[auth]`'s own check.
    pub fn new(config: &AuthConfig) -> Result<Verifier, String> {
        let validation = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            v.validate_nbf = true;
            v.leeway = 30;
            match &config.jwt_audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            if let Some(iss) = &config.jwt_issuer {
                v.set_issuer(&[iss]);
            }
            v
        };
        let mut keys = Vec::new();
        if let Some(secret) = config.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            keys.push((
                DecodingKey::from_secret(secret.as_bytes()),
                validation(Algorithm::HS256),
            ));
        }
        if let Some(path) = &config.jwt_public_key_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("auth.jwt_public_key_file: {path}: {e}"))?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                keys.push((k, validation(Algorithm::RS256)));
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                keys.push((k, validation(Algorithm::ES256)));
            } else {
                return Err(format!(
                    "auth.jwt_public_key_file: {path}: not an RSA or EC public key in PEM"
                ));
            }
        }
        Ok(Verifier {
            keys,
            anonymous: config.anonymous,
        })
    }

    /// Whether a token can be checked here (a secret or a key is set).
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether sessions without a user are let in.
    pub fn anonymous(&self) -> bool {
        self.anonymous
    }

    /// Who a CONNECT with this token (see [`token`]) is, or why not (the
    /// text of the ERROR frame; never the token).
    pub fn user(&self, token: Option<&str>) -> Result<Identity, String> {
        let Some(token) = token else {
            return if self.anonymous {
                Ok(Identity::anonymous())
            } else {
                Err("Authentication required".into())
            };
        };
        self.verify(token)
    }

    /// The identity a token proves, or why it proves none.
    pub fn verify(&self, token: &str) -> Result<Identity, String> {
        if self.keys.is_empty() {
            return Err("Tokens are not accepted here".into());
        }
        let mut why = String::from("Invalid token");
        for (key, validation) in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => {
                    let exp = data.claims.exp;
                    let user = match data.claims.sub.filter(|s| !s.is_empty()) {
                        Some(sub) => match super::users::check_name(&sub) {
                            Ok(()) => Some(sub),
                            Err(why) => return Err(format!("Invalid token: sub: {why}")),
                        },
                        None if self.anonymous => None,
                        None => return Err("Invalid token: no sub".into()),
                    };
                    return Ok(Identity { user, exp });
                }
                Err(e) => why = format!("Invalid token: {}", reason(&e)),
            }
        }
        Err(why)
    }
}

/// The token a CONNECT carries: `Authorization: Bearer <token>`, else the
/// `passcode`.
pub fn token<'a>(authorization: Option<&'a str>, passcode: Option<&'a str>) -> Option<&'a str> {
    let bearer = authorization.and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
    });
    bearer.or(passcode).map(str::trim).filter(|t| !t.is_empty())
}

/// A short reason that tells the client what to fix, and nothing secret.
fn reason(e: &jsonwebtoken::errors::Error) -> Cow<'static, str> {
    use jsonwebtoken::errors::ErrorKind as K;
    Cow::Borrowed(match e.kind() {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet (nbf)",
        K::InvalidAudience => "wrong audience",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm => "wrong algorithm",
        // One of the names this gateway requires (exp, aud, iss...), so
        // never the token's own text.
        K::MissingRequiredClaim(claim) => {
            return Cow::Owned(format!("the required claim \"{claim}\" is missing"))
        }
        _ => "malformed",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn config(secret: Option<&str>, anonymous: bool) -> AuthConfig {
        AuthConfig {
            jwt_secret: secret.map(str::to_owned),
            jwt_public_key_file: None,
            jwt_audience: Some("gw".into()),
            jwt_issuer: None,
            connect_webhook: None,
            anonymous,
            ..AuthConfig::default()
        }
    }

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_valid_token_names_the_user() {
        let v = Verifier::new(&config(Some("s3cret"), false)).unwrap();
        let exp = now() + 60;
        let t = token(
            "s3cret",
            serde_json::json!({"sub": "alice", "exp": exp, "aud": "gw"}),
        );
        let alice = Identity {
            user: Some("alice".into()),
            exp: Some(exp),
        };
        let bearer = format!("Bearer {t}");
        assert_eq!(v.user(super::token(Some(&bearer), None)), Ok(alice.clone()));
        assert_eq!(v.user(super::token(None, Some(&t))), Ok(alice));
    }

    #[test]
    fn bad_tokens_say_why_without_the_token() {
        let v = Verifier::new(&config(Some("s3cret"), false)).unwrap();
        let cases = [
            (
                token(
                    "other",
                    serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "gw"}),
                ),
                "bad signature",
            ),
            (
                token(
                    "s3cret",
                    serde_json::json!({"sub": "a", "exp": now() - 600, "aud": "gw"}),
                ),
                "expired",
            ),
            (
                token(
                    "s3cret",
                    serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "x"}),
                ),
                "wrong audience",
            ),
            (
                token(
                    "s3cret",
                    serde_json::json!({"sub": "a", "exp": now() + 900, "nbf": now() + 600, "aud": "gw"}),
                ),
                "not valid yet (nbf)",
            ),
            (
                token("s3cret", serde_json::json!({"sub": "a", "aud": "gw"})),
                "the required claim \"exp\" is missing",
            ),
            ("not.a.jwt".to_owned(), "malformed"),
        ];
        for (t, why) in cases {
            let e = v.user(Some(&t)).unwrap_err();
            assert_eq!(e, format!("Invalid token: {why}"));
            assert!(!e.contains(&t));
        }
        assert_eq!(v.user(None), Err("Authentication required".into()));
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let shown = format!("{:?}", config(Some("hunter2-secret"), false));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn anonymous_only_when_configured() {
        let v = Verifier::new(&config(None, true)).unwrap();
        assert_eq!(v.user(None), Ok(Identity::anonymous()));
        let v = Verifier::new(&config(None, false)).unwrap();
        assert_eq!(v.user(None), Err("Authentication required".into()));
    }
}
