//! Headers every SockJS HTTP answer shares: origin policy and CORS, cache
//! control, the JSESSIONID cookie, and the protocol's plain error answers.

use crate::config::ServiceConfig;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use std::time::{Duration, SystemTime};

/// Exactly what SockJS requires on answers that must never be cached.
pub const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";
/// One year, for the iframe page and CORS preflights.
pub const ONE_YEAR_SECS: u64 = 365 * 24 * 3600;
pub const JAVASCRIPT: &str = "application/javascript; charset=UTF-8";
pub const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";
pub const TEXT_HTML: &str = "text/html; charset=UTF-8";

/// The request's standing under the service's origin policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// No `Origin` header: not a browser cross-origin request.
    Absent,
    /// Same origin, or listed in `allowed_origins` (the exact header value).
    Allowed(String),
    /// A browser page from an origin the service does not allow.
    Denied(String),
}

impl Origin {
    pub fn of(req: &HttpRequest, cfg: &ServiceConfig) -> Origin {
        let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        else {
            return Origin::Absent;
        };
        let listed = cfg.allows_any_origin()
            || cfg
                .allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin));
        if listed || is_same_origin(req, origin) {
            Origin::Allowed(origin.to_owned())
        } else {
            Origin::Denied(origin.to_owned())
        }
    }

    /// `403` for a denied origin, with a reason a developer can act on.
    pub fn check(req: &HttpRequest, cfg: &ServiceConfig) -> Result<Origin, HttpResponse> {
        match Origin::of(req, cfg) {
            Origin::Denied(o) => {
                log::debug!("refused origin {o:?} for {}", req.path());
                Err(HttpResponse::Forbidden()
                    .content_type(TEXT_PLAIN)
                    .body(format!(
                        "Origin {o} is not allowed (see allowed_origins).\n"
                    )))
            }
            other => Ok(other),
        }
    }

    /// Adds the CORS answer: the exact origin with credentials, or `*` without.
    pub fn apply(&self, b: &mut HttpResponseBuilder) {
        match self {
            Origin::Allowed(o) => {
                b.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o.as_str()))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
            }
            Origin::Absent | Origin::Denied(_) => {
                b.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
            }
        }
        b.insert_header((header::VARY, "Origin"));
    }
}

/// Same origin: the Origin's host and port equal the request's `Host`.
fn is_same_origin(req: &HttpRequest, origin: &str) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    let default_port = if origin.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    let strip = |s: &str| {
        s.strip_suffix(default_port)
            .unwrap_or(s)
            .to_ascii_lowercase()
    };
    !authority.is_empty() && strip(authority) == strip(host)
}

/// `Expires` one year ahead.
pub fn expires_in_a_year() -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(ONE_YEAR_SECS))
}

pub fn long_cache(b: &mut HttpResponseBuilder) {
    b.insert_header((
        header::CACHE_CONTROL,
        format!("public, max-age={ONE_YEAR_SECS}"),
    ))
    .insert_header((header::EXPIRES, expires_in_a_year()));
}

pub fn no_cache(b: &mut HttpResponseBuilder) {
    b.insert_header((header::CACHE_CONTROL, NO_CACHE));
}

/// `Set-Cookie: JSESSIONID=...; path=/` when the service asks for it: the
/// client's value echoed, else a dummy one, for sticky load balancers.
pub fn jsessionid(req: &HttpRequest, cfg: &ServiceConfig, b: &mut HttpResponseBuilder) {
    if !cfg.jsessionid {
        return;
    }
    let value = req
        .cookie("JSESSIONID")
        .map(|c| c.value().to_owned())
        .unwrap_or_else(|| "dummy".into());
    let cookie = actix_web::cookie::Cookie::build("JSESSIONID", value)
        .path("/")
        .finish();
    b.cookie(cookie);
}

/// Answer to a CORS preflight for an endpoint accepting `methods`.
pub fn preflight(req: &HttpRequest, cfg: &ServiceConfig, methods: &str) -> HttpResponse {
    let origin = match Origin::check(req, cfg) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let mut b = HttpResponse::NoContent();
    origin.apply(&mut b);
    long_cache(&mut b);
    b.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, ONE_YEAR_SECS.to_string()));
    if let Some(h) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        if !h.is_empty() {
            b.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
    }
    jsessionid(req, cfg, &mut b);
    b.finish()
}

pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type(TEXT_PLAIN)
        .body("Not found\n")
}

/// `405` with `Allow`, no content type and an empty body, as SockJS asks.
pub fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut resp = HttpResponse::new(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_str(allow).expect("static header"),
    );
    resp
}

/// The protocol's `500` answers for bad client input (bad callback, bad payload).
pub fn protocol_error(message: &str) -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type(TEXT_PLAIN)
        .body(message.to_owned())
}

pub fn payload_too_large(limit: usize) -> HttpResponse {
    HttpResponse::PayloadTooLarge()
        .content_type(TEXT_PLAIN)
        .body(format!(
            "Payload too large: the limit is {limit} bytes (max_message_bytes).\n"
        ))
}

pub fn service_unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type(TEXT_PLAIN)
        .insert_header((header::RETRY_AFTER, "5"))
        // A client refused a session need not hold a connection either.
        .force_close()
        .body("Too many sessions (max_sessions).\n")
}

/// `429` for a request refused by a limit: `error` says what, `limit`
/// names the configuration key; CORS headers so that a page can read it.
pub fn too_many(origin: &Origin, error: &str, limit: &str) -> HttpResponse {
    let mut b = HttpResponse::TooManyRequests();
    b.insert_header((header::RETRY_AFTER, "1"));
    no_cache(&mut b);
    origin.apply(&mut b);
    b.json(serde_json::json!({ "error": error, "limit": limit }))
}

/// Whether the method is one of `allowed`; otherwise the 405 to answer.
pub fn allow(
    req: &HttpRequest,
    allowed: &[Method],
    allow_header: &str,
) -> Result<(), HttpResponse> {
    if allowed.contains(req.method()) {
        Ok(())
    } else {
        Err(method_not_allowed(allow_header))
    }
}
