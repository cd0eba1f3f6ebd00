//! The sending half of an established channel.

use crate::noise::{CipherState, MAX_MESSAGE_LEN, TAG_LEN};

use super::busy::Busy;
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
    /// Data records sealed since the channel began or this direction was quiet.
    busy: Busy,
}

impl Encryptor {
    pub(crate) fn new(cipher: CipherState) -> Self {
        Self {
            cipher,
            generation: 0,
            next_counter: 0,
            busy: Busy::default(),
        }
    }

    /// Notes that a data record is about to be sealed: from the
    /// [`KEEP_KEYS_AFTER`](super::busy::KEEP_KEYS_AFTER)th on, the key stays expanded (see `CipherState`).
    pub(crate) fn carries_data(&mut self) -> Result<(), ChannelError> {
        if self.busy.note() {
            self.cipher.keep_expanded()?;
        }
        Ok(())
    }

    /// This direction has been quiet: the key is expanded for each record again, until
    /// [`KEEP_KEYS_AFTER`](super::busy::KEEP_KEYS_AFTER) more data records.
    pub(crate) fn quiet(&mut self) {
        self.busy.quiet();
        self.cipher.forget_expansion();
    }

    /// Whether the key is kept expanded.
    #[cfg(test)]
    pub(crate) fn keeps_key(&self) -> bool {
        self.cipher.keeps_expansion()
    }

    /// The counter the next record will carry.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// A buffer for [`seal_record`](Self::seal_record): room for the record header,
    /// then capacity for a plaintext of `plaintext_len` bytes and the tag.
    pub(crate) fn record_buffer(plaintext_len: usize) -> Vec<u8> {
        let mut record = Vec::with_capacity(TRANSPORT_HEADER_LEN + plaintext_len + TAG_LEN);
        record.resize(TRANSPORT_HEADER_LEN, 0);
        record
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
        let mut record = Self::record_buffer(plaintext.len());
        record.extend_from_slice(plaintext);
        self.seal_record(record, allow_reserved)
    }

    /// Encrypts in place a record made by [`record_buffer`](Self::record_buffer) with
    /// the plaintext written after the header's room: the header is filled in, the
    /// plaintext encrypted where it lies and the tag appended, with no copy.
    pub(crate) fn seal_record(
        &mut self,
        mut record: Vec<u8>,
        allow_reserved: bool,
    ) -> Result<Vec<u8>, ChannelError> {
        self.seal_in(&mut record, 0, allow_reserved)?;
        Ok(record)
    }

    /// Seals the record that starts at `start` in `buf`: [`TRANSPORT_HEADER_LEN`] bytes
    /// of room for the header, then the plaintext up to the end of `buf`. The header is
    /// filled in, the plaintext encrypted where it lies and the tag appended. On error
    /// `buf` is as it was.
    pub(crate) fn seal_in(
        &mut self,
        buf: &mut Vec<u8>,
        start: usize,
        allow_reserved: bool,
    ) -> Result<(), ChannelError> {
        let counter = self.next_counter;
        let limit = if allow_reserved {
            MAX_DATA_COUNTER + 1
        } else {
            MAX_DATA_COUNTER
        };
        if counter > limit {
            return Err(ChannelError::CounterExhausted);
        }
        let record = buf
            .get_mut(start..)
            .filter(|r| r.len() >= TRANSPORT_HEADER_LEN)
            .ok_or(ChannelError::Malformed(
                "record buffer has no room for a header",
            ))?;
        let plaintext_len = record.len() - TRANSPORT_HEADER_LEN;
        let max = MAX_MESSAGE_LEN - TAG_LEN;
        if plaintext_len > max {
            return Err(ChannelError::PlaintextTooLarge {
                len: plaintext_len,
                max,
            });
        }
        let generation = counter >> REKEY_SHIFT;
        while self.generation < generation {
            self.cipher.rekey()?;
            self.generation += 1;
        }
        let (header, body) = record.split_at_mut(TRANSPORT_HEADER_LEN);
        header[0] = KIND_TRANSPORT;
        header[1..].copy_from_slice(&counter.to_be_bytes());
        let tag = self.cipher.encrypt_in_place_at(counter, header, body)?;
        buf.extend_from_slice(&tag);
        self.next_counter = counter.saturating_add(1);
        Ok(())
    }

    /// Moves the counter without rekeying, relabelling the current key as the
    /// generation of `counter`. Both ends must make the same jump (see
    /// [`Decryptor::jump_for_tests`](super::decryptor::Decryptor::jump_for_tests)).
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn jump_for_tests(&mut self, counter: u64) {
        self.next_counter = counter;
        self.generation = counter >> REKEY_SHIFT;
    }
}
