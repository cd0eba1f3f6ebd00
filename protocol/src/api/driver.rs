//! The driver: the node core behind one lock, and the dispatch of its outputs to
//! mailboxes, connection tasks and waiting senders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{self, Either};
use futures::StreamExt;
use smallvec::SmallVec;

use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::node::{Access, ConnectionId, Hop, NodeCore, NodeError, NodeEvent, Output};
use crate::routing::{Address, Route, TransportType};

use super::context::Delivery;
use super::node::NodeOptions;
use super::outbox::{Outbox, Queued, Spent};
use super::queue::{queue, Receiver, Sender};
use super::runtime::{BoxFuture, Runtime};
use super::signal::{Gate, Signal};
use super::transport::{Plugged, Tcp};
use super::{Error, Result};

/// Where a connection's frames go: a stream's outbox, or the queue of the task that
/// sends a message transport's units.
pub(super) enum FrameSink {
    Stream(Outbox),
    Units(Sender<Vec<u8>>),
}

/// A connection's write side, its close signal and its read gate, as the driver keeps
/// them.
pub(super) struct ConnectionHandle {
    pub(super) writer: FrameSink,
    pub(super) close: Signal,
    /// Closed while the core has paused reading the connection.
    pub(super) reading: Gate,
}

/// Everything behind the lock: the core and where its outputs go.
pub(super) struct Driver {
    pub(super) core: NodeCore,
    pub(super) mailboxes: BTreeMap<Address, Sender<Delivery>>,
    pub(super) connections: BTreeMap<ConnectionId, ConnectionHandle>,
    pub(super) pending_channels:
        BTreeMap<Address, oneshot::Sender<std::result::Result<Identifier, NodeError>>>,
    pub(super) channels: BTreeSet<Address>,
    /// Senders waiting for a congested first hop to drain, by hop.
    congested: BTreeMap<Hop, Vec<oneshot::Sender<()>>>,
    armed: Option<Instant>,
    pub(super) stopping: bool,
    /// The running workers, each with the signal its task fires when it has ended
    /// (after its `shutdown`).
    pub(super) workers: BTreeMap<Address, Signal>,
    /// Who waits for each channel to end, and hears why.
    pub(super) channel_watchers: BTreeMap<Address, Vec<oneshot::Sender<NodeError>>>,
    /// The transports the node carries, by type (TCP from the start).
    pub(super) transports: BTreeMap<TransportType, Plugged>,
    /// Outboxes given frames by the outputs being carried out, to be written once the
    /// lock is let go (or their writers woken). Empty whenever the lock is free.
    touched: SmallVec<[(ConnectionId, Queued); 2]>,
}

/// What every task of a node shares.
pub(crate) struct Shared {
    pub(super) runtime: Arc<dyn Runtime>,
    pub(super) options: NodeOptions,
    driver: Mutex<Driver>,
    /// Capacity one: a full channel means a wake is already pending.
    timer_wake: futures::channel::mpsc::Sender<()>,
    /// Fired when [`Node::stop`](super::Node::stop) begins: listeners stop accepting,
    /// and workers finish what their mailboxes hold, sends still working.
    pub(super) closing: Signal,
    /// Running workers, and the signal fired when the last one has ended once the
    /// node is closing.
    pub(super) workers: AtomicUsize,
    pub(super) workers_done: Signal,
    /// The next id for a tracked send (from 1: 0 means none).
    sends: std::sync::atomic::AtomicU64,
    /// Fired once the workers are done (or the first half of the grace period is
    /// over): channels are closed, the timer ends, readers stop reading, and sends
    /// are refused.
    pub(super) stopping: Signal,
    /// Fired when the grace period is over: every task ends.
    pub(super) halt: Signal,
    tasks: AtomicUsize,
    /// Fired when the last task has ended (there is always one, the timer, until the
    /// node stops).
    pub(super) all_done: Signal,
}

impl Shared {
    /// A node's shared state around `core`, with its timer task started.
    pub(super) fn start(
        runtime: Arc<dyn Runtime>,
        options: NodeOptions,
        core: NodeCore,
    ) -> Arc<Self> {
        let (timer_wake, wake) = futures::channel::mpsc::channel(0);
        let tcp = Plugged::Stream(Arc::new(Tcp(runtime.clone())));
        let shared = Arc::new(Shared {
            runtime,
            options,
            driver: Mutex::new(Driver {
                core,
                mailboxes: BTreeMap::new(),
                connections: BTreeMap::new(),
                pending_channels: BTreeMap::new(),
                channels: BTreeSet::new(),
                congested: BTreeMap::new(),
                armed: None,
                stopping: false,
                workers: BTreeMap::new(),
                channel_watchers: BTreeMap::new(),
                transports: BTreeMap::from([(TransportType::TCP, tcp)]),
                touched: SmallVec::new(),
            }),
            timer_wake,
            closing: Signal::default(),
            workers: AtomicUsize::new(0),
            workers_done: Signal::default(),
            sends: std::sync::atomic::AtomicU64::new(1),
            stopping: Signal::default(),
            halt: Signal::default(),
            tasks: AtomicUsize::new(0),
            all_done: Signal::default(),
        });
        let timer = shared.clone();
        shared.spawn(async move { timer.timer_loop(wake).await });
        shared
    }

    pub(super) fn driver(&self) -> MutexGuard<'_, Driver> {
        self.driver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the core, then carries out its outputs under the lock; frames for
    /// streams whose writers are idle are then written from this task, after the lock
    /// is let go (see [`Queued::write_now`]), and what they wrote told to the core.
    /// Nothing here waits: deliveries and the rest go to unbounded queues whose
    /// contents the core accounts for and limits.
    pub(super) fn with_core<T>(self: &Arc<Self>, f: impl FnOnce(&mut NodeCore, Instant) -> T) -> T {
        let now = self.runtime.now();
        let mut driver = self.driver();
        let result = f(&mut driver.core, now);
        self.carry_out(&mut driver, now);
        while !driver.touched.is_empty() {
            let touched = std::mem::take(&mut driver.touched);
            drop(driver);
            let mut written = SmallVec::<[(ConnectionId, usize); 2]>::new();
            let mut spent = Spent::new();
            for (connection, queued) in touched {
                let n = queued.write_now(&mut spent);
                if n > 0 {
                    written.push((connection, n));
                }
            }
            // Nothing written here (the writers have it all): nothing to tell.
            if written.is_empty() {
                return result;
            }
            driver = self.driver();
            for &(connection, n) in &written {
                driver.core.handle_written(connection, n, now);
            }
            for bytes in spent {
                driver.core.recycle_transmit(bytes);
            }
            self.carry_out(&mut driver, now);
        }
        result
    }

    /// Carries out every output of the core, with `now` the time of the input that
    /// made them (the clock is read once per input, not again here), and wakes the
    /// writers of the streams given frames.
    pub(super) fn dispatch(self: &Arc<Self>, d: &mut Driver, now: Instant) {
        self.carry_out(d, now);
        for (_, queued) in std::mem::take(&mut d.touched) {
            queued.wake();
        }
    }

    /// [`dispatch`](Self::dispatch), leaving the streams given frames in
    /// `d.touched`.
    fn carry_out(self: &Arc<Self>, d: &mut Driver, now: Instant) {
        while let Some(output) = d.core.poll_output() {
            match output {
                Output::Deliver {
                    address,
                    message,
                    origin,
                } => {
                    let delivered = d
                        .mailboxes
                        .get(&address)
                        .is_some_and(|tx| tx.send(Ok((message, origin))).is_ok());
                    if !delivered {
                        d.core.handle_consumed(&address, now);
                    }
                }
                Output::Connect { connection, peer } => {
                    let value = peer.value_str().unwrap_or_default().to_owned();
                    match d.transports.get(&peer.transport()).cloned() {
                        Some(Plugged::Stream(transport)) => {
                            self.spawn_connect(connection, value, transport);
                        }
                        Some(Plugged::Message(transport)) => {
                            self.open_message_peer(d, connection, value, transport, now);
                        }
                        None => d.core.handle_connect_failed(
                            connection,
                            "no transport of its type was added to this node",
                            now,
                        ),
                    }
                }
                Output::Transmit { connection, bytes } => {
                    let len = bytes.len();
                    let sent = match d.connections.get(&connection).map(|c| &c.writer) {
                        Some(FrameSink::Stream(outbox)) => {
                            let sent = outbox.push(bytes).is_ok();
                            if sent && d.touched.last().is_none_or(|(c, _)| *c != connection) {
                                d.touched.push((connection, outbox.queued()));
                            }
                            sent
                        }
                        Some(FrameSink::Units(tx)) => tx.send(bytes).is_ok(),
                        None => false,
                    };
                    if !sent {
                        d.core.handle_written(connection, len, now);
                    }
                }
                Output::Close { connection } => {
                    if let Some(handle) = d.connections.remove(&connection) {
                        handle.close.fire();
                    }
                }
                Output::PauseReading { connection } => {
                    if let Some(handle) = d.connections.get(&connection) {
                        handle.reading.close();
                    }
                }
                Output::ResumeReading { connection } => {
                    if let Some(handle) = d.connections.get(&connection) {
                        handle.reading.open();
                    }
                }
                Output::Decongested(hop) => {
                    for waiter in d.congested.remove(&hop).unwrap_or_default() {
                        let _ = waiter.send(());
                    }
                }
                Output::Event(event) => Self::on_event(d, event),
            }
        }
        let deadline = d.core.poll_timeout();
        if deadline != d.armed {
            d.armed = deadline;
            let _ = self.timer_wake.clone().try_send(());
        }
    }

    fn on_event(d: &mut Driver, event: NodeEvent) {
        match event {
            NodeEvent::ChannelEstablished { address, peer, .. } => {
                d.channels.insert(address.clone());
                if let Some(waiting) = d.pending_channels.remove(&address) {
                    let _ = waiting.send(Ok(peer));
                }
            }
            NodeEvent::ChannelFailed { address, error, .. } => {
                // A persistent channel stays, to be closed at stop even while down.
                if !d.core.is_persistent_channel(&address) {
                    d.channels.remove(&address);
                    for watcher in d.channel_watchers.remove(&address).unwrap_or_default() {
                        let _ = watcher.send(error.clone());
                    }
                }
                if let Some(waiting) = d.pending_channels.remove(&address) {
                    let _ = waiting.send(Err(error));
                } else {
                    tracing::debug!(%address, %error, "secure channel failed");
                }
            }
            NodeEvent::ChannelClosed { address, .. } => {
                if !d.core.is_persistent_channel(&address) {
                    d.channels.remove(&address);
                    for watcher in d.channel_watchers.remove(&address).unwrap_or_default() {
                        let _ = watcher.send(NodeError::Channel {
                            address: address.clone(),
                            error: crate::channel::ChannelError::Closed,
                        });
                    }
                }
                // A channel closed before it was established (by the peer, or by a
                // close during the handshake) must not leave its creator waiting.
                if let Some(waiting) = d.pending_channels.remove(&address) {
                    let _ = waiting.send(Err(NodeError::UnknownAddress(address)));
                }
            }
            NodeEvent::DeliveryFailed {
                sender,
                error,
                send,
            } => {
                if let Some(tx) = sender.as_ref().and_then(|s| d.mailboxes.get(s)) {
                    let _ = tx.send(Err((error, send)));
                } else {
                    tracing::debug!(%error, "delivery failed");
                }
            }
            NodeEvent::ConnectionClosed { connection, .. } => {
                if let Some(handle) = d.connections.remove(&connection) {
                    handle.close.fire();
                }
            }
        }
    }

    pub(crate) fn send(
        self: &Arc<Self>,
        sender: &Address,
        message: TransportMessage,
    ) -> Result<()> {
        if self.stopping.is_fired() {
            return Err(Error::Stopped);
        }
        self.with_core(|core, now| core.handle_send(sender, message, now))
            .map_err(Error::Node)
    }

    /// As [`send`](Self::send), giving the send a fresh id (returned) that a later
    /// failure of the message is reported with.
    pub(crate) fn send_tracked(
        self: &Arc<Self>,
        sender: &Address,
        message: TransportMessage,
    ) -> Result<u64> {
        if self.stopping.is_fired() {
            return Err(Error::Stopped);
        }
        let send = self.sends.fetch_add(1, Ordering::Relaxed);
        self.with_core(|core, now| core.handle_send_tracked(sender, message, send, now))
            .map_err(Error::Node)?;
        Ok(send)
    }

    pub(crate) fn consumed(self: &Arc<Self>, address: &Address) {
        self.with_core(|core, now| core.handle_consumed(address, now));
    }

    /// Waits while the first hop of `route` is congested, up to the send timeout: the
    /// core names the hop, and this waits for the output that says it drained.
    pub(crate) async fn wait_uncongested(self: &Arc<Self>, route: &Route) -> Result<()> {
        let timeout = self.options.send_timeout;
        // A timeout too large to add to the clock waits in rounds of `timeout`.
        let deadline = self.runtime.now().checked_add(timeout);
        loop {
            let Some(drained) = self.congested(route) else {
                return Ok(());
            };
            if self.stopping.is_fired() {
                return Err(Error::Stopped);
            }
            let left =
                deadline.map_or(timeout, |d| d.saturating_duration_since(self.runtime.now()));
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            let woken = future::select(drained, self.stopping.wait());
            let _ = future::select(woken, self.runtime.sleep(left)).await;
        }
    }

    /// If the first hop of `route` is congested now, a receiver that completes once
    /// it has drained (or is dropped with the hop).
    pub(crate) fn congested(self: &Arc<Self>, route: &Route) -> Option<oneshot::Receiver<()>> {
        let mut d = self.driver();
        let hop = d.core.congestion(route)?;
        let (tx, rx) = oneshot::channel();
        let waiters = d.congested.entry(hop).or_default();
        // Waiters that gave up leave nothing behind.
        waiters.retain(|w| !w.is_canceled());
        waiters.push(tx);
        Some(rx)
    }

    pub(crate) fn unregister(self: &Arc<Self>, address: &Address) {
        let now = self.runtime.now();
        let mut d = self.driver();
        d.mailboxes.remove(address);
        d.core.unregister(address, now);
        self.dispatch(&mut d, now);
    }

    /// Unregisters `address` only if its mailbox is still `mailbox`: a context dropped
    /// after its address was given to a new worker leaves the new one alone.
    pub(crate) fn unregister_if_owner(
        self: &Arc<Self>,
        address: &Address,
        mailbox: &Receiver<Delivery>,
    ) {
        let now = self.runtime.now();
        let mut d = self.driver();
        if d.mailboxes
            .get(address)
            .is_some_and(|tx| tx.is_connected_to(mailbox))
        {
            d.mailboxes.remove(address);
            d.core.unregister(address, now);
            self.dispatch(&mut d, now);
        }
    }

    pub(crate) fn channel_peer(&self, address: &Address) -> Option<Identifier> {
        self.driver().core.channel_peer(address)
    }

    pub(crate) fn receive_timeout(&self) -> Duration {
        self.options.receive_timeout
    }

    pub(crate) fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.runtime.sleep(duration)
    }

    /// Registers a mailbox that takes what `access` admits and returns its receiving
    /// end.
    pub(super) fn open_mailbox(
        self: &Arc<Self>,
        address: Address,
        access: Access,
    ) -> Result<Receiver<Delivery>> {
        let now = self.runtime.now();
        let mut d = self.driver();
        if d.stopping {
            return Err(Error::Stopped);
        }
        d.core.register(address.clone(), access, now)?;
        let (tx, rx) = queue();
        d.mailboxes.insert(address, tx);
        Ok(rx)
    }

    /// Opens a mailbox at a fresh address that takes what the mailbox at `like`
    /// takes: where the reply to one request comes.
    pub(super) fn open_reply_mailbox(
        self: &Arc<Self>,
        like: &Address,
    ) -> Result<(Address, Receiver<Delivery>)> {
        let access = self
            .driver()
            .core
            .mailbox_access(like)
            .cloned()
            .unwrap_or_default();
        self.open_fresh_mailbox(access)
    }

    /// A mailbox at a fresh random address, with `access`.
    pub(super) fn open_fresh_mailbox(
        self: &Arc<Self>,
        access: Access,
    ) -> Result<(Address, Receiver<Delivery>)> {
        let now = self.runtime.now();
        let mut d = self.driver();
        if d.stopping {
            return Err(Error::Stopped);
        }
        let address = d.core.generate_address()?;
        d.core.register(address.clone(), access, now)?;
        let (tx, rx) = queue();
        d.mailboxes.insert(address.clone(), tx);
        Ok((address, rx))
    }

    /// A worker's task ended (its `shutdown` has run): `done` fires, and if it was
    /// the last while the node is closing, so does `workers_done`.
    pub(super) fn worker_ended(&self, done: Signal) {
        done.fire();
        {
            let mut d = self.driver();
            d.workers.retain(|_, signal| !signal.is_fired());
        }
        if self.workers.fetch_sub(1, Ordering::AcqRel) == 1 && self.closing.is_fired() {
            self.workers_done.fire();
        }
    }

    /// Spawns a task counted for [`Node::stop`](super::Node::stop).
    pub(super) fn spawn(
        self: &Arc<Self>,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        struct Done(Arc<Shared>);
        impl Drop for Done {
            fn drop(&mut self) {
                if self.0.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.0.all_done.fire();
                }
            }
        }
        self.tasks.fetch_add(1, Ordering::AcqRel);
        let done = Done(self.clone());
        let halt = self.halt.wait();
        self.runtime.spawn(Box::pin(async move {
            let _done = done;
            // Past the stop grace period every task is cut off, whatever it waits on:
            // a worker whose handler never returns would otherwise outlive its node.
            let task = std::pin::pin!(task);
            let _ = future::select(task, halt).await;
        }));
    }

    /// Calls the core's timeout handler whenever its earliest deadline passes; woken
    /// early when the deadline changes.
    async fn timer_loop(self: Arc<Self>, mut wake: futures::channel::mpsc::Receiver<()>) {
        loop {
            let now = self.runtime.now();
            let deadline = self.driver().core.poll_timeout();
            let wait = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(now)
            });
            let sleep = self.runtime.sleep(wait);
            let woken = future::select(wake.next(), self.stopping.wait());
            match future::select(sleep, woken).await {
                Either::Left(_) => self.with_core(|core, now| core.handle_timeout(now)),
                Either::Right((Either::Left((Some(()), _)), _)) => {}
                Either::Right(_) => return,
            }
        }
    }
}
