//! Connection-level limits that keep the gateway standing under abuse,
//! whatever the transport: open files and connections ([`fds`]) and the
//! accept-error log at their edge ([`accept_log`]), the size
//! of a request head ([`head`]) and the time a peer may leave written bytes
//! unread ([`write_timeout`]); sessions per client address
//! ([`per_address`]) and messages per session ([`message_rate`]); and
//! memory handed back once a load has passed ([`trim`]). Used by every
//! layer above; uses none of them.

use std::os::fd::AsRawFd;

/// Sets one socket option (`setsockopt(2)`) to `value`.
pub(crate) fn set_socket_option<T>(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    // SAFETY: a live fd, and a pointer to `value` with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub mod accept_log;
pub mod fds;
pub mod head;
pub mod message_rate;
pub mod per_address;
pub mod trim;
pub mod write_timeout;
