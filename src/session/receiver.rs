//! The one connection a session writes to at a time: a poll, a stream or a
//! WebSocket. The session formats frames for it and decides when it is done;
//! the transport only forwards what arrives on the channel.

use super::outbox::{self, outbox_with};
use crate::protocol::{CloseCode, Frame, Wrapping};
use bytestring::ByteString;
use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// What a session hands to its receiver's transport.
#[derive(Debug)]
pub enum Outgoing {
    /// Bytes for the wire, already wrapped for the transport.
    Data(ByteString),
    /// Close the raw WebSocket with this code (raw WebSocket only; the other
    /// transports close by ending the channel after the `c` frame).
    Close(CloseCode),
    /// Heartbeat time on a WebSocket: send `h` (SockJS framing) and a ping,
    /// and drop a peer that has been silent too long.
    Heartbeat,
}

/// How a receiver consumes frames.
#[derive(Debug)]
pub enum ReceiverKind {
    /// One frame, then the response ends (xhr-polling, jsonp-polling).
    Polling(Wrapping),
    /// Frames until `remaining` bytes were written (`response_limit`).
    Streaming {
        wrapping: Wrapping,
        remaining: usize,
    },
    /// SockJS-framed WebSocket: lives as long as the socket.
    WebSocket,
    /// Raw WebSocket at `PREFIX/websocket`: messages only, no framing.
    RawWebSocket,
}

/// What became of a receiver after a frame was handed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It takes more frames.
    Kept,
    /// It is done (a poll answered, the response limit reached, or a close
    /// sent) and must be dropped so its response ends.
    Finished,
    /// Its transport is gone; the frame was not handed over.
    Gone,
}

static NEXT_RECEIVER_ID: AtomicU64 = AtomicU64::new(1);

/// The session's side of a receiver.
#[derive(Debug)]
pub struct Receiver {
    id: u64,
    /// The queue, with the [`Flow`] both sides keep in the same allocation.
    tx: outbox::Tx<Outgoing, Flow>,
    kind: ReceiverKind,
}

/// The transport's side of a receiver.
#[derive(Debug)]
pub struct ReceiverRx {
    pub id: u64,
    rx: outbox::Rx<Outgoing, Flow>,
}

/// Bytes handed to the transport and not yet taken by it, and a waiter to
/// wake once they fall low (a handler holding back an upstream).
#[derive(Debug, Default)]
struct Flow {
    in_flight: AtomicUsize,
    waiting: AtomicBool,
    wake_at: AtomicUsize,
    drained: AtomicWaker,
}

/// Creates a connected receiver pair.
pub fn channel(kind: ReceiverKind) -> (Receiver, ReceiverRx) {
    let id = NEXT_RECEIVER_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = outbox_with(Flow::default());
    (Receiver { id, tx, kind }, ReceiverRx { id, rx })
}

impl Receiver {
    /// The transport, as an index into [`crate::metrics::TRANSPORTS`].
    pub fn transport(&self) -> usize {
        match &self.kind {
            ReceiverKind::WebSocket => 0,
            ReceiverKind::RawWebSocket => 1,
            ReceiverKind::Polling(Wrapping::Jsonp(_)) => 3,
            ReceiverKind::Polling(_) => 2,
            ReceiverKind::Streaming { wrapping, .. } => match wrapping {
                Wrapping::EventSource => 5,
                Wrapping::HtmlFile => 6,
                _ => 4,
            },
        }
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.kind, ReceiverKind::Streaming { .. })
    }

    /// One frame answers it (xhr-polling, jsonp-polling).
    pub fn is_poll(&self) -> bool {
        matches!(self.kind, ReceiverKind::Polling(_))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes handed to the transport but not yet taken by it: counts against
    /// the session's queue limit so a reader that stalls cannot grow memory.
    pub fn in_flight(&self) -> usize {
        self.tx.extra().in_flight.load(Ordering::Relaxed)
    }

    /// Wakes `waker` once the transport has taken enough that at most
    /// `bytes` are left in flight (at once if that is already so).
    pub fn wake_when_at_most(&self, bytes: usize, waker: &std::task::Waker) {
        let flow = self.tx.extra();
        flow.drained.register(waker);
        flow.wake_at.store(bytes, Ordering::Relaxed);
        flow.waiting.store(true, Ordering::Release);
        if flow.in_flight.load(Ordering::Acquire) <= bytes
            && flow.waiting.swap(false, Ordering::AcqRel)
        {
            flow.drained.wake();
        }
    }

    /// Sends one frame.
    pub fn deliver(&mut self, frame: Frame<'_>) -> Delivery {
        let closing = matches!(frame, Frame::Close(..));
        let (pushed, finished) = match &mut self.kind {
            ReceiverKind::RawWebSocket | ReceiverKind::WebSocket
                if matches!(frame, Frame::Heartbeat) =>
            {
                (self.tx.push(Outgoing::Heartbeat).is_ok(), false)
            }
            ReceiverKind::RawWebSocket => match frame {
                Frame::Open | Frame::Heartbeat => (true, false),
                Frame::Messages(msgs) => (
                    msgs.iter()
                        .all(|m| self.push(ByteString::from(m.text().as_ref()))),
                    false,
                ),
                Frame::Close(code, reason) => (
                    self.tx
                        .push(Outgoing::Close(CloseCode::new(code, reason)))
                        .is_ok(),
                    true,
                ),
            },
            ReceiverKind::WebSocket => (self.push(frame.encode().into()), closing),
            ReceiverKind::Polling(w) => {
                let data = w.wrap(&frame.encode());
                (self.push(data.into()), true)
            }
            ReceiverKind::Streaming {
                wrapping,
                remaining,
            } => {
                let data = wrapping.wrap(&frame.encode());
                *remaining = remaining.saturating_sub(data.len());
                let done = *remaining == 0 || closing;
                (self.push(data.into()), done)
            }
        };
        match (pushed, finished) {
            (false, _) => Delivery::Gone,
            (true, true) => Delivery::Finished,
            (true, false) => Delivery::Kept,
        }
    }

    fn push(&self, data: ByteString) -> bool {
        let len = data.len();
        let flow = self.tx.extra();
        flow.in_flight.fetch_add(len, Ordering::Relaxed);
        if self.tx.push(Outgoing::Data(data)).is_err() {
            flow.in_flight.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl ReceiverRx {
    /// Polls for the next item (for response body streams).
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Outgoing>> {
        let polled = self.rx.poll_next(cx);
        if let std::task::Poll::Ready(item) = &polled {
            self.taken(item);
        }
        polled
    }

    /// The next item if one is already there (no waiting).
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_next();
        self.taken(&item);
        item
    }

    /// For a transport that runs inside its session's task: what the session
    /// pushes while that transport is running needs no wake-up.
    pub fn quiet(&self) {
        self.rx.quiet();
    }

    fn taken(&self, item: &Option<Outgoing>) {
        if let Some(Outgoing::Data(d)) = item {
            let flow = self.rx.extra();
            let left = flow.in_flight.fetch_sub(d.len(), Ordering::AcqRel) - d.len();
            if flow.waiting.load(Ordering::Acquire)
                && left <= flow.wake_at.load(Ordering::Relaxed)
                && flow.waiting.swap(false, Ordering::AcqRel)
            {
                flow.drained.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;
    use std::sync::Arc;

    fn drain(rx: &mut ReceiverRx) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Outgoing::Data(d)) = rx.try_recv() {
            out.push(d.to_string());
        }
        out
    }

    #[test]
    fn polling_takes_one_frame() {
        let (mut r, mut rx) = channel(ReceiverKind::Polling(Wrapping::Xhr));
        assert_eq!(r.deliver(Frame::Open), Delivery::Finished);
        assert_eq!(drain(&mut rx), vec!["o\n"]);
    }

    #[test]
    fn streaming_finishes_at_the_response_limit() {
        let kind = ReceiverKind::Streaming {
            wrapping: Wrapping::Xhr,
            remaining: 10,
        };
        let (mut r, mut rx) = channel(kind);
        assert_eq!(r.deliver(Frame::Open), Delivery::Kept); // 2 bytes
        assert_eq!(r.deliver(Frame::Heartbeat), Delivery::Kept); // 4
        let msgs: Vec<Message> = vec!["abc".into()];
        assert_eq!(r.deliver(Frame::Messages(&msgs)), Delivery::Finished); // 4 + 8 >= 10
        assert_eq!(drain(&mut rx), vec!["o\n", "h\n", "a[\"abc\"]\n"]);
    }

    #[test]
    fn close_finishes_every_kind() {
        for kind in [
            ReceiverKind::WebSocket,
            ReceiverKind::RawWebSocket,
            ReceiverKind::Streaming {
                wrapping: Wrapping::EventSource,
                remaining: 1 << 20,
            },
        ] {
            let (mut r, _rx) = channel(kind);
            assert_eq!(
                r.deliver(Frame::Close(3000, "Go away!")),
                Delivery::Finished
            );
        }
    }

    #[test]
    fn raw_websocket_sends_bare_messages_and_a_close() {
        let (mut r, mut rx) = channel(ReceiverKind::RawWebSocket);
        assert_eq!(r.deliver(Frame::Open), Delivery::Kept);
        let msgs: Vec<Message> = vec!["a".into(), "b\"".into()];
        assert_eq!(r.deliver(Frame::Messages(&msgs)), Delivery::Kept);
        assert_eq!(drain(&mut rx), vec!["a", "b\""]);
        assert_eq!(
            r.deliver(Frame::Close(3000, "Go away!")),
            Delivery::Finished
        );
        assert!(matches!(rx.try_recv(), Some(Outgoing::Close(c)) if c.code == 3000));
    }

    #[test]
    fn websocket_heartbeats_are_handed_to_the_socket_task() {
        for kind in [ReceiverKind::WebSocket, ReceiverKind::RawWebSocket] {
            let (mut r, mut rx) = channel(kind);
            assert_eq!(r.deliver(Frame::Heartbeat), Delivery::Kept);
            assert!(matches!(rx.try_recv(), Some(Outgoing::Heartbeat)));
        }
    }

    #[test]
    fn in_flight_counts_untaken_bytes() {
        let (mut r, mut rx) = channel(ReceiverKind::WebSocket);
        r.deliver(Frame::Open);
        r.deliver(Frame::Messages(&["x".into()]));
        assert_eq!(r.in_flight(), 7);
        assert!(rx.try_recv().is_some());
        assert_eq!(r.in_flight(), 6);
    }

    #[test]
    fn a_drain_waiter_is_woken_once_enough_was_taken() {
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let (mut r, mut rx) = channel(ReceiverKind::WebSocket);
        let msgs: Vec<Message> = vec!["0123456789".into()];
        for _ in 0..3 {
            r.deliver(Frame::Messages(&msgs)); // 16 bytes each
        }
        r.wake_when_at_most(16, &waker);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "48 bytes in flight");
        rx.try_recv();
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "32 bytes in flight");
        rx.try_recv();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "16 bytes in flight");
        rx.try_recv();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once per wait");
        r.wake_when_at_most(0, &waker);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "already drained: at once"
        );
    }

    #[test]
    fn a_gone_transport_finishes_the_receiver() {
        let (mut r, rx) = channel(ReceiverKind::WebSocket);
        drop(rx);
        assert_eq!(r.deliver(Frame::Heartbeat), Delivery::Gone);
        assert_eq!(r.in_flight(), 0);
    }
}
