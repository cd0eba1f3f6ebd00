//! The node core's transports and connection inputs: transports added, a stream
//! accepted, connected, failed, closed, half-closed, written to or read from, a
//! message transport's inbox opened and its units received, and forgetting a
//! connection.

use std::collections::VecDeque;
use std::time::Instant;

use crate::framing::{check_unit, FRAME_HEADER_LEN, PREAMBLE};
use crate::routing::{Address, TransportType};

use super::routing::Source;
use super::{ConnectionId, Hop, NodeCore, NodeError, NodeEvent, Output, Target};

/// How a transport carries frames. Both kinds carry the same frames (a length prefix
/// and one transport message); they differ in what carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// A connection is a byte stream to one peer (TCP, a Unix socket, TLS, a
    /// WebSocket): it starts with the preamble each way, then carries frames back to
    /// back, with keepalives and the deadlines of [`NodeConfig`](super::NodeConfig).
    /// Replies come back over the same connection: the receiving node puts the
    /// connection's alias on the return route.
    Stream,
    /// Each unit the transport carries (a broker entry, a datagram) is exactly one
    /// frame, and says which address of the transport it came from. A node reads its
    /// own inbox ([`NodeCore::open_inbox`]) and sends each frame as one unit to the
    /// peer's address; the receiving node puts the sender's address on the return
    /// route, so replies go to the sender's inbox. No preamble, no keepalives.
    Message,
}

impl NodeCore {
    /// Adds a transport of type `transport` that carries frames as `kind` says: from
    /// now on the node routes messages whose next hop is an address of that type over
    /// it ([`Output::Connect`] names such an address). TCP is there from the start, as
    /// a stream transport.
    ///
    /// Who may send messages on over it is its forwarding rule
    /// ([`set_forwarding`](Self::set_forwarding)): for a stream transport anyone, as
    /// for TCP (a node that only listens forwards, step 08); for a message transport
    /// only senders on this node and secure channels ([`Access::secure_channels`](super::Access::secure_channels)),
    /// because a unit lands in storage that others share (a broker's stream, named by
    /// whoever wrote the route): a node forwards plain messages from its connections
    /// into a broker only once told to.
    ///
    /// # Errors
    ///
    /// [`NodeError::TransportNotAvailable`] for [`TransportType::LOCAL`] and the
    /// report marker's type ([`crate::report::REPORT_TRANSPORT`]): they are not
    /// transports; [`NodeError::TransportExists`] if the node carries the type already.
    pub fn add_transport(
        &mut self,
        transport: TransportType,
        kind: TransportKind,
    ) -> Result<(), NodeError> {
        if transport == TransportType::LOCAL || transport == crate::report::REPORT_TRANSPORT {
            return Err(NodeError::TransportNotAvailable {
                transport,
                needed: "pluggable",
            });
        }
        if self.transports.contains_key(&transport) {
            return Err(NodeError::TransportExists(transport));
        }
        self.transports.insert(transport, kind);
        if kind == TransportKind::Message {
            self.forwarding.insert(
                transport,
                std::sync::Arc::new(super::Access::secure_channels()),
            );
        }
        Ok(())
    }

    /// Sets who may send messages on over transport `transport`: a message whose next
    /// hop is an address of that transport, from an origin `access` does not admit, is
    /// refused like a message to a mailbox whose rule refuses it (counted, logged at a
    /// bounded rate, its sender told or an error report sent back). Channel records
    /// sent by this node's own channel ends are this node's and always go.
    ///
    /// # Errors
    ///
    /// [`NodeError::TransportNotAvailable`] if the node does not carry `transport`.
    pub fn set_forwarding(
        &mut self,
        transport: TransportType,
        access: super::Access,
    ) -> Result<(), NodeError> {
        if !self.transports.contains_key(&transport) {
            return Err(NodeError::TransportNotAvailable {
                transport,
                needed: "known",
            });
        }
        self.forwarding
            .insert(transport, std::sync::Arc::new(access));
        Ok(())
    }

    /// The kind of transport `transport` is, if the node carries it.
    pub fn transport_kind(&self, transport: TransportType) -> Option<TransportKind> {
        self.transports.get(&transport).copied()
    }

    /// A peer connected to one of this node's TCP listeners: see
    /// [`handle_incoming_stream`](Self::handle_incoming_stream).
    pub fn handle_incoming_connection(&mut self, peer: String, now: Instant) -> ConnectionId {
        self.handle_incoming_stream(TransportType::TCP, peer, now)
    }

    /// A peer connected to one of this node's listeners of stream transport
    /// `transport`; `peer` names it in errors and logs (for TCP, `host:port`: the host
    /// is the source that the limit per source counts). Returns the connection's id;
    /// the preamble to send is in the outputs. If the node has no room, or does not
    /// carry `transport` as a stream transport, the connection is closed at once (an
    /// [`Output::Close`] follows).
    pub fn handle_incoming_stream(
        &mut self,
        transport: TransportType,
        peer: String,
        now: Instant,
    ) -> ConnectionId {
        let id = self.connections.next_id();
        // A peer of another transport than TCP is named with its type, so that errors
        // and reports about it read as an address of that transport.
        let peer = if transport == TransportType::TCP {
            peer
        } else {
            format!("{transport}#{peer}")
        };
        if self.transport_kind(transport) != Some(super::TransportKind::Stream) {
            tracing::debug!(%peer, %transport, "connection refused: not a stream transport of this node");
            self.stats.connections_refused += 1;
            self.outputs.push_back(Output::Close { connection: id });
            return id;
        }
        if self.connections.source_full(&peer) {
            tracing::debug!(%peer, "connection refused: too many from its source address");
            self.stats.connections_refused += 1;
            self.outputs.push_back(Output::Close { connection: id });
            return id;
        }
        if self.connections.incoming_full() {
            match self.connections.oldest_unproven_incoming() {
                Some(oldest) => {
                    tracing::debug!(%peer, evicted = oldest.0, "incoming connections full: the oldest unproven one goes");
                    self.stats.connections_evicted += 1;
                    self.drop_connection(
                        oldest,
                        Some("closed to make room: incoming connections full".into()),
                        true,
                        now,
                    );
                }
                None => {
                    tracing::debug!(%peer, "connection refused: incoming connections full");
                    self.stats.connections_refused += 1;
                    self.outputs.push_back(Output::Close { connection: id });
                    return id;
                }
            }
        }
        let Ok(alias) = self.generate_address() else {
            self.outputs.push_back(Output::Close { connection: id });
            return id;
        };
        tracing::debug!(%peer, connection = id.0, "incoming connection");
        self.targets.insert(alias.clone(), Target::Connection(id));
        let preamble = self.connections.accept(id, peer, alias, &PREAMBLE, now);
        self.outputs.push_back(Output::Transmit {
            connection: id,
            bytes: preamble,
        });
        id
    }

    /// Opens the inbox of message transport `transport`: where units sent to this
    /// node's address of that transport arrive (hand each to
    /// [`handle_unit`](Self::handle_unit) under the id returned). `description` names
    /// it in logs. An inbox has no deadlines and is never evicted; reading it pauses
    /// and resumes like a stream's ([`Output::PauseReading`]). Close it with
    /// [`handle_connection_closed`](Self::handle_connection_closed).
    ///
    /// # Errors
    ///
    /// [`NodeError::TransportNotAvailable`] if the node does not carry `transport` as a
    /// message transport.
    pub fn open_inbox(
        &mut self,
        transport: TransportType,
        description: String,
        now: Instant,
    ) -> Result<ConnectionId, NodeError> {
        if self.transport_kind(transport) != Some(TransportKind::Message) {
            return Err(NodeError::TransportNotAvailable {
                transport,
                needed: "message",
            });
        }
        // Its alias is never a target: an inbox carries nothing out (replies go to the
        // sender's address), so nothing may be routed to it, and its alias never
        // appears on a return route.
        let alias = self.generate_address()?;
        let id = self.connections.next_id();
        tracing::debug!(%description, connection = id.0, "inbox opened");
        self.connections.open_inbox(id, description, alias, now);
        Ok(id)
    }

    /// A unit arrived in `inbox` (see [`open_inbox`](Self::open_inbox)) from `from`,
    /// the sender's address on the message transport, as the unit says. The unit must
    /// be exactly one frame; its message is routed with `from` put on the front of its
    /// return route, so replies go to the sender's inbox. A unit that is not one frame
    /// of a transport message, claims a sender of a transport that is not a message
    /// transport of this node, or arrives while the inbox was told to pause, is dropped
    /// and counted ([`NodeStats::units_refused`](super::NodeStats::units_refused)); the
    /// inbox stays open.
    ///
    /// `from` is what the unit claims, not a proven identity: anyone who can write to
    /// the inbox can name any sender. Secure channels authenticate the peer; a reply
    /// sent to a false `from` goes to that address's inbox, where it is a record
    /// nobody can open.
    pub fn handle_unit(&mut self, inbox: ConnectionId, from: Address, unit: Vec<u8>, now: Instant) {
        let Some(conn) = self.connections.get(inbox) else {
            return;
        };
        let refused = if !conn.is_inbox() {
            Some("not an inbox".to_owned())
        } else if conn.stall.is_some() {
            Some("the inbox was told to pause".to_owned())
        } else if self.transport_kind(from.transport()) != Some(TransportKind::Message)
            || from.value_str().is_none()
        {
            Some(format!(
                "its sender {from} is not an address of a message transport"
            ))
        } else {
            check_unit(&unit, self.config.max_frame_len)
                .err()
                .map(|error| error.to_string())
        };
        if let Some(reason) = refused {
            tracing::debug!(connection = inbox.0, %reason, "unit dropped");
            self.stats.units_refused += 1;
            return;
        }
        let mut frame = unit;
        frame.drain(..FRAME_HEADER_LEN);
        if frame.is_empty() {
            return; // an empty frame: nothing to route
        }
        if let Err(error) = self.route_frame(inbox, &mut frame, from, now) {
            tracing::debug!(connection = inbox.0, %error, "unit dropped: not a message");
            self.stats.units_refused += 1;
        }
        self.connections.received(inbox, now, true);
        self.sync_reading(inbox);
    }

    /// An outgoing connection opened: the preamble and waiting frames are sent.
    pub fn handle_connected(&mut self, connection: ConnectionId, now: Instant) {
        let Some((transmits, relieved)) = self.connections.connected(connection, &PREAMBLE, now)
        else {
            return;
        };
        tracing::debug!(connection = connection.0, "connected");
        for bytes in transmits {
            self.outputs
                .push_back(Output::Transmit { connection, bytes });
        }
        if relieved {
            self.outputs
                .push_back(Output::Decongested(Hop::Connection(connection)));
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

    /// The peer of the connection stopped sending (the stream ended) but may still
    /// read: a half-close. What is queued for it, replies included, is still written;
    /// then the core closes the connection ([`Output::Close`]), or after
    /// [`NodeConfig::frame_timeout`](super::NodeConfig::frame_timeout) if it cannot
    /// be written. Stop reading it.
    pub fn handle_read_closed(&mut self, connection: ConnectionId, now: Instant) {
        if self.connections.read_closed(connection, now) {
            self.drop_connection(connection, Some("closed by the peer".into()), true, now);
        } else if self.connections.get(connection).is_some() {
            tracing::debug!(
                connection = connection.0,
                "the peer stopped sending: writing what is queued for it, then closing"
            );
        }
    }

    /// `n` bytes of earlier transmits on the connection were written.
    pub fn handle_written(&mut self, connection: ConnectionId, n: usize, now: Instant) {
        if self.connections.written(connection, n) {
            self.outputs
                .push_back(Output::Decongested(Hop::Connection(connection)));
        }
        if self.connections.is_drained(connection) {
            self.drop_connection(connection, Some("closed by the peer".into()), true, now);
            return;
        }
        // Memory came back: a message waiting for room in the budget may go on.
        if !self.stalled.is_empty() {
            self.retry_stalled(now);
        }
    }

    /// Gives back the buffer of a [`Transmit`](Output::Transmit) once its bytes are
    /// written (or no longer wanted), for a later frame to be built in: small frames
    /// then cost no allocation each. Optional: a caller that drops its buffers loses
    /// only that saving. The core keeps at most [`SPARE_TRANSMITS`](super::SPARE_TRANSMITS)
    /// buffers of at most [`SPARE_TRANSMIT_MAX`](super::SPARE_TRANSMIT_MAX) bytes of
    /// room and drops the rest; what a kept buffer held is cleared before reuse.
    pub fn recycle_transmit(&mut self, bytes: Vec<u8>) {
        self.spare_transmits.keep(bytes);
    }

    /// Bytes arrived on a connection. Whole frames are decoded and routed; a peer that
    /// breaks the protocol (wrong preamble, oversized frame, undecodable message) has
    /// its connection closed, and frames it sent before are still routed (unless they
    /// wait behind a full mailbox: they are then lost with the connection).
    pub fn handle_received(&mut self, connection: ConnectionId, bytes: &[u8], now: Instant) {
        let Some(conn) = self.connections.get_mut(connection) else {
            return;
        };
        // Bytes after the end of the stream (a transport that reads on after it
        // reported a half-close) are not the peer's: they are dropped.
        if conn.is_read_closed() {
            return;
        }
        let framing = conn.decoder.handle_bytes(bytes);
        // Reading should have paused while stalled (`Output::PauseReading`); a
        // transport that goes on anyway may not fill memory with frames nobody routes.
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
        let frames = self.route_frames(connection, now);
        if let Err(error) = framing {
            tracing::debug!(connection = connection.0, %error, "stream refused; closing");
            self.stats.connections_refused += 1;
            self.drop_connection(connection, Some(error.to_string()), true, now);
            return;
        }
        self.connections.received(connection, now, frames > 0);
        self.shed_if_over_budget(connection, now);
        self.sync_reading(connection);
    }

    /// Forgets a connection: its alias goes, what waited on it fails, and the caller is
    /// told to close it if `close` (the core's own decision).
    pub(super) fn drop_connection(
        &mut self,
        id: ConnectionId,
        reason: Option<String>,
        close: bool,
        now: Instant,
    ) {
        let Some(dropped) = self.connections.remove(id) else {
            return;
        };
        self.targets.remove(&dropped.alias);
        self.relays.disconnected(id);
        if close {
            self.outputs.push_back(Output::Close { connection: id });
        }
        if dropped.was_congested {
            self.outputs
                .push_back(Output::Decongested(Hop::Connection(id)));
        }
        let why = reason.clone().unwrap_or_else(|| "closed".into());
        let closed = || NodeError::ConnectionClosed {
            peer: dropped.peer.clone(),
            reason: why.clone(),
        };
        // Messages handed to the transport and never written are lost with it.
        for sender in dropped.unwritten {
            self.report_tagged(sender, closed(), now);
        }
        // What waited for room on its behalf is lost with it (its frames were read).
        self.stalled.retain(|s| *s != id);
        if let Some(stall) = dropped.stall {
            let lost = 1 + stall.rest.len() as u64;
            self.stats.delivery_failures += lost;
            tracing::debug!(
                connection = id.0,
                lost,
                "stalled messages dropped with the connection"
            );
        }
        let mut reports = VecDeque::new();
        for (sender, back) in dropped.unsent.unwrap_or_default() {
            let error = if close {
                closed()
            } else {
                NodeError::ConnectFailed {
                    peer: dropped.peer.clone(),
                    reason: why.clone(),
                }
            };
            // A message from another node that waited for the connection: its sender
            // is told along its return route.
            if let Some(back) = back {
                self.report_along(&error, None, back, now, &mut reports);
            }
            self.report_tagged(sender, error, now);
        }
        if !reports.is_empty() {
            if let Err(error) = self.route_all(reports, Source::Node, now) {
                tracing::debug!(%error, "a report of a lost message could not be sent");
            }
        }
        tracing::debug!(peer = %dropped.peer, connection = id.0, reason = %why, "connection dropped");
        self.outputs
            .push_back(Output::Event(NodeEvent::ConnectionClosed {
                connection: id,
                peer: dropped.peer,
                error: reason,
            }));
    }
}
