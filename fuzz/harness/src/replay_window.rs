//! The `replay_window` target, and the reference model of a replay window that the
//! `channel` target shares.

use std::collections::BTreeSet;

use onward_protocol::channel::replay::{ReplayError, ReplayWindow, WINDOW};

use crate::input::Input;

/// The reference model of a replay window: every counter ever accepted, and the newest.
#[derive(Default)]
pub(crate) struct ReplayModel {
    seen: BTreeSet<u64>,
    newest: Option<u64>,
}

impl ReplayModel {
    /// The acceptance rule of `channel/replay.rs`, stated plainly.
    pub(crate) fn verdict(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if counter > newest {
            Ok(())
        } else if newest - counter >= WINDOW {
            Err(ReplayError::TooOld { counter, newest })
        } else if self.seen.contains(&counter) {
            Err(ReplayError::Replayed { counter })
        } else {
            Ok(())
        }
    }

    pub(crate) fn mark(&mut self, counter: u64) {
        self.seen.insert(counter);
        self.newest = Some(self.newest.map_or(counter, |n| n.max(counter)));
    }
}

/// The replay window against a `BTreeSet` of accepted counters.
///
/// The input is operations, each a byte: bit 0 says mark (else check); bit 1 says the
/// counter is the newest minus a big-endian `u16` (saturating at 0; the `u16` itself
/// before anything is marked), else a big-endian `u64`. Every check and mark must
/// agree with the model, a check must change nothing, and a refused mark too.
pub fn replay_window(data: &[u8]) {
    let mut input = Input::new(data);
    let mut window = ReplayWindow::new();
    let mut model = ReplayModel::default();
    while !input.is_empty() {
        let op = input.byte();
        let counter = if op & 2 != 0 {
            let back = u64::from(input.u16());
            match model.newest {
                Some(newest) => newest.saturating_sub(back),
                None => back,
            }
        } else {
            input.u64()
        };
        let before = window.clone();
        let expected = model.verdict(counter);
        if op & 1 == 0 {
            assert_eq!(window.check(counter), expected, "check({counter})");
            assert!(window == before, "check({counter}) changed the window");
        } else {
            assert_eq!(window.mark(counter), expected, "mark({counter})");
            if expected.is_ok() {
                model.mark(counter);
                assert_eq!(
                    window.check(counter),
                    Err(ReplayError::Replayed { counter })
                );
            } else {
                assert!(
                    window == before,
                    "a refused mark({counter}) changed the window"
                );
            }
        }
        assert_eq!(window.newest(), model.newest);
    }
}
