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
    /// ([`NodeError::TooManyChannels`](super::NodeError::TooManyChannels)), and a hello is dropped. Default 4096.
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
    /// ([`NodeEvent::DeliveryFailed`](super::NodeEvent::DeliveryFailed), [`NodeError::MailboxFull`](super::NodeError::MailboxFull)), and further messages
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
