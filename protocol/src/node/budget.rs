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
//!
//! Here too: the node core's checks against the budget before a transmit, and the
//! shedding of connections when what they hold passes it.

use std::fmt;
use std::time::Instant;

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

use super::{ConnectionId, NodeCore, NodeError};

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

impl NodeCore {
    /// After bytes arrived on `connection`: if what connections that authenticated
    /// nothing hold is past their quarter, the largest holders among them are closed
    /// until it is not (whichever they are: a newcomer is not shed for an attacker's
    /// bytes). Otherwise `connection` is closed if the bytes it holds unread (a partial
    /// frame) took the node's budget past its limit.
    pub(super) fn shed_if_over_budget(&mut self, connection: ConnectionId, now: Instant) {
        let Some(conn) = self.connections.get(connection) else {
            return;
        };
        if conn.decoder.buffered_len() == 0 || conn.stall.is_some() {
            // It holds nothing it read (what it is owed is not its doing), or it waits
            // for room and is not read meanwhile: what it holds is bounded by then.
            return;
        }
        if conn.is_unproven_incoming() {
            while !self.unproven_budget().fits(0) && self.shed_largest_unproven(now).is_some() {}
            return;
        }
        let (share, budget) = if self.memory_in_use() > self.config.memory_budget {
            (BudgetShare::Node, self.budget())
        } else {
            return;
        };
        let reason = format!(
            "memory budget: {share} holds {} of its {} bytes",
            budget.in_use, budget.limit
        );
        tracing::debug!(connection = connection.0, %reason, "connection shed");
        self.stats.connections_shed += 1;
        self.drop_connection(connection, Some(reason), true, now);
    }

    /// Closes the incoming connection that authenticated nothing and holds the most
    /// bytes, if one holds any; returns it.
    fn shed_largest_unproven(&mut self, now: Instant) -> Option<ConnectionId> {
        let id = self.connections.largest_unproven()?;
        let share = self.unproven_budget();
        let reason = format!(
            "memory budget: {} hold {} of their {} bytes, the most of them on this connection",
            BudgetShare::Unauthenticated,
            share.in_use,
            share.limit
        );
        tracing::debug!(connection = id.0, %reason, "connection shed");
        self.stats.connections_shed += 1;
        self.drop_connection(id, Some(reason), true, now);
        Some(id)
    }

    /// The node's memory budget as it stands.
    pub(crate) fn budget(&self) -> Budget {
        Budget {
            in_use: self.memory_in_use(),
            limit: self.config.memory_budget,
        }
    }

    /// The share of unproven incoming connections as it stands.
    fn unproven_budget(&self) -> Budget {
        Budget {
            in_use: self.connections.charged_unproven(),
            limit: self.config.memory_budget / 4,
        }
    }

    /// Checks that `len` more bytes for `connection` fit in the memory budget (and,
    /// for a connection that authenticated nothing, in that share). When that share is
    /// full, its largest holders are closed first to make room: peers that do not
    /// read what they are sent cannot lock newcomers out.
    ///
    /// # Errors
    ///
    /// [`NodeError::MemoryBudget`] if not (counted in the stats), also when
    /// `connection` itself was the largest holder and was closed.
    pub(crate) fn check_budget(
        &mut self,
        connection: ConnectionId,
        len: usize,
        now: Instant,
    ) -> Result<(), NodeError> {
        let unproven = |core: &Self| {
            core.connections
                .get(connection)
                .is_some_and(|c| c.is_unproven_incoming())
        };
        if unproven(self) {
            while !self.unproven_budget().fits(len) {
                let before = self.unproven_budget();
                match self.shed_largest_unproven(now) {
                    Some(shed) if shed != connection => {}
                    _ => {
                        self.stats.memory_refusals += 1;
                        return Err(before.refusal(BudgetShare::Unauthenticated, len));
                    }
                }
            }
        }
        let refusal = if unproven(self) && !self.unproven_budget().fits(len) {
            Some(
                self.unproven_budget()
                    .refusal(BudgetShare::Unauthenticated, len),
            )
        } else if !self.budget().fits(len) {
            Some(self.budget().refusal(BudgetShare::Node, len))
        } else {
            None
        };
        match refusal {
            Some(error) => {
                self.stats.memory_refusals += 1;
                Err(error)
            }
            None => Ok(()),
        }
    }
}
