//! HTTP streaming transports: xhr-streaming, eventsource and htmlfile.
//! Each response carries frames until `response_limit` bytes, then ends so
//! the browser can free them; the client reconnects to the same session.

use crate::protocol::wrap::{htmlfile_prelude, xhr_streaming_prelude, EVENTSOURCE_PRELUDE};
use crate::protocol::Wrapping;
use crate::service::hub::ServiceHub;
use crate::session::receiver::ReceiverKind;
use crate::transport::callback::callback_param;
use crate::transport::headers::{Origin, JAVASCRIPT, TEXT_HTML};
use crate::transport::receive::{attach, respond, response_head};
use actix_web::{HttpRequest, HttpResponse};
use std::sync::Arc;

async fn stream(
    req: &HttpRequest,
    hub: &Arc<ServiceHub>,
    sid: &str,
    origin: Origin,
    wrapping: Wrapping,
    prelude: String,
    content_type: &str,
) -> HttpResponse {
    let limit = hub.config.response_limit;
    let kind = || ReceiverKind::Streaming {
        wrapping: wrapping.clone(),
        remaining: limit,
    };
    match attach(req, hub, sid, kind, Some(prelude)).await {
        Ok(body) => respond(req, response_head(req, hub, &origin, content_type), body),
        Err(resp) => resp,
    }
}

pub async fn xhr_streaming(req: &HttpRequest, hub: &Arc<ServiceHub>, sid: &str) -> HttpResponse {
    match Origin::check(req, &hub.config) {
        Ok(origin) => {
            stream(
                req,
                hub,
                sid,
                origin,
                Wrapping::Xhr,
                xhr_streaming_prelude(),
                JAVASCRIPT,
            )
            .await
        }
        Err(resp) => resp,
    }
}

pub async fn eventsource(req: &HttpRequest, hub: &Arc<ServiceHub>, sid: &str) -> HttpResponse {
    match Origin::check(req, &hub.config) {
        Ok(origin) => {
            stream(
                req,
                hub,
                sid,
                origin,
                Wrapping::EventSource,
                EVENTSOURCE_PRELUDE.into(),
                "text/event-stream",
            )
            .await
        }
        Err(resp) => resp,
    }
}

pub async fn htmlfile(req: &HttpRequest, hub: &Arc<ServiceHub>, sid: &str) -> HttpResponse {
    let callback = match callback_param(req) {
        Ok(cb) => cb,
        Err(resp) => return resp,
    };
    // Loaded as a page inside the client's own frame: no CORS.
    stream(
        req,
        hub,
        sid,
        Origin::Absent,
        Wrapping::HtmlFile,
        htmlfile_prelude(&callback),
        TEXT_HTML,
    )
    .await
}
