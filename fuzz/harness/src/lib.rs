//! onward-fuzz-harness: the fuzz targets of `onward-protocol`, as plain functions.
//!
//! The cargo-fuzz package (`fuzz/`, nightly) calls them from its one-line
//! `fuzz/fuzz_targets/<name>.rs` files; the replay test of this package
//! (`tests/corpus.rs`) runs them over the committed corpus on stable Rust, in the
//! ordinary test suite. Not published; nothing here is a public API of onward.
//!
//! The harness uses `onward-protocol` with its `test-hooks` feature: the `channel`
//! target jumps channel counters to a rekey boundary or the end of the counter space,
//! which random traffic never reaches; `replay_window` drives the channel's replay
//! window directly; `frames` starts a decoder after the preamble.
//!
//! Each target takes arbitrary bytes, drives one decoder or state machine with them
//! and checks its invariants, usually against a simple reference model. A target
//! panics only when an invariant is broken: that panic is what the fuzzer reports. Bad
//! input alone must never make a target panic. [`TARGETS`] lists them all; each has a
//! one-line file `fuzz/fuzz_targets/<name>.rs` and a seed corpus
//! `fuzz/corpus/<name>/`, which [`seeds`] regenerates.
//!
//! The inputs are read with a small cursor (`src/input.rs`): when the input runs out,
//! every further read yields zeros, so every byte string is a valid input. Each target
//! lives in the file named after what it drives (`noise.rs` holds both Noise targets,
//! `channel.rs` both channel targets); `seeds.rs` makes the seed inputs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// A fuzz target reports a broken invariant by panicking; that is its whole purpose.
// The library, onward-protocol, keeps the workspace's ban on panics, unwraps and
// expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod address;
mod channel;
mod frames;
mod input;
mod message;
mod node;
mod noise;
mod portal;
mod replay_window;
mod report;
mod seeds;

pub use address::address;
pub use channel::{channel, channel_handshake};
pub use frames::frames;
pub use message::message;
pub use node::node;
pub use noise::{noise_initiator, noise_responder};
pub use portal::portal;
pub use replay_window::replay_window;
pub use report::report;
pub use seeds::seeds;

/// A fuzz target: bytes in, a panic out only when an invariant is broken.
pub type Target = fn(&[u8]);

/// Every target, by the name of its file in `fuzz/fuzz_targets/` and its corpus
/// directory in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("message", message),
    ("address", address),
    ("frames", frames),
    ("noise_responder", noise_responder),
    ("noise_initiator", noise_initiator),
    ("channel", channel),
    ("channel_handshake", channel_handshake),
    ("replay_window", replay_window),
    ("node", node),
    ("report", report),
    ("portal", portal),
];
