//! What the node core tells its caller: outputs to carry out, events, counters.

use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::routing::Address;

use super::{ChannelId, ConnectionId, NodeError, Origin};

/// What the caller must do.
#[derive(Debug)]
#[must_use]
// Messages travel by value, routes inline (no allocation per route); boxing the large
// variant would put an allocation back on every message.
#[allow(clippy::large_enum_variant)]
pub enum Output {
    /// Put `message` in the mailbox at `address`. Report it consumed with
    /// [`NodeCore::handle_consumed`](super::NodeCore::handle_consumed) when its worker takes it.
    Deliver {
        /// The mailbox.
        address: Address,
        /// The message, its onward route still starting with `address`.
        message: TransportMessage,
        /// Where it came from: this node, a secure channel (with its verified peer),
        /// or a plain transport connection. The mailbox's access rule admitted it.
        origin: Origin,
    },
    /// Open a connection to `peer`, an address of a transport added to the node (for
    /// TCP, `host:port`; its value is always UTF-8 text), then report
    /// [`NodeCore::handle_connected`](super::NodeCore::handle_connected) or [`NodeCore::handle_connect_failed`](super::NodeCore::handle_connect_failed).
    /// For a [message transport](super::TransportKind::Message) this only names the
    /// peer that the connection's units go to: report it connected once the transport
    /// can send there (at once, for a broker).
    Connect {
        /// The connection's id.
        connection: ConnectionId,
        /// Where to connect: the transport type says which transport.
        peer: Address,
    },
    /// Write `bytes` on the connection, in order, then report
    /// [`NodeCore::handle_written`](super::NodeCore::handle_written); the senders of bytes never reported written are
    /// told of their loss when the connection closes. On a stream, each transmit is
    /// the preamble or one whole frame; on a message transport, each is one whole
    /// frame, to send as one unit.
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
    /// Stop reading the connection: a message it carried waits for room in a full
    /// mailbox. Bytes handed in meanwhile are kept undecoded, up to the connection's
    /// backlog limit; past it the connection is closed. Followed by
    /// [`ResumeReading`](Output::ResumeReading) once the message is through or given up
    /// (or by the connection's close).
    PauseReading {
        /// The connection.
        connection: ConnectionId,
    },
    /// Read the connection again after a [`PauseReading`](Output::PauseReading).
    ResumeReading {
        /// The connection.
        connection: ConnectionId,
    },
    /// A first hop that was congested (see
    /// [`NodeCore::congestion`](super::NodeCore::congestion)) has room again, or is gone:
    /// senders waiting on it may try again.
    Decongested(Hop),
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
        /// The id the sender gave the send that failed
        /// ([`NodeCore::handle_send_tracked`](super::NodeCore::handle_send_tracked)),
        /// or 0: none given, or the failure is not one message's (a channel that
        /// failed or closed).
        send: u64,
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
    /// Messages refused by an access rule (a worker's, a channel's or a listener's).
    pub messages_refused: u64,
    /// Connections closed because a peer missed a deadline: no first frame, a frame
    /// left unfinished, or silence on a connection that authenticated nothing.
    pub connections_timed_out: u64,
    /// Incoming connections that authenticated nothing, closed to make room for a
    /// new one when incoming connections were full.
    pub connections_evicted: u64,
    /// Messages and transmits refused, or dropped, for want of room in the memory
    /// budget (a mailbox's byte share, the node's budget, or the share of connections
    /// that authenticated nothing).
    pub memory_refusals: u64,
    /// Connections closed because what they sent would have taken the memory budget,
    /// or the share of connections that authenticated nothing, past its limit.
    pub connections_shed: u64,
    /// Hellos a listener answered with a handshake response (each costs two
    /// Diffie-Hellman operations and a signature).
    pub handshakes_answered: u64,
    /// Cookie replies sent by listeners under load, in place of a handshake response.
    pub cookies_sent: u64,
    /// Hellos with a valid cookie that waited under load because their source sent
    /// more than [`NodeConfig::cookie_hellos_per_source`](super::NodeConfig::cookie_hellos_per_source)
    /// in a second: each is answered in a later second.
    pub hellos_deferred: u64,
    /// Hellos with a valid cookie dropped under load: past their source's share when
    /// no more may wait.
    pub hellos_rate_limited: u64,
    /// Duplicate hellos (an initiator sending its hello again) answered by the
    /// responder the first one made, or dropped after it answered enough.
    pub duplicate_hellos: u64,
    /// Error reports sent back along the return route of a message this node could
    /// not deliver or forward.
    pub reports_sent: u64,
    /// Error reports not sent: past [`NodeConfig::max_reports_per_second`](super::NodeConfig::max_reports_per_second).
    pub reports_suppressed: u64,
    /// Error reports that reached a secure channel end of this node.
    pub reports_received: u64,
    /// Secure channel ends established (each time, for a persistent channel).
    pub channels_established: u64,
    /// Secure channel ends closed, by this node or by their peer.
    pub channels_closed: u64,
    /// Secure channel ends that failed (handshake or afterwards).
    pub channels_failed: u64,
    /// Units of a message transport dropped on arrival: not one frame, not a
    /// message, from a transport the node does not carry, or arriving while the
    /// inbox was told to pause.
    pub units_refused: u64,
}

/// A first hop that can be congested: where a message from a local sender goes first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hop {
    /// A local mailbox, congested while half its capacity is unread.
    Mailbox(Address),
    /// A connection, congested while half its backlog (or, while it opens, half the
    /// messages that may wait for it) is unsent.
    Connection(ConnectionId),
}

/// What a secure channel end is doing, as [`NodeCore::channel_state`](super::NodeCore::channel_state) tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelState {
    /// In its handshake (for a persistent channel: a new one).
    Opening,
    /// Messages flow, with the peer verified as this identifier.
    Established(Identifier),
    /// A persistent channel that went down for this reason, to be started again.
    Down(crate::channel::ChannelError),
    /// Ended for this reason (closed, by either side, or failed). The node remembers
    /// the latest ended ends only; an older one is not known.
    Ended(crate::channel::ChannelError),
}
