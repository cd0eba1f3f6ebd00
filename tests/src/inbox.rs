//! A message transport between the nodes of one process, written with the public API:
//! inboxes in memory, each with room for a fixed number of units. An offer that would
//! take an inbox past its room is refused whole (`WouldBlock`), as the Redis
//! transport's add script refuses a batch, but stricter: an empty inbox is no
//! exception, so a batch larger than the room never fits whole. A test can hold the
//! next offer back, to let a batch build up behind it, and read the largest offer
//! made.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use futures::channel::oneshot;
use onward_protocol::api::{BoxFuture, MessageTransport, Unit};
use onward_protocol::routing::TransportType;

/// The transport type the suite gives in-memory inboxes (any free type would do).
pub const MEMORY: TransportType = TransportType(101);

#[derive(Default)]
struct Inbox {
    units: VecDeque<Unit>,
    reader: Option<Waker>,
}

struct Hub {
    room: usize,
    inboxes: HashMap<String, Inbox>,
    held: Option<oneshot::Receiver<()>>,
    largest_offer: usize,
    refused: usize,
}

/// The inboxes of one test's nodes, each with the same room.
#[derive(Clone)]
pub struct Inboxes(Arc<Mutex<Hub>>);

impl Inboxes {
    /// Inboxes that hold at most `room` units each.
    pub fn new(room: usize) -> Self {
        Self(Arc::new(Mutex::new(Hub {
            room,
            inboxes: HashMap::new(),
            held: None,
            largest_offer: 0,
            refused: 0,
        })))
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A transport whose inbox is `inbox`, for one node.
    pub fn transport(&self, inbox: &str) -> MemoryTransport {
        MemoryTransport {
            inboxes: self.clone(),
            inbox: inbox.to_owned(),
        }
    }

    /// Holds the next offer, whoever makes it, until the returned sender is dropped.
    pub fn hold(&self) -> oneshot::Sender<()> {
        let (release, held) = oneshot::channel();
        self.hub().held = Some(held);
        release
    }

    /// The most units offered at once so far.
    pub fn largest_offer(&self) -> usize {
        self.hub().largest_offer
    }

    /// How many offers were refused so far.
    pub fn refused(&self) -> usize {
        self.hub().refused
    }

    /// Takes `units` from `from` into `to`, all or none.
    fn offer(&self, from: &str, to: &str, units: Vec<Vec<u8>>) -> io::Result<()> {
        let mut hub = self.hub();
        hub.largest_offer = hub.largest_offer.max(units.len());
        let room = hub.room;
        let inbox = hub.inboxes.entry(to.to_owned()).or_default();
        if inbox.units.len() + units.len() > room {
            hub.refused += 1;
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("the inbox {to} has no room for {} units", units.len()),
            ));
        }
        inbox.units.extend(units.into_iter().map(|bytes| Unit {
            from: from.to_owned(),
            bytes,
        }));
        if let Some(reader) = inbox.reader.take() {
            reader.wake();
        }
        Ok(())
    }
}

/// One node's end of [`Inboxes`].
pub struct MemoryTransport {
    inboxes: Inboxes,
    inbox: String,
}

impl MessageTransport for MemoryTransport {
    fn inbox(&self) -> String {
        self.inbox.clone()
    }

    fn send(&self, peer: &str, units: &[Vec<u8>]) -> BoxFuture<'static, io::Result<()>> {
        let held = self.inboxes.hub().held.take();
        let (inboxes, from, to) = (self.inboxes.clone(), self.inbox.clone(), peer.to_owned());
        let units = units.to_vec();
        Box::pin(async move {
            if let Some(held) = held {
                let _ = held.await;
            }
            inboxes.offer(&from, &to, units)
        })
    }

    fn receive(&self) -> BoxFuture<'_, io::Result<Unit>> {
        Box::pin(futures::future::poll_fn(move |cx| {
            let mut hub = self.inboxes.hub();
            let inbox = hub.inboxes.entry(self.inbox.clone()).or_default();
            match inbox.units.pop_front() {
                Some(unit) => Poll::Ready(Ok(unit)),
                None => {
                    inbox.reader = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }))
    }
}
