//! The receiving half of an established channel.

use crate::noise::{CipherState, MAX_MESSAGE_LEN};

use super::busy::Busy;
use super::replay::ReplayWindow;
use super::wire::{parse_transport, TRANSPORT_HEADER_LEN};
use super::{ChannelError, MAX_GENERATIONS_AHEAD, REKEY_SHIFT};

/// Decrypts records that may arrive lost, duplicated or out of order.
///
/// For each record: check the counter against the replay window (no state change),
/// pick the key generation the counter needs, decrypt, and only after successful
/// authentication mark the counter and move to a newer generation. A forged record,
/// whatever counter it claims, therefore changes nothing.
pub(crate) struct Decryptor {
    current: CipherState,
    /// The generation before `current`, for records reordered across a rekey.
    /// Boxed: it exists only after a rekey, and idle channels should stay small.
    previous: Option<Box<CipherState>>,
    generation: u64,
    window: ReplayWindow,
    /// Data records opened since the channel began or the peer's direction was quiet.
    busy: Busy,
}

impl Decryptor {
    pub(crate) fn new(cipher: CipherState) -> Self {
        Self {
            current: cipher,
            previous: None,
            generation: 0,
            window: ReplayWindow::new(),
            busy: Busy::default(),
        }
    }

    /// Notes that a data record was opened: from the [`KEEP_KEYS_AFTER`](super::busy::KEEP_KEYS_AFTER)th on, the
    /// current key stays expanded (see `CipherState`). A key generation reached later
    /// is expanded per record until the next data record asks again.
    pub(crate) fn carries_data(&mut self) -> Result<(), ChannelError> {
        if self.busy.note() {
            self.current.keep_expanded()?;
        }
        Ok(())
    }

    /// The peer has been quiet: the key is expanded for each record again, until
    /// [`KEEP_KEYS_AFTER`](super::busy::KEEP_KEYS_AFTER) more data records.
    pub(crate) fn quiet(&mut self) {
        self.busy.quiet();
        self.current.forget_expansion();
    }

    /// Whether the peer's direction is busy: it has carried [`KEEP_KEYS_AFTER`](super::busy::KEEP_KEYS_AFTER) data
    /// records since the channel began or was last quiet.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.is_busy()
    }

    /// Whether the current key is kept expanded.
    #[cfg(test)]
    pub(crate) fn keeps_key(&self) -> bool {
        self.current.keeps_expansion()
    }

    /// Authenticates and decrypts one transport record in place, returning its counter
    /// and the plaintext, which lies inside `record`. After a failure `record` may have
    /// been overwritten, but holds no unauthenticated plaintext.
    pub(crate) fn open_in_place<'r>(
        &mut self,
        record: &'r mut [u8],
    ) -> Result<(u64, &'r [u8]), ChannelError> {
        let (_, counter, ciphertext) = parse_transport(record)?;
        self.window
            .check(counter)
            .map_err(|source| ChannelError::Replay { counter, source })?;
        if ciphertext.len() > MAX_MESSAGE_LEN {
            return Err(ChannelError::Malformed("transport record is too long"));
        }
        let (header, ciphertext) = record.split_at_mut(TRANSPORT_HEADER_LEN);
        let header: &[u8] = header;
        let generation = counter >> REKEY_SHIFT;
        let forged = |_| ChannelError::Forged { counter };

        let len = if generation == self.generation {
            self.current
                .decrypt_in_place_at(counter, header, ciphertext)
                .map_err(forged)?
        } else if generation.checked_add(1) == Some(self.generation) {
            let previous = self
                .previous
                .as_ref()
                .ok_or(ChannelError::Forged { counter })?;
            previous
                .decrypt_in_place_at(counter, header, ciphertext)
                .map_err(forged)?
        } else if generation > self.generation
            && generation - self.generation <= MAX_GENERATIONS_AHEAD
        {
            // Derive the newer keys tentatively; keep them only if the record authenticates.
            let mut before = self.current.clone();
            let mut candidate = self.current.clone();
            candidate.rekey()?;
            for _ in 1..generation - self.generation {
                before.rekey()?;
                candidate.rekey()?;
            }
            let len = candidate
                .decrypt_in_place_at(counter, header, ciphertext)
                .map_err(forged)?;
            self.previous = Some(Box::new(before));
            self.current = candidate;
            self.generation = generation;
            len
        } else if generation > self.generation {
            return Err(ChannelError::TooFarAhead { counter });
        } else {
            // Older than the previous generation: the replay window already refuses
            // these, as a generation is far wider than the window.
            return Err(ChannelError::Forged { counter });
        };

        self.window
            .mark(counter)
            .map_err(|source| ChannelError::Replay { counter, source })?;
        let plaintext: &[u8] = ciphertext;
        Ok((counter, plaintext.get(..len).unwrap_or_default()))
    }

    /// Relabels the current key as generation `counter >> REKEY_SHIFT` without
    /// rekeying, and moves the window there: the receiving side of
    /// [`Encryptor::jump_for_tests`](super::encryptor::Encryptor::jump_for_tests).
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn jump_for_tests(&mut self, counter: u64) {
        self.generation = counter >> REKEY_SHIFT;
        self.previous = None;
        self.window = ReplayWindow::new();
    }
}
