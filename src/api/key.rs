//! The API key check: every request carries `Authorization: Bearer <key>`.

use super::error::ApiError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use subtle::ConstantTimeEq;

/// Whether an `Authorization` header value carries `key`. The comparison
/// takes the same time wherever the first wrong byte is.
pub fn authorized(authorization: Option<&[u8]>, key: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some(given) = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
    else {
        return false;
    };
    given.ct_eq(key.as_bytes()).into()
}

/// Middleware: 401 with a JSON body unless the request has the key.
pub async fn check(
    key: Option<std::sync::Arc<str>>,
    metrics: bool,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Scrapers reach the metrics without the key, when they are on; when
    // they are off, say so and how to turn them on, key or not.
    if req.path() == "/metrics" {
        if metrics {
            return next.call(req).await;
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics are off; set api.metrics = true (SOCKJS_GATEWAY__API__METRICS=true) to serve them here",
        )
        .into());
    }
    let Some(key) = key else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the API is off: no [api] key is set (only /metrics is served)",
        )
        .into());
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !authorized(given, &key) {
        let why = if given.is_some() {
            "the API key is wrong (Authorization: Bearer <key>)"
        } else {
            "an API key is required (Authorization: Bearer <key>)"
        };
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, why).into());
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_as_a_bearer_token_passes() {
        let key = "0123456789abcdef";
        assert!(authorized(Some(b"Bearer 0123456789abcdef"), key));
        assert!(authorized(Some(b"bearer 0123456789abcdef"), key));
        for bad in [
            &b"Bearer 0123456789abcdeF"[..],
            b"Bearer 0123456789abcde",
            b"Bearer 0123456789abcdef0",
            b"0123456789abcdef",
            b"Basic 0123456789abcdef",
            b"Bearer ",
        ] {
            assert!(
                !authorized(Some(bad), key),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(!authorized(None, key));
    }
}
