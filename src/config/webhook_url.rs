//! What a webhook URL (`app_webhook`, `[auth] connect_webhook`) must look
//! like: `http://` or `https://`, a host, no credentials.

/// Why `url` cannot be a webhook, if it cannot.
pub fn check(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    // URLs are shown in errors; a secret in one would be too.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the URL carries credentials; keep the webhook on a private address instead".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn http_urls_with_a_host_and_no_credentials() {
        for ok in [
            "http://127.0.0.1:9000/stomp",
            "https://backend.internal/hooks/app",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ws://x/y",
            "127.0.0.1:9000",
            "http://",
            "http://user:pw@host/x",
            "ftp://h/x",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(!check("http://user:hunter2@host/x")
            .unwrap_err()
            .contains("hunter2"));
    }
}
