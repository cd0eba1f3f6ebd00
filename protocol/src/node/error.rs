//! The node core's error type.

use crate::channel::ChannelError;
use crate::message::MessageError;
use crate::random::RandomError;
use crate::routing::Address;

use super::{BudgetShare, Origin};

/// Why the node could not take or deliver a message, or carry out a command.
///
/// Every variant names the address, peer or limit concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The message's onward route is empty: it has nowhere to go.
    #[error("the message has an empty onward route")]
    EmptyRoute,
    /// No worker, channel end, listener or connection has this local address.
    #[error("no such address on this node: {0}")]
    UnknownAddress(Address),
    /// The address is of a transport this node does not carry.
    #[error("this node has no transport for address {0}")]
    UnsupportedTransport(Address),
    /// A transport type used where it cannot be: [`TransportType::LOCAL`](crate::routing::TransportType::LOCAL)
    /// or the report marker added as a transport, or an inbox opened for a type
    /// that is not a message transport of this node.
    #[error("transport type {transport} is not a {needed} transport of this node")]
    TransportNotAvailable {
        /// The transport type.
        transport: crate::routing::TransportType,
        /// What the call needed it to be.
        needed: &'static str,
    },
    /// A transport of this type was added to the node already.
    #[error("this node carries transport type {0} already")]
    TransportExists(crate::routing::TransportType),
    /// The address is a name registered with a relay service of this node, and the
    /// node that registered it is not connected now.
    #[error("{0}: the node registered under this relay name is not connected")]
    RelayNotConnected(Address),
    /// The local address is already taken.
    #[error("address {0} is already in use")]
    AddressInUse(Address),
    /// The mailbox holds as many unread messages as it may; the message was dropped.
    #[error("the mailbox of {address} is full ({limit} unread messages); message dropped")]
    MailboxFull {
        /// The mailbox's address.
        address: Address,
        /// Its limit.
        limit: usize,
    },
    /// The connection to a peer has as much unsent data as it may; the message was
    /// dropped.
    #[error("the connection to {peer} is backed up ({queued} bytes unsent, limit {limit}); message dropped")]
    ConnectionBacklogFull {
        /// The peer's address.
        peer: String,
        /// Bytes queued.
        queued: usize,
        /// The limit.
        limit: usize,
    },
    /// A connection could not be opened.
    #[error("could not connect to {peer}: {reason}")]
    ConnectFailed {
        /// The peer's address.
        peer: String,
        /// Why, as the transport reported it.
        reason: String,
    },
    /// The connection closed before the message was sent.
    #[error("the connection to {peer} closed: {reason}")]
    ConnectionClosed {
        /// The peer's address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The secure channel at this address cannot carry the message.
    #[error("secure channel {address}: {error}")]
    Channel {
        /// The channel end's encryptor address.
        address: Address,
        /// What the channel said.
        error: ChannelError,
    },
    /// The node already has as many secure channel ends as it may.
    #[error("too many secure channels (limit {limit})")]
    TooManyChannels {
        /// The limit.
        limit: usize,
    },
    /// The message could not be encoded.
    #[error("message cannot be sent: {0}")]
    Message(#[from] MessageError),
    /// The message went through more local hops inside this node than allowed, which
    /// only a routing loop does.
    #[error("routing loop: more than {limit} local hops for one message")]
    RoutingLoop {
        /// The limit.
        limit: usize,
    },
    /// An access rule refused the message: the address does not take messages from
    /// where this one came from.
    #[error("a message from {origin} to {address} was refused: {rule}")]
    Refused {
        /// The address whose rule refused it (a worker or context, a channel's
        /// encryptor or listener, or the first hop a channel's decrypted message named).
        address: Address,
        /// Where the message came from.
        origin: Origin,
        /// The rule that refused it, as a sentence: whose it is and what it admits.
        rule: std::sync::Arc<str>,
    },
    /// Memory for the message is not in the budget: holding it would take a share of
    /// the node's memory budget past its limit. The message was dropped (one read from
    /// a connection waits instead, as at a full mailbox).
    #[error("memory budget: {share} holds {in_use} of its {limit} bytes; {needed} more refused")]
    MemoryBudget {
        /// Whose share it is.
        share: BudgetShare,
        /// Bytes the message needed.
        needed: usize,
        /// Bytes of the share in use.
        in_use: usize,
        /// The share's limit.
        limit: usize,
    },
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}
