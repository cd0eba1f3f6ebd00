//! The node's memory budget: the bytes the core holds, or has handed out and not yet
//! seen back, checked before anything grows.
//!
//! Counted: the unread messages of every mailbox (each message's encoded length and
//! [`MESSAGE_OVERHEAD`]), and for every connection its unsent backlog and the frames
//! queued while it opens (each with [`TRANSMIT_OVERHEAD`]), the partial frame its
//! decoder holds and the messages waiting for room on its behalf.
//! The budget is [`NodeConfig::memory_budget`](super::NodeConfig::memory_budget);
//! incoming connections that have not carried an authenticated record share a quarter
//! of it, so peers that authenticated nothing cannot crowd out the rest.

use std::fmt;

use crate::message::TransportMessage;

/// Bytes charged for each transmit held for a connection beyond its own length: the
/// allocation's and the transport's queue's overhead. Without it a flood of small
/// answers (cookie replies are 49 bytes) would hold several times what the budget
/// says.
pub const TRANSMIT_OVERHEAD: usize = 64;

/// Bytes charged for each message held (in a mailbox, or waiting for room) beyond its
/// encoded length: its routes' and buffers' overhead.
pub const MESSAGE_OVERHEAD: usize = 128;

/// What holding `message` costs the budget.
#[inline]
pub(crate) fn message_cost(message: &TransportMessage) -> usize {
    message.encoded_len().saturating_add(MESSAGE_OVERHEAD)
}

use crate::routing::Address;

use super::NodeError;

/// Which share of the memory budget a refusal was for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetShare {
    /// The whole node's budget ([`NodeConfig::memory_budget`](super::NodeConfig::memory_budget)).
    Node,
    /// The quarter of the budget that incoming connections which have authenticated
    /// nothing share.
    Unauthenticated,
    /// One mailbox's bytes ([`NodeConfig::max_mailbox_bytes`](super::NodeConfig::max_mailbox_bytes)).
    Mailbox(Address),
}

impl fmt::Display for BudgetShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetShare::Node => f.write_str("the node"),
            BudgetShare::Unauthenticated => {
                f.write_str("incoming connections that authenticated nothing")
            }
            BudgetShare::Mailbox(address) => write!(f, "the mailbox of {address}"),
        }
    }
}

/// A share of the budget as it stands: bytes in use against a limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) in_use: usize,
    pub(crate) limit: usize,
}

impl Budget {
    /// Whether `size` more bytes fit.
    #[inline]
    pub(crate) fn fits(self, size: usize) -> bool {
        self.in_use.saturating_add(size) <= self.limit
    }

    /// The error for `size` bytes that did not fit in `share`.
    pub(crate) fn refusal(self, share: BudgetShare, size: usize) -> NodeError {
        NodeError::MemoryBudget {
            share,
            needed: size,
            in_use: self.in_use,
            limit: self.limit,
        }
    }
}
