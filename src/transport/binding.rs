//! Session binding (`session_binding = "ip"`): an HTTP session's URLs
//! answer only the client address that made it.
//!
//! A bound session is registered under its id and that address, so another
//! address asking for the same id finds nothing there: it gets exactly what
//! an unknown id gets (a poll opens a separate session of its own, a send
//! gets 404) and learns nothing of the first session.

use crate::config::SessionBinding;
use crate::service::hub::ServiceHub;
use crate::transport::client_addr::Trust;
use actix_web::HttpRequest;
use std::borrow::Cow;

/// The registry key of session `sid` for this request. Ids never contain
/// `/`, so `sid/address` cannot collide with an unbound id.
pub fn registry_id<'a>(req: &HttpRequest, hub: &ServiceHub, sid: &'a str) -> Cow<'a, str> {
    match hub.config.session_binding {
        SessionBinding::None => Cow::Borrowed(sid),
        SessionBinding::Ip => {
            let ip = Trust::of(hub)
                .client_addr(req)
                .map_or("-".into(), |a| a.to_string());
            Cow::Owned(format!("{sid}/{ip}"))
        }
    }
}
