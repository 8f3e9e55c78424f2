//! The `c` query parameter of jsonp-polling and htmlfile: the callback the
//! answer calls, which a forwarded request's close frame is wrapped in too.

use crate::transport::headers;
use actix_web::{HttpRequest, HttpResponse};

/// The `c` query parameter of jsonp-polling and htmlfile: required, and
/// restricted to safe characters since it is written into script.
pub fn callback_param(req: &HttpRequest) -> Result<String, HttpResponse> {
    let cb = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "c")
        .map(|(_, v)| v);
    match cb {
        None => Err(headers::protocol_error("\"callback\" parameter required")),
        Some(cb) if crate::protocol::ids::is_valid_callback(&cb) => Ok(cb.into_owned()),
        Some(_) => Err(headers::protocol_error("invalid \"callback\" parameter")),
    }
}
