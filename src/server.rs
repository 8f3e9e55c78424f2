//! Assembling services into an actix-web server.

use crate::config::Config;
use crate::service::api::Service;
use crate::service::builtin;
use crate::service::hub::ServiceHub;
use crate::transport::{hangup, routes};
use actix_web::{middleware, App, HttpServer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A configured gateway, not yet listening.
pub struct Gateway {
    config: Config,
    backends: HashMap<String, Arc<dyn Service>>,
}

/// A gateway that is listening.
pub struct Running {
    /// The actix server; await it to run until it stops.
    pub server: actix_web::dev::Server,
    /// The addresses actually bound (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    /// The mounted services, by name.
    pub services: HashMap<String, Arc<ServiceHub>>,
}

impl Gateway {
    pub fn new(config: Config) -> Self {
        Gateway {
            config,
            backends: HashMap::new(),
        }
    }

    /// Runs `backend` for the configured service `name` instead of its
    /// built-in `kind`.
    pub fn backend(mut self, name: &str, backend: Arc<dyn Service>) -> Self {
        self.backends.insert(name.to_owned(), backend);
        self
    }

    /// Binds the listen address and starts the workers. Must be called
    /// inside an actix system (e.g. under `#[actix_web::main]`).
    pub fn start(self) -> std::io::Result<Running> {
        self.config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut services = HashMap::new();
        for (name, cfg) in &self.config.services {
            if cfg.allows_any_origin() {
                log::warn!(
                    "service {name} ({}) allows any origin: any web page can use it with the visitor's cookies",
                    cfg.prefix
                );
            }
            let backend = self
                .backends
                .get(name)
                .cloned()
                .unwrap_or_else(|| builtin::for_kind(cfg.kind));
            services.insert(name.clone(), ServiceHub::new(cfg.clone(), backend));
        }
        let hubs: Vec<Arc<ServiceHub>> = services.values().cloned().collect();
        let access_log = self.config.access_log;
        let mut server = HttpServer::new(move || {
            let hubs = hubs.clone();
            App::new()
                .wrap(middleware::Condition::new(
                    access_log,
                    middleware::Logger::new("%{r}a \"%r\" %s %b %Dms \"%{User-Agent}i\"")
                        .log_target("sockjs_gateway::access"),
                ))
                .configure(move |cfg| {
                    for hub in hubs {
                        routes::mount(cfg, hub);
                    }
                })
        })
        .on_connect(hangup::on_connect);
        if self.config.workers > 0 {
            server = server.workers(self.config.workers);
        }
        let server = server.bind(&self.config.listen)?;
        let addrs = server.addrs();
        Ok(Running {
            server: server.run(),
            addrs,
            services,
        })
    }
}
