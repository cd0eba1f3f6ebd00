//! What the async layer's tasks wait on: a one-shot broadcast [`Signal`], and a [`Gate`]
//! that opens and closes any number of times.

use std::collections::btree_map::Entry;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct State {
    fired: bool,
    next_id: u64,
    /// One entry per pending [`Wait`], removed when it is dropped, so waiters that
    /// come and go (one per connection) leave nothing behind.
    wakers: std::collections::BTreeMap<u64, Waker>,
}

/// Fired once; every [`Signal::wait`] then completes.
#[derive(Clone, Default)]
pub(crate) struct Signal(Arc<Mutex<State>>);

impl Signal {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn fire(&self) {
        let wakers = {
            let mut state = self.state();
            state.fired = true;
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.state().fired
    }

    pub(crate) fn wait(&self) -> Wait {
        Wait {
            signal: self.clone(),
            id: None,
        }
    }
}

/// Completes once the signal has fired.
pub(crate) struct Wait {
    signal: Signal,
    id: Option<u64>,
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Wait { signal, id } = self.get_mut();
        let mut state = signal.state();
        if state.fired {
            return Poll::Ready(());
        }
        let id = *id.get_or_insert_with(|| {
            let id = state.next_id;
            state.next_id = state.next_id.wrapping_add(1);
            id
        });
        // A wait polled again by the same task (every time it wakes for anything
        // else) keeps its waker rather than cloning it anew.
        match state.wakers.entry(id) {
            Entry::Occupied(mut held) => {
                if !held.get().will_wake(cx.waker()) {
                    held.insert(cx.waker().clone());
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.signal.state().wakers.remove(&id);
        }
    }
}

/// A gate one task waits to find open; closed and opened again any number of times
/// by others. A connection's reader waits on one while the node core has paused
/// reading it.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<Mutex<GateState>>);

#[derive(Default)]
struct GateState {
    closed: bool,
    waker: Option<Waker>,
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn close(&self) {
        self.state().closed = true;
    }

    pub(crate) fn open(&self) {
        let waker = {
            let mut state = self.state();
            state.closed = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Completes once the gate is open (at once if it is).
    pub(crate) fn opened(&self) -> Opened<'_> {
        Opened { gate: self }
    }
}

/// Completes once its gate is open.
pub(crate) struct Opened<'a> {
    gate: &'a Gate,
}

impl Future for Opened<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.gate.state();
        if !state.closed {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_gate_lets_its_waiter_through_only_while_open() {
        let gate = Gate::default();
        assert_eq!(gate.opened().now_or_never(), Some(()), "open at first");
        gate.close();
        let mut waiting = Box::pin(gate.opened());
        assert_eq!((&mut waiting).now_or_never(), None);
        gate.open();
        assert_eq!(waiting.now_or_never(), Some(()));
        gate.close();
        gate.close();
        assert_eq!(gate.opened().now_or_never(), None);
        gate.open();
        assert_eq!(gate.opened().now_or_never(), Some(()));
    }

    /// Counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl futures::task::ArcWake for Count {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self
                .0
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn wakes(count: &Arc<Count>) -> usize {
        count.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn a_wait_polled_by_another_task_wakes_that_one() {
        let signal = Signal::default();
        let mut wait = Box::pin(signal.wait());
        let (first, second) = (Arc::new(Count(0.into())), Arc::new(Count(0.into())));
        for count in [&first, &first, &second] {
            let waker = futures::task::waker(count.clone());
            let poll = wait.as_mut().poll(&mut Context::from_waker(&waker));
            assert_eq!(poll, Poll::Pending);
        }
        assert_eq!(signal.state().wakers.len(), 1, "one entry per wait");
        signal.fire();
        assert_eq!(
            (wakes(&first), wakes(&second)),
            (0, 1),
            "the last poller is woken"
        );
        drop(wait);
        assert!(signal.state().wakers.is_empty());
    }

    #[test]
    fn a_signal_stays_fired() {
        let signal = Signal::default();
        assert_eq!(signal.wait().now_or_never(), None);
        signal.fire();
        assert!(signal.is_fired());
        assert_eq!(signal.wait().now_or_never(), Some(()));
    }
}
