//! Mounting a service's SockJS URLs under its prefix.

use crate::config::CLIENT_SCRIPT;
use crate::protocol::ids::is_valid_id;
use crate::service::hub::ServiceHub;
use crate::transport::headers::{self, allow};
use crate::transport::websocket::Framing;
use crate::transport::{binding, pages, polling, send, streaming, websocket};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

type Hub = web::Data<ServiceHub>;

/// Adds every URL of `hub`'s service to an actix app. The fixed URLs are
/// static routes; the rest is split by hand (`tail`), since actix matches
/// dynamic segments with a regex engine, a measurable cost per request.
///
/// `client`, the local sockjs-client build, is served under the prefix
/// too (`PREFIX/sockjs.min.js`), where the iframe page loads it by default:
/// a proxy that routes only the prefix still routes the script.
pub fn mount(cfg: &mut web::ServiceConfig, hub: Arc<ServiceHub>, client: Option<StaticFile>) {
    let prefix = hub.config.prefix.clone();
    let mut scope = web::scope(&prefix)
        .app_data(web::Data::from(hub))
        .route("", web::route().to(greeting))
        .route("/", web::route().to(greeting))
        .route("/info", web::route().to(info))
        .route("/websocket", web::route().to(raw_websocket));
    if let Some(client) = client {
        scope = scope.route(&format!("/{CLIENT_SCRIPT}"), client.route());
    }
    cfg.service(scope.default_service(web::to(tail)));
}

/// One file on disk served at a fixed URL, for GET and HEAD, with the
/// validators (ETag, Last-Modified) that `actix_files` derives.
#[derive(Clone)]
pub struct StaticFile(pub Arc<std::path::Path>);

impl StaticFile {
    pub fn route(&self) -> actix_web::Route {
        let path = self.0.clone();
        web::route().to(move |req: HttpRequest| {
            let path = path.clone();
            async move {
                if let Err(resp) = allow(&req, &[Method::GET, Method::HEAD], "GET, HEAD") {
                    return resp;
                }
                match actix_files::NamedFile::open_async(&path).await {
                    Ok(file) => file.into_response(&req),
                    Err(_) => headers::not_found(),
                }
            }
        })
    }
}

/// Everything under the prefix but the fixed URLs: the iframe page
/// (`/iframe*.html`), session URLs (`/{server}/{session}/{transport}`), or 404.
async fn tail(req: HttpRequest, hub: Hub, body: web::Payload) -> HttpResponse {
    let Some(rest) = req.match_info().unprocessed().strip_prefix('/') else {
        return headers::not_found();
    };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), None, None, None) => iframe(&req, &hub, file),
        (Some(server), Some(sid), Some(transport), None) => {
            session_url(&req, hub, server, sid, transport, body).await
        }
        _ => headers::not_found(),
    }
}

async fn greeting(req: HttpRequest) -> HttpResponse {
    pages::greeting(&req)
}

async fn info(req: HttpRequest, hub: Hub) -> HttpResponse {
    pages::info(&req, &hub)
}

fn iframe(req: &HttpRequest, hub: &ServiceHub, file: &str) -> HttpResponse {
    if !pages::is_iframe_name(file) {
        return headers::not_found();
    }
    if let Err(resp) = allow(req, &[Method::GET, Method::HEAD], "GET, HEAD") {
        return resp;
    }
    pages::iframe(req, hub)
}

async fn raw_websocket(req: HttpRequest, hub: Hub, body: web::Payload) -> HttpResponse {
    let cfg = &hub.config;
    if !(cfg.websocket && cfg.raw_websocket) {
        return headers::not_found();
    }
    if let Err(resp) = allow(&req, &[Method::GET], "GET") {
        return resp;
    }
    websocket::websocket(&req, &hub.into_inner(), body, Framing::Raw).await
}

/// `/{server}/{session}/{transport}`: ids are checked, then the transport
/// (404 if unknown or disabled), then the method (405 with `Allow`).
async fn session_url(
    req: &HttpRequest,
    hub: Hub,
    server: &str,
    sid: &str,
    transport: &str,
    body: web::Payload,
) -> HttpResponse {
    if !is_valid_id(server) || !is_valid_id(sid) || sid.len() < hub.config.min_session_id_length {
        return headers::not_found();
    }
    let hub = hub.into_inner();
    let cfg = &hub.config;
    let sid = &*binding::registry_id(req, &hub, sid);
    let post = [Method::POST, Method::OPTIONS];
    let get = [Method::GET];
    let (enabled, methods, allow_header): (bool, &[Method], &str) = match transport {
        "websocket" => (cfg.websocket, &get, "GET"),
        "xhr" => (cfg.xhr_polling, &post, "OPTIONS, POST"),
        "xhr_send" => (cfg.xhr_polling || cfg.xhr_streaming, &post, "OPTIONS, POST"),
        "xhr_streaming" => (cfg.xhr_streaming, &post, "OPTIONS, POST"),
        "eventsource" => (cfg.eventsource, &get, "GET"),
        "htmlfile" => (cfg.htmlfile, &get, "GET"),
        "jsonp" => (cfg.jsonp_polling, &get, "GET"),
        "jsonp_send" => (cfg.jsonp_polling, &[Method::POST], "POST"),
        _ => (false, &[], ""),
    };
    if !enabled {
        return headers::not_found();
    }
    if let Err(resp) = allow(req, methods, allow_header) {
        return resp;
    }
    if req.method() == Method::OPTIONS {
        return headers::preflight(req, cfg, allow_header);
    }
    match transport {
        "websocket" => websocket::websocket(req, &hub, body, Framing::SockJs).await,
        "xhr" => polling::xhr(req, &hub, sid).await,
        "xhr_send" => send::xhr_send(req, &hub, sid, body).await,
        "xhr_streaming" => streaming::xhr_streaming(req, &hub, sid).await,
        "eventsource" => streaming::eventsource(req, &hub, sid).await,
        "htmlfile" => streaming::htmlfile(req, &hub, sid).await,
        "jsonp" => polling::jsonp(req, &hub, sid).await,
        "jsonp_send" => send::jsonp_send(req, &hub, sid, body).await,
        _ => headers::not_found(),
    }
}
