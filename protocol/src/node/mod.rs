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
//! (for at most [`NodeConfig::max_stall`]), and the connection reports
//! [`is_reading_paused`](NodeCore::is_reading_paused) so that the transport stops
//! reading it and TCP slows the sender.
//!
//! # Routing
//!
//! The first address of a message's onward route decides:
//!
//! - a **mailbox** (a registered local address): the message is delivered, onward
//!   route intact;
//! - a **TCP address**: the hop is removed and the message goes over the connection to
//!   that peer, opened on demand;
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
//! use onward_protocol::node::{NodeConfig, NodeCore, Output};
//! use onward_protocol::random::SeededRandom;
//! use onward_protocol::{route, tcp, Address, TransportMessage};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut a = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(1)));
//! let mut b = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(2)));
//! a.register(Address::local("app"))?;
//! b.register(Address::local("echoer"))?;
//!
//! // "app" on node A sends to "echoer" on node B, which listens at "b:4000".
//! let message = TransportMessage::new(route![tcp("b:4000"), "echoer"], route!["app"], b"hi".to_vec());
//! a.handle_send(&Address::local("app"), message, now)?;
//! let Some(Output::Connect { connection: a_conn, peer }) = a.poll_output() else { panic!() };
//! assert_eq!(peer, "b:4000");
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
//!             Output::Deliver { address, message } => delivered = Some((address, message)),
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

mod connection;
mod error;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::{ChannelConfig, ChannelError, ChannelEvent, ChannelRole, SecureChannel};
use crate::framing::{frame_header, DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, PREAMBLE};
use crate::identity::{Identifier, Identity};
use crate::message::{MessageView, TransportMessage};
use crate::random::RandomSource;
use crate::routing::{Address, Route, TransportType};
use crate::trust::TrustPolicy;

pub use connection::Direction;
use connection::{Connection, InFlight, Queued, Stall, State as ConnectionState};
pub use error::NodeError;

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

/// Limits of a node core. Each has a defined behaviour when reached, given with it.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unread messages a mailbox may hold (delivered and not yet reported consumed).
    /// Beyond it a local sender is refused ([`NodeError::MailboxFull`]); a message read
    /// from a connection waits, and the connection is not read, until the worker takes
    /// one (see [`max_stall`](Self::max_stall)). Default 16384.
    pub mailbox_capacity: usize,
    /// Bytes handed to a connection and not yet written. Beyond it a message is dropped
    /// and its sender told ([`NodeError::ConnectionBacklogFull`]). Default 16 MiB.
    pub max_connection_backlog: usize,
    /// Messages that may wait for a connection to open. Beyond it a message is dropped
    /// and its sender told. Default 1024.
    pub max_queued_while_connecting: usize,
    /// Open connections. Beyond it new outgoing connections are refused and incoming
    /// ones closed at once. Default 1024.
    pub max_connections: usize,
    /// Largest frame accepted on a connection; a larger one closes the connection.
    /// Default [`DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: u32,
    /// Secure channel ends, established or not. Beyond it new channels are refused
    /// ([`NodeError::TooManyChannels`]), and a hello is dropped. Default 4096.
    pub max_channels: usize,
    /// Channel ends a listener may have in their handshake. When a new hello arrives at
    /// a full listener, its oldest half-open end is dropped, so a flood of hellos holds
    /// at most this many and a real handshake still completes unless more than this many
    /// hellos arrive during its round trip. Default 256.
    pub max_half_open_per_listener: usize,
    /// Local hops one message may take inside the node before it is treated as a
    /// routing loop and dropped. Default 256.
    pub max_local_hops: usize,
    /// How long a message read from a connection may wait for room in a full mailbox
    /// (its connection unread meanwhile). Past it the message is dropped and reported
    /// ([`NodeEvent::DeliveryFailed`], [`NodeError::MailboxFull`]), and further messages
    /// from connections to that mailbox are dropped rather than wait until it is down
    /// to half full: a worker that stops taking messages holds up its connections for
    /// this long at most. Default 5 s.
    pub max_stall: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            mailbox_capacity: 16_384,
            max_connection_backlog: 16 << 20,
            max_queued_while_connecting: 1024,
            max_connections: 1024,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_channels: 4096,
            max_half_open_per_listener: 256,
            max_local_hops: 256,
            max_stall: Duration::from_secs(5),
        }
    }
}

/// What the caller must do.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Put `message` in the mailbox at `address`. Report it consumed with
    /// [`NodeCore::handle_consumed`] when its worker takes it.
    Deliver {
        /// The mailbox.
        address: Address,
        /// The message, its onward route still starting with `address`.
        message: TransportMessage,
    },
    /// Open a stream connection to `peer` (`host:port`), then report
    /// [`NodeCore::handle_connected`] or [`NodeCore::handle_connect_failed`].
    Connect {
        /// The connection's id.
        connection: ConnectionId,
        /// Where to connect.
        peer: String,
    },
    /// Write `bytes` on the connection, in order, then report
    /// [`NodeCore::handle_written`]; the senders of bytes never reported written are
    /// told of their loss when the connection closes. Each transmit is the preamble or
    /// one whole frame.
    Transmit {
        /// The connection.
        connection: ConnectionId,
        /// What to write.
        bytes: Vec<u8>,
    },
    /// Close the connection; the core has already forgotten it.
    Close {
        /// The connection.
        connection: ConnectionId,
    },
    /// Something the application may want to know.
    Event(NodeEvent),
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A secure channel end is ready: both identities are verified and trusted.
    ChannelEstablished {
        /// The channel end.
        channel: ChannelId,
        /// Its encryptor address: send to `route![address, ...]` to go through it.
        address: Address,
        /// The peer's verified identifier.
        peer: Identifier,
        /// Whether this end initiated the channel.
        initiator: bool,
    },
    /// A secure channel end failed; its addresses are gone.
    ChannelFailed {
        /// The channel end.
        channel: ChannelId,
        /// Its encryptor address.
        address: Address,
        /// Why.
        error: NodeError,
    },
    /// A secure channel end was closed in an orderly way; its addresses are gone.
    ChannelClosed {
        /// The channel end.
        channel: ChannelId,
        /// Its encryptor address.
        address: Address,
        /// Whether the peer closed it.
        by_peer: bool,
    },
    /// A message accepted earlier could not be delivered.
    DeliveryFailed {
        /// The local address that sent it, if it came from this node.
        sender: Option<Address>,
        /// Why.
        error: NodeError,
    },
    /// A connection ended.
    ConnectionClosed {
        /// The connection.
        connection: ConnectionId,
        /// Its peer.
        peer: String,
        /// Why, if it was an error.
        error: Option<String>,
    },
}

/// Counters of things the core refused or dropped, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Messages routed (each local hop counts).
    pub messages_routed: u64,
    /// Channel records rejected (forged, replayed, malformed).
    pub records_rejected: u64,
    /// Hellos dropped (malformed, unsupported, or no room).
    pub hellos_rejected: u64,
    /// Half-open channel ends dropped to make room for newer hellos.
    pub half_open_evicted: u64,
    /// Messages that could not be delivered.
    pub delivery_failures: u64,
    /// Connections closed because the peer broke the protocol.
    pub connections_refused: u64,
}

enum Target {
    Mailbox,
    Encryptor(ChannelId),
    Decryptor(ChannelId),
    Listener,
    Connection(ConnectionId),
}

struct Mailbox {
    unread: usize,
    /// A message from a connection waited here past `max_stall`: until the mailbox is
    /// down to half full, messages from connections are dropped rather than wait, so a
    /// worker that stopped taking messages cannot hold up its connections.
    overflowing: bool,
}

struct Listener {
    identity: Arc<Identity>,
    trust: Arc<dyn TrustPolicy>,
    config: ChannelConfig,
    half_open: VecDeque<ChannelId>,
}

struct ChannelEnd {
    channel: SecureChannel,
    encryptor: Address,
    decryptor: Address,
    /// The route to the peer's end (its decryptor).
    remote: Route,
    /// For an initiator until the response arrives: the route to the listener without
    /// the listener, to which the responder's decryptor address is then appended.
    prefix: Option<Route>,
    /// For a responder: the listener that created it.
    listener: Option<Address>,
}

/// One node's router state machine. See the [module documentation](self).
pub struct NodeCore {
    config: NodeConfig,
    rng: Box<dyn RandomSource + Send>,
    targets: BTreeMap<Address, Target>,
    mailboxes: BTreeMap<Address, Mailbox>,
    listeners: BTreeMap<Address, Listener>,
    channels: BTreeMap<ChannelId, ChannelEnd>,
    connections: BTreeMap<ConnectionId, Connection>,
    outgoing: BTreeMap<String, ConnectionId>,
    next_connection: u64,
    next_channel: u64,
    outputs: VecDeque<Output>,
    stats: NodeStats,
    /// The connection whose frames are being routed: a message of its that finds its
    /// mailbox full waits (in `blocked`) instead of being dropped.
    stalling: Option<ConnectionId>,
    /// Set by `deliver` when a message of `stalling` finds its mailbox full.
    blocked: Option<(Address, TransportMessage)>,
    /// Connections with a stall, oldest first (retried in that order, for fairness).
    stalled: VecDeque<ConnectionId>,
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
            config,
            rng,
            targets: BTreeMap::new(),
            mailboxes: BTreeMap::new(),
            listeners: BTreeMap::new(),
            channels: BTreeMap::new(),
            connections: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            stalling: None,
            blocked: None,
            stalled: VecDeque::new(),
            next_connection: 0,
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

    /// Unread messages in a mailbox, if it exists.
    pub fn mailbox_unread(&self, address: &Address) -> Option<usize> {
        self.mailboxes.get(address).map(|m| m.unread)
    }

    /// Number of open or opening connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Bytes handed to a connection and not yet written, if it exists.
    pub fn connection_backlog(&self, connection: ConnectionId) -> Option<usize> {
        self.connections.get(&connection).map(|c| c.backlog)
    }

    /// The peer and direction of a connection.
    pub fn connection_peer(&self, connection: ConnectionId) -> Option<(&str, Direction)> {
        self.connections
            .get(&connection)
            .map(|c| (c.peer.as_str(), c.direction))
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

    /// Whether the first hop of `route` is past half its limit: a mailbox with half its
    /// capacity unread, or a connection with half its backlog unsent (for a channel's
    /// encryptor, the first hop towards its peer). Senders that can wait (application
    /// contexts) wait while this holds rather than run into the hard limit; workers never
    /// wait, so pipelines cannot deadlock.
    pub fn is_congested(&self, route: &Route) -> bool {
        let mut next = route.next().cloned();
        // Channels inside channels: follow a few levels, no more.
        for _ in 0..4 {
            let Some(address) = next.take() else {
                return false;
            };
            if address.transport() == TransportType::TCP {
                let peer = address.value_str().unwrap_or_default();
                return self
                    .outgoing
                    .get(peer)
                    .is_some_and(|id| self.backlog_congested(*id));
            }
            match self.targets.get(&address) {
                Some(Target::Mailbox) => {
                    return self
                        .mailboxes
                        .get(&address)
                        .is_some_and(|m| m.unread >= self.config.mailbox_capacity / 2);
                }
                Some(Target::Connection(id)) => return self.backlog_congested(*id),
                Some(Target::Encryptor(id)) => {
                    next = self
                        .channels
                        .get(id)
                        .and_then(|end| end.remote.next().cloned());
                }
                _ => return false,
            }
        }
        false
    }

    fn backlog_congested(&self, id: ConnectionId) -> bool {
        self.connections.get(&id).is_some_and(|c| match &c.state {
            ConnectionState::Connecting(queue) => {
                queue.len() >= self.config.max_queued_while_connecting / 2
            }
            ConnectionState::Open => c.backlog >= self.config.max_connection_backlog / 2,
        })
    }

    // ---- commands -------------------------------------------------------------------

    /// Registers a mailbox at `address`.
    ///
    /// # Errors
    ///
    /// [`NodeError::AddressInUse`] if the address is taken;
    /// [`NodeError::UnsupportedTransport`] if it is not local.
    pub fn register(&mut self, address: Address) -> Result<(), NodeError> {
        self.claim(&address)?;
        self.targets.insert(address.clone(), Target::Mailbox);
        self.mailboxes.insert(
            address,
            Mailbox {
                unread: 0,
                overflowing: false,
            },
        );
        Ok(())
    }

    /// Removes the mailbox at `address`; messages to it then fail as unknown, and a
    /// connection waiting for room there goes on (the waiting message is reported
    /// undeliverable).
    pub fn unregister(&mut self, address: &Address, now: Instant) {
        if matches!(self.targets.get(address), Some(Target::Mailbox)) {
            self.targets.remove(address);
            self.mailboxes.remove(address);
            self.retry_stalled(now);
        }
    }

    /// A fresh random local address, free on this node.
    ///
    /// # Errors
    ///
    /// [`NodeError::Random`] if the random source fails.
    pub fn generate_address(&mut self) -> Result<Address, NodeError> {
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

    /// Creates a secure channel listener at `address`: hellos sent there start new
    /// responder channel ends with `identity`, accepting peers that `trust` accepts.
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
    ) -> Result<(), NodeError> {
        self.claim(&address)?;
        self.targets.insert(address.clone(), Target::Listener);
        self.listeners.insert(
            address,
            Listener {
                identity,
                trust,
                config,
                half_open: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Removes a channel listener; channels it created go on.
    pub fn remove_channel_listener(&mut self, address: &Address) {
        if self.listeners.remove(address).is_some() {
            self.targets.remove(address);
        }
    }

    /// Starts a secure channel to the listener at the end of `route`, as `identity`,
    /// accepting the responder only if `trust` does. Returns the channel's id and
    /// encryptor address; [`NodeEvent::ChannelEstablished`] or
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
        now: Instant,
    ) -> Result<(ChannelId, Address), NodeError> {
        if self.channels.len() >= self.config.max_channels {
            return Err(NodeError::TooManyChannels {
                limit: self.config.max_channels,
            });
        }
        let channel = SecureChannel::initiator(config, identity, trust, &mut *self.rng, now)
            .map_err(|error| match error {
                ChannelError::Random(e) => NodeError::Random(e),
                error => NodeError::Channel {
                    address: route.last().cloned().unwrap_or_else(|| Address::local("")),
                    error,
                },
            })?;
        let mut prefix = route.clone();
        let _listener = prefix.pop_back();
        let (id, encryptor) = self.add_channel(channel, route, Some(prefix), None)?;
        if let Err(e) = self.drain_channel_and_route(id, now) {
            self.remove_channel(id);
            return Err(e);
        }
        Ok((id, encryptor))
    }

    /// Closes a secure channel end by its encryptor address: a close record goes to the
    /// peer if the channel is established, and the addresses are removed.
    pub fn close_channel(&mut self, address: &Address, now: Instant) {
        if let Some(Target::Encryptor(id)) = self.targets.get(address) {
            let id = *id;
            if let Some(end) = self.channels.get_mut(&id) {
                end.channel.close(now);
            }
            let _ = self.drain_channel_and_route(id, now);
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
        self.route(message, Some(sender), now)
    }

    /// The worker at `address` took one message from its mailbox. A connection
    /// waiting for room there goes on.
    pub fn handle_consumed(&mut self, address: &Address, now: Instant) {
        let half = self.config.mailbox_capacity / 2;
        if let Some(m) = self.mailboxes.get_mut(address) {
            m.unread = m.unread.saturating_sub(1);
            if m.unread <= half {
                m.overflowing = false;
            }
        }
        self.retry_stalled(now);
    }

    /// A peer connected to one of this node's listeners. Returns the connection's id;
    /// the preamble to send is in the outputs. If the node has no room, the connection
    /// is closed at once (a [`Output::Close`] follows).
    pub fn handle_incoming_connection(&mut self, peer: String, now: Instant) -> ConnectionId {
        let _ = now;
        let id = self.next_connection_id();
        if self.connections.len() >= self.config.max_connections {
            tracing::debug!(%peer, "connection refused: too many connections");
            self.stats.connections_refused += 1;
            self.outputs.push_back(Output::Close { connection: id });
            return id;
        }
        let Ok(alias) = self.generate_address() else {
            self.outputs.push_back(Output::Close { connection: id });
            return id;
        };
        tracing::debug!(%peer, connection = id.0, "incoming connection");
        self.targets.insert(alias.clone(), Target::Connection(id));
        self.connections.insert(
            id,
            Connection::new(peer, Direction::Incoming, alias, self.config.max_frame_len),
        );
        self.transmit(id, PREAMBLE.to_vec(), None);
        id
    }

    /// An outgoing connection opened: the preamble and waiting frames are sent.
    pub fn handle_connected(&mut self, connection: ConnectionId, now: Instant) {
        let _ = now;
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        let ConnectionState::Connecting(queue) =
            std::mem::replace(&mut conn.state, ConnectionState::Open)
        else {
            return;
        };
        tracing::debug!(peer = %conn.peer, connection = connection.0, "connected");
        self.transmit(connection, PREAMBLE.to_vec(), None);
        for queued in queue {
            self.transmit(connection, queued.frame, Some(queued.sender));
        }
    }

    /// An outgoing connection could not be opened: the messages waiting for it fail.
    pub fn handle_connect_failed(&mut self, connection: ConnectionId, reason: &str, now: Instant) {
        self.drop_connection(connection, Some(reason.to_owned()), false, now);
    }

    /// The connection closed (the peer closed it, or the transport failed). Messages
    /// handed to it and not yet reported [written](Self::handle_written) are lost with
    /// it; their senders are told ([`NodeError::ConnectionClosed`]).
    pub fn handle_connection_closed(
        &mut self,
        connection: ConnectionId,
        reason: Option<&str>,
        now: Instant,
    ) {
        self.drop_connection(connection, reason.map(str::to_owned), false, now);
    }

    /// `n` bytes of earlier transmits on the connection were written.
    pub fn handle_written(&mut self, connection: ConnectionId, n: usize, now: Instant) {
        let _ = now;
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.written(n);
        }
    }

    /// Whether the transport should stop reading `connection` for now: a message it
    /// delivered waits for room in a full mailbox. Reading is wanted again once the
    /// worker takes a message ([`handle_consumed`](Self::handle_consumed)), the mailbox
    /// goes away ([`unregister`](Self::unregister)) or the wait times out
    /// ([`handle_timeout`](Self::handle_timeout), [`NodeConfig::max_stall`]). Meanwhile
    /// bytes handed in anyway are kept, undecoded, in the frame decoder.
    pub fn is_reading_paused(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(|c| c.stall.is_some())
    }

    /// Bytes arrived on a connection. Whole frames are decoded and routed; a peer that
    /// breaks the protocol (wrong preamble, oversized frame, undecodable message) has
    /// its connection closed, and frames it sent before are still routed (unless they
    /// wait behind a full mailbox: they are then lost with the connection).
    pub fn handle_received(&mut self, connection: ConnectionId, bytes: &[u8], now: Instant) {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        let framing = conn.decoder.handle_bytes(bytes);
        // Reading should have paused while stalled (`is_reading_paused`); a transport
        // that goes on anyway may not fill memory with frames nobody routes.
        if conn.stall.is_some() && conn.decoder.buffered_len() > self.config.max_connection_backlog
        {
            tracing::debug!(connection = connection.0, "read on while paused; closing");
            self.drop_connection(
                connection,
                Some("bytes kept arriving while reading was paused".into()),
                true,
                now,
            );
            return;
        }
        self.route_frames(connection, now);
        if let Err(error) = framing {
            tracing::debug!(connection = connection.0, %error, "stream refused; closing");
            self.stats.connections_refused += 1;
            self.drop_connection(connection, Some(error.to_string()), true, now);
        }
    }

    /// Routes the whole frames received on `connection`, until none is left or one
    /// of them finds no room (the connection then stalls until there is).
    fn route_frames(&mut self, connection: ConnectionId, now: Instant) {
        loop {
            let Some(conn) = self.connections.get_mut(&connection) else {
                return;
            };
            if conn.stall.is_some() {
                return;
            }
            let Some(mut frame) = conn.decoder.poll_frame() else {
                return;
            };
            if frame.is_empty() {
                continue; // a keepalive
            }
            let alias = conn.alias.clone();
            match MessageView::decode(&frame) {
                Ok(mut view) => {
                    tracing::trace!(connection = connection.0, onward = %view.onward_route, "frame received");
                    view.return_route.prepend(alias);
                    self.stalling = Some(connection);
                    let result = match self.decryptor_at(&view.onward_route) {
                        // A record for a channel end here is opened where it lies in
                        // the frame, without first copying it out into a message.
                        Some(id) => {
                            self.stats.messages_routed += 1;
                            let mut work = VecDeque::new();
                            let record = frame.get_mut(view.payload).unwrap_or_default();
                            self.receive_record(id, view.return_route, record, now, &mut work);
                            self.route_all(work, None, now)
                        }
                        None => self.route(view.into_message(&frame), None, now),
                    };
                    self.stalling = None;
                    if let Err(error) = result {
                        self.report(None, error);
                    }
                }
                Err(error) => {
                    tracing::debug!(connection = connection.0, %error, "undecodable message; closing");
                    self.stats.connections_refused += 1;
                    self.drop_connection(connection, Some(error.to_string()), true, now);
                    return;
                }
            }
        }
    }

    /// Gives each stalled connection's waiting message another try, oldest stall
    /// first, and goes on with its frames once it is through.
    fn retry_stalled(&mut self, now: Instant) {
        for _ in 0..self.stalled.len() {
            let Some(id) = self.stalled.pop_front() else {
                break;
            };
            let ready = match self.connections.get(&id).and_then(|c| c.stall.as_ref()) {
                None => continue,
                Some(stall) => self.has_room(&stall.address),
            };
            if ready {
                self.resume(id, false, now);
            } else {
                self.stalled.push_back(id);
            }
        }
    }

    /// Ends the stall of connection `id`: its waiting message is delivered (or, if
    /// `give_up`, dropped and reported), then the messages after it and its frames go
    /// on, in order, until they are through or stall again.
    fn resume(&mut self, id: ConnectionId, give_up: bool, now: Instant) {
        self.stalled.retain(|s| *s != id);
        let Some(stall) = self.connections.get_mut(&id).and_then(|c| c.stall.take()) else {
            return;
        };
        tracing::trace!(connection = id.0, give_up, "stall over");
        let limit = self.config.mailbox_capacity;
        let result = if give_up {
            if let Some(m) = self.mailboxes.get_mut(&stall.address) {
                m.overflowing = true;
            }
            Err(NodeError::MailboxFull {
                address: stall.address,
                limit,
            })
        } else {
            self.deliver(stall.address, stall.message)
        };
        debug_assert!(self.blocked.is_none(), "a resumed message has room");
        if let Err(error) = result {
            self.report(None, error);
        }
        self.stalling = Some(id);
        let result = self.route_all(stall.rest, None, now);
        self.stalling = None;
        if let Err(error) = result {
            self.report(None, error);
        }
        self.route_frames(id, now);
    }

    /// Whether the mailbox at `address` has room now (or is gone, so that trying again
    /// reports the error).
    fn has_room(&self, address: &Address) -> bool {
        self.mailboxes
            .get(address)
            .is_none_or(|m| m.unread < self.config.mailbox_capacity)
    }

    /// Time has passed: handshakes past their deadline fail, and messages from
    /// connections that waited for a mailbox past [`NodeConfig::max_stall`] are dropped
    /// and reported.
    pub fn handle_timeout(&mut self, now: Instant) {
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
            let _ = self.drain_channel_and_route(id, now);
        }
        let expired: Vec<ConnectionId> = self
            .stalled
            .iter()
            .copied()
            .filter(|id| {
                self.connections
                    .get(id)
                    .and_then(|c| c.stall.as_ref())
                    .is_some_and(|s| s.deadline <= now)
            })
            .collect();
        for id in expired {
            self.resume(id, true, now);
        }
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
        let stalls = self
            .stalled
            .iter()
            .filter_map(|id| Some(self.connections.get(id)?.stall.as_ref()?.deadline));
        self.channels
            .values()
            .filter_map(|end| end.channel.poll_timeout())
            .chain(stalls)
            .min()
    }

    // ---- routing --------------------------------------------------------------------

    /// Routes a message, and everything it turns into inside this node, until each is
    /// delivered, sent or refused. Returns the first error; the others are reported.
    fn route(
        &mut self,
        message: TransportMessage,
        sender: Option<&Address>,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.route_all(VecDeque::from([message]), sender, now)
    }

    /// The channel end whose decryptor is the first address of `route`, if any.
    fn decryptor_at(&self, route: &Route) -> Option<ChannelId> {
        match self.targets.get(route.next()?) {
            Some(Target::Decryptor(id)) => Some(*id),
            _ => None,
        }
    }

    /// Routes `work` and everything routing it produces, reporting every error after
    /// the first, which is returned.
    fn route_all(
        &mut self,
        mut work: VecDeque<TransportMessage>,
        sender: Option<&Address>,
        now: Instant,
    ) -> Result<(), NodeError> {
        let mut first_error = None;
        let mut hops = 0usize;
        while let Some(message) = work.pop_front() {
            hops += 1;
            let result = if hops > self.config.max_local_hops {
                Err(NodeError::RoutingLoop {
                    limit: self.config.max_local_hops,
                })
            } else {
                self.stats.messages_routed += 1;
                self.route_one(message, sender, now, &mut work)
            };
            if let Err(error) = result {
                if first_error.is_none() {
                    first_error = Some(error);
                } else {
                    self.report(sender.cloned(), error);
                }
            }
            if let Some((address, message)) = self.blocked.take() {
                // A message from a connection found its mailbox full: it and the rest
                // wait, and the connection is not read meanwhile.
                let rest = std::mem::take(&mut work);
                let deadline = now + self.config.max_stall;
                match self
                    .stalling
                    .and_then(|id| Some((id, self.connections.get_mut(&id)?)))
                {
                    Some((id, conn)) => {
                        tracing::trace!(connection = id.0, "stalled");
                        conn.stall = Some(Stall {
                            address,
                            message,
                            rest,
                            deadline,
                        });
                        self.stalled.push_back(id);
                    }
                    // The connection is gone: what waited is lost with it.
                    None => self.stats.delivery_failures += 1 + rest.len() as u64,
                }
                break;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn route_one(
        &mut self,
        mut message: TransportMessage,
        sender: Option<&Address>,
        now: Instant,
        work: &mut VecDeque<TransportMessage>,
    ) -> Result<(), NodeError> {
        let Some(next) = message.onward_route.next().cloned() else {
            return Err(NodeError::EmptyRoute);
        };
        if next.transport() == TransportType::TCP {
            let _ = message.onward_route.step();
            let peer = next
                .value_str()
                .ok_or_else(|| NodeError::UnsupportedTransport(next.clone()))?
                .to_owned();
            let frame = self.frame(&message)?;
            return self.send_to_peer(peer, frame, sender);
        }
        if !next.is_local() {
            return Err(NodeError::UnsupportedTransport(next));
        }
        match self.targets.get(&next) {
            None => Err(NodeError::UnknownAddress(next)),
            Some(Target::Mailbox) => self.deliver(next, message),
            Some(Target::Connection(id)) => {
                let id = *id;
                let _ = message.onward_route.step();
                let frame = self.frame(&message)?;
                self.send_frame(id, frame, sender)
            }
            Some(Target::Encryptor(id)) => {
                let id = *id;
                let _ = message.onward_route.step();
                if let Some(result) =
                    self.send_record_over_connection(id, &next, &message, sender, now)
                {
                    self.drain_channel(id, now, work);
                    return result;
                }
                let end = self
                    .channels
                    .get_mut(&id)
                    .ok_or_else(|| NodeError::UnknownAddress(next.clone()))?;
                end.channel
                    .handle_send(&message, now)
                    .map_err(|error| NodeError::Channel {
                        address: next.clone(),
                        error,
                    })?;
                self.drain_channel(id, now, work);
                Ok(())
            }
            Some(Target::Decryptor(id)) => {
                let id = *id;
                self.receive_record(id, message.return_route, &mut message.payload, now, work);
                Ok(())
            }
            Some(Target::Listener) => {
                let _ = message.onward_route.step();
                self.accept_hello(&next, message, now, work);
                Ok(())
            }
        }
    }

    /// When channel end `id` reaches its peer's end through a connection first (a TCP
    /// address, or the local alias of a connection: the usual cases), encrypts
    /// `message` straight into the frame for that connection: the frame's length
    /// prefix and the outer message's head are written first and the channel appends
    /// the record after them, so the record is never copied. `None` when the first hop
    /// is something else: the caller takes the general path.
    fn send_record_over_connection(
        &mut self,
        id: ChannelId,
        encryptor: &Address,
        message: &TransportMessage,
        sender: Option<&Address>,
        now: Instant,
    ) -> Option<Result<(), NodeError>> {
        let end = self.channels.get_mut(&id)?;
        if !SecureChannel::fits_in_one_record(message) {
            return None; // the general path reports it as the channel's error
        }
        let first = end.remote.next()?;
        let hop = if first.transport() == TransportType::TCP {
            match first.value_str() {
                Some(peer) => Hop::Peer(peer.to_owned()),
                None => return Some(Err(NodeError::UnsupportedTransport(first.clone()))),
            }
        } else {
            match self.targets.get(first) {
                Some(Target::Connection(connection)) => Hop::Connection(*connection),
                _ => return None,
            }
        };
        let channel_error = |error| NodeError::Channel {
            address: encryptor.clone(),
            error,
        };
        let result = (|| {
            let mut onward = end.remote.clone();
            let _ = onward.step();
            let back = Route::from(end.decryptor.clone());
            let record_len = SecureChannel::record_len(message);
            let mut frame = Vec::with_capacity(
                FRAME_HEADER_LEN
                    + crate::message::envelope_head_len(&onward, &back, record_len)
                    + record_len,
            );
            frame.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            TransportMessage::encode_head(&onward, &back, record_len, &mut frame)?;
            end.channel
                .handle_send_into(message, &mut frame, now)
                .map_err(channel_error)?;
            Ok(frame)
        })();
        Some(result.and_then(|frame| {
            // The outer message is routed here, as the general path would count it.
            self.stats.messages_routed += 1;
            let frame = self.finish_frame(frame)?;
            match hop {
                Hop::Peer(peer) => self.send_to_peer(peer, frame, sender),
                Hop::Connection(connection) => self.send_frame(connection, frame, sender),
            }
        }))
    }

    fn deliver(&mut self, address: Address, message: TransportMessage) -> Result<(), NodeError> {
        let limit = self.config.mailbox_capacity;
        let mailbox = self
            .mailboxes
            .get_mut(&address)
            .ok_or_else(|| NodeError::UnknownAddress(address.clone()))?;
        if mailbox.unread >= limit {
            if self.stalling.is_some()
                && self.blocked.is_none()
                && !mailbox.overflowing
                && limit > 0
            {
                // From a connection: it waits for room rather than being dropped.
                self.blocked = Some((address, message));
                return Ok(());
            }
            return Err(NodeError::MailboxFull { address, limit });
        }
        mailbox.unread += 1;
        tracing::trace!(%address, "deliver");
        self.outputs.push_back(Output::Deliver { address, message });
        Ok(())
    }

    fn frame(&self, message: &TransportMessage) -> Result<Vec<u8>, NodeError> {
        // The message is encoded in place after the room for its length prefix.
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + message.encoded_len());
        frame.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        message.encode(&mut frame)?;
        self.finish_frame(frame)
    }

    /// Fills in the length prefix of a frame written after [`FRAME_HEADER_LEN`] bytes
    /// of room.
    fn finish_frame(&self, mut frame: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        let len = frame.len().saturating_sub(FRAME_HEADER_LEN);
        let header = frame_header(len, self.config.max_frame_len).map_err(|e| {
            NodeError::Message(crate::message::MessageError::Malformed {
                offset: None,
                reason: e.to_string(),
            })
        })?;
        if let Some(prefix) = frame.get_mut(..FRAME_HEADER_LEN) {
            prefix.copy_from_slice(&header);
        }
        Ok(frame)
    }

    fn send_to_peer(
        &mut self,
        peer: String,
        frame: Vec<u8>,
        sender: Option<&Address>,
    ) -> Result<(), NodeError> {
        let id = match self.outgoing.get(&peer) {
            Some(id) => *id,
            None => {
                if self.connections.len() >= self.config.max_connections {
                    return Err(NodeError::ConnectFailed {
                        peer,
                        reason: format!(
                            "too many connections (limit {})",
                            self.config.max_connections
                        ),
                    });
                }
                let id = self.next_connection_id();
                let alias = self.generate_address()?;
                tracing::debug!(%peer, connection = id.0, "connecting");
                self.targets.insert(alias.clone(), Target::Connection(id));
                self.outgoing.insert(peer.clone(), id);
                self.connections.insert(
                    id,
                    Connection::new(
                        peer.clone(),
                        Direction::Outgoing,
                        alias,
                        self.config.max_frame_len,
                    ),
                );
                self.outputs.push_back(Output::Connect {
                    connection: id,
                    peer,
                });
                id
            }
        };
        self.send_frame(id, frame, sender)
    }

    fn send_frame(
        &mut self,
        id: ConnectionId,
        frame: Vec<u8>,
        sender: Option<&Address>,
    ) -> Result<(), NodeError> {
        let max_queued = self.config.max_queued_while_connecting;
        let max_backlog = self.config.max_connection_backlog;
        let conn = self
            .connections
            .get_mut(&id)
            .ok_or_else(|| NodeError::ConnectionClosed {
                peer: id.to_string(),
                reason: "gone".into(),
            })?;
        match &mut conn.state {
            ConnectionState::Connecting(queue) => {
                let queued: usize = queue.iter().map(|q| q.frame.len()).sum();
                if queue.len() >= max_queued {
                    return Err(NodeError::ConnectionBacklogFull {
                        peer: conn.peer.clone(),
                        queued,
                        limit: max_queued,
                    });
                }
                // The byte limit holds while connecting too: the queue becomes the
                // connection's backlog the moment it opens.
                if queued.saturating_add(frame.len()) > max_backlog {
                    return Err(NodeError::ConnectionBacklogFull {
                        peer: conn.peer.clone(),
                        queued,
                        limit: max_backlog,
                    });
                }
                queue.push_back(Queued {
                    frame,
                    sender: sender.cloned(),
                });
                Ok(())
            }
            ConnectionState::Open => {
                if conn.backlog.saturating_add(frame.len()) > max_backlog {
                    return Err(NodeError::ConnectionBacklogFull {
                        peer: conn.peer.clone(),
                        queued: conn.backlog,
                        limit: max_backlog,
                    });
                }
                self.transmit(id, frame, Some(sender.cloned()));
                Ok(())
            }
        }
    }

    /// Hands `bytes` to the transport; `message` is `Some(sender)` for a frame
    /// carrying a message, `None` for the preamble.
    fn transmit(&mut self, id: ConnectionId, bytes: Vec<u8>, message: Option<Option<Address>>) {
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.backlog = conn.backlog.saturating_add(bytes.len());
            conn.in_flight.push_back(InFlight {
                remaining: bytes.len(),
                message,
            });
        }
        self.outputs.push_back(Output::Transmit {
            connection: id,
            bytes,
        });
    }

    /// Forgets a connection: its alias goes, waiting messages fail, and the caller is
    /// told to close it if `close` (the core's own decision).
    fn drop_connection(
        &mut self,
        id: ConnectionId,
        reason: Option<String>,
        close: bool,
        now: Instant,
    ) {
        let _ = now;
        let Some(conn) = self.connections.remove(&id) else {
            return;
        };
        self.targets.remove(&conn.alias);
        if self.outgoing.get(&conn.peer) == Some(&id) {
            self.outgoing.remove(&conn.peer);
        }
        if close {
            self.outputs.push_back(Output::Close { connection: id });
        }
        let why = reason.clone().unwrap_or_else(|| "closed".into());
        // Messages handed to the transport and never written are lost with it.
        for sender in conn.in_flight.into_iter().filter_map(|f| f.message) {
            self.report(
                sender,
                NodeError::ConnectionClosed {
                    peer: conn.peer.clone(),
                    reason: why.clone(),
                },
            );
        }
        // What waited for room on its behalf is lost with it (its frames were read).
        self.stalled.retain(|s| *s != id);
        if let Some(stall) = conn.stall {
            let lost = 1 + stall.rest.len() as u64;
            self.stats.delivery_failures += lost;
            tracing::debug!(
                connection = id.0,
                lost,
                "stalled messages dropped with the connection"
            );
        }
        if let ConnectionState::Connecting(queue) = conn.state {
            for queued in queue {
                let error = if close {
                    NodeError::ConnectionClosed {
                        peer: conn.peer.clone(),
                        reason: why.clone(),
                    }
                } else {
                    NodeError::ConnectFailed {
                        peer: conn.peer.clone(),
                        reason: why.clone(),
                    }
                };
                self.report(queued.sender, error);
            }
        }
        tracing::debug!(peer = %conn.peer, connection = id.0, reason = %why, "connection dropped");
        self.outputs
            .push_back(Output::Event(NodeEvent::ConnectionClosed {
                connection: id,
                peer: conn.peer,
                error: reason,
            }));
    }

    /// Reports a failure to deliver: to a channel in its handshake, which then fails at
    /// once; otherwise as an event.
    fn report(&mut self, sender: Option<Address>, error: NodeError) {
        self.stats.delivery_failures += 1;
        if let Some(Target::Encryptor(id)) = sender.as_ref().and_then(|s| self.targets.get(s)) {
            let id = *id;
            if let Some(end) = self.channels.get(&id) {
                if !end.channel.is_established() {
                    let address = end.encryptor.clone();
                    tracing::debug!(%address, %error, "channel handshake could not be sent");
                    self.remove_channel(id);
                    self.outputs
                        .push_back(Output::Event(NodeEvent::ChannelFailed {
                            channel: id,
                            address,
                            error,
                        }));
                    return;
                }
            }
        }
        tracing::debug!(?sender, %error, "delivery failed");
        self.outputs
            .push_back(Output::Event(NodeEvent::DeliveryFailed { sender, error }));
    }

    // ---- secure channels ------------------------------------------------------------

    fn add_channel(
        &mut self,
        channel: SecureChannel,
        remote: Route,
        prefix: Option<Route>,
        listener: Option<Address>,
    ) -> Result<(ChannelId, Address), NodeError> {
        let encryptor = self.generate_address()?;
        let mut decryptor = self.generate_address()?;
        while decryptor == encryptor {
            decryptor = self.generate_address()?;
        }
        let id = ChannelId(self.next_channel);
        self.next_channel += 1;
        self.targets
            .insert(encryptor.clone(), Target::Encryptor(id));
        self.targets
            .insert(decryptor.clone(), Target::Decryptor(id));
        self.channels.insert(
            id,
            ChannelEnd {
                channel,
                encryptor: encryptor.clone(),
                decryptor,
                remote,
                prefix,
                listener,
            },
        );
        Ok((id, encryptor))
    }

    fn remove_channel(&mut self, id: ChannelId) {
        if let Some(end) = self.channels.remove(&id) {
            self.targets.remove(&end.encryptor);
            self.targets.remove(&end.decryptor);
            if let Some(listener) = end.listener.and_then(|l| self.listeners.get_mut(&l)) {
                listener.half_open.retain(|h| *h != id);
            }
        }
    }

    /// Drains a channel end and routes what it produced, reporting errors as events.
    fn drain_channel_and_route(&mut self, id: ChannelId, now: Instant) -> Result<(), NodeError> {
        let mut work = VecDeque::new();
        let sender = self.channels.get(&id).map(|end| end.encryptor.clone());
        self.drain_channel(id, now, &mut work);
        let mut first = None;
        while let Some(message) = work.pop_front() {
            if let Err(e) = self.route(message, sender.as_ref(), now) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Takes a channel end's records and events: records become messages to the peer's
    /// end, decrypted messages continue inside the node; an ended channel is removed.
    fn drain_channel(
        &mut self,
        id: ChannelId,
        now: Instant,
        work: &mut VecDeque<TransportMessage>,
    ) {
        let _ = now;
        let Some(end) = self.channels.get_mut(&id) else {
            return;
        };
        while let Some(record) = end.channel.poll_transmit() {
            work.push_back(TransportMessage::new(
                end.remote.clone(),
                Route::from(end.decryptor.clone()),
                record,
            ));
        }
        let mut events = Vec::new();
        while let Some(event) = end.channel.poll_event() {
            events.push(event);
        }
        let encryptor = end.encryptor.clone();
        let initiator = end.channel.role() == ChannelRole::Initiator;
        let ended = end.channel.is_ended();
        for event in events {
            match event {
                ChannelEvent::Established { peer } => {
                    if let Some(listener) =
                        end_listener(&self.channels, id).and_then(|l| self.listeners.get_mut(&l))
                    {
                        listener.half_open.retain(|h| *h != id);
                    }
                    self.outputs
                        .push_back(Output::Event(NodeEvent::ChannelEstablished {
                            channel: id,
                            address: encryptor.clone(),
                            peer,
                            initiator,
                        }));
                }
                ChannelEvent::Received(mut inner) => {
                    inner.return_route.prepend(encryptor.clone());
                    work.push_back(inner);
                }
                ChannelEvent::Closed { by_peer, .. } => {
                    self.outputs
                        .push_back(Output::Event(NodeEvent::ChannelClosed {
                            channel: id,
                            address: encryptor.clone(),
                            by_peer,
                        }));
                }
                ChannelEvent::Failed(error) => {
                    self.outputs
                        .push_back(Output::Event(NodeEvent::ChannelFailed {
                            channel: id,
                            address: encryptor.clone(),
                            error: NodeError::Channel {
                                address: encryptor.clone(),
                                error,
                            },
                        }));
                }
            }
        }
        if ended {
            self.remove_channel(id);
        }
    }

    /// A record arrived for channel end `id` with `return_route` (the rest of its
    /// onward route is not used: the record carries the inner one).
    fn receive_record(
        &mut self,
        id: ChannelId,
        return_route: Route,
        record: &mut [u8],
        now: Instant,
        work: &mut VecDeque<TransportMessage>,
    ) {
        let Some(end) = self.channels.get_mut(&id) else {
            return;
        };
        match end.channel.handle_record_in_place(record, now) {
            Ok(()) => {
                // The record authenticated (or completed a handshake step): learn the
                // way back to the peer's end. Return routes are not authenticated, so
                // the initiator takes the responder's end from the response alone (that
                // end never moves; a later altered record must not redirect the channel
                // for good), while the responder follows the newest authentic record,
                // whose return route leads back over the connections in use now.
                match end.channel.role() {
                    ChannelRole::Initiator => {
                        if let Some(mut remote) = end.prefix.take() {
                            if let Some(peer_end) = return_route.last() {
                                remote.append(peer_end.clone());
                                end.remote = remote;
                            }
                        }
                    }
                    ChannelRole::Responder => {
                        if !return_route.is_empty() {
                            end.remote = return_route;
                        }
                    }
                }
            }
            Err(error) => {
                self.stats.records_rejected += 1;
                tracing::trace!(channel = id.0, %error, "record rejected");
            }
        }
        self.drain_channel(id, now, work);
    }

    fn accept_hello(
        &mut self,
        listener_address: &Address,
        message: TransportMessage,
        now: Instant,
        work: &mut VecDeque<TransportMessage>,
    ) {
        let Some(listener) = self.listeners.get(listener_address) else {
            return;
        };
        if !SecureChannel::is_hello(&message.payload) || message.return_route.is_empty() {
            self.stats.hellos_rejected += 1;
            return;
        }
        let (identity, trust, config) = (
            listener.identity.clone(),
            listener.trust.clone(),
            listener.config.clone(),
        );
        let channel = match SecureChannel::responder(
            &config,
            &identity,
            trust,
            &mut *self.rng,
            &message.payload,
            now,
        ) {
            Ok(channel) => channel,
            Err(error) => {
                self.stats.hellos_rejected += 1;
                tracing::trace!(%error, "hello rejected");
                return;
            }
        };
        // Only a hello that checks out makes room: the oldest half-open end of this
        // listener goes first. (A malformed hello must not evict a real handshake.)
        let half_open = self
            .listeners
            .get(listener_address)
            .map_or(0, |l| l.half_open.len());
        if half_open >= self.config.max_half_open_per_listener {
            if let Some(oldest) = self
                .listeners
                .get_mut(listener_address)
                .and_then(|l| l.half_open.pop_front())
            {
                self.stats.half_open_evicted += 1;
                self.remove_channel(oldest);
            }
        }
        if self.channels.len() >= self.config.max_channels {
            self.stats.hellos_rejected += 1;
            return;
        }
        match self.add_channel(
            channel,
            message.return_route,
            None,
            Some(listener_address.clone()),
        ) {
            Ok((id, _)) => {
                if let Some(listener) = self.listeners.get_mut(listener_address) {
                    listener.half_open.push_back(id);
                }
                self.drain_channel(id, now, work);
            }
            Err(error) => {
                self.stats.hellos_rejected += 1;
                tracing::debug!(%error, "no room for a channel");
            }
        }
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

    fn next_connection_id(&mut self) -> ConnectionId {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        id
    }
}

/// The connection a frame goes out on: by TCP peer (connecting if need be), or an open
/// one by its id.
enum Hop {
    Peer(String),
    Connection(ConnectionId),
}

fn end_listener(channels: &BTreeMap<ChannelId, ChannelEnd>, id: ChannelId) -> Option<Address> {
    channels.get(&id).and_then(|end| end.listener.clone())
}
