//! Test hooks of a channel end (feature `test-hooks`, and the crate's own tests): they
//! move counters to where random traffic never reaches. Production builds never enable
//! them.

use super::{ChannelEnd, State};

impl ChannelEnd {
    /// Moves this end's sending counter to `counter`, relabelling its current key as
    /// that counter's generation instead of rekeying. The receiving end must make the
    /// matching [`jump_receive_counter_for_tests`](Self::jump_receive_counter_for_tests)
    /// so that both agree on keys. Only for tests that reach the end of the counter
    /// space or a rekey boundary without sending billions of records.
    ///
    /// Only with the `test-hooks` feature, which production builds never enable.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn jump_send_counter_for_tests(&mut self, counter: u64) {
        if let State::Established { encryptor, .. } = &mut self.state {
            encryptor.jump_for_tests(counter);
        }
    }

    /// The receiving side of
    /// [`jump_send_counter_for_tests`](Self::jump_send_counter_for_tests).
    ///
    /// Only with the `test-hooks` feature, which production builds never enable.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn jump_receive_counter_for_tests(&mut self, counter: u64) {
        if let State::Established { decryptor, .. } = &mut self.state {
            decryptor.jump_for_tests(counter);
        }
    }

    /// The counter the next record sent will carry, once established.
    ///
    /// Only with the `test-hooks` feature.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn next_send_counter(&self) -> Option<u64> {
        match &self.state {
            State::Established { encryptor, .. } | State::Confirming { encryptor, .. } => {
                Some(encryptor.next_counter())
            }
            _ => None,
        }
    }
}
