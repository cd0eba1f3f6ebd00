//! Secure channel listeners inside the node core: the responders still in their
//! handshake, hellos answered (or answered with a cookie under load), and hellos with
//! a valid cookie deferred to their source's next second.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::cookie::{split_hello, HELLO_LEN};
use crate::channel::{ChannelConfig, ChannelEnd};
use crate::identity::Identity;
use crate::message::TransportMessage;
use crate::routing::{Address, Route};
use crate::trust::TrustPolicy;

use super::channels::{rules_of, shared};
use super::routing::{Source, Work};
use super::{ChannelId, ChannelRules, NodeCore, NodeError, Origin};

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

impl NodeCore {
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

    pub(super) fn forget_half_open(&mut self, listener: Option<&Address>, id: ChannelId) {
        if let Some(listener) = listener.and_then(|l| self.listeners.get_mut(l)) {
            listener.half_open.retain(|h| h.id != id);
        }
    }
}
