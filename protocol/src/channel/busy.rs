//! When a direction of a channel counts as busy: it then keeps what it would otherwise
//! make again for each record (`ring`'s key expansion; room for one event).

/// Data records one direction of a channel carries before it counts as busy.
/// Until then each record expands the key for its own use (about 1,200 instructions);
/// from then on `ring`'s expansion (about 550 bytes per direction) is kept, so a
/// channel that carries a message now and then stays small and a busy one fast.
pub(crate) const KEEP_KEYS_AFTER: u8 = 8;

/// Data records counted in one direction since the channel began or was last quiet,
/// up to [`KEEP_KEYS_AFTER`].
#[derive(Debug, Default)]
pub(crate) struct Busy(u8);

impl Busy {
    /// Counts one data record; returns whether the direction is now busy.
    pub(crate) fn note(&mut self) -> bool {
        self.0 = self.0.saturating_add(1);
        self.is_busy()
    }

    /// Whether [`KEEP_KEYS_AFTER`] data records have been counted.
    pub(crate) fn is_busy(&self) -> bool {
        self.0 >= KEEP_KEYS_AFTER
    }

    /// The direction has been quiet: counting starts again.
    pub(crate) fn quiet(&mut self) {
        self.0 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_from_the_eighth_record_until_quiet_and_never_wrapping() {
        let mut busy = Busy::default();
        for n in 1..KEEP_KEYS_AFTER {
            assert!(!busy.note(), "after {n}");
        }
        assert!(busy.note());
        for _ in 0..1000 {
            assert!(busy.note(), "the count saturates, it does not wrap");
        }
        busy.quiet();
        assert!(!busy.is_busy());
        assert!(!busy.note());
    }
}
