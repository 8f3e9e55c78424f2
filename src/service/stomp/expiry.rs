//! When a session's token runs out (`[auth] expire_sessions`): a notice
//! `token_refresh_notice` seconds before the token's `exp`, then the end.
//! A token's `exp` is wall-clock time; the timer runs on the monotonic
//! clock from the moment it is set, at most [`LONGEST_WAIT`] at a time.
//! An `exp` past what the clock can hold (about 2^63 seconds) never comes.

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

/// The longest the timer waits before it looks at the wall clock again:
/// a far `exp` is a far instant no timer need hold.
const LONGEST_WAIT: Duration = Duration::from_secs(86_400);

pub struct Expiry {
    exp: u64,
    notice_at: u64,
    notice_due: bool,
    /// Until the notice, then until `exp`.
    timer: Pin<Box<Sleep>>,
    /// Whether the timer is set for that time, not for a look on the way.
    aimed: bool,
}

/// Whether `exp` (Unix seconds) has passed; one the clock cannot hold
/// never does.
pub fn passed(exp: u64) -> bool {
    at(exp).is_some_and(|t| SystemTime::now() >= t)
}

/// The wall-clock time of `unix`, if the clock can hold it.
fn at(unix: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(unix))
}

/// How long until `unix`: zero if it has passed, `None` if never.
fn left(unix: u64) -> Option<Duration> {
    Some(
        at(unix)?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
}

/// When the timer next looks: at `unix`, or sooner if that is far; and
/// whether that is `unix` itself.
fn deadline(unix: u64) -> (Instant, bool) {
    match left(unix) {
        Some(l) if l <= LONGEST_WAIT => (Instant::now() + l, true),
        _ => (Instant::now() + LONGEST_WAIT, false),
    }
}

impl Expiry {
    /// A token that expires at `exp`, noticed `notice` seconds before;
    /// the notice is due at once if that time has passed.
    pub fn new(exp: u64, notice: u64) -> Expiry {
        let notice_at = exp.saturating_sub(notice);
        let notice_due = passed(notice_at);
        let first = if notice_due { exp } else { notice_at };
        let (at, aimed) = deadline(first);
        Expiry {
            exp,
            notice_at,
            notice_due,
            timer: Box::pin(tokio::time::sleep_until(at)),
            aimed,
        }
    }

    /// Whether the notice time has come (a subscription to the gateway's
    /// queue made from now on gets the notice at once).
    pub fn notice_due(&self) -> bool {
        self.notice_due
    }

    /// Whole seconds until `exp`, rounded up (`u64::MAX` for never).
    pub fn seconds_left(&self) -> u64 {
        left(self.exp).map_or(u64::MAX, |l| l.as_secs() + u64::from(l.subsec_nanos() > 0))
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Due> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.aimed {
                if self.notice_due || passed(self.exp) {
                    return Poll::Ready(Due::End);
                }
                self.notice_due = true;
                self.arm(self.exp);
                return Poll::Ready(Due::Notice);
            }
            // A look on the way to a far time: aim again from now.
            self.arm(if self.notice_due {
                self.exp
            } else {
                self.notice_at
            });
        }
    }

    fn arm(&mut self, unix: u64) {
        let (at, aimed) = deadline(unix);
        self.timer.as_mut().reset(at);
        self.aimed = aimed;
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

    /// An `exp` the clock cannot hold never comes, and costs no panic.
    #[tokio::test(start_paused = true)]
    async fn an_exp_past_the_clock_never_comes() {
        for exp in [1 << 63, u64::MAX, u64::MAX - 1, (1 << 62) + now()] {
            assert!(!passed(exp), "{exp}");
            let mut e = Expiry::new(exp, 60);
            assert!(!e.notice_due());
            assert!(e.seconds_left() > 1 << 61, "{exp}");
            let waited =
                tokio::time::timeout(LONGEST_WAIT * 3, std::future::poll_fn(|cx| e.poll(cx))).await;
            assert!(waited.is_err(), "{exp}: {waited:?}");
        }
    }
}
