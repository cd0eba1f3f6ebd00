//! What a channel end reports, and why a channel closed.

use crate::identity::Identifier;
use crate::message::TransportMessage;

use super::ChannelError;

/// Why a channel was closed, as carried in a close record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The application closed it.
    Normal,
    /// The responder refused the initiator's identity.
    Refused,
    /// The sender's counter was exhausted.
    CounterExhausted,
    /// The sender heard nothing from its peer for too long, or a probe went
    /// unanswered: it gave the peer up.
    Unresponsive,
    /// A code this implementation does not know.
    Other(u8),
}

impl CloseReason {
    pub(super) fn code(self) -> u8 {
        match self {
            CloseReason::Normal => 0,
            CloseReason::Refused => 1,
            CloseReason::CounterExhausted => 2,
            CloseReason::Unresponsive => 3,
            CloseReason::Other(code) => code,
        }
    }

    pub(super) fn from_code(code: u8) -> Self {
        match code {
            0 => CloseReason::Normal,
            1 => CloseReason::Refused,
            2 => CloseReason::CounterExhausted,
            3 => CloseReason::Unresponsive,
            other => CloseReason::Other(other),
        }
    }
}

/// What a channel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Messages travel by value, routes inline (no allocation per route); boxing the large
// variant would put an allocation back on every message.
#[allow(clippy::large_enum_variant)]
pub enum ChannelEvent {
    /// Both sides have verified each other and the policy accepted the peer: messages
    /// can flow. Reported once.
    Established {
        /// The peer's verified identifier.
        peer: Identifier,
    },
    /// A message from the peer, authenticated and decrypted. Its onward route is where
    /// it goes next on this node.
    Received(TransportMessage),
    /// The channel was closed in an orderly way.
    Closed {
        /// The reason given.
        reason: CloseReason,
        /// Whether the peer closed it (with an authenticated close record).
        by_peer: bool,
    },
    /// The channel failed, and no call returned the error: its handshake timed out, or
    /// its peer fell silent or did not answer a probe.
    /// (An error that ends the channel during a call is returned by that call instead.)
    Failed(ChannelError),
}

/// How far a handshake got before it timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeStage {
    /// The initiator sent its hello (perhaps several times) and no response came.
    HelloSent,
    /// The responder sent its response and no finish came.
    ResponseSent,
    /// The initiator sent its finish and the responder's verdict never came.
    FinishSent,
}

impl std::fmt::Display for HandshakeStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandshakeStage::HelloSent => "no response to the hello",
            HandshakeStage::ResponseSent => "no finish after the response",
            HandshakeStage::FinishSent => "no verdict after the finish",
        })
    }
}

/// Which end of the handshake a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRole {
    /// It sent the hello.
    Initiator,
    /// It answered a hello that arrived at a listener.
    Responder,
}
