//! The request-head size limit: `431 Request Header Fields Too Large` past
//! `max_header_bytes`. actix-http's own ceiling (128 KiB) is fixed; this
//! one is the operator's, checked before any route or upgrade runs.

use actix_web::body::MessageBody;
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};

/// actix-http refuses heads over 128 KiB before any limit of ours runs.
pub const CEILING: usize = 128 * 1024;

/// The size of a head as sent: request line, each header line, the blank
/// line (HTTP/1.1 wire form; what nginx and Node count too).
pub fn size(head: &RequestHead) -> usize {
    let target = head.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let request_line = head.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line + headers + 2
}

/// Middleware: answers 431 and closes the connection when the head is
/// larger than `limit`.
pub async fn check(
    limit: usize,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let n = size(req.head());
    if n > limit {
        let resp = HttpResponse::build(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .content_type("text/plain; charset=UTF-8")
            .force_close()
            .body(format!(
                "Request header fields too large: {n} bytes, the limit is {limit} (max_header_bytes).\n"
            ));
        return Ok(req.into_response(resp).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
