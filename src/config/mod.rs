//! Configuration: built-in defaults, then one TOML file (the embedded
//! `config/default.toml`, or the file given with `--config`), then
//! environment variables `SOCKJS_GATEWAY__<KEY>__<SUBKEY>` (double
//! underscore nests: `SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY=10`),
//! then command-line overrides. List-valued keys also take a
//! comma-separated string, so they can be set from the environment.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod api;
pub mod auth;
pub mod cluster;
pub mod env;
mod limits;
pub mod list;
pub mod prefix;
pub mod service;
pub mod shutdown;
pub mod upstream_url;
pub mod webhook_url;

pub use api::{ApiConfig, MIN_API_KEY_LEN};
pub use auth::{AuthConfig, MIN_DEMO_LOGIN_SECRET_LEN, MIN_JWT_SECRET_LEN};
pub use service::{HistoryConfig, ServiceConfig, ServiceKind, SessionBinding};
pub use shutdown::ShutdownConfig;

/// The embedded default configuration: the demo on 127.0.0.1:8080.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SOCKJS_GATEWAY";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, `HOST:PORT`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Write an access log line per request (target `sockjs_gateway::access`).
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Directory served at `/` (the demo pages); empty to serve none.
    #[serde(default = "default_static_dir")]
    pub static_dir: String,
    /// The sockjs-client build served at [`SOCKJS_CLIENT_URL`], installed
    /// from npm (`npm ci`); empty to serve none.
    #[serde(default = "default_sockjs_client_path")]
    pub sockjs_client_path: String,
    /// The @stomp/stompjs build served at [`STOMP_CLIENT_URL`] for the
    /// notifications demo, installed from npm; empty to serve none.
    #[serde(default = "default_stomp_client_path")]
    pub stomp_client_path: String,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Peers whose `X-Forwarded-For` is believed (proxies such as nginx).
    #[serde(
        default = "default_trusted_proxies",
        deserialize_with = "list::deserialize"
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Client connections held at once; more are reset on accept. Default:
    /// what the open-file limit allows ([`crate::limits::fds`]).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Largest request head (request line and headers) in bytes; larger
    /// gets 431.
    #[serde(default = "limits::default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Seconds a peer may leave written bytes unread (a stalled WebSocket
    /// or streaming reader) before its connection is aborted.
    #[serde(default = "limits::default_write_timeout")]
    pub write_timeout: f64,
    /// Hand freed memory back to the system once a load has passed
    /// ([`crate::limits::trim`]).
    #[serde(default = "yes")]
    pub trim_memory: bool,
    /// Who STOMP sessions are (`kind = "stomp"`): tokens in CONNECT.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The HTTP publish API for backends ([`crate::api`]).
    #[serde(default)]
    pub api: ApiConfig,
    /// Many nodes on one Redis ([`crate::cluster`]); none: this process
    /// alone.
    #[serde(default)]
    pub cluster: Option<cluster::ClusterConfig>,
    /// Mounted services by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
}

/// Where the gateway serves its local copy of sockjs-client at the root.
pub const SOCKJS_CLIENT_URL: &str = "/sockjs-client/sockjs.min.js";

/// Where the gateway serves its local copy of @stomp/stompjs.
pub const STOMP_CLIENT_URL: &str = "/stomp-client/stomp.umd.min.js";

/// The same copy's name under every service prefix (`PREFIX/sockjs.min.js`).
/// The iframe page's default `sockjs_url` is the absolute path of this name
/// under the prefix, so whatever routes the prefix also routes the script,
/// and the URL stays absolute as the SockJS protocol asks.
pub const CLIENT_SCRIPT: &str = "sockjs.min.js";

fn default_trusted_proxies() -> Vec<ipnet::IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("valid"),
        "::1/128".parse().expect("valid"),
    ]
}
fn default_static_dir() -> String {
    "static".into()
}
fn default_stomp_client_path() -> String {
    "node_modules/@stomp/stompjs/bundles/stomp.umd.min.js".into()
}
fn default_sockjs_client_path() -> String {
    "node_modules/sockjs-client/dist/sockjs.min.js".into()
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn yes() -> bool {
    true
}

impl Config {
    /// Loads the configuration: `file` (or the embedded default), then the
    /// environment, then `overrides` (key path, value), such as the
    /// command line's `--listen`. Errors name the offending key.
    pub fn load(file: Option<&str>, overrides: &[(&str, &str)]) -> Result<Config, String> {
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        Self::load_from(file, env, overrides)
    }

    fn load_from(
        file: Option<&str>,
        env: config::Environment,
        overrides: &[(&str, &str)],
    ) -> Result<Config, String> {
        let mut b = config::Config::builder();
        for (key, value) in overrides {
            b = b
                .set_override(*key, *value)
                .map_err(|e| format!("configuration error: {key}: {e}"))?;
        }
        b = match file {
            Some(path) => {
                b.add_source(config::File::new(path, config::FileFormat::Toml).required(true))
            }
            None => b.add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            )),
        };
        Self::build(b.add_source(env))
    }

    /// Parses a configuration from TOML text alone (no environment), for
    /// code that embeds the gateway.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        Self::build(
            config::Config::builder()
                .add_source(config::File::from_str(text, config::FileFormat::Toml)),
        )
    }

    /// Merges the sources, then deserializes and validates the result.
    fn build(b: config::ConfigBuilder<config::builder::DefaultState>) -> Result<Config, String> {
        let cfg: Config = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("configuration error: {e}"))?;
        cfg.validate()
            .map_err(|e| format!("configuration error: {e}"))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        check_listen("listen", &self.listen)?;
        limits::validate(self)?;
        self.shutdown.validate()?;
        self.api.validate()?;
        let stomp = self.services.values().any(|s| s.kind == ServiceKind::Stomp);
        self.auth.validate(stomp)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if self.services.is_empty() {
            return Err("services: no service is configured".into());
        }
        for (name, svc) in &self.services {
            svc.validate(name)?;
        }
        // Each pair once; one prefix inside the other leaves a service unreachable.
        let all: Vec<(&String, &ServiceConfig)> = self.services.iter().collect();
        for (i, (name, svc)) in all.iter().enumerate() {
            for (other, o) in &all[i + 1..] {
                let (outer, inner) = if o.prefix.len() < svc.prefix.len() {
                    ((other, o), (name, svc))
                } else {
                    ((name, svc), (other, o))
                };
                if prefix::contains(&outer.1.prefix, &inner.1.prefix) {
                    let how = if outer.1.prefix == inner.1.prefix {
                        "is already used by"
                    } else {
                        "lies inside"
                    };
                    return Err(format!(
                        "services.{}.prefix: {:?} {how} services.{}.prefix ({:?}); \
                         one of them could never be reached",
                        inner.0, inner.1.prefix, outer.0, outer.1.prefix
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A listen address: `HOST:PORT` (a socket address, or a host name and a
/// port, which binding resolves).
fn check_listen(key: &str, value: &str) -> Result<(), String> {
    if value.parse::<std::net::SocketAddr>().is_err() && !value.contains(':') {
        return Err(format!("{key}: expected HOST:PORT, got {value:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(vars: &[(&str, &str)]) -> config::Environment {
        let map = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(map))
    }

    /// The embedded default with these environment variables.
    fn with_env(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::load_from(None, env(vars), &[])
    }

    #[test]
    fn embedded_default_serves_echo_and_chat_on_8080() {
        let c = with_env(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.services["echo"].prefix, "/echo");
        assert_eq!(c.services["echo"].kind, ServiceKind::Echo);
        assert_eq!(c.services["chat"].kind, ServiceKind::Broadcast);
        assert_eq!(c.services["echo"].heartbeat_delay, 25.0);
        assert!(c.services["echo"].allowed_origins.is_empty());
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let c = with_env(&[
            ("SOCKJS_GATEWAY__LISTEN", "0.0.0.0:9000"),
            ("SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY", "7.5"),
            ("SOCKJS_GATEWAY__SERVICES__ECHO__WEBSOCKET", "false"),
        ])
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.services["echo"].heartbeat_delay, 7.5);
        assert!(!c.services["echo"].websocket);
    }

    #[test]
    fn a_cluster_comes_from_the_environment_and_its_password_stays_hidden() {
        assert!(with_env(&[]).unwrap().cluster.is_none());
        let url = "redis://:hunter2hunter2@127.0.0.1:6379/0";
        let secret = "s3cret-of-the-nodes-s3cret-of-the-nodes";
        let c = with_env(&[
            ("SOCKJS_GATEWAY__CLUSTER__REDIS_URL", url),
            ("SOCKJS_GATEWAY__CLUSTER__SECRET", secret),
        ])
        .unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.redis_url.as_deref(), Some(url));
        assert_eq!(cluster.secret.as_deref(), Some(secret));
        assert_eq!(cluster.namespace, "sockjs-gateway");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains(secret));
        for (key, value, named) in [
            ("REDIS_URL", "http://127.0.0.1:6379", "cluster.redis_url"),
            ("NODE_ID", "gw 1", "cluster.node_id"),
            ("ADVERTISE", "10.0.0.3:8080", "cluster.advertise"),
            ("PRESENCE_INTERVAL", "0", "cluster.presence_interval"),
            ("SECRET", "short", "cluster.secret"),
        ] {
            let var = format!("SOCKJS_GATEWAY__CLUSTER__{key}");
            let mut vars = vec![(var.as_str(), value)];
            if key != "REDIS_URL" {
                vars.push(("SOCKJS_GATEWAY__CLUSTER__REDIS_URL", url));
            }
            if key != "SECRET" {
                vars.push(("SOCKJS_GATEWAY__CLUSTER__SECRET", secret));
            }
            let e = with_env(&vars).unwrap_err();
            assert!(e.contains(named), "{key}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        // No secret at all: refused, naming the key and its variable.
        let e = with_env(&[("SOCKJS_GATEWAY__CLUSTER__REDIS_URL", url)]).unwrap_err();
        assert!(
            e.contains("cluster.secret") && e.contains("SOCKJS_GATEWAY__CLUSTER__SECRET"),
            "{e}"
        );
    }

    #[test]
    fn sentinels_come_from_the_environment_and_their_passwords_stay_hidden() {
        let secret = (
            "SOCKJS_GATEWAY__CLUSTER__SECRET",
            "s3cret-of-the-nodes-s3cret-of-the-nodes",
        );
        let sentinels = (
            "SOCKJS_GATEWAY__CLUSTER__REDIS_SENTINELS",
            "redis://10.0.0.1:26379, redis://10.0.0.2:26379",
        );
        let name = ("SOCKJS_GATEWAY__CLUSTER__REDIS_MASTER_NAME", "mymaster");
        let c = with_env(&[
            secret,
            sentinels,
            name,
            ("SOCKJS_GATEWAY__CLUSTER__REDIS_PASSWORD", "hunter2hunter2"),
            (
                "SOCKJS_GATEWAY__CLUSTER__REDIS_SENTINEL_PASSWORD",
                "sentinel-pw-77",
            ),
            ("SOCKJS_GATEWAY__CLUSTER__REDIS_MIN_REPLICAS", "1"),
        ])
        .unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(
            cluster.redis_sentinels,
            ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]
        );
        assert_eq!(cluster.redis_master_name.as_deref(), Some("mymaster"));
        assert_eq!(cluster.redis_min_replicas, 1);
        assert_eq!(cluster.redis_replica_timeout_ms, 1000);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("sentinel-pw"),
            "{shown}"
        );
        assert!(shown.contains("mymaster"), "{shown}");

        let url = (
            "SOCKJS_GATEWAY__CLUSTER__REDIS_URL",
            "redis://127.0.0.1:6379",
        );
        let missing = std::env::temp_dir().join("no-such-ca.pem");
        let missing = missing.to_str().unwrap();
        for (vars, named) in [
            (
                vec![secret, sentinels, name, url],
                "cluster.redis_sentinels",
            ),
            (vec![secret, sentinels], "cluster.redis_master_name"),
            (vec![secret, url, name], "cluster.redis_master_name"),
            (vec![secret], "cluster.redis_url"),
            (
                vec![
                    secret,
                    url,
                    ("SOCKJS_GATEWAY__CLUSTER__REDIS_CA_FILE", missing),
                ],
                "cluster.redis_ca_file",
            ),
            (
                vec![
                    secret,
                    url,
                    ("SOCKJS_GATEWAY__CLUSTER__REDIS_REPLICA_TIMEOUT_MS", "0"),
                ],
                "cluster.redis_replica_timeout_ms",
            ),
        ] {
            let e = with_env(&vars).unwrap_err();
            assert!(e.contains(named), "{named}: {e}");
        }
    }

    #[test]
    fn a_redis_cluster_comes_from_the_environment_alone() {
        let secret = (
            "SOCKJS_GATEWAY__CLUSTER__SECRET",
            "s3cret-of-the-nodes-s3cret-of-the-nodes",
        );
        let nodes = (
            "SOCKJS_GATEWAY__CLUSTER__REDIS_CLUSTER_NODES",
            "redis://10.0.0.1:7000, redis://10.0.0.2:7000",
        );
        let c = with_env(&[
            secret,
            nodes,
            ("SOCKJS_GATEWAY__CLUSTER__REDIS_PASSWORD", "hunter2hunter2"),
        ])
        .unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert!(cluster.is_redis_cluster());
        assert_eq!(
            cluster.redis_cluster_nodes,
            ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
        );
        assert_eq!(cluster.redis_failover_timeout, 15.0);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("10.0.0.2:7000"), "{shown}");
        let url = (
            "SOCKJS_GATEWAY__CLUSTER__REDIS_URL",
            "redis://127.0.0.1:6379",
        );
        let sentinels = (
            "SOCKJS_GATEWAY__CLUSTER__REDIS_SENTINELS",
            "redis://10.0.0.1:26379",
        );
        let name = ("SOCKJS_GATEWAY__CLUSTER__REDIS_MASTER_NAME", "mymaster");
        for (vars, named) in [
            (vec![secret, nodes, url], "cluster.redis_cluster_nodes"),
            (
                vec![secret, nodes, sentinels],
                "cluster.redis_cluster_nodes",
            ),
            (vec![secret, nodes, name], "cluster.redis_master_name"),
            (
                vec![
                    secret,
                    (
                        "SOCKJS_GATEWAY__CLUSTER__REDIS_CLUSTER_NODES",
                        "redis://10.0.0.1:7000,rediss://10.0.0.2:7000",
                    ),
                ],
                "cluster.redis_cluster_nodes",
            ),
            (
                vec![
                    secret,
                    (
                        "SOCKJS_GATEWAY__CLUSTER__REDIS_CLUSTER_NODES",
                        "10.0.0.1:7000",
                    ),
                ],
                "cluster.redis_cluster_nodes",
            ),
            (
                vec![
                    secret,
                    nodes,
                    ("SOCKJS_GATEWAY__CLUSTER__REDIS_FAILOVER_TIMEOUT", "0"),
                ],
                "cluster.redis_failover_timeout",
            ),
        ] {
            let e = with_env(&vars).unwrap_err();
            assert!(e.contains(named), "{named}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__WEBSOCKET", "maybe")]).unwrap_err();
        assert!(e.contains("services.echo.websocket"), "{e}");
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__DISCONNECT_DELAY", "0")]).unwrap_err();
        assert!(e.contains("services.echo.disconnect_delay"), "{e}");
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__CHAT__PREFIX", "/echo")]).unwrap_err();
        assert!(e.contains("services.chat.prefix"), "{e}");
    }

    #[test]
    fn list_keys_take_comma_separated_environment_values() {
        let c = with_env(&[
            (
                "SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("SOCKJS_GATEWAY__TRUSTED_PROXIES", "10.0.0.0/8, ::1/128"),
        ])
        .unwrap();
        assert_eq!(
            c.services["echo"].allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            c.trusted_proxies,
            [
                "10.0.0.0/8".parse().unwrap(),
                "::1/128".parse::<ipnet::IpNet>().unwrap()
            ]
        );
        let one = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS", "*")]).unwrap();
        assert!(one.services["echo"].allows_any_origin());
        let e =
            with_env(&[("SOCKJS_GATEWAY__TRUSTED_PROXIES", "10.0.0.0/8,nonsense")]).unwrap_err();
        assert!(
            e.contains("trusted_proxies") && e.contains("nonsense"),
            "{e}"
        );
    }

    #[test]
    fn overrides_beat_the_environment_and_are_validated() {
        let c = Config::load_from(
            None,
            env(&[("SOCKJS_GATEWAY__LISTEN", "0.0.0.0:9000")]),
            &[("listen", "127.0.0.1:0")],
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        let e = Config::load_from(None, env(&[]), &[("listen", "nonsense")]).unwrap_err();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let e = Config::from_toml("[services.x]\nprefix = \"/x\"\nkind = \"chat\"\n").unwrap_err();
        assert!(e.contains("services.x.kind"), "{e}");
        assert!(
            e.contains("echo, close, amplify, broadcast, proxy, stomp"),
            "{e}"
        );
        for (name, kind) in ServiceKind::ALL {
            // What each kind needs besides its name.
            let (top, extra) = match kind {
                ServiceKind::Proxy => ("", "upstream = \"ws://a\"\n"),
                ServiceKind::Stomp => ("[auth]\nanonymous = true\n", ""),
                _ => ("", ""),
            };
            let c = Config::from_toml(&format!(
                "{top}[services.x]\nprefix = \"/x\"\nkind = \"{name}\"\n{extra}"
            ))
            .unwrap();
            assert_eq!(c.services["x"].kind, kind);
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn unroutable_and_overlapping_prefixes_are_refused() {
        let svc = |name: &str, prefix: &str| format!("[services.{name}]\nprefix = {prefix:?}\n");
        for bad in ["/", "/a b", "/a?b", "//a"] {
            let e = Config::from_toml(&svc("x", bad)).unwrap_err();
            assert!(e.contains("services.x.prefix"), "{bad}: {e}");
        }
        let e = Config::from_toml(&(svc("outer", "/a") + &svc("inner", "/a/b"))).unwrap_err();
        assert!(
            e.contains("services.inner.prefix") && e.contains("services.outer.prefix"),
            "{e}"
        );
        assert!(e.contains("inside"), "{e}");
        Config::from_toml(&(svc("one", "/a") + &svc("two", "/ab"))).unwrap();
    }

    #[test]
    fn proxy_services_need_valid_upstreams_and_others_have_none() {
        let proxy = |extra: &str| {
            Config::from_toml(&format!(
                "[services.app]\nprefix = \"/app\"\nkind = \"proxy\"\n{extra}\n"
            ))
        };
        let c = proxy(
            "upstream = [\"ws://127.0.0.1:9000/socket\", \"wss://b.example/ws\"]\n\
             forward_headers = [\"Cookie\", \"authorization\"]\nupstream_connect_timeout = 2",
        )
        .unwrap();
        let app = &c.services["app"];
        assert_eq!(app.kind, ServiceKind::Proxy);
        assert_eq!(app.upstream.len(), 2);
        assert_eq!(app.upstream_connect_timeout(), Duration::from_secs(2));
        assert_eq!(app.upstream_ping_interval(), Duration::from_secs(25));
        for (extra, key) in [
            ("", "services.app.upstream"),
            ("upstream = [\"http://x\"]", "services.app.upstream[0]"),
            (
                "upstream = [\"ws://a\", \"ws://b:0\"]",
                "services.app.upstream[1]",
            ),
            (
                "upstream = \"ws://a\"\nforward_headers = [\"bad header\"]",
                "services.app.forward_headers[0]",
            ),
            (
                "upstream = \"ws://a\"\nupstream_connect_timeout = 0",
                "services.app.upstream_connect_timeout",
            ),
            (
                "upstream = \"ws://a\"\nhigh_water_bytes = 2000000",
                "services.app.high_water_bytes",
            ),
        ] {
            let e = proxy(extra).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let e = Config::from_toml("[services.e]\nprefix = \"/e\"\nupstream = \"ws://a\"\n")
            .unwrap_err();
        assert!(
            e.contains("services.e.upstream") && e.contains("proxy"),
            "{e}"
        );
        let env = with_env(&[
            ("SOCKJS_GATEWAY__SERVICES__APP__PREFIX", "/app"),
            ("SOCKJS_GATEWAY__SERVICES__APP__KIND", "proxy"),
            (
                "SOCKJS_GATEWAY__SERVICES__APP__UPSTREAM",
                "ws://a:1/x,ws://b:2/y",
            ),
        ])
        .unwrap();
        assert_eq!(env.services["app"].upstream, ["ws://a:1/x", "ws://b:2/y"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = with_env(&[("SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT", "1")]).unwrap_err();
        assert!(e.contains("heartbeat"), "{e}");
    }

    #[test]
    fn protocol_test_file_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/protocol-test.toml");
        let c = Config::load_from(Some(path), env(&[]), &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8081");
        assert_eq!(c.services["echo"].response_limit, 4096);
        assert!(!c.services["disabled_websocket_echo"].websocket);
        assert!(c.services["cookie_needed_echo"].jsessionid);
        assert!(c.services.values().all(|s| s.allows_any_origin()));
        assert!(!c.services.contains_key("chat"));
    }

    #[test]
    fn service_defaults_for_library_users() {
        let s = ServiceConfig::new("/x/");
        assert_eq!(s.prefix, "/x");
        assert_eq!(s.disconnect(), Duration::from_secs(5));
        assert_eq!(s.response_limit, 131072);
    }
}
