//! The node core's connections: one table that opens, accepts, queues bytes on,
//! accounts for and drops them, and keeps their invariants itself. A connection is a
//! stream of a stream transport, the way to one peer of a message transport, or the
//! inbox of a message transport (see [`TransportKind`]).
//!
//! Invariants, checked by the unit tests (`connection_tests.rs`) after every step:
//!
//! - a connection's `backlog` is the sum of the unwritten bytes of its in-flight
//!   transmits;
//! - an outgoing connection is in `outgoing` under the address it was opened for
//!   exactly while it is in the table, and no other is;
//! - a connection is marked congested exactly when its queue (while connecting) or
//!   backlog (once open) is at half its limit or more;
//! - `timers` holds exactly one entry per connection with a deadline, and it is that
//!   connection's deadline; `per_source` counts the incoming connections of each
//!   source address;
//! - `charged` is the sum of the connections' charges, `charged_unproven` that of the
//!   unproven incoming ones, and each connection's charge is what it holds: its
//!   backlog, the frames it queued while opening, its decoder's bytes and its stalled
//!   messages (see [`super::budget`]).
//!
//! Deadlines guard the stages a peer has not authenticated: an incoming connection
//! must send its preamble and a first frame within `first_frame_timeout`; part of a
//! preamble or frame must be followed by the rest within `frame_timeout`; and an
//! incoming connection that has not carried an authenticated channel record is closed
//! after `unproven_idle_timeout` without receiving anything. A connection whose
//! reading the node paused has no deadline: the wait is the node's, not the peer's.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use crate::framing::FrameDecoder;
use crate::message::TransportMessage;
use crate::routing::{Address, Route};

use super::{ConnectionId, NodeConfig, NodeError, TransportKind};

/// Whether the node opened the connection or accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This node connected to a listening peer.
    Outgoing,
    /// A peer connected to this node's listener.
    Incoming,
}

/// A local sender to tell of a frame's loss, with the id of the send it came from
/// (0: none given).
pub(crate) type Tagged = (Address, u64);

/// A frame waiting for its connection to open, and who sent it.
struct Queued {
    frame: Vec<u8>,
    sender: Option<Tagged>,
    /// For a message from another node: its return route, to report its loss along
    /// if the connection never opens.
    back: Option<Route>,
}

/// A transmit handed to the transport and not yet wholly reported written.
struct InFlight {
    /// Its bytes not yet reported written.
    remaining: usize,
    /// `Some(sender)` if it is a frame carrying a message, `None` for the preamble.
    message: Option<Option<Tagged>>,
}

/// A message from a connection that found its mailbox full, and the messages routed
/// after it from the same frame: they wait, in order, and the connection is not read
/// until they are through or `deadline` passes.
pub(crate) struct Stall {
    /// The full mailbox.
    pub(crate) address: Address,
    /// The message waiting for it.
    pub(crate) message: TransportMessage,
    /// Where the waiting message came from.
    pub(crate) origin: super::Origin,
    /// What was routed after it, still to route, each with where it came from.
    pub(crate) rest: VecDeque<(TransportMessage, super::Origin)>,
    /// When the waiting message is given up as undeliverable (`None`: never, for a
    /// `max_stall` beyond what an `Instant` can hold).
    pub(crate) deadline: Option<Instant>,
    /// Encoded bytes of the message and the rest, held while they wait.
    pub(crate) bytes: usize,
}

enum State {
    /// Waiting for the transport to connect; frames wait here.
    Connecting(VecDeque<Queued>),
    /// Bytes flow.
    Open,
}

/// One connection as the node core sees it.
pub(crate) struct Connection {
    /// Its peer, for errors and logs: `host:port` for TCP, the address's text for
    /// other transports, the inbox's description for an inbox.
    peer: String,
    /// For an outgoing connection, the address it was opened for.
    remote: Option<Address>,
    kind: TransportKind,
    /// Whether it is a message transport's inbox: units from many peers arrive on it.
    inbox: bool,
    direction: Direction,
    /// The local address that leads back over this connection.
    alias: Address,
    state: State,
    /// Decodes what the peer sends.
    pub(crate) decoder: FrameDecoder,
    /// Bytes handed to the transport and not yet reported written.
    backlog: usize,
    /// The transmits those bytes belong to, oldest first, so that the senders of
    /// messages never written can be told when the connection dies.
    in_flight: VecDeque<InFlight>,
    /// Whether senders should wait before adding to it (see [`ConnectionTable`]).
    congested: bool,
    /// Set while what this connection delivered waits for room: reading pauses.
    pub(crate) stall: Option<Stall>,
    /// Whether the caller was last told to pause reading (`Output::PauseReading`).
    pub(crate) reading_paused: bool,
    /// For an incoming connection, its source address (the peer's host, without port).
    source: Option<String>,
    /// Whether a channel record that arrived on it authenticated.
    proven: bool,
    /// Until its first whole non-empty frame: when an incoming connection must have
    /// sent it.
    first_frame_due: Option<Instant>,
    /// When the preamble or frame the decoder is part way through began to arrive.
    partial_since: Option<Instant>,
    /// When bytes last arrived (or, for a new connection, when it opened).
    last_received: Instant,
    /// The deadline in `ConnectionTable::timers`, if any.
    deadline: Option<Instant>,
    /// While open: when to check whether a keepalive is due.
    keepalive_at: Option<Instant>,
    /// Whether anything was handed to the transport since the last keepalive check.
    sent_recently: bool,
    /// Bytes of the frames queued while connecting.
    queued_bytes: usize,
    /// When it last carried a message, either way, in the table's sequence of such
    /// events (not a time: it only orders connections by recent use).
    activity: u64,
    /// What it is charged against the memory budget, and whether that was charged to
    /// the unproven share too.
    charge: (usize, bool),
    /// When the peer stopped sending (end of stream), if it has: the connection stays
    /// until what is queued for the peer is written, then closes.
    read_closed: Option<Instant>,
}

impl Connection {
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    pub(crate) fn direction(&self) -> Direction {
        self.direction
    }

    /// Whether it is a message transport's inbox.
    pub(crate) fn is_inbox(&self) -> bool {
        self.inbox
    }

    pub(crate) fn alias(&self) -> &Address {
        &self.alias
    }

    pub(crate) fn backlog(&self) -> usize {
        self.backlog
    }

    pub(crate) fn is_congested(&self) -> bool {
        self.congested
    }

    /// Whether a channel record that arrived on it authenticated.
    pub(crate) fn is_proven(&self) -> bool {
        self.proven
    }

    /// Who sent what arrives on it, for limits per source: the source address of an
    /// incoming connection, the peer of an outgoing one.
    pub(crate) fn source(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.peer)
    }

    /// Whether its peer has stopped sending (end of stream).
    pub(crate) fn is_read_closed(&self) -> bool {
        self.read_closed.is_some()
    }

    /// Whether it is an incoming connection that has authenticated nothing.
    pub(crate) fn is_unproven_incoming(&self) -> bool {
        self.direction == Direction::Incoming && !self.proven
    }

    /// The bytes it holds, as the memory budget counts them.
    fn holds(&self) -> usize {
        let queued = match &self.state {
            State::Connecting(queue) => queue.len(),
            State::Open => 0,
        };
        let transmits = self.in_flight.len().saturating_add(queued);
        self.backlog
            .saturating_add(transmits.saturating_mul(super::budget::TRANSMIT_OVERHEAD))
            .saturating_add(self.queued_bytes)
            .saturating_add(self.decoder.buffered_len())
            .saturating_add(self.stall.as_ref().map_or(0, |s| s.bytes))
    }

    /// Accounts for a transmit of `len` bytes.
    fn account(&mut self, len: usize, message: Option<Option<Tagged>>) {
        self.sent_recently = true;
        self.backlog = self.backlog.saturating_add(len);
        self.in_flight.push_back(InFlight {
            remaining: len,
            message,
        });
    }

    /// Accounts for `n` more bytes written, oldest transmit first.
    fn written(&mut self, mut n: usize) {
        self.backlog = self.backlog.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.in_flight.front_mut() else {
                break;
            };
            let done = front.remaining.min(n);
            front.remaining -= done;
            n -= done;
            if front.remaining == 0 {
                let _ = self.in_flight.pop_front();
            }
        }
    }
}

/// What went with a dropped connection.
pub(crate) struct Dropped {
    pub(crate) peer: String,
    pub(crate) alias: Address,
    /// Senders of frames handed to the transport and never reported written.
    pub(crate) unwritten: Vec<Option<Tagged>>,
    /// Senders of frames that waited for the connection to open, if it never did,
    /// each with the return route to report it along (a message from another node).
    pub(crate) unsent: Option<Vec<(Option<Tagged>, Option<Route>)>>,
    /// Messages that waited for room on its behalf.
    pub(crate) stall: Option<Stall>,
    /// Whether senders were waiting for it to drain.
    pub(crate) was_congested: bool,
}

/// How an outgoing connection's peer is named in errors and logs: `host:port` for TCP
/// (as it always was), the address's text otherwise.
pub(crate) fn describe(remote: &Address) -> String {
    match remote.value_str() {
        Some(peer) if remote.transport() == crate::routing::TransportType::TCP => peer.to_owned(),
        _ => remote.to_string(),
    }
}

/// The source address of a peer string `host:port` (IPv6 hosts in brackets): the host.
fn source_of(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => peer,
    }
}

/// What [`ConnectionTable::send`] did with a frame.
#[derive(Debug)]
pub(crate) enum Sent {
    /// The connection is open: write this (already accounted for).
    Transmit(Vec<u8>),
    /// The connection is opening: the frame waits.
    Queued,
}

/// Every connection of a node core, with its limits.
pub(crate) struct ConnectionTable {
    connections: BTreeMap<ConnectionId, Connection>,
    /// Outgoing connections by peer, so that messages to one peer share one.
    outgoing: BTreeMap<Address, ConnectionId>,
    next_id: u64,
    max_outgoing: usize,
    max_incoming: usize,
    max_per_source: usize,
    /// Incoming connections per source address.
    per_source: BTreeMap<String, usize>,
    /// Every connection's deadline, soonest first.
    timers: BTreeSet<(Instant, ConnectionId)>,
    timeouts: Timeouts,
    max_backlog: usize,
    max_queued: usize,
    max_frame_len: u32,
    /// The sum of the connections' charges against the memory budget.
    charged: usize,
    /// The part of `charged` for unproven incoming connections.
    charged_unproven: usize,
    /// The last activity number given to a connection.
    activity: u64,
    /// How many of the connections are inboxes.
    inboxes: usize,
}

impl ConnectionTable {
    pub(crate) fn new(config: &NodeConfig) -> Self {
        Self {
            connections: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            next_id: 0,
            max_outgoing: config.max_outgoing_connections,
            max_incoming: config.max_incoming_connections,
            max_per_source: config.max_incoming_per_source,
            per_source: BTreeMap::new(),
            timers: BTreeSet::new(),
            timeouts: Timeouts {
                first_frame: config.first_frame_timeout,
                frame: config.frame_timeout,
                idle: config.unproven_idle_timeout,
                keepalive: config.keepalive_interval,
            },
            max_backlog: config.max_connection_backlog,
            max_queued: config.max_queued_while_connecting,
            max_frame_len: config.max_frame_len,
            charged: 0,
            charged_unproven: 0,
            activity: 0,
            inboxes: 0,
        }
    }

    /// Bytes all connections hold, as the memory budget counts them.
    pub(crate) fn charged(&self) -> usize {
        self.charged
    }

    /// The part of [`charged`](Self::charged) held by unproven incoming connections.
    pub(crate) fn charged_unproven(&self) -> usize {
        self.charged_unproven
    }

    /// The open outgoing connection unused for longest that holds nothing (no unsent
    /// bytes, nothing waiting for room): the one to close when a new one is needed
    /// and outgoing connections are full.
    pub(crate) fn idlest_outgoing(&self) -> Option<ConnectionId> {
        self.outgoing
            .values()
            .filter_map(|id| Some((*id, self.connections.get(id)?)))
            .filter(|(_, c)| matches!(c.state, State::Open) && c.backlog == 0 && c.stall.is_none())
            .min_by_key(|(_, c)| c.activity)
            .map(|(id, _)| id)
    }

    /// Marks connection `id` as just used to carry a message.
    fn touch(&mut self, id: ConnectionId) {
        self.activity += 1;
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.activity = self.activity;
        }
    }

    /// The incoming connection that has authenticated nothing and holds the most bytes,
    /// if one holds any.
    pub(crate) fn largest_unproven(&self) -> Option<ConnectionId> {
        self.connections
            .iter()
            .filter(|(_, c)| c.charge.1 && c.charge.0 > 0)
            .max_by_key(|(_, c)| c.charge.0)
            .map(|(id, _)| *id)
    }

    /// Brings connection `id`'s charge against the memory budget up to date.
    pub(crate) fn recharge(&mut self, id: ConnectionId) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        let charge = (conn.holds(), conn.is_unproven_incoming());
        let (old, old_unproven) = std::mem::replace(&mut conn.charge, charge);
        self.charged = self.charged.saturating_sub(old).saturating_add(charge.0);
        if old_unproven {
            self.charged_unproven = self.charged_unproven.saturating_sub(old);
        }
        if charge.1 {
            self.charged_unproven = self.charged_unproven.saturating_add(charge.0);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether this node may dial no more connections.
    pub(crate) fn outgoing_full(&self) -> bool {
        self.outgoing.len() >= self.max_outgoing
    }

    /// The incoming connections (inboxes, a node's own, are not counted).
    pub(crate) fn incoming_len(&self) -> usize {
        self.connections.len() - self.outgoing.len() - self.inboxes
    }

    /// Whether an incoming connection from `peer` must be refused for the limit per
    /// source.
    pub(crate) fn source_full(&self, peer: &str) -> bool {
        self.per_source
            .get(source_of(peer))
            .is_some_and(|n| *n >= self.max_per_source)
    }

    /// Whether the incoming connections are at their limit.
    pub(crate) fn incoming_full(&self) -> bool {
        self.incoming_len() >= self.max_incoming
    }

    /// The oldest incoming connection that has not carried an authenticated record:
    /// the one to close to make room.
    pub(crate) fn oldest_unproven_incoming(&self) -> Option<ConnectionId> {
        // Ids grow with time, so the first match is the oldest.
        self.connections
            .iter()
            .find(|(_, c)| c.direction == Direction::Incoming && !c.proven)
            .map(|(id, _)| *id)
    }

    /// The deadlines in force.
    pub(crate) fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The soonest connection deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The connections whose deadline has come, with why, soonest first.
    pub(crate) fn expired(&self, now: Instant) -> Vec<(ConnectionId, Expired)> {
        self.timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .filter_map(|(_, id)| {
                let conn = self.connections.get(id)?;
                Some((*id, expiry(conn, &self.timeouts, now)?))
            })
            .collect()
    }

    /// Bytes arrived on `id` at `now`, and `frames` whole non-empty frames were
    /// decoded from them: its deadlines move on.
    pub(crate) fn received(&mut self, id: ConnectionId, now: Instant, frames: bool) {
        if frames {
            self.touch(id);
        }
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.last_received = now;
            if frames {
                conn.first_frame_due = None;
            }
            conn.partial_since = match (conn.decoder.in_frame(), conn.partial_since, frames) {
                (false, _, _) => None,
                // A frame ended and another began in these bytes.
                (true, _, true) | (true, None, _) => Some(now),
                (true, Some(since), false) => Some(since),
            };
        }
        self.rearm(id);
    }

    /// Reading `id` resumed at `now` after a pause the node asked for: the peer's
    /// clocks start again from now.
    pub(crate) fn resumed(&mut self, id: ConnectionId, now: Instant) {
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.last_received = now;
            conn.first_frame_due = conn
                .first_frame_due
                .and_then(|_| now.checked_add(self.timeouts.first_frame));
            conn.partial_since = conn.partial_since.map(|_| now);
        }
        self.rearm(id);
    }

    /// A channel record that arrived on `id` authenticated: it is no longer the first
    /// to go when incoming connections are full, and it may stay idle.
    pub(crate) fn proven(&mut self, id: ConnectionId) {
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.proven = true;
        }
        self.rearm(id);
    }

    /// Puts connection `id`'s deadline, as its state says now, in `timers`, and its
    /// charge against the memory budget up to date.
    pub(crate) fn rearm(&mut self, id: ConnectionId) {
        self.recharge(id);
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        let deadline = deadline(conn, &self.timeouts);
        if deadline != conn.deadline {
            if let Some(old) = conn.deadline {
                self.timers.remove(&(old, id));
            }
            if let Some(new) = deadline {
                self.timers.insert((new, id));
            }
            conn.deadline = deadline;
        }
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<&Connection> {
        self.connections.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ConnectionId) -> Option<&mut Connection> {
        self.connections.get_mut(&id)
    }

    /// The open or opening connection to `peer` that this node dialled, if any.
    pub(crate) fn outgoing(&self, peer: &Address) -> Option<ConnectionId> {
        self.outgoing.get(peer).copied()
    }

    /// A fresh id (also for an incoming connection refused at once).
    pub(crate) fn next_id(&mut self) -> ConnectionId {
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Takes an incoming connection under `id`, open at once; returns the preamble's
    /// bytes, accounted for, to transmit.
    pub(crate) fn accept(
        &mut self,
        id: ConnectionId,
        peer: String,
        alias: Address,
        preamble: &[u8],
        now: Instant,
    ) -> Vec<u8> {
        let source = source_of(&peer).to_owned();
        let mut conn =
            self.connection(peer, TransportKind::Stream, Direction::Incoming, alias, now);
        conn.account(preamble.len(), None);
        conn.first_frame_due = now.checked_add(self.timeouts.first_frame);
        conn.keepalive_at = keepalive_after(now, self.timeouts.keepalive);
        *self.per_source.entry(source.clone()).or_insert(0) += 1;
        conn.source = Some(source);
        self.connections.insert(id, conn);
        self.rearm(id);
        preamble.to_vec()
    }

    /// Takes the inbox of a message transport under `id`: open at once, always
    /// trusted as the node's own (no deadlines, no keepalives, never evicted), and not
    /// counted among incoming connections.
    pub(crate) fn open_inbox(
        &mut self,
        id: ConnectionId,
        description: String,
        alias: Address,
        now: Instant,
    ) {
        let mut conn = self.connection(
            description,
            TransportKind::Message,
            Direction::Incoming,
            alias,
            now,
        );
        conn.inbox = true;
        conn.proven = true;
        self.connections.insert(id, conn);
        self.inboxes += 1;
    }

    /// Starts an outgoing connection to `remote`, of a transport of `kind`; frames
    /// sent to it wait until [`connected`](Self::connected).
    pub(crate) fn open(
        &mut self,
        remote: Address,
        kind: TransportKind,
        alias: Address,
        now: Instant,
    ) -> ConnectionId {
        let id = self.next_id();
        self.outgoing.insert(remote.clone(), id);
        let mut conn = self.connection(describe(&remote), kind, Direction::Outgoing, alias, now);
        conn.remote = Some(remote);
        self.connections.insert(id, conn);
        id
    }

    fn connection(
        &self,
        peer: String,
        kind: TransportKind,
        direction: Direction,
        alias: Address,
        now: Instant,
    ) -> Connection {
        let state = match direction {
            Direction::Outgoing => State::Connecting(VecDeque::new()),
            Direction::Incoming => State::Open,
        };
        Connection {
            peer,
            remote: None,
            kind,
            inbox: false,
            direction,
            alias,
            state,
            decoder: FrameDecoder::new(self.max_frame_len),
            backlog: 0,
            in_flight: VecDeque::new(),
            congested: false,
            stall: None,
            reading_paused: false,
            source: None,
            proven: false,
            first_frame_due: None,
            partial_since: None,
            last_received: now,
            deadline: None,
            keepalive_at: None,
            sent_recently: false,
            queued_bytes: 0,
            activity: 0,
            charge: (0, false),
            read_closed: None,
        }
    }

    /// An outgoing connection opened: returns what to transmit, in order (the
    /// preamble of a stream, then the frames that waited), all accounted for, and
    /// whether the connection stopped being congested. `None` if it is unknown or
    /// already open.
    pub(crate) fn connected(
        &mut self,
        id: ConnectionId,
        preamble: &[u8],
        now: Instant,
    ) -> Option<(Vec<Vec<u8>>, bool)> {
        let limits = self.limits();
        let conn = self.connections.get_mut(&id)?;
        let State::Connecting(queue) = std::mem::replace(&mut conn.state, State::Open) else {
            return None;
        };
        let mut transmits = Vec::with_capacity(1 + queue.len());
        // A message transport has no stream to keep alive and no preamble.
        if conn.kind == TransportKind::Stream {
            conn.keepalive_at = keepalive_after(now, self.timeouts.keepalive);
            conn.account(preamble.len(), None);
            transmits.push(preamble.to_vec());
        }
        for queued in queue {
            conn.account(queued.frame.len(), Some(queued.sender));
            transmits.push(queued.frame);
        }
        conn.queued_bytes = 0;
        let relieved = refresh(conn, limits);
        self.rearm(id);
        Some((transmits, relieved))
    }

    /// Hands a frame from `sender` to connection `id`: queued while it opens (with
    /// `back`, the return route of a message from another node, kept to report its
    /// loss), or accounted for and returned to transmit.
    ///
    /// # Errors
    ///
    /// [`NodeError::ConnectionBacklogFull`] at a limit (nothing changes then);
    /// [`NodeError::ConnectionClosed`] if the connection is gone.
    pub(crate) fn send(
        &mut self,
        id: ConnectionId,
        frame: Vec<u8>,
        sender: Option<&Address>,
        back: Option<&Route>,
        send: u64,
    ) -> Result<Sent, NodeError> {
        let limits = self.limits();
        let conn = self
            .connections
            .get_mut(&id)
            .ok_or_else(|| NodeError::ConnectionClosed {
                peer: id.to_string(),
                reason: "gone".into(),
            })?;
        let sent = match &mut conn.state {
            State::Connecting(queue) => {
                let queued = conn.queued_bytes;
                if queue.len() >= limits.max_queued {
                    return Err(NodeError::ConnectionBacklogFull {
                        peer: conn.peer.clone(),
                        queued,
                        limit: limits.max_queued,
                    });
                }
                // The byte limit holds while connecting too: the queue becomes the
                // connection's backlog the moment it opens.
                if queued.saturating_add(frame.len()) > limits.max_backlog {
                    return Err(NodeError::ConnectionBacklogFull {
                        peer: conn.peer.clone(),
                        queued,
                        limit: limits.max_backlog,
                    });
                }
                conn.queued_bytes += frame.len();
                queue.push_back(Queued {
                    frame,
                    sender: sender.map(|a| (a.clone(), send)),
                    back: back.cloned(),
                });
                Sent::Queued
            }
            State::Open => {
                if conn.backlog.saturating_add(frame.len()) > limits.max_backlog {
                    return Err(NodeError::ConnectionBacklogFull {
                        peer: conn.peer.clone(),
                        queued: conn.backlog,
                        limit: limits.max_backlog,
                    });
                }
                conn.account(frame.len(), Some(sender.map(|a| (a.clone(), send))));
                Sent::Transmit(frame)
            }
        };
        let _ = refresh(conn, limits);
        self.touch(id);
        self.recharge(id);
        Ok(sent)
    }

    /// `n` bytes of earlier transmits on `id` were written. Returns whether the
    /// connection stopped being congested.
    pub(crate) fn written(&mut self, id: ConnectionId, n: usize) -> bool {
        let limits = self.limits();
        match self.connections.get_mut(&id) {
            Some(conn) => {
                conn.written(n);
                let relieved = refresh(conn, limits);
                self.recharge(id);
                relieved
            }
            None => false,
        }
    }

    /// The peer of connection `id` stopped sending at `now` (end of stream). Returns
    /// whether the connection may close at once: it is open and nothing queued for
    /// the peer or waiting for room is left. Otherwise it stays, unread, until that is
    /// so ([`is_drained`](Self::is_drained)) or `frame_timeout` passes.
    pub(crate) fn read_closed(&mut self, id: ConnectionId, now: Instant) -> bool {
        let Some(conn) = self.connections.get_mut(&id) else {
            return false;
        };
        conn.read_closed.get_or_insert(now);
        conn.partial_since = None;
        conn.first_frame_due = None;
        self.rearm(id);
        self.is_drained(id)
    }

    /// Whether connection `id`'s peer stopped sending and everything for it is written.
    pub(crate) fn is_drained(&self, id: ConnectionId) -> bool {
        self.connections.get(&id).is_some_and(|conn| {
            conn.read_closed.is_some()
                && matches!(conn.state, State::Open)
                && conn.backlog == 0
                && conn.stall.is_none()
        })
    }

    /// Connection `id`'s keepalive check came at `now`: if nothing was handed to the
    /// transport since the last one, returns a keepalive (an empty frame), accounted
    /// for, to transmit. The next check is a keepalive interval on.
    pub(crate) fn keepalive(&mut self, id: ConnectionId, now: Instant) -> Option<Vec<u8>> {
        let interval = self.timeouts.keepalive;
        let conn = self.connections.get_mut(&id)?;
        conn.keepalive_at = keepalive_after(now, interval);
        // Bytes still waiting to be written will be heard first.
        let due = !conn.sent_recently && conn.backlog == 0;
        let keepalive = due.then(|| {
            let frame = vec![0; crate::framing::FRAME_HEADER_LEN];
            conn.account(frame.len(), None);
            frame
        });
        conn.sent_recently = false;
        self.rearm(id);
        keepalive
    }

    /// Forgets connection `id`, returning what went with it.
    pub(crate) fn remove(&mut self, id: ConnectionId) -> Option<Dropped> {
        let conn = self.connections.remove(&id)?;
        let (charge, unproven) = conn.charge;
        self.charged = self.charged.saturating_sub(charge);
        if unproven {
            self.charged_unproven = self.charged_unproven.saturating_sub(charge);
        }
        if let Some(remote) = &conn.remote {
            if self.outgoing.get(remote) == Some(&id) {
                self.outgoing.remove(remote);
            }
        }
        if conn.inbox {
            self.inboxes -= 1;
        }
        if let Some(deadline) = conn.deadline {
            self.timers.remove(&(deadline, id));
        }
        if let Some(source) = &conn.source {
            if let Some(n) = self.per_source.get_mut(source) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(source);
                }
            }
        }
        let unsent = match conn.state {
            State::Connecting(queue) => {
                Some(queue.into_iter().map(|q| (q.sender, q.back)).collect())
            }
            State::Open => None,
        };
        Some(Dropped {
            peer: conn.peer,
            alias: conn.alias,
            unwritten: conn
                .in_flight
                .into_iter()
                .filter_map(|f| f.message)
                .collect(),
            unsent,
            stall: conn.stall,
            was_congested: conn.congested,
        })
    }

    fn limits(&self) -> Limits {
        Limits {
            max_backlog: self.max_backlog,
            max_queued: self.max_queued,
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_backlog: usize,
    max_queued: usize,
}

/// Recomputes whether `conn` is congested; returns whether it just stopped being so.
fn refresh(conn: &mut Connection, limits: Limits) -> bool {
    let congested = match &conn.state {
        State::Connecting(queue) => queue.len() >= limits.max_queued / 2,
        State::Open => conn.backlog >= limits.max_backlog / 2,
    };
    let relieved = conn.congested && !congested;
    conn.congested = congested;
    relieved
}

mod deadlines;
use deadlines::{deadline, expiry, keepalive_after};
pub(crate) use deadlines::{Expired, Timeouts};

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
