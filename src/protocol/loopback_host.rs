//! Whether a `Host` header names this machine: `localhost` or a name under
//! `.localhost`, or a loopback address, with or without a port. The demo
//! endpoints answer only such requests, so a page on a foreign name that
//! resolves to 127.0.0.1 (DNS rebinding) gets nothing from them.

use std::net::{IpAddr, Ipv6Addr};

pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        Some(rest) => {
            let Some((addr, after)) = rest.split_once(']') else {
                return false;
            };
            if !(after.is_empty() || port(after.strip_prefix(':'))) {
                return false;
            }
            return addr.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
        }
        None => match host.rsplit_once(':') {
            Some((name, p)) if port(Some(p)) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    name == "localhost" || (name.ends_with(".localhost") && name.len() > ".localhost".len())
}

fn port(p: Option<&str>) -> bool {
    p.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_names_and_addresses_with_or_without_a_port() {
        for h in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.1.2.3:8080",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn anything_else_is_not() {
        for h in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            ".localhost",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "[::2]:80",
            "[::1",
            "[::1]x",
            "::1",
            "localhost:",
            "localhost:80:80",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
