//! Stalls: a message read from a connection that finds its mailbox full waits, with
//! the messages routed after it, and the connection is not read until they are
//! through or [`NodeConfig::max_stall`](super::NodeConfig::max_stall) has passed.
//! And congestion: whether a first hop is past half its limit, for senders that can
//! wait.

use std::collections::VecDeque;
use std::time::Instant;

use crate::message::TransportMessage;
use crate::routing::{Address, Route};

use super::budget::{message_cost, Budget};
use super::connection::Stall;
use super::mailbox::Admission;
use super::routing::{Source, Work};
use super::{BudgetShare, ConnectionId, Hop, NodeCore, NodeError, Origin, Output, Target};

impl NodeCore {
    /// Connection `id` delivered `message` to the full mailbox at `address`: it and
    /// `rest` wait, and reading the connection pauses.
    pub(super) fn begin_stall(
        &mut self,
        id: ConnectionId,
        address: Address,
        message: TransportMessage,
        origin: Origin,
        rest: Work,
        now: Instant,
    ) {
        // A `max_stall` too large to add to `now` means the wait never expires.
        let deadline = now.checked_add(self.config.max_stall);
        let bytes = rest
            .iter()
            .map(|(m, _)| message_cost(m))
            .fold(message_cost(&message), usize::saturating_add);
        match self.connections.get_mut(id) {
            Some(conn) => {
                tracing::trace!(connection = id.0, "stalled");
                conn.stall = Some(Stall {
                    address,
                    message,
                    origin,
                    rest,
                    deadline,
                    bytes,
                });
                self.stalled.push_back(id);
                // The wait is the node's: the peer's deadlines stop meanwhile.
                self.connections.rearm(id);
            }
            // The connection is gone: what waited is lost with it.
            None => self.stats.delivery_failures += 1 + rest.len() as u64,
        }
    }

    /// Emits a pause or resume for `connection` if whether it is stalled differs from
    /// what the caller was last told.
    pub(super) fn sync_reading(&mut self, connection: ConnectionId) {
        let Some(conn) = self.connections.get_mut(connection) else {
            return;
        };
        let stalled = conn.stall.is_some();
        if stalled != conn.reading_paused {
            conn.reading_paused = stalled;
            self.outputs.push_back(if stalled {
                Output::PauseReading { connection }
            } else {
                Output::ResumeReading { connection }
            });
        }
    }

    /// Gives each stalled connection's waiting message another try, oldest stall
    /// first, and goes on with its frames once it is through.
    pub(super) fn retry_stalled(&mut self, now: Instant) {
        for _ in 0..self.stalled.len() {
            let Some(id) = self.stalled.pop_front() else {
                break;
            };
            let ready = match self.connections.get(id).and_then(|c| c.stall.as_ref()) {
                None => continue,
                Some(stall) => {
                    // The stalled message's own bytes are in use already: it moves.
                    let mut budget = self.budget();
                    budget.in_use = budget.in_use.saturating_sub(stall.bytes);
                    let size = message_cost(&stall.message);
                    self.mailboxes.has_room(&stall.address, size, budget)
                }
            };
            if ready {
                self.resume(id, false, now);
            } else {
                self.stalled.push_back(id);
                // The wait is the node's: the peer's deadlines stop meanwhile.
                self.connections.rearm(id);
            }
        }
    }

    /// Gives up the messages that waited past their deadline.
    pub(super) fn expire_stalls(&mut self, now: Instant) {
        let expired: Vec<ConnectionId> = self
            .stalled
            .iter()
            .copied()
            .filter(|id| {
                self.connections
                    .get(*id)
                    .and_then(|c| c.stall.as_ref())
                    .and_then(|s| s.deadline)
                    .is_some_and(|deadline| deadline <= now)
            })
            .collect();
        for id in expired {
            self.resume(id, true, now);
        }
    }

    /// The deadlines of the stalls in force.
    pub(super) fn stall_deadlines(&self) -> impl Iterator<Item = Instant> + '_ {
        self.stalled
            .iter()
            .filter_map(|id| self.connections.get(*id)?.stall.as_ref()?.deadline)
    }

    /// Ends the stall of connection `id`: its waiting message is delivered (or, if
    /// `give_up`, dropped and reported), then the messages after it and its frames go
    /// on, in order, until they are through or stall again.
    fn resume(&mut self, id: ConnectionId, give_up: bool, now: Instant) {
        self.stalled.retain(|s| *s != id);
        let Some(stall) = self.connections.get_mut(id).and_then(|c| c.stall.take()) else {
            return;
        };
        self.connections.resumed(id, now);
        tracing::trace!(connection = id.0, give_up, "stall over");
        let Stall {
            address,
            message,
            origin,
            rest,
            ..
        } = stall;
        let mut reports = VecDeque::new();
        let result = if give_up {
            let size = message_cost(&message);
            let unlimited = Budget {
                in_use: 0,
                limit: usize::MAX,
            };
            let error = if self.mailboxes.has_room(&address, size, unlimited) {
                // The mailbox has room: it was the node's budget that had none. The
                // mailbox is not to blame, so it is not marked overflowing.
                self.stats.memory_refusals += 1;
                self.budget().refusal(BudgetShare::Node, size)
            } else {
                self.mailboxes.overflow(&address);
                NodeError::MailboxFull {
                    address: address.clone(),
                    limit: self.config.mailbox_capacity,
                }
            };
            // Its sender on another node is told.
            self.report_back(
                &error,
                &origin,
                Some(&address),
                message.return_route,
                now,
                &mut reports,
            );
            Err(error)
        } else {
            // The mailbox had room when this was called: the message cannot wait again.
            let size = message_cost(&message);
            let budget = self.budget();
            self.mailboxes
                .admit(&address, false, size, budget)
                .map(|admission| {
                    if admission == Admission::Taken {
                        tracing::trace!(%address, "deliver");
                        self.outputs.push_back(Output::Deliver {
                            address,
                            message,
                            origin,
                        });
                    }
                })
        };
        if let Err(error) = result {
            self.report(None, error, now);
        }
        if let Err(error) = self.route_all(reports, Source::Node, now) {
            tracing::debug!(%error, "a report of a message given up could not be sent");
        }
        if let Err(error) = self.route_all(rest, Source::Connection(id), now) {
            self.report(None, error, now);
        }
        self.route_frames(id, now);
        // The frames just routed left the decoder: its charge goes down with them.
        self.connections.recharge(id);
        self.sync_reading(id);
        // A peer that stopped sending waited only for this.
        if self.connections.is_drained(id) {
            self.drop_connection(id, Some("closed by the peer".into()), true, now);
        }
    }
}

/// Congestion: whether a sender that can wait should, before its first hop.
impl NodeCore {
    /// The first hop of `route` if it is past half its limit: a mailbox with half its
    /// capacity unread, or a connection with half its backlog unsent (for a channel's
    /// encryptor, the first hop towards its peer). Senders that can wait (application
    /// contexts) wait for the [`Output::Decongested`] naming it rather than run into
    /// the hard limit; workers never wait, so pipelines cannot deadlock.
    pub fn congestion(&self, route: &Route) -> Option<Hop> {
        // Borrowed, not cloned: this runs before every application send.
        let mut next = route.next();
        // Channels inside channels: follow a few levels, no more.
        for _ in 0..4 {
            let address = next.take()?;
            if self.transports.contains_key(&address.transport()) {
                let id = self.connections.outgoing(address)?;
                return self.connection_congestion(id);
            }
            match self.targets.get(address) {
                Some(Target::Mailbox(_)) => {
                    return self
                        .mailboxes
                        .is_congested(address)
                        .then(|| Hop::Mailbox(address.clone()));
                }
                Some(Target::Connection(id)) => return self.connection_congestion(*id),
                Some(Target::Encryptor(id)) => {
                    next = self.channels.get(id).and_then(|end| end.remote.next());
                }
                _ => return None,
            }
        }
        None
    }

    /// Whether the first hop of `route` is congested: see [`congestion`](Self::congestion).
    pub fn is_congested(&self, route: &Route) -> bool {
        self.congestion(route).is_some()
    }

    fn connection_congestion(&self, id: ConnectionId) -> Option<Hop> {
        self.connections
            .get(id)
            .is_some_and(|c| c.is_congested())
            .then_some(Hop::Connection(id))
    }
}
