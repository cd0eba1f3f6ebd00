//! Secure channel ends inside the node core: the listener that answers hellos, the
//! records each end sends and receives, and what the channel state machines report.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::cookie::{split_hello, HELLO_LEN};
use crate::channel::{ChannelConfig, ChannelEnd, ChannelError, ChannelEvent, ChannelRole};
use crate::identity::{Identifier, Identity};
use crate::message::TransportMessage;
use crate::routing::{Address, Route};
use crate::trust::TrustPolicy;

use super::routing::{Source, Work};
use super::{ChannelId, ChannelRules, NodeCore, NodeError, NodeEvent, Origin, Output, Target};

/// A secure channel listener: what its responders are made of, and which of them are
/// still in their handshake.
pub(super) struct Listener {
    identity: Arc<Identity>,
    trust: Arc<dyn TrustPolicy>,
    config: ChannelConfig,
    /// Who may send hellos, and the rules each of its channel ends keeps (shared;
    /// `None` for the defaults).
    rules: Option<Arc<ChannelRules>>,
    /// Its responders still in their handshake, oldest first.
    half_open: VecDeque<HalfOpen>,
    /// Hellos counted in the current one-second window, when it began, and the count
    /// of the window before (if it was the one just before).
    hellos: (Instant, u32, u32),
}

/// A responder still in its handshake.
struct HalfOpen {
    id: ChannelId,
    /// Whether its hello carried a valid cookie.
    cookied: bool,
    /// The hello it answered (without a cookie), to recognise a duplicate.
    hello: [u8; HELLO_LEN],
}

/// How many cookie sources the node tracks at once; past it, under load, hellos from
/// new sources are dropped until a second has passed.
const MAX_COOKIE_SOURCES: usize = 4096;

/// Hellos with a valid cookie that may wait, node-wide, for their source's next
/// second under load; past it they are dropped.
pub(super) const MAX_DEFERRED_HELLOS: usize = 256;

/// A hello with a valid cookie past its source's share for this second, waiting for
/// the next.
pub(super) struct DeferredHello {
    listener: Address,
    message: TransportMessage,
    origin: Origin,
    /// The connection it came over, if it did.
    connection: Option<super::ConnectionId>,
    /// When its source has a slot again.
    due: Instant,
}

impl DeferredHello {
    /// The listener it is for.
    pub(super) fn listener(&self) -> &Address {
        &self.listener
    }
}

impl Listener {
    /// Counts a hello at `now`; returns the hellos per second it sees: the more of
    /// the current window's count and the previous window's.
    fn count_hello(&mut self, now: Instant) -> u32 {
        let (start, this, last) = &mut self.hellos;
        let elapsed = now.saturating_duration_since(*start);
        if elapsed >= Duration::from_secs(1) {
            *last = if elapsed < Duration::from_secs(2) {
                *this
            } else {
                0
            };
            *this = 0;
            *start = now;
        }
        *this = this.saturating_add(1);
        (*this).max(*last)
    }
}

impl Listener {
    pub(super) fn new(
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        config: ChannelConfig,
        rules: ChannelRules,
        now: Instant,
    ) -> Self {
        Self {
            identity,
            trust,
            config,
            rules: shared(rules),
            half_open: VecDeque::new(),
            hellos: (now, 0, 0),
        }
    }
}

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
fn rules_of(rules: &Option<Arc<ChannelRules>>) -> &ChannelRules {
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

    fn forget_half_open(&mut self, listener: Option<&Address>, id: ChannelId) {
        if let Some(listener) = listener.and_then(|l| self.listeners.get_mut(l)) {
            listener.half_open.retain(|h| h.id != id);
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

    /// A message arrived at the listener at `listener_address`: if it is a hello that
    /// checks out, a new responder end answers it; under load, unless it carries a
    /// valid cookie, a cookie reply answers it instead.
    pub(super) fn accept_hello(
        &mut self,
        listener_address: &Address,
        message: TransportMessage,
        origin: &Origin,
        now: Instant,
        work: &mut Work,
    ) {
        let Some(listener) = self.listeners.get_mut(listener_address) else {
            return;
        };
        let Some((hello, cookie)) =
            split_hello(&message.payload).filter(|_| !message.return_route.is_empty())
        else {
            self.stats.hellos_rejected += 1;
            return;
        };
        // A duplicate of a hello one of its responders answered (the initiator did
        // not hear the response, and sent its hello again): that responder sends its
        // response again, to where the first hello came from. No new end, no
        // Diffie-Hellman, and a few answers at most per end, so a replay gains little.
        if let Some(id) = listener
            .half_open
            .iter()
            .find(|h| h.hello[..] == *hello)
            .map(|h| h.id)
        {
            self.stats.duplicate_hellos += 1;
            if let Some(end) = self.channels.get_mut(&id) {
                if end.channel.answer_duplicate_hello(now) {
                    self.drain_channel(id, now, work);
                }
            }
            return;
        }
        let hello_bytes: [u8; HELLO_LEN] = hello.try_into().unwrap_or([0; HELLO_LEN]);
        let rate = listener.count_hello(now);
        let half_full =
            listener.half_open.len() >= self.config.max_half_open_per_listener.div_ceil(2);
        let loaded = self
            .config
            .cookie_threshold
            .is_some_and(|threshold| rate >= threshold || half_full);
        let cookied = cookie.is_some_and(|cookie| {
            self.cookies
                .check(listener_address, &message.return_route, hello, cookie, now)
        });
        if loaded && !cookied {
            match self.cookies.reply(
                listener_address,
                &message.return_route,
                hello,
                &mut *self.rng,
                now,
            ) {
                Ok(reply) => {
                    self.stats.cookies_sent += 1;
                    tracing::trace!(listener = %listener_address, "under load: cookie reply");
                    let back = Route::from(listener_address.clone());
                    let reply = TransportMessage::new(message.return_route, back, reply);
                    work.push_back((reply, Origin::Local));
                }
                Err(error) => {
                    self.stats.hellos_rejected += 1;
                    tracing::debug!(%error, "no cookie for a hello");
                }
            }
            return;
        }
        if loaded {
            match self.cookie_hello_slot(origin, now) {
                Ok(()) => {}
                // Past its source's share for this second: it waits for the next one
                // (so a busy initiator is slowed, not failed), if there is room.
                Err(Some(due)) if self.deferred_hellos.len() < MAX_DEFERRED_HELLOS => {
                    self.stats.hellos_deferred += 1;
                    let connection = match origin {
                        Origin::Transport { connection } => Some(*connection),
                        _ => None,
                    };
                    self.deferred_hellos.push_back(DeferredHello {
                        listener: listener_address.clone(),
                        message,
                        origin: origin.clone(),
                        connection,
                        due,
                    });
                    return;
                }
                Err(_) => {
                    self.stats.hellos_rate_limited += 1;
                    return;
                }
            }
        }
        let Some(listener) = self.listeners.get(listener_address) else {
            return;
        };
        let rules = listener.rules.clone();
        let channel = match ChannelEnd::responder(
            &listener.config,
            &listener.identity,
            listener.trust.clone(),
            &mut *self.rng,
            &message.payload,
            now,
        ) {
            Ok(channel) => channel,
            Err(error) => {
                self.stats.hellos_rejected += 1;
                tracing::trace!(%error, "hello rejected");
                return;
            }
        };
        // Only a hello that checks out makes room: the oldest half-open end of this
        // listener goes first (a malformed hello must not evict a real handshake), and
        // for a hello with a valid cookie, the oldest whose hello had none.
        let limit = self.config.max_half_open_per_listener;
        if let Some(oldest) = self
            .listeners
            .get_mut(listener_address)
            .filter(|l| l.half_open.len() >= limit)
            .and_then(|l| {
                let uncookied = l
                    .half_open
                    .iter()
                    .position(|h| !h.cookied)
                    .filter(|_| cookied);
                l.half_open.remove(uncookied.unwrap_or(0)).map(|h| h.id)
            })
        {
            self.stats.half_open_evicted += 1;
            self.remove_channel(oldest, now);
        }
        if self.channels.len() >= self.config.max_channels {
            self.stats.hellos_rejected += 1;
            // The initiator is told at once, not left to its handshake timeout.
            let error = NodeError::TooManyChannels {
                limit: self.config.max_channels,
            };
            tracing::debug!(listener = %listener_address, %error, "hello dropped");
            let back = message.return_route;
            self.report_back(&error, origin, Some(listener_address), back, now, work);
            return;
        }
        match self.add_channel(
            channel,
            message.return_route,
            None,
            Some(listener_address.clone()),
            rules,
            None,
        ) {
            Ok((id, _)) => {
                self.stats.handshakes_answered += 1;
                if let Some(listener) = self.listeners.get_mut(listener_address) {
                    listener.half_open.push_back(HalfOpen {
                        id,
                        cookied,
                        hello: hello_bytes,
                    });
                }
                self.drain_channel(id, now, work);
            }
            Err(error) => {
                self.stats.hellos_rejected += 1;
                tracing::debug!(%error, "no room for a channel");
            }
        }
    }
}

impl NodeCore {
    /// Takes one of this second's slots for a hello with a valid cookie from
    /// `origin`, under load: at most [`NodeConfig::cookie_hellos_per_source`](super::NodeConfig::cookie_hellos_per_source)
    /// per second from one source. A hello from this node is not limited.
    ///
    /// # Errors
    ///
    /// `Some(when)` the source has a slot again, or `None` if it cannot be told (the
    /// connection is gone, or too many sources are tracked).
    fn cookie_hello_slot(&mut self, origin: &Origin, now: Instant) -> Result<(), Option<Instant>> {
        let source = match origin {
            Origin::Local => return Ok(()),
            Origin::Transport { connection } => match self.connections.get(*connection) {
                Some(conn) => conn.source().to_owned(),
                None => return Err(None),
            },
            Origin::Channel { channel, .. } => format!("channel {}", channel.0),
        };
        let second = Duration::from_secs(1);
        if !self.cookie_hellos.contains_key(&source)
            && self.cookie_hellos.len() >= MAX_COOKIE_SOURCES
        {
            self.cookie_hellos
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < second);
            if self.cookie_hellos.len() >= MAX_COOKIE_SOURCES {
                return Err(None);
            }
        }
        let (start, count) = self.cookie_hellos.entry(source).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= second {
            *start = now;
            *count = 0;
        }
        if *count >= self.config.cookie_hellos_per_source {
            return Err(start.checked_add(second));
        }
        *count += 1;
        Ok(())
    }

    /// When the first deferred hello may be tried again.
    pub(super) fn deferred_hello_deadline(&self) -> Option<Instant> {
        self.deferred_hellos.iter().map(|d| d.due).min()
    }

    /// Tries again, in arrival order, the deferred hellos whose source has a slot again
    /// by `now`.
    pub(super) fn retry_deferred_hellos(&mut self, now: Instant) {
        if self.deferred_hello_deadline().is_none_or(|due| due > now) {
            return;
        }
        let (due, waiting): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.deferred_hellos)
            .into_iter()
            .partition(|d| d.due <= now);
        self.deferred_hellos = waiting;
        for deferred in due {
            // Its connection is gone, and with it the way back: no work for it.
            if deferred
                .connection
                .is_some_and(|id| self.connections.get(id).is_none())
            {
                continue;
            }
            // The listener's rule is asked again: it may have changed meanwhile.
            if self
                .listener_refusal(&deferred.listener, &deferred.origin)
                .is_some()
            {
                self.stats.hellos_rate_limited += 1;
                continue;
            }
            let mut work = VecDeque::new();
            self.accept_hello(
                &deferred.listener,
                deferred.message,
                &deferred.origin,
                now,
                &mut work,
            );
            let result = match deferred.connection {
                Some(id) => self.route_all(work, Source::Connection(id), now),
                None => self.route_all(work, Source::Local(&deferred.listener), now),
            };
            if let Err(error) = result {
                tracing::debug!(%error, "answering a deferred hello");
            }
        }
    }

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

    /// Why a hello from `origin` may not reach the listener at `address`, if its rule
    /// refuses it.
    pub(super) fn listener_refusal(&self, address: &Address, origin: &Origin) -> Option<String> {
        match self.listeners.get(address) {
            Some(listener) if rules_of(&listener.rules).hellos.admits(origin) => None,
            Some(listener) => Some(format!(
                "listener {address} takes hellos only from {}",
                rules_of(&listener.rules).hellos
            )),
            None => Some(format!("listener {address} is gone")),
        }
    }
}
