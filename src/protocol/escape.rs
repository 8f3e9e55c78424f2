//! SockJS JSON string encoding.
//!
//! Plain JSON is not enough: browsers and proxies mangle some code points
//! inside XHR and EventSource bodies, so SockJS 0.3.3 requires the server to
//! send them as `\uXXXX` escapes (lowercase hex, as `JSON.stringify` writes).

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

/// Appends `s` as a quoted JSON string literal with SockJS escaping.
pub fn push_json_string(out: &mut String, s: &str, ctx: Context) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ => None,
        };
        let needs_u = short.is_none()
            && ((c as u32) < 0x20 || server_must_escape(c) || (c == '<' && ctx == Context::Html));
        if short.is_none() && !needs_u {
            continue;
        }
        out.push_str(&s[start..i]);
        match short {
            Some(esc) => out.push_str(esc),
            None => push_u_escape(out, c as u32),
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
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
