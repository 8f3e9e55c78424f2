//! Who may speak for the client behind a request, and so the client's
//! address as the gateway believes it: the peer, or what a trusted proxy
//! (`trusted_proxies`) or another node of the cluster (which proves
//! `cluster.secret`) says in `X-Forwarded-For`.

use crate::cluster::owners::Owners;
use crate::protocol::forwarded_for::{self, ClientAddr};
use crate::service::hub::ServiceHub;
use actix_web::HttpRequest;
use std::net::IpAddr;

/// The header a request forwarded by another node carries: that node's id.
pub const FORWARDED_BY: &str = "x-sockjs-gateway-forwarded-by";

/// The header with which a forwarding node proves it is one
/// (`cluster.secret`).
pub const NODE_SECRET: &str = "x-sockjs-gateway-secret";

/// Headers in which a proxy tells what the client used. Only a trusted
/// proxy's or a node's are believed, and a node forwards none that a client
/// wrote.
pub const FORWARDING_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
];

pub fn is_trusted(ip: &IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// Whom the gateway believes about the client behind a request.
#[derive(Clone, Copy)]
pub struct Trust<'a> {
    /// Peers believed by their address (`trusted_proxies`).
    pub proxies: &'a [ipnet::IpNet],
    /// The cluster's nodes, believed when they prove `cluster.secret`.
    pub nodes: Option<&'a Owners>,
}

impl<'a> Trust<'a> {
    pub fn of(hub: &'a ServiceHub) -> Trust<'a> {
        Trust {
            proxies: &hub.trusted_proxies,
            nodes: hub.cluster.owners.as_deref(),
        }
    }

    /// Whether another node of the cluster forwarded this request: it
    /// carries the marker and the cluster's secret. The marker alone, from
    /// any client, means nothing.
    pub fn from_node(&self, req: &HttpRequest) -> bool {
        let headers = req.headers();
        match (self.nodes, headers.get(NODE_SECRET)) {
            (Some(nodes), Some(shown)) => {
                headers.contains_key(FORWARDED_BY) && nodes.proves_node(shown.as_bytes())
            }
            _ => false,
        }
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the rightmost `X-Forwarded-For` entry that is not a trusted
    /// proxy, parsed or not (entries further left were written by the
    /// client and could be anything). A node writes the one address it
    /// resolved. `None` only for a peer with no address.
    pub fn client_addr(&self, req: &HttpRequest) -> Option<ClientAddr> {
        self.client_addr_as(req, self.from_node(req))
    }

    /// The address the per-address limits count the client under.
    pub fn limit_addr(&self, req: &HttpRequest) -> Option<IpAddr> {
        self.client_addr(req).map(ClientAddr::limit_key)
    }

    /// The client as the gateway believes it: address, scheme and host,
    /// with the secret checked once for the three.
    pub fn client(&self, req: &HttpRequest) -> Client {
        let from_node = self.from_node(req);
        // Whether the peer may tell the client's scheme and host.
        let speaks = from_node
            || req
                .peer_addr()
                .is_some_and(|a| is_trusted(&a.ip(), self.proxies));
        let told = |name: &str| speaks.then(|| header(req, name)).flatten();
        Client {
            addr: self.client_addr_as(req, from_node),
            // What a peer that speaks for the client says, else what the
            // request itself shows.
            proto: match told("x-forwarded-proto") {
                Some("https") => "https",
                _ => "http",
            },
            host: told("x-forwarded-host")
                .or_else(|| header(req, "host"))
                .map(str::to_owned),
        }
    }

    /// [`Trust::client_addr`], knowing whether a node forwarded `req`.
    fn client_addr_as(&self, req: &HttpRequest, from_node: bool) -> Option<ClientAddr> {
        let peer = req.peer_addr().map(|a| a.ip())?;
        if !from_node && !is_trusted(&peer, self.proxies) {
            return Some(ClientAddr::Ip(peer));
        }
        // A value that is not text is one entry that does not parse.
        let values: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .map(|v| v.to_str().unwrap_or("unknown"))
            .collect();
        let found = match from_node {
            true => forwarded_for::last(values.into_iter()),
            false => forwarded_for::client(values.into_iter(), |ip| is_trusted(ip, self.proxies)),
        };
        Some(found.unwrap_or(ClientAddr::Ip(peer)))
    }
}

/// The client behind a request, as [`Trust::client`] resolved it.
pub struct Client {
    pub addr: Option<ClientAddr>,
    /// `http` or `https`.
    pub proto: &'static str,
    pub host: Option<String>,
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name)?.to_str().ok()
}
