//! Secure channel ends inside the node core: the records each end sends and receives,
//! and what the channel state machines report. The listeners that answer hellos are in
//! [`listeners`](super::listeners).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::channel::{ChannelEnd, ChannelError, ChannelEvent, ChannelRole};
use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::routing::{Address, Route};

use super::routing::{Source, Work};
use super::{ChannelId, ChannelRules, NodeCore, NodeError, NodeEvent, Origin, Output, Target};

/// A channel end as the node keeps it: the state machine and where its records go.
pub(super) struct ChannelSlot {
    pub(super) channel: ChannelEnd,
    pub(super) encryptor: Address,
    pub(super) decryptor: Address,
    /// The route to the peer's end (its decryptor).
    pub(super) remote: Route,
    /// For an initiator until the response arrives: the route to the listener without
    /// the listener, to which the responder's decryptor address is then appended.
    prefix: Option<Route>,
    /// For a responder: the listener that created it.
    listener: Option<Address>,
    /// Who may send into it, and where what it decrypts may go (shared with its
    /// listener's other ends; `None` for the defaults, which most ends keep).
    rules: Option<Arc<ChannelRules>>,
    /// The verified peer, once known, shared with the origin of every message it
    /// decrypts.
    peer: Option<Arc<Identifier>>,
    /// The local senders that sent into it last (at most [`MAX_NOTED_SENDERS`]): told
    /// if it fails.
    senders: Vec<Address>,
    /// For a persistent channel's initiator end: how to start it again if it ends.
    pub(super) persistent: Option<Box<super::persistent::Persistent>>,
}

/// How many of a channel end's latest local senders are told when it fails.
const MAX_NOTED_SENDERS: usize = 8;

/// `rules` to keep: `None` for the defaults.
pub(super) fn shared(rules: ChannelRules) -> Option<Arc<ChannelRules>> {
    (!rules.is_default()).then(|| Arc::new(rules))
}

/// The rules kept as `rules`.
pub(super) fn rules_of(rules: &Option<Arc<ChannelRules>>) -> &ChannelRules {
    rules
        .as_deref()
        .unwrap_or_else(|| ChannelRules::shared_default())
}

impl ChannelSlot {
    fn rules(&self) -> &ChannelRules {
        rules_of(&self.rules)
    }
}

impl NodeCore {
    pub(super) fn add_channel(
        &mut self,
        channel: ChannelEnd,
        remote: Route,
        prefix: Option<Route>,
        listener: Option<Address>,
        rules: Option<Arc<ChannelRules>>,
        encryptor: Option<Address>,
    ) -> Result<(ChannelId, Address), NodeError> {
        let encryptor = match encryptor {
            Some(encryptor) => encryptor,
            None => self.generate_address()?,
        };
        let mut decryptor = self.generate_address()?;
        while decryptor == encryptor {
            decryptor = self.generate_address()?;
        }
        let id = ChannelId(self.next_channel);
        self.next_channel += 1;
        self.targets
            .insert(encryptor.clone(), Target::Encryptor(id));
        self.targets
            .insert(decryptor.clone(), Target::Decryptor(id));
        self.channels.insert(
            id,
            Box::new(ChannelSlot {
                channel,
                encryptor: encryptor.clone(),
                decryptor,
                remote,
                prefix,
                listener,
                rules,
                peer: None,
                senders: Vec::new(),
                persistent: None,
            }),
        );
        self.ended.remove(&encryptor);
        Ok((id, encryptor))
    }

    /// Removes channel end `id`; a persistent one is started again later (see
    /// [`persistent`](super::persistent)).
    pub(super) fn remove_channel(&mut self, id: ChannelId, now: Instant) {
        if let Some(end) = self.channels.remove(&id) {
            let end = *end;
            self.targets.remove(&end.encryptor);
            self.targets.remove(&end.decryptor);
            self.forget_half_open(end.listener.as_ref(), id);
            if let Some(persistent) = end.persistent {
                self.reestablish_later(end.encryptor, persistent, now);
            }
        }
    }

    /// Drains a channel end and routes what it produced, as sent by the channel end
    /// itself, so that a handshake record that cannot be sent fails the channel.
    /// Returns the first error; the others are reported.
    pub(super) fn drain_channel_and_route(
        &mut self,
        id: ChannelId,
        now: Instant,
    ) -> Result<(), NodeError> {
        let mut work = VecDeque::new();
        let Some(sender) = self.channels.get(&id).map(|end| end.encryptor.clone()) else {
            return Ok(());
        };
        self.drain_channel(id, now, &mut work);
        let mut first = None;
        for job in work {
            let result = self.route_all(VecDeque::from([job]), Source::Local(&sender), now);
            if let Err(error) = result {
                if first.is_none() {
                    first = Some(error);
                } else {
                    self.report(Some(sender.clone()), error, now);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Takes a channel end's records and events: records become messages to the peer's
    /// end, decrypted messages continue inside the node; an ended channel is removed.
    pub(super) fn drain_channel(&mut self, id: ChannelId, now: Instant, work: &mut Work) {
        let _ = now;
        let Some(end) = self.channels.get_mut(&id) else {
            return;
        };
        while let Some(record) = end.channel.poll_transmit() {
            // The channel end sends its own records: a sender on this node.
            let message = TransportMessage::new(
                end.remote.clone(),
                Route::from(end.decryptor.clone()),
                record,
            );
            work.push_back((message, Origin::Local));
        }
        let mut events = std::mem::take(&mut self.spare_events);
        while let Some(event) = end.channel.poll_event() {
            events.push(event);
        }
        let encryptor = end.encryptor.clone();
        let initiator = end.channel.role() == ChannelRole::Initiator;
        let ended = end.channel.is_ended();
        let listener = end.listener.clone();
        // The peer is shared with the origins of the messages this end decrypts: made
        // once, when the first one comes (an idle end keeps none).
        if end.peer.is_none()
            && events
                .iter()
                .any(|e| matches!(e, ChannelEvent::Received(_)))
        {
            end.peer = end.channel.peer().map(|p| Arc::new(*p));
        }
        let peer = end.peer.clone();
        for event in events.drain(..) {
            let event = match event {
                ChannelEvent::Established { peer } => {
                    self.stats.channels_established += 1;
                    self.forget_half_open(listener.as_ref(), id);
                    self.reestablished(id);
                    if initiator {
                        tracing::info!(address = %encryptor, %peer, "secure channel established");
                    } else {
                        tracing::debug!(address = %encryptor, %peer, "secure channel accepted");
                    }
                    NodeEvent::ChannelEstablished {
                        channel: id,
                        address: encryptor.clone(),
                        peer,
                        initiator,
                    }
                }
                ChannelEvent::Received(mut inner) => {
                    // Messages are delivered only once the peer is verified.
                    if let Some(peer) = &peer {
                        inner.return_route.prepend(encryptor.clone());
                        let origin = Origin::Channel {
                            channel: id,
                            peer: peer.clone(),
                        };
                        work.push_back((inner, origin));
                    }
                    continue;
                }
                ChannelEvent::Closed { by_peer, reason } => {
                    tracing::debug!(address = %encryptor, ?reason, by_peer, "secure channel closed");
                    self.stats.channels_closed += 1;
                    self.ended.insert(encryptor.clone(), ChannelError::Closed);
                    // Whoever sent into it last (a request waiting for its reply,
                    // say) learns that no reply will come through it.
                    let closed = NodeError::Channel {
                        address: encryptor.clone(),
                        error: ChannelError::Closed,
                    };
                    self.tell_senders(id, &closed);
                    NodeEvent::ChannelClosed {
                        channel: id,
                        address: encryptor.clone(),
                        by_peer,
                    }
                }
                ChannelEvent::Failed(error) => {
                    self.channel_failed(
                        id,
                        NodeError::Channel {
                            address: encryptor.clone(),
                            error,
                        },
                    );
                    continue;
                }
            };
            self.outputs.push_back(Output::Event(event));
        }
        // Its storage serves the next drain, unless it grew for a burst.
        if self.spare_events.capacity() == 0 && events.capacity() <= 8 {
            self.spare_events = events;
        }
        if ended {
            self.remove_channel(id, now);
        }
    }

    /// Reports channel end `id` failed if `error`, returned by a call on it, ended it.
    /// (A channel returns the error of the call that ended it rather than also queue it
    /// as an event.)
    pub(super) fn fail_if_ended(&mut self, id: ChannelId, error: &ChannelError) {
        let Some(end) = self.channels.get(&id) else {
            return;
        };
        if end.channel.is_ended() {
            let address = end.encryptor.clone();
            self.channel_failed(
                id,
                NodeError::Channel {
                    address,
                    error: error.clone(),
                },
            );
        }
    }

    /// Reports channel end `id` failed with `error`: as an event, to each local sender
    /// that sent into it last, and to anyone who sends to its address later.
    pub(super) fn channel_failed(&mut self, id: ChannelId, error: NodeError) {
        let Some(end) = self.channels.get_mut(&id) else {
            return;
        };
        let address = end.encryptor.clone();
        let role = end.channel.role();
        self.stats.channels_failed += 1;
        // A peer can make responders fail as often as it likes: those are debug.
        if role == ChannelRole::Initiator {
            tracing::info!(%address, %error, "secure channel failed");
        } else {
            tracing::debug!(%address, %error, "secure channel (responder) failed");
        }
        if let NodeError::Channel { error, .. } = &error {
            self.ended.insert(address.clone(), error.clone());
        }
        self.tell_senders(id, &error);
        self.outputs
            .push_back(Output::Event(NodeEvent::ChannelFailed {
                channel: id,
                address,
                error,
            }));
    }

    /// Tells the local senders that sent into channel end `id` last that it ended,
    /// with `error`.
    fn tell_senders(&mut self, id: ChannelId, error: &NodeError) {
        let Some(end) = self.channels.get_mut(&id) else {
            return;
        };
        for sender in std::mem::take(&mut end.senders) {
            self.outputs
                .push_back(Output::Event(NodeEvent::DeliveryFailed {
                    sender: Some(sender),
                    error: error.clone(),
                    send: 0,
                }));
        }
    }

    /// Notes that local `sender` sends into channel end `id`, to tell it if the
    /// channel fails.
    pub(super) fn note_sender(&mut self, id: ChannelId, sender: Option<&Address>) {
        let (Some(sender), Some(end)) = (sender, self.channels.get_mut(&id)) else {
            return;
        };
        if end.senders.iter().any(|s| s == sender) {
            return;
        }
        if end.senders.len() >= MAX_NOTED_SENDERS {
            end.senders.remove(0);
        }
        end.senders.push(sender.clone());
    }

    /// The error for a message to `address`, which nothing on this node has: if it
    /// was a channel end's, why that channel ended.
    pub(super) fn unknown_address(&self, address: Address) -> NodeError {
        match self.ended.get(&address) {
            Some(error) => NodeError::Channel {
                error: error.clone(),
                address,
            },
            None => NodeError::UnknownAddress(address),
        }
    }

    /// A record arrived for channel end `id` with `return_route` (the rest of its
    /// onward route is not used: the record carries the inner one). Returns whether
    /// it authenticated (or completed a handshake step).
    pub(super) fn receive_record(
        &mut self,
        id: ChannelId,
        return_route: Route,
        record: &mut [u8],
        now: Instant,
        work: &mut Work,
    ) -> bool {
        if crate::report::route_is_report(&return_route) {
            // Not a record: a node on the way to the peer's end could not pass one on.
            self.receive_report(id, record, now, work);
            return false;
        }
        let Some(end) = self.channels.get_mut(&id) else {
            return false;
        };
        if ChannelEnd::is_cookie_reply(record) {
            // A cookie reply authenticates nothing and says nothing of the way to the
            // responder: the initiator sends its hello again, along the same route.
            if let Err(error) = end.channel.handle_record_in_place(record, now) {
                self.stats.records_rejected += 1;
                tracing::trace!(channel = id.0, %error, "cookie reply dropped");
                // Where no cookie reply belongs (a responder), it ends the handshake.
                self.fail_if_ended(id, &error);
            }
            self.drain_channel(id, now, work);
            return false;
        }
        let authentic = match end.channel.handle_record_in_place(record, now) {
            Ok(()) => {
                // The record authenticated (or completed a handshake step): learn the
                // way back to the peer's end. Return routes are not authenticated, so
                // the initiator takes the responder's end from the response alone (that
                // end never moves; a later altered record must not redirect the channel
                // for good), while the responder follows the newest authentic record,
                // whose return route leads back over the connections in use now.
                match end.channel.role() {
                    ChannelRole::Initiator => {
                        if let Some(mut remote) = end.prefix.take() {
                            if let Some(peer_end) = return_route.last() {
                                remote.append(peer_end.clone());
                                end.remote = remote;
                            }
                        }
                    }
                    ChannelRole::Responder => {
                        if !return_route.is_empty() {
                            end.remote = return_route;
                        }
                    }
                }
                true
            }
            Err(error) => {
                self.stats.records_rejected += 1;
                tracing::trace!(channel = id.0, %error, "record rejected");
                self.fail_if_ended(id, &error);
                false
            }
        };
        self.drain_channel(id, now, work);
        authentic
    }
}

impl NodeCore {
    /// Why a message that came through channel end `id` may not go to `first`, if
    /// its rules forbid it (or the end is gone, so its rules cannot be read).
    pub(super) fn channel_delivery_refusal(
        &self,
        id: ChannelId,
        first: &Address,
    ) -> Option<String> {
        match self.channels.get(&id) {
            Some(end) if end.rules().may_deliver_to(first) => None,
            Some(end) => Some(format!(
                "secure channel {} delivers only to {}",
                end.encryptor,
                end.rules().describe_deliver_to()
            )),
            // Its rules cannot be read: fail closed.
            None => Some(format!("secure channel {} has ended", id.0)),
        }
    }

    /// Why a message from `origin` may not go into channel end `id`, if its ingress
    /// rule refuses it.
    pub(super) fn channel_ingress_refusal(&self, id: ChannelId, origin: &Origin) -> Option<String> {
        match self.channels.get(&id) {
            Some(end) if end.rules().ingress.admits(origin) => None,
            Some(end) => Some(format!(
                "secure channel {} takes messages only from {}",
                end.encryptor,
                end.rules().ingress
            )),
            None => Some(format!("secure channel {} has ended", id.0)),
        }
    }
}
