//! What a backend sees of a session: it opens, sends messages, is sent
//! messages, closes. Never which transport carries it.

pub use crate::session::handler::{
    CloseReason, Handler, Open, SessionCtx, SessionHandle, SessionInfo, CLOSE_TOO_MANY,
};

/// A backend: makes one [`Handler`] per session.
pub trait Service: Send + Sync + 'static {
    /// A new session is opening; return the handler for its life.
    fn new_session(&self, info: &SessionInfo) -> Box<dyn Handler>;
}
