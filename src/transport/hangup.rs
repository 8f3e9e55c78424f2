//! Noticing at once when a client drops a pending poll or stream.
//!
//! actix-web only finds out that a client went away when it next writes
//! (actix-web issues #1313 and #3462), so a silent long-poll would keep its
//! session attached to a dead connection. Each accepted socket's fd is kept
//! in the connection's data. The first time a connection carries a poll or
//! stream, a duplicate of its fd is watched for read hang-up (EPOLLRDHUP) by
//! one task for the rest of that connection's life; each receiver on the
//! connection registers itself with that watch while it waits, so later
//! polls on the connection cost no syscalls. Connections that never wait
//! (sends, WebSockets, pages) cost no extra descriptor.

use actix_web::dev::Extensions;
use actix_web::{HttpMessage, HttpRequest};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::oneshot;

type OnHangup = Box<dyn FnOnce()>;

/// Per-connection state, in the connection's extensions (one worker thread).
struct Connection {
    fd: RawFd,
    watch: RefCell<Option<Watch>>,
    /// The connection's place in the descriptor budget, given back when it
    /// closes (kept here rather than as an entry of its own: one
    /// allocation less per connection).
    _held: crate::limits::fds::Held,
}

struct Watch {
    /// What to call if the peer hangs up now: the waiting receiver's.
    waiting: Waiting,
    /// Dropped with the connection, which ends the watching task (and
    /// closes the duplicate fd) even if the peer never hangs up.
    _stop: oneshot::Sender<()>,
}

/// The receiver waiting on a connection's hang-up, if one does, for
/// whoever learns of the hang-up: the watch of a socket, or, for a request
/// that came over a link between nodes ([`crate::transport::link`]) and has
/// no socket of its own, its forwarding node's word that its client left.
#[derive(Clone, Default)]
pub struct Waiting(Rc<RefCell<Option<(u64, OnHangup)>>>);

impl Waiting {
    /// Calls whatever waits on the request now, as a hang-up would.
    pub fn hang_up(&self) {
        // Taken out first: the callback must not run under the borrow.
        let waiter = self.0.borrow_mut().take();
        if let Some((_, on_hangup)) = waiter {
            on_hangup();
        }
    }
}

/// For `HttpServer::on_connect`: turns on TCP_NODELAY (actix leaves Nagle on,
/// which delays small frames by tens of ms) and records the socket's fd,
/// with the connection's place in the descriptor budget.
pub fn on_connect(
    sock: &actix_web::rt::net::TcpStream,
    ext: &mut Extensions,
    held: crate::limits::fds::Held,
) {
    let _ = sock.set_nodelay(true);
    ext.insert(Rc::new(Connection {
        fd: sock.as_raw_fd(),
        watch: RefCell::new(None),
        _held: held,
    }));
}

/// Unregisters a receiver from its connection's watch when dropped (held by
/// the response body).
pub struct HangupGuard {
    waiting: Waiting,
    token: u64,
}

impl Drop for HangupGuard {
    fn drop(&mut self) {
        let mut w = self.waiting.0.borrow_mut();
        if w.as_ref().is_some_and(|(t, _)| *t == self.token) {
            *w = None;
        }
    }
}

impl std::fmt::Debug for HangupGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HangupGuard")
            .field("token", &self.token)
            .finish()
    }
}

/// Calls `on_hangup` if the client closes the connection before the guard
/// is dropped.
pub fn watch(
    req: &HttpRequest,
    token: u64,
    on_hangup: impl FnOnce() + 'static,
) -> Option<HangupGuard> {
    let waiting = match req.conn_data::<Rc<Connection>>() {
        Some(conn) => {
            let mut slot = conn.watch.borrow_mut();
            if slot.is_none() {
                *slot = Some(start_watch(conn.fd)?);
            }
            slot.as_ref().expect("just set").waiting.clone()
        }
        None => req.extensions().get::<Waiting>()?.clone(),
    };
    *waiting.0.borrow_mut() = Some((token, Box::new(on_hangup)));
    Some(HangupGuard { waiting, token })
}

fn start_watch(fd: RawFd) -> Option<Watch> {
    // SAFETY: `fd` is the live socket of the request being handled; the
    // duplicate is our own descriptor for the same socket, owned below.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        // Out of descriptors: the poll works unwatched (a hang-up is then
        // noticed at the next write). Not logged per connection.
        log::debug!(
            "cannot watch connection for hang-up: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    let counted = crate::limits::fds::hold_other();
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: `owned` is our own descriptor, kept open (by the AsyncFd) and
    // never replaced for as long as it is registered.
    let afd = match unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) } {
        Ok(a) => a,
        Err(e) => {
            log::warn!("cannot watch connection for hang-up: {e}");
            return None;
        }
    };
    let waiting = Waiting::default();
    let (stop, stopped) = oneshot::channel();
    let notify = waiting.clone();
    actix_web::rt::spawn(async move {
        let _counted = counted;
        let closed = async {
            loop {
                let mut guard = afd.readable().await?;
                if guard.ready().is_read_closed() {
                    return Ok::<(), std::io::Error>(());
                }
                // Readable with data (a pipelined request): keep waiting.
                guard.clear_ready();
            }
        };
        tokio::select! {
            r = closed => if r.is_ok() {
                notify.hang_up();
            },
            _ = stopped => {}
        }
    });
    Some(Watch {
        waiting,
        _stop: stop,
    })
}
