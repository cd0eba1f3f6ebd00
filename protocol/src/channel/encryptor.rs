//! The sending half of an established channel.

use crate::noise::{CipherState, MAX_MESSAGE_LEN, TAG_LEN};

use super::wire::{KIND_TRANSPORT, TRANSPORT_HEADER_LEN};
use super::{ChannelError, MAX_DATA_COUNTER, REKEY_SHIFT};

/// Encrypts records with explicit counters.
///
/// Each record uses the next counter, starting at 0. The key in use for counter `c` is
/// the initial key rekeyed `c >> REKEY_SHIFT` times, so the receiver can tell from the
/// counter alone which key generation a record needs.
pub(crate) struct Encryptor {
    cipher: CipherState,
    /// The key generation `cipher` holds.
    generation: u64,
    next_counter: u64,
}

impl Encryptor {
    pub(crate) fn new(cipher: CipherState) -> Self {
        Self {
            cipher,
            generation: 0,
            next_counter: 0,
        }
    }

    /// The counter the next record will carry.
    pub(crate) fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// Encrypts `plaintext` as one transport record.
    ///
    /// `allow_reserved` lets the close record use the one counter kept back for it
    /// once the data counters are exhausted.
    pub(crate) fn seal(
        &mut self,
        plaintext: &[u8],
        allow_reserved: bool,
    ) -> Result<Vec<u8>, ChannelError> {
        let counter = self.next_counter;
        let limit = if allow_reserved {
            MAX_DATA_COUNTER + 1
        } else {
            MAX_DATA_COUNTER
        };
        if counter > limit {
            return Err(ChannelError::CounterExhausted);
        }
        let max = MAX_MESSAGE_LEN - TAG_LEN;
        if plaintext.len() > max {
            return Err(ChannelError::PlaintextTooLarge {
                len: plaintext.len(),
                max,
            });
        }
        let generation = counter >> REKEY_SHIFT;
        while self.generation < generation {
            self.cipher.rekey()?;
            self.generation += 1;
        }
        let mut record = vec![0u8; TRANSPORT_HEADER_LEN + plaintext.len() + TAG_LEN];
        let (header, body) = record.split_at_mut(TRANSPORT_HEADER_LEN);
        header[0] = KIND_TRANSPORT;
        header[1..].copy_from_slice(&counter.to_be_bytes());
        let written = self.cipher.encrypt_at(counter, header, plaintext, body)?;
        record.truncate(TRANSPORT_HEADER_LEN + written);
        self.next_counter = counter.saturating_add(1);
        Ok(record)
    }

    /// Moves the counter without rekeying, relabelling the current key as the
    /// generation of `counter`. Both ends must make the same jump (see
    /// [`Decryptor::jump_for_tests`](super::decryptor::Decryptor::jump_for_tests)).
    pub(crate) fn jump_for_tests(&mut self, counter: u64) {
        self.next_counter = counter;
        self.generation = counter >> REKEY_SHIFT;
    }
}
