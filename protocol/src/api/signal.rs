//! A one-shot broadcast signal: fired once, awaited by any number of tasks.

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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal.clone();
        let mut state = signal.state();
        if state.fired {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = state.next_id;
                state.next_id = state.next_id.wrapping_add(1);
                self.id = Some(id);
                id
            }
        };
        state.wakers.insert(id, cx.waker().clone());
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

/// A counter of progress (messages consumed, bytes written) that tasks can wait on.
#[derive(Default)]
pub(crate) struct Progress(Mutex<(u64, Vec<Waker>)>);

impl Progress {
    fn state(&self) -> MutexGuard<'_, (u64, Vec<Waker>)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records progress and wakes every waiter.
    pub(crate) fn bump(&self) {
        let wakers = {
            let mut state = self.state();
            state.0 = state.0.wrapping_add(1);
            std::mem::take(&mut state.1)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// The current count.
    pub(crate) fn generation(&self) -> u64 {
        self.state().0
    }

    /// Completes once the count differs from `seen`.
    pub(crate) fn changed_since(&self, seen: u64) -> Changed<'_> {
        Changed {
            progress: self,
            seen,
        }
    }
}

/// Completes once progress has been made.
pub(crate) struct Changed<'a> {
    progress: &'a Progress,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.progress.state();
        if state.0 != self.seen {
            return Poll::Ready(());
        }
        if !state.1.iter().any(|w| w.will_wake(cx.waker())) {
            state.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
