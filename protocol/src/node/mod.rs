//! The node core: layer 7, one router state machine per node.
//!
//! [`NodeCore`] decides everything a node does with a message: which local mailbox
//! gets it, which connection carries it, which secure channel encrypts or decrypts it,
//! and what happens when something fails. It does no I/O, reads no clock and spawns
//! nothing: the caller (the async layer, a custom stack, or a simulator) feeds it
//! inputs with the current time and carries out its outputs.
//!
//! # The contract
//!
//! Inputs are the `handle_*` methods (a local send, bytes received, a connection
//! opened, failed or closed, bytes written, a message consumed from a mailbox, a timer)
//! and the commands (register an address, create a channel listener or a channel,
//! close a channel). After each, drain [`poll_output`](NodeCore::poll_output) until it
//! returns `None` and re-arm a timer for [`poll_timeout`](NodeCore::poll_timeout).
//!
//! The core never waits. Every queue it accounts for has a limit ([`NodeConfig`]); at
//! a limit the message is refused and its sender told, synchronously (an `Err` from
//! [`handle_send`](NodeCore::handle_send)) or later ([`NodeEvent::DeliveryFailed`]).
//! One exception: a message read from a connection that finds its mailbox full waits
//! (for at most [`NodeConfig::max_stall`]), and the core emits
//! [`Output::PauseReading`] so that the transport stops reading that connection and
//! TCP slows the sender, then [`Output::ResumeReading`] when the wait is over.
//!
//! Senders that can wait (application contexts) ask [`congestion`](NodeCore::congestion)
//! whether the first hop of their route is past half its limit, and if it is, wait for
//! the [`Output::Decongested`] that names that hop. Every change the driver must act on
//! is an output: the driver never has to poll the core's state to find it.
//!
//! # Why one ordered output queue
//!
//! The core's outputs depend on each other's order: a connection's transmits must be
//! written in the order given (the preamble first), a `Connect` comes before the
//! transmits for that connection, a `Close` after the last transmit, and a
//! `ChannelEstablished` event before the first message delivered through it. One queue
//! keeps that order without the driver having to reason about it. The secure channel
//! state machine, which has only records and events, uses split polls instead
//! (see [`crate::channel`]).
//!
//! # Routing
//!
//! The first address of a message's onward route decides:
//!
//! - a **mailbox** (a registered local address): the message is delivered, onward
//!   route intact;
//! - an address of a **transport** this node carries (TCP, or any transport added with
//!   [`add_transport`](NodeCore::add_transport)): the hop is removed and the message
//!   goes over the connection to that peer, opened on demand;
//! - a **connection alias**: the local address that leads back over a connection. A
//!   message arriving on a connection gets that connection's alias put on the front of
//!   its return route, so replies retrace the path across any number of nodes;
//! - a channel's **encryptor** address: the message (the rest of its onward route, and
//!   its return route) is encrypted and sent to the channel's other end;
//! - a channel's **decryptor** address: the payload is a channel record; a decrypted
//!   message continues along its own onward route with the encryptor address put on
//!   the front of its return route, so replies go back through the channel;
//! - a **channel listener**: the payload is a hello, and a new channel end answers it.
//!
//! # Example: two node cores driven by hand
//!
//! ```
//! use onward_protocol::node::{Access, NodeConfig, NodeCore, Origin, Output};
//! use onward_protocol::random::SeededRandom;
//! use onward_protocol::{route, tcp, Address, TransportMessage};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut a = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(1)));
//! let mut b = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(2)));
//! a.register(Address::local("app"), Access::local_only(), now)?;
//! // Plain messages over TCP, which anyone able to connect could send: said outright.
//! b.register(Address::local("echoer"), Access::anyone(), now)?;
//!
//! // "app" on node A sends to "echoer" on node B, which listens at "b:4000".
//! let message = TransportMessage::new(route![tcp("b:4000"), "echoer"], route!["app"], b"hi".to_vec());
//! a.handle_send(&Address::local("app"), message, now)?;
//! let Some(Output::Connect { connection: a_conn, peer }) = a.poll_output() else { panic!() };
//! assert_eq!(peer, tcp("b:4000"));
//!
//! // The transport connects; B accepts. Carry bytes both ways until nothing moves.
//! let b_conn = b.handle_incoming_connection("a:5555".into(), now);
//! a.handle_connected(a_conn, now);
//! let mut delivered = None;
//! loop {
//!     let mut moved = false;
//!     while let Some(out) = a.poll_output() {
//!         if let Output::Transmit { bytes, .. } = out { b.handle_received(b_conn, &bytes, now); moved = true; }
//!     }
//!     while let Some(out) = b.poll_output() {
//!         match out {
//!             Output::Transmit { bytes, .. } => { a.handle_received(a_conn, &bytes, now); moved = true; }
//!             Output::Deliver { address, message, origin } => {
//!                 assert!(matches!(origin, Origin::Transport { .. }));
//!                 delivered = Some((address, message));
//!             }
//!             _ => {}
//!         }
//!     }
//!     if !moved { break; }
//! }
//! let (address, message) = delivered.expect("delivered on B");
//! assert_eq!(address, Address::local("echoer"));
//! assert_eq!(message.payload, b"hi");
//! // The return route leads back over the connection to "app" on A.
//! assert_eq!(message.return_route.len(), 2);
//! # Ok::<(), onward_protocol::node::NodeError>(())
//! ```

mod access;
mod budget;
mod channels;
mod config;
mod connection;
mod ended;
mod error;
mod listeners;
mod mailbox;
mod output;
mod persistent;
mod relay;
mod reports;
mod routing;
mod spare;
mod stall;
#[cfg(test)]
mod tests;
mod transport;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::channel::cookie::CookieJar;
use crate::channel::{ChannelConfig, ChannelEnd, ChannelError};
use crate::identity::{Identifier, Identity};
use crate::message::TransportMessage;
use crate::noise::NoiseError;
use crate::random::RandomSource;
use crate::routing::{Address, Route, TransportType};
use crate::trust::TrustPolicy;

use access::RefusalLog;
pub use access::{Access, ChannelRules, Origin};
pub use budget::{BudgetShare, MESSAGE_OVERHEAD, TRANSMIT_OVERHEAD};
use channels::ChannelSlot;
pub use config::NodeConfig;
use connection::ConnectionTable;
pub use connection::Direction;
pub use error::NodeError;
use listeners::Listener;
use mailbox::Mailboxes;
pub use output::{ChannelState, Hop, NodeEvent, NodeStats, Output};
pub use persistent::MAX_REESTABLISH_DELAY;
pub use relay::{
    is_valid_relay_name, relay_address, RelayStatus, MAX_RELAY_NAME_LEN, REGISTER as RELAY_REGISTER,
};
use routing::Source;
pub use spare::{SPARE_TRANSMITS, SPARE_TRANSMIT_MAX};
pub use transport::TransportKind;

/// Identifies a connection within one node core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// Identifies a secure channel end within one node core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u64);

/// What a local address leads to.
enum Target {
    /// A worker's or context's mailbox, with who may deliver to it. (Shared, so that
    /// the table's entries stay small: every channel end has two.)
    Mailbox(Arc<Access>),
    Encryptor(ChannelId),
    Decryptor(ChannelId),
    Listener,
    Connection(ConnectionId),
    /// A relay service, with who may register names with it.
    Relay(Arc<Access>),
    /// A name registered with a relay service: forwarded to its owner's node.
    Relayed,
}

/// One node's router state machine. See the [module documentation](self).
pub struct NodeCore {
    config: NodeConfig,
    rng: Box<dyn RandomSource + Send>,
    targets: BTreeMap<Address, Target>,
    mailboxes: Mailboxes,
    listeners: BTreeMap<Address, Listener>,
    /// Each slot boxed: a slot is over a kilobyte, and a B-tree node holds room for
    /// eleven values while channels opened in order leave most nodes half full.
    channels: BTreeMap<ChannelId, Box<ChannelSlot>>,
    connections: ConnectionTable,
    next_channel: u64,
    outputs: VecDeque<Output>,
    stats: NodeStats,
    /// Connections with a stall, oldest first (retried in that order, for fairness).
    stalled: VecDeque<ConnectionId>,
    /// Which refusals by access rules get a log line.
    refusals: RefusalLog,
    /// The secrets of the cookies listeners under load answer hellos with.
    cookies: CookieJar,
    /// Hellos with a valid cookie taken under load, per source, in the current second.
    cookie_hellos: BTreeMap<String, (Instant, u32)>,
    /// Hellos with a valid cookie waiting for their source's next second.
    deferred_hellos: VecDeque<listeners::DeferredHello>,
    /// An emptied work queue kept for the next message, so that routing one does not
    /// allocate a queue each time (see `NodeCore::take_work`).
    spare_work: routing::Work,
    /// The same for the events drained from a channel end.
    spare_events: Vec<crate::channel::ChannelEvent>,
    /// Transmit buffers given back once written, for the next frames.
    spare_transmits: spare::SpareTransmits,
    /// Error reports sent in the current second.
    reports: reports::ReportLimiter,
    /// Channel ends that ended, and why.
    ended: ended::EndedChannels,
    /// The id of the send being routed (0 outside [`handle_send_tracked`](Self::handle_send_tracked)):
    /// kept with what it queues on connections, and given with what fails.
    current_send: u64,
    /// Persistent channels that are down, by encryptor address, each with when it is
    /// started again.
    down: BTreeMap<Address, (Instant, Box<persistent::Persistent>)>,
    /// The transports this node carries, by type, each with its kind (TCP, a stream
    /// transport, from the start).
    transports: BTreeMap<TransportType, TransportKind>,
    /// Who may send messages on over each transport, where it is not anyone (see
    /// [`set_forwarding`](Self::set_forwarding)).
    forwarding: BTreeMap<TransportType, Arc<Access>>,
    /// The names registered with this node's relay services.
    relays: relay::Relays,
}

impl fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCore")
            .field("mailboxes", &self.mailboxes.len())
            .field("listeners", &self.listeners.len())
            .field("channels", &self.channels.len())
            .field("connections", &self.connections.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl NodeCore {
    /// A node core with no addresses, taking randomness (for generated addresses and
    /// channel keys) from `rng`.
    pub fn new(config: NodeConfig, rng: Box<dyn RandomSource + Send>) -> Self {
        Self {
            mailboxes: Mailboxes::new(config.mailbox_capacity, config.max_mailbox_bytes),
            connections: ConnectionTable::new(&config),
            config,
            rng,
            targets: BTreeMap::new(),
            listeners: BTreeMap::new(),
            channels: BTreeMap::new(),
            stalled: VecDeque::new(),
            refusals: RefusalLog::default(),
            cookies: CookieJar::new(),
            cookie_hellos: BTreeMap::new(),
            deferred_hellos: VecDeque::new(),
            spare_work: VecDeque::new(),
            spare_events: Vec::new(),
            spare_transmits: spare::SpareTransmits::default(),
            reports: reports::ReportLimiter::new(),
            ended: ended::EndedChannels::default(),
            down: BTreeMap::new(),
            current_send: 0,
            transports: BTreeMap::from([(TransportType::TCP, TransportKind::Stream)]),
            relays: relay::Relays::default(),
            forwarding: BTreeMap::new(),
            next_channel: 0,
            outputs: VecDeque::new(),
            stats: NodeStats::default(),
        }
    }

    // ---- getters --------------------------------------------------------------------

    /// The limits in force.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Counters of refused and dropped things.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Whether `address` is taken on this node.
    pub fn has_address(&self, address: &Address) -> bool {
        self.targets.contains_key(address)
    }

    /// The addresses of this node's secure channel listeners.
    pub fn channel_listeners(&self) -> Vec<Address> {
        self.listeners.keys().cloned().collect()
    }

    /// Who may deliver to the mailbox at `address`, if there is one.
    pub fn mailbox_access(&self, address: &Address) -> Option<&Access> {
        match self.targets.get(address) {
            Some(Target::Mailbox(access)) => Some(access),
            _ => None,
        }
    }

    /// Unread messages in a mailbox, if it exists.
    pub fn mailbox_unread(&self, address: &Address) -> Option<usize> {
        self.mailboxes.unread(address)
    }

    /// Bytes the core holds against its memory budget
    /// ([`NodeConfig::memory_budget`]): unread mailbox messages (encoded length),
    /// connection backlogs and queues, partial frames, and messages waiting for room.
    pub fn memory_in_use(&self) -> usize {
        self.connections
            .charged()
            .saturating_add(self.mailboxes.bytes())
    }

    /// Bytes of [`memory_in_use`](Self::memory_in_use) held by incoming connections
    /// that have not carried an authenticated channel record (limited to a quarter of
    /// the budget).
    pub fn memory_unauthenticated(&self) -> usize {
        self.connections.charged_unproven()
    }

    /// Number of open or opening connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Bytes handed to a connection and not yet written, if it exists.
    pub fn connection_backlog(&self, connection: ConnectionId) -> Option<usize> {
        self.connections.get(connection).map(|c| c.backlog())
    }

    /// The peer and direction of a connection.
    pub fn connection_peer(&self, connection: ConnectionId) -> Option<(&str, Direction)> {
        self.connections
            .get(connection)
            .map(|c| (c.peer(), c.direction()))
    }

    /// Whether a channel record that arrived on `connection` authenticated: such a
    /// connection is not closed to make room for new ones, nor for being idle.
    pub fn is_connection_proven(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(connection)
            .is_some_and(|c| c.is_proven())
    }

    /// Number of secure channel ends, established or not.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The verified peer of an established channel end, by its encryptor address.
    pub fn channel_peer(&self, address: &Address) -> Option<Identifier> {
        match self.targets.get(address) {
            Some(Target::Encryptor(id)) => self.channels.get(id)?.channel.peer().copied(),
            _ => None,
        }
    }

    /// Whether reading `connection` is paused: a message it carried waits for room in
    /// a full mailbox. The core reports each change as [`Output::PauseReading`] and
    /// [`Output::ResumeReading`]; this getter is for tests and monitoring.
    pub fn is_reading_paused(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(connection)
            .is_some_and(|c| c.stall.is_some())
    }

    // ---- commands -------------------------------------------------------------------

    /// Registers a mailbox at `address`, taking messages that `access` admits; others
    /// are refused ([`NodeError::Refused`]).
    ///
    /// # Errors
    ///
    /// [`NodeError::AddressInUse`] if the address is taken;
    /// [`NodeError::UnsupportedTransport`] if it is not local.
    pub fn register(
        &mut self,
        address: Address,
        access: Access,
        now: Instant,
    ) -> Result<(), NodeError> {
        let _ = now;
        self.claim(&address)?;
        self.targets
            .insert(address.clone(), Target::Mailbox(Arc::new(access)));
        self.mailboxes.insert(address);
        Ok(())
    }

    /// Removes the mailbox at `address`; messages to it then fail as unknown, and a
    /// connection waiting for room there goes on (the waiting message is reported
    /// undeliverable).
    pub fn unregister(&mut self, address: &Address, now: Instant) {
        if matches!(self.targets.get(address), Some(Target::Mailbox(_))) {
            self.targets.remove(address);
            if self.mailboxes.remove(address) == Some(true) {
                self.outputs
                    .push_back(Output::Decongested(Hop::Mailbox(address.clone())));
            }
            self.retry_stalled(now);
        }
    }

    /// A fresh random local address, free on this node.
    pub(crate) fn generate_address(&mut self) -> Result<Address, NodeError> {
        loop {
            let address = Address::random_local(&mut *self.rng).map_err(|e| match e {
                crate::routing::AddressError::Random(r) => NodeError::Random(r),
                _ => NodeError::Random(crate::random::RandomError),
            })?;
            if !self.targets.contains_key(&address) {
                return Ok(address);
            }
        }
    }

    /// Creates a secure channel listener at `address`: hellos sent there (from where
    /// `rules` allows hellos) start new responder channel ends with `identity`,
    /// accepting peers that `trust` accepts; each end keeps `rules`.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn create_channel_listener(
        &mut self,
        address: Address,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        config: ChannelConfig,
        rules: ChannelRules,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.claim(&address)?;
        self.targets.insert(address.clone(), Target::Listener);
        self.listeners
            .insert(address, Listener::new(identity, trust, config, rules, now));
        Ok(())
    }

    /// Removes a channel listener; channels it created go on.
    pub fn remove_channel_listener(&mut self, address: &Address, now: Instant) {
        let _ = now;
        if self.listeners.remove(address).is_some() {
            self.targets.remove(address);
            // Hellos that waited for it are not for a listener made later at the
            // same address.
            self.deferred_hellos.retain(|d| d.listener() != address);
        }
    }

    /// Starts a secure channel to the listener at the end of `route`, as `identity`,
    /// accepting the responder only if `trust` does; the end keeps `rules`. Returns the
    /// channel's id and encryptor address; [`NodeEvent::ChannelEstablished`] or
    /// [`NodeEvent::ChannelFailed`] follows.
    ///
    /// # Errors
    ///
    /// [`NodeError::TooManyChannels`], or the error of sending the hello (an unknown
    /// first hop, a full connection); no channel exists then.
    pub fn create_channel(
        &mut self,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        config: &ChannelConfig,
        rules: ChannelRules,
        now: Instant,
    ) -> Result<(ChannelId, Address), NodeError> {
        let start = persistent::Persistent::new(route, identity, trust, config, rules);
        self.start_initiator(&start, None, now)
    }

    /// Starts an initiator end as `start` says, at `encryptor` if given (a persistent
    /// channel started again), and sends its hello.
    fn start_initiator(
        &mut self,
        start: &persistent::Persistent,
        encryptor: Option<Address>,
        now: Instant,
    ) -> Result<(ChannelId, Address), NodeError> {
        if self.channels.len() >= self.config.max_channels {
            return Err(NodeError::TooManyChannels {
                limit: self.config.max_channels,
            });
        }
        let route = start.route.clone();
        let channel = ChannelEnd::initiator(
            &start.config,
            start.identity.clone(),
            start.trust.clone(),
            &mut *self.rng,
            now,
        )
        .map_err(|error| match error {
            // The ephemeral and static keys are drawn inside Noise, whose failure the
            // channel passes on as a handshake error: it is the random source all the
            // same.
            ChannelError::Random(e) | ChannelError::Handshake(NoiseError::Random(e)) => {
                NodeError::Random(e)
            }
            error => NodeError::Channel {
                address: route.last().cloned().unwrap_or_else(|| Address::local("")),
                error,
            },
        })?;
        let mut prefix = route.clone();
        let _listener = prefix.pop_back();
        let (id, encryptor) = self.add_channel(
            channel,
            route,
            Some(prefix),
            None,
            start.rules.clone(),
            encryptor,
        )?;
        if let Err(e) = self.drain_channel_and_route(id, now) {
            self.remove_channel(id, now);
            return Err(e);
        }
        Ok((id, encryptor))
    }

    /// Closes a secure channel end by its encryptor address: a close record goes to the
    /// peer if the channel is established, and the addresses are removed.
    pub fn close_channel(&mut self, address: &Address, now: Instant) {
        // A persistent channel closed here is not started again.
        if self.forget_down(address) {
            self.ended
                .insert(address.clone(), crate::channel::ChannelError::Closed);
            return;
        }
        if let Some(Target::Encryptor(id)) = self.targets.get(address) {
            let id = *id;
            if let Some(end) = self.channels.get_mut(&id) {
                end.persistent = None;
                end.channel.close(now);
            }
            if let Err(error) = self.drain_channel_and_route(id, now) {
                tracing::debug!(%address, %error, "close record not sent");
            }
        }
    }

    // ---- inputs ---------------------------------------------------------------------

    /// A local worker or context at `sender` sends `message`.
    ///
    /// # Errors
    ///
    /// Why the message could not be taken or forwarded at once; nothing was sent then.
    /// Failures found later are reported as [`NodeEvent::DeliveryFailed`] with this
    /// sender.
    pub fn handle_send(
        &mut self,
        sender: &Address,
        message: TransportMessage,
        now: Instant,
    ) -> Result<(), NodeError> {
        let mut work = self.take_work();
        work.push_back((message, Origin::Local));
        self.route_all(work, Source::Local(sender), now)
    }

    /// As [`handle_send`](Self::handle_send), for a send the sender gave the id `send`
    /// (not 0): a failure of this message found later, such as a connection that
    /// could not be opened, is reported with it ([`NodeEvent::DeliveryFailed`]'s
    /// `send`), so the sender can tell which send failed.
    ///
    /// # Errors
    ///
    /// As [`handle_send`](Self::handle_send).
    pub fn handle_send_tracked(
        &mut self,
        sender: &Address,
        message: TransportMessage,
        send: u64,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.current_send = send;
        let result = self.handle_send(sender, message, now);
        self.current_send = 0;
        result
    }

    /// The worker at `address` took one message from its mailbox. A connection
    /// waiting for room there goes on.
    pub fn handle_consumed(&mut self, address: &Address, now: Instant) {
        if self.mailboxes.consumed(address) {
            self.outputs
                .push_back(Output::Decongested(Hop::Mailbox(address.clone())));
        }
        self.retry_stalled(now);
    }

    /// Time has passed: handshakes past their deadline fail, messages from
    /// connections that waited for a mailbox past [`NodeConfig::max_stall`] are dropped
    /// and reported, and connections whose peer missed a deadline
    /// ([`NodeConfig::first_frame_timeout`], [`NodeConfig::frame_timeout`],
    /// [`NodeConfig::unproven_idle_timeout`]) are closed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, expired) in self.connections.expired(now) {
            if expired == connection::Expired::Keepalive {
                if let Some(bytes) = self.connections.keepalive(id, now) {
                    tracing::trace!(connection = id.0, "keepalive");
                    self.outputs.push_back(Output::Transmit {
                        connection: id,
                        bytes,
                    });
                }
                continue;
            }
            let reason = expired.reason(self.connections.timeouts());
            tracing::debug!(connection = id.0, %reason, "connection timed out");
            self.stats.connections_timed_out += 1;
            self.drop_connection(id, Some(reason), true, now);
        }
        let due: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(_, end)| end.channel.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(end) = self.channels.get_mut(&id) {
                end.channel.handle_timeout(now);
            }
            if let Err(error) = self.drain_channel_and_route(id, now) {
                tracing::debug!(channel = id.0, %error, "after a channel timeout");
            }
        }
        self.expire_stalls(now);
        self.retry_deferred_hellos(now);
        self.reestablish_due(now);
    }

    // ---- outputs --------------------------------------------------------------------

    /// The next thing to do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if at all.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.channels
            .values()
            .filter_map(|end| end.channel.poll_timeout())
            .chain(self.stall_deadlines())
            .chain(self.connections.next_deadline())
            .chain(self.deferred_hello_deadline())
            .chain(self.reestablish_deadline())
            .min()
    }

    // ---- helpers --------------------------------------------------------------------

    fn claim(&self, address: &Address) -> Result<(), NodeError> {
        if !address.is_local() {
            return Err(NodeError::UnsupportedTransport(address.clone()));
        }
        if self.targets.contains_key(address) {
            return Err(NodeError::AddressInUse(address.clone()));
        }
        Ok(())
    }
}
