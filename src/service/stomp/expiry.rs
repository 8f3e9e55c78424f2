//! When a session's token runs out (`[auth] expire_sessions`): a notice
//! `token_refresh_notice` seconds before the token's `exp`, then the end.
//! A token's `exp` is wall-clock time; the timer runs on the monotonic
//! clock from the moment it is set.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, Sleep};

/// What came due.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// The token expires within the notice: time to refresh it.
    Notice,
    /// The token has expired.
    End,
}

pub struct Expiry {
    exp: u64,
    notice_due: bool,
    /// Until the notice, then until `exp`.
    timer: Pin<Box<Sleep>>,
}

/// Whether `exp` (Unix seconds) has passed.
pub fn passed(exp: u64) -> bool {
    SystemTime::now() >= at(exp)
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

/// The monotonic instant of a wall-clock time; now if it has passed.
fn deadline(unix: u64) -> Instant {
    let left = at(unix)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left
}

impl Expiry {
    /// A token that expires at `exp`, noticed `notice` seconds before;
    /// the notice is due at once if that time has passed.
    pub fn new(exp: u64, notice: u64) -> Expiry {
        let notice_at = exp.saturating_sub(notice);
        let notice_due = passed(notice_at);
        let first = if notice_due { exp } else { notice_at };
        Expiry {
            exp,
            notice_due,
            timer: Box::pin(tokio::time::sleep_until(deadline(first))),
        }
    }

    /// Whether the notice time has come (a subscription to the gateway's
    /// queue made from now on gets the notice at once).
    pub fn notice_due(&self) -> bool {
        self.notice_due
    }

    /// Whole seconds until `exp`, rounded up.
    pub fn seconds_left(&self) -> u64 {
        let left = at(self.exp)
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Due> {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if self.notice_due || passed(self.exp) {
            return Poll::Ready(Due::End);
        }
        self.notice_due = true;
        self.timer.as_mut().reset(deadline(self.exp));
        Poll::Ready(Due::Notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test(start_paused = true)]
    async fn the_notice_comes_before_the_end() {
        let mut e = Expiry::new(now() + 3600, 60);
        assert!(!e.notice_due());
        assert!(e.seconds_left() > 3500);
        let due = std::future::poll_fn(|cx| e.poll(cx)).await;
        assert_eq!(due, Due::Notice);
        assert!(e.notice_due());
    }

    #[tokio::test]
    async fn a_token_within_its_notice_is_due_at_once_then_ends() {
        let exp = now() + 2;
        let mut e = Expiry::new(exp, 60);
        assert!(e.notice_due());
        let due = std::future::poll_fn(|cx| e.poll(cx)).await;
        assert_eq!(due, Due::End);
        assert!(passed(exp));
    }
}
