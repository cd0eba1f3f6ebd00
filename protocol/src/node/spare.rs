//! Transmit buffers given back once written, kept for later frames.

/// How many written transmit buffers a node core keeps for later frames (see
/// [`NodeCore::recycle_transmit`](super::NodeCore::recycle_transmit)).
pub const SPARE_TRANSMITS: usize = 8;

/// The most room a kept transmit buffer may have. Small frames (requests, replies,
/// records of a few hundred bytes) then cost no allocation each, and a node holds at
/// most [`SPARE_TRANSMITS`] times this much unused, outside its memory budget.
pub const SPARE_TRANSMIT_MAX: usize = 4096;

/// Empty buffers, each with room for at most [`SPARE_TRANSMIT_MAX`] bytes.
#[derive(Debug, Default)]
pub(super) struct SpareTransmits(Vec<Vec<u8>>);

impl SpareTransmits {
    /// Keeps `bytes`, emptied, if there is a place for it and its room is small
    /// enough; otherwise drops it.
    pub(super) fn keep(&mut self, mut bytes: Vec<u8>) {
        let room = bytes.capacity();
        if room > 0 && room <= SPARE_TRANSMIT_MAX && self.0.len() < SPARE_TRANSMITS {
            bytes.clear();
            self.0.push(bytes);
        }
    }

    /// An empty buffer with room for at least `len` bytes: a kept one if `len` is
    /// small, else a new one.
    pub(super) fn take(&mut self, len: usize) -> Vec<u8> {
        match self.0.pop() {
            Some(mut bytes) if len <= SPARE_TRANSMIT_MAX => {
                bytes.reserve(len);
                bytes
            }
            // A large frame leaves the kept buffers for the small ones.
            Some(bytes) => {
                self.0.push(bytes);
                Vec::with_capacity(len)
            }
            None => Vec::with_capacity(len),
        }
    }

    /// How many buffers are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_buffer_takes_the_next_small_frame_and_large_ones_are_not_kept() {
        let mut spare = SpareTransmits::default();
        let mut bytes = Vec::with_capacity(300);
        bytes.extend_from_slice(b"old frame");
        let at = bytes.as_ptr();
        spare.keep(bytes);
        let taken = spare.take(200);
        assert!(taken.is_empty(), "a kept buffer comes back empty");
        assert_eq!(taken.as_ptr(), at, "the kept buffer is reused");
        spare.keep(taken);
        // A frame too large for a kept buffer gets a new one and leaves the kept one.
        let large = spare.take(SPARE_TRANSMIT_MAX + 1);
        assert!(large.capacity() > SPARE_TRANSMIT_MAX);
        assert_eq!(spare.len(), 1);
        spare.keep(large);
        assert_eq!(spare.len(), 1, "a buffer with too much room is dropped");
        // A small frame larger than the kept buffer's room still fits in what it gets.
        let grown = spare.take(1000);
        assert!(grown.capacity() >= 1000 && grown.is_empty());
        // Never more than SPARE_TRANSMITS are kept, and empty ones not at all.
        spare.keep(Vec::new());
        assert_eq!(spare.len(), 0);
        for _ in 0..SPARE_TRANSMITS + 3 {
            spare.keep(Vec::with_capacity(64));
        }
        assert_eq!(spare.len(), SPARE_TRANSMITS);
    }
}
