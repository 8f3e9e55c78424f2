//! Property tests (proptest) over the pure functions that read what clients
//! send or write what they receive: the payload decoder, the SockJS escaper
//! and frames, the form decoder, and the id and callback checks. Each runs
//! 256 random cases under `cargo test`; for a longer hunt:
//! `PROPTEST_CASES=200000 cargo test --release --test properties`.
use proptest::prelude::*;
use sockjs_gateway::protocol::escape::{json_string, push_eventsource_data, Context};
use sockjs_gateway::protocol::frame::Frame;
use sockjs_gateway::protocol::ids::{is_valid_callback, is_valid_id, MAX_CALLBACK_LEN, MAX_ID_LEN};
use sockjs_gateway::protocol::payload::{
    decode_messages, decode_ws_frame, form_field, PayloadError,
};
use std::sync::Arc;

/// Strings rich in what escaping and decoding must get right: quotes,
/// backslashes, controls, `<`, the SockJS ranges, astral characters.
fn tricky_string() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("</script>".to_owned()),
        Just("\u{2028}\u{200c}\u{2060}\u{fff0}\u{ffff}".to_owned()),
        Just("\u{0}\u{1f}\n\r\t".to_owned()),
        Just("%0A%".to_owned()),
        Just("😀".to_owned()),
        "[a-z]{0,8}",
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    /// Whatever arrives in a send body, decoding answers; it never panics.
    #[test]
    fn any_body_decodes_or_is_refused(body in prop::collection::vec(any::<u8>(), 0..256)) {
        match decode_messages(&body) {
            Ok(_) => {}
            Err(PayloadError::Empty) => prop_assert!(body.is_empty()),
            Err(PayloadError::BrokenJson) => {}
        }
        if let Ok(text) = std::str::from_utf8(&body) {
            let _ = decode_ws_frame(text);
        }
    }

    /// What a client's JSON.stringify writes comes back unchanged, through
    /// the HTTP decoder and the WebSocket one (arrays and single strings).
    #[test]
    fn encoded_messages_decode_to_themselves(msgs in prop::collection::vec(tricky_string(), 0..6)) {
        let json = serde_json::to_string(&msgs).unwrap();
        prop_assert_eq!(&decode_messages(json.as_bytes()).unwrap(), &msgs);
        prop_assert_eq!(decode_ws_frame(&json).unwrap().to_vec(), msgs.clone());
        if let Some(first) = msgs.first() {
            let single = serde_json::to_string(first).unwrap();
            prop_assert_eq!(decode_ws_frame(&single).unwrap().to_vec(), vec![first.clone()]);
        }
    }

    /// JavaScript strings are UTF-16 and may hold lone surrogates; written
    /// as `\uXXXX` escapes they decode as `from_utf16_lossy` would, never as
    /// an error.
    #[test]
    fn any_utf16_escapes_decode_lossily(units in prop::collection::vec(any::<u16>(), 0..16)) {
        let escaped: String = units.iter().map(|u| format!("\\u{u:04x}")).collect();
        let body = format!("[\"{escaped}\"]");
        let decoded = decode_messages(body.as_bytes()).unwrap();
        prop_assert_eq!(decoded, vec![String::from_utf16_lossy(&units)]);
    }

    /// The escaper writes a JSON string that parses back to the input, with
    /// none of the code points SockJS says to escape left raw (nor `<` in
    /// an HTML page, nor a control character).
    #[test]
    fn escaped_strings_parse_back(s in tricky_string(), html in any::<bool>()) {
        let ctx = if html { Context::Html } else { Context::Script };
        let out = json_string(&s, ctx);
        prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        for c in out.chars() {
            let must = matches!(c, '\u{200c}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
                | '\u{2060}'..='\u{206f}' | '\u{fff0}'..='\u{ffff}');
            prop_assert!(!must && (c as u32) >= 0x20, "raw {:?} in {}", c, out);
            prop_assert!(!(html && c == '<'), "raw < in {}", out);
        }
    }

    /// An `a` frame is `a` and a JSON array of the messages.
    #[test]
    fn message_frames_carry_the_messages(msgs in prop::collection::vec(tricky_string(), 1..6)) {
        let shared: Vec<Arc<str>> = msgs.iter().map(|m| Arc::from(m.as_str())).collect();
        let frame = Frame::Messages(&shared).encode();
        prop_assert!(frame.starts_with('a'));
        prop_assert_eq!(serde_json::from_str::<Vec<String>>(&frame[1..]).unwrap(), msgs);
    }

    /// EventSource data holds no line break or NUL, and the client's
    /// decodeURI gives the frame back.
    #[test]
    fn eventsource_data_survives_decode_uri(s in tricky_string()) {
        let mut out = String::new();
        push_eventsource_data(&mut out, &s);
        prop_assert!(!out.contains(['\r', '\n', '\0']));
        let decoded = out.replace("%0D", "\r").replace("%0A", "\n").replace("%00", "\0");
        prop_assert_eq!(decoded.replace("%25", "%"), s);
    }

    /// A form field's bytes come back exactly, however they were encoded,
    /// UTF-8 or not.
    #[test]
    fn form_fields_decode_to_their_bytes(
        value in prop::collection::vec(any::<u8>(), 0..64),
        other in "[a-z]{1,4}",
        plus in any::<bool>(),
    ) {
        let encoded: String = value
            .iter()
            .map(|&b| match b {
                b' ' if plus => "+".to_owned(),
                b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = format!("{other}x=1&d={encoded}&d=second");
        prop_assert_eq!(form_field(body.as_bytes(), "d").unwrap(), value);
    }

    /// Ids: what the protocol allows, bounded; callbacks: only characters
    /// that cannot leave a JavaScript call or an HTML attribute.
    #[test]
    fn ids_and_callbacks_are_what_the_rules_say(s in ".{0,140}") {
        let id_rule = !s.is_empty() && s.len() <= MAX_ID_LEN && !s.contains(['.', '/']);
        prop_assert_eq!(is_valid_id(&s), id_rule);
        let cb_rule = !s.is_empty()
            && s.len() <= MAX_CALLBACK_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        prop_assert_eq!(is_valid_callback(&s), cb_rule);
    }
}
