//! One stream connection as the node core sees it.

use std::collections::VecDeque;

use crate::framing::FrameDecoder;
use crate::message::TransportMessage;
use crate::routing::Address;

use std::time::Instant;

/// Whether the node opened the connection or accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This node connected to a listening peer.
    Outgoing,
    /// A peer connected to this node's listener.
    Incoming,
}

/// A frame waiting for its connection to open, and who sent it.
pub(crate) struct Queued {
    pub(crate) frame: Vec<u8>,
    pub(crate) sender: Option<Address>,
}

/// A transmit handed to the transport and not yet wholly reported written.
pub(crate) struct InFlight {
    /// Its bytes not yet reported written.
    pub(crate) remaining: usize,
    /// `Some(sender)` if it is a frame carrying a message, `None` for the preamble.
    pub(crate) message: Option<Option<Address>>,
}

/// A message from a connection that found its mailbox full, and the messages routed
/// after it from the same frame: they wait, in order, and the connection is not read
/// until they are through or `deadline` passes.
pub(crate) struct Stall {
    /// The full mailbox and the message for it.
    pub(crate) address: Address,
    pub(crate) message: TransportMessage,
    pub(crate) rest: VecDeque<TransportMessage>,
    /// When the waiting message is given up as undeliverable.
    pub(crate) deadline: Instant,
}

pub(crate) enum State {
    /// Waiting for the transport to connect; frames wait here.
    Connecting(VecDeque<Queued>),
    /// Bytes flow.
    Open,
}

pub(crate) struct Connection {
    pub(crate) peer: String,
    pub(crate) direction: Direction,
    /// The local address that leads back over this connection.
    pub(crate) alias: Address,
    pub(crate) state: State,
    pub(crate) decoder: FrameDecoder,
    /// Bytes handed to the transport and not yet reported written.
    pub(crate) backlog: usize,
    /// The transmits those bytes belong to, oldest first, so that the senders of
    /// messages never written can be told when the connection dies.
    pub(crate) in_flight: VecDeque<InFlight>,
    /// Set while what this connection delivered waits for room: reading pauses.
    pub(crate) stall: Option<Stall>,
}

impl Connection {
    /// Accounts for `n` more bytes written, oldest transmit first.
    pub(crate) fn written(&mut self, mut n: usize) {
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

    pub(crate) fn new(
        peer: String,
        direction: Direction,
        alias: Address,
        max_frame_len: u32,
    ) -> Self {
        let state = match direction {
            Direction::Outgoing => State::Connecting(VecDeque::new()),
            Direction::Incoming => State::Open,
        };
        Self {
            peer,
            direction,
            alias,
            state,
            decoder: FrameDecoder::new(max_frame_len),
            backlog: 0,
            in_flight: VecDeque::new(),
            stall: None,
        }
    }
}
