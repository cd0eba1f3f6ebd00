//! The node: one node core shared by worker, connection and timer tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::channel::oneshot;
use futures::future::{self, Either};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};

use crate::channel::ChannelConfig;
use crate::identity::{Identifier, Identity};
use crate::message::TransportMessage;
use crate::node::{ConnectionId, NodeConfig, NodeCore, NodeError, NodeEvent, Output};
use crate::random::SystemRandom;
use crate::routing::{Address, Route};
use crate::trust::TrustPolicy;

use super::context::{Context, Delivery};
use super::runtime::{BoxFuture, Listener, Runtime, Stream};
use super::signal::{Progress, Signal};
use super::worker::{Routed, Worker};
use super::{Error, Result};

/// Settings of a [`Node`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node core's limits.
    pub core: NodeConfig,
    /// Secure channel settings (suite, handshake timeout).
    pub channel: ChannelConfig,
    /// How long [`Context::receive`] waits. Default 30 s.
    pub receive_timeout: Duration,
    /// How long a TCP connect may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long an application context's send may wait for a congested first hop
    /// (a mailbox or connection past half its limit) to drain. Default 30 s.
    pub send_timeout: Duration,
    /// How long [`Node::stop`] waits for connections to flush and tasks to end before
    /// cutting them off. Default 5 s.
    pub stop_grace: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            core: NodeConfig::default(),
            channel: ChannelConfig::default(),
            receive_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// A handle on an established secure channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureChannel {
    address: Address,
    peer: Identifier,
}

impl SecureChannel {
    /// The channel's address: send to `route![channel.address(), ...]` to go through it.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The peer's verified identifier.
    pub fn peer(&self) -> &Identifier {
        &self.peer
    }
}

impl From<&SecureChannel> for Address {
    fn from(channel: &SecureChannel) -> Self {
        channel.address.clone()
    }
}

/// A connection's write side and its close signal, as the node keeps them.
struct ConnectionHandle {
    writer: UnboundedSender<Vec<u8>>,
    close: Signal,
}

/// Everything behind the lock: the core and where its outputs go.
struct Driver {
    core: NodeCore,
    mailboxes: BTreeMap<Address, UnboundedSender<Delivery>>,
    connections: BTreeMap<ConnectionId, ConnectionHandle>,
    pending_channels:
        BTreeMap<Address, oneshot::Sender<std::result::Result<Identifier, NodeError>>>,
    channels: BTreeSet<Address>,
    armed: Option<Instant>,
    stopping: bool,
}

/// What every task of a node shares.
pub(crate) struct Shared {
    runtime: Arc<dyn Runtime>,
    options: NodeOptions,
    driver: Mutex<Driver>,
    /// Capacity one: a full channel means a wake is already pending.
    timer_wake: futures::channel::mpsc::Sender<()>,
    /// Fired by [`Node::stop`]: listeners and the timer end, readers stop reading.
    stopping: Signal,
    /// Fired when the grace period is over: every task ends.
    halt: Signal,
    tasks: AtomicUsize,
    /// Bumped whenever a mailbox message is consumed or connection bytes are written.
    progress: Progress,
}

impl Shared {
    fn driver(&self) -> MutexGuard<'_, Driver> {
        self.driver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the core, then carries out its outputs, all under the lock. Nothing
    /// here waits: deliveries and writes go to unbounded channels whose contents the
    /// core accounts for and limits.
    fn with_core<T>(self: &Arc<Self>, f: impl FnOnce(&mut NodeCore, Instant) -> T) -> T {
        let now = self.runtime.now();
        let mut driver = self.driver();
        let result = f(&mut driver.core, now);
        self.dispatch(&mut driver);
        result
    }

    fn dispatch(self: &Arc<Self>, d: &mut Driver) {
        let now = self.runtime.now();
        while let Some(output) = d.core.poll_output() {
            match output {
                Output::Deliver { address, message } => {
                    let delivered = d
                        .mailboxes
                        .get(&address)
                        .is_some_and(|tx| tx.unbounded_send(Ok(message)).is_ok());
                    if !delivered {
                        d.core.handle_consumed(&address, now);
                        self.progress.bump();
                    }
                }
                Output::Connect { connection, peer } => self.spawn_connect(connection, peer),
                Output::Transmit { connection, bytes } => {
                    let len = bytes.len();
                    let sent = d
                        .connections
                        .get(&connection)
                        .is_some_and(|c| c.writer.unbounded_send(bytes).is_ok());
                    if !sent {
                        d.core.handle_written(connection, len, now);
                        self.progress.bump();
                    }
                }
                Output::Close { connection } => {
                    if let Some(handle) = d.connections.remove(&connection) {
                        handle.close.fire();
                    }
                    // Senders waiting on this connection's backlog re-check at once.
                    self.progress.bump();
                }
                Output::Event(event) => {
                    if matches!(event, NodeEvent::ConnectionClosed { .. }) {
                        self.progress.bump();
                    }
                    Self::on_event(d, event);
                }
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
                d.channels.remove(&address);
                if let Some(waiting) = d.pending_channels.remove(&address) {
                    let _ = waiting.send(Err(error));
                } else {
                    tracing::debug!(%address, %error, "secure channel failed");
                }
            }
            NodeEvent::ChannelClosed { address, .. } => {
                d.channels.remove(&address);
                // A channel closed before it was established (by the peer, or by a
                // close during the handshake) must not leave its creator waiting.
                if let Some(waiting) = d.pending_channels.remove(&address) {
                    let _ = waiting.send(Err(NodeError::UnknownAddress(address)));
                }
            }
            NodeEvent::DeliveryFailed { sender, error } => {
                if let Some(tx) = sender.as_ref().and_then(|s| d.mailboxes.get(s)) {
                    let _ = tx.unbounded_send(Err(error));
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

    pub(crate) fn consumed(self: &Arc<Self>, address: &Address) {
        self.with_core(|core, now| core.handle_consumed(address, now));
        self.progress.bump();
    }

    /// Waits while the first hop of `route` is congested, up to the send timeout.
    pub(crate) async fn wait_uncongested(self: &Arc<Self>, route: &Route) -> Result<()> {
        let timeout = self.options.send_timeout;
        let deadline = self.runtime.now() + timeout;
        loop {
            let seen = self.progress.generation();
            if !self.driver().core.is_congested(route) {
                return Ok(());
            }
            if self.stopping.is_fired() {
                return Err(Error::Stopped);
            }
            let left = deadline.saturating_duration_since(self.runtime.now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            let changed = self.progress.changed_since(seen);
            let woken = future::select(changed, self.stopping.wait());
            let _ = future::select(woken, self.runtime.sleep(left)).await;
        }
    }

    pub(crate) fn unregister(self: &Arc<Self>, address: &Address) {
        let now = self.runtime.now();
        let mut d = self.driver();
        d.mailboxes.remove(address);
        d.core.unregister(address, now);
        self.dispatch(&mut d);
        drop(d);
        self.progress.bump();
    }

    /// Unregisters `address` only if its mailbox is still `mailbox`: a context dropped
    /// after its address was given to a new worker leaves the new one alone.
    pub(crate) fn unregister_if_owner(
        self: &Arc<Self>,
        address: &Address,
        mailbox: &UnboundedReceiver<Delivery>,
    ) {
        let now = self.runtime.now();
        let mut d = self.driver();
        if d.mailboxes
            .get(address)
            .is_some_and(|tx| tx.is_connected_to(mailbox))
        {
            d.mailboxes.remove(address);
            d.core.unregister(address, now);
            self.dispatch(&mut d);
            drop(d);
            self.progress.bump();
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

    /// Registers a mailbox and returns its receiving end.
    fn open_mailbox(self: &Arc<Self>, address: Address) -> Result<UnboundedReceiver<Delivery>> {
        let mut d = self.driver();
        if d.stopping {
            return Err(Error::Stopped);
        }
        d.core.register(address.clone())?;
        let (tx, rx) = unbounded();
        d.mailboxes.insert(address, tx);
        Ok(rx)
    }

    /// Spawns a task counted for [`Node::stop`].
    fn spawn(self: &Arc<Self>, task: impl std::future::Future<Output = ()> + Send + 'static) {
        struct Done(Arc<Shared>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.tasks.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.tasks.fetch_add(1, Ordering::AcqRel);
        let done = Done(self.clone());
        self.runtime.spawn(Box::pin(async move {
            let _done = done;
            task.await;
        }));
    }

    fn spawn_connect(self: &Arc<Self>, connection: ConnectionId, peer: String) {
        let shared = self.clone();
        self.spawn(async move {
            let timeout = shared.options.connect_timeout;
            let connect = shared.runtime.connect(peer.clone());
            let result = match future::select(connect, shared.runtime.sleep(timeout)).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                )),
            };
            match result {
                Ok(stream) => shared.attach(stream, |core, now| {
                    core.handle_connected(connection, now);
                    connection
                }),
                Err(error) => {
                    tracing::debug!(%peer, %error, "connect failed");
                    shared.with_core(|core, now| {
                        core.handle_connect_failed(connection, &error.to_string(), now)
                    });
                }
            }
        });
    }

    /// Starts the reader and writer tasks of a connected stream. `start` tells the
    /// core and returns the connection's id; the writer is registered under it before
    /// the core's outputs (the preamble first) are carried out.
    fn attach(
        self: &Arc<Self>,
        stream: Stream,
        start: impl FnOnce(&mut NodeCore, Instant) -> ConnectionId,
    ) {
        let (tx, rx) = unbounded();
        let close = Signal::default();
        let connection = {
            let now = self.runtime.now();
            let mut d = self.driver();
            if d.stopping {
                // Accepted or connected after stop: nobody would ever close it.
                return;
            }
            let connection = start(&mut d.core, now);
            d.connections.insert(
                connection,
                ConnectionHandle {
                    writer: tx,
                    close: close.clone(),
                },
            );
            self.dispatch(&mut d);
            connection
        };
        let Stream { reader, writer, .. } = stream;
        let shared = self.clone();
        let reader_close = close.clone();
        self.spawn(async move { shared.read_loop(connection, reader, reader_close).await });
        let shared = self.clone();
        self.spawn(async move { shared.write_loop(connection, writer, rx, close).await });
    }

    async fn read_loop(
        self: Arc<Self>,
        connection: ConnectionId,
        mut reader: Box<dyn futures::io::AsyncRead + Send + Unpin>,
        close: Signal,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Backpressure: while a message from this connection waits for room (a full
            // mailbox or connection backlog), read nothing more; TCP then slows the
            // sender. A consumed message or written bytes may end the wait.
            loop {
                let seen = self.progress.generation();
                if !self.driver().core.is_reading_paused(connection) {
                    break;
                }
                let stop = future::select(close.wait(), self.stopping.wait());
                if let Either::Right(_) =
                    future::select(self.progress.changed_since(seen), stop).await
                {
                    return;
                }
            }
            let stop = future::select(close.wait(), self.stopping.wait());
            let read = match future::select(reader.read(&mut buf), stop).await {
                Either::Left((read, _)) => read,
                Either::Right(_) => return,
            };
            match read {
                Ok(0) => {
                    self.with_core(|core, now| {
                        core.handle_connection_closed(connection, None, now)
                    });
                    return;
                }
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    self.with_core(|core, now| core.handle_received(connection, bytes, now));
                }
                Err(error) => {
                    let reason = error.to_string();
                    self.with_core(|core, now| {
                        core.handle_connection_closed(connection, Some(&reason), now)
                    });
                    return;
                }
            }
        }
    }

    async fn write_loop(
        self: Arc<Self>,
        connection: ConnectionId,
        mut writer: Box<dyn futures::io::AsyncWrite + Send + Unpin>,
        mut rx: UnboundedReceiver<Vec<u8>>,
        close: Signal,
    ) {
        const BATCH: usize = 256 * 1024;
        const MAX_PIECES: usize = 64;
        loop {
            // The core forgot a closed connection: stop writing to it at once.
            let stop = future::select(close.wait(), self.halt.wait());
            let next = match future::select(rx.next(), stop).await {
                Either::Left((next, _)) => next,
                Either::Right(_) => None,
            };
            let Some(first) = next else { break };
            let mut batch = Batch::new(first);
            while batch.len < BATCH && batch.pieces.len() < MAX_PIECES {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let write = async {
                batch.write_to(&mut writer).await?;
                writer.flush().await
            };
            let stop = future::select(close.wait(), self.halt.wait());
            let result = match future::select(Box::pin(write), stop).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => break,
            };
            if let Err(error) = result {
                let reason = error.to_string();
                self.with_core(|core, now| {
                    core.handle_connection_closed(connection, Some(&reason), now)
                });
                close.fire();
                break;
            }
            let written = batch.len;
            self.with_core(|core, now| core.handle_written(connection, written, now));
            self.progress.bump();
        }
        let _ = writer.close().await;
    }

    async fn accept_loop(self: Arc<Self>, mut listener: Box<dyn Listener>) {
        loop {
            let accepted = match future::select(listener.accept(), self.stopping.wait()).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(_) => return,
            };
            match accepted {
                Ok(stream) => {
                    let peer = stream.peer.to_string();
                    self.attach(stream, |core, now| {
                        core.handle_incoming_connection(peer, now)
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    // Errors such as too many open files pass; back off briefly so a
                    // persistent one does not spin.
                    self.runtime.sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

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
                Either::Left(_) => {
                    self.with_core(|core, now| core.handle_timeout(now));
                    // A stall may have timed out: its connection's reader re-checks.
                    self.progress.bump();
                }
                Either::Right((Either::Left((Some(()), _)), _)) => {}
                Either::Right(_) => return,
            }
        }
    }
}

/// A node: workers, contexts, TCP listeners and secure channels around one node core.
///
/// Cloning a `Node` gives another handle on the same node. When the last handle is
/// dropped without [`stop`](Node::stop), the node stops by itself in the background.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
    _handle: Arc<LastHandle>,
}

/// Stops the node when the last [`Node`] handle goes.
struct LastHandle(Arc<Shared>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        if self.0.stopping.is_fired() {
            return;
        }
        let shared = self.0.clone();
        // Not counted as a node task: it is the one that waits for them.
        self.0.runtime.spawn(Box::pin(async move {
            let _ = stop(&shared).await;
        }));
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node on `runtime`.
    ///
    /// # Errors
    ///
    /// None today; the signature leaves room for runtimes that can fail to start.
    pub async fn start_on(runtime: Arc<dyn Runtime>, options: NodeOptions) -> Result<Node> {
        let (timer_wake, wake) = futures::channel::mpsc::channel(0);
        let core = NodeCore::new(options.core.clone(), Box::new(SystemRandom::new()));
        let shared = Arc::new(Shared {
            runtime,
            options,
            driver: Mutex::new(Driver {
                core,
                mailboxes: BTreeMap::new(),
                connections: BTreeMap::new(),
                pending_channels: BTreeMap::new(),
                channels: BTreeSet::new(),
                armed: None,
                stopping: false,
            }),
            timer_wake,
            stopping: Signal::default(),
            halt: Signal::default(),
            tasks: AtomicUsize::new(0),
            progress: Progress::default(),
        });
        let timer = shared.clone();
        shared.spawn(async move { timer.timer_loop(wake).await });
        tracing::debug!("node started");
        let handle = Arc::new(LastHandle(shared.clone()));
        Ok(Node {
            shared,
            _handle: handle,
        })
    }

    /// Listens for TCP connections on `address` (`host:port`; port 0 picks a free
    /// port) and returns the address bound.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the address cannot be bound; [`Error::Stopped`].
    pub async fn listen(&self, address: &str) -> Result<SocketAddr> {
        if self.shared.stopping.is_fired() {
            return Err(Error::Stopped);
        }
        let listener = self
            .shared
            .runtime
            .bind(address.to_owned())
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {address}"),
                source,
            })?;
        let bound = listener.local_addr();
        tracing::debug!(%bound, "listening");
        let shared = self.shared.clone();
        self.shared
            .spawn(async move { shared.accept_loop(listener).await });
        Ok(bound)
    }

    /// Starts `worker` at `address`.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::AddressInUse`] if the address is taken.
    pub async fn start_worker<W: Worker>(
        &self,
        address: impl Into<Address>,
        worker: W,
    ) -> Result<()> {
        let address = address.into();
        let mailbox = self.shared.open_mailbox(address.clone())?;
        let ctx = Context::new(address, self.shared.clone(), mailbox, false);
        self.shared.spawn(run_worker(worker, ctx));
        Ok(())
    }

    /// Stops the worker at `address` once it has handled the messages already in its
    /// mailbox; later messages to the address fail as unknown.
    ///
    /// # Errors
    ///
    /// None today.
    pub async fn stop_worker(&self, address: impl Into<Address>) -> Result<()> {
        self.shared.unregister(&address.into());
        Ok(())
    }

    /// A context at `address`, for the application to send and receive.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::AddressInUse`] if the address is taken.
    pub async fn context(&self, address: impl Into<Address>) -> Result<Context> {
        let address = address.into();
        let mailbox = self.shared.open_mailbox(address.clone())?;
        Ok(Context::new(address, self.shared.clone(), mailbox, true))
    }

    /// Creates a secure channel listener at `address`: initiators that send their
    /// hello there get a channel with `identity`, if `trust` accepts them.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::AddressInUse`] if the address is taken.
    pub async fn create_secure_channel_listener(
        &self,
        address: impl Into<Address>,
        identity: &Identity,
        trust: impl TrustPolicy,
    ) -> Result<()> {
        let config = self.shared.options.channel.clone();
        let identity = Arc::new(identity.clone());
        self.shared.with_core(|core, _| {
            core.create_channel_listener(address.into(), identity, Arc::new(trust), config)
        })?;
        Ok(())
    }

    /// Creates a secure channel to the listener at the end of `route`, as `identity`,
    /// accepting the responder only if `trust` does, and waits until it is established.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::Channel`] if the handshake fails (the peer is
    /// not trusted, refused us, or did not answer within the handshake timeout), or
    /// another [`NodeError`] if the hello could not be sent.
    pub async fn create_secure_channel(
        &self,
        route: impl Into<Route>,
        identity: &Identity,
        trust: impl TrustPolicy,
    ) -> Result<SecureChannel> {
        let config = self.shared.options.channel.clone();
        let identity = Arc::new(identity.clone());
        let route = route.into();
        let (tx, rx) = oneshot::channel();
        let address = {
            let now = self.shared.runtime.now();
            let mut d = self.shared.driver();
            if d.stopping {
                return Err(Error::Stopped);
            }
            let (_, address) =
                d.core
                    .create_channel(route, identity, Arc::new(trust), &config, now)?;
            d.pending_channels.insert(address.clone(), tx);
            self.shared.dispatch(&mut d);
            address
        };
        match rx.await {
            Ok(Ok(peer)) => Ok(SecureChannel { address, peer }),
            Ok(Err(error)) => Err(Error::Node(error)),
            Err(_) => Err(Error::Stopped),
        }
    }

    /// Closes a secure channel: the peer is told, and the channel's address goes.
    pub async fn close_secure_channel(&self, channel: &SecureChannel) {
        self.shared
            .with_core(|core, now| core.close_channel(&channel.address, now));
    }

    /// Counters of what the node refused or dropped.
    pub fn stats(&self) -> crate::node::NodeStats {
        self.shared.driver().core.stats()
    }

    /// Stops the node: channels are closed (their peers told), workers finish the
    /// messages in their mailboxes, connections flush what is queued, and every task
    /// ends. Waits at most the stop grace period, then cuts off what is left.
    ///
    /// # Errors
    ///
    /// None today.
    pub async fn stop(&self) -> Result<()> {
        stop(&self.shared).await
    }
}

/// Stops the node behind `shared`; see [`Node::stop`].
async fn stop(shared: &Arc<Shared>) -> Result<()> {
    {
        let now = shared.runtime.now();
        let mut d = shared.driver();
        if d.stopping {
            return Ok(());
        }
        d.stopping = true;
        let channels: Vec<Address> = d.channels.iter().cloned().collect();
        for channel in channels {
            d.core.close_channel(&channel, now);
        }
        shared.dispatch(&mut d);
        // Closing the channels ends mailboxes and writers once drained.
        d.mailboxes.clear();
        for (_, handle) in std::mem::take(&mut d.connections) {
            drop(handle.writer);
        }
        d.pending_channels.clear();
    }
    shared.stopping.fire();
    let grace = shared.options.stop_grace;
    let deadline = shared.runtime.now() + grace;
    while shared.tasks.load(Ordering::Acquire) > 0 && shared.runtime.now() < deadline {
        shared.runtime.sleep(Duration::from_millis(5)).await;
    }
    shared.halt.fire();
    tracing::debug!("node stopped");
    Ok(())
}

async fn run_worker<W: Worker>(mut worker: W, mut ctx: Context) {
    if let Err(error) = worker.initialize(&mut ctx).await {
        tracing::debug!(address = %ctx.address(), %error, "worker failed to initialize");
        return;
    }
    loop {
        let message = match ctx.next_delivery(None).await {
            Ok(message) => message,
            Err(Error::Stopped) => break,
            Err(error) => {
                tracing::debug!(address = %ctx.address(), %error, "worker's send failed");
                continue;
            }
        };
        let result = match Routed::<W::Message>::decode(message) {
            Ok(routed) => worker.handle_message(&mut ctx, routed).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::debug!(address = %ctx.address(), %error, "worker failed to handle a message");
        }
    }
    if let Err(error) = worker.shutdown(&mut ctx).await {
        tracing::debug!(address = %ctx.address(), %error, "worker failed to shut down");
    }
}

/// Frames waiting for one vectored write. Small frames are gathered into one piece (a
/// copy of a few bytes saves a system call); a large frame stays its own piece and is
/// written from where it lies, not copied.
struct Batch {
    pieces: Vec<Vec<u8>>,
    len: usize,
}

impl Batch {
    /// Frames up to this size are gathered; larger ones are written as they are.
    const SMALL: usize = 4096;
    /// A gathering piece stops growing at this size.
    const GATHER: usize = 16 * 1024;

    fn new(first: Vec<u8>) -> Self {
        Self {
            len: first.len(),
            pieces: vec![first],
        }
    }

    fn push(&mut self, frame: Vec<u8>) {
        self.len += frame.len();
        match self.pieces.last_mut() {
            Some(last) if frame.len() <= Self::SMALL && last.len() < Self::GATHER => {
                last.extend_from_slice(&frame);
            }
            _ => self.pieces.push(frame),
        }
    }

    /// Writes every piece, in order, with as few system calls as the writer allows.
    async fn write_to(
        &self,
        writer: &mut (dyn futures::io::AsyncWrite + Send + Unpin),
    ) -> std::io::Result<()> {
        let mut slices: Vec<std::io::IoSlice<'_>> = self
            .pieces
            .iter()
            .map(|p| std::io::IoSlice::new(p))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = writer.write_vectored(rest).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Accepts at most `step` bytes per call, vectored or not.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl futures::io::AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.step - n);
                self.written.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_batch_writes_every_frame_in_order_through_partial_writes() {
        let frames: Vec<Vec<u8>> = [10, 5000, 3, 70_000, 1, 2, 4096, 20_000, 7]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8; len])
            .collect();
        let mut batch = Batch::new(frames[0].clone());
        for frame in &frames[1..] {
            batch.push(frame.clone());
        }
        let expected: Vec<u8> = frames.concat();
        assert_eq!(batch.len, expected.len());
        // Small neighbours were gathered; the large frames stand alone.
        assert!(
            batch.pieces.len() < frames.len(),
            "{} pieces",
            batch.pieces.len()
        );
        assert!(batch.pieces.iter().any(|p| p.len() == 70_000));
        for step in [1, 7, 4096, 1 << 20] {
            let mut out = Trickle {
                written: Vec::new(),
                step,
                calls: 0,
            };
            futures::FutureExt::now_or_never(batch.write_to(&mut out))
                .expect("the writer never waits")
                .unwrap();
            assert_eq!(out.written, expected, "step {step}");
            if step == 1 << 20 {
                assert_eq!(
                    out.calls, 1,
                    "one vectored write when the writer takes it all"
                );
            }
        }
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        let batch = Batch::new(vec![1, 2, 3]);
        let mut out = Trickle {
            written: Vec::new(),
            step: 0,
            calls: 0,
        };
        let error = futures::FutureExt::now_or_never(batch.write_to(&mut out))
            .expect("the writer never waits")
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
    }
}
