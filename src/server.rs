//! Assembling services into an actix-web server: the SockJS services, the
//! health endpoints, the demo pages, and graceful shutdown.

use crate::api;
use crate::api::demo_key::DemoKey;
use crate::cluster::owners::Owners;
use crate::cluster::redis::RedisBus;
use crate::cluster::redis_history::RedisHistory;
use crate::cluster::Cluster;
use crate::config::{Config, ServiceKind, SOCKJS_CLIENT_URL, STOMP_CLIENT_URL};
use crate::limits;
use crate::protocol::CloseCode;
use crate::service::api::Service;
use crate::service::builtin;
use crate::service::hub::ServiceHub;
use crate::service::inbox::Services;
use crate::service::stomp::demo_login::{self, DemoLogin};
use crate::transport::client_addr::Trust;
use crate::transport::{hangup, link, routes};
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A configured gateway, not yet listening.
pub struct Gateway {
    config: Config,
    backends: HashMap<String, Arc<dyn Service>>,
}

/// Whether the gateway takes new work (`/readyz`).
struct Readiness(AtomicBool);

/// A gateway that is listening.
pub struct Running {
    /// The actix server; await it to run until it stops.
    pub server: actix_web::dev::Server,
    /// The addresses actually bound (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    /// The mounted services, by name.
    pub services: HashMap<String, Arc<ServiceHub>>,
    /// Where the HTTP API listens (empty when it is off).
    pub api_addrs: Vec<SocketAddr>,
    /// The key made at start for the embedded demo (`[api] demo_key`).
    pub demo_api_key: Option<String>,
    api: Option<actix_web::dev::ServerHandle>,
    config: Config,
    ready: Arc<Readiness>,
    /// This node's link to the others, with `[cluster]`.
    pub redis: Option<Arc<RedisBus>>,
    links_closing: Arc<link::server::Closing>,
}

impl Gateway {
    pub fn new(config: Config) -> Self {
        Gateway {
            config,
            backends: HashMap::new(),
        }
    }

    /// Runs `backend` for the configured service `name` instead of its
    /// built-in `kind`. [`Gateway::start`] fails if no service has that name.
    pub fn backend(mut self, name: &str, backend: Arc<dyn Service>) -> Self {
        self.backends.insert(name.to_owned(), backend);
        self
    }

    /// Binds the listen address and starts the workers. Must be called
    /// inside an actix system (e.g. under `#[actix_web::main]`). Signals are
    /// left to [`Running::serve_until_signal`].
    pub fn start(self) -> std::io::Result<Running> {
        let mut config = self.config;
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if config.auth.demo_login {
            log::warn!("auth.demo_login: /demo/token signs anyone in as any user; for demos only");
            let shared = config.auth.demo_login_secret.clone();
            config.auth.jwt_secret = Some(shared.unwrap_or_else(demo_login::random_secret));
        }
        let demo_login = DemoLogin::new(&config.auth);
        let demo_key = config.api.makes_demo_key(&config.listen).then(DemoKey::new);
        if let Some(demo) = &demo_key {
            config.api.key = Some(demo.key.to_string());
        }
        // A misspelled name would otherwise leave the built-in kind answering.
        if let Some(name) = self
            .backends
            .keys()
            .find(|n| !config.services.contains_key(*n))
        {
            let known: Vec<&str> = config.services.keys().map(String::as_str).collect();
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "backend {name:?}: no service of that name is configured (services: {})",
                    known.join(", ")
                ),
            ));
        }
        let budget = limits::fds::init(config.max_connections);
        log::info!(
            "open files: limit {} (soft limit was {}), {} in use at start, {} reserved; max_connections {}",
            budget.limit,
            budget.limit_at_start,
            budget.baseline,
            limits::fds::RESERVE,
            budget.max_connections
        );
        if config.trim_memory {
            limits::trim::start(budget);
        }
        let (cluster, redis) = match &config.cluster {
            None => (Cluster::alone(), None),
            Some(c) => {
                let node = c.node_id.clone().unwrap_or_else(random_node_id);
                let bus = RedisBus::new(c, &node)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                bus.check_tls()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let cluster = Cluster {
                    bus: bus.clone(),
                    owners: Some(Arc::new(Owners::new(bus.clone()))),
                    history: Some(Arc::new(RedisHistory::new(bus.clone()))),
                };
                (cluster, Some(bus))
            }
        };
        let mut services = HashMap::new();
        let mut brokers = BTreeMap::new();
        for (name, cfg) in &config.services {
            log::info!(
                "service {name}: max_sessions {}{}",
                cfg.max_sessions(),
                if cfg.max_sessions.is_some() {
                    ""
                } else {
                    " (derived: WebSocket sessions; an HTTP session counts as 2)"
                }
            );
            if cfg.allows_any_origin() {
                log::warn!(
                    "service {name} ({}) allows any origin: any web page can use it with the visitor's cookies",
                    cfg.prefix
                );
            }
            let backend = match self.backends.get(name) {
                Some(b) => b.clone(),
                None => {
                    let built = builtin::for_config(name, cfg, &config.auth, &cluster)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                    if let Some(stomp) = built.stomp {
                        brokers.insert(name.clone(), stomp);
                    }
                    built.service
                }
            };
            let mut cfg = cfg.clone();
            // The connect webhook gets the Cookie of the request that
            // opened the session: keep it for the session.
            if cfg.kind == ServiceKind::Stomp
                && config.auth.connect_webhook.is_some()
                && !cfg
                    .forward_headers
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case("cookie"))
            {
                cfg.forward_headers.push("cookie".into());
            }
            let hub = ServiceHub::new(
                name,
                cfg,
                backend,
                config.trusted_proxies.clone(),
                cluster.clone(),
            );
            hub.start_heartbeat();
            services.insert(name.clone(), hub);
        }
        let static_dir = existing(&config.static_dir, "static_dir");
        let sockjs_client = existing(
            &config.sockjs_client_path,
            "sockjs_client_path (run `npm ci`)",
        )
        .map(|p| routes::StaticFile(p.into()));
        // Only where a page can use it: with a stomp service.
        let stomp_client = (!brokers.is_empty())
            .then(|| {
                existing(
                    &config.stomp_client_path,
                    "stomp_client_path (run `npm ci`)",
                )
            })
            .flatten()
            .map(|p| routes::StaticFile(p.into()));
        let ready = Arc::new(Readiness(AtomicBool::new(true)));
        let hubs: Vec<Arc<ServiceHub>> = services.values().cloned().collect();
        let access_log = config.access_log;
        let trusted_proxies = config.trusted_proxies.clone();
        let nodes = cluster.owners.clone();
        let max_header_bytes = config.max_header_bytes;
        let write_timeout = Duration::from_secs_f64(config.write_timeout);
        let app_ready = ready.clone();
        let app_demo_key = demo_key.clone();
        let links_closing = Arc::new(link::server::Closing::default());
        let app_links_closing = links_closing.clone();
        let mut server = HttpServer::new(move || {
            let hubs = hubs.clone();
            let ready = web::Data::from(app_ready.clone());
            let static_dir = static_dir.clone();
            let sockjs_client = sockjs_client.clone();
            let stomp_client = stomp_client.clone();
            let demo_login = demo_login.clone();
            let demo_key = app_demo_key.clone();
            let (trusted_proxies, nodes) = (trusted_proxies.clone(), nodes.clone());
            let link_nodes = nodes.clone();
            let links_closing = app_links_closing.clone();
            App::new()
                .wrap(middleware::from_fn(move |req, next| {
                    limits::head::check(max_header_bytes, req, next)
                }))
                .wrap(middleware::Condition::new(
                    access_log,
                    // The client as resolved through trusted_proxies, not
                    // whatever Forwarded header any client sends.
                    middleware::Logger::new("%{client}xi \"%r\" %s %b %Dms \"%{User-Agent}i\"")
                        .custom_request_replace("client", move |req| {
                            let trust = Trust {
                                proxies: &trusted_proxies,
                                nodes: nodes.as_deref(),
                            };
                            trust
                                .client_addr(req.request())
                                .map_or_else(|| "-".to_owned(), |a| a.to_string())
                        })
                        .log_target("sockjs_gateway::access"),
                ))
                .app_data(ready)
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
                )
                .route("/readyz", web::get().to(readyz))
                .configure(move |cfg| {
                    // Other nodes forward requests for this node's sessions.
                    if let Some(nodes) = link_nodes {
                        let closing = links_closing.clone();
                        link::server::Accept::new(hubs.clone(), nodes, closing, max_header_bytes)
                            .route(cfg);
                    }
                    for hub in hubs {
                        routes::mount(cfg, hub, sockjs_client.clone());
                    }
                    if let Some(client) = sockjs_client {
                        cfg.route(SOCKJS_CLIENT_URL, client.route());
                    }
                    if let Some(client) = stomp_client {
                        cfg.route(STOMP_CLIENT_URL, client.route());
                    }
                    if let Some(login) = demo_login {
                        cfg.route("/demo/token", login.route());
                    }
                    if let Some(demo) = demo_key {
                        cfg.route("/demo/api", demo.route());
                    }
                    if let Some(dir) = static_dir {
                        cfg.service(actix_files::Files::new("/", dir).index_file("index.html"));
                    }
                })
        })
        .on_connect(move |conn, ext| {
            let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
                return;
            };
            let Some(held) = budget.admit_connection() else {
                limits::fds::refuse(sock);
                return;
            };
            hangup::on_connect(sock, ext, held);
            if let Err(e) = limits::write_timeout::apply(sock, write_timeout) {
                log::warn!("write_timeout: cannot set TCP_USER_TIMEOUT: {e}");
            }
        })
        .disable_signals()
        .shutdown_timeout(config.shutdown.grace.ceil() as u64);
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // actix-server's own cap counts a connection from accept on, before
        // any worker has run `on_connect` (where the budget refuses it): it
        // bounds the descriptors a burst of connects can take, so accept
        // never meets EMFILE. Half the reserve is for those in flight.
        let per_worker = (budget.max_connections + limits::fds::RESERVE / 2).div_ceil(workers);
        server = server.workers(workers).max_connections(per_worker);
        let server = server.bind(&config.listen)?;
        let addrs = server.addrs();
        if let (Some(bus), Some(c)) = (&redis, &config.cluster) {
            let advertise = match (&c.advertise, addrs.first()) {
                (Some(a), _) => a.trim_end_matches('/').to_owned(),
                (None, Some(a)) if !a.ip().is_unspecified() => format!("http://{a}"),
                _ => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "cluster.advertise: needed when listening on every address (how other nodes reach this one)",
                    ))
                }
            };
            log::info!(
                "cluster: node {} at {advertise}, Redis {}",
                bus.node,
                c.redis_shown()
            );
            // Every node hears every service's broadcasts.
            for name in services.keys() {
                crate::cluster::Bus::follow(&**bus, name, true);
            }
            let inbox = Services {
                hubs: services
                    .iter()
                    .map(|(n, h)| (n.clone(), h.clone()))
                    .collect(),
                brokers: brokers.clone(),
            };
            bus.start(Arc::new(inbox), advertise);
        }
        let brokers = api::routes::Brokers {
            list: brokers.into_iter().collect(),
            bus: cluster.bus.clone(),
        };
        let (api, api_addrs) = match api::bind(&config.api, brokers, config.access_log)? {
            Some((api, addrs)) => {
                if let Some(demo) = &demo_key {
                    demo.bound(&addrs);
                }
                let handle = api.handle();
                actix_web::rt::spawn(api);
                (Some(handle), addrs)
            }
            None => (None, Vec::new()),
        };
        Ok(Running {
            server: server.run(),
            addrs,
            demo_api_key: demo_key.map(|d| d.key.to_string()),
            services,
            api_addrs,
            api,
            config,
            ready,
            redis,
            links_closing,
        })
    }
}

/// A node id for a node not given one: `gw-` and 8 random hex digits.
fn random_node_id() -> String {
    format!("gw-{:08x}", rand::random::<u32>())
}

/// The configured path if it exists; a missing one is logged, not fatal.
fn existing(path: &str, what: &str) -> Option<std::path::PathBuf> {
    if path.is_empty() {
        return None;
    }
    if Path::new(path).exists() {
        Some(path.into())
    } else {
        log::warn!("{what}: {path} does not exist; not served");
        None
    }
}

async fn readyz(ready: web::Data<Readiness>) -> HttpResponse {
    if ready.0.load(Ordering::Relaxed) {
        HttpResponse::Ok().body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable().body("draining\n")
    }
}

/// Starts a graceful shutdown of a running gateway; cloneable, usable from
/// any task.
#[derive(Clone)]
pub struct Shutdown {
    server: actix_web::dev::ServerHandle,
    api: Option<actix_web::dev::ServerHandle>,
    services: Vec<Arc<ServiceHub>>,
    close: CloseCode,
    ready: Arc<Readiness>,
    redis: Option<Arc<RedisBus>>,
    links_closing: Arc<link::server::Closing>,
    drain: Duration,
}

impl Shutdown {
    /// `/readyz` turns 503 at once; after `shutdown.drain_delay` seconds
    /// of serving as before, every open session gets the configured close
    /// frame, the node leaves the cluster, the listener closes, and
    /// in-flight responses get `shutdown.grace` seconds to finish. The
    /// future ends when the server has stopped.
    pub fn begin(&self) -> impl std::future::Future<Output = ()> {
        self.ready.0.store(false, Ordering::Relaxed);
        let this = self.clone();
        async move {
            if !this.drain.is_zero() {
                log::info!(
                    "draining: /readyz answers 503 for {:?} before sessions close",
                    this.drain
                );
                tokio::time::sleep(this.drain).await;
            }
            for hub in &this.services {
                hub.close_all(&this.close);
            }
            // Other nodes' links here close once their answers are done
            // (the close frames just sent among them).
            this.links_closing.begin();
            // After the closes: a node seen leaving has its sessions
            // answered as gone by the others.
            if let Some(bus) = this.redis.clone() {
                actix_web::rt::spawn(async move { bus.leave().await });
            }
            if let Some(api) = &this.api {
                actix_web::rt::spawn(api.stop(true));
            }
            this.server.stop(true).await
        }
    }
}

impl Running {
    pub fn shutdown(&self) -> Shutdown {
        let s = &self.config.shutdown;
        Shutdown {
            server: self.server.handle(),
            api: self.api.clone(),
            services: self.services.values().cloned().collect(),
            close: CloseCode::new(s.close_code, s.close_reason.clone()),
            ready: self.ready.clone(),
            redis: self.redis.clone(),
            links_closing: self.links_closing.clone(),
            drain: Duration::from_secs_f64(s.drain_delay),
        }
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully and
    /// returns; a second signal exits the process at once (status 1).
    pub async fn serve_until_signal(self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = self.shutdown();
        let grace = Duration::from_secs_f64(self.config.shutdown.grace);
        let watcher = actix_web::rt::spawn(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            log::info!(
                "shutting down: sessions close, then up to {grace:?} for in-flight responses"
            );
            actix_web::rt::spawn(shutdown.begin());
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            log::warn!("second signal: exiting now");
            std::process::exit(1);
        });
        let result = self.server.await;
        watcher.abort();
        result
    }
}
