//! A stream connection's outbox: the frames the core has given it, and the stream's
//! writing half while no task is writing to it.
//!
//! The connection's writer task writes what is queued. While it has nothing to write
//! it parks the stream here, and then the first frame queued after a read of the
//! connection may be written at once, without a wait: [`Queued::write_now`] makes one
//! non-blocking vectored write from the task that queued (a worker replying, a reader
//! forwarding) and hands whatever the socket did not take to the writer task. That
//! saves a wake and a turn of the writer task for a reply. Frames queued in a row with
//! no read between (pipelined requests, a bulk transfer) go to the writer task, which
//! gathers them into one write: a system call each would cost more than the turn.
//!
//! Frames go out in the order queued: they are taken from the queue only by the
//! holder of the stream, and the stream and the queue are under one lock.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::io::AsyncWrite;
use smallvec::SmallVec;

use crate::node::{SPARE_TRANSMITS, SPARE_TRANSMIT_MAX};

/// The writing half of a stream.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Frames a ring keeps room for when it is emptied.
const KEEP: usize = 16;

/// Frames one write from [`Queued::write_now`] takes at most.
const MAX_SLICES: usize = 64;

/// Buffers of frames written, to give back to the core
/// ([`NodeCore::recycle_transmit`](crate::node::NodeCore::recycle_transmit)): only
/// those it may keep.
pub(crate) type Spent = SmallVec<[Vec<u8>; 2]>;

/// Puts a written frame's buffer in `spent` if the core may keep it.
pub(crate) fn spend(spent: &mut Spent, frame: Vec<u8>) {
    if frame.capacity() <= SPARE_TRANSMIT_MAX && spent.len() < SPARE_TRANSMITS {
        spent.push(frame);
    }
}

struct State {
    frames: VecDeque<Vec<u8>>,
    /// The stream, while the writer task is not writing to it.
    parked: Option<Writer>,
    /// The writer task, when it waits for frames.
    waker: Option<Waker>,
    /// A write was made here and not yet flushed: the writer task flushes it.
    unflushed: bool,
    /// Whether the next frame may be written from where it is queued: once after
    /// each read of the connection, so that a reply goes at once while frames sent
    /// in a row (pipelined requests, a bulk transfer) are left to the writer task to
    /// gather into one write.
    may_write_now: bool,
    sender_gone: bool,
    receiver_gone: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // Nothing here panics while holding the lock; each change is whole.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The driver's end of an outbox; see the module docs. Dropping it tells the writer
/// task to write what is queued and close the stream.
pub(crate) struct Outbox(Shared);

/// What the writer task takes from its outbox.
pub(crate) enum Taken {
    /// The stream, to write the frames taken (none when only a flush is owed).
    Write(Writer),
    /// The driver let the outbox go and nothing is queued: the stream, to close.
    Ended(Writer),
}

/// A new outbox holding `stream`, and the writer task's end of it.
pub(crate) fn outbox(stream: Writer) -> (Outbox, WriterEnd) {
    let shared = Arc::new(Mutex::new(State {
        frames: VecDeque::new(),
        parked: Some(stream),
        waker: None,
        unflushed: false,
        may_write_now: false,
        sender_gone: false,
        receiver_gone: false,
    }));
    (Outbox(shared.clone()), WriterEnd(shared))
}

impl Outbox {
    /// Queues `frame`; gives it back if the writer task is gone. Wakes no one: the
    /// caller then calls [`Queued::write_now`] (or [`Queued::wake`] where it cannot
    /// write) on [`queued`](Self::queued).
    pub(crate) fn push(&self, frame: Vec<u8>) -> Result<(), Vec<u8>> {
        let mut state = lock(&self.0);
        if state.receiver_gone {
            return Err(frame);
        }
        state.frames.push_back(frame);
        Ok(())
    }

    /// A handle on what is queued, to write it once the node's lock is let go.
    pub(crate) fn queued(&self) -> Queued {
        Queued(self.0.clone())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.0);
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Frames queued in an [`Outbox`], to be written from where they were queued.
pub(crate) struct Queued(Shared);

impl Queued {
    /// The connection was read: the next frame queued may be written at once.
    pub(crate) fn allow_write_now(&self) {
        lock(&self.0).may_write_now = true;
    }

    /// Wakes the writer task if it waits and something is owed.
    pub(crate) fn wake(&self) {
        let waker = {
            let mut state = lock(&self.0);
            if state.frames.is_empty() && !state.unflushed {
                return;
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// If the stream is parked and the connection was read since the last such
    /// write, writes what is queued with one non-blocking vectored write from this
    /// task and returns the bytes written; what the socket did not take is left for
    /// the writer task, which is woken. Otherwise returns 0, having woken the writer
    /// task if it waits (if it holds the stream, it writes what is queued before it
    /// parks it again). The buffers of the frames written whole go to `spent`.
    pub(crate) fn write_now(&self, spent: &mut Spent) -> usize {
        let mut guard = lock(&self.0);
        let state = &mut *guard;
        let Some(stream) = state.parked.as_mut() else {
            return 0;
        };
        if state.frames.is_empty() {
            return 0;
        }
        if !state.may_write_now {
            drop(guard);
            self.wake();
            return 0;
        }
        state.may_write_now = false;
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for (slice, frame) in slices.iter_mut().zip(&state.frames) {
            *slice = IoSlice::new(frame);
            count += 1;
        }
        let written = match Pin::new(&mut **stream)
            .poll_write_vectored(&mut cx, slices.get(..count).unwrap_or_default())
        {
            // An error is the writer task's to meet and report: it writes the same
            // frames again.
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(_)) | Poll::Pending => 0,
        };
        if written > 0 {
            state.unflushed = true;
            if let Poll::Ready(Ok(())) = Pin::new(&mut **stream).poll_flush(&mut cx) {
                state.unflushed = false;
            }
        }
        let mut left = written;
        while let Some(frame) = state.frames.front_mut() {
            if left < frame.len() {
                // Part of this frame went: the rest goes first, from the writer task.
                frame.drain(..left);
                break;
            }
            left -= frame.len();
            if let Some(frame) = state.frames.pop_front() {
                spend(spent, frame);
            }
        }
        shrink(state);
        let waker = if state.frames.is_empty() && !state.unflushed {
            None
        } else {
            state.waker.take()
        };
        drop(guard);
        if let Some(waker) = waker {
            waker.wake();
        }
        written
    }
}

/// Gives back the memory of a burst once the ring is empty.
fn shrink(state: &mut State) {
    if state.frames.is_empty() && state.frames.capacity() > KEEP {
        state.frames.shrink_to(KEEP);
    }
}

/// The writer task's end of an [`Outbox`].
pub(crate) struct WriterEnd(Shared);

impl WriterEnd {
    /// Waits until frames are queued (or a flush is owed), then takes the stream and
    /// moves frames, in order, into `into` until they reach `max_bytes` or
    /// `max_frames`; or, once the driver's end is gone and nothing is owed, takes the
    /// stream to close it.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut Vec<Vec<u8>>,
        max_bytes: usize,
        max_frames: usize,
    ) -> Poll<Taken> {
        let mut guard = lock(&self.0);
        let state = &mut *guard;
        let owed = !state.frames.is_empty() || state.unflushed;
        // Only the writer task takes the stream, and it parks it again before it asks,
        // so the stream is here whenever this is called.
        let stream = match state.parked.take() {
            Some(stream) if owed => stream,
            Some(stream) if state.sender_gone => return Poll::Ready(Taken::Ended(stream)),
            parked => {
                state.parked = parked;
                match &mut state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        };
        state.unflushed = false;
        let mut bytes = 0;
        while bytes < max_bytes && into.len() < max_frames {
            let Some(frame) = state.frames.pop_front() else {
                break;
            };
            bytes += frame.len();
            into.push(frame);
        }
        shrink(state);
        Poll::Ready(Taken::Write(stream))
    }

    /// Parks the stream again once what was taken is written.
    pub(crate) fn park(&self, stream: Writer) {
        lock(&self.0).parked = Some(stream);
    }

    /// The stream, to close it, if it is parked.
    pub(crate) fn take(&self) -> Option<Writer> {
        lock(&self.0).parked.take()
    }
}

impl Drop for WriterEnd {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        state.receiver_gone = true;
        // What was queued and never taken goes now.
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A stream that takes at most `room` bytes, then is full until given more room;
    /// the bytes it took are shared with the test.
    struct Socket {
        taken: Arc<Mutex<Vec<u8>>>,
        room: Arc<AtomicUsize>,
        /// Its flush never completes at once.
        slow_flush: bool,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let room = self.room.load(Ordering::SeqCst);
            if room == 0 {
                return Poll::Pending;
            }
            let mut taken = self.taken.lock().unwrap();
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(room - n);
                taken.extend_from_slice(&buf[..take]);
                n += take;
            }
            self.room.fetch_sub(n, Ordering::SeqCst);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            if self.slow_flush {
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// What the writer task takes, which must be the stream to write with.
    fn take(
        end: &WriterEnd,
        cx: &mut Context<'_>,
        frames: &mut Vec<Vec<u8>>,
        what: &str,
    ) -> Writer {
        match end.poll_take(cx, frames, 1 << 20, 64) {
            Poll::Ready(Taken::Write(stream)) => stream,
            _ => panic!("{what}"),
        }
    }

    fn socket(room: usize) -> (Writer, Arc<Mutex<Vec<u8>>>, Arc<AtomicUsize>) {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let room = Arc::new(AtomicUsize::new(room));
        let stream = Box::new(Socket {
            taken: taken.clone(),
            room: room.clone(),
            slow_flush: false,
        });
        (stream, taken, room)
    }

    #[test]
    fn a_frame_after_a_read_goes_at_once_and_frames_in_a_row_wait_for_the_writer() {
        let (stream, taken, _) = socket(1 << 20);
        let (outbox, end) = outbox(stream);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut frames = Vec::new();
        let mut spent = Spent::new();
        assert!(end
            .poll_take(&mut cx, &mut frames, 1 << 20, 64)
            .is_pending());
        // No read yet: the frame is left to the writer task, which is woken.
        outbox.push(vec![1, 2]).unwrap();
        assert_eq!(outbox.queued().write_now(&mut spent), 0);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let stream = take(&end, &mut cx, &mut frames, "the writer takes the frame");
        assert_eq!(frames, [vec![1, 2]]);
        frames.clear();
        // While the writer holds the stream nothing is written from elsewhere.
        outbox.queued().allow_write_now();
        outbox.push(vec![3]).unwrap();
        assert_eq!(outbox.queued().write_now(&mut spent), 0);
        end.park(stream);
        // Parked, after a read: written at once, once.
        assert_eq!(outbox.queued().write_now(&mut spent), 1);
        assert_eq!(*taken.lock().unwrap(), [3]);
        outbox.push(vec![4]).unwrap();
        assert_eq!(
            outbox.queued().write_now(&mut spent),
            0,
            "a second frame waits"
        );
        outbox.queued().allow_write_now();
        outbox.push(vec![5]).unwrap();
        assert_eq!(outbox.queued().write_now(&mut spent), 2, "both, in order");
        assert_eq!(*taken.lock().unwrap(), [3, 4, 5]);
        // The buffers of the frames written here are handed on for the core to reuse.
        assert_eq!(spent.as_slice(), [vec![3], vec![4], vec![5]]);
    }

    #[test]
    fn what_the_socket_does_not_take_goes_first_from_the_writer() {
        let (stream, taken, room) = socket(5);
        let (outbox, end) = outbox(stream);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut frames = Vec::new();
        let mut spent = Spent::new();
        for frame in [vec![1, 2, 3], vec![4, 5, 6], vec![7]] {
            outbox.push(frame).unwrap();
        }
        outbox.queued().allow_write_now();
        assert_eq!(outbox.queued().write_now(&mut spent), 5);
        assert_eq!(*taken.lock().unwrap(), [1, 2, 3, 4, 5]);
        // Only a frame written whole gives its buffer back.
        assert_eq!(spent.as_slice(), [vec![1, 2, 3]]);
        // The socket is full: nothing more, and the rest is the writer's.
        outbox.queued().allow_write_now();
        assert_eq!(outbox.queued().write_now(&mut spent), 0);
        room.store(100, Ordering::SeqCst);
        let stream = take(&end, &mut cx, &mut frames, "the writer takes the rest");
        assert_eq!(frames, [vec![6], vec![7]]);
        end.park(stream);
    }

    #[test]
    fn a_flush_that_does_not_finish_at_once_is_left_to_the_writer() {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let stream = Box::new(Socket {
            taken: taken.clone(),
            room: Arc::new(AtomicUsize::new(100)),
            slow_flush: true,
        });
        let (sink, end) = outbox(stream);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut frames = Vec::new();
        let mut spent = Spent::new();
        assert!(end
            .poll_take(&mut cx, &mut frames, 1 << 20, 64)
            .is_pending());
        sink.push(vec![1, 2]).unwrap();
        sink.queued().allow_write_now();
        assert_eq!(sink.queued().write_now(&mut spent), 2);
        assert_eq!(*taken.lock().unwrap(), [1, 2]);
        // Written, not flushed: the writer is woken for the flush alone.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let stream = take(&end, &mut cx, &mut frames, "the writer flushes");
        assert!(frames.is_empty(), "nothing left to write");
        end.park(stream);
        assert!(end
            .poll_take(&mut cx, &mut frames, 1 << 20, 64)
            .is_pending());
    }

    #[test]
    fn the_writer_closes_once_the_outbox_is_let_go_and_later_frames_are_refused() {
        let (stream, _, _) = socket(0);
        let (sink, end) = outbox(stream);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut frames = Vec::new();
        let mut spent = Spent::new();
        sink.push(vec![1]).unwrap();
        let queued = sink.queued();
        drop(sink);
        // What was queued is still written before the end.
        let stream = take(&end, &mut cx, &mut frames, "queued frames first");
        end.park(stream);
        assert!(matches!(
            end.poll_take(&mut cx, &mut frames, 1 << 20, 64),
            Poll::Ready(Taken::Ended(_))
        ));
        assert_eq!(queued.write_now(&mut spent), 0, "no stream to write to");
        let (stream, _, _) = socket(0);
        let (sink, end) = outbox(stream);
        drop(end);
        assert_eq!(sink.push(vec![1]), Err(vec![1]), "the writer is gone");
    }
}
