//! Property tests (proptest) over the pure functions that read what clients
//! send or write what they receive: the payload decoder, the SockJS escaper
//! and frames, the form decoder, the id and callback checks, and the STOMP
//! frame codec. Each runs
//! 256 random cases under `cargo test`; for a longer hunt:
//! `PROPTEST_CASES=200000 cargo test --release --test properties`.
use proptest::prelude::*;
use sockjs_gateway::protocol::escape::{json_string, push_eventsource_data, Context};
use sockjs_gateway::protocol::frame::Frame;
use sockjs_gateway::protocol::ids::{is_valid_callback, is_valid_id, MAX_CALLBACK_LEN, MAX_ID_LEN};
use sockjs_gateway::protocol::message::{Message, Tail};
use sockjs_gateway::protocol::payload::{
    decode_messages, decode_ws_frame, form_field, PayloadError,
};
use sockjs_gateway::service::stomp::frame::{
    Decoder, Frame as StompFrame, Item, Limits, Version, CLIENT_COMMANDS,
};

const STOMP_LIMITS: Limits = Limits {
    max_frame_bytes: 1 << 20,
    max_headers: 64,
};

/// A client frame whose headers survive `version`'s rules: under 1.2
/// anything escapes; 1.0 and 1.1 cannot carry a line end in a header (nor
/// a colon in a name), and CONNECT is never escaped.
fn stomp_frame(version: Version) -> impl Strategy<Value = StompFrame> {
    let command = prop::sample::select(CLIENT_COMMANDS.to_vec());
    let headers = prop::collection::vec((tricky_string(), tricky_string()), 0..6);
    (command, headers, tricky_string()).prop_map(move |(command, headers, body)| {
        let escaped = version >= Version::V1_1 && !matches!(command, "CONNECT" | "STOMP");
        let keep = |c: char, name: bool| match (escaped, version) {
            (true, Version::V1_2) => true,
            (true, _) => c != '\r',
            (false, _) => c != '\n' && c != '\r' && !(name && c == ':'),
        };
        let clean =
            |s: &str, name: bool| -> String { s.chars().filter(|&c| keep(c, name)).collect() };
        let headers = headers
            .iter()
            .map(|(n, v)| (format!("h{}", clean(n, true)), clean(v, false)))
            .collect();
        StompFrame {
            command: command.to_owned(),
            headers,
            body,
        }
    })
}

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2])
}

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
        let shared: Vec<Message> = msgs.iter().map(|m| Message::from(m.as_str())).collect();
        let frame = Frame::Messages(&shared).encode();
        prop_assert!(frame.starts_with('a'));
        prop_assert_eq!(serde_json::from_str::<Vec<String>>(&frame[1..]).unwrap(), msgs);
    }

    /// A fan-out's message (a head, then a tail escaped once for every
    /// copy) is framed exactly as the same text in one piece.
    #[test]
    fn joined_messages_frame_as_their_whole_text(text in tricky_string(), cut in any::<prop::sample::Index>()) {
        let cuts: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
        let at = cuts[cut.index(cuts.len())];
        let joined = Message::Joined { head: text[..at].into(), tail: Tail::new(&text[at..]) };
        let whole = Message::from(text.as_str());
        prop_assert_eq!(
            Frame::Messages(std::slice::from_ref(&joined)).encode(),
            Frame::Messages(&[whole]).encode()
        );
        prop_assert_eq!(joined.text(), text.as_str());
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

    /// Anything fed to the STOMP decoder, in any pieces, ends in frames,
    /// heart-beats, a wait for more, or a refusal; never a panic.
    #[test]
    fn any_stomp_input_decodes_or_is_refused(
        pieces in prop::collection::vec(
            prop_oneof![tricky_string(), "(SEND|CONNECT|SUBSCRIBE)\n[a-z:\\\\]{0,12}\n\n[a-z]{0,4}\u{0}"],
            0..6,
        ),
        v in version(),
    ) {
        let mut d = Decoder::new(Limits { max_frame_bytes: 256, max_headers: 4 });
        d.set_version(v);
        for p in &pieces {
            if d.feed(p).is_err() {
                break;
            }
        }
    }

    /// A frame encoded for a version decodes back to itself (plus the
    /// `content-length` the encoder adds), however the text is split into
    /// SockJS messages, with heart-beats around it.
    #[test]
    fn stomp_frames_round_trip_in_any_pieces(
        (v, frame) in version().prop_flat_map(|v| (Just(v), stomp_frame(v))),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let text = format!("\n{}\r\n", frame.encode(v));
        let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
        bounds.push(0);
        bounds.push(text.len());
        bounds.retain(|&b| text.is_char_boundary(b));
        bounds.sort_unstable();
        bounds.dedup();
        let mut d = Decoder::new(STOMP_LIMITS);
        d.set_version(v);
        let mut items = Vec::new();
        for w in bounds.windows(2) {
            items.extend(d.feed(&text[w[0]..w[1]]).unwrap());
        }
        let mut want = frame.clone();
        if !frame.body.is_empty() {
            want.headers.push(("content-length".into(), frame.body.len().to_string()));
        }
        prop_assert_eq!(items, vec![Item::Heartbeat, Item::Frame(want), Item::Heartbeat]);
        prop_assert!(!d.is_partial());
    }

    /// The decoder's work is linear in what it is fed, however the input is
    /// cut into SockJS messages, and the cut changes nothing: packed into
    /// one message or split into pieces, the same items come out (until
    /// the first refusal). Issue 18's case is in the inputs: heads of many
    /// short lines, with the header limit lifted so they grow.
    #[test]
    fn stomp_decoding_is_linear_and_cut_blind(
        parts in prop::collection::vec(
            prop_oneof![
                tricky_string(),
                Just("SEND\n".to_owned()),
                (1usize..400).prop_map(|n| "a:b\n".repeat(n)),
                (1usize..400).prop_map(|n| "\n".repeat(n)),
                Just("\n\0".to_owned()),
                "(SEND|SUBSCRIBE)\n[a-z:]{0,12}\n\n[a-z\n]{0,40}\u{0}",
            ],
            0..12,
        ),
        step in 1usize..64,
        v in version(),
        lifted in any::<bool>(),
    ) {
        let text: String = parts.concat();
        let limits = Limits {
            max_frame_bytes: 1 << 20,
            max_headers: if lifted { 1 << 20 } else { 8 },
        };
        let decode = |pieces: &mut dyn Iterator<Item = &str>| {
            let mut d = Decoder::new(limits);
            d.set_version(v);
            let (mut items, mut fed, mut feeds, mut refused) = (Vec::new(), 0u64, 0u64, None);
            for p in pieces {
                fed += p.len() as u64;
                feeds += 1;
                match d.feed(p) {
                    Ok(got) => items.extend(got),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            prop_assert!(d.work() <= 3 * fed + 2 * feeds, "{} for {fed} bytes in {feeds}", d.work());
            Ok((items, refused))
        };
        let mut bounds = vec![0];
        while *bounds.last().unwrap() < text.len() {
            let mut next = (bounds.last().unwrap() + step).min(text.len());
            while !text.is_char_boundary(next) {
                next += 1;
            }
            bounds.push(next);
        }
        let (split, split_refused) =
            decode(&mut bounds.windows(2).map(|w| &text[w[0]..w[1]]))?;
        let (packed, packed_refused) = decode(&mut std::iter::once(text.as_str()))?;
        // A refusal may come earlier in pieces (a frame too large is seen
        // before its end); whatever came out before it is the same.
        match (&split_refused, &packed_refused) {
            (None, None) => prop_assert_eq!(&split, &packed),
            _ => prop_assert!(packed.starts_with(&split) || split.starts_with(&packed)),
        }
        prop_assert_eq!(split_refused.is_some(), packed_refused.is_some());
    }
}
