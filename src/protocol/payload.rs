//! Decoding what clients send: a JSON array of strings (HTTP sends and
//! SockJS WebSocket frames) or a single JSON string (WebSocket frames).
//!
//! JavaScript strings may hold lone UTF-16 surrogates, which `JSON.stringify`
//! writes as `"\ud800"`; Rust strings cannot hold them. Such escapes are
//! decoded as U+FFFD REPLACEMENT CHARACTER so the rest of the message, and the
//! session, survive.

use super::scan;
use std::borrow::Cow;

/// The protocol's error texts for bad client payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// Empty body: "Payload expected."
    Empty,
    /// Not a JSON array of strings: "Broken JSON encoding."
    BrokenJson,
}

impl PayloadError {
    pub fn message(self) -> &'static str {
        match self {
            PayloadError::Empty => "Payload expected.",
            PayloadError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Decodes an HTTP send body: a JSON array of strings.
pub fn decode_messages(body: &[u8]) -> Result<Vec<String>, PayloadError> {
    if body.is_empty() {
        return Err(PayloadError::Empty);
    }
    parse_lossy::<Vec<String>>(body)
}

/// The bytes of form field `name` in an `application/x-www-form-urlencoded`
/// body (`jsonp_send`'s `d`), `+` and percent escapes decoded. Unlike
/// `form_urlencoded::parse`, nothing is repaired: a cut UTF-8 sequence
/// stays broken, so [`decode_messages`] refuses it like any broken payload
/// instead of passing on U+FFFD.
pub fn form_field(body: &[u8], name: &str) -> Option<Vec<u8>> {
    let decode = |s: &[u8]| -> Vec<u8> {
        let spaced: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced).collect()
    };
    body.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        (decode(key) == name.as_bytes()).then(|| decode(value))
    })
}

/// Decodes a SockJS WebSocket text frame: an array of strings or a single
/// string. An empty frame carries no messages.
pub fn decode_ws_frame(text: &str) -> Result<WsMessages, PayloadError> {
    if let Some(message) = single_plain_message(text) {
        return Ok(smallvec::smallvec![message.to_owned()]);
    }
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(WsMessages::new());
    }
    if trimmed.starts_with('[') {
        parse_lossy::<Vec<String>>(text.as_bytes()).map(WsMessages::from_vec)
    } else {
        parse_lossy::<String>(text.as_bytes()).map(|s| smallvec::smallvec![s])
    }
}

/// The messages of one WebSocket frame; almost always exactly one, which
/// then needs no allocation of its own.
pub type WsMessages = smallvec::SmallVec<[String; 1]>;

/// The frame sockjs-client sends for one message with nothing escaped in
/// it, `["text"]`: its text, without running a JSON parser. (A JSON string
/// may hold any char unescaped but `"`, `\` and controls below 0x20.)
fn single_plain_message(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("[\"")?.strip_suffix("\"]")?;
    let maybe = |w| (scan::below(w, 0x20) | scan::equal(w, b'"') | scan::equal(w, b'\\')) != 0;
    let special = |b| b < 0x20 || b == b'"' || b == b'\\';
    scan::find(inner.as_bytes(), 0, maybe, special)
        .is_none()
        .then_some(inner)
}

fn parse_lossy<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(_) => match replace_lone_surrogates(body) {
            Cow::Owned(fixed) => {
                serde_json::from_slice(&fixed).map_err(|_| PayloadError::BrokenJson)
            }
            Cow::Borrowed(_) => Err(PayloadError::BrokenJson),
        },
    }
}

fn hex4(b: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// Rewrites `\uD800`-`\uDFFF` escapes that do not form a valid pair into
/// `\ufffd`. Works on JSON text; leaves everything else untouched.
fn replace_lone_surrogates(src: &[u8]) -> Cow<'_, [u8]> {
    let is_high = |n: u16| (0xD800..0xDC00).contains(&n);
    let is_low = |n: u16| (0xDC00..0xE000).contains(&n);
    let escape_at = |j: usize| -> Option<u16> {
        if src.get(j) == Some(&b'\\') && src.get(j + 1) == Some(&b'u') {
            hex4(src.get(j + 2..)?)
        } else {
            None
        }
    };
    // Start offsets of the 6-byte escapes to replace.
    let mut lone = Vec::new();
    let mut in_string = false;
    let mut i = 0;
    while i < src.len() {
        match (in_string, src[i]) {
            (false, b'"') => {
                in_string = true;
                i += 1;
            }
            (false, _) => i += 1,
            (true, b'"') => {
                in_string = false;
                i += 1;
            }
            (true, b'\\') => match escape_at(i) {
                Some(hi) if is_high(hi) && escape_at(i + 6).is_some_and(is_low) => i += 12,
                Some(cp) if is_high(cp) || is_low(cp) => {
                    lone.push(i);
                    i += 6;
                }
                Some(_) => i += 6,
                None => i += 2,
            },
            (true, _) => i += 1,
        }
    }
    if lone.is_empty() {
        return Cow::Borrowed(src);
    }
    let mut out = Vec::with_capacity(src.len());
    let mut copied = 0;
    for at in lone {
        out.extend_from_slice(&src[copied..at]);
        out.extend_from_slice(b"\\ufffd");
        copied = at + 6;
    }
    out.extend_from_slice(&src[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_decode_without_repair() {
        assert_eq!(form_field(b"d=%5B%22x%22%5D", "d").unwrap(), br#"["x"]"#);
        assert_eq!(form_field(b"a=1&d=x+y%2B&d=2", "d").unwrap(), b"x y+");
        assert_eq!(form_field(b"%64=v", "d").unwrap(), b"v");
        assert_eq!(form_field(b"d", "d").unwrap(), b"");
        assert_eq!(form_field(b"p=p", "d"), None);
        // A cut sequence stays cut, and the payload is refused.
        let cut = form_field(b"d=%5B%22%E2%82%22%5D", "d").unwrap();
        assert_eq!(cut, b"[\"\xe2\x82\"]");
        assert_eq!(decode_messages(&cut), Err(PayloadError::BrokenJson));
        let whole = form_field(b"d=%5B%22%E2%82%AC%22%5D", "d").unwrap();
        assert_eq!(
            decode_messages(&whole).unwrap(),
            vec!["\u{20ac}".to_owned()]
        );
    }

    #[test]
    fn arrays_of_strings_decode() {
        assert_eq!(decode_messages(br#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(decode_messages(b"[]").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn the_one_message_shortcut_agrees_with_the_json_parser() {
        for inner in [
            "",
            "plain",
            "ünïcödé 😀",
            "\u{7f}",
            "a\"b",
            "a\\\"b",
            "a\\nb",
            "\\u0041",
            "\\ud800",
            "tab\there",
            "nul\0",
            "a\",\"b",
            "\u{2028}",
        ] {
            let frame = format!("[\"{inner}\"]");
            let parsed = parse_lossy::<Vec<String>>(frame.as_bytes()).map(WsMessages::from_vec);
            assert_eq!(decode_ws_frame(&frame), parsed, "{frame:?}");
        }
        assert_eq!(single_plain_message(r#"["plain"]"#), Some("plain"));
        assert_eq!(single_plain_message(r#"["a\nb"]"#), None);
        assert_eq!(single_plain_message(r#"["a","b"]"#), None);
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(decode_messages(b""), Err(PayloadError::Empty));
        assert_eq!(decode_messages(br#"["x"#), Err(PayloadError::BrokenJson));
        assert_eq!(decode_messages(b"[1]"), Err(PayloadError::BrokenJson));
        assert_eq!(
            decode_messages(br#"{"a":1}"#),
            Err(PayloadError::BrokenJson)
        );
        assert_eq!(PayloadError::Empty.to_string(), "Payload expected.");
        assert_eq!(
            PayloadError::BrokenJson.to_string(),
            "Broken JSON encoding."
        );
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let got = decode_messages(br#"["a\ud800b","\udc00","ok"]"#).unwrap();
        assert_eq!(got, vec!["a\u{fffd}b", "\u{fffd}", "ok"]);
        // A high surrogate followed by a non-low escape.
        let got = decode_messages(br#"["\ud800\u0041"]"#).unwrap();
        assert_eq!(got, vec!["\u{fffd}A"]);
    }

    #[test]
    fn valid_pairs_and_escaped_backslashes_are_kept() {
        let got = decode_messages(br#"["\ud83d\ude00","\\ud800"]"#).unwrap();
        assert_eq!(got, vec!["\u{1f600}", "\\ud800"]);
    }

    #[test]
    fn broken_json_with_a_lone_surrogate_is_still_broken() {
        assert_eq!(
            decode_messages(br#"["\ud800"#),
            Err(PayloadError::BrokenJson)
        );
    }

    #[test]
    fn websocket_frames() {
        let decoded = |text| decode_ws_frame(text).map(|m| m.into_vec());
        assert_eq!(decoded(""), Ok(vec![]));
        assert_eq!(decoded("[]"), Ok(vec![]));
        assert_eq!(decoded(r#""solo""#), Ok(vec!["solo".to_owned()]));
        assert_eq!(
            decoded(r#"["a","b"]"#),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(decode_ws_frame(r#"["a"#), Err(PayloadError::BrokenJson));
        assert_eq!(decode_ws_frame("42"), Err(PayloadError::BrokenJson));
    }
}
