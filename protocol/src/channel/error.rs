//! The secure channel layer's error type.

use crate::identity::Identifier;
use crate::message::MessageError;
use crate::noise::NoiseError;
use crate::random::RandomError;
use crate::report::Report;
use std::time::Duration;

use super::replay::ReplayError;
use super::HandshakeStage;

/// Everything that can go wrong in a secure channel.
///
/// Errors about one received record (a replay, a forgery, a malformed record once the
/// channel is established) reject that record only: the channel goes on. Errors during
/// the handshake, and those marked *fatal* below, end the channel. Each is reported
/// once: returned by the call that met it, or, for a handshake timeout, which no call
/// returns, as [`ChannelEvent::Failed`](super::ChannelEvent::Failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A record does not have the layout of its kind (wrong kind byte, wrong length).
    #[error("malformed channel record: {0}")]
    Malformed(&'static str),
    /// The initiator asked for a cipher suite this responder does not accept (fatal).
    #[error("cipher suite {0:#04x} is not accepted")]
    UnsupportedSuite(u8),
    /// The Noise handshake failed: a message was altered, or the peers disagree on
    /// prologue or suite (fatal).
    #[error("handshake failed: {0}")]
    Handshake(#[from] NoiseError),
    /// The peer's identity proof does not verify: its signature was not made by the
    /// identity it presents over this handshake (fatal).
    #[error("the peer's identity proof does not verify")]
    BadIdentityProof,
    /// The peer proved its identity, but the trust policy refuses it (fatal).
    #[error("peer identity {peer} is not trusted by the policy")]
    Untrusted {
        /// The identity that was refused.
        peer: Identifier,
    },
    /// The responder refused this initiator: its identity proof did not verify or its
    /// trust policy refused it (fatal; the refusal is authenticated).
    #[error("the responder refused this channel")]
    RefusedByPeer,
    /// The handshake did not finish before its deadline (fatal).
    #[error("the handshake did not finish within {after:?}: {stage}")]
    HandshakeTimeout {
        /// The handshake timeout.
        after: Duration,
        /// How far it got.
        stage: HandshakeStage,
    },
    /// A node on the route reported, during the handshake, that it could not deliver
    /// or forward a handshake record (fatal): the listener is not there, or the route
    /// to it is broken.
    #[error("the route to the peer failed: {report}")]
    RouteFailed {
        /// What the node reported.
        report: Box<Report>,
    },
    /// Nothing authenticated came from the peer for the idle timeout (fatal): it
    /// crashed, or the route to it is down.
    #[error("the peer is unresponsive: nothing heard from it for {silent_for:?}")]
    Unresponsive {
        /// How long it was silent.
        silent_for: Duration,
    },
    /// A node on the route reported that it could not reach the peer's end, and the
    /// peer did not answer a probe in time (fatal): the peer's node restarted or
    /// dropped the channel.
    #[error("the peer's end is gone: a node on the route reported {report}, and no answer to a probe came within {waited:?}")]
    PeerLost {
        /// What the node reported.
        report: Box<Report>,
        /// How long the probe waited.
        waited: Duration,
    },
    /// The record's counter was already received, or is older than the replay window.
    #[error("record {counter} rejected: {source}")]
    Replay {
        /// The record's counter.
        counter: u64,
        /// Why it was rejected.
        source: ReplayError,
    },
    /// The record's counter is so far ahead of what was received that its key
    /// generation cannot be derived.
    #[error("record {counter} is too far ahead of the newest record received")]
    TooFarAhead {
        /// The record's counter.
        counter: u64,
    },
    /// The record did not authenticate: it was forged, altered or belongs to another
    /// channel.
    #[error("record {counter} failed authentication")]
    Forged {
        /// The record's counter.
        counter: u64,
    },
    /// A record authenticated, but its plaintext does not decode.
    #[error("record {counter} has an invalid plaintext: {reason}")]
    BadPlaintext {
        /// The record's counter.
        counter: u64,
        /// What was wrong.
        reason: String,
    },
    /// The message to send is too large to fit in one record.
    #[error("message encodes to {len} bytes, a channel record carries at most {max}")]
    PlaintextTooLarge {
        /// Encoded length of the message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message to send breaks a transport message limit.
    #[error("message cannot be encoded: {0}")]
    Message(#[from] MessageError),
    /// Every counter this channel may use has been used (fatal).
    #[error("the channel's message counter is exhausted")]
    CounterExhausted,
    /// Application messages can be sent only once the channel is established.
    #[error("the channel is not established yet")]
    NotEstablished,
    /// The channel has ended.
    #[error("the channel is closed")]
    Closed,
    /// The random source failed (fatal).
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl ChannelError {
    /// Whether this error ends the channel, as opposed to rejecting one record or one
    /// send.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ChannelError::UnsupportedSuite(_)
                | ChannelError::Handshake(_)
                | ChannelError::BadIdentityProof
                | ChannelError::Untrusted { .. }
                | ChannelError::RefusedByPeer
                | ChannelError::HandshakeTimeout { .. }
                | ChannelError::RouteFailed { .. }
                | ChannelError::Unresponsive { .. }
                | ChannelError::PeerLost { .. }
                | ChannelError::CounterExhausted
                | ChannelError::Random(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_end_a_channel_are_fatal() {
        let fatal = [
            ChannelError::UnsupportedSuite(9),
            ChannelError::Handshake(NoiseError::DecryptFailed),
            ChannelError::BadIdentityProof,
            ChannelError::RefusedByPeer,
            ChannelError::HandshakeTimeout {
                after: Duration::from_secs(1),
                stage: HandshakeStage::HelloSent,
            },
            ChannelError::Unresponsive {
                silent_for: Duration::from_secs(1),
            },
            ChannelError::CounterExhausted,
            ChannelError::Random(RandomError),
        ];
        let record_only = [
            ChannelError::Malformed("x"),
            ChannelError::Replay {
                counter: 1,
                source: ReplayError::Replayed { counter: 1 },
            },
            ChannelError::TooFarAhead { counter: 1 },
            ChannelError::Forged { counter: 1 },
            ChannelError::BadPlaintext {
                counter: 1,
                reason: "x".into(),
            },
            ChannelError::PlaintextTooLarge { len: 2, max: 1 },
            ChannelError::NotEstablished,
            ChannelError::Closed,
        ];
        for error in fatal {
            assert!(error.is_fatal(), "{error}");
        }
        for error in record_only {
            assert!(!error.is_fatal(), "{error}");
        }
    }
}
