//! A connection's deadlines: the stages a peer has not authenticated (first frame,
//! a frame left unfinished, idleness before any authenticated record), the drain after
//! a half-close, and the keepalive check; which has come, and why it closed the
//! connection.

use std::time::{Duration, Instant};

use super::{Connection, Direction};

/// Why a connection's deadline closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// No preamble and first frame within `first_frame_timeout`.
    FirstFrame,
    /// A preamble or frame begun and not finished within `frame_timeout`.
    PartialFrame,
    /// An unproven incoming connection received nothing for `unproven_idle_timeout`.
    Idle,
    /// Not a close: nothing was sent on the open connection for a keepalive interval,
    /// so a keepalive is due.
    Keepalive,
    /// The peer stopped sending, and what was queued for it was not written within
    /// `frame_timeout`.
    Draining,
}

impl Expired {
    pub(crate) fn reason(self, timeouts: &Timeouts) -> String {
        match self {
            Expired::FirstFrame => format!(
                "no preamble and first frame within {:?}",
                timeouts.first_frame
            ),
            Expired::PartialFrame => {
                format!("a frame left unfinished for {:?}", timeouts.frame)
            }
            Expired::Idle => format!(
                "nothing received for {:?} on a connection that authenticated nothing",
                timeouts.idle
            ),
            Expired::Keepalive => format!("nothing sent for {:?}", timeouts.keepalive),
            Expired::Draining => format!(
                "the peer stopped sending, and what was queued for it was not written within {:?}",
                timeouts.frame
            ),
        }
    }
}

/// The deadlines of unauthenticated stages, and how often an open connection that
/// carries nothing gets a keepalive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) first_frame: Duration,
    pub(crate) frame: Duration,
    pub(crate) idle: Duration,
    pub(crate) keepalive: Duration,
}

/// When the keepalive check after one at `now` comes: none for a zero interval (or
/// one too long to represent), which turns keepalives off.
pub(super) fn keepalive_after(now: Instant, interval: Duration) -> Option<Instant> {
    if interval.is_zero() {
        None
    } else {
        now.checked_add(interval)
    }
}

/// The deadline of `conn` as its state says: the soonest of its first-frame, partial
/// frame and (unproven incoming) idle deadlines, none of them while the node paused
/// it, and its keepalive check. A deadline too far to represent is none.
pub(super) fn deadline(conn: &Connection, timeouts: &Timeouts) -> Option<Instant> {
    if let Some(since) = conn.read_closed {
        // The peer sends nothing more: only the drain is timed.
        return since.checked_add(timeouts.frame);
    }
    let peer = peer_deadline(conn, timeouts);
    [peer, conn.keepalive_at].into_iter().flatten().min()
}

/// The soonest deadline of what the peer must do, none while the node paused it.
fn peer_deadline(conn: &Connection, timeouts: &Timeouts) -> Option<Instant> {
    if conn.stall.is_some() {
        return None;
    }
    let idle = (conn.direction == Direction::Incoming && !conn.proven)
        .then(|| conn.last_received.checked_add(timeouts.idle))
        .flatten();
    let partial = conn
        .partial_since
        .and_then(|since| since.checked_add(timeouts.frame));
    [conn.first_frame_due, partial, idle]
        .into_iter()
        .flatten()
        .min()
}

/// Which of `conn`'s deadlines has come at `now`, if one has: the peer's first.
pub(super) fn expiry(conn: &Connection, timeouts: &Timeouts, now: Instant) -> Option<Expired> {
    let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
    if let Some(since) = conn.read_closed {
        return due(since.checked_add(timeouts.frame)).then_some(Expired::Draining);
    }
    if conn.stall.is_some() {
        return due(conn.keepalive_at).then_some(Expired::Keepalive);
    }
    if due(conn.first_frame_due) {
        Some(Expired::FirstFrame)
    } else if due(conn
        .partial_since
        .and_then(|s| s.checked_add(timeouts.frame)))
    {
        Some(Expired::PartialFrame)
    } else if conn.direction == Direction::Incoming
        && !conn.proven
        && due(conn.last_received.checked_add(timeouts.idle))
    {
        Some(Expired::Idle)
    } else if due(conn.keepalive_at) {
        Some(Expired::Keepalive)
    } else {
        None
    }
}
