//! The embedded demo's API key (`[api] demo_key`): with no `key` set, one
//! is made at start, printed, and shown to the demo pages at
//! `GET /demo/api` on the main listener, so that the quick start ends with
//! a notification sent by `curl`. Both listeners must be on loopback: the
//! key is handed to any page that asks, so only one whose `Host` is a
//! loopback name gets it (a rebinding name that resolves to 127.0.0.1 does
//! not).

use crate::protocol::loopback_host::is_loopback_host;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

#[derive(Clone)]
pub struct DemoKey {
    pub key: Arc<str>,
    /// The API's address, once it is bound.
    url: Arc<OnceLock<String>>,
}

impl DemoKey {
    /// A random key: 16 random bytes in hex.
    pub fn new() -> DemoKey {
        DemoKey {
            key: crate::protocol::ids::random_hex::<16>().into(),
            url: Arc::default(),
        }
    }

    /// The API listens at `addrs`.
    pub fn bound(&self, addrs: &[SocketAddr]) {
        if let Some(a) = addrs.first() {
            let _ = self.url.set(format!("http://{a}"));
        }
    }

    /// `GET /demo/api`: `{"url", "key"}`.
    pub fn route(self) -> actix_web::Route {
        web::get().to(move |req: HttpRequest| {
            let demo = self.clone();
            async move {
                if !loopback(&req) {
                    return foreign_host();
                }
                match demo.url.get() {
                    Some(url) => HttpResponse::Ok().json(json!({ "url": url, "key": &*demo.key })),
                    None => HttpResponse::NotFound().json(json!({ "error": "the API is not up" })),
                }
            }
        })
    }
}

/// Whether the request's `Host` names this machine; none does not.
fn loopback(req: &HttpRequest) -> bool {
    req.headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback_host)
}

/// 403 for a demo endpoint asked under another name.
fn foreign_host() -> HttpResponse {
    HttpResponse::Forbidden().json(json!({
        "error": "the demo endpoints answer only a loopback Host (localhost, 127.0.0.1, [::1])"
    }))
}

impl Default for DemoKey {
    fn default() -> Self {
        Self::new()
    }
}
