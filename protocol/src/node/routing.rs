//! Routing inside the node core: where each message goes next, and the frames that
//! carry messages over connections.

use std::collections::VecDeque;
use std::time::Instant;

use crate::channel::ChannelEnd;
use crate::framing::{frame_header, FRAME_HEADER_LEN};
use crate::message::{MessageView, TransportMessage};
use crate::routing::{Address, Route};

use super::connection::Sent;
use super::mailbox::Admission;
use super::{ChannelId, ConnectionId, NodeCore, NodeError, Origin, Output, Target};

/// Messages still to route, each with where it came from.
pub(super) type Work = VecDeque<(TransportMessage, Origin)>;

/// The most messages a kept work queue has room for (see `NodeCore::give_back_work`).
const SPARE_WORK: usize = 8;

/// Where a message being routed came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    /// A local sender (a worker, a context, or a channel end for its own records):
    /// failures found later are reported to it.
    Local(&'a Address),
    /// Read from a connection (directly, or decrypted from a record that came over
    /// it): a message that finds its mailbox full waits, and the connection with it.
    Connection(ConnectionId),
    /// The node itself, for an error report: a failure is counted, and told to
    /// nobody.
    Node,
}

impl<'a> Source<'a> {
    /// The local sender to report failures to, if any.
    #[inline]
    pub(super) fn sender(self) -> Option<&'a Address> {
        match self {
            Source::Local(sender) => Some(sender),
            Source::Connection(_) | Source::Node => None,
        }
    }
}

/// What routing one message did.
pub(super) enum Routed {
    /// It was delivered, sent, or turned into more work.
    Done,
    /// It came from a connection and its mailbox is full: it waits. (Boxed: this is
    /// rare, and keeps the common result small.)
    Blocked(Box<(Address, TransportMessage, Origin)>),
}

/// The connection a frame goes out on: by TCP peer (connecting if need be), or an open
/// one by its id.
enum Via {
    Peer(Address, super::TransportKind),
    Connection(ConnectionId),
}

/// [`NodeCore::transport_of`], on the transports table alone (for callers that hold
/// another part of the core mutably).
fn transport_of(
    transports: &std::collections::BTreeMap<crate::routing::TransportType, super::TransportKind>,
    address: &Address,
) -> Option<Result<super::TransportKind, NodeError>> {
    let kind = *transports.get(&address.transport())?;
    Some(match address.value_str() {
        Some(_) => Ok(kind),
        None => Err(NodeError::UnsupportedTransport(address.clone())),
    })
}

impl NodeCore {
    /// An empty work queue: the spare one if it is free (its storage kept from an
    /// earlier message), else a new one.
    pub(super) fn take_work(&mut self) -> Work {
        std::mem::take(&mut self.spare_work)
    }

    /// Keeps an emptied work queue's storage for the next message, unless one is kept
    /// already or it grew for a burst (past [`SPARE_WORK`] messages).
    fn give_back_work(&mut self, mut work: Work) {
        work.clear();
        if self.spare_work.capacity() == 0 && work.capacity() <= SPARE_WORK {
            self.spare_work = work;
        }
    }

    /// Routes `work` from `source` and everything routing it produces, until each is
    /// delivered, sent or refused, or one from a connection finds its mailbox full (it
    /// and the rest then wait, and the connection is not read). Returns the first
    /// error; the others are reported.
    pub(super) fn route_all(
        &mut self,
        mut work: Work,
        source: Source<'_>,
        now: Instant,
    ) -> Result<(), NodeError> {
        let mut first_error = None;
        let mut hops = 0usize;
        while let Some((message, origin)) = work.pop_front() {
            hops += 1;
            let result = if hops > self.config.max_local_hops {
                Err(NodeError::RoutingLoop {
                    limit: self.config.max_local_hops,
                })
            } else {
                self.stats.messages_routed += 1;
                self.route_one(message, origin, source, now, &mut work)
            };
            match result {
                Ok(Routed::Done) => {}
                Ok(Routed::Blocked(blocked)) => {
                    if let Source::Connection(id) = source {
                        let (address, message, origin) = *blocked;
                        // The rest of the work waits with the stall.
                        self.begin_stall(id, address, message, origin, work, now);
                        return first_error.map_or(Ok(()), Err);
                    }
                    break;
                }
                Err(error) => {
                    if first_error.is_none() {
                        first_error = Some(error);
                    } else {
                        self.report(source.sender().cloned(), error, now);
                    }
                }
            }
        }
        self.give_back_work(work);
        first_error.map_or(Ok(()), Err)
    }

    /// Routes the whole frames received on `connection`, until none is left or one
    /// of them finds no room (the connection then stalls until there is). Returns how
    /// many non-empty frames it took.
    pub(super) fn route_frames(&mut self, connection: ConnectionId, now: Instant) -> usize {
        let mut taken = 0;
        loop {
            let Some(conn) = self.connections.get_mut(connection) else {
                return taken;
            };
            if conn.stall.is_some() {
                return taken;
            }
            let Some(mut frame) = conn.decoder.poll_frame() else {
                return taken;
            };
            if frame.is_empty() {
                continue; // a keepalive
            }
            taken += 1;
            let alias = conn.alias().clone();
            if let Err(error) = self.route_frame(connection, &mut frame, alias, now) {
                tracing::debug!(connection = connection.0, %error, "undecodable message; closing");
                self.stats.connections_refused += 1;
                self.drop_connection(connection, Some(error.to_string()), true, now);
                return taken;
            }
            // Whatever was routed was copied out of the frame: its buffer may take the
            // next one.
            if let Some(conn) = self.connections.get_mut(connection) {
                conn.decoder.recycle(frame);
            }
        }
    }

    /// Routes one message received on `connection` (`frame`, without its length
    /// prefix), with `back` put on the front of its return route: the connection's
    /// alias, or for a unit from a message transport's inbox, the sender's address.
    ///
    /// # Errors
    ///
    /// The frame is not a transport message; nothing was routed.
    pub(super) fn route_frame(
        &mut self,
        connection: ConnectionId,
        frame: &mut [u8],
        back: Address,
        now: Instant,
    ) -> Result<(), crate::message::MessageError> {
        let source = Source::Connection(connection);
        let origin = Origin::Transport { connection };
        let mut view = MessageView::decode(frame)?;
        tracing::trace!(connection = connection.0, onward = %view.onward_route, "frame received");
        view.return_route.prepend(back);
        // A record for a decryptor needs no rule: the channel authenticates it.
        let result = match self.decryptor_at(&view.onward_route) {
            // A record for a channel end here is opened where it lies in the frame,
            // without first copying it out into a message.
            Some(id) => {
                self.stats.messages_routed += 1;
                let mut work = self.take_work();
                let record = frame.get_mut(view.payload).unwrap_or_default();
                if self.receive_record(id, view.return_route, record, now, &mut work) {
                    self.connections.proven(connection);
                }
                self.route_all(work, source, now)
            }
            None => match self.forward_frame(&view, frame, &origin, now) {
                Some(Ok(())) => Ok(()),
                Some(Err(error)) => {
                    // As the general path would: a report goes back along the
                    // message's return route, naming the hop after the one that
                    // failed (the route as it was to be sent on), and the error is
                    // counted.
                    let mut work = VecDeque::new();
                    let mut onward = view.onward_route.clone();
                    let _ = onward.step();
                    let next = onward.next().cloned();
                    self.report_back(
                        &error,
                        &origin,
                        next.as_ref(),
                        view.return_route,
                        now,
                        &mut work,
                    );
                    if let Err(report_error) = self.route_all(work, source, now) {
                        self.report(None, report_error, now);
                    }
                    Err(error)
                }
                None => self.route_all(
                    VecDeque::from([(view.into_message(frame), origin)]),
                    source,
                    now,
                ),
            },
        };
        if let Err(error) = result {
            self.report(None, error, now);
        }
        Ok(())
    }

    /// Passes on a message that arrived in `frame` when its next hop is another node (a
    /// transport address, or the alias of an open connection), without decoding its
    /// payload into a message and encoding it again: the new head is written into the
    /// outgoing frame and the payload copied once, straight from the incoming one.
    /// The result is the frame the general path would send, byte for byte. `None` when
    /// the next hop is anything else, or a rule or limit stands in the way: the
    /// general path then routes, refuses or reports the message as usual.
    fn forward_frame(
        &mut self,
        view: &MessageView,
        frame: &[u8],
        origin: &Origin,
        now: Instant,
    ) -> Option<Result<(), NodeError>> {
        let next = view.onward_route.next()?;
        if self.config.max_local_hops == 0 {
            return None; // the general path refuses every hop
        }
        let via = match self.transport_of(next) {
            Some(Ok(kind)) => {
                if let Some(access) = self.forwarding.get(&next.transport()) {
                    if !access.admits(origin) {
                        return None;
                    }
                }
                Via::Peer(next.clone(), kind)
            }
            Some(Err(_)) => return None,
            None => match self.targets.get(next) {
                Some(Target::Connection(id)) => Via::Connection(*id),
                _ => return None,
            },
        };
        let payload = frame.get(view.payload.clone())?;
        let mut onward = view.onward_route.clone();
        let _ = onward.step();
        let back = &view.return_route;
        let mut out = self.spare_transmits.take(
            FRAME_HEADER_LEN
                + crate::message::envelope_head_len(&onward, back, payload.len())
                + payload.len(),
        );
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        TransportMessage::encode_head(&onward, back, payload.len(), &mut out).ok()?;
        out.extend_from_slice(payload);
        let out = self.finish_frame(out).ok()?;
        self.stats.messages_routed += 1;
        tracing::trace!(%next, "frame passed on");
        Some(match via {
            Via::Peer(peer, kind) => self.send_to_peer(peer, kind, out, None, Some(back), now),
            // As the general path: a connection alias keeps no way back.
            Via::Connection(id) => self.send_frame(id, out, None, None, now),
        })
    }

    /// The channel end whose decryptor is the first address of `route`, if any.
    fn decryptor_at(&self, route: &Route) -> Option<ChannelId> {
        match self.targets.get(route.next()?) {
            Some(Target::Decryptor(id)) => Some(*id),
            _ => None,
        }
    }

    /// Routes one message; if it came from another node and cannot go on, an error
    /// report goes back along its return route.
    fn route_one(
        &mut self,
        mut message: TransportMessage,
        origin: Origin,
        source: Source<'_>,
        now: Instant,
        work: &mut Work,
    ) -> Result<Routed, NodeError> {
        if origin == Origin::Local {
            return self.route_message(&mut message, origin, source, now, work);
        }
        let kept = origin.clone();
        let result = self.route_message(&mut message, origin, source, now, work);
        if let Err(error) = &result {
            let next = message.onward_route.next().cloned();
            let back = std::mem::take(&mut message.return_route);
            self.report_back(error, &kept, next.as_ref(), back, now, work);
        }
        result
    }

    /// Routes one message by its next hop. The message is taken out of `message` only
    /// when it is delivered or passed on: on an error it is still there, for a report.
    fn route_message(
        &mut self,
        message: &mut TransportMessage,
        origin: Origin,
        source: Source<'_>,
        now: Instant,
        work: &mut Work,
    ) -> Result<Routed, NodeError> {
        let Some(next) = message.onward_route.next().cloned() else {
            return Err(NodeError::EmptyRoute);
        };
        if let Origin::Channel { channel, .. } = origin {
            if let Some(rule) = self.channel_delivery_refusal(channel, &next) {
                return Err(self.refuse(next, origin, rule, now));
            }
        }
        let sender = source.sender();
        if let Some(kind) = self.transport_of(&next) {
            let kind = kind?;
            if let Some(access) = self.forwarding.get(&next.transport()) {
                if !access.admits(&origin) {
                    let rule = format!(
                        "transport {} forwards messages only from {access}",
                        next.transport()
                    );
                    return Err(self.refuse(next, origin, rule, now));
                }
            }
            let _ = message.onward_route.step();
            let frame = self.frame(message)?;
            // A message from another node keeps its way back while the connection
            // opens, to report its loss if it never does.
            let back = (origin != Origin::Local).then_some(&message.return_route);
            self.send_to_peer(next, kind, frame, sender, back, now)?;
            return Ok(Routed::Done);
        }
        if !next.is_local() {
            return Err(NodeError::UnsupportedTransport(next));
        }
        match self.targets.get(&next) {
            None => Err(self.unknown_address(next)),
            Some(Target::Mailbox(access)) => {
                if !access.admits(&origin) {
                    let rule = format!("{next} takes messages only from {access}");
                    return Err(self.refuse(next, origin, rule, now));
                }
                self.deliver(next, message, origin, source)
            }
            Some(Target::Connection(id)) => {
                let id = *id;
                let _ = message.onward_route.step();
                let frame = self.frame(message)?;
                self.send_frame(id, frame, sender, None, now)?;
                Ok(Routed::Done)
            }
            Some(Target::Encryptor(id)) => {
                let id = *id;
                if let Some(rule) = self.channel_ingress_refusal(id, &origin) {
                    return Err(self.refuse(next, origin, rule, now));
                }
                let _ = message.onward_route.step();
                self.note_sender(id, sender);
                let result = match self.send_record_over_connection(id, &next, message, sender, now)
                {
                    Some(result) => result,
                    None => self.encrypt(id, &next, message, now),
                };
                self.drain_channel(id, now, work);
                result.map(|()| Routed::Done)
            }
            Some(Target::Decryptor(id)) => {
                let id = *id;
                let back = std::mem::take(&mut message.return_route);
                let authentic = self.receive_record(id, back, &mut message.payload, now, work);
                if let (true, Source::Connection(connection)) = (authentic, source) {
                    self.connections.proven(connection);
                }
                Ok(Routed::Done)
            }
            Some(Target::Relay(access)) => {
                if !access.admits(&origin) {
                    let rule = format!("{next} takes registrations only from {access}");
                    return Err(self.refuse(next, origin, rule, now));
                }
                self.relay_request(&next, message, &origin, source, work)
            }
            Some(Target::Relayed) => self.relay_forward(next, message, sender, now),
            Some(Target::Listener) => {
                if let Some(rule) = self.listener_refusal(&next, &origin) {
                    return Err(self.refuse(next, origin, rule, now));
                }
                let _ = message.onward_route.step();
                self.accept_hello(&next, std::mem::take(message), &origin, now, work);
                Ok(Routed::Done)
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
        if !ChannelEnd::fits_in_one_record(message) {
            return None; // the general path reports it as the channel's error
        }
        let first = end.remote.next()?;
        let via = if let Some(kind) = transport_of(&self.transports, first) {
            match kind {
                Ok(kind) => Via::Peer(first.clone(), kind),
                Err(error) => return Some(Err(error)),
            }
        } else {
            match self.targets.get(first) {
                Some(Target::Connection(connection)) => Via::Connection(*connection),
                _ => return None,
            }
        };
        let spare_transmits = &mut self.spare_transmits;
        let result = (|| {
            let mut onward = end.remote.clone();
            let _ = onward.step();
            let back = Route::from(end.decryptor.clone());
            let record_len = ChannelEnd::record_len(message);
            let mut frame = spare_transmits.take(
                FRAME_HEADER_LEN
                    + crate::message::envelope_head_len(&onward, &back, record_len)
                    + record_len,
            );
            frame.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            TransportMessage::encode_head(&onward, &back, record_len, &mut frame)?;
            end.channel
                .handle_send_into(message, &mut frame, now)
                .map_err(|error| NodeError::Channel {
                    address: encryptor.clone(),
                    error,
                })?;
            Ok(frame)
        })();
        Some(result.and_then(|frame| {
            // The outer message is routed here, as the general path would count it.
            self.stats.messages_routed += 1;
            let frame = self.finish_frame(frame)?;
            match via {
                Via::Peer(peer, kind) => self.send_to_peer(peer, kind, frame, sender, None, now),
                Via::Connection(connection) => {
                    self.send_frame(connection, frame, sender, None, now)
                }
            }
        }))
    }

    /// Encrypts `message` through channel end `id` (the general path: the record is
    /// then routed as a message of its own).
    fn encrypt(
        &mut self,
        id: ChannelId,
        encryptor: &Address,
        message: &TransportMessage,
        now: Instant,
    ) -> Result<(), NodeError> {
        let end = self
            .channels
            .get_mut(&id)
            .ok_or_else(|| NodeError::UnknownAddress(encryptor.clone()))?;
        end.channel
            .handle_send(message, now)
            .map_err(|error| NodeError::Channel {
                address: encryptor.clone(),
                error,
            })
    }

    /// Delivers `message` (taken out of it unless refused) to the mailbox at
    /// `address`.
    fn deliver(
        &mut self,
        address: Address,
        message: &mut TransportMessage,
        origin: Origin,
        source: Source<'_>,
    ) -> Result<Routed, NodeError> {
        let may_wait = matches!(source, Source::Connection(_));
        let size = super::budget::message_cost(message);
        let budget = self.budget();
        let admission = self.mailboxes.admit(&address, may_wait, size, budget);
        if let Err(NodeError::MemoryBudget { .. }) = admission {
            self.stats.memory_refusals += 1;
        }
        let admission = admission?;
        let message = std::mem::take(message);
        match admission {
            Admission::Wait => Ok(Routed::Blocked(Box::new((address, message, origin)))),
            Admission::Taken => {
                tracing::trace!(%address, "deliver");
                self.outputs.push_back(Output::Deliver {
                    address,
                    message,
                    origin,
                });
                Ok(Routed::Done)
            }
        }
    }

    pub(super) fn frame(&mut self, message: &TransportMessage) -> Result<Vec<u8>, NodeError> {
        // The message is encoded in place after the room for its length prefix.
        let mut frame = self
            .spare_transmits
            .take(FRAME_HEADER_LEN + message.encoded_len());
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

    /// Sends a frame to TCP peer `peer` over this node's connection to it, dialling
    /// one if there is none. `back` is the return route of a message from another
    /// node (see [`ConnectionTable::send`](super::connection::ConnectionTable::send)).
    /// Whether `address` is of a transport this node carries: `None` if not (a local
    /// address, or an unknown transport), else its kind, or the error for an address
    /// whose value is not text (transport addresses are UTF-8: see
    /// [`Output::Connect`]).
    pub(super) fn transport_of(
        &self,
        address: &Address,
    ) -> Option<Result<super::TransportKind, NodeError>> {
        transport_of(&self.transports, address)
    }

    fn send_to_peer(
        &mut self,
        peer: Address,
        kind: super::TransportKind,
        frame: Vec<u8>,
        sender: Option<&Address>,
        back: Option<&Route>,
        now: Instant,
    ) -> Result<(), NodeError> {
        let id = match self.connections.outgoing(&peer) {
            Some(id) => id,
            None => {
                if self.connections.outgoing_full() {
                    // The connection unused for longest, if it holds nothing, makes
                    // room: peers dialled once do not hold slots for ever.
                    if let Some(idle) = self.connections.idlest_outgoing() {
                        tracing::debug!(connection = idle.0, %peer, "outgoing connections full: the idlest one goes");
                        self.stats.connections_evicted += 1;
                        self.drop_connection(
                            idle,
                            Some("closed to make room: outgoing connections full".into()),
                            true,
                            now,
                        );
                    }
                }
                if self.connections.outgoing_full() {
                    return Err(NodeError::ConnectFailed {
                        peer: super::connection::describe(&peer),
                        reason: format!(
                            "too many outgoing connections (limit {})",
                            self.config.max_outgoing_connections
                        ),
                    });
                }
                let alias = self.generate_address()?;
                let id = self
                    .connections
                    .open(peer.clone(), kind, alias.clone(), now);
                tracing::debug!(%peer, connection = id.0, "connecting");
                self.targets.insert(alias, Target::Connection(id));
                self.outputs.push_back(Output::Connect {
                    connection: id,
                    peer,
                });
                id
            }
        };
        self.send_frame(id, frame, sender, back, now)
    }

    pub(super) fn send_frame(
        &mut self,
        id: ConnectionId,
        frame: Vec<u8>,
        sender: Option<&Address>,
        back: Option<&Route>,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.check_budget(id, frame.len() + super::budget::TRANSMIT_OVERHEAD, now)?;
        let send = self.current_send;
        if let Sent::Transmit(bytes) = self.connections.send(id, frame, sender, back, send)? {
            self.outputs.push_back(Output::Transmit {
                connection: id,
                bytes,
            });
        }
        Ok(())
    }
}
