//! Client-to-server sends of the HTTP transports: `xhr_send` (JSON array
//! body) and `jsonp_send` (form field `d`, or a plain body).

use crate::cluster::owners::Owner;
use crate::protocol::payload::{decode_messages, form_field, PayloadError};
use crate::service::hub::ServiceHub;
use crate::session::actor::Incoming;
use crate::transport::client_addr::Trust;
use crate::transport::forward;
use crate::transport::headers::{self, Origin, TEXT_PLAIN};
use actix_web::http::header;
use actix_web::web::{BytesMut, Payload};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use std::sync::Arc;

enum Reply {
    /// xhr_send: `204` with a text/plain content type (Firefox otherwise
    /// tries to parse the empty answer as XML).
    NoContent,
    /// jsonp_send: `200 ok` (some browsers mishandle a 204 to a form post).
    Ok,
}

pub async fn xhr_send(
    req: &HttpRequest,
    hub: &Arc<ServiceHub>,
    sid: &str,
    body: Payload,
) -> HttpResponse {
    match Origin::check(req, &hub.config) {
        Ok(origin) => send(req, hub, sid, body, origin, Reply::NoContent, false).await,
        Err(resp) => resp,
    }
}

pub async fn jsonp_send(
    req: &HttpRequest,
    hub: &Arc<ServiceHub>,
    sid: &str,
    body: Payload,
) -> HttpResponse {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    // A hidden-form post from the client's page: no CORS answer, but a
    // browser names the page's origin, and a page not allowed must not
    // write into a session (with a cookie-authenticated connect webhook it
    // could sign in as the user; the poll's script answer it reads anyway).
    if let Err(resp) = Origin::check(req, &hub.config) {
        return resp;
    }
    send(req, hub, sid, body, Origin::Absent, Reply::Ok, form).await
}

async fn send(
    req: &HttpRequest,
    hub: &Arc<ServiceHub>,
    sid: &str,
    body: Payload,
    origin: Origin,
    reply: Reply,
    form: bool,
) -> HttpResponse {
    let Some(addr) = hub.registry.get(sid) else {
        return elsewhere(req, hub, sid, body).await;
    };
    let limit = hub.config.max_message_bytes;
    let raw = match read_body(req, body, limit).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let payload: Vec<u8> = if form {
        form_field(&raw, "d").unwrap_or_default()
    } else {
        raw.to_vec()
    };
    let messages = match decode_messages(&payload) {
        Ok(m) => m,
        Err(e @ (PayloadError::Empty | PayloadError::BrokenJson)) => {
            return headers::protocol_error(e.message())
        }
    };
    if !messages.is_empty() {
        match addr.send(Incoming(messages)).await {
            Ok(true) => {}
            Ok(false) => {
                return headers::too_many(&origin, "Too many messages", "max_messages_per_second")
            }
            // The session expired while this request was in flight.
            Err(_) => return headers::not_found(),
        }
    }
    let mut b = match reply {
        Reply::NoContent => HttpResponse::NoContent(),
        Reply::Ok => HttpResponse::Ok(),
    };
    b.content_type(TEXT_PLAIN);
    headers::no_cache(&mut b);
    origin.apply(&mut b);
    headers::jsessionid(req, &hub.config, &mut b);
    match reply {
        Reply::NoContent => b.finish(),
        Reply::Ok => b.body("ok"),
    }
}

/// A send for a session not held here: to the node that holds it, in a
/// cluster (its body read, within the same limit, only then); else 404, as
/// for any unknown session.
async fn elsewhere(req: &HttpRequest, hub: &ServiceHub, sid: &str, body: Payload) -> HttpResponse {
    if let Some(owners) = &hub.cluster.owners {
        if !Trust::of(hub).from_node(req) {
            if let Owner::Elsewhere(url) = owners.locate(&hub.name, sid, false).await {
                let body = match read_body(req, body, hub.config.max_message_bytes).await {
                    Ok(b) => b.freeze(),
                    Err(resp) => return resp,
                };
                match forward::forward(req, hub, owners, &url, body).await {
                    Ok(resp) => return resp,
                    Err(forward::Failed::Unreachable) => owners.forget(&hub.name, sid),
                }
            }
        }
    }
    headers::not_found()
}

/// Reads a request body of at most `limit` bytes, else answers 413.
async fn read_body(
    req: &HttpRequest,
    mut body: Payload,
    limit: usize,
) -> Result<BytesMut, HttpResponse> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(headers::payload_too_large(limit));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            HttpResponse::BadRequest()
                .content_type(TEXT_PLAIN)
                .body(e.to_string())
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(headers::payload_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}
