//! The service's fixed URLs: the greeting, `/info` and the iframe page.

use crate::service::hub::ServiceHub;
use crate::transport::client_addr::Trust;
use crate::transport::headers::{self, Origin, TEXT_HTML, TEXT_PLAIN};
use actix_web::http::{header, Method};
use actix_web::{HttpRequest, HttpResponse};
use std::hash::{Hash, Hasher};

pub fn greeting(req: &HttpRequest) -> HttpResponse {
    if let Err(resp) = headers::allow(req, &[Method::GET, Method::HEAD], "GET, HEAD") {
        return resp;
    }
    HttpResponse::Ok()
        .content_type(TEXT_PLAIN)
        .body("Welcome to SockJS!\n")
}

/// `GET /info`: what the client needs before choosing a transport. It is
/// also the client's round-trip probe, so it answers at once.
pub fn info(req: &HttpRequest, hub: &ServiceHub) -> HttpResponse {
    if req.method() == Method::OPTIONS {
        return headers::preflight(req, &hub.config, "OPTIONS, GET");
    }
    if let Err(resp) = headers::allow(req, &[Method::GET], "OPTIONS, GET") {
        return resp;
    }
    let origin = match Origin::check(req, &hub.config) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    if let Err(limit) = hub.admit_info(|| Trust::of(hub).limit_addr(req)) {
        return headers::too_many(&origin, "Too many sessions", limit.key());
    }
    let body = serde_json::json!({
        "websocket": hub.config.websocket,
        "origins": ["*:*"],
        "cookie_needed": hub.config.jsessionid,
        "entropy": rand::random::<u32>(),
    });
    let mut b = HttpResponse::Ok();
    b.content_type("application/json; charset=UTF-8");
    headers::no_cache(&mut b);
    origin.apply(&mut b);
    b.body(body.to_string())
}

/// `iframe.html` or `iframe-<anything>.html`: one page whatever the version.
pub fn is_iframe_name(file: &str) -> bool {
    file.strip_prefix("iframe")
        .and_then(|r| r.strip_suffix(".html"))
        .is_some_and(|v| v.is_empty() || v.starts_with('-'))
}

/// The iframe page, strongly cached with an ETag.
pub fn iframe(req: &HttpRequest, hub: &ServiceHub) -> HttpResponse {
    let page = crate::protocol::wrap::iframe_page(&hub.config.sockjs_url());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    page.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut b = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    headers::long_cache(&mut b);
    b.insert_header((header::ETAG, etag));
    if matches {
        b.finish()
    } else {
        b.content_type(TEXT_HTML).body(page)
    }
}

#[cfg(test)]
mod tests {
    use super::is_iframe_name;

    #[test]
    fn iframe_names() {
        for ok in [
            "iframe.html",
            "iframe-.html",
            "iframe-a.html",
            "iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe_name(ok), "{ok}");
        }
        for bad in [
            "iframe.htm",
            "iframe",
            "IFRAME.HTML",
            "iframe.HTML",
            "iframe.xml",
            "iframex.html",
            "a.html",
        ] {
            assert!(!is_iframe_name(bad), "{bad}");
        }
    }
}
