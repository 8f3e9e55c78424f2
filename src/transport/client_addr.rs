//! The client's address as the gateway believes it: the peer, or what a
//! trusted proxy (`trusted_proxies`) says in `X-Forwarded-For`.

use actix_web::HttpRequest;
use std::net::IpAddr;

pub fn is_trusted(ip: &IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// The client's address: the peer, unless the peer is a trusted proxy; then
/// the rightmost `X-Forwarded-For` entry that is not a trusted proxy (entries
/// further left were written by the client and could be anything).
pub fn client_addr(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    if !is_trusted(&peer, trusted) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip, trusted))
            .unwrap_or(peer),
    )
}
