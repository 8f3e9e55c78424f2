//! The queue between a session and the transport of its receiver: the
//! session pushes frames, the transport polls them.
//!
//! Unlike a general channel it can be told not to wake the transport: a
//! WebSocket runs inside its session's own task, so what the session pushes
//! while the socket is calling into it is picked up by the socket's next
//! step, and a wake-up would only make the task run once more for nothing.
//! It also allocates nothing for one item at a time (an open frame, a
//! heartbeat, an echo): the first item waits in a slot of its own, and only
//! what queues up behind it takes a buffer; every idle session has one.

use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

/// The queue: `next` first, then `rest`. An item goes to `next` only when
/// both are empty, so the order holds.
struct Items<T> {
    next: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Items<T> {
    fn push(&mut self, item: T) {
        if self.next.is_none() && self.rest.is_empty() {
            self.next = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop(&mut self) -> Option<T> {
        self.next.take().or_else(|| self.rest.pop_front())
    }

    fn clear(&mut self) {
        self.next = None;
        self.rest.clear();
    }
}

struct Shared<T, E> {
    items: Mutex<Items<T>>,
    /// How many items are queued, readable without the lock: the transport
    /// polls an empty queue far more often than it finds something.
    len: AtomicUsize,
    waker: AtomicWaker,
    tx_gone: AtomicBool,
    rx_gone: AtomicBool,
    /// What else both sides share, in the same allocation.
    extra: E,
}

impl<T, E> Shared<T, E> {
    fn items(&self) -> MutexGuard<'_, Items<T>> {
        // Nothing panics while holding the lock; a poisoned queue is still whole.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session's side.
pub struct Tx<T, E = ()>(Arc<Shared<T, E>>);

/// The transport's side.
pub struct Rx<T, E = ()>(Arc<Shared<T, E>>);

pub fn outbox<T>() -> (Tx<T>, Rx<T>) {
    outbox_with(())
}

/// An outbox whose sides also share `extra`.
pub fn outbox_with<T, E>(extra: E) -> (Tx<T, E>, Rx<T, E>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(Items {
            next: None,
            rest: VecDeque::new(),
        }),
        len: AtomicUsize::new(0),
        waker: AtomicWaker::new(),
        tx_gone: AtomicBool::new(false),
        rx_gone: AtomicBool::new(false),
        extra,
    });
    (Tx(shared.clone()), Rx(shared))
}

impl<T, E> std::fmt::Debug for Tx<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("outbox::Tx")
    }
}

impl<T, E> std::fmt::Debug for Rx<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("outbox::Rx")
    }
}

impl<T, E> Tx<T, E> {
    pub fn extra(&self) -> &E {
        &self.0.extra
    }

    /// Queues `item`, or gives it back if the transport's side is gone.
    pub fn push(&self, item: T) -> Result<(), T> {
        if self.0.rx_gone.load(Ordering::Acquire) {
            return Err(item);
        }
        self.0.items().push(item);
        // Counted after the push and before the wake, so a transport that
        // reads 0 here has registered in time to be woken.
        self.0.len.fetch_add(1, Ordering::AcqRel);
        self.0.waker.wake();
        Ok(())
    }
}

impl<T, E> Drop for Tx<T, E> {
    fn drop(&mut self) {
        self.0.tx_gone.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

/// Queues that grew past this give their memory back once drained.
const KEEP_CAPACITY: usize = 4;

impl<T, E> Rx<T, E> {
    pub fn extra(&self) -> &E {
        &self.0.extra
    }

    /// The next item; `None` once the session's side is gone and all was taken.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.try_next() {
            return Poll::Ready(Some(item));
        }
        self.0.waker.register(cx.waker());
        // Read before looking again: everything pushed before the drop is seen.
        let gone = self.0.tx_gone.load(Ordering::Acquire);
        match self.try_next() {
            Some(item) => Poll::Ready(Some(item)),
            None if gone => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// The next item if one is there.
    pub fn try_next(&mut self) -> Option<T> {
        if self.0.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut items = self.0.items();
        let item = items.pop();
        if item.is_some() {
            self.0.len.fetch_sub(1, Ordering::AcqRel);
        }
        if items.rest.is_empty() && items.rest.capacity() > KEEP_CAPACITY {
            items.rest.shrink_to(KEEP_CAPACITY);
        }
        item
    }

    /// Pushes from now on do not wake this side until its next `poll_next`
    /// registers again: for a transport running in the pushing task.
    pub fn quiet(&self) {
        self.0.waker.take();
    }
}

impl<T, E> Drop for Rx<T, E> {
    fn drop(&mut self) {
        self.0.rx_gone.store(true, Ordering::Release);
        self.0.items().clear();
        self.0.len.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn items_come_out_in_order_then_none_after_the_sender_is_gone() {
        let (tx, mut rx) = outbox();
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_next(&mut cx), Poll::Pending);
        tx.push(1).unwrap();
        tx.push(2).unwrap();
        drop(tx);
        assert_eq!(rx.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_next(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_next(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_push_and_by_the_sender_leaving() {
        let (tx, mut rx) = outbox::<u8>();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_next(&mut cx), Poll::Pending);
        tx.push(1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_next(&mut cx), Poll::Pending);
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_quiet_receiver_is_not_woken_until_it_polls_again() {
        let (tx, mut rx) = outbox();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_next(&mut cx), Poll::Pending);
        rx.quiet();
        tx.push(1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(rx.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_next(&mut cx), Poll::Pending);
        tx.push(2).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn pushing_to_a_gone_receiver_gives_the_item_back() {
        let (tx, rx) = outbox();
        drop(rx);
        assert_eq!(tx.push(7), Err(7));
    }

    #[test]
    fn a_drained_queue_gives_back_what_it_grew() {
        let (tx, mut rx) = outbox();
        for i in 0..100 {
            tx.push(i).unwrap();
        }
        while rx.try_next().is_some() {}
        assert!(rx.0.items().rest.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn one_item_at_a_time_takes_no_buffer_and_order_holds() {
        let (tx, mut rx) = outbox();
        for i in 0..10 {
            tx.push(i).unwrap();
            assert_eq!(rx.try_next(), Some(i));
        }
        assert_eq!(rx.0.items().rest.capacity(), 0);
        // Behind a waiting first item, the rest queue in order; an item
        // pushed once the first was taken still comes after those.
        tx.push(1).unwrap();
        tx.push(2).unwrap();
        assert_eq!(rx.try_next(), Some(1));
        tx.push(3).unwrap();
        assert_eq!(rx.try_next(), Some(2));
        tx.push(4).unwrap();
        assert_eq!(rx.try_next(), Some(3));
        assert_eq!(rx.try_next(), Some(4));
        assert_eq!(rx.try_next(), None);
    }
}
