//! Giving memory back once a load has passed.
//!
//! glibc's malloc keeps freed memory for reuse: after 20,000 connections
//! come and go the process stays near its peak (RSS 6 MB -> 269 MB, and
//! 269 MB a minute later). `malloc_trim(0)` hands every free page of every
//! arena back to the system (6 -> 8 MB, `bench/memory-after-load.sh`). It
//! holds each arena's lock while it walks it (0.3 ms on an idle heap, 27 ms
//! just after that flood), so it runs on a thread of its own: within 5 s of
//! the count of descriptors held ([`super::fds`]) falling well below its
//! peak (a load has passed), and otherwise every 30 s.
//! jemalloc and mimalloc were measured too (`bench/memory-after-load.sh`
//! records why they were not taken).

use super::fds::Budget;
use std::time::Duration;

/// How often the thread looks at the count.
const EVERY: Duration = Duration::from_secs(5);

/// Trimming anyway this often: memory freed without connections closing
/// (a slow consumer's queue once drained, sessions churning) goes back too.
/// On a heap with little free the walk is short.
const AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// Whether a fall from `peak` to `now` counts as a load that has passed:
/// a quarter of the peak, and at least 256 descriptors.
pub fn load_passed(peak: usize, now: usize) -> bool {
    let fall = peak.saturating_sub(now);
    fall >= 256 && fall >= peak / 4
}

/// Starts the trimming thread, once per process.
pub fn start(budget: &'static Budget) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("memory-trim".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                loop {
                    std::thread::sleep(EVERY);
                    let now = budget.held();
                    let passed = load_passed(budget.take_peak(now), now);
                    if passed || last.elapsed() >= AT_LEAST_EVERY {
                        last = std::time::Instant::now();
                        trim();
                        log::debug!(
                            "memory trimmed in {:?} ({now} descriptors held)",
                            last.elapsed()
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("memory trimming not started: {e}");
        }
    });
}

#[cfg(target_env = "gnu")]
fn trim() {
    // SAFETY: malloc_trim only walks and releases the allocator's free
    // memory; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries (musl) return freed memory on their own.
#[cfg(not(target_env = "gnu"))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_fall_is_a_load_that_passed() {
        assert!(!load_passed(0, 0));
        assert!(!load_passed(200, 0), "too few to bother");
        assert!(load_passed(20_000, 100));
        assert!(load_passed(1_000, 700));
        assert!(!load_passed(20_000, 16_000), "a fifth is still the load");
        assert!(!load_passed(100, 500), "rising");
    }
}
