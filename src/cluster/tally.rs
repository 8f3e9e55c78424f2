//! Counting what the other nodes did with an event: a node that publishes
//! one with `count` opens a tally under the event's number; each node that
//! delivers it replies with how many of its sessions it reached, on the
//! publishing node's own reply channel; Redis's answer to the PUBLISH says
//! how many nodes got it, so the tally knows when every reply is in. What
//! is not in within `request_timeout` leaves the count partial.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What the other nodes reported for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elsewhere {
    /// The sum of their counts.
    pub count: usize,
    /// Every node that got the event replied.
    pub complete: bool,
}

struct Tally {
    count: usize,
    replies: usize,
    /// Nodes other than this one that got the event, once Redis said.
    expected: Option<usize>,
    done: Option<oneshot::Sender<()>>,
    opened: Instant,
}

impl Tally {
    fn finish_if_complete(&mut self) {
        if self.expected.is_some_and(|e| self.replies >= e) {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

/// The tallies of one node's events, by number.
#[derive(Default)]
pub struct Tallies {
    open: Mutex<HashMap<u64, Tally>>,
}

impl Tallies {
    /// Opens the tally of event `seq`, before it is sent (replies may come
    /// before Redis's answer); resolves once every reply is in. Tallies
    /// older than `stale` (whose waiter went away) are dropped.
    pub fn open(&self, seq: u64, stale: Duration) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, t| now.duration_since(t.opened) < stale);
        open.insert(
            seq,
            Tally {
                count: 0,
                replies: 0,
                expected: None,
                done: Some(done),
                opened: now,
            },
        );
        rx
    }

    /// `nodes` other nodes got event `seq`.
    pub fn expect(&self, seq: u64, nodes: usize) {
        if let Some(t) = self.lock().get_mut(&seq) {
            t.expected = Some(nodes);
            t.finish_if_complete();
        }
    }

    /// A node reached `count` sessions with event `seq`.
    pub fn reply(&self, seq: u64, count: usize) {
        if let Some(t) = self.lock().get_mut(&seq) {
            t.count += count;
            t.replies += 1;
            t.finish_if_complete();
        }
    }

    /// Closes the tally of event `seq`: what came in.
    pub fn close(&self, seq: u64) -> Elsewhere {
        match self.lock().remove(&seq) {
            Some(t) => Elsewhere {
                count: t.count,
                complete: t.expected.is_some_and(|e| t.replies >= e),
            },
            None => Elsewhere {
                count: 0,
                complete: false,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Tally>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reply's text: the event's number and the count.
pub fn reply_text(seq: u64, count: usize) -> String {
    format!("{seq} {count}")
}

/// A reply read back.
pub fn parse_reply(text: &[u8]) -> Option<(u64, usize)> {
    let text = std::str::from_utf8(text).ok()?;
    let (seq, count) = text.split_once(' ')?;
    Some((seq.parse().ok()?, count.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(10);

    #[test]
    fn a_tally_completes_when_every_node_that_got_it_replied() {
        let t = Tallies::default();
        let mut done = t.open(7, STALE);
        // A reply may come before Redis says how many got it.
        t.reply(7, 2);
        assert!(done.try_recv().is_err());
        t.expect(7, 2);
        assert!(done.try_recv().is_err());
        t.reply(7, 3);
        assert!(done.try_recv().is_ok());
        assert_eq!(
            t.close(7),
            Elsewhere {
                count: 5,
                complete: true
            }
        );
    }

    #[test]
    fn a_tally_closed_early_is_partial() {
        let t = Tallies::default();
        let _done = t.open(1, STALE);
        t.expect(1, 3);
        t.reply(1, 4);
        assert_eq!(
            t.close(1),
            Elsewhere {
                count: 4,
                complete: false
            }
        );
        // Replies for tallies no longer open are ignored.
        t.reply(1, 9);
        assert_eq!(t.close(1).count, 0);
    }

    #[test]
    fn replies_read_back() {
        assert_eq!(parse_reply(reply_text(42, 3).as_bytes()), Some((42, 3)));
        assert_eq!(parse_reply(b"x 3"), None);
        assert_eq!(parse_reply(b"42"), None);
    }
}
