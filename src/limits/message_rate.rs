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

    /// Takes `cost` from the allowance, if that much is left; a cost over a
    /// whole second's worth never is.
    pub fn allow(&self, cost: u32) -> bool {
        match NonZeroU32::new(cost) {
            None => true,
            Some(n) => matches!(self.0.check_n(n), Ok(Ok(()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals() {
        let r = MessageRate::new(5).unwrap();
        assert_eq!((0..8).filter(|_| r.allow(1)).count(), 5);
        assert!(MessageRate::new(0).is_none());
    }

    #[test]
    fn a_cost_takes_that_much_and_more_than_a_second_never_passes() {
        let r = MessageRate::new(5).unwrap();
        assert!(!r.allow(6), "over the burst");
        assert!(r.allow(3));
        assert!(!r.allow(3), "2 left");
        assert!(r.allow(2));
        assert!(r.allow(0), "nothing to take");
        assert!(!r.allow(1));
    }
}
