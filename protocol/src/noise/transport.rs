//! `TransportState`: the two cipher states `Split()` produces, one per direction.

use core::fmt;

use super::{CipherState, Hex, NoiseError, Role, DH_LEN, HASH_LEN};

/// Transport encryption after a finished handshake: a sending and a receiving
/// [`CipherState`], the handshake hash and the peer's static key.
///
/// [`write_message`] and [`read_message`] use each cipher state's internal nonce, as
/// the Noise specification's transport phase does: messages must be read in the order
/// they were written, each exactly once. Channels whose messages may be lost or
/// reordered take the cipher states out with [`into_cipher_states`] and use explicit
/// nonces ([`CipherState::encrypt_at`], [`CipherState::decrypt_at`]).
///
/// A failed [`read_message`] changes nothing, so a forged message cannot disturb the
/// session.
///
/// [`write_message`]: TransportState::write_message
/// [`read_message`]: TransportState::read_message
/// [`into_cipher_states`]: TransportState::into_cipher_states
pub struct TransportState {
    role: Role,
    send: CipherState,
    recv: CipherState,
    handshake_hash: [u8; HASH_LEN],
    remote_static: [u8; DH_LEN],
}

impl TransportState {
    pub(crate) fn new(
        role: Role,
        send: CipherState,
        recv: CipherState,
        handshake_hash: [u8; HASH_LEN],
        remote_static: [u8; DH_LEN],
    ) -> Self {
        Self {
            role,
            send,
            recv,
            handshake_hash,
            remote_static,
        }
    }

    /// The role this side played in the handshake.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The final handshake hash, the same on both sides, for channel binding.
    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.handshake_hash
    }

    /// The peer's static public key, authenticated by the handshake.
    pub fn remote_static(&self) -> [u8; DH_LEN] {
        self.remote_static
    }

    /// The nonce the next [`write_message`](Self::write_message) will use.
    pub fn sending_nonce(&self) -> u64 {
        self.send.nonce()
    }

    /// The nonce the next [`read_message`](Self::read_message) will use.
    pub fn receiving_nonce(&self) -> u64 {
        self.recv.nonce()
    }

    /// Encrypts `payload` (with empty associated data) into `out` and returns the
    /// message's length.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::MessageTooLarge`] if the message would exceed 65535 bytes, that is
    ///   if `payload` exceeds 65519 bytes;
    /// - [`NoiseError::BufferTooSmall`] if `out` cannot hold it;
    /// - [`NoiseError::NonceExhausted`] after 2^64-1 messages.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        let len = self.send.encrypt_with_ad(&[], payload, out)?;
        tracing::trace!(len, "wrote Noise transport message");
        Ok(len)
    }

    /// Decrypts `message` into `payload_out` and returns the payload's length.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::MessageTooLarge`] or [`NoiseError::MessageTooShort`] for a
    ///   message of impossible length;
    /// - [`NoiseError::BufferTooSmall`] if `payload_out` cannot hold the payload;
    /// - [`NoiseError::DecryptFailed`] if the message is not the next one the peer wrote;
    /// - [`NoiseError::NonceExhausted`] after 2^64-1 messages.
    ///
    /// On error nothing changes: the next genuine message still decrypts.
    pub fn read_message(
        &mut self,
        message: &[u8],
        payload_out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        let len = self.recv.decrypt_with_ad(&[], message, payload_out)?;
        tracing::trace!(len, "read Noise transport message");
        Ok(len)
    }

    /// Rekeys the sending cipher state (see [`CipherState::rekey`]). The peer must rekey
    /// its receiving side at the same point in the message stream.
    ///
    /// # Errors
    ///
    /// None in practice; the cipher states always have keys.
    pub fn rekey_outgoing(&mut self) -> Result<(), NoiseError> {
        self.send.rekey()
    }

    /// Rekeys the receiving cipher state (see [`CipherState::rekey`]).
    ///
    /// # Errors
    ///
    /// None in practice; the cipher states always have keys.
    pub fn rekey_incoming(&mut self) -> Result<(), NoiseError> {
        self.recv.rekey()
    }

    /// The sending and receiving cipher states, in that order.
    pub fn into_cipher_states(self) -> (CipherState, CipherState) {
        (self.send, self.recv)
    }
}

impl fmt::Debug for TransportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportState")
            .field("role", &self.role)
            .field("send", &self.send)
            .field("recv", &self.recv)
            .field("handshake_hash", &Hex(&self.handshake_hash))
            .field("remote_static", &Hex(&self.remote_static))
            .finish()
    }
}
