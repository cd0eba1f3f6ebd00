//! The node core's mailboxes: how many unread messages each holds, whether a message
//! may go in, wait, or is refused, and when senders should hold back.
//!
//! A mailbox takes messages up to its capacity. Past it, a local sender is refused at
//! once, while a message read from a connection may wait for room (the connection is
//! not read meanwhile). A wait that times out marks the mailbox *overflowing*: until it
//! is down to half full, messages from connections are refused instead of waiting, so
//! a worker that stopped taking messages holds up its connections for one wait at most.
//! A mailbox at half its capacity or more is *congested*: senders that can wait do so
//! until it is below half again.

use std::collections::BTreeMap;

use crate::routing::Address;

use super::NodeError;

struct Mailbox {
    unread: usize,
    overflowing: bool,
    congested: bool,
}

/// What [`Mailboxes::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The message goes in: deliver it.
    Taken,
    /// The mailbox is full: the message (from a connection) waits for room.
    Wait,
}

/// Every mailbox of a node core.
pub(crate) struct Mailboxes {
    boxes: BTreeMap<Address, Mailbox>,
    capacity: usize,
}

impl Mailboxes {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            boxes: BTreeMap::new(),
            capacity,
        }
    }

    pub(crate) fn insert(&mut self, address: Address) {
        self.boxes.insert(
            address,
            Mailbox {
                unread: 0,
                overflowing: false,
                congested: false,
            },
        );
    }

    /// Removes a mailbox; returns whether it was there and congested.
    pub(crate) fn remove(&mut self, address: &Address) -> Option<bool> {
        self.boxes.remove(address).map(|m| m.congested)
    }

    pub(crate) fn len(&self) -> usize {
        self.boxes.len()
    }

    pub(crate) fn unread(&self, address: &Address) -> Option<usize> {
        self.boxes.get(address).map(|m| m.unread)
    }

    #[inline]
    pub(crate) fn is_congested(&self, address: &Address) -> bool {
        self.boxes.get(address).is_some_and(|m| m.congested)
    }

    /// Whether a message may go into the mailbox at `address` now (or it is gone, so
    /// that trying again reports the error).
    #[inline]
    pub(crate) fn has_room(&self, address: &Address) -> bool {
        self.boxes
            .get(address)
            .is_none_or(|m| m.unread < self.capacity)
    }

    /// Decides on a message for `address`; `may_wait` if it came from a connection.
    ///
    /// # Errors
    ///
    /// [`NodeError::UnknownAddress`], or [`NodeError::MailboxFull`] if it is full and
    /// the message may not wait.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        address: &Address,
        may_wait: bool,
    ) -> Result<Admission, NodeError> {
        let capacity = self.capacity;
        let mailbox = self
            .boxes
            .get_mut(address)
            .ok_or_else(|| NodeError::UnknownAddress(address.clone()))?;
        if mailbox.unread >= capacity {
            if may_wait && !mailbox.overflowing && capacity > 0 {
                return Ok(Admission::Wait);
            }
            return Err(NodeError::MailboxFull {
                address: address.clone(),
                limit: capacity,
            });
        }
        mailbox.unread += 1;
        mailbox.congested = mailbox.unread >= capacity / 2;
        Ok(Admission::Taken)
    }

    /// A message was taken from the mailbox at `address`. Returns whether it stopped
    /// being congested.
    #[inline]
    pub(crate) fn consumed(&mut self, address: &Address) -> bool {
        let capacity = self.capacity;
        let Some(m) = self.boxes.get_mut(address) else {
            return false;
        };
        m.unread = m.unread.saturating_sub(1);
        if m.unread <= capacity / 2 {
            m.overflowing = false;
        }
        let congested = m.unread >= capacity / 2;
        let relieved = m.congested && !congested;
        m.congested = congested;
        relieved
    }

    /// A message waited for room at `address` too long: until the mailbox is down to
    /// half full, messages from connections no longer wait.
    pub(crate) fn overflow(&mut self, address: &Address) {
        if let Some(m) = self.boxes.get_mut(address) {
            m.overflowing = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(capacity: usize) -> (Mailboxes, Address) {
        let mut m = Mailboxes::new(capacity);
        let a = Address::local("w");
        m.insert(a.clone());
        for _ in 0..capacity {
            assert_eq!(m.admit(&a, false), Ok(Admission::Taken));
        }
        (m, a)
    }

    #[test]
    fn a_full_mailbox_refuses_local_senders_and_makes_connections_wait() {
        let (mut m, a) = full(4);
        assert_eq!(m.unread(&a), Some(4));
        assert!(!m.has_room(&a));
        assert!(matches!(
            m.admit(&a, false),
            Err(NodeError::MailboxFull { limit: 4, .. })
        ));
        assert_eq!(m.admit(&a, true), Ok(Admission::Wait));
        assert_eq!(m.unread(&a), Some(4), "neither counted");
        let unknown = Address::local("nobody");
        assert_eq!(
            m.admit(&unknown, true),
            Err(NodeError::UnknownAddress(unknown.clone()))
        );
        assert!(
            m.has_room(&unknown),
            "a gone mailbox is retried to report it"
        );
    }

    #[test]
    fn congestion_clears_only_below_half() {
        let (mut m, a) = full(8);
        assert!(m.is_congested(&a));
        for unread in (4..8).rev() {
            assert!(!m.consumed(&a), "still congested at {unread} unread");
            assert!(m.is_congested(&a));
        }
        assert!(m.consumed(&a), "relieved at 3 unread");
        assert!(!m.is_congested(&a));
        assert!(!m.consumed(&a), "relieved once");
    }

    #[test]
    fn an_overflowing_mailbox_refuses_connections_until_half_empty() {
        let (mut m, a) = full(8);
        m.overflow(&a);
        assert!(matches!(
            m.admit(&a, true),
            Err(NodeError::MailboxFull { .. })
        ));
        // Down to 5: still overflowing, so a connection's message is refused while it
        // is full again...
        for _ in 0..3 {
            let _ = m.consumed(&a);
        }
        for _ in 0..3 {
            assert_eq!(m.admit(&a, true), Ok(Admission::Taken));
        }
        assert!(matches!(
            m.admit(&a, true),
            Err(NodeError::MailboxFull { .. })
        ));
        // ...until it has been down to half (4): then waiting is allowed again.
        for _ in 0..4 {
            let _ = m.consumed(&a);
        }
        for _ in 0..4 {
            assert_eq!(m.admit(&a, true), Ok(Admission::Taken));
        }
        assert_eq!(m.admit(&a, true), Ok(Admission::Wait));
    }

    #[test]
    fn congestion_starts_at_half_and_its_end_is_reported_once() {
        let mut m = Mailboxes::new(4);
        let a = Address::local("w");
        m.insert(a.clone());
        assert_eq!(m.admit(&a, false), Ok(Admission::Taken));
        assert!(!m.is_congested(&a));
        assert_eq!(m.admit(&a, false), Ok(Admission::Taken));
        assert!(m.is_congested(&a));
        assert!(m.consumed(&a));
        assert!(!m.consumed(&a));
        assert!(!m.is_congested(&a));
        assert_eq!(m.admit(&a, false), Ok(Admission::Taken));
        assert_eq!(m.admit(&a, false), Ok(Admission::Taken));
        assert_eq!(m.remove(&a), Some(true), "removed while congested");
        assert_eq!(m.remove(&a), None);
        assert!(!m.consumed(&a));
    }

    #[test]
    fn a_mailbox_of_no_capacity_refuses_everything() {
        let (mut m, a) = full(0);
        assert!(matches!(
            m.admit(&a, true),
            Err(NodeError::MailboxFull { limit: 0, .. })
        ));
    }
}
