//! The anti-replay window of a secure channel's receiving side (RFC 6479).
//!
//! Every encrypted message carries a 64-bit counter, which is its AEAD nonce. Messages
//! may arrive reordered or duplicated, so the receiver cannot demand counters in
//! sequence; instead it accepts each counter at most once, and only while it is recent.
//!
//! # Acceptance rule
//!
//! Let `newest` be the highest counter marked so far, if any. A counter `c` is
//! accepted if and only if it has not been marked before and
//!
//! * nothing has been marked yet, or
//! * `c > newest`, or
//! * `newest - c < WINDOW` (that is, `c` is one of the [`WINDOW`] = 1984 counters
//!   `newest - 1983 ..= newest`).
//!
//! A counter with `newest - c >= WINDOW` is refused as [`ReplayError::TooOld`], even
//! if it was never seen: the window no longer remembers it. Counters `0` and
//! `u64::MAX` are ordinary values here; whether a counter may be used at all is the
//! channel's business.
//!
//! # Check, decrypt, mark
//!
//! The window is split into [`ReplayWindow::check`], which does not change it, and
//! [`ReplayWindow::mark`], which records a counter. The receiver must:
//!
//! 1. `check(counter)`: drop the message if refused, without decrypting it;
//! 2. decrypt and authenticate the message with that counter as nonce: drop it if
//!    that fails, leaving the window untouched;
//! 3. `mark(counter)`: only now is the counter recorded.
//!
//! This order is what makes the window safe: an attacker who forges or alters a
//! message with a huge counter cannot slide the window forward (which would make
//! every genuine message in flight "too old"), because its decryption fails and it
//! never reaches `mark`.
//!
//! # Representation
//!
//! As in RFC 6479, a ring of [`BLOCKS`] 64-bit words holds one bit per counter, for
//! 2048 counters. Counter `c` lives in bit `c % 64` of word `(c / 64) % BLOCKS`. When
//! `newest` moves into a later word, the words it skips over and enters are cleared
//! (all of them after a jump of [`BLOCKS`] words or more). One word is kept spare so
//! that the window is always a full [`WINDOW`] = `(BLOCKS - 1) * 64` counters,
//! wherever `newest` sits within its word. Checking and marking are O(1), apart from
//! clearing at most [`BLOCKS`] words when the window slides.

use std::fmt;

/// Number of 64-bit words in the bitmap: 2048 bits. A power of two.
pub const BLOCKS: usize = 32;
/// Bits per bitmap word.
const BLOCK_BITS: u64 = u64::BITS as u64;
/// How many of the most recent counters are remembered: a counter `c` is too old once
/// `newest - c >= WINDOW`. One word of the bitmap is spare, hence `(BLOCKS - 1) * 64`.
pub const WINDOW: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

// `position` relies on BLOCKS being a power of two; the design asks for a window of
// at least 1024 counters.
const _: () = assert!(BLOCKS.is_power_of_two() && WINDOW >= 1024);

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The counter is older than the window remembers.
    #[error("message counter {counter} is too old: the newest accepted is {newest} and only the last {WINDOW} counters are accepted")]
    TooOld {
        /// The refused counter.
        counter: u64,
        /// The highest counter accepted so far.
        newest: u64,
    },
    /// The counter has already been accepted: the message is a replay or duplicate.
    #[error("message counter {counter} was already received")]
    Replayed {
        /// The refused counter.
        counter: u64,
    },
}

/// The set of recently accepted counters of one receiving direction of a channel.
///
/// See the [module documentation](self) for the acceptance rule and the
/// check-decrypt-mark order the caller must follow.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest counter marked so far; `None` until the first mark.
    newest: Option<u64>,
    bitmap: [u64; BLOCKS],
}

impl ReplayWindow {
    /// An empty window: every counter is acceptable.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            newest: None,
            bitmap: [0; BLOCKS],
        }
    }

    /// The highest counter marked so far, if any. (The channel itself never asks: only
    /// tests and the fuzz harness do.)
    #[cfg(any(test, feature = "test-hooks"))]
    #[must_use]
    pub const fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Whether `counter` would be accepted now. Changes nothing; call it before
    /// decrypting.
    ///
    /// # Errors
    ///
    /// [`ReplayError::TooOld`] if `counter` is [`WINDOW`] or more below the newest
    /// marked counter, [`ReplayError::Replayed`] if it was already marked.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if counter > newest {
            return Ok(());
        }
        // `counter <= newest`, so this cannot underflow.
        if newest - counter >= WINDOW {
            return Err(ReplayError::TooOld { counter, newest });
        }
        let (word, bit) = position(counter);
        if self.bitmap[word] & bit != 0 {
            return Err(ReplayError::Replayed { counter });
        }
        Ok(())
    }

    /// Records `counter` as received. Call it only after the message carrying it has
    /// been decrypted and authenticated. Checks again first, so a counter is never
    /// marked twice; on error the window is unchanged.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn mark(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        match self.newest {
            Some(newest) if counter <= newest => {}
            Some(newest) => {
                self.slide(newest / BLOCK_BITS, counter / BLOCK_BITS);
                self.newest = Some(counter);
            }
            // The bitmap of a new window is already clear.
            None => self.newest = Some(counter),
        }
        let (word, bit) = position(counter);
        self.bitmap[word] |= bit;
        Ok(())
    }

    /// Clears the words after `from_block` up to and including `to_block`, where
    /// `to_block >= from_block` are absolute block numbers (`counter / 64`).
    fn slide(&mut self, from_block: u64, to_block: u64) {
        let distance = to_block.saturating_sub(from_block);
        if distance >= BLOCKS as u64 {
            self.bitmap = [0; BLOCKS];
            return;
        }
        // `from_block <= u64::MAX / 64` and `step < BLOCKS`, so this cannot overflow.
        for step in 1..=distance {
            let (word, _) = position(from_block.wrapping_add(step).wrapping_mul(BLOCK_BITS));
            self.bitmap[word] = 0;
        }
    }
}

/// The word index and bit mask of `counter` in the bitmap.
fn position(counter: u64) -> (usize, u64) {
    // Masking by `BLOCKS - 1` (a power of two) keeps the index below `BLOCKS`, so
    // indexing the bitmap with it cannot panic; the cast is of a value below 32.
    let word = ((counter / BLOCK_BITS) & (BLOCKS as u64 - 1)) as usize;
    let bit = 1u64 << (counter % BLOCK_BITS);
    (word, bit)
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remembered: u32 = self.bitmap.iter().map(|w| w.count_ones()).sum();
        f.debug_struct("ReplayWindow")
            .field("newest", &self.newest)
            .field("remembered", &remembered)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn accept(w: &mut ReplayWindow, c: u64) -> Result<(), ReplayError> {
        w.check(c)?;
        w.mark(c)
    }

    #[test]
    fn window_constants() {
        assert_eq!(WINDOW, 1984);
    }

    #[test]
    fn first_message_may_have_any_counter() {
        for c in [0, 1, 63, 64, 1984, 1 << 40, u64::MAX - 1, u64::MAX] {
            let mut w = ReplayWindow::new();
            assert_eq!(w.newest(), None);
            accept(&mut w, c).unwrap();
            assert_eq!(w.newest(), Some(c));
            assert_eq!(w.check(c), Err(ReplayError::Replayed { counter: c }));
        }
    }

    #[test]
    fn in_order_then_replay_rejected() {
        let mut w = ReplayWindow::new();
        for c in 0..5000 {
            accept(&mut w, c).unwrap();
        }
        assert_eq!(w.check(4999), Err(ReplayError::Replayed { counter: 4999 }));
        assert_eq!(w.mark(4000), Err(ReplayError::Replayed { counter: 4000 }));
        assert_eq!(
            w.check(0),
            Err(ReplayError::TooOld {
                counter: 0,
                newest: 4999
            })
        );
    }

    #[test]
    fn reordered_within_window_accepted_once() {
        let mut w = ReplayWindow::new();
        accept(&mut w, 1000).unwrap();
        for c in (0..1000).rev().step_by(7) {
            accept(&mut w, c).unwrap();
            assert_eq!(accept(&mut w, c), Err(ReplayError::Replayed { counter: c }));
        }
        // Counters never seen in the window are still acceptable.
        accept(&mut w, 998).unwrap();
        assert_eq!(w.newest(), Some(1000));
    }

    #[test]
    fn check_does_not_mark() {
        let mut w = ReplayWindow::new();
        w.check(5).unwrap();
        w.check(5).unwrap();
        assert_eq!(w.newest(), None);
        accept(&mut w, 10).unwrap();
        // A counter checked but never marked (its decryption failed) stays acceptable.
        w.check(11).unwrap();
        w.check(11).unwrap();
        assert_eq!(w.newest(), Some(10));
        accept(&mut w, 11).unwrap();
    }

    #[test]
    fn exact_window_edge() {
        for newest in [WINDOW, WINDOW + 1, 5000, 5000 + 63, 1 << 50, u64::MAX] {
            let mut w = ReplayWindow::new();
            accept(&mut w, newest).unwrap();
            let oldest_accepted = newest - (WINDOW - 1);
            let too_old = newest - WINDOW;
            assert_eq!(
                w.check(too_old),
                Err(ReplayError::TooOld {
                    counter: too_old,
                    newest
                }),
                "newest {newest}"
            );
            accept(&mut w, oldest_accepted).unwrap();
            assert_eq!(
                w.check(oldest_accepted),
                Err(ReplayError::Replayed {
                    counter: oldest_accepted
                })
            );
            // One step forward pushes the oldest out of the window.
            if newest < u64::MAX {
                accept(&mut w, newest + 1).unwrap();
                assert!(matches!(
                    w.check(oldest_accepted),
                    Err(ReplayError::TooOld { .. })
                ));
                w.check(oldest_accepted + 1).unwrap();
            }
        }
    }

    #[test]
    fn every_position_within_a_word() {
        // The window is exactly WINDOW wide wherever newest sits in its 64-bit word.
        for offset in 0..64 {
            let newest = 10_000 + offset;
            let mut w = ReplayWindow::new();
            accept(&mut w, newest).unwrap();
            for c in newest - WINDOW - 70..=newest + 70 {
                let expected = if c == newest {
                    Err(ReplayError::Replayed { counter: c })
                } else if c < newest && newest - c >= WINDOW {
                    Err(ReplayError::TooOld { counter: c, newest })
                } else {
                    Ok(())
                };
                assert_eq!(w.check(c), expected, "newest {newest}, counter {c}");
            }
        }
    }

    #[test]
    fn huge_jump_clears_everything() {
        let mut w = ReplayWindow::new();
        for c in 0..100 {
            accept(&mut w, c).unwrap();
        }
        accept(&mut w, 1 << 40).unwrap();
        assert!(matches!(w.check(99), Err(ReplayError::TooOld { .. })));
        // The words the old counters occupied were cleared: counters that map to the
        // same bits in the ring are fresh.
        for c in ((1 << 40) - WINDOW + 1)..(1 << 40) {
            w.check(c).unwrap();
        }
        accept(&mut w, u64::MAX).unwrap();
        for c in (u64::MAX - WINDOW + 1)..u64::MAX {
            w.check(c).unwrap();
        }
        assert_eq!(
            w.check(u64::MAX),
            Err(ReplayError::Replayed { counter: u64::MAX })
        );
        assert!(matches!(w.check(0), Err(ReplayError::TooOld { .. })));
        assert!(matches!(w.check(1 << 40), Err(ReplayError::TooOld { .. })));
    }

    #[test]
    fn sliding_clears_skipped_words() {
        let mut w = ReplayWindow::new();
        // Fill every bit of the ring.
        for c in 0..2048 {
            let _ = accept(&mut w, c);
        }
        // Jump ahead by ten words: the counters now mapped onto those words are new.
        let target = 2047 + 10 * 64;
        accept(&mut w, target).unwrap();
        for c in 2048..target {
            w.check(c).unwrap();
        }
        for c in (target - WINDOW + 1)..2048 {
            assert_eq!(w.check(c), Err(ReplayError::Replayed { counter: c }));
        }
    }

    #[test]
    fn failed_mark_leaves_window_unchanged() {
        let mut w = ReplayWindow::new();
        accept(&mut w, 5000).unwrap();
        accept(&mut w, 4990).unwrap();
        let before = w.clone();
        assert!(w.mark(4990).is_err());
        assert!(w.mark(0).is_err());
        assert_eq!(w, before);
    }

    #[test]
    fn errors_say_what_was_wrong() {
        assert_eq!(
            ReplayError::TooOld {
                counter: 1,
                newest: 3000
            }
            .to_string(),
            "message counter 1 is too old: the newest accepted is 3000 and only the last 1984 counters are accepted"
        );
        assert_eq!(
            ReplayError::Replayed { counter: 7 }.to_string(),
            "message counter 7 was already received"
        );
        let mut w = ReplayWindow::new();
        accept(&mut w, 3).unwrap();
        assert_eq!(
            format!("{w:?}"),
            "ReplayWindow { newest: Some(3), remembered: 1 }"
        );
    }

    /// The specification, written as plainly as possible: the set of every counter
    /// ever marked and the highest of them.
    #[derive(Default)]
    struct Model {
        seen: BTreeSet<u64>,
        newest: Option<u64>,
    }

    impl Model {
        fn verdict(&self, c: u64) -> Result<(), ReplayError> {
            match self.newest {
                None => Ok(()),
                Some(n) if c > n => Ok(()),
                Some(n) if n - c >= WINDOW => Err(ReplayError::TooOld {
                    counter: c,
                    newest: n,
                }),
                Some(_) if self.seen.contains(&c) => Err(ReplayError::Replayed { counter: c }),
                Some(_) => Ok(()),
            }
        }

        fn mark(&mut self, c: u64) {
            self.seen.insert(c);
            self.newest = Some(self.newest.map_or(c, |n| n.max(c)));
        }
    }

    /// How the next counter is chosen, relative to the state at that moment.
    #[derive(Debug, Clone)]
    enum Step {
        /// `newest + delta`, saturating (negative deltas reach into and past the window).
        Near(i64),
        /// A counter used earlier (by index, modulo the history).
        Repeat(usize),
        /// A fixed counter, including the extremes.
        Absolute(u64),
        /// `newest` plus a large amount, saturating.
        Jump(u64),
    }

    fn step() -> impl Strategy<Value = (Step, bool)> {
        let step = prop_oneof![
            6 => (-2100i64..=130).prop_map(Step::Near),
            3 => any::<usize>().prop_map(Step::Repeat),
            1 => prop_oneof![
                Just(0u64),
                Just(u64::MAX),
                Just(u64::MAX - 1),
                (u64::MAX - 3000..=u64::MAX),
                0u64..5000,
                any::<u64>(),
            ]
            .prop_map(Step::Absolute),
            1 => prop_oneof![64u64..5000, any::<u64>()].prop_map(Step::Jump),
        ];
        // The flag says whether decryption succeeds; a failed one must not mark.
        (step, prop::bool::weighted(0.9))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_reference_model(steps in prop::collection::vec(step(), 1..400)) {
            let mut window = ReplayWindow::new();
            let mut model = Model::default();
            let mut history: Vec<u64> = Vec::new();
            for (step, decrypts) in steps {
                let base = model.newest.unwrap_or(0);
                let c = match step {
                    Step::Near(d) if d >= 0 => base.saturating_add(d.unsigned_abs()),
                    Step::Near(d) => base.saturating_sub(d.unsigned_abs()),
                    Step::Repeat(_) if history.is_empty() => base,
                    Step::Repeat(i) => history[i % history.len()],
                    Step::Absolute(c) => c,
                    Step::Jump(j) => base.saturating_add(j),
                };
                history.push(c);
                let expected = model.verdict(c);
                prop_assert_eq!(window.check(c), expected, "check({})", c);
                if expected.is_ok() && decrypts {
                    prop_assert_eq!(window.mark(c), Ok(()));
                    model.mark(c);
                } else if expected.is_err() {
                    // Marking a refused counter is refused too and changes nothing.
                    let before = window.clone();
                    prop_assert_eq!(window.mark(c), expected);
                    prop_assert!(window == before);
                }
                prop_assert_eq!(window.newest(), model.newest);
            }
        }
    }
}
