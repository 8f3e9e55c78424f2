//! Noticing at once when a client drops a pending poll or stream.
//!
//! actix-web only finds out that a client went away when it next writes
//! (actix-web issues #1313 and #3462), so a silent long-poll would keep its
//! session attached to a dead connection. Each accepted socket's fd is kept
//! in the connection's data; while a receiver is pending, a duplicate of it
//! is watched for read-hang-up (EPOLLRDHUP) and the session is told.

use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use std::any::Any;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::oneshot;

/// The raw fd of the request's TCP connection.
#[derive(Clone, Copy, Debug)]
struct ConnFd(RawFd);

/// For `HttpServer::on_connect`: turns on TCP_NODELAY (actix leaves Nagle on,
/// which delays small frames by tens of ms) and records the socket's fd.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = sock.set_nodelay(true);
        ext.insert(ConnFd(sock.as_raw_fd()));
    }
}

/// Stops the watch when dropped (held by the response body).
#[derive(Debug)]
pub struct HangupGuard(#[allow(dead_code)] oneshot::Sender<()>);

/// Calls `on_hangup` if the client closes the connection before the guard
/// is dropped. The fd duplicate lives only as long as the watch, so idle
/// connections cost no extra descriptor.
pub fn watch(req: &HttpRequest, on_hangup: impl FnOnce() + 'static) -> Option<HangupGuard> {
    let fd = req.conn_data::<ConnFd>()?.0;
    // SAFETY: `fd` is the live socket of the request being handled; `dup`
    // gives us our own descriptor for the same socket, owned below.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        log::warn!(
            "cannot watch connection for hang-up: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
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
    let (tx, rx) = oneshot::channel();
    actix_web::rt::spawn(async move {
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
            r = closed => if r.is_ok() { on_hangup() },
            _ = rx => {}
        }
    });
    Some(HangupGuard(tx))
}
