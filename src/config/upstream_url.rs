//! What an `upstream` URL must look like: `ws://` or `wss://`, a host, an
//! optional port and path, nothing else.

/// Why `url` cannot be an upstream, if it cannot.
pub fn check(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| format!("{url:?} must start with ws:// or wss://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if authority.contains('@') {
        return Err(format!(
            "{url:?} carries credentials; forward them with forward_headers instead"
        ));
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a valid URL"));
    }
    let uri: actix_web::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(port) = authority.rsplit_once(':').map(|(_, p)| p) {
        if !authority.ends_with(']') && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{url:?} has a bad port {port:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn good_urls() {
        for ok in [
            "ws://127.0.0.1:9000/socket",
            "wss://backend.example/ws?x=1",
            "ws://[::1]:9000",
            "ws://app",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_urls_say_why() {
        for (bad, why) in [
            ("http://127.0.0.1:9000", "ws://"),
            ("127.0.0.1:9000", "ws://"),
            ("ws://", "no host"),
            ("ws:///path", "no host"),
            ("ws://user:pw@host/", "credentials"),
            ("ws://host:99999/", "bad port"),
            ("ws://host:0/", "bad port"),
            ("ws://host/a b", "not a valid URL"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
