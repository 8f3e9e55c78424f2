//! What a session needs of the service that holds it, seen from the session
//! layer: its configuration and metrics, a handler per session, forgetting
//! a session that ended, and broadcasting. The service layer implements it
//! ([`crate::service::hub::ServiceHub`]), with the cluster behind
//! `forget` and `broadcast`, so sessions never reach above themselves.

use crate::config::ServiceConfig;
use crate::metrics::ServiceMetrics;
use crate::session::handler::{Handler, SessionInfo};
use std::sync::Arc;

pub trait Hub: Send + Sync + 'static {
    fn config(&self) -> &ServiceConfig;
    fn metrics(&self) -> &ServiceMetrics;
    /// The handler of a session that is opening.
    fn new_handler(&self, info: &SessionInfo) -> Box<dyn Handler>;
    /// Forgets a session that ended: here, and wherever else its id is
    /// recorded.
    fn forget(&self, sid: Option<&str>, key: u64);
    /// Sends `message` to every open session of the service, on every node.
    fn broadcast_text(&self, message: Arc<str>);
}

impl dyn Hub {
    /// Sends a message to every open session of this service, on every
    /// node, whatever transport each uses. The message is shared, not
    /// copied, per session.
    pub fn broadcast(&self, message: impl Into<Arc<str>>) {
        self.broadcast_text(message.into());
    }
}
