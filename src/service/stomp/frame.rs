//! STOMP 1.0, 1.1 and 1.2 frames as pure functions: a decoder fed the text
//! of SockJS messages, and an encoder.
//!
//! Over SockJS a STOMP frame is text, and one SockJS message may hold
//! several frames, part of one (stompjs `splitLargeFrames`), or bare line
//! ends, which are heart-beats. So the decoder keeps what it has not yet
//! seen the end of, and bounds it: a frame past `max_frame_bytes` or
//! `max_headers` is an error the caller answers with ERROR.
//!
//! Header escaping (`\\`, `\n`, `\c`, and `\r` under 1.2) applies to every
//! frame of a 1.1 or 1.2 session but CONNECT, STOMP and CONNECTED; 1.0 has
//! none. A body is read up to `content-length` bytes (and may then hold
//! NUL), else up to the first NUL.

use std::fmt::Write as _;

/// A negotiated protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V1_0,
    V1_1,
    V1_2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// The highest version both sides speak, from a CONNECT's
    /// `accept-version` (absent: 1.0, as the spec says).
    pub fn negotiate(accept_version: Option<&str>) -> Option<Version> {
        let Some(list) = accept_version else {
            return Some(Version::V1_0);
        };
        list.split(',')
            .filter_map(|v| match v.trim() {
                "1.0" => Some(Version::V1_0),
                "1.1" => Some(Version::V1_1),
                "1.2" => Some(Version::V1_2),
                _ => None,
            })
            .max()
    }
}

/// One frame: a command, headers in the order given, and a body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Frame {
    pub fn new(command: &str) -> Frame {
        Frame {
            command: command.to_owned(),
            ..Frame::default()
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Frame {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Frame {
        self.body = body.into();
        self
    }

    /// The first value of header `name`: STOMP says a repeated header's
    /// first entry counts.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this frame's headers are escaped in `version`.
    fn escaped(command: &str, version: Version) -> bool {
        version >= Version::V1_1 && !matches!(command, "CONNECT" | "STOMP" | "CONNECTED")
    }

    /// The frame on the wire: headers escaped as `version` says, a
    /// `content-length` added for a non-empty body unless one is given,
    /// and the closing NUL.
    pub fn encode(&self, version: Version) -> String {
        let mut out = String::with_capacity(self.command.len() + 32 + self.body.len());
        out.push_str(&self.command);
        out.push('\n');
        let escaped = Frame::escaped(&self.command, version);
        for (name, value) in &self.headers {
            push_header_part(&mut out, name, escaped, version);
            out.push(':');
            push_header_part(&mut out, value, escaped, version);
            out.push('\n');
        }
        if !self.body.is_empty() && self.get("content-length").is_none() {
            let _ = writeln!(out, "content-length:{}", self.body.len());
        }
        out.push('\n');
        out.push_str(&self.body);
        out.push('\0');
        out
    }
}

/// The characters [`push_header_part`] may escape.
const ESCAPED: [char; 4] = ['\\', '\n', ':', '\r'];

/// Whether escaping could change `s` (some version escapes one of its
/// characters).
pub(crate) fn may_escape(s: &str) -> bool {
    s.contains(ESCAPED)
}

/// Appends a header name or value, escaped if `escaped` (as `version` says).
pub(crate) fn push_header_part(out: &mut String, s: &str, escaped: bool, version: Version) {
    if !escaped || !may_escape(s) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            ':' => out.push_str("\\c"),
            '\r' if version == Version::V1_2 => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The commands a client may send.
pub const CLIENT_COMMANDS: &[&str] = &[
    "CONNECT",
    "STOMP",
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
];

/// What the decoder found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Frame(Frame),
    /// A bare line end between frames.
    Heartbeat,
}

/// Why a frame was refused; the text is the ERROR frame's `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits on what one frame may be.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of one frame, from its command to its NUL.
    pub max_frame_bytes: usize,
    /// Header lines in one frame.
    pub max_headers: usize,
}

/// Turns the text of successive SockJS messages into frames.
///
/// The work is linear in the bytes fed, however they are split: where the
/// scan for a frame's end stopped is kept between messages, and header lines
/// are counted while the head is still open, so an endless head of short
/// lines is refused at `max_headers`, not rescanned on every message.
#[derive(Debug)]
pub struct Decoder {
    /// The unfinished frame, from its first byte.
    buf: String,
    state: State,
    limits: Limits,
    version: Version,
    /// Bytes examined so far, for the tests that bound the work.
    work: u64,
}

/// How far the unfinished frame in the buffer has been read.
#[derive(Debug)]
enum State {
    /// Looking for the blank line that ends the head: `scanned` bytes hold
    /// `lines` line ends, none of them the head's end.
    Head { scanned: usize, lines: usize },
    /// The head is read; the body starts at `body_start` and `scanned`
    /// bytes of the frame hold no NUL that ends it.
    Body {
        command: String,
        headers: Vec<(String, String)>,
        body_start: usize,
        length: Option<usize>,
        scanned: usize,
    },
}

const FRESH: State = State::Head {
    scanned: 0,
    lines: 0,
};

impl Decoder {
    /// A decoder for a session that has not negotiated yet (its CONNECT is
    /// never escaped, so the version only matters later).
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            buf: String::new(),
            state: FRESH,
            limits,
            version: Version::V1_0,
            work: 0,
        }
    }

    /// The version agreed at CONNECT: from now on headers are unescaped as
    /// it says.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// Whether part of a frame is waiting for the rest.
    pub fn is_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes the decoder has examined since it was made: at most a small
    /// multiple of the bytes fed, whatever the pieces.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Feeds one SockJS message; returns the frames and heart-beats it
    /// completes, in order. After an error the session is to be closed:
    /// what was buffered is dropped.
    pub fn feed(&mut self, text: &str) -> Result<Vec<Item>, FrameError> {
        self.buf.push_str(text);
        let mut items = Vec::new();
        // Where the unfinished frame starts; state positions count from it.
        let mut at = 0;
        loop {
            match self.step(at) {
                Ok(Some((item, used))) => {
                    items.push(item);
                    at += used;
                    self.state = FRESH;
                }
                Ok(None) => break,
                Err(e) => {
                    self.buf.clear();
                    self.state = FRESH;
                    return Err(e);
                }
            }
        }
        // Whatever follows a completed frame came in this message, so this
        // moves no more than was fed.
        self.buf.drain(..at);
        if self.buf.len() > self.limits.max_frame_bytes {
            self.buf.clear();
            self.state = FRESH;
            return Err(too_large(self.limits));
        }
        Ok(items)
    }

    /// Reads on in the frame at `at`: an item and the bytes it used, or
    /// `None` until more arrives.
    fn step(&mut self, at: usize) -> Result<Option<(Item, usize)>, FrameError> {
        let s = &self.buf[at..];
        if let State::Head { scanned, lines } = &mut self.state {
            if *scanned == 0 {
                if s.starts_with('\n') {
                    return Ok(Some((Item::Heartbeat, 1)));
                }
                if s.starts_with("\r\n") {
                    return Ok(Some((Item::Heartbeat, 2)));
                }
                if s.is_empty() || s == "\r" {
                    return Ok(None);
                }
            }
            let bytes = s.as_bytes();
            let head_end = loop {
                let Some(i) = memchr(b'\n', &bytes[*scanned..]) else {
                    self.work += (bytes.len() - *scanned) as u64;
                    *scanned = bytes.len();
                    return Ok(None);
                };
                let nl = *scanned + i;
                self.work += (i + 1) as u64;
                // The head ends at the first empty line, LF or CRLF; a line
                // end whose next bytes have not arrived is looked at again.
                match &bytes[nl + 1..] {
                    [b'\n', ..] => break (nl, nl + 2),
                    [b'\r', b'\n', ..] => break (nl, nl + 3),
                    [] | [b'\r'] => {
                        *scanned = nl;
                        return Ok(None);
                    }
                    _ => {}
                }
                *lines += 1;
                if *lines == 1 {
                    check_command(line(&s[..nl]))?;
                }
                // Every line after the command is a header line.
                if *lines > self.limits.max_headers {
                    return Err(too_many_headers(self.limits));
                }
                *scanned = nl + 1;
            };
            let (head, body_start) = (&s[..head_end.0], head_end.1);
            self.work += head.len() as u64;
            let (command, headers) = parse_head(head, self.limits, self.version)?;
            if body_start > self.limits.max_frame_bytes {
                return Err(too_large(self.limits));
            }
            let length = content_length(&headers)?;
            if let Some(n) = length {
                if body_start + n + 1 > self.limits.max_frame_bytes {
                    return Err(too_large(self.limits));
                }
            }
            self.state = State::Body {
                command,
                headers,
                body_start,
                length,
                scanned: body_start,
            };
        }
        let State::Body {
            body_start,
            length,
            scanned,
            ..
        } = &mut self.state
        else {
            unreachable!("the head was read above");
        };
        let body_start = *body_start;
        let end = match *length {
            Some(n) => {
                if s.len() < body_start + n + 1 {
                    return Ok(None);
                }
                let rest = &s[body_start..];
                if !rest.is_char_boundary(n) || rest.as_bytes()[n] != 0 {
                    return Err(FrameError(
                        "Body does not end with NUL where content-length says".into(),
                    ));
                }
                self.work += n as u64 + 1;
                body_start + n
            }
            None => match memchr(0, &s.as_bytes()[*scanned..]) {
                Some(i) => {
                    self.work += i as u64 + 1;
                    *scanned + i
                }
                None => {
                    self.work += (s.len() - *scanned) as u64;
                    *scanned = s.len();
                    return Ok(None);
                }
            },
        };
        if end + 1 > self.limits.max_frame_bytes {
            return Err(too_large(self.limits));
        }
        let body = s[body_start..end].to_owned();
        let State::Body {
            command, headers, ..
        } = std::mem::replace(&mut self.state, FRESH)
        else {
            unreachable!("the head was read above");
        };
        let frame = Frame {
            command,
            headers,
            body,
        };
        Ok(Some((Item::Frame(frame), end + 1)))
    }
}

/// The first index of `byte` in `s` (the standard library's search).
fn memchr(byte: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == byte)
}

/// A head line without its CR.
fn line(l: &str) -> &str {
    l.strip_suffix('\r').unwrap_or(l)
}

fn check_command(command: &str) -> Result<(), FrameError> {
    if CLIENT_COMMANDS.contains(&command) {
        Ok(())
    } else {
        Err(FrameError(format!(
            "Unknown command {:?}",
            truncate(command, 40)
        )))
    }
}

fn too_many_headers(limits: Limits) -> FrameError {
    FrameError(format!(
        "Too many headers: more than {} (max_headers)",
        limits.max_headers
    ))
}

fn too_large(limits: Limits) -> FrameError {
    FrameError(format!(
        "Frame too large: more than {} bytes (max_frame_bytes)",
        limits.max_frame_bytes
    ))
}

/// The command and headers of a complete head (without its blank line).
fn parse_head(
    head: &str,
    limits: Limits,
    version: Version,
) -> Result<(String, Vec<(String, String)>), FrameError> {
    let mut lines = head.split('\n').map(line);
    let command = lines.next().unwrap_or_default();
    check_command(command)?;
    let escaped = Frame::escaped(command, version);
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == limits.max_headers {
            return Err(too_many_headers(limits));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(FrameError(format!(
                "Header without a colon: {:?}",
                truncate(line, 40)
            )));
        };
        let name = unescape(name, escaped, version)?;
        let value = unescape(value, escaped, version)?;
        headers.push((name, value));
    }
    Ok((command.to_owned(), headers))
}

/// The first `content-length`, if any.
fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, FrameError> {
    headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| FrameError(format!("Invalid content-length {:?}", truncate(v, 20))))
        })
        .transpose()
}

/// Undoes header escaping; an escape STOMP does not define is an error.
fn unescape(s: &str, escaped: bool, version: Version) -> Result<String, FrameError> {
    if !escaped || !s.contains('\\') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('c') => out.push(':'),
            Some('r') if version == Version::V1_2 => out.push('\r'),
            other => {
                return Err(FrameError(format!(
                    "Undefined escape sequence \\{} in a header",
                    other.map(String::from).unwrap_or_default()
                )))
            }
        }
    }
    Ok(out)
}

/// At most `n` characters of `s`, for an ERROR's message or details.
pub(crate) fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_frame_bytes: 1024,
        max_headers: 8,
    };

    fn frames(items: Vec<Item>) -> Vec<Frame> {
        items
            .into_iter()
            .filter_map(|i| match i {
                Item::Frame(f) => Some(f),
                Item::Heartbeat => None,
            })
            .collect()
    }

    #[test]
    fn negotiates_the_highest_common_version() {
        assert_eq!(Version::negotiate(None), Some(Version::V1_0));
        assert_eq!(Version::negotiate(Some("1.2,1.1,1.0")), Some(Version::V1_2));
        assert_eq!(Version::negotiate(Some("1.0, 1.1")), Some(Version::V1_1));
        assert_eq!(Version::negotiate(Some("2.0")), None);
    }

    #[test]
    fn a_stompjs_connect_decodes() {
        let mut d = Decoder::new(LIMITS);
        let items = d
            .feed("CONNECT\naccept-version:1.2,1.1,1.0\nheart-beat:10000,10000\npasscode:a:b\n\n\0")
            .unwrap();
        let f = &frames(items)[0];
        assert_eq!(f.command, "CONNECT");
        assert_eq!(f.get("heart-beat"), Some("10000,10000"));
        // CONNECT is never escaped: the value keeps its colon.
        assert_eq!(f.get("passcode"), Some("a:b"));
    }

    #[test]
    fn several_frames_and_heartbeats_in_one_message() {
        let mut d = Decoder::new(LIMITS);
        let items = d
            .feed("\nSEND\ndestination:/a\n\nx\0\r\nSUBSCRIBE\nid:1\ndestination:/b\n\n\0\n")
            .unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0], Item::Heartbeat);
        assert_eq!(items[2], Item::Heartbeat);
        assert_eq!(items[4], Item::Heartbeat);
        let f = frames(items);
        assert_eq!((f[0].command.as_str(), f[0].body.as_str()), ("SEND", "x"));
        assert_eq!(f[1].get("destination"), Some("/b"));
    }

    #[test]
    fn a_frame_split_over_messages_waits_for_its_end() {
        let mut d = Decoder::new(LIMITS);
        let whole = "SEND\ndestination:/a\ncontent-length:5\n\nab\0cd\0";
        let (a, b) = whole.split_at(14);
        assert!(d.feed(a).unwrap().is_empty());
        assert!(d.is_partial());
        let (b1, b2) = b.split_at(20);
        assert!(d.feed(b1).unwrap().is_empty());
        let f = frames(d.feed(b2).unwrap());
        // content-length lets the body hold a NUL.
        assert_eq!(f[0].body, "ab\0cd");
        assert!(!d.is_partial());
    }

    #[test]
    fn crlf_line_ends_are_accepted() {
        let mut d = Decoder::new(LIMITS);
        let f = frames(d.feed("SEND\r\ndestination:/a\r\n\r\nhi\0").unwrap());
        assert_eq!(f[0].get("destination"), Some("/a"));
        assert_eq!(f[0].body, "hi");
    }

    #[test]
    fn headers_are_unescaped_after_negotiation() {
        let mut d = Decoder::new(LIMITS);
        d.set_version(Version::V1_2);
        let f = frames(d.feed("SEND\nk\\cey:a\\nb\\\\c\\r\n\n\0").unwrap());
        assert_eq!(
            f[0].headers,
            vec![("k:ey".to_owned(), "a\nb\\c\r".to_owned())]
        );
        // 1.1 has no \r escape; 1.0 no escaping at all.
        d.set_version(Version::V1_1);
        assert!(d.feed("SEND\nk:\\r\n\n\0").is_err());
        d.set_version(Version::V1_0);
        let f = frames(d.feed("SEND\nk:\\r\n\n\0").unwrap());
        assert_eq!(f[0].get("k"), Some("\\r"));
    }

    #[test]
    fn the_first_of_repeated_headers_counts() {
        let f = frames(Decoder::new(LIMITS).feed("SEND\nd:1\nd:2\n\n\0").unwrap());
        assert_eq!(f[0].get("d"), Some("1"));
        assert_eq!(f[0].headers.len(), 2);
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let cases = [
            ("HELLO\n\n\0", "Unknown command"),
            ("SEND\nno colon\n\n\0", "Header without a colon"),
            ("SEND\ncontent-length:x\n\n\0", "Invalid content-length"),
            ("SEND\ncontent-length:1\n\nab\0", "does not end with NUL"),
            ("SEND\nk:\\t\n\n\0", "Undefined escape"),
        ];
        for (text, why) in cases {
            let mut d = Decoder::new(LIMITS);
            d.set_version(Version::V1_2);
            let e = d.feed(text).unwrap_err();
            assert!(e.0.contains(why), "{text:?}: {e}");
            assert!(!d.is_partial());
        }
    }

    #[test]
    fn limits_are_enforced_even_before_a_frame_ends() {
        let mut d = Decoder::new(LIMITS);
        let headers: String = (0..9).map(|i| format!("h{i}:v\n")).collect();
        let e = d.feed(&format!("SEND\n{headers}\n\0")).unwrap_err();
        assert!(e.0.contains("max_headers"), "{e}");
        // An unfinished frame that outgrows the limit is refused at once.
        let mut d = Decoder::new(LIMITS);
        assert!(d
            .feed(&format!("SEND\n\n{}", "x".repeat(1000)))
            .unwrap()
            .is_empty());
        let e = d.feed(&"x".repeat(100)).unwrap_err();
        assert!(e.0.contains("max_frame_bytes"), "{e}");
        // So is a declared length past it.
        let e = Decoder::new(LIMITS)
            .feed("SEND\ncontent-length:5000\n\n")
            .unwrap_err();
        assert!(e.0.contains("max_frame_bytes"), "{e}");
    }

    /// Issue 18's attack: an unfinished head of many short lines, one SockJS
    /// message a line. It is refused at `max_headers`, and even where the
    /// limits let it grow, the work stays linear in the bytes fed.
    #[test]
    fn a_head_fed_a_line_at_a_time_costs_linear_work() {
        let mut d = Decoder::new(LIMITS);
        d.feed("SEND\n").unwrap();
        let e = (0..100)
            .find_map(|_| d.feed("a:b\n").err())
            .expect("refused");
        assert!(e.0.contains("max_headers"), "{e}");
        assert!(!d.is_partial());

        let wide = Limits {
            max_frame_bytes: 1 << 20,
            max_headers: 1 << 20,
        };
        for n in [1_000usize, 32_000] {
            let mut d = Decoder::new(wide);
            assert!(d.feed("SEND\n").unwrap().is_empty());
            let mut fed = 5;
            for _ in 0..n {
                assert!(d.feed("a:b\n").unwrap().is_empty());
                fed += 4;
            }
            // The blank line, then the body too, a byte at a time.
            assert!(d.feed("\n").unwrap().is_empty());
            fed += 1;
            for _ in 0..n {
                assert!(d.feed("x").unwrap().is_empty());
                fed += 1;
            }
            let f = frames(d.feed("\0").unwrap());
            fed += 1;
            assert_eq!((f[0].headers.len(), f[0].body.len()), (n, n));
            assert!(d.work() <= 2 * fed as u64, "{n}: {} for {fed}", d.work());
        }
    }

    #[test]
    fn encoding_escapes_and_measures_the_body() {
        let f = Frame::new("MESSAGE")
            .header("destination", "/topic/a:b")
            .header("subscription", "0")
            .body("héllo\0");
        assert_eq!(
            f.encode(Version::V1_2),
            "MESSAGE\ndestination:/topic/a\\cb\nsubscription:0\ncontent-length:7\n\nhéllo\0\0"
        );
        assert!(f
            .encode(Version::V1_0)
            .starts_with("MESSAGE\ndestination:/topic/a:b\n"));
        let c = Frame::new("CONNECTED").header("server", "a:b");
        assert_eq!(c.encode(Version::V1_2), "CONNECTED\nserver:a:b\n\n\0");
    }
}
