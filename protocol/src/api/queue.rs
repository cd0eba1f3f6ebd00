//! A queue from the driver to one task (a worker's mailbox, a connection's writer): one
//! sender, one receiver, items kept in a ring buffer rather than in a heap node each,
//! so that passing an item allocates nothing once the ring has room.
//!
//! How many items a queue holds is bounded by the node core (a mailbox's capacity and
//! bytes, a connection's write budget), not here. A ring that grew for a burst gives
//! its memory back when the burst has been taken: emptied with a capacity over
//! [`KEEP`], it shrinks to [`KEEP`].
//!
//! The sender fails once the receiver is gone, so the driver learns that a mailbox or
//! a writer has gone away; the receiver ends (its stream yields `None`) once the sender
//! is gone and every item has been taken.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;

/// Items a ring keeps room for when it is emptied.
const KEEP: usize = 16;

struct Inner<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

type Shared<T> = Arc<Mutex<Inner<T>>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Inner<T>> {
    // Nothing here panics while holding the lock; if something did, the queue's
    // state is still whole (each change is one push, pop or flag).
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new queue: its sending and its receiving end.
pub(crate) fn queue<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(Inner {
        items: VecDeque::new(),
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The sending end of a [`queue`].
pub(crate) struct Sender<T> {
    shared: Shared<T>,
}

impl<T> Sender<T> {
    /// Queues `item` and wakes the receiver; gives the item back if the receiver is
    /// gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let waker = {
            let mut inner = lock(&self.shared);
            if inner.receiver_gone {
                return Err(item);
            }
            inner.items.push_back(item);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether `receiver` is this queue's receiving end.
    pub(crate) fn is_connected_to(&self, receiver: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &receiver.shared)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut inner = lock(&self.shared);
            inner.sender_gone = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The receiving end of a [`queue`]: a stream of its items.
pub(crate) struct Receiver<T> {
    shared: Shared<T>,
}

/// Why [`Receiver::try_next`] has no item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Empty {
    /// None now; more may come.
    Now,
    /// None, and none will come: the sender is gone.
    Ended,
}

impl<T> Receiver<T> {
    /// Whether the stream would yield at once: an item is queued, or the sender is
    /// gone.
    pub(crate) fn is_ready(&self) -> bool {
        let inner = lock(&self.shared);
        !inner.items.is_empty() || inner.sender_gone
    }

    /// The next item if one is queued, without waiting.
    pub(crate) fn try_next(&self) -> Result<T, Empty> {
        let mut inner = lock(&self.shared);
        match pop(&mut inner) {
            Some(item) => Ok(item),
            None if inner.sender_gone => Err(Empty::Ended),
            None => Err(Empty::Now),
        }
    }
}

/// Takes the first item, giving back the memory of a burst once the ring is empty.
fn pop<T>(inner: &mut Inner<T>) -> Option<T> {
    let item = inner.items.pop_front()?;
    if inner.items.is_empty() && inner.items.capacity() > KEEP {
        inner.items.shrink_to(KEEP);
    }
    Some(item)
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut inner = lock(&self.shared);
        if let Some(item) = pop(&mut inner) {
            return Poll::Ready(Some(item));
        }
        if inner.sender_gone {
            return Poll::Ready(None);
        }
        match &mut inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut inner = lock(&self.shared);
        inner.receiver_gone = true;
        // What was queued and never taken goes now, not when the sender goes.
        inner.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn items_come_out_in_order_and_the_stream_ends_after_the_sender() {
        let (tx, mut rx) = queue::<i32>();
        for n in 0..100 {
            tx.send(n).unwrap();
        }
        assert!(rx.is_ready());
        assert_eq!(rx.try_next(), Ok(0));
        drop(tx);
        let mut cx = Context::from_waker(noop_waker_ref());
        for n in 1..100 {
            assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(n)));
        }
        assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(None));
        assert!(rx.is_ready(), "an ended stream yields at once");
        assert_eq!(rx.try_next(), Err(Empty::Ended));
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send_and_by_the_sender_going() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = queue();
        assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Pending);
        assert_eq!(rx.try_next(), Err(Empty::Now));
        assert!(!rx.is_ready());
        tx.send(7).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Pending);
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn sends_fail_once_the_receiver_is_gone_and_queued_items_are_dropped() {
        let (tx, rx) = queue();
        let item = Arc::new(1);
        tx.send(item.clone()).unwrap();
        assert_eq!(Arc::strong_count(&item), 2);
        assert!(tx.is_connected_to(&rx));
        let (_, other) = queue::<Arc<i32>>();
        assert!(!tx.is_connected_to(&other));
        drop(rx);
        assert_eq!(
            Arc::strong_count(&item),
            1,
            "the queued item went with the receiver"
        );
        assert_eq!(tx.send(item.clone()).map_err(|i| *i), Err(1));
    }

    #[test]
    fn a_ring_gives_back_the_memory_of_a_burst_once_emptied() {
        let (tx, mut rx) = queue();
        for n in 0..10_000 {
            tx.send(n).unwrap();
        }
        let mut cx = Context::from_waker(noop_waker_ref());
        for n in 0..10_000 {
            assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(n)));
        }
        assert!(lock(&rx.shared).items.capacity() <= KEEP);
        // A queue that never held more than it keeps room for keeps its ring.
        for n in 0..KEEP {
            tx.send(n).unwrap();
        }
        let kept = lock(&rx.shared).items.capacity();
        while rx.try_next().is_ok() {}
        assert_eq!(lock(&rx.shared).items.capacity(), kept);
    }
}
