//! Where a node finds the Redis server it writes to: one server at
//! `redis_url`, or the master the Sentinels in `redis_sentinels` name,
//! asked again at every connection so that a node follows failovers, or a
//! Redis Cluster seeded by `redis_cluster_nodes`, whose masters the
//! crate's cluster connection finds and follows (`MOVED`, `ASK`); TLS to
//! any (`rediss://`) with `redis_ca_file`'s CA or the system's roots. The
//! `redis` crate does Sentinel, Cluster and TLS; this only configures it.
//!
//! A connected node asks the server who it is ([`Master`]): a replica (a
//! Sentinel's answer from before a failover) is refused, and the master's
//! replication id, which a promotion or a restart changes, tells history
//! that it writes on another master than before
//! ([`super::redis_history`]).

use crate::config::cluster::ClusterConfig;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates, TlsMode};

/// What a node connected to: the master's address and its replication id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    pub addr: String,
    pub replid: String,
}

pub struct RedisServer {
    how: How,
    config: ClusterConfig,
}

enum How {
    One(redis::Client),
    Sentinels(tokio::sync::Mutex<SentinelClient>),
    /// The seeds' client, checked at start; each connection is made by a
    /// client of its own ([`RedisServer::cluster_client`]).
    Cluster(redis::Client),
}

/// Where a cluster connection's pushes go: the messages of its sharded
/// subscriptions, and their ends.
pub type Pushes = tokio::sync::mpsc::UnboundedSender<redis::PushInfo>;

impl RedisServer {
    pub fn new(config: &ClusterConfig) -> Result<RedisServer, String> {
        let how = match (&config.redis_url, config.is_redis_cluster()) {
            (_, true) => {
                cluster_client(config, None, config.request_timeout())?;
                How::Cluster(one_server(config, &config.redis_cluster_nodes[0])?)
            }
            (Some(url), false) => How::One(one_server(config, url)?),
            (None, false) => How::Sentinels(tokio::sync::Mutex::new(sentinels(config)?)),
        };
        Ok(RedisServer {
            how,
            config: config.clone(),
        })
    }

    /// A client for the master now: the one server, or the master the
    /// Sentinels name (which the crate checks says it is one).
    /// (In a Redis Cluster, the first seed's.)
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.how {
            How::One(client) | How::Cluster(client) => Ok(client.clone()),
            How::Sentinels(s) => s.lock().await.async_get_client().await,
        }
    }

    /// A client of the Redis Cluster, its answers awaited up to `wait`;
    /// with `pushes`, one that speaks RESP3 and sends its subscriptions'
    /// messages there.
    pub fn cluster_client(
        &self,
        pushes: Option<Pushes>,
        wait: std::time::Duration,
    ) -> Result<redis::cluster::ClusterClient, String> {
        cluster_client(&self.config, pushes, wait)
    }

    /// Whether this node can trust the server's TLS certificate, tried once
    /// at start when TLS is asked for: an untrusted one is a configuration
    /// error (naming `cluster.redis_ca_file`), where a server that cannot
    /// be reached yet is not (the node connects once it can).
    pub fn check_tls(&self) -> Result<(), String> {
        let tried = match &self.how {
            How::One(client) | How::Cluster(client) => match client.get_connection_info().addr() {
                ConnectionAddr::TcpTls { .. } => client
                    .get_connection_with_timeout(self.config.request_timeout())
                    .map(drop)
                    .map_err(|e| e.to_string()),
                _ => return Ok(()),
            },
            // Asking the Sentinels connects to them and to the master.
            How::Sentinels(_) if sentinels_tls(&self.config) => sentinels(&self.config)?
                .get_client()
                .map(drop)
                .map_err(|e| e.to_string()),
            How::Sentinels(_) => return Ok(()),
        };
        match tried {
            Err(why) if untrusted(&why) => Err(self.untrusted_error(&why)),
            _ => Ok(()),
        }
    }

    fn untrusted_error(&self, why: &str) -> String {
        match &self.config.redis_ca_file {
            Some(path) => format!(
                "cluster.redis_ca_file: the Redis server's TLS certificate is not signed by the CA in {}: {why}",
                path.display()
            ),
            None => format!(
                "cluster.redis_ca_file: the Redis server's TLS certificate is not trusted by the system's roots \
                 (name its CA in cluster.redis_ca_file): {why}"
            ),
        }
    }
}

/// Asks a connected server who it is: `Err` unless it is a master.
pub async fn identify(
    client: &redis::Client,
    conn: &mut redis::aio::MultiplexedConnection,
) -> Result<Master, String> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("role") != Some("master") {
        return Err(format!(
            "{} is not the master (role {})",
            shown_addr(client),
            field("role").unwrap_or("unknown")
        ));
    }
    Ok(Master {
        addr: shown_addr(client),
        replid: field("master_replid").unwrap_or_default().to_owned(),
    })
}

/// A client's address, for logs.
pub fn shown_addr(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
        other => format!("{other}"),
    }
}

/// Whether a connection error says the server's certificate is not
/// trusted (rustls's words).
fn untrusted(why: &str) -> bool {
    why.contains("invalid peer certificate") || why.contains("UnknownIssuer")
}

/// The certificates TLS checks servers against: `redis_ca_file`'s, or the
/// system's roots.
fn certificates(config: &ClusterConfig) -> Result<TlsCertificates, String> {
    let root_cert =
        match &config.redis_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                format!("cluster.redis_ca_file: cannot read {}: {e}", path.display())
            })?),
            None => None,
        };
    Ok(TlsCertificates {
        client_tls: None,
        root_cert,
    })
}

/// TLS through rustls wants a crypto provider: ring, as everywhere here.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Without TCP_NODELAY a small write (a reply, a publication) can wait for
/// the ACK of the one before: tens of milliseconds.
fn tcp() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

/// A client of the Redis Cluster `redis_cluster_nodes` seed: the same
/// credentials and TLS for every node it finds.
fn cluster_client(
    config: &ClusterConfig,
    pushes: Option<Pushes>,
    wait: std::time::Duration,
) -> Result<redis::cluster::ClusterClient, String> {
    let bad =
        |e: redis::RedisError| format!("cluster.redis_cluster_nodes {}: {e}", config.redis_shown());
    let mut b = redis::cluster::ClusterClientBuilder::new(config.redis_cluster_nodes.clone())
        .connection_timeout(config.request_timeout())
        .response_timeout(wait)
        .tcp_settings(tcp())
        // Quick retries only: the bus has its own, and an answer that
        // waits for a failover would come after its timeout anyway.
        .retries(2);
    if let Some(user) = &config.redis_username {
        b = b.username(user);
    }
    if let Some(password) = &config.redis_password {
        b = b.password(password);
    }
    if config
        .redis_cluster_nodes
        .iter()
        .any(|u| u.starts_with("rediss://"))
    {
        install_crypto();
        if config.redis_tls_insecure {
            b = b.tls(TlsMode::Insecure);
        } else {
            b = b.tls(TlsMode::Secure).certs(certificates(config)?);
        }
    }
    if let Some(pushes) = pushes {
        b = b
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes);
    }
    b.build().map_err(bad)
}

fn one_server(config: &ClusterConfig, url: &str) -> Result<redis::Client, String> {
    let key = if config.is_redis_cluster() {
        "cluster.redis_cluster_nodes"
    } else {
        "cluster.redis_url"
    };
    let bad = |e: redis::RedisError| format!("{key} {}: {e}", config.redis_shown());
    let mut info = url.into_connection_info().map_err(bad)?;
    let mut redis = info.redis_settings().clone();
    if let Some(user) = &config.redis_username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &config.redis_password {
        redis = redis.set_password(password);
    }
    info = info.set_redis_settings(redis).set_tcp_settings(tcp());
    match info.addr().clone() {
        ConnectionAddr::TcpTls { host, port, .. } => {
            install_crypto();
            let insecure = config.redis_tls_insecure;
            info = info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params: None,
            });
            if insecure {
                redis::Client::open(info).map_err(bad)
            } else {
                redis::Client::build_with_tls(info, certificates(config)?).map_err(bad)
            }
        }
        _ => redis::Client::open(info).map_err(bad),
    }
}

/// TLS to the Sentinels and to the master alike: given by the Sentinels'
/// URLs.
fn sentinels_tls(config: &ClusterConfig) -> bool {
    config
        .redis_sentinels
        .iter()
        .any(|url| url.starts_with("rediss://"))
}

fn sentinels(config: &ClusterConfig) -> Result<SentinelClient, String> {
    let bad =
        |e: redis::RedisError| format!("cluster.redis_sentinels {}: {e}", config.redis_shown());
    let mut addrs = Vec::new();
    for url in &config.redis_sentinels {
        addrs.push(
            url.as_str()
                .into_connection_info()
                .map_err(bad)?
                .addr()
                .clone(),
        );
    }
    let tls = sentinels_tls(config);
    let name = config.redis_master_name.as_deref().unwrap_or_default();
    let mut b = SentinelClientBuilder::new(addrs, name, SentinelServerType::Master)
        .map_err(bad)?
        .set_client_to_redis_tcp_settings(tcp())
        .set_client_to_sentinel_tcp_settings(tcp());
    if let Some(user) = &config.redis_username {
        b = b.set_client_to_redis_username(user);
    }
    if let Some(password) = &config.redis_password {
        b = b.set_client_to_redis_password(password);
    }
    if let Some(password) = &config.redis_sentinel_password {
        b = b.set_client_to_sentinel_password(password);
    }
    if tls {
        install_crypto();
        let mode = if config.redis_tls_insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        };
        b = b
            .set_client_to_redis_tls_mode(mode)
            .set_client_to_sentinel_tls_mode(mode);
        if !config.redis_tls_insecure {
            b = b
                .set_client_to_redis_certificates(certificates(config)?)
                .set_client_to_sentinel_certificates(certificates(config)?);
        }
    }
    b.build().map_err(bad)
}
