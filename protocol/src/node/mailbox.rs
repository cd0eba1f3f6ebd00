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
//!
//! Capacity is counted twice: in messages, and in bytes (each message's encoded
//! length). A mailbox whose unread bytes would pass its byte share is full like one at
//! its message count, except that an empty mailbox always takes one message. The
//! bytes of every mailbox count against the node's memory budget, and a message the
//! budget has no room for is treated the same way (refused, or waits).

use std::collections::{BTreeMap, VecDeque};

use crate::routing::Address;

use super::budget::Budget;
use super::{BudgetShare, NodeError};

/// Entries of a mailbox's size queue kept when it empties (8 bytes each).
const SIZES_KEPT: usize = 256;

struct Mailbox {
    unread: usize,
    /// Encoded bytes of the unread messages.
    bytes: usize,
    /// Each unread message's bytes, in the order delivered (and so consumed).
    sizes: VecDeque<usize>,
    overflowing: bool,
    congested: bool,
}

impl Mailbox {
    fn full_for(&self, size: usize, capacity: usize, max_bytes: usize) -> bool {
        self.unread >= capacity || (self.unread > 0 && self.bytes.saturating_add(size) > max_bytes)
    }
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
    max_bytes: usize,
    /// Unread bytes of all mailboxes.
    bytes: usize,
}

impl Mailboxes {
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            boxes: BTreeMap::new(),
            capacity,
            max_bytes,
            bytes: 0,
        }
    }

    pub(crate) fn insert(&mut self, address: Address) {
        self.boxes.insert(
            address,
            Mailbox {
                unread: 0,
                bytes: 0,
                sizes: VecDeque::new(),
                overflowing: false,
                congested: false,
            },
        );
    }

    /// Removes a mailbox (its unread bytes no longer count); returns whether it was
    /// there and congested.
    pub(crate) fn remove(&mut self, address: &Address) -> Option<bool> {
        let removed = self.boxes.remove(address)?;
        self.bytes = self.bytes.saturating_sub(removed.bytes);
        Some(removed.congested)
    }

    /// Unread bytes of all mailboxes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
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

    /// Whether a message of `size` bytes may go into the mailbox at `address` now,
    /// with the node's memory `budget` as it stands (or the mailbox is gone, so that
    /// trying again reports the error).
    #[inline]
    pub(crate) fn has_room(&self, address: &Address, size: usize, budget: Budget) -> bool {
        self.boxes
            .get(address)
            .is_none_or(|m| !m.full_for(size, self.capacity, self.max_bytes) && budget.fits(size))
    }

    /// Decides on a message of `size` bytes for `address`, with the node's memory
    /// `budget` as it stands; `may_wait` if it came from a connection.
    ///
    /// # Errors
    ///
    /// [`NodeError::UnknownAddress`]; if the message may not wait,
    /// [`NodeError::MailboxFull`] at the message count, or
    /// [`NodeError::MemoryBudget`] at the mailbox's byte share or the node's budget.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        address: &Address,
        may_wait: bool,
        size: usize,
        budget: Budget,
    ) -> Result<Admission, NodeError> {
        let (capacity, max_bytes) = (self.capacity, self.max_bytes);
        let mailbox = self
            .boxes
            .get_mut(address)
            .ok_or_else(|| NodeError::UnknownAddress(address.clone()))?;
        let full = mailbox.full_for(size, capacity, max_bytes);
        if full || !budget.fits(size) {
            if may_wait && !mailbox.overflowing && capacity > 0 {
                return Ok(Admission::Wait);
            }
            return Err(if mailbox.unread >= capacity {
                NodeError::MailboxFull {
                    address: address.clone(),
                    limit: capacity,
                }
            } else if full {
                NodeError::MemoryBudget {
                    share: BudgetShare::Mailbox(address.clone()),
                    needed: size,
                    in_use: mailbox.bytes,
                    limit: max_bytes,
                }
            } else {
                budget.refusal(BudgetShare::Node, size)
            });
        }
        mailbox.unread += 1;
        mailbox.bytes += size;
        mailbox.sizes.push_back(size);
        self.bytes += size;
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
        let size = m.sizes.pop_front().unwrap_or(0);
        m.bytes = m.bytes.saturating_sub(size);
        self.bytes = self.bytes.saturating_sub(size);
        if m.sizes.is_empty() && m.sizes.capacity() > SIZES_KEPT {
            // An emptied mailbox gives back what a burst made it hold, but keeps
            // enough that a mailbox emptied at every message does not reallocate.
            m.sizes.shrink_to(SIZES_KEPT);
        }
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

    /// A budget with room for anything.
    const ROOM: Budget = Budget {
        in_use: 0,
        limit: usize::MAX,
    };

    fn full(capacity: usize) -> (Mailboxes, Address) {
        let mut m = Mailboxes::new(capacity, usize::MAX);
        let a = Address::local("w");
        m.insert(a.clone());
        for _ in 0..capacity {
            assert_eq!(m.admit(&a, false, 1, ROOM), Ok(Admission::Taken));
        }
        (m, a)
    }

    #[test]
    fn a_full_mailbox_refuses_local_senders_and_makes_connections_wait() {
        let (mut m, a) = full(4);
        assert_eq!(m.unread(&a), Some(4));
        assert!(!m.has_room(&a, 1, ROOM));
        assert!(matches!(
            m.admit(&a, false, 1, ROOM),
            Err(NodeError::MailboxFull { limit: 4, .. })
        ));
        assert_eq!(m.admit(&a, true, 1, ROOM), Ok(Admission::Wait));
        assert_eq!(m.unread(&a), Some(4), "neither counted");
        let unknown = Address::local("nobody");
        assert_eq!(
            m.admit(&unknown, true, 1, ROOM),
            Err(NodeError::UnknownAddress(unknown.clone()))
        );
        assert!(
            m.has_room(&unknown, 1, ROOM),
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
            m.admit(&a, true, 1, ROOM),
            Err(NodeError::MailboxFull { .. })
        ));
        // Down to 5: still overflowing, so a connection's message is refused while it
        // is full again...
        for _ in 0..3 {
            let _ = m.consumed(&a);
        }
        for _ in 0..3 {
            assert_eq!(m.admit(&a, true, 1, ROOM), Ok(Admission::Taken));
        }
        assert!(matches!(
            m.admit(&a, true, 1, ROOM),
            Err(NodeError::MailboxFull { .. })
        ));
        // ...until it has been down to half (4): then waiting is allowed again.
        for _ in 0..4 {
            let _ = m.consumed(&a);
        }
        for _ in 0..4 {
            assert_eq!(m.admit(&a, true, 1, ROOM), Ok(Admission::Taken));
        }
        assert_eq!(m.admit(&a, true, 1, ROOM), Ok(Admission::Wait));
    }

    #[test]
    fn congestion_starts_at_half_and_its_end_is_reported_once() {
        let mut m = Mailboxes::new(4, usize::MAX);
        let a = Address::local("w");
        m.insert(a.clone());
        assert_eq!(m.admit(&a, false, 1, ROOM), Ok(Admission::Taken));
        assert!(!m.is_congested(&a));
        assert_eq!(m.admit(&a, false, 1, ROOM), Ok(Admission::Taken));
        assert!(m.is_congested(&a));
        assert!(m.consumed(&a));
        assert!(!m.consumed(&a));
        assert!(!m.is_congested(&a));
        assert_eq!(m.admit(&a, false, 1, ROOM), Ok(Admission::Taken));
        assert_eq!(m.admit(&a, false, 1, ROOM), Ok(Admission::Taken));
        assert_eq!(m.remove(&a), Some(true), "removed while congested");
        assert_eq!(m.remove(&a), None);
        assert!(!m.consumed(&a));
    }

    #[test]
    fn a_mailbox_of_no_capacity_refuses_everything() {
        let (mut m, a) = full(0);
        assert!(matches!(
            m.admit(&a, true, 1, ROOM),
            Err(NodeError::MailboxFull { limit: 0, .. })
        ));
    }

    #[test]
    fn bytes_fill_a_mailbox_too_and_come_back_in_order() {
        let mut m = Mailboxes::new(100, 250);
        let a = Address::local("w");
        m.insert(a.clone());
        assert_eq!(m.admit(&a, false, 100, ROOM), Ok(Admission::Taken));
        assert_eq!(m.admit(&a, false, 150, ROOM), Ok(Admission::Taken));
        assert_eq!(m.bytes(), 250);
        assert!(!m.has_room(&a, 1, ROOM));
        assert!(matches!(
            m.admit(&a, false, 1, ROOM),
            Err(NodeError::MemoryBudget {
                share: BudgetShare::Mailbox(_),
                needed: 1,
                in_use: 250,
                limit: 250
            })
        ));
        assert_eq!(m.admit(&a, true, 1, ROOM), Ok(Admission::Wait));
        // The first delivered is the first consumed: 100 bytes come back.
        let _ = m.consumed(&a);
        assert_eq!(m.bytes(), 150);
        assert!(m.has_room(&a, 100, ROOM));
        assert!(!m.has_room(&a, 101, ROOM));
        let _ = m.consumed(&a);
        assert_eq!(m.bytes(), 0);
        // An empty mailbox takes a message larger than its share.
        assert_eq!(m.admit(&a, false, 1000, ROOM), Ok(Admission::Taken));
        assert_eq!(m.remove(&a), Some(false));
        assert_eq!(m.bytes(), 0, "a removed mailbox's bytes no longer count");
    }

    #[test]
    fn the_node_budget_refuses_local_senders_and_makes_connections_wait() {
        let mut m = Mailboxes::new(100, usize::MAX);
        let a = Address::local("w");
        m.insert(a.clone());
        let tight = Budget {
            in_use: 90,
            limit: 100,
        };
        assert_eq!(m.admit(&a, false, 10, tight), Ok(Admission::Taken));
        assert!(!m.has_room(&a, 11, tight));
        assert!(matches!(
            m.admit(&a, false, 11, tight),
            Err(NodeError::MemoryBudget {
                share: BudgetShare::Node,
                needed: 11,
                in_use: 90,
                limit: 100
            })
        ));
        assert_eq!(m.admit(&a, true, 11, tight), Ok(Admission::Wait));
        assert_eq!(m.unread(&a), Some(1));
        assert_eq!(m.bytes(), 10);
    }
}
