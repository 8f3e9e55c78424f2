//! Open files: the process's limit, raised at start, and the budget that
//! keeps the gateway below it.
//!
//! At the limit `accept` fails (EMFILE), actix-server pauses its listener
//! and retries twice a second, and every new connection, `/healthz`
//! included, hangs in the kernel's backlog. So the gateway counts the
//! descriptors it holds for clients (connections, hang-up watches, upstream
//! sockets) and refuses a connection past `max_connections`, or when the
//! count comes within a reserve of the limit, by resetting it at once.
//! Sessions stop earlier still (`max_sessions`, derived from the same
//! figures, counting the connections each session holds), so a flood of
//! sessions meets 503 while `/healthz`, `/info` and existing sessions keep
//! their descriptors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Descriptors kept for what is not counted: listeners, each worker's epoll
/// and eventfd, a file being served, a DNS lookup, an upstream being
/// dialled, the log, and the accept of a connection about to be refused.
pub const RESERVE: usize = 128;

/// Connections kept from sessions by default, for requests that make none
/// (`/healthz`, `/readyz`, `/info`, pages, the 503s that refuse sessions):
/// 1 % of `max_connections`, and at least this many. Each of those is
/// short; an HTTP session's sends are counted with it instead (see
/// [`HTTP_SESSION_CONNECTIONS`]).
const MIN_REQUEST_RESERVE: usize = 32;

/// Connections an HTTP session holds, as the default `max_sessions` counts
/// them: its poll or stream, and the one its sends come on (a browser opens
/// a second connection for them, and keeps it). A WebSocket session holds
/// one.
pub const HTTP_SESSION_CONNECTIONS: usize = 2;

/// The process's descriptor budget.
#[derive(Debug)]
pub struct Budget {
    /// The soft `RLIMIT_NOFILE` after raising it.
    pub limit: usize,
    /// The soft limit found at start, before raising it.
    pub limit_at_start: usize,
    /// Descriptors open when the budget was made (not counted below).
    pub baseline: usize,
    /// Client connections held at once; more are reset on accept.
    pub max_connections: usize,
    connections: AtomicUsize,
    /// Other counted descriptors: hang-up watches, upstream sockets.
    others: AtomicUsize,
    /// The most counted descriptors (connections and others) held at once
    /// since [`Budget::take_peak`].
    peak: AtomicUsize,
    refused: AtomicUsize,
}

static BUDGET: OnceLock<Budget> = OnceLock::new();

/// Raises the soft open-file limit to the hard one and makes the process's
/// budget, once; later calls return the first. `max_connections`: the
/// configured cap, if any (lowered to what the limit allows, with a
/// warning).
pub fn init(max_connections: Option<usize>) -> &'static Budget {
    BUDGET.get_or_init(|| {
        let (limit_at_start, limit) = raise_limit();
        let baseline = open_now();
        let fits = limit.saturating_sub(baseline + RESERVE).max(1);
        let max_connections = match max_connections {
            Some(n) if n > fits => {
                log::warn!(
                    "max_connections {n} does not fit in {limit} open files \
                     ({baseline} in use, {RESERVE} reserved): using {fits}"
                );
                fits
            }
            Some(n) => n,
            None => fits,
        };
        Budget {
            limit,
            limit_at_start,
            baseline,
            max_connections,
            connections: AtomicUsize::new(0),
            others: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        }
    })
}

/// The budget, if [`init`] ran (a gateway started in this process).
pub fn budget() -> Option<&'static Budget> {
    BUDGET.get()
}

impl Budget {
    /// Connections the default `max_sessions` leaves to other requests.
    pub fn request_reserve(&self) -> usize {
        (self.max_connections / 100).max(MIN_REQUEST_RESERVE)
    }

    /// The default `max_sessions` of a service whose WebSocket sessions each
    /// hold `fds_per_session` counted descriptors (2 for a proxy: the
    /// client's and the upstream's): every connection but the request
    /// reserve. It is counted in WebSocket sessions; an HTTP session counts
    /// as [`HTTP_SESSION_CONNECTIONS`] of them.
    pub fn default_max_sessions(&self, fds_per_session: usize) -> usize {
        (self.max_connections.saturating_sub(self.request_reserve()) / fds_per_session.max(1))
            .max(1)
    }

    /// Counts a new client connection; `None` if it must be refused.
    pub fn admit_connection(&'static self) -> Option<Held> {
        let held = Held::new(&self.connections);
        let connections = self.connections.load(Ordering::Relaxed);
        let others = self.others.load(Ordering::Relaxed);
        self.peak.fetch_max(connections + others, Ordering::Relaxed);
        let in_use = self.baseline + connections + others;
        if connections > self.max_connections || in_use + RESERVE > self.limit {
            let n = self.refused.fetch_add(1, Ordering::Relaxed);
            // Once, then every 10,000th: a flood must not flood the log.
            if n % 10_000 == 0 {
                log::warn!(
                    "refusing connections: {connections} open (max_connections {}), \
                     {in_use} of {} descriptors in use; {} refused so far",
                    self.max_connections,
                    self.limit,
                    n + 1
                );
            }
            return None;
        }
        Some(held)
    }

    /// Counted descriptors held now: connections and the others.
    pub fn held(&self) -> usize {
        self.connections.load(Ordering::Relaxed) + self.others.load(Ordering::Relaxed)
    }

    /// The most descriptors held at once since the last call, which starts
    /// the next period at `now`.
    pub fn take_peak(&self, now: usize) -> usize {
        self.peak.swap(now, Ordering::Relaxed).max(now)
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Counts one descriptor that is not a client connection (a hang-up watch,
/// an upstream socket) for as long as it is held. A no-op before [`init`].
pub fn hold_other() -> Option<Held> {
    budget().map(|b| Held::new(&b.others))
}

/// Refuses an accepted connection at once: a reset (`SO_LINGER` 0), not a
/// wait in the backlog. actix drops the connection when its first read
/// finds the socket shut.
pub fn refuse(sock: &impl std::os::fd::AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Best effort: a socket that cannot be reset is still shut.
    let _ = super::set_socket_option(sock, libc::SOL_SOCKET, libc::SO_LINGER, &linger);
    // SAFETY: shutdown(2) on the live socket actix handed to on_connect.
    unsafe {
        libc::shutdown(sock.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// One counted descriptor; uncounted when dropped.
#[derive(Debug)]
pub struct Held(&'static AtomicUsize);

impl Held {
    fn new(counter: &'static AtomicUsize) -> Held {
        counter.fetch_add(1, Ordering::Relaxed);
        Held(counter)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// (soft limit at start, soft limit now): the soft limit raised to the hard.
fn raise_limit() -> (usize, usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid resource and a pointer to a local rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        log::warn!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        );
        return (1024, 1024);
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above; raising the soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            log::warn!(
                "setrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let clamp = |v: libc::rlim_t| usize::try_from(v).unwrap_or(usize::MAX).min(1 << 30);
    (clamp(before), clamp(lim.rlim_cur))
}

/// Descriptors open in this process now (read once, at start).
fn open_now() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize, max_connections: usize) -> &'static Budget {
        Box::leak(Box::new(Budget {
            limit,
            limit_at_start: limit,
            baseline: 20,
            max_connections,
            connections: AtomicUsize::new(0),
            others: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        }))
    }

    #[test]
    fn connections_past_the_cap_are_refused_and_released() {
        let b = budget(10_000, 3);
        let held: Vec<Held> = (0..3).map(|_| b.admit_connection().unwrap()).collect();
        assert_eq!(b.connections(), 3);
        assert!(b.admit_connection().is_none());
        assert_eq!((b.connections(), b.refused()), (3, 1));
        drop(held);
        assert_eq!(b.connections(), 0);
        assert!(b.admit_connection().is_some());
        assert_eq!(
            b.take_peak(0),
            4,
            "the refused one counted while it was held"
        );
        assert_eq!(b.take_peak(0), 0, "a new period starts at the count given");
    }

    #[test]
    fn other_descriptors_count_against_the_limit() {
        // 20 at start + 128 reserved leaves 52 of 200.
        let b = budget(200, 1_000);
        let others: Vec<Held> = (0..50).map(|_| Held::new(&b.others)).collect();
        let c: Vec<Held> = (0..2).map(|_| b.admit_connection().unwrap()).collect();
        assert!(b.admit_connection().is_none());
        drop(others);
        assert!(b.admit_connection().is_some());
        drop(c);
    }

    #[test]
    fn session_defaults_leave_room_for_other_requests() {
        let b = budget(20_000, 19_852);
        assert_eq!(b.request_reserve(), 198);
        assert_eq!(b.default_max_sessions(1), 19_654);
        assert_eq!(b.default_max_sessions(2), 9_827);
        // A small limit still keeps a few connections for health checks.
        let b = budget(512, 370);
        assert_eq!(b.request_reserve(), 32);
        assert_eq!(b.default_max_sessions(1), 338);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, now) = raise_limit();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(now as libc::rlim_t, lim.rlim_cur.min(1 << 30));
    }
}
