//! Secure channel ends that have ended, remembered for a while by their encryptor
//! address, so that a sender to one is told why the channel ended (the peer fell
//! silent, refused, closed it) rather than that nothing has the address.

use std::collections::{BTreeMap, VecDeque};

use crate::channel::ChannelError;
use crate::routing::Address;

/// How many ended channel ends are remembered; past it the oldest is forgotten, and a
/// sender to it is told only that nothing has the address.
pub(super) const MAX_ENDED_CHANNELS: usize = 1024;

/// The ended channel ends remembered, oldest first.
#[derive(Debug, Default)]
pub(super) struct EndedChannels {
    order: VecDeque<Address>,
    why: BTreeMap<Address, ChannelError>,
}

impl EndedChannels {
    /// Remembers that the end at `address` ended with `why`.
    pub(super) fn insert(&mut self, address: Address, why: ChannelError) {
        if self.why.insert(address.clone(), why).is_none() {
            self.order.push_back(address);
        }
        while self.order.len() > MAX_ENDED_CHANNELS {
            if let Some(oldest) = self.order.pop_front() {
                self.why.remove(&oldest);
            }
        }
    }

    /// Why the end at `address` ended, if it is remembered.
    pub(super) fn get(&self, address: &Address) -> Option<&ChannelError> {
        self.why.get(address)
    }

    /// Forgets `address` (it names something new).
    pub(super) fn remove(&mut self, address: &Address) {
        if self.why.remove(address).is_some() {
            self.order.retain(|a| a != address);
        }
    }
}

impl super::NodeCore {
    /// What the secure channel end at encryptor `address` is doing: in its handshake,
    /// established, down (a persistent channel, to be started again) or ended, with
    /// why; `None` if nothing on this node is or was a channel end there (or it ended
    /// too long ago to be remembered).
    pub fn channel_state(&self, address: &crate::routing::Address) -> Option<super::ChannelState> {
        use super::ChannelState;
        let live = match self.targets.get(address) {
            Some(super::Target::Encryptor(id)) => self.channels.get(id),
            _ => None,
        };
        if let Some(end) = live {
            return Some(match end.channel.peer() {
                Some(peer) => ChannelState::Established(*peer),
                None => ChannelState::Opening,
            });
        }
        let why = self.ended.get(address).cloned();
        if self.is_persistent_channel(address) {
            return Some(ChannelState::Down(why.unwrap_or(ChannelError::Closed)));
        }
        why.map(ChannelState::Ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_forgotten_past_the_limit() {
        let mut ended = EndedChannels::default();
        for i in 0..MAX_ENDED_CHANNELS + 10 {
            ended.insert(Address::local(format!("c{i}")), ChannelError::Closed);
        }
        assert_eq!(ended.order.len(), MAX_ENDED_CHANNELS);
        assert_eq!(ended.why.len(), MAX_ENDED_CHANNELS);
        assert!(ended.get(&Address::local("c9")).is_none());
        assert_eq!(
            ended.get(&Address::local("c10")),
            Some(&ChannelError::Closed)
        );
        ended.remove(&Address::local("c10"));
        assert!(ended.get(&Address::local("c10")).is_none());
        assert_eq!(ended.order.len(), MAX_ENDED_CHANNELS - 1);
    }
}
