//! The Noise layer's error type.

use crate::random::RandomError;

/// Everything that can go wrong in the Noise layer.
///
/// No variant carries key material, so printing an error never leaks a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// The protocol name is not one this crate implements.
    #[error("unsupported Noise protocol name {name:?}: expected Noise_XX_25519_AESGCM_SHA256 or Noise_XX_25519_ChaChaPoly_SHA256")]
    UnsupportedProtocol {
        /// The name that was asked for.
        name: String,
    },

    /// The caller's output buffer cannot hold the result.
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Bytes the operation needs to write.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },

    /// A message (or the message a payload would produce) is longer than Noise allows.
    #[error("Noise message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Length of the message, or of the message that would have been written.
        len: usize,
        /// The limit, 65535 bytes.
        max: usize,
    },

    /// A received message is shorter than its fixed fields and tags.
    #[error("Noise message of {len} bytes is shorter than the minimum of {min} bytes")]
    MessageTooShort {
        /// Length of the received message.
        len: usize,
        /// The smallest length this message can have.
        min: usize,
    },

    /// Authenticated decryption failed: the ciphertext, the associated data (the
    /// handshake hash during the handshake), the key or the nonce differ from the sender's.
    #[error(
        "decryption failed: the message was altered, or the peers' keys, prologue or suite differ"
    )]
    DecryptFailed,

    /// The cipher state has used every nonce it may use for messages (2^64-1 is reserved).
    #[error("nonces exhausted: the cipher state reached nonce 2^64-1, which is reserved")]
    NonceExhausted,

    /// An explicit nonce of 2^64-1 was passed; that value is reserved for rekeying.
    #[error("nonce 2^64-1 is reserved for rekey and cannot protect a message")]
    ReservedNonce,

    /// The cipher state has no key yet, and the operation needs one.
    #[error("the cipher state has no key")]
    MissingKey,

    /// `write_message` was called when the next handshake message is the peer's to send.
    #[error("write_message called out of turn: the next handshake message is the peer's to send")]
    WriteOutOfTurn,

    /// `read_message` was called when the next handshake message is ours to send.
    #[error("read_message called out of turn: the next handshake message is ours to send")]
    ReadOutOfTurn,

    /// A handshake operation was called after all three messages were processed.
    #[error("the handshake is already finished; only into_transport remains")]
    HandshakeFinished,

    /// `into_transport` was called before all three handshake messages were processed.
    #[error("the handshake is not finished: {processed} of 3 messages processed")]
    HandshakeNotFinished {
        /// Handshake messages processed so far.
        processed: usize,
    },

    /// An earlier call failed, and the handshake cannot continue.
    #[error("the handshake failed earlier and this handshake state is no longer usable")]
    Poisoned,

    /// The peer sent an X25519 public key that yields an all-zero shared secret
    /// (a low-order point), which would make the key exchange contribute nothing.
    #[error("the peer's X25519 public key is a low-order point (all-zero shared secret)")]
    LowOrderPoint,

    /// The random source failed while making an ephemeral or static key.
    #[error("random source failed while generating a Noise key")]
    Random(#[from] RandomError),
}
