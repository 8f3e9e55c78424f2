//! SockJS JSON string encoding.
//!
//! Plain JSON is not enough: browsers and proxies mangle some code points
//! inside XHR and EventSource bodies, so SockJS 0.3.3 requires the server to
//! send them as `\uXXXX` escapes (lowercase hex, as `JSON.stringify` writes).

use super::scan;

/// Code points the server must escape beyond what JSON itself requires.
fn server_must_escape(c: char) -> bool {
    matches!(c,
        '\u{200c}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}'
        | '\u{2060}'..='\u{206f}'
        | '\u{fff0}'..='\u{ffff}')
}

/// How far `<` must be escaped: inside an HTML page a frame containing
/// `</script>` would end the script element early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// JSON or JavaScript delivered as its own resource.
    Script,
    /// JavaScript embedded in an HTML `<script>` element (htmlfile).
    Html,
}

/// The escape for `c`, if it needs one: a short JSON escape, or `None`
/// inside `Some` for a `\uXXXX` escape.
fn escape_for(c: char, ctx: Context) -> Option<Option<&'static str>> {
    match c {
        '"' => Some(Some("\\\"")),
        '\\' => Some(Some("\\\\")),
        '\n' => Some(Some("\\n")),
        '\r' => Some(Some("\\r")),
        '\t' => Some(Some("\\t")),
        '\u{8}' => Some(Some("\\b")),
        '\u{c}' => Some(Some("\\f")),
        c if (c as u32) < 0x20 || server_must_escape(c) || (c == '<' && ctx == Context::Html) => {
            Some(None)
        }
        _ => None,
    }
}

/// Bytes that may start something to escape: `"`, `\`, controls, `<`, and
/// the lead bytes of the SockJS ranges (U+2000-U+2FFF start with 0xE2,
/// U+F000-U+FFFF with 0xEF). Everything else is copied in runs.
const fn may_need_escape(b: u8) -> bool {
    b < 0x20 || matches!(b, b'"' | b'\\' | b'<' | 0xe2 | 0xef)
}

static MAY_NEED_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = may_need_escape(i as u8);
        i += 1;
    }
    t
};

/// The index of the next flagged byte at or after `i`, or the length.
fn next_flagged(bytes: &[u8], i: usize) -> usize {
    let maybe = |w| {
        (scan::below(w, 0x20)
            | scan::non_ascii(w)
            | scan::equal(w, b'"')
            | scan::equal(w, b'\\')
            | scan::equal(w, b'<'))
            != 0
    };
    scan::find(bytes, i, maybe, |b| MAY_NEED_ESCAPE[b as usize]).unwrap_or(bytes.len())
}

/// Appends `s` as a quoted JSON string literal with SockJS escaping.
pub fn push_json_string(out: &mut String, s: &str, ctx: Context) {
    out.reserve(s.len() + 2);
    out.push('"');
    push_json_escaped(out, s, ctx);
    out.push('"');
}

/// Appends `s` escaped as the inside of a JSON string literal, without the
/// quotes: pieces escaped apart can be joined into one literal.
pub fn push_json_escaped(out: &mut String, s: &str, ctx: Context) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut start = 0;
    let mut i = 0;
    loop {
        i = next_flagged(bytes, i);
        if i == bytes.len() {
            break;
        }
        // `i` is at a char boundary: flagged bytes are ASCII or lead bytes.
        let c = s[i..].chars().next().expect("char at a boundary");
        let Some(esc) = escape_for(c, ctx) else {
            i += c.len_utf8();
            continue;
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(short) => out.push_str(short),
            None => push_u_escape(out, c as u32),
        }
        i += c.len_utf8();
        start = i;
    }
    out.push_str(&s[start..]);
}

/// Convenience form of [`push_json_string`].
pub fn json_string(s: &str, ctx: Context) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s, ctx);
    out
}

fn push_u_escape(out: &mut String, cp: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((cp >> shift) & 0xf) as usize] as char);
    }
}

/// EventSource clients run `decodeURI` on every event, so `%` and the
/// characters that would split an event must be percent-escaped.
pub fn push_eventsource_data(out: &mut String, frame: &str) {
    let mut start = 0;
    for (i, b) in frame.bytes().enumerate() {
        let esc = match b {
            b'%' => "%25",
            b'\r' => "%0D",
            b'\n' => "%0A",
            0 => "%00",
            _ => continue,
        };
        out.push_str(&frame[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&frame[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_quoted_verbatim() {
        assert_eq!(json_string("abc ąę 😀", Context::Script), "\"abc ąę 😀\"");
    }

    #[test]
    fn json_specials_use_short_escapes() {
        assert_eq!(
            json_string("\"\\\n\r\t\u{8}\u{c}", Context::Script),
            r#""\"\\\n\r\t\b\f""#
        );
    }

    #[test]
    fn other_controls_use_lowercase_u_escapes() {
        assert_eq!(
            json_string("\0\u{1f}", Context::Script),
            r#""\u0000\u001f""#
        );
    }

    #[test]
    fn sockjs_ranges_are_escaped_and_neighbours_are_not() {
        for c in [
            '\u{200c}', '\u{200f}', '\u{2028}', '\u{202f}', '\u{2060}', '\u{206f}', '\u{fff0}',
            '\u{ffff}',
        ] {
            let got = json_string(&c.to_string(), Context::Script);
            assert_eq!(got, format!("\"\\u{:04x}\"", c as u32));
        }
        for c in [
            '\u{200b}',
            '\u{2010}',
            '\u{2030}',
            '\u{205f}',
            '\u{2070}',
            '\u{ffef}',
            '\u{10000}',
        ] {
            let got = json_string(&c.to_string(), Context::Script);
            assert_eq!(got, format!("\"{c}\""));
        }
    }

    #[test]
    fn escaped_output_round_trips_through_a_json_parser() {
        let all: String = (0u32..0x11000).filter_map(char::from_u32).collect();
        let enc = json_string(&all, Context::Html);
        let back: String = serde_json::from_str(&enc).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn the_byte_scan_agrees_with_a_char_by_char_encoding() {
        // Reference: every char decided on its own.
        let reference = |s: &str, ctx| {
            let mut out = String::from('"');
            for c in s.chars() {
                match escape_for(c, ctx) {
                    None => out.push(c),
                    Some(Some(short)) => out.push_str(short),
                    Some(None) => push_u_escape(&mut out, c as u32),
                }
            }
            out.push('"');
            out
        };
        for ctx in [Context::Script, Context::Html] {
            for cp in 0u32..0x11000 {
                let Some(c) = char::from_u32(cp) else {
                    continue;
                };
                let s = format!("a{c}b{c}{c}");
                assert_eq!(json_string(&s, ctx), reference(&s, ctx), "U+{cp:04X}");
            }
            // At every offset within and across 8-byte words.
            for c in [
                '"', '\\', '\0', '\u{1f}', '<', 'é', '\u{2028}', '\u{2027}', '\u{fff0}', '😀',
            ] {
                for pad in 0..17 {
                    let s = format!("{}{c}{}{c}", "x".repeat(pad), "y".repeat(pad % 9));
                    assert_eq!(
                        json_string(&s, ctx),
                        reference(&s, ctx),
                        "{c:?} after {pad}"
                    );
                }
            }
        }
    }

    #[test]
    fn lt_is_escaped_only_for_html() {
        assert_eq!(
            json_string("</script>", Context::Html),
            r#""\u003c/script>""#
        );
        assert_eq!(json_string("</script>", Context::Script), r#""</script>""#);
    }

    #[test]
    fn eventsource_data_escapes_percent_and_line_breaks() {
        let mut out = String::new();
        push_eventsource_data(&mut out, "a[\"100%\"]\r\n\0x");
        assert_eq!(out, "a[\"100%25\"]%0D%0A%00x");
    }
}
