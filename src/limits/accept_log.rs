//! A logger wrapper that rate-limits actix-server's accept errors.
//!
//! When `accept` fails (EMFILE, ENFILE, ENOBUFS) actix-server logs an
//! error and retries every 500 ms, for as long as the cause lasts: two
//! identical lines a second, each hiding the rest of the log. The gateway
//! keeps below the open-file limit itself ([`super::fds`]), but the system
//! or another process can still exhaust descriptors. This passes the first
//! such error, drops the repeats for `every`, then passes the next with a
//! count of those dropped.

use log::{Log, Metadata, Record};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TARGET: &str = "actix_server::accept";

pub struct RateLimited<L> {
    inner: L,
    every: Duration,
    /// When the last accept error was passed on, and how many were dropped
    /// since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl<L: Log> RateLimited<L> {
    pub fn new(inner: L, every: Duration) -> Self {
        RateLimited {
            inner,
            every,
            state: Mutex::new((None, 0)),
        }
    }
}

impl<L: Log> Log for RateLimited<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target() != TARGET || record.level() != log::Level::Error {
            return self.inner.log(record);
        }
        let dropped = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if state
                .0
                .is_some_and(|last| now.duration_since(last) < self.every)
            {
                state.1 += 1;
                return;
            }
            state.0 = Some(now);
            std::mem::take(&mut state.1)
        };
        if dropped == 0 {
            self.inner.log(record);
        } else {
            self.inner.log(
                &Record::builder()
                    .args(format_args!(
                        "{} ({dropped} more like it in the last {:?} not logged)",
                        record.args(),
                        self.every
                    ))
                    .level(record.level())
                    .target(record.target())
                    .build(),
            );
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

    impl Log for &'static Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn log(logger: &impl Log, target: &str, text: &str) {
        logger.log(
            &Record::builder()
                .args(format_args!("{text}"))
                .level(log::Level::Error)
                .target(target)
                .build(),
        );
    }

    #[test]
    fn accept_errors_are_passed_once_per_period() {
        let capture: &'static Capture = Box::leak(Box::default());
        let logger = RateLimited::new(capture, Duration::from_secs(3600));
        for _ in 0..50 {
            log(
                &logger,
                TARGET,
                "Error accepting connection: Too many open files",
            );
            log(&logger, "sockjs_gateway", "something else");
        }
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.iter().filter(|l| l.contains("accepting")).count(), 1);
        assert_eq!(lines.iter().filter(|l| *l == "something else").count(), 50);
    }

    #[test]
    fn the_next_period_reports_what_was_dropped() {
        let capture: &'static Capture = Box::leak(Box::default());
        let logger = RateLimited::new(capture, Duration::ZERO);
        log(&logger, TARGET, "e");
        *logger.state.lock().unwrap() = (Some(Instant::now() + Duration::from_secs(60)), 7);
        log(&logger, TARGET, "e");
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].starts_with("e (7 more like it"), "{lines:?}");
    }
}
