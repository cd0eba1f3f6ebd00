//! Error reports from the node core: what it sends back along the return route of a
//! message from another node that it cannot deliver or forward, and what it does with
//! a report that reaches one of its secure channel ends (docs/PROTOCOL.md §3, "Error
//! reports"), and the failures it tells senders on this node of.

use std::time::{Duration, Instant};

use crate::report::{route_is_report, Report, ReportCode};
use crate::routing::{Address, Route};

use super::connection::Tagged;
use super::routing::Work;
use super::{ChannelId, NodeCore, NodeError, NodeEvent, Origin, Output, Target};

/// Counts the reports sent in the current second, node-wide.
#[derive(Debug)]
pub(super) struct ReportLimiter {
    window: Option<(Instant, u32)>,
}

impl ReportLimiter {
    pub(super) fn new() -> Self {
        Self { window: None }
    }

    /// Takes one of this second's `per_second` reports, if one is left.
    fn take(&mut self, per_second: u32, now: Instant) -> bool {
        let (start, count) = self.window.get_or_insert((now, 0));
        if now.saturating_duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        if *count >= per_second {
            return false;
        }
        *count += 1;
        true
    }
}

/// The report for `error`, met routing a message whose next hop was `next` (if the
/// error does not name the address itself). `None` for an error no report is made of.
fn report_of(error: &NodeError, next: Option<&Address>) -> Option<Report> {
    // A peer is named by `host:port` for TCP and by its address's text otherwise.
    let tcp = |peer: &str| {
        peer.parse::<Address>()
            .ok()
            .filter(|_| peer.contains('#'))
            .unwrap_or_else(|| Address::tcp(peer))
    };
    let (code, address, detail) = match error {
        NodeError::EmptyRoute => return None,
        NodeError::UnknownAddress(a) => (
            ReportCode::UnknownAddress,
            a.clone(),
            "no such address on this node".to_owned(),
        ),
        NodeError::RelayNotConnected(a) => (
            ReportCode::Unreachable,
            a.clone(),
            "the node registered under this relay name is not connected".to_owned(),
        ),
        NodeError::UnsupportedTransport(a) => (
            ReportCode::Unreachable,
            a.clone(),
            "no transport for this address".to_owned(),
        ),
        // The rule itself is this node's business: it is not told.
        NodeError::Refused { address, .. } => (
            ReportCode::Refused,
            address.clone(),
            "refused by an access rule".to_owned(),
        ),
        NodeError::MailboxFull { address, .. } => (
            ReportCode::Overloaded,
            address.clone(),
            "mailbox full".to_owned(),
        ),
        NodeError::ConnectionBacklogFull { peer, .. } => (
            ReportCode::Overloaded,
            tcp(peer),
            "connection backlog full".to_owned(),
        ),
        NodeError::ConnectFailed { peer, reason } => {
            (ReportCode::Unreachable, tcp(peer), reason.clone())
        }
        NodeError::ConnectionClosed { peer, reason } => (
            ReportCode::Unreachable,
            tcp(peer),
            format!("connection closed: {reason}"),
        ),
        NodeError::Channel { address, error } => {
            (ReportCode::Failed, address.clone(), error.to_string())
        }
        NodeError::MemoryBudget { .. } => (
            ReportCode::Overloaded,
            next?.clone(),
            "memory budget".to_owned(),
        ),
        NodeError::TooManyChannels { limit } => (
            ReportCode::Overloaded,
            next?.clone(),
            format!("too many secure channels (limit {limit})"),
        ),
        NodeError::RoutingLoop { .. } => {
            (ReportCode::Failed, next?.clone(), "routing loop".to_owned())
        }
        error => (ReportCode::Failed, next?.clone(), error.to_string()),
    };
    Some(Report::new(code, address, detail))
}

impl NodeCore {
    /// A message from `origin` with `return_route` could not be delivered or forwarded
    /// (`error`, next hop `next`): unless it came from this node, is itself a report,
    /// or its sender gave no return route, a report goes back along its return route,
    /// within the node's rate.
    pub(super) fn report_back(
        &mut self,
        error: &NodeError,
        origin: &Origin,
        next: Option<&Address>,
        return_route: Route,
        now: Instant,
        work: &mut Work,
    ) {
        if *origin == Origin::Local {
            return;
        }
        self.report_along(error, next, return_route, now, work);
    }

    /// As [`report_back`](Self::report_back), for a message known to have come from
    /// another node.
    pub(super) fn report_along(
        &mut self,
        error: &NodeError,
        next: Option<&Address>,
        return_route: Route,
        now: Instant,
        work: &mut Work,
    ) {
        // The node put the way back to the sender (its alias for the connection, or the
        // channel's encryptor) in front: a sender that gave no return route of its own
        // has nowhere to be told.
        if return_route.len() < 2 || route_is_report(&return_route) {
            return;
        }
        let Some(report) = report_of(error, next) else {
            return;
        };
        if !self.reports.take(self.config.max_reports_per_second, now) {
            self.stats.reports_suppressed += 1;
            return;
        }
        self.stats.reports_sent += 1;
        tracing::trace!(%report, "error report sent back");
        work.push_back((report.into_message(return_route), Origin::Local));
    }

    /// A report reached channel end `id` (its payload is `payload`): a node on the way
    /// to the peer's end could not deliver or forward one of its records.
    pub(super) fn receive_report(
        &mut self,
        id: ChannelId,
        payload: &[u8],
        now: Instant,
        work: &mut Work,
    ) {
        self.stats.reports_received += 1;
        let report = match Report::decode(payload) {
            Ok(report) => report,
            Err(error) => {
                tracing::trace!(channel = id.0, %error, "undecodable report dropped");
                return;
            }
        };
        let Some(end) = self.channels.get_mut(&id) else {
            return;
        };
        tracing::debug!(channel = id.0, %report, "a node on the route reported a failure");
        if let Err(error) = end.channel.handle_report(report, now) {
            self.fail_if_ended(id, &error);
        }
        self.drain_channel(id, now, work);
    }
}

// ---- failures told to senders on this node ----------------------------------------------

impl NodeCore {
    /// Counts and (at a bounded rate) logs a message from `origin` that `rule` of
    /// `address` refused, and returns the error for its sender.
    pub(super) fn refuse(
        &mut self,
        address: Address,
        origin: Origin,
        rule: String,
        now: Instant,
    ) -> NodeError {
        self.stats.messages_refused += 1;
        if origin == Origin::Local {
            // The sender is told; a local sender is the application's own code.
            tracing::debug!(%address, %rule, "message refused by an access rule");
        } else if let Some(unlogged) = self.refusals.should_log(&origin, now) {
            tracing::warn!(
                %address,
                %origin,
                %rule,
                unlogged_refusals = unlogged,
                "message refused by an access rule"
            );
        }
        NodeError::Refused {
            address,
            origin,
            rule: rule.into(),
        }
    }

    /// Reports a failure to deliver: to a channel in its handshake, which then fails at
    /// once; otherwise as an event.
    pub(super) fn report(&mut self, sender: Option<Address>, error: NodeError, now: Instant) {
        let send = self.current_send;
        self.report_tagged(sender.map(|s| (s, send)), error, now);
    }

    /// As [`report`](Self::report), for a sender with the id of its send.
    pub(super) fn report_tagged(&mut self, sender: Option<Tagged>, error: NodeError, now: Instant) {
        let (sender, send) = match sender {
            Some((sender, send)) => (Some(sender), send),
            None => (None, 0),
        };
        if matches!(error, NodeError::Refused { .. }) {
            // Counted and logged where it was refused, as a refusal only (a remote
            // sender was sent a report there).
            if let Some(sender) = sender {
                self.outputs
                    .push_back(Output::Event(NodeEvent::DeliveryFailed {
                        sender: Some(sender),
                        error,
                        send,
                    }));
            }
            return;
        }
        self.stats.delivery_failures += 1;
        if let Some(Target::Encryptor(id)) = sender.as_ref().and_then(|s| self.targets.get(s)) {
            let id = *id;
            if let Some(end) = self.channels.get(&id) {
                if !end.channel.is_established() {
                    let address = end.encryptor.clone();
                    tracing::debug!(%address, %error, "channel handshake could not be sent");
                    self.channel_failed(id, error);
                    self.remove_channel(id, now);
                    return;
                }
            }
        }
        tracing::debug!(?sender, %error, "delivery failed");
        self.outputs
            .push_back(Output::Event(NodeEvent::DeliveryFailed {
                sender,
                error,
                send,
            }));
    }
}
