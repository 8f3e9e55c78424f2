use clap::Parser;
use sockjs_gateway::config::env;
use sockjs_gateway::limits::accept_log::RateLimited;
use sockjs_gateway::{Config, Gateway};
use std::time::Duration;

const AFTER_HELP: &str = "\
Configuration: built-in defaults, then the TOML file (--config, or the
embedded demo config), then environment variables, then --listen and
--api-listen.

Environment variables are SOCKJS_GATEWAY__ followed by the key path in upper
case, with __ (two underscores) between levels:
  SOCKJS_GATEWAY__LISTEN=0.0.0.0:8080
  SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY=10
  SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS=https://a.example,https://b.example
List-valued keys take a comma-separated value.

Logging: RUST_LOG (default info), e.g. RUST_LOG=debug, or
RUST_LOG=info,sockjs_gateway::access=warn to silence the access log.

Exit status: 2 for a configuration error (the message names the key),
1 when the address cannot be bound or the server fails.";

/// SockJS 0.3.3 gateway: every SockJS transport onto one session per client.
#[derive(Parser)]
#[command(version, about, after_help = AFTER_HELP)]
struct Args {
    /// TOML config file; without it the embedded demo config is used.
    #[arg(long, value_name = "PATH")]
    config: Option<String>,
    /// Listen address, overriding the config's `listen` and the environment.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// The HTTP API's listen address, overriding `api.listen` and the
    /// environment.
    #[arg(long, value_name = "HOST:PORT")]
    api_listen: Option<String>,
}

#[actix_web::main]
async fn main() {
    // The redis crate's cluster connection warns at every failed connect
    // to a node that is down (many a second): the bus says it once.
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,redis::cluster_handling=error"),
    )
    .build();
    log::set_max_level(logger.filter());
    let logger = RateLimited::new(logger, Duration::from_secs(60));
    log::set_boxed_logger(Box::new(logger)).expect("the only logger");
    let args = Args::parse();
    for name in env::misspelled(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok())) {
        log::warn!("{}", env::warning(&name));
    }
    let overrides: Vec<(&str, &str)> = [
        ("listen", args.listen.as_deref()),
        ("api.listen", args.api_listen.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sockjs-gateway: {e}");
            std::process::exit(2);
        }
    };
    let running = match Gateway::new(config.clone()).start() {
        Ok(r) => r,
        // A service whose configuration cannot run: the message names the key.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("sockjs-gateway: {e}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("sockjs-gateway: cannot listen on {}: {e}", config.listen);
            std::process::exit(1);
        }
    };
    // Whoever started the gateway may stop reading its output (a script that
    // took the port it needed, `| head -1`): a line that cannot be written
    // is dropped, never a reason to stop serving.
    let say = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    for addr in &running.addrs {
        // Tests and scripts read this line to learn the bound port.
        say(format!("sockjs-gateway listening on http://{addr}"));
    }
    for addr in &running.api_addrs {
        // After the line above, which scripts read first.
        say(format!("sockjs-gateway api at http://{addr}"));
    }
    if let Some(key) = &running.demo_api_key {
        say(format!(
            "sockjs-gateway demo api key: {key} (made at start; the demo pages show it; set api.key for a real one)"
        ));
    }
    for (name, svc) in &config.services {
        log::info!("service {name}: {} ({})", svc.prefix, svc.kind.name());
    }
    if let Err(e) = running.serve_until_signal().await {
        eprintln!("sockjs-gateway: {e}");
        std::process::exit(1);
    }
}
