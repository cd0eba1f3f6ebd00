//! One stream connection as the node core sees it.

use std::collections::VecDeque;

use crate::framing::FrameDecoder;
use crate::routing::Address;

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
}

impl Connection {
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
        }
    }
}
