//! The node core's limits.

use std::time::Duration;

use crate::framing::DEFAULT_MAX_FRAME_LEN;

/// Limits of a node core. Each has a defined behaviour when reached, given with it.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unread messages a mailbox may hold (delivered and not yet reported consumed).
    /// Beyond it a local sender is refused ([`NodeError::MailboxFull`](super::NodeError::MailboxFull)); a message read
    /// from a connection waits, and the connection is not read, until the worker takes
    /// one (see [`max_stall`](Self::max_stall)). Default 16384.
    pub mailbox_capacity: usize,
    /// Bytes handed to a connection and not yet written. Beyond it a message is dropped
    /// and its sender told ([`NodeError::ConnectionBacklogFull`](super::NodeError::ConnectionBacklogFull)). Default 16 MiB.
    pub max_connection_backlog: usize,
    /// Bytes the node core may hold: unread mailbox messages, connection backlogs and
    /// queues, partial frames, and messages waiting for room (see
    /// [`memory_in_use`](super::NodeCore::memory_in_use)). Incoming connections that
    /// have not carried an authenticated channel record share a quarter of it. At the
    /// budget, a local send that needs more is refused
    /// ([`NodeError::MemoryBudget`](super::NodeError::MemoryBudget)), a message read
    /// from a connection waits as at a full mailbox, and a connection whose partial
    /// frame grows past it is closed. Default 256 MiB.
    pub memory_budget: usize,
    /// Bytes of unread messages one mailbox may hold (each message's encoded length).
    /// Past it the mailbox is full, as at [`mailbox_capacity`](Self::mailbox_capacity);
    /// an empty mailbox takes a message of any size. Default 32 MiB.
    pub max_mailbox_bytes: usize,
    /// Messages that may wait for a connection to open. Beyond it a message is dropped
    /// and its sender told. Default 1024.
    pub max_queued_while_connecting: usize,
    /// Connections this node dialled, open or opening. At it, a send that needs a new
    /// connection closes the open outgoing connection unused for longest that holds
    /// nothing unsent; if there is none, the send is refused
    /// ([`NodeError::ConnectFailed`](super::NodeError::ConnectFailed)). Incoming
    /// connections do not count: a peer cannot stop the node dialling out. Default 1024.
    pub max_outgoing_connections: usize,
    /// Connections peers opened to this node. When a new one arrives at the limit, the
    /// oldest incoming connection that has not yet carried an authenticated channel
    /// record is closed to make room; if every one has, the new one is closed at once.
    /// Default 1024.
    pub max_incoming_connections: usize,
    /// Incoming connections from one source address (the peer's IP, whatever its
    /// port). Beyond it a new one from that address is closed at once. Default 64.
    pub max_incoming_per_source: usize,
    /// How long a peer that connected has to send the preamble and a first whole,
    /// non-empty frame. Past it the connection is closed. Default 10 s.
    pub first_frame_timeout: Duration,
    /// How long the rest of a preamble or frame may take once part of it has arrived.
    /// Past it the connection is closed. Default 30 s.
    pub frame_timeout: Duration,
    /// How long an incoming connection that has not carried an authenticated channel
    /// record may stay without receiving anything (a keepalive, an empty frame, counts).
    /// Past it the connection is closed. Default 60 s.
    pub unproven_idle_timeout: Duration,
    /// How often an open connection on which nothing was sent gets a keepalive (an
    /// empty frame): at each interval, if nothing was handed to the connection since
    /// the last and nothing is left unwritten, one is sent, so the peer hears from this
    /// node at least once every two intervals. Keeps a quiet connection open at a peer that closes idle
    /// connections (onward's does after [`unproven_idle_timeout`](Self::unproven_idle_timeout)).
    /// Zero or `Duration::MAX`: never. Default 20 s.
    pub keepalive_interval: Duration,
    /// Largest frame accepted on a connection; a larger one closes the connection.
    /// Default [`DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: u32,
    /// Secure channel ends, established or not. Beyond it new channels are refused
    /// ([`NodeError::TooManyChannels`](super::NodeError::TooManyChannels)), and a hello is dropped. Default 4096.
    pub max_channels: usize,
    /// Channel ends a listener may have in their handshake. When a new hello arrives at
    /// a full listener, its oldest half-open end is dropped (for a hello with a valid
    /// cookie, the oldest whose hello had none), so a flood of hellos holds at most this
    /// many. With half of them in use the listener is under load and answers hellos
    /// with cookies (see [`cookie_threshold`](Self::cookie_threshold)). Default 256.
    pub max_half_open_per_listener: usize,
    /// Hellos per second at which a listener is under load (as it is while half its
    /// [`max_half_open_per_listener`](Self::max_half_open_per_listener) ends are in
    /// their handshake). Under load a listener answers a hello that carries no valid
    /// cookie with a cookie reply, which costs one HMAC, instead of with Diffie-Hellman
    /// and a signature; the initiator sends its hello again with the cookie. `None`:
    /// never (every hello is answered with a handshake). Default 1000.
    pub cookie_threshold: Option<u32>,
    /// Under load, hellos with a valid cookie answered per second from one source (the
    /// source address of the connection they came over, or the channel they came
    /// through). More wait for a later second, up to 256 in the node; past that they
    /// are dropped without an answer, and their initiators' handshakes time out
    /// ([`ChannelError::HandshakeTimeout`](crate::channel::ChannelError::HandshakeTimeout)).
    /// Default 64.
    pub cookie_hellos_per_source: u32,
    /// Local hops one message may take inside the node before it is treated as a
    /// routing loop and dropped. Default 256.
    pub max_local_hops: usize,
    /// How long a message read from a connection may wait for room in a full mailbox
    /// (its connection unread meanwhile). Past it the message is dropped and reported
    /// ([`NodeEvent::DeliveryFailed`](super::NodeEvent::DeliveryFailed), [`NodeError::MailboxFull`](super::NodeError::MailboxFull)), and further messages
    /// from connections to that mailbox are dropped rather than wait until it is down
    /// to half full: a worker that stops taking messages holds up its connections for
    /// this long at most. Default 5 s.
    pub max_stall: Duration,
    /// Error reports (docs/PROTOCOL.md §3) this node sends per second, in all, back
    /// along the return routes of messages from other nodes it could not deliver or
    /// forward; past it, failures are only counted
    /// ([`NodeStats::reports_suppressed`](super::NodeStats::reports_suppressed)), so
    /// that a peer cannot turn a node into a source of traffic. Zero: none. Default
    /// 100.
    pub max_reports_per_second: u32,
    /// Names this node's relay services keep (with their owners, connected or not);
    /// a registration of a new name past it is answered "full". Default 1024.
    pub max_relay_names: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            mailbox_capacity: 16_384,
            max_connection_backlog: 16 << 20,
            memory_budget: 256 << 20,
            max_mailbox_bytes: 32 << 20,
            max_queued_while_connecting: 1024,
            max_outgoing_connections: 1024,
            max_incoming_connections: 1024,
            max_incoming_per_source: 64,
            first_frame_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            unproven_idle_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(20),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_channels: 4096,
            max_half_open_per_listener: 256,
            cookie_threshold: Some(1000),
            cookie_hellos_per_source: 64,
            max_local_hops: 256,
            max_stall: Duration::from_secs(5),
            max_reports_per_second: 100,
            max_relay_names: 1024,
        }
    }
}
