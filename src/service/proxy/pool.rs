//! The upstream URLs of one proxy service: round-robin, skipping one that
//! could not be reached recently (a passive health check: no probes, only
//! what real sessions find), retried once its delay has passed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Pool {
    urls: Vec<String>,
    next: AtomicUsize,
    /// Per URL: skipped until this instant.
    down_until: Mutex<Vec<Option<Instant>>>,
    retry_delay: Duration,
}

impl Pool {
    pub fn new(urls: Vec<String>, retry_delay: Duration) -> Pool {
        let down_until = Mutex::new(vec![None; urls.len()]);
        Pool {
            urls,
            next: AtomicUsize::new(0),
            down_until,
            retry_delay,
        }
    }

    /// The next upstream to try: `(index, url)`. Upstreams marked down
    /// are skipped while their delay runs; if every one is down, the one
    /// whose delay ends first is tried anyway rather than refusing.
    pub fn pick(&self, now: Instant) -> (usize, &str) {
        let n = self.urls.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let down = self.down_until.lock().expect("pool lock");
        let up = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| down[i].is_none_or(|t| t <= now));
        let i = up.unwrap_or_else(|| {
            (0..n)
                .min_by_key(|&i| down[i].unwrap_or(now))
                .expect("at least one upstream")
        });
        (i, &self.urls[i])
    }

    /// Upstream `i` could not be reached: skip it for the retry delay.
    pub fn failed(&self, i: usize, now: Instant) {
        self.down_until.lock().expect("pool lock")[i] = Some(now + self.retry_delay);
    }

    /// Upstream `i` accepted a connection.
    pub fn succeeded(&self, i: usize) {
        let mut down = self.down_until.lock().expect("pool lock");
        if down[i].is_some() {
            down[i] = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Pool {
        Pool::new(
            (0..n).map(|i| format!("ws://u{i}")).collect(),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn round_robin() {
        let p = pool(3);
        let now = Instant::now();
        let picked: Vec<usize> = (0..6).map(|_| p.pick(now).0).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_failed_upstream_is_skipped_until_its_delay_ends() {
        let p = pool(3);
        let now = Instant::now();
        p.failed(1, now);
        let picked: Vec<usize> = (0..4).map(|_| p.pick(now).0).collect();
        assert_eq!(picked, [0, 2, 2, 0]);
        let later = now + Duration::from_secs(6);
        let picked: Vec<usize> = (0..3).map(|_| p.pick(later).0).collect();
        assert!(picked.contains(&1), "retried after the delay: {picked:?}");
        p.succeeded(1);
    }

    #[test]
    fn when_all_are_down_the_soonest_back_is_tried() {
        let p = pool(2);
        let now = Instant::now();
        p.failed(0, now + Duration::from_secs(1));
        p.failed(1, now);
        assert_eq!(p.pick(now).0, 1);
        assert_eq!(p.pick(now).0, 1);
    }
}
