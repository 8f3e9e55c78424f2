//! Sessions per client address: how many are open at once
//! (`max_sessions_per_ip`) and how fast new ones come
//! (`max_new_sessions_per_ip`, GCRA with a burst of one second's worth).
//!
//! One address is one IPv4 address, or one IPv6 /64: a single host
//! commonly holds a whole /64, and counting its addresses one by one would
//! let it open as many sessions as it likes. The counts are this
//! process's: every node of a cluster limits on its own.

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Which limit refused a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_sessions_per_ip`.
    Open,
    /// `max_new_sessions_per_ip`.
    Rate,
}

impl Refused {
    /// The configuration key that set the limit.
    pub fn key(self) -> &'static str {
        match self {
            Refused::Open => "max_sessions_per_ip",
            Refused::Rate => "max_new_sessions_per_ip",
        }
    }
}

/// The limits of one service.
pub struct AddressLimits {
    max_open: usize,
    /// Open sessions by address; an address with none has no entry.
    open: DashMap<IpAddr, usize>,
    new: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// `GET /info` at twice the rate of new sessions: a client asks for it
    /// before each session, and nothing else limits it before a session.
    /// Twice, so that a client refused a session learns it from the
    /// session's `4429` (sockjs-client turns a failed `/info` into `1002`).
    info: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

/// One open session of an address; the count goes down when it is dropped.
pub struct Slot {
    limits: Arc<AddressLimits>,
    addr: IpAddr,
}

impl AddressLimits {
    /// `None` when both limits are off (0).
    pub fn new(max_open: usize, max_new_per_second: u32) -> Option<Arc<AddressLimits>> {
        if max_open == 0 && max_new_per_second == 0 {
            return None;
        }
        let limiter = |n: u32| NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_second(n)));
        Some(Arc::new(AddressLimits {
            max_open,
            open: DashMap::new(),
            new: limiter(max_new_per_second),
            info: limiter(max_new_per_second.saturating_mul(2)),
        }))
    }

    /// Counts a new session of `addr`, or says which limit refuses it.
    /// No address (not a TCP peer): no limit.
    pub fn admit(self: &Arc<Self>, addr: Option<IpAddr>) -> Result<Option<Slot>, Refused> {
        let Some(addr) = addr.map(key) else {
            return Ok(None);
        };
        if self.max_open == 0 {
            self.rate(&self.new, addr)?;
            return Ok(None);
        }
        // Counted under the entry's lock, so racing sessions of one address
        // cannot both take its last place.
        let mut open = self.open.entry(addr).or_insert(0);
        let refused = match *open >= self.max_open {
            true => Some(Refused::Open),
            false => self.rate(&self.new, addr).err(),
        };
        let Some(refused) = refused else {
            *open += 1;
            return Ok(Some(Slot {
                limits: self.clone(),
                addr,
            }));
        };
        // An entry made for this attempt alone goes with it.
        let empty = *open == 0;
        drop(open);
        if empty {
            self.open.remove_if(&addr, |_, n| *n == 0);
        }
        Err(refused)
    }

    /// Whether `addr` may ask `GET /info` now: at twice the rate of new
    /// sessions. An address that holds its whole `max_sessions_per_ip`
    /// still gets it: its session is then refused with `4429`, which a
    /// page can tell from a server that is down.
    pub fn info(&self, addr: Option<IpAddr>) -> Result<(), Refused> {
        let Some(addr) = addr.map(key) else {
            return Ok(());
        };
        self.rate(&self.info, addr)
    }

    fn rate(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<IpAddr>>,
        addr: IpAddr,
    ) -> Result<(), Refused> {
        match limiter {
            Some(l) if l.check_key(&addr).is_err() => Err(Refused::Rate),
            _ => Ok(()),
        }
    }

    /// Forgets the rate state of addresses that are back to a full burst,
    /// so that many addresses seen once do not stay in memory.
    pub fn sweep(&self) {
        for l in [&self.new, &self.info].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Addresses with open sessions here.
    pub fn addresses(&self) -> usize {
        self.open.len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut n) = self.limits.open.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
        }
        self.limits.open.remove_if(&self.addr, |_, n| *n == 0);
    }
}

/// The address as limits count it: IPv4 (also when mapped into IPv6), or
/// the IPv6 address's /64.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn open_sessions_are_counted_per_address_and_given_back() {
        let l = AddressLimits::new(2, 0).unwrap();
        let a = l.admit(ip("10.0.0.1")).unwrap();
        let b = l.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(Refused::Open));
        // Info still answers: the session's 4429 says why.
        assert!(l.info(ip("10.0.0.1")).is_ok());
        // Another address is not affected.
        let c = l.admit(ip("10.0.0.2")).unwrap();
        drop(a);
        let d = l.admit(ip("10.0.0.1")).unwrap();
        drop((b, c, d));
        assert_eq!(l.addresses(), 0, "entries go with their last session");
    }

    #[test]
    fn new_sessions_are_limited_to_a_burst_then_the_rate() {
        let l = AddressLimits::new(0, 3).unwrap();
        for _ in 0..3 {
            assert!(l.admit(ip("10.0.0.1")).is_ok());
        }
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(Refused::Rate));
        assert!(l.admit(ip("10.0.0.2")).is_ok());
        // Info has its own allowance, twice as large: a client asks it
        // before each session, and learns of a refusal from the session.
        for _ in 0..6 {
            assert!(l.info(ip("10.0.0.1")).is_ok());
        }
        assert_eq!(l.info(ip("10.0.0.1")), Err(Refused::Rate));
    }

    #[test]
    fn a_refused_rate_leaves_the_open_count_alone() {
        let l = AddressLimits::new(5, 1).unwrap();
        let a = l.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("10.0.0.1")).err(), Some(Refused::Rate));
        drop(a);
        assert_eq!(l.addresses(), 0);
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_mapped_ipv4_is_ipv4() {
        let l = AddressLimits::new(1, 0).unwrap();
        let _a = l.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(l.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(l.admit(ip("2001:db8:1:3::1")).is_ok());
        let _b = l.admit(ip("10.0.0.7")).unwrap();
        assert!(l.admit(ip("::ffff:10.0.0.7")).is_err());
    }

    #[test]
    fn both_off_is_no_limits_at_all() {
        assert!(AddressLimits::new(0, 0).is_none());
    }
}
