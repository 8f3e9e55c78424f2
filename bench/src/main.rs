//! sockjs-bench: a SockJS load generator that speaks the protocol as
//! sockjs-client does and checks every payload (order, no loss, no
//! duplicate), so a broken server cannot score. Prints a summary on stderr
//! and a `RESULT {json}` line on stdout.
//!
//!   sockjs-bench ws-echo --url http://127.0.0.1:8080/echo --sessions 100
//!   sockjs-bench ws-echo --protocol raw --url http://127.0.0.1:8092/ws
//!   sockjs-bench xhr-polling|xhr-streaming|eventsource --url ... --sessions 50
//!   sockjs-bench idle --url ... --sessions 10000 --hold 60 --server-pid PID
//!   sockjs-bench broadcast --url http://127.0.0.1:8080/broadcast --sessions 1000 --messages 200

mod http;
mod stats;
mod ws;

use clap::{Parser, ValueEnum};
use stats::Report;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Scenario {
    WsEcho,
    XhrPolling,
    XhrStreaming,
    Eventsource,
    Idle,
    Broadcast,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Protocol {
    /// SockJS framing at URL/000/<session>/websocket.
    Sockjs,
    /// A plain WebSocket at URL (the bare actix-ws ceiling).
    Raw,
}

#[derive(Parser, Debug)]
#[command(about = "SockJS load generator")]
pub struct Args {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Service base URL, e.g. http://127.0.0.1:8080/echo.
    #[arg(long)]
    pub url: String,
    /// xhr-polling: after a session opens at `--url`, its sends and polls
    /// go to this node instead (the same service on another node of a
    /// cluster, which forwards them), e.g. http://127.0.0.1:8082.
    #[arg(long)]
    pub via: Option<String>,
    #[arg(long, value_enum, default_value = "sockjs")]
    pub protocol: Protocol,
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Messages in flight per session (ws-echo).
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Messages the broadcast sender sends.
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Seconds idle sessions are held.
    #[arg(long, default_value_t = 60.0)]
    pub hold: f64,
    /// Heartbeats each idle SockJS session must receive while held.
    #[arg(long, default_value_t = 0)]
    pub min_heartbeats: u64,
    /// The server's PID, for its RSS and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Name of the server in the output.
    #[arg(long, default_value = "server")]
    pub label: String,
}

fn main() {
    let args = Args::parse();
    // One thread: the load tool is pinned to one core, like the server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // CPU baselines; a broadcast takes them again once connected, so its
    // figures cover the burst and not the thousands of handshakes.
    let cpu0 = std::cell::Cell::new(stats::cpu_seconds());
    let server_cpu0 = std::cell::Cell::new(args.server_pid.and_then(stats::process_cpu_seconds));
    let t0 = std::cell::Cell::new(Instant::now());
    let rss0 = args.server_pid.and_then(stats::rss_kib);
    let mut rss_per_session = None;
    let (tally, seconds, lost) = rt.block_on(async {
        match args.scenario {
            Scenario::WsEcho => {
                let (t, s) = ws::echo(&args).await;
                (t, s, 0)
            }
            Scenario::XhrPolling => {
                with_zero_lost(http::run(&args, http::Receiving::Polling).await)
            }
            Scenario::XhrStreaming => {
                with_zero_lost(http::run(&args, http::Receiving::XhrStreaming).await)
            }
            Scenario::Eventsource => {
                with_zero_lost(http::run(&args, http::Receiving::EventSource).await)
            }
            Scenario::Broadcast => with_zero_lost(
                ws::broadcast(&args, || {
                    t0.set(Instant::now());
                    cpu0.set(stats::cpu_seconds());
                    server_cpu0.set(args.server_pid.and_then(stats::process_cpu_seconds));
                })
                .await,
            ),
            Scenario::Idle => {
                let (t, lost) = ws::idle(&args, || {
                    if let (Some(pid), Some(before)) = (args.server_pid, rss0) {
                        if let Some(after) = stats::rss_kib(pid) {
                            rss_per_session =
                                Some((after as f64 - before as f64) / args.sessions as f64);
                        }
                    }
                })
                .await;
                (t, args.hold, lost)
            }
        }
    });
    let elapsed = t0.get().elapsed().as_secs_f64();
    // CPU shares over the measured part: the CPU used between the baselines
    // (a broadcast's were taken at the burst), as a share of that time.
    let scale = if matches!(args.scenario, Scenario::Idle) {
        1.0
    } else {
        seconds / elapsed
    };
    let (cpu0, server_cpu0) = (cpu0.get(), server_cpu0.get());
    let report = Report {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        label: args.label.clone(),
        sessions: args.sessions,
        tally,
        seconds,
        lost,
        rss_per_session_kib: rss_per_session,
        client_cpu: (stats::cpu_seconds() - cpu0) * scale,
        server_cpu: match (
            args.server_pid.and_then(stats::process_cpu_seconds),
            server_cpu0,
        ) {
            (Some(b), Some(a)) => Some((b - a) * scale),
            _ => None,
        },
    };
    report.print();
    if report.tally.errors > 0 || report.lost > 0 {
        std::process::exit(1);
    }
}

fn with_zero_lost((t, s): (stats::Tally, f64)) -> (stats::Tally, f64, u64) {
    (t, s, 0)
}
