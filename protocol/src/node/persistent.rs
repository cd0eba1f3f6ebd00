//! Persistent secure channels: an initiator end that fails or is closed by its peer is
//! started again over the same route, keeping its encryptor address, so that the
//! routes an application built on it stay valid.
//!
//! While such a channel is down, a send to its address fails at once with why it went
//! down (the node remembers it, see [`ended`](super::ended)); while it is in its new
//! handshake, with [`ChannelError::NotEstablished`](crate::channel::ChannelError::NotEstablished).
//! Nothing is queued. The wait before each new start doubles after each failure, from
//! [`ChannelConfig::reestablish_after`] up to [`MAX_REESTABLISH_DELAY`], and goes back
//! to the start once a handshake succeeds. Closing the channel ends it for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::ChannelConfig;
use crate::identity::Identity;
use crate::routing::{Address, Route};
use crate::trust::TrustPolicy;

use super::{channels, ChannelId, ChannelRules, NodeCore, NodeError};

/// The longest wait before a persistent channel is started again.
pub const MAX_REESTABLISH_DELAY: Duration = Duration::from_secs(60);

/// What an initiator end is started from, kept for a persistent one.
pub(super) struct Persistent {
    pub(super) route: Route,
    pub(super) identity: Arc<Identity>,
    pub(super) trust: Arc<dyn TrustPolicy>,
    pub(super) config: ChannelConfig,
    pub(super) rules: Option<Arc<ChannelRules>>,
    /// The wait before the next start.
    delay: Duration,
}

impl Persistent {
    pub(super) fn new(
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        config: &ChannelConfig,
        rules: ChannelRules,
    ) -> Self {
        Self {
            route,
            identity,
            trust,
            delay: config.reestablish_after,
            config: config.clone(),
            rules: channels::shared(rules),
        }
    }
}

impl NodeCore {
    /// As [`create_channel`](Self::create_channel), for a **persistent** channel: when
    /// the channel fails or its peer closes it, it is started again over the same
    /// route after [`ChannelConfig::reestablish_after`] (doubling after each failure,
    /// up to [`MAX_REESTABLISH_DELAY`]), at the same encryptor address. Each new
    /// handshake is reported as [`NodeEvent::ChannelEstablished`](super::NodeEvent::ChannelEstablished)
    /// or [`NodeEvent::ChannelFailed`](super::NodeEvent::ChannelFailed) for that address.
    /// [`close_channel`](Self::close_channel) ends it for good.
    ///
    /// # Errors
    ///
    /// As [`create_channel`](Self::create_channel): the first hello could not be sent.
    /// The channel is then not kept.
    pub fn create_persistent_channel(
        &mut self,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        config: &ChannelConfig,
        rules: ChannelRules,
        now: Instant,
    ) -> Result<(ChannelId, Address), NodeError> {
        let start = Persistent::new(route, identity, trust, config, rules);
        let (id, encryptor) = self.start_initiator(&start, None, now)?;
        if let Some(end) = self.channels.get_mut(&id) {
            end.persistent = Some(Box::new(start));
        }
        Ok((id, encryptor))
    }

    /// Whether `address` is a persistent channel's, up or down.
    pub fn is_persistent_channel(&self, address: &Address) -> bool {
        self.down.contains_key(address)
            || self
                .channels
                .values()
                .any(|end| end.persistent.is_some() && end.encryptor == *address)
    }

    /// The persistent channel at `encryptor` ended: it is started again after its
    /// delay.
    pub(super) fn reestablish_later(
        &mut self,
        encryptor: Address,
        persistent: Box<Persistent>,
        now: Instant,
    ) {
        let due = now.checked_add(persistent.delay).unwrap_or(now);
        tracing::debug!(address = %encryptor, delay = ?persistent.delay, "persistent secure channel down: starting it again later");
        self.down.insert(encryptor, (due, persistent));
    }

    /// A persistent channel's new handshake succeeded: the next failure waits the
    /// shortest delay again.
    pub(super) fn reestablished(&mut self, id: ChannelId) {
        if let Some(persistent) = self
            .channels
            .get_mut(&id)
            .and_then(|end| end.persistent.as_mut())
        {
            persistent.delay = persistent.config.reestablish_after;
        }
    }

    /// Forgets the persistent channel at `encryptor` if it is down; returns whether it
    /// was.
    pub(super) fn forget_down(&mut self, encryptor: &Address) -> bool {
        self.down.remove(encryptor).is_some()
    }

    /// When the first persistent channel that is down is started again.
    pub(super) fn reestablish_deadline(&self) -> Option<Instant> {
        self.down.values().map(|(due, _)| *due).min()
    }

    /// Starts again the persistent channels due by `now`.
    pub(super) fn reestablish_due(&mut self, now: Instant) {
        let due: Vec<Address> = self
            .down
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(address, _)| address.clone())
            .collect();
        for encryptor in due {
            let Some((_, mut persistent)) = self.down.remove(&encryptor) else {
                continue;
            };
            // If this start fails too, the one after waits twice as long.
            let delay = persistent.delay;
            persistent.delay = delay.saturating_mul(2).min(MAX_REESTABLISH_DELAY);
            match self.start_initiator(&persistent, Some(encryptor.clone()), now) {
                Ok((id, _)) => match self.channels.get_mut(&id) {
                    Some(end) => end.persistent = Some(persistent),
                    // It failed at once, and was removed without its persistence.
                    None => self.reestablish_later(encryptor, persistent, now),
                },
                Err(error) => {
                    tracing::debug!(address = %encryptor, %error, "persistent secure channel: starting again failed");
                    self.reestablish_later(encryptor, persistent, now);
                }
            }
        }
    }
}
