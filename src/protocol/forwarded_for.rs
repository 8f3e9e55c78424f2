//! `X-Forwarded-For` as a gateway behind proxies must read it: the client
//! is the rightmost entry that is not a trusted proxy, whatever that entry
//! looks like. An entry that does not parse is the address "unknown", never
//! a reason to step further left, where the client wrote what it liked.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A client's address as the gateway believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    Ip(IpAddr),
    /// A proxy's entry that is no address (`unknown`, `v6%zone`, an
    /// obfuscated name): one address for the limits, never trusted.
    Unknown,
}

impl ClientAddr {
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            ClientAddr::Ip(ip) => Some(ip),
            ClientAddr::Unknown => None,
        }
    }

    /// The address the per-address limits count under: "unknown" counts as
    /// `::`, which no TCP peer can be.
    pub fn limit_key(self) -> IpAddr {
        self.ip().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAddr::Ip(ip) => ip.fmt(f),
            ClientAddr::Unknown => f.write_str("unknown"),
        }
    }
}

/// One entry: an address, `IPv4:port`, `[IPv6]` or `[IPv6]:port`; anything
/// else is unknown.
pub fn entry(text: &str) -> ClientAddr {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return ClientAddr::Ip(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return ClientAddr::Ip(addr.ip());
    }
    match text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .map(str::parse::<Ipv6Addr>)
    {
        Some(Ok(ip)) => ClientAddr::Ip(IpAddr::V6(ip)),
        _ => ClientAddr::Unknown,
    }
}

/// The client behind `values` (the header's values in order, each a
/// comma-separated list): the rightmost entry that `trusted` does not
/// vouch for, or `None` if every entry is a trusted proxy (or there are
/// none).
pub fn client<'a>(
    values: impl DoubleEndedIterator<Item = &'a str>,
    trusted: impl Fn(&IpAddr) -> bool,
) -> Option<ClientAddr> {
    values
        .rev()
        .flat_map(|v| v.rsplit(','))
        .map(entry)
        .find(|e| !e.ip().is_some_and(|ip| trusted(&ip)))
}

/// The last entry of `values`, as another node writes the one address it
/// resolved.
pub fn last<'a>(values: impl DoubleEndedIterator<Item = &'a str>) -> Option<ClientAddr> {
    values.rev().flat_map(|v| v.rsplit(',')).map(entry).next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_with_ports_brackets_or_nothing_to_parse() {
        let ip = |s: &str| ClientAddr::Ip(s.parse().unwrap());
        assert_eq!(entry(" 203.0.113.7 "), ip("203.0.113.7"));
        assert_eq!(entry("203.0.113.7:51234"), ip("203.0.113.7"));
        assert_eq!(entry("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(entry("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(entry("[2001:db8::1]:443"), ip("2001:db8::1"));
        for junk in [
            "unknown",
            "fe80::1%eth0",
            "",
            "_hidden",
            "[1.2.3.4]",
            "1.2.3.4:x",
        ] {
            assert_eq!(entry(junk), ClientAddr::Unknown, "{junk:?}");
        }
        assert_eq!(ClientAddr::Unknown.to_string(), "unknown");
    }

    #[test]
    fn an_entry_that_does_not_parse_stops_the_walk() {
        let trusted = |ip: &IpAddr| ip.is_loopback();
        let found = |v: &[&str]| client(v.iter().copied(), trusted);
        assert_eq!(
            found(&["198.51.100.1, 203.0.113.7:5000"]),
            Some(ClientAddr::Ip("203.0.113.7".parse().unwrap()))
        );
        assert_eq!(
            found(&["198.51.100.1", "unknown, 127.0.0.1"]),
            Some(ClientAddr::Unknown)
        );
        assert_eq!(found(&["127.0.0.1", "127.0.0.2"]), None);
        assert_eq!(found(&[]), None);
    }

    /// What an entry may look like: an address as a proxy writes it, with
    /// a port or brackets, or junk.
    fn an_entry() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(b, p)| format!("{}:{p}", std::net::Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| Ipv6Addr::from(b).to_string()),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(b, p)| format!("[{}]:{p}", Ipv6Addr::from(b))),
            Just("127.0.0.1".to_owned()),
            Just("unknown".to_owned()),
            "[a-z%:._\\[\\] -]{1,12}",
        ]
    }

    proptest! {
        /// The client is the rightmost entry that is no trusted proxy: every
        /// entry to its right is trusted, and nothing to its left counts.
        #[test]
        fn the_client_is_the_rightmost_untrusted_entry(
            entries in proptest::collection::vec(an_entry(), 0..8),
            split in 0usize..8,
            trusted_v4 in any::<bool>(),
        ) {
            let trusted = |ip: &IpAddr| ip.is_loopback() || (trusted_v4 && ip.is_ipv4());
            // The same entries split over one or two header values.
            let split = split.min(entries.len());
            let (a, b) = entries.split_at(split);
            let values = [a.join(","), b.join(",")];
            let values: Vec<&str> = values.iter().map(String::as_str).filter(|v| !v.is_empty()).collect();
            let found = client(values.iter().copied(), trusted);
            let parsed: Vec<ClientAddr> = entries.iter().flat_map(|e| e.split(',')).map(entry).collect();
            let vouched = |e: &ClientAddr| e.ip().is_some_and(|ip| trusted(&ip));
            match found {
                None => prop_assert!(parsed.iter().all(vouched)),
                Some(c) => {
                    let at = parsed.iter().rposition(|e| !vouched(e)).unwrap();
                    prop_assert_eq!(c, parsed[at]);
                    prop_assert!(parsed[at + 1..].iter().all(vouched));
                }
            }
            // A client-written prefix never changes the answer once a
            // proxy's untrusted entry stands to its right.
            let mut forged = vec!["198.51.100.66"];
            forged.extend(values.iter().copied());
            if found.is_some() {
                prop_assert_eq!(client(forged.into_iter(), trusted), found);
            }
        }
    }
}
