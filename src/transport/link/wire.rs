//! The frames on a link between two nodes. A WebSocket binary message holds
//! one or more frames, each behind its length (u32), so that whatever is
//! ready for the other node leaves in one message; frames are written
//! straight into the link's outgoing [`Batch`]. Every frame starts with its
//! kind (one byte) and the request it belongs to (a u64 the forwarding node
//! chose); numbers are big-endian. Decoding slices the received message, so
//! bodies are not copied on the way in.
//!
//! - `Request`: method, path and query, headers, body (the rest).
//! - `Head`: status and headers of the owner's answer.
//! - `Chunk`: a piece of the answer's body (the rest).
//! - `End`: the answer is complete.
//! - `Cancel`: the forwarding node's client went away.
//! - `Credit`: the forwarding node passed on this many more body bytes,
//!   so the owner may send as many more (a stream to a slow client waits
//!   in its session, not in the link).

use bytes::{Buf, BufMut, Bytes, BytesMut};

const REQUEST: u8 = 1;
const HEAD: u8 = 2;
const CHUNK: u8 = 3;
const END: u8 = 4;
const CANCEL: u8 = 5;
const CREDIT: u8 = 6;

/// A header as it travels: name and value, each at most 64 KiB.
pub type Header = (Bytes, Bytes);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Request {
        id: u64,
        method: Bytes,
        path: Bytes,
        headers: Vec<Header>,
        body: Bytes,
    },
    Head {
        id: u64,
        status: u16,
        headers: Vec<Header>,
    },
    Chunk {
        id: u64,
        data: Bytes,
    },
    End {
        id: u64,
    },
    Cancel {
        id: u64,
    },
    Credit {
        id: u64,
        bytes: u32,
    },
}

/// Why a frame could not be read: the peer is not a node of this version.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

impl Frame {
    fn decode(mut b: Bytes) -> Result<Frame, Malformed> {
        if b.remaining() < 9 {
            return Err(Malformed);
        }
        let kind = b.get_u8();
        let id = b.get_u64();
        Ok(match kind {
            REQUEST => {
                let method = take(&mut b, 1)?;
                let path = take(&mut b, 2)?;
                let headers = take_headers(&mut b)?;
                Frame::Request {
                    id,
                    method,
                    path,
                    headers,
                    body: b,
                }
            }
            HEAD => {
                if b.remaining() < 2 {
                    return Err(Malformed);
                }
                let status = b.get_u16();
                let headers = take_headers(&mut b)?;
                if b.has_remaining() {
                    return Err(Malformed);
                }
                Frame::Head {
                    id,
                    status,
                    headers,
                }
            }
            CHUNK => Frame::Chunk { id, data: b },
            END if !b.has_remaining() => Frame::End { id },
            CANCEL if !b.has_remaining() => Frame::Cancel { id },
            CREDIT if b.remaining() == 4 => Frame::Credit {
                id,
                bytes: b.get_u32(),
            },
            _ => return Err(Malformed),
        })
    }
}

/// The frames of one received message, in order.
pub fn frames(mut message: Bytes) -> impl Iterator<Item = Result<Frame, Malformed>> {
    std::iter::from_fn(move || {
        if !message.has_remaining() {
            return None;
        }
        let len = if message.remaining() >= 4 {
            message.get_u32() as usize
        } else {
            usize::MAX
        };
        if message.remaining() < len {
            message.clear();
            return Some(Err(Malformed));
        }
        Some(Frame::decode(message.split_to(len)))
    })
}

/// Frames waiting to leave, as one message's bytes.
#[derive(Debug, Default)]
pub struct Batch {
    buf: BytesMut,
    /// Where the length of the frame being written goes.
    open_at: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The frames written so far, oldest first, as one message of at most
    /// `max` bytes (or one frame, if the first alone is larger); the rest
    /// stay for the next.
    pub fn take(&mut self, max: usize) -> Bytes {
        let mut end = 0;
        while end + 4 <= self.buf.len() {
            let len = u32::from_be_bytes(self.buf[end..end + 4].try_into().expect("4 bytes"));
            let next = end + 4 + len as usize;
            if end > 0 && next > max {
                break;
            }
            end = next;
        }
        self.buf.split_to(end).freeze()
    }

    fn open(&mut self, kind: u8, id: u64, room: usize) -> &mut BytesMut {
        self.buf.reserve(4 + 9 + room);
        self.open_at = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_u8(kind);
        self.buf.put_u64(id);
        &mut self.buf
    }

    fn close(&mut self) {
        let len = (self.buf.len() - self.open_at - 4) as u32;
        self.buf[self.open_at..self.open_at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn bare(&mut self, kind: u8, id: u64) {
        self.open(kind, id, 0);
        self.close();
    }

    /// Appends a `Request` frame written straight from the forwarded
    /// request's parts; `None` (and nothing written) if a part is too long
    /// to encode.
    pub fn request<'a>(
        &mut self,
        id: u64,
        method: &[u8],
        path: &[u8],
        headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        body: &[u8],
    ) -> Option<()> {
        let (mut count, mut room) = (0usize, 0usize);
        for (n, v) in headers.clone() {
            if n.len() > u16::MAX as usize || v.len() > u16::MAX as usize {
                return None;
            }
            count += 1;
            room += 4 + n.len() + v.len();
        }
        let room = 3 + method.len() + path.len() + 2 + room + body.len();
        if method.len() > u8::MAX as usize
            || path.len() > u16::MAX as usize
            || count > u16::MAX as usize
            || 9 + room > u32::MAX as usize
        {
            return None;
        }
        let b = self.open(REQUEST, id, room);
        b.put_u8(method.len() as u8);
        b.put_slice(method);
        b.put_u16(path.len() as u16);
        b.put_slice(path);
        put_headers(b, count as u16, headers);
        b.put_slice(body);
        self.close();
        Some(())
    }

    /// Appends a `Head` frame of at most `max` bytes: a header over 64 KiB,
    /// and those past `max`, are left out.
    pub fn head<'a>(
        &mut self,
        id: u64,
        status: u16,
        headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        max: usize,
    ) {
        let fits =
            |(n, v): &(&[u8], &[u8])| n.len() <= u16::MAX as usize && v.len() <= u16::MAX as usize;
        let mut room = max.saturating_sub(4 + 9 + 4);
        let headers = headers
            .filter(fits)
            .take_while(move |(n, v)| {
                let size = 4 + n.len() + v.len();
                room = match room.checked_sub(size) {
                    Some(r) => r,
                    None => return false,
                };
                true
            })
            .take(u16::MAX as usize);
        let (count, room) = headers
            .clone()
            .fold((0, 0), |(c, r), (n, v)| (c + 1, r + 4 + n.len() + v.len()));
        let b = self.open(HEAD, id, 4 + room);
        b.put_u16(status);
        put_headers(b, count, headers);
        self.close();
    }

    /// Appends `data` as `Chunk` frames of at most `max` bytes each.
    pub fn chunk(&mut self, id: u64, data: &[u8], max: usize) {
        let mut pieces = data.chunks(max.max(1));
        // An empty piece is a frame too, as written.
        let first = pieces.next().unwrap_or_default();
        for piece in std::iter::once(first).chain(pieces) {
            self.open(CHUNK, id, piece.len()).put_slice(piece);
            self.close();
        }
    }

    pub fn end(&mut self, id: u64) {
        self.bare(END, id);
    }

    pub fn cancel(&mut self, id: u64) {
        self.bare(CANCEL, id);
    }

    pub fn credit(&mut self, id: u64, bytes: u32) {
        self.open(CREDIT, id, 4).put_u32(bytes);
        self.close();
    }
}

fn put_headers<'a>(
    b: &mut BytesMut,
    count: u16,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) {
    b.put_u16(count);
    for (name, value) in headers {
        b.put_u16(name.len() as u16);
        b.put_slice(name);
        b.put_u16(value.len() as u16);
        b.put_slice(value);
    }
}

/// A length-prefixed field (`width` bytes of length).
fn take(b: &mut Bytes, width: usize) -> Result<Bytes, Malformed> {
    if b.remaining() < width {
        return Err(Malformed);
    }
    let len = if width == 1 {
        b.get_u8() as usize
    } else {
        b.get_u16() as usize
    };
    if b.remaining() < len {
        return Err(Malformed);
    }
    Ok(b.split_to(len))
}

fn take_headers(b: &mut Bytes) -> Result<Vec<Header>, Malformed> {
    if b.remaining() < 2 {
        return Err(Malformed);
    }
    let count = b.get_u16() as usize;
    // Each header takes at least 4 bytes: a count beyond that is a lie.
    if count * 4 > b.remaining() {
        return Err(Malformed);
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take(b, 2)?;
        let value = take(b, 2)?;
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &[Header]) -> Vec<(&[u8], &[u8])> {
        headers.iter().map(|(n, v)| (&n[..], &v[..])).collect()
    }

    /// Appends `f` to `batch`, through the writers the links use.
    fn write(f: &Frame, batch: &mut Batch) {
        match f {
            Frame::Request {
                id,
                method,
                path,
                headers,
                body,
            } => {
                let headers = pairs(headers);
                let _ = batch.request(*id, method, path, headers.iter().copied(), body);
            }
            Frame::Head {
                id,
                status,
                headers,
            } => batch.head(*id, *status, pairs(headers).iter().copied(), usize::MAX),
            Frame::Chunk { id, data } => batch.chunk(*id, data, usize::MAX),
            Frame::End { id } => batch.end(*id),
            Frame::Cancel { id } => batch.cancel(*id),
            Frame::Credit { id, bytes } => batch.credit(*id, *bytes),
        }
    }

    fn h(n: &'static str, v: &'static str) -> Header {
        (Bytes::from(n), Bytes::from(v))
    }

    fn every_kind() -> Vec<Frame> {
        vec![
            Frame::Request {
                id: u64::MAX - 1,
                method: "POST".into(),
                path: "/echo/000/abc/xhr_send?x=1".into(),
                headers: vec![h("content-type", "text/plain"), h("x-empty", "")],
                body: Bytes::from_static(b"[\"a\"]"),
            },
            Frame::Request {
                id: 0,
                method: "GET".into(),
                path: "/".into(),
                headers: vec![],
                body: Bytes::new(),
            },
            Frame::Head {
                id: 7,
                status: 204,
                headers: vec![h("cache-control", "no-store")],
            },
            Frame::Chunk {
                id: 7,
                data: Bytes::from_static(b"a[\"x\"]\n"),
            },
            Frame::Chunk {
                id: 8,
                data: Bytes::new(),
            },
            Frame::End { id: 7 },
            Frame::Cancel { id: 7 },
            Frame::Credit {
                id: 7,
                bytes: 65536,
            },
        ]
    }

    #[test]
    fn a_batch_reads_back_as_written_frame_by_frame() {
        let mut batch = Batch::default();
        for f in every_kind() {
            write(&f, &mut batch);
        }
        let read: Result<Vec<Frame>, Malformed> = frames(batch.take(usize::MAX)).collect();
        assert_eq!(read, Ok(every_kind()));
        assert!(batch.is_empty());
        for f in every_kind() {
            write(&f, &mut batch);
            let read: Vec<_> = frames(batch.take(usize::MAX)).collect();
            assert_eq!(read, vec![Ok(f)]);
        }
    }

    /// Issue 28, finding 2: a message never grows past what the peer
    /// takes, however much is ready.
    #[test]
    fn messages_hold_whole_frames_up_to_a_limit() {
        let mut batch = Batch::default();
        let body = vec![b'x'; 1000];
        for id in 0..10 {
            batch.request(id, b"POST", b"/a", std::iter::empty(), &body);
        }
        let one = 4 + 9 + 1 + 4 + 2 + 2 + 2 + 1000;
        let mut ids = Vec::new();
        while !batch.is_empty() {
            let message = batch.take(3 * one + 10);
            assert!(message.len() <= 3 * one + 10, "{}", message.len());
            let read: Vec<Frame> = frames(message).map(Result::unwrap).collect();
            assert!(!read.is_empty() && read.len() <= 3);
            ids.extend(read.iter().map(|f| match f {
                Frame::Request { id, .. } => *id,
                _ => unreachable!(),
            }));
        }
        assert_eq!(ids, (0..10).collect::<Vec<_>>(), "in order, none lost");
        // A frame larger than the limit goes alone.
        batch.chunk(1, b"a", 100);
        batch.request(2, b"POST", b"/", std::iter::empty(), &body);
        batch.chunk(3, b"b", 100);
        let counts: Vec<usize> = (0..3).map(|_| frames(batch.take(100)).count()).collect();
        assert_eq!(counts, [1, 1, 1]);
        assert!(batch.is_empty());
    }

    #[test]
    fn a_chunk_over_its_limit_is_several_and_a_head_keeps_within_its_own() {
        let mut batch = Batch::default();
        let data: Vec<u8> = (0..250u8).collect();
        batch.chunk(4, &data, 100);
        let read: Vec<Frame> = frames(batch.take(usize::MAX)).map(Result::unwrap).collect();
        let sizes: Vec<usize> = read
            .iter()
            .map(|f| match f {
                Frame::Chunk { id: 4, data } => data.len(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        let joined: Vec<u8> = read
            .iter()
            .flat_map(|f| match f {
                Frame::Chunk { data, .. } => data.to_vec(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(joined, data);
        let value = [b'v'; 100];
        let headers: Vec<(&[u8], &[u8])> = (0..50).map(|_| (&b"n"[..], &value[..])).collect();
        batch.head(5, 200, headers.iter().copied(), 1000);
        let head = batch.take(usize::MAX);
        assert!(head.len() <= 1000 + 4, "{}", head.len());
        match frames(head).next() {
            Some(Ok(Frame::Head { headers, .. })) => assert_eq!(headers.len(), 9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parts_too_long_to_encode_write_nothing() {
        let mut batch = Batch::default();
        let long = vec![b'a'; 70_000];
        assert_eq!(
            batch.request(3, b"GET", &long, std::iter::empty(), b""),
            None
        );
        let headers = [(&b"x"[..], &long[..])];
        assert_eq!(
            batch.request(3, b"GET", b"/", headers.iter().copied(), b""),
            None
        );
        assert!(batch.is_empty());
        // A head leaves such a header out and keeps the rest.
        let headers = [(&b"x"[..], &long[..]), (&b"a"[..], &b"b"[..])];
        batch.head(1, 200, headers.iter().copied(), usize::MAX);
        let read: Vec<_> = frames(batch.take(usize::MAX)).collect();
        assert_eq!(
            read,
            vec![Ok(Frame::Head {
                id: 1,
                status: 200,
                headers: vec![h("a", "b")]
            })]
        );
    }

    #[test]
    fn truncated_lying_or_unknown_frames_are_refused() {
        let mut batch = Batch::default();
        batch.head(1, 200, [(&b"a"[..], &b"b"[..])].into_iter(), usize::MAX);
        let whole = batch.take(usize::MAX);
        for cut in 1..whole.len() {
            let read: Vec<_> = frames(whole.slice(..cut)).collect();
            assert_eq!(read, vec![Err(Malformed)], "cut at {cut}");
        }
        // A frame that says it is shorter than it is.
        let mut short = BytesMut::from(&whole[..]);
        short[3] -= 1;
        assert!(frames(short.freeze()).any(|f| f.is_err()));
        let mut unknown = BytesMut::from(&whole[..]);
        unknown[4] = 99;
        assert_eq!(frames(unknown.freeze()).next(), Some(Err(Malformed)));
        // A header count far beyond the bytes that follow.
        let mut lying = BytesMut::new();
        lying.put_u32(13);
        lying.put_u8(HEAD);
        lying.put_u64(1);
        lying.put_u16(200);
        lying.put_u16(u16::MAX);
        assert_eq!(frames(lying.freeze()).next(), Some(Err(Malformed)));
    }
}
