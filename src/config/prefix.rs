//! Which service prefixes can be routed.
//!
//! A prefix is one or more path segments, `/echo` or `/rt/echo`. The root
//! (`/`) is not a valid mount: `/healthz`, `/readyz`, the client script and
//! the demo pages live there, and SockJS's `/info` and
//! `/{server}/{session}/...` URLs would shadow or be shadowed by them. To
//! serve SockJS at a site's root, let the proxy in front map it to a prefix.

/// Root URLs the gateway itself answers; no prefix may start with them.
pub const RESERVED: [&str; 3] = ["/healthz", "/readyz", "/sockjs-client"];

/// Why `prefix` cannot be routed, if it cannot.
pub fn check(prefix: &str) -> Result<(), String> {
    if prefix == "/" || prefix.is_empty() {
        return Err(format!(
            "{prefix:?} cannot be mounted: the root holds /healthz, /readyz and the \
             static pages; use a prefix such as \"/echo\" (a proxy in front can map \
             any public path to it)"
        ));
    }
    let Some(path) = prefix.strip_prefix('/') else {
        return Err(format!("must start with '/', got {prefix:?}"));
    };
    if path.ends_with('/') {
        return Err(format!("must not end with '/', got {prefix:?}"));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(format!("has an empty segment (\"//\"), got {prefix:?}"));
        }
        if segment == "." || segment == ".." {
            return Err(format!(
                "has a {segment:?} segment, which clients resolve away, got {prefix:?}"
            ));
        }
        // RFC 3986 unreserved characters only: nothing that needs
        // percent-encoding or ends the path (space, '?', '#', '%').
        if let Some(bad) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
        {
            return Err(format!(
                "may hold only letters, digits, '-', '.', '_', '~' and '/'; \
                 found {bad:?} in {prefix:?}"
            ));
        }
    }
    if let Some(reserved) = RESERVED.iter().find(|r| contains(r, prefix)) {
        return Err(format!(
            "{prefix:?} would hide the gateway's own {reserved} URL"
        ));
    }
    Ok(())
}

/// Whether `outer` is `inner` or one of its parent paths: `/a` contains
/// `/a` and `/a/b`, not `/ab`. Two services one of which contains the other
/// cannot both be reached.
pub fn contains(outer: &str, inner: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routable_prefixes() {
        for ok in ["/echo", "/a/b", "/v1.2/x-y_z~", "/A9"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn unroutable_prefixes_say_why() {
        for (bad, why) in [
            ("/", "root"),
            ("", "root"),
            ("echo", "start with '/'"),
            ("/echo/", "end with '/'"),
            ("/a//b", "empty segment"),
            ("/a/../b", "\"..\" segment"),
            ("/my echo", "' '"),
            ("/echo?x=1", "'?'"),
            ("/echo#x", "'#'"),
            ("/ech%6f", "'%'"),
            ("/healthz", "/healthz"),
            ("/sockjs-client/x", "/sockjs-client"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(check("/healthzz"), Ok(()));
    }

    #[test]
    fn containment_is_by_segment() {
        assert!(contains("/a", "/a"));
        assert!(contains("/a", "/a/b"));
        assert!(!contains("/a", "/ab"));
        assert!(!contains("/a/b", "/a"));
    }
}
