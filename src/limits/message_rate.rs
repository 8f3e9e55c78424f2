//! Messages per second from one session's client
//! (`max_messages_per_second`), GCRA with a burst of one second's worth.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// One session's allowance.
pub struct MessageRate(DefaultDirectRateLimiter);

impl MessageRate {
    /// `None` when the limit is off (0).
    pub fn new(per_second: u32) -> Option<MessageRate> {
        let n = NonZeroU32::new(per_second)?;
        Some(MessageRate(RateLimiter::direct(Quota::per_second(n))))
    }

    /// Takes one message from the allowance, if there is one left.
    pub fn allow(&self) -> bool {
        self.0.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals() {
        let r = MessageRate::new(5).unwrap();
        assert_eq!((0..8).filter(|_| r.allow()).count(), 5);
        assert!(MessageRate::new(0).is_none());
    }
}
