//! What a run measured, and the process figures around it (CPU, RSS).

use hdrhistogram::Histogram;
use std::time::Duration;

/// Latencies in microseconds, 1 µs to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// One session task's results.
pub struct Tally {
    pub done: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            done: 0,
            errors: 0,
            latency: histogram(),
            first_error: None,
        }
    }
    pub fn record(&mut self, latency: Duration) {
        self.done += 1;
        let _ = self.latency.record((latency.as_micros() as u64).max(1));
    }
    pub fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| what.into());
    }
    pub fn merge(&mut self, other: Tally) {
        self.done += other.done;
        self.errors += other.errors;
        let _ = self.latency.add(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs `session(s)` for each session `s` in its own task; merges their
/// tallies. A session's error is counted in its tally.
pub async fn per_session<Fut>(sessions: usize, session: impl Fn(usize, Tally) -> Fut) -> Tally
where
    Fut: std::future::Future<Output = (Tally, Result<(), String>)> + Send + 'static,
{
    let tasks: Vec<_> = (0..sessions)
        .map(|s| tokio::spawn(session(s, Tally::new())))
        .collect();
    let mut total = Tally::new();
    for t in tasks {
        let (mut tally, result) = t.await.expect("session task");
        if let Err(e) = result {
            tally.error(e);
        }
        total.merge(tally);
    }
    total
}

/// CPU seconds (user + system) this process has used.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Resident set size of `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds `pid` has used, from /proc (utime + stime).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// The figures of one run, printed as a JSON line for compare.sh.
pub struct Report {
    pub scenario: String,
    pub label: String,
    pub sessions: usize,
    pub tally: Tally,
    pub seconds: f64,
    pub lost: u64,
    pub rss_per_session_kib: Option<f64>,
    pub client_cpu: f64,
    pub server_cpu: Option<f64>,
}

impl Report {
    pub fn print(&self) {
        let h = &self.tally.latency;
        let ms = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let rate = self.tally.done as f64 / self.seconds.max(1e-9);
        let client_pct = 100.0 * self.client_cpu / self.seconds.max(1e-9);
        let server_pct = self.server_cpu.map(|c| 100.0 * c / self.seconds.max(1e-9));
        eprintln!(
            "{} [{}] {} sessions: {:.0} msgs/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}, lost {}{}; load tool CPU {:.0}%{}",
            self.scenario,
            self.label,
            self.sessions,
            rate,
            ms(0.5),
            ms(0.99),
            if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
            self.tally.errors,
            self.lost,
            self.rss_per_session_kib.map(|r| format!(", RSS {r:.2} KiB/session")).unwrap_or_default(),
            client_pct,
            server_pct.map(|p| format!(", server CPU {p:.0}%")).unwrap_or_default(),
        );
        if let Some(e) = &self.tally.first_error {
            eprintln!("first error: {e}");
        }
        let json = serde_json::json!({
            "scenario": self.scenario,
            "label": self.label,
            "sessions": self.sessions,
            "messages": self.tally.done,
            "seconds": self.seconds,
            "msgs_per_s": rate,
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "max_ms": if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
            "errors": self.tally.errors,
            "lost": self.lost,
            "rss_per_session_kib": self.rss_per_session_kib,
            "client_cpu_pct": client_pct,
            "server_cpu_pct": server_pct,
        });
        println!("RESULT {json}");
    }
}
