//! Long-polling transports: xhr-polling (`POST /xhr`) and jsonp-polling
//! (`GET /jsonp?c=callback`). Each request takes one frame.

use crate::protocol::Wrapping;
use crate::service::hub::ServiceHub;
use crate::session::receiver::ReceiverKind;
use crate::transport::callback::callback_param;
use crate::transport::headers::{Origin, JAVASCRIPT};
use crate::transport::receive::{attach, respond, response_head};
use actix_web::{HttpRequest, HttpResponse};
use std::sync::Arc;

pub async fn xhr(req: &HttpRequest, hub: &Arc<ServiceHub>, sid: &str) -> HttpResponse {
    hub.metrics.polls.inc();
    let origin = match Origin::check(req, &hub.config) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    match attach(req, hub, sid, || ReceiverKind::Polling(Wrapping::Xhr), None).await {
        Ok(body) => respond(req, response_head(req, hub, &origin, JAVASCRIPT), body),
        Err(resp) => resp,
    }
}

pub async fn jsonp(req: &HttpRequest, hub: &Arc<ServiceHub>, sid: &str) -> HttpResponse {
    hub.metrics.polls.inc();
    let callback = match callback_param(req) {
        Ok(cb) => cb,
        Err(resp) => return resp,
    };
    // JSONP is loaded by a <script> tag: no CORS, but nosniff so that a
    // browser never runs the answer as anything but script.
    let kind = || ReceiverKind::Polling(Wrapping::Jsonp(callback.clone()));
    match attach(req, hub, sid, kind, None).await {
        Ok(body) => {
            let mut head = response_head(req, hub, &Origin::Absent, JAVASCRIPT);
            head.insert_header(("X-Content-Type-Options", "nosniff"));
            respond(req, head, body)
        }
        Err(resp) => resp,
    }
}
