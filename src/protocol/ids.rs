//! Validation of the client-chosen parts of URLs: server and session ids and
//! JSONP/htmlfile callback names.

/// Longest server or session id accepted; longer ones are refused with 404 so
/// that a client cannot make the registry hold arbitrarily long keys.
pub const MAX_ID_LEN: usize = 128;

/// SockJS accepts any non-empty id without a dot (`/a./a` is a 404).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.contains('.') && !id.contains('/')
}

/// Longest callback name accepted (sockjs-client uses about a dozen chars).
pub const MAX_CALLBACK_LEN: usize = 64;

/// Callback names are echoed into JavaScript and HTML, so only identifier
/// characters and dots are allowed: no quotes, brackets, spaces, or `-`.
pub fn is_valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= MAX_CALLBACK_LEN
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// `N` random bytes in hex (`2N` characters): secrets, keys and epochs
/// made at start.
pub fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["000", "a", "_", "abcdefgh_i-j ", "x%20"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "a.", ".", "a/b"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
        assert!(is_valid_id(&"a".repeat(MAX_ID_LEN)));
        assert!(!is_valid_id(&"a".repeat(MAX_ID_LEN + 1)));
    }

    #[test]
    fn callbacks() {
        for ok in ["callback", "_jp.a1b2c3", "x", "A_9"] {
            assert!(is_valid_callback(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "*",
            "abc(",
            "a-b",
            "a\"b",
            "a<b",
            "x;alert(1)//",
            "ą",
        ] {
            assert!(!is_valid_callback(bad), "{bad}");
        }
        assert!(!is_valid_callback(&"a".repeat(MAX_CALLBACK_LEN + 1)));
    }
}
