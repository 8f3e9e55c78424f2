//! The HTTP API backends call to reach STOMP clients, on a listener of its
//! own (`[api] listen`, loopback by default) and only with the key
//! (`[api] key`, as `Authorization: Bearer`); Prometheus metrics at
//! `GET /metrics` there too, without the key (`[api] metrics`).
//!
//! - [`routes`]: `POST /api/publish`, `POST /api/users/{user}/send`,
//!   `POST /api/users/{user}/disconnect`, `GET /api/destinations`.
//! - [`key`]: the key check; [`error`]: JSON errors with their status.

pub mod demo_key;
pub mod error;
pub mod key;
pub mod routes;

use crate::config::ApiConfig;
use actix_web::http::StatusCode;
use actix_web::{middleware, web, App, HttpServer};
use error::ApiError;
use routes::{Brokers, MaxBody};
use std::sync::Arc;

/// Binds the API's listener, if `[api] key` is set or `[api] metrics` is
/// on, and returns its server
/// (not yet awaited) and bound addresses.
pub fn bind(
    config: &ApiConfig,
    brokers: Brokers,
    access_log: bool,
) -> std::io::Result<Option<(actix_web::dev::Server, Vec<std::net::SocketAddr>)>> {
    let key: Option<Arc<str>> = config.key().map(Into::into);
    if key.is_none() && !brokers.list.is_empty() {
        log::info!("api: off, as no [api] key is set (SOCKJS_GATEWAY__API__KEY)");
    }
    if key.is_none() && !config.metrics {
        return Ok(None);
    }
    let metrics = config.metrics;
    let brokers = web::Data::new(brokers);
    let max = web::Data::new(MaxBody(config.max_body_bytes));
    let server = HttpServer::new(move || {
        let key = key.clone();
        App::new()
            .wrap(middleware::from_fn(move |req, next| {
                key::check(key.clone(), metrics, req, next)
            }))
            .wrap(middleware::Condition::new(
                access_log,
                // The peer itself: no proxy is trusted on this listener.
                middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("sockjs_gateway::api"),
            ))
            .app_data(brokers.clone())
            .app_data(max.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("query: {e}")).into()
            }))
            .configure(routes::configure)
            .configure(|cfg| {
                if metrics {
                    cfg.route("/metrics", web::get().to(crate::metrics::Metrics::serve));
                }
            })
            .default_service(web::to(|req: actix_web::HttpRequest| async move {
                Err::<actix_web::HttpResponse, _>(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no such endpoint: {} {}", req.method(), req.path()),
                ))
            }))
    })
    .workers(1)
    .disable_signals()
    .bind(&config.listen)
    .map_err(|e| std::io::Error::new(e.kind(), format!("api.listen {}: {e}", config.listen)))?;
    let addrs = server.addrs();
    for a in &addrs {
        if !a.ip().is_loopback() {
            log::warn!(
                "api: listening on {a}, which is not loopback: keep it off the public network"
            );
        }
    }
    Ok(Some((server.run(), addrs)))
}
