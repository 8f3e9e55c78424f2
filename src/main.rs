use clap::Parser;
use sockjs_gateway::{Config, Gateway};

/// SockJS 0.3.3 gateway: every SockJS transport onto one session per client.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file; without it the embedded demo config is used.
    #[arg(long, value_name = "PATH")]
    config: Option<String>,
    /// Listen address, overriding the config's `listen`.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

#[actix_web::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sockjs-gateway: {e}");
            std::process::exit(2);
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let running = match Gateway::new(config.clone()).start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sockjs-gateway: cannot listen on {}: {e}", config.listen);
            std::process::exit(1);
        }
    };
    for addr in &running.addrs {
        // Tests and scripts read this line to learn the bound port.
        println!("sockjs-gateway listening on http://{addr}");
    }
    for (name, svc) in &config.services {
        log::info!("service {name}: {} ({:?})", svc.prefix, svc.kind);
    }
    if let Err(e) = running.serve_until_signal().await {
        eprintln!("sockjs-gateway: {e}");
        std::process::exit(1);
    }
}
