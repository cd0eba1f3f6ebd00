//! The node handle: starting a node, its workers, listeners and channels, and stopping
//! it.

use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future;
use futures::FutureExt;

use crate::channel::ChannelConfig;
use crate::identity::{Identifier, Identity};
use crate::node::{Access, ChannelRules, ChannelState, NodeConfig, NodeCore, NodeError};
use crate::random::SystemRandom;
use crate::routing::{Address, Route, TransportType};
use crate::trust::TrustPolicy;

use super::context::Context;
use super::driver::Shared;
use super::runtime::Runtime;
use super::signal::Signal;
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
    /// How long [`Node::stop`] may take: workers get up to half of it to finish their
    /// mailboxes, and what is left of it goes to connections flushing and tasks
    /// ending before they are cut off. Default 5 s.
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
///
/// Cloning it gives another handle on the same channel. When the last handle is
/// dropped, the channel is closed (its peer told), as
/// [`Node::close_secure_channel`] does: a channel nobody holds does not keep sending
/// keepalives and holding memory. Keep a handle for as long as routes through
/// [`address`](Self::address) are used.
#[derive(Debug, Clone)]
pub struct SecureChannel {
    address: Address,
    peer: Identifier,
    _last: Arc<CloseOnDrop>,
}

impl PartialEq for SecureChannel {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address && self.peer == other.peer
    }
}

impl Eq for SecureChannel {}

/// Closes a channel when the last [`SecureChannel`] handle on it goes.
struct CloseOnDrop {
    address: Address,
    shared: std::sync::Weak<Shared>,
}

impl fmt::Debug for CloseOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CloseOnDrop")
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // A stopped node closed its channels already.
        if let Some(shared) = self.shared.upgrade() {
            if !shared.stopping.is_fired() {
                let address = &self.address;
                tracing::debug!(%address, "last handle dropped: closing the secure channel");
                shared.with_core(|core, now| core.close_channel(address, now));
            }
        }
    }
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

    /// What the channel is doing now: established, ended (closed by either side, or
    /// failed: why), or, for a persistent channel, down or in a new handshake. `None`
    /// once the node has stopped.
    pub fn state(&self) -> Option<ChannelState> {
        let shared = self._last.shared.upgrade()?;
        let state = shared.driver().core.channel_state(&self.address);
        state
    }

    /// Resolves when the channel has ended for good, with why: closed by this node or
    /// its peer (`ChannelError::Closed`), or failed (the peer unresponsive, refused,
    /// lost, ...). A persistent channel ends only when it is closed; its failures in
    /// between are [`state`](Self::state)'s to tell. Resolves at once if the channel
    /// has ended already, and with `Closed` when the node stops.
    pub async fn closed(&self) -> NodeError {
        let closed = || NodeError::Channel {
            address: self.address.clone(),
            error: crate::channel::ChannelError::Closed,
        };
        let Some(shared) = self._last.shared.upgrade() else {
            return closed();
        };
        let wait = {
            let mut d = shared.driver();
            match d.core.channel_state(&self.address) {
                Some(ChannelState::Ended(error)) => {
                    return NodeError::Channel {
                        address: self.address.clone(),
                        error,
                    }
                }
                None => return closed(),
                Some(_) if d.stopping => return closed(),
                Some(_) => {}
            }
            let (tx, rx) = oneshot::channel();
            let watchers = d.channel_watchers.entry(self.address.clone()).or_default();
            // Waits given up leave nothing behind.
            watchers.retain(|w| !w.is_canceled());
            watchers.push(tx);
            rx
        };
        wait.await.unwrap_or_else(|_| closed())
    }
}

impl From<&SecureChannel> for Address {
    fn from(channel: &SecureChannel) -> Self {
        channel.address.clone()
    }
}

/// A node: workers, contexts, TCP listeners and secure channels around one node core.
///
/// Cloning a `Node` gives another handle on the same node. When the last handle is
/// dropped without [`stop`](Node::stop), the node stops by itself in the background.
#[derive(Clone)]
pub struct Node {
    pub(super) shared: Arc<Shared>,
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
        let core = NodeCore::new(options.core.clone(), Box::new(SystemRandom::new()));
        let shared = Shared::start(runtime, options, core);
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
        if self.shared.closing.is_fired() {
            return Err(Error::Stopped);
        }
        let listener = self
            .shared
            .runtime
            .bind(address.to_owned())
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {address}"),
                source: Arc::new(source),
            })?;
        let bound = listener.local_addr();
        tracing::debug!(%bound, "listening");
        let shared = self.shared.clone();
        let listener = Box::new(super::transport::TcpListener(listener));
        self.shared
            .spawn(async move { shared.accept_loop(TransportType::TCP, listener).await });
        Ok(bound)
    }

    /// Starts `worker` at `address`, taking messages from senders on this node and
    /// through secure channels ([`Access::secure_channels`]); plain messages from
    /// transport connections are refused. [`start_worker_with`](Self::start_worker_with)
    /// says who else may reach it.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::AddressInUse`](crate::node::NodeError::AddressInUse) if the address is taken.
    pub async fn start_worker<W: Worker>(
        &self,
        address: impl Into<Address>,
        worker: W,
    ) -> Result<()> {
        self.start_worker_with(address, worker, Access::default())
            .await
    }

    /// Starts `worker` at `address`, taking only messages that `access` admits;
    /// others are refused, counted in [`stats`](Self::stats), and a sender on this
    /// node gets [`NodeError::Refused`](crate::node::NodeError::Refused).
    ///
    /// ```
    /// # use onward_protocol::api::{Context, Node, Result, Routed, Worker};
    /// use onward_protocol::node::Access;
    /// use onward_protocol::trust::TrustIdentifier;
    /// # struct Echoer;
    /// # impl Worker for Echoer {
    /// #     type Message = String;
    /// #     async fn handle_message(&mut self, _: &mut Context, _: Routed<String>) -> Result<()> { Ok(()) }
    /// # }
    /// # async fn run(node: Node, alice: onward_protocol::identity::Identifier) -> Result<()> {
    /// // Only Alice, through a secure channel, (and this node) may reach the echoer.
    /// node.start_worker_with("echoer", Echoer, Access::secure_channels_from(TrustIdentifier::new(alice))).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start_worker`](Self::start_worker).
    pub async fn start_worker_with<W: Worker>(
        &self,
        address: impl Into<Address>,
        worker: W,
        access: Access,
    ) -> Result<()> {
        let address = address.into();
        let mailbox = self.shared.open_mailbox(address.clone(), access)?;
        let done = Signal::default();
        self.shared
            .driver()
            .workers
            .insert(address.clone(), done.clone());
        self.shared.workers.fetch_add(1, Ordering::AcqRel);
        let ctx = Context::new(address, self.shared.clone(), mailbox, false);
        let shared = self.shared.clone();
        self.shared.spawn(async move {
            run_worker(worker, ctx).await;
            shared.worker_ended(done);
        });
        Ok(())
    }

    /// Stops the worker at `address`: later messages to the address fail as unknown;
    /// it handles the messages already in its mailbox (its sends still work), runs
    /// its `shutdown`, and then this returns (or after the stop grace period, if the
    /// worker is still busy).
    ///
    /// # Errors
    ///
    /// None today.
    pub async fn stop_worker(&self, address: impl Into<Address>) -> Result<()> {
        let address = address.into();
        let done = self.shared.driver().workers.get(&address).cloned();
        self.shared.unregister(&address);
        if let Some(done) = done {
            let grace = self.shared.options.stop_grace;
            let _ = future::select(done.wait(), self.shared.runtime.sleep(grace)).await;
        }
        Ok(())
    }

    /// A context at `address`, for the application to send and receive, taking
    /// messages from senders on this node and through secure channels
    /// ([`Access::secure_channels`]). A context that expects plain replies over a
    /// transport needs [`context_with`](Self::context_with) and a wider rule.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::AddressInUse`](crate::node::NodeError::AddressInUse) if the address is taken.
    pub async fn context(&self, address: impl Into<Address>) -> Result<Context> {
        self.context_with(address, Access::default()).await
    }

    /// A context at a fresh address nobody chose (32 random hex digits), with the
    /// access rule of [`context`](Self::context): for a task that only needs somewhere
    /// to receive its replies.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] once the node is stopping.
    pub async fn new_context(&self) -> Result<Context> {
        let address = {
            let mut d = self.shared.driver();
            d.core.generate_address()?
        };
        self.context(address).await
    }

    /// A context at `address` taking only messages that `access` admits.
    ///
    /// # Errors
    ///
    /// As [`context`](Self::context).
    pub async fn context_with(
        &self,
        address: impl Into<Address>,
        access: Access,
    ) -> Result<Context> {
        let address = address.into();
        let mailbox = self.shared.open_mailbox(address.clone(), access)?;
        Ok(Context::new(address, self.shared.clone(), mailbox, true))
    }

    /// Creates a secure channel listener at `address`: initiators that send their
    /// hello there get a channel with `identity`, if `trust` accepts them. The
    /// channels have the default [`ChannelRules`]: only senders on this node may send
    /// into them.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::AddressInUse`](crate::node::NodeError::AddressInUse) if the address is taken.
    pub async fn create_secure_channel_listener(
        &self,
        address: impl Into<Address>,
        identity: &Identity,
        trust: impl TrustPolicy,
    ) -> Result<()> {
        self.create_secure_channel_listener_with(address, identity, trust, ChannelRules::new())
            .await
    }

    /// As [`create_secure_channel_listener`](Self::create_secure_channel_listener),
    /// with `rules` for who may send hellos, who may send into its channels, and where
    /// what they decrypt may go.
    ///
    /// # Errors
    ///
    /// As [`create_secure_channel_listener`](Self::create_secure_channel_listener).
    pub async fn create_secure_channel_listener_with(
        &self,
        address: impl Into<Address>,
        identity: &Identity,
        trust: impl TrustPolicy,
        rules: ChannelRules,
    ) -> Result<()> {
        let config = self.shared.options.channel.clone();
        let identity = Arc::new(identity.clone());
        self.shared.with_core(|core, now| {
            core.create_channel_listener(
                address.into(),
                identity,
                Arc::new(trust),
                config,
                rules,
                now,
            )
        })?;
        Ok(())
    }

    /// Creates a secure channel to the listener at the end of `route`, as `identity`,
    /// accepting the responder only if `trust` does, and waits until it is established.
    /// The channel has the default [`ChannelRules`]: only senders on this node may send
    /// into it.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::Channel`](crate::node::NodeError::Channel) if the handshake fails (the peer is
    /// not trusted, refused us, or did not answer within the handshake timeout), or
    /// another [`NodeError`](crate::node::NodeError) if the hello could not be sent.
    pub async fn create_secure_channel(
        &self,
        route: impl Into<Route>,
        identity: &Identity,
        trust: impl TrustPolicy,
    ) -> Result<SecureChannel> {
        self.create_secure_channel_with(route, identity, trust, ChannelRules::new())
            .await
    }

    /// As [`create_secure_channel`](Self::create_secure_channel), with `rules` for who
    /// may send into the channel and where what it decrypts may go.
    ///
    /// # Errors
    ///
    /// As [`create_secure_channel`](Self::create_secure_channel).
    pub async fn create_secure_channel_with(
        &self,
        route: impl Into<Route>,
        identity: &Identity,
        trust: impl TrustPolicy,
        rules: ChannelRules,
    ) -> Result<SecureChannel> {
        self.start_secure_channel(route.into(), identity, Arc::new(trust), rules, false)
            .await
    }

    /// As [`create_secure_channel_with`](Self::create_secure_channel_with), for a
    /// **persistent** channel: once established, if it fails or its peer closes it
    /// (the peer's node restarted, say), it is started again over the same route at
    /// the same address, after
    /// [`ChannelConfig::reestablish_after`](crate::channel::ChannelConfig::reestablish_after)
    /// (doubling while it keeps failing, up to a minute). Routes through
    /// `channel.address()` stay valid. While it is down, a send through it fails at
    /// once, saying why it went down; while it is in its new handshake, with
    /// [`ChannelError::NotEstablished`](crate::channel::ChannelError::NotEstablished).
    /// Nothing is queued. [`close_secure_channel`](Self::close_secure_channel) ends it
    /// for good.
    ///
    /// # Errors
    ///
    /// As [`create_secure_channel`](Self::create_secure_channel), for the first
    /// handshake; the channel is then not kept.
    pub async fn create_persistent_secure_channel(
        &self,
        route: impl Into<Route>,
        identity: &Identity,
        trust: impl TrustPolicy,
        rules: ChannelRules,
    ) -> Result<SecureChannel> {
        self.start_secure_channel(route.into(), identity, Arc::new(trust), rules, true)
            .await
    }

    async fn start_secure_channel(
        &self,
        route: Route,
        identity: &Identity,
        trust: Arc<dyn TrustPolicy>,
        rules: ChannelRules,
        persistent: bool,
    ) -> Result<SecureChannel> {
        let config = self.shared.options.channel.clone();
        let identity = Arc::new(identity.clone());
        let (tx, rx) = oneshot::channel();
        let address = {
            let now = self.shared.runtime.now();
            let mut d = self.shared.driver();
            if d.stopping {
                return Err(Error::Stopped);
            }
            let (_, address) = if persistent {
                d.core
                    .create_persistent_channel(route, identity, trust, &config, rules, now)?
            } else {
                d.core
                    .create_channel(route, identity, trust, &config, rules, now)?
            };
            d.pending_channels.insert(address.clone(), tx);
            self.shared.dispatch(&mut d, now);
            address
        };
        match rx.await {
            Ok(Ok(peer)) => Ok(SecureChannel {
                _last: Arc::new(CloseOnDrop {
                    address: address.clone(),
                    shared: Arc::downgrade(&self.shared),
                }),
                address,
                peer,
            }),
            Ok(Err(error)) => {
                // A persistent channel whose first handshake failed is not kept.
                if persistent {
                    self.shared
                        .with_core(|core, now| core.close_channel(&address, now));
                }
                Err(Error::Node(error))
            }
            Err(_) => Err(Error::Stopped),
        }
    }

    /// Closes a secure channel: the peer is told, and the channel's address goes.
    pub async fn close_secure_channel(&self, channel: &SecureChannel) {
        self.shared
            .with_core(|core, now| core.close_channel(&channel.address, now));
    }

    /// Runs `task` on the node's runtime, detached: with these helpers an application
    /// spawns, sleeps and times out the same way on every runtime.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.shared.runtime.spawn(Box::pin(task));
    }

    /// Waits `duration`, on the node's runtime's timer.
    pub async fn sleep(&self, duration: Duration) {
        self.shared.runtime.sleep(duration).await;
    }

    /// Runs `future` for at most `duration`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it did not finish in time (it is then dropped).
    pub async fn timeout<T>(
        &self,
        duration: Duration,
        future: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        let future = std::pin::pin!(future);
        match future::select(future, self.shared.runtime.sleep(duration)).await {
            future::Either::Left((value, _)) => Ok(value),
            future::Either::Right(_) => Err(Error::Timeout(duration)),
        }
    }

    /// The secure channels this node opened or accepted that are live (or, for a
    /// persistent one, down for now), each with its state.
    pub fn channels(&self) -> Vec<(Address, ChannelState)> {
        let d = self.shared.driver();
        d.channels
            .iter()
            .filter_map(|address| Some((address.clone(), d.core.channel_state(address)?)))
            .collect()
    }

    /// Counters of what the node refused or dropped.
    pub fn stats(&self) -> crate::node::NodeStats {
        self.shared.driver().core.stats()
    }

    /// Bytes the node holds against its memory budget
    /// ([`NodeConfig::memory_budget`](crate::node::NodeConfig::memory_budget)), and the
    /// part of them held by incoming connections that have authenticated nothing:
    /// see [`NodeCore::memory_in_use`](crate::node::NodeCore::memory_in_use).
    pub fn memory_in_use(&self) -> (usize, usize) {
        let driver = self.shared.driver();
        (
            driver.core.memory_in_use(),
            driver.core.memory_unauthenticated(),
        )
    }

    /// Stops the node, in phases, within the stop grace period
    /// ([`NodeOptions::stop_grace`]):
    ///
    /// 1. it takes no new work: TCP listeners stop accepting, channel listeners go,
    ///    and messages to its workers fail as to unknown addresses (a sender on
    ///    another node gets a report);
    /// 2. workers handle the messages already in their mailboxes, with their sends
    ///    (replies) still working, and run their `shutdown`: for at most half the
    ///    grace period;
    /// 3. channels are closed (their peers told), contexts' mailboxes end,
    ///    connections flush what is queued, and every task ends; past the grace
    ///    period what is left is cut off.
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
        // 1. No new work: no new channels, and the workers' mailboxes close (they
        // keep what they hold).
        for listener in d.core.channel_listeners() {
            d.core.remove_channel_listener(&listener, now);
        }
        let workers: Vec<Address> = d.workers.keys().cloned().collect();
        for worker in workers {
            d.mailboxes.remove(&worker);
            d.core.unregister(&worker, now);
        }
        shared.dispatch(&mut d, now);
    }
    shared.closing.fire();
    // 2. Workers finish, replying as they go.
    let grace = shared.options.stop_grace;
    let started = shared.runtime.now();
    if shared.workers.load(Ordering::Acquire) > 0 {
        let drained = shared.workers_done.wait();
        let _ = future::select(drained, shared.runtime.sleep(grace / 2)).await;
    }
    {
        let now = shared.runtime.now();
        let mut d = shared.driver();
        // 3. Channels closed, peers told; everything else ends once flushed.
        let channels: Vec<Address> = d.channels.iter().cloned().collect();
        for channel in channels {
            d.core.close_channel(&channel, now);
        }
        shared.dispatch(&mut d, now);
        d.mailboxes.clear();
        for (_, handle) in std::mem::take(&mut d.connections) {
            drop(handle.writer);
        }
        d.pending_channels.clear();
        d.channel_watchers.clear();
    }
    shared.stopping.fire();
    // Every task ends by itself once stopping is seen and what it holds is flushed;
    // the last one fires `all_done`. Past the grace period the rest are cut off.
    let left = grace.saturating_sub(shared.runtime.now().saturating_duration_since(started));
    let _ = future::select(shared.all_done.wait(), shared.runtime.sleep(left)).await;
    shared.halt.fire();
    tracing::debug!("node stopped");
    Ok(())
}

/// Runs a worker: `initialize`, then `handle_message` for each delivery, then
/// `shutdown`. A panic in any of them fails only that call: it is logged (the 1st,
/// 2nd, 4th, ... panic of this worker, so a peer that keeps triggering one cannot fill
/// the log), a panic in `initialize` stops the worker as an error would, and one in
/// `handle_message` drops that message and goes on with the next.
async fn run_worker<W: Worker>(mut worker: W, mut ctx: Context) {
    let mut panics = 0u64;
    let mut failures = 0u64;
    let mut panicked = |address: &Address, during: &str| {
        panics += 1;
        if panics.is_power_of_two() {
            tracing::error!(%address, panics, "worker panicked in {during}");
        }
    };
    match AssertUnwindSafe(worker.initialize(&mut ctx))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(address = %ctx.address(), %error, "worker failed to initialize");
            return;
        }
        Err(_) => {
            panicked(ctx.address(), "initialize");
            return;
        }
    }
    loop {
        let (message, origin) = match ctx.next_delivery(None).await {
            Ok(delivery) => delivery,
            Err(Error::Stopped) => break,
            Err(error) => {
                tracing::debug!(address = %ctx.address(), %error, "worker's send failed");
                continue;
            }
        };
        let result = match Routed::<W::Message>::decode(message, origin) {
            Ok(routed) => {
                match AssertUnwindSafe(worker.handle_message(&mut ctx, routed))
                    .catch_unwind()
                    .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        let address = ctx.address().clone();
                        panicked(&address, "handle_message");
                        continue;
                    }
                }
            }
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            // A peer can make a worker fail (an undecodable body, a refused reply):
            // the 1st, 2nd, 4th, ... failure is a warning, the rest debug lines.
            failures += 1;
            if failures.is_power_of_two() {
                tracing::warn!(address = %ctx.address(), failures, %error, "worker failed to handle a message");
            } else {
                tracing::debug!(address = %ctx.address(), %error, "worker failed to handle a message");
            }
        }
    }
    match AssertUnwindSafe(worker.shutdown(&mut ctx))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(address = %ctx.address(), %error, "worker failed to shut down");
        }
        Err(_) => panicked(ctx.address(), "shutdown"),
    }
}
