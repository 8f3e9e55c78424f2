//! What a link's side has ready to send: frames are written into one
//! buffer as they come, and the link's writer takes them as one message
//! whenever it can write (up to [`super::BATCH`] bytes), so frames that come
//! while a write is under way leave together in the next.

use super::wire::Batch;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Outgoing {
    batch: RefCell<Batch>,
    ready: Notify,
    closed: Cell<bool>,
}

impl Outgoing {
    /// Writes frames with `write`; the writer is woken if it waits.
    pub fn push(&self, write: impl FnOnce(&mut Batch)) {
        if self.closed.get() {
            return;
        }
        let mut batch = self.batch.borrow_mut();
        let was_empty = batch.is_empty();
        write(&mut batch);
        if was_empty && !batch.is_empty() {
            self.ready.notify_one();
        }
    }

    /// Everything written since the last call, once there is something;
    /// `None` once closed.
    pub async fn next(&self) -> Option<Bytes> {
        loop {
            if self.closed.get() {
                return None;
            }
            {
                let mut batch = self.batch.borrow_mut();
                if !batch.is_empty() {
                    return Some(batch.take(super::BATCH));
                }
            }
            self.ready.notified().await;
        }
    }

    /// Drops what is waiting and takes nothing more.
    pub fn close(&self) {
        self.closed.set(true);
        *self.batch.borrow_mut() = Batch::default();
        self.ready.notify_one();
    }
}
