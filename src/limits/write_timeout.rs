//! Cutting off stalled readers: a connection whose peer accepts no bytes for
//! `write_timeout` seconds is aborted and its fd freed.
//!
//! The kernel does the timing: `TCP_USER_TIMEOUT` bounds how long sent data
//! may stay unacknowledged, and how long zero-window probes may go
//! unanswered by an opened window (Linux clamps the probe timer to it since
//! 5.11), so a reader that stops reading is reset within about the timeout.
//! actix then fails its next write, drops the connection and closes the fd:
//! WebSockets and streaming responses alike, with no timer of ours per
//! connection. An idle connection has nothing outstanding and is not
//! affected; neither is a slow reader, whose acknowledgements restart it.

use std::os::fd::AsRawFd;
use std::time::Duration;

/// Sets `TCP_USER_TIMEOUT` on an accepted socket.
pub fn apply(sock: &impl AsRawFd, timeout: Duration) -> std::io::Result<()> {
    let ms = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    super::set_socket_option(sock, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &ms)
}
