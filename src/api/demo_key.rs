//! The embedded demo's API key (`[api] demo_key`): with no `key` set, one
//! is made at start, printed, and shown to the demo pages at
//! `GET /demo/api` on the main listener, so that the quick start ends with
//! a notification sent by `curl`. Both listeners must be on loopback: the
//! key is handed to any page that asks.

use actix_web::{web, HttpResponse};
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
        web::get().to(move || {
            let demo = self.clone();
            async move {
                match demo.url.get() {
                    Some(url) => HttpResponse::Ok().json(json!({ "url": url, "key": &*demo.key })),
                    None => HttpResponse::NotFound().json(json!({ "error": "the API is not up" })),
                }
            }
        })
    }
}

impl Default for DemoKey {
    fn default() -> Self {
        Self::new()
    }
}
