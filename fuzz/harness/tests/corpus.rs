//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through every fuzz
//! target of this harness, then a bounded number of deterministic
//! pseudo-random inputs, so that every crash the fuzzer ever found stays fixed and the
//! targets are exercised on stable Rust in the ordinary test suite.
//!
//! To refresh the seed inputs in the corpus (they are made from genuine encodings by
//! `onward_fuzz_harness::seeds`):
//!
//! ```text
//! cargo run -p onward-fuzz-harness --example write-seed-corpus
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use onward_fuzz_harness::{seeds, Target, TARGETS};
use onward_protocol::random::{RandomSource, SeededRandom};

fn fuzz_dir() -> PathBuf {
    // This package is fuzz/harness.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => panic!("corpus directory {} unreadable: {e}", dir.display()),
    };
    files.sort();
    files
}

/// Runs `input` through `target`, naming the input if it panics.
fn run(name: &str, what: &str, target: Target, input: &[u8]) {
    let outcome = std::panic::catch_unwind(|| target(input));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        panic!(
            "fuzz target {name} panicked on {what} ({} bytes): {message}",
            input.len()
        );
    }
}

#[test]
fn every_target_has_a_fuzz_target_file_and_a_corpus() {
    for (name, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let source =
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            source.contains(&format!("onward_fuzz_harness::{name}(data)")),
            "{} does not call onward_fuzz_harness::{name}",
            file.display()
        );
        assert!(!corpus_files(name).is_empty(), "no corpus for {name}");
    }
    // And no corpus directory for a target that does not exist.
    for entry in fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
        let name = entry.unwrap().file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} belongs to no target"
        );
    }
}

#[test]
fn the_committed_corpus_replays_without_a_panic() {
    let mut total = 0;
    for (name, target) in TARGETS {
        for file in corpus_files(name) {
            let input = fs::read(&file).unwrap();
            run(name, &file.display().to_string(), *target, &input);
            total += 1;
        }
    }
    assert!(total >= TARGETS.len());
}

#[test]
fn the_seed_inputs_run_without_a_panic() {
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "no seeds for {name}");
        for (seed, input) in seeds {
            run(name, &format!("seed {seed}"), *target, &input);
        }
    }
}

/// How many pseudo-random inputs each target gets, and their largest length: the
/// state-machine targets cost a handshake per input.
fn random_budget(name: &str) -> (usize, usize) {
    match name {
        "channel" | "channel_handshake" | "noise_responder" | "noise_initiator" => (250, 300),
        _ => (1000, 600),
    }
}

#[test]
fn pseudo_random_inputs_run_without_a_panic() {
    for (n, (name, target)) in TARGETS.iter().enumerate() {
        let mut rng = SeededRandom::new(0x0f0f_0000 + n as u64);
        let (count, max_len) = random_budget(name);
        let seeds = seeds(name);
        for i in 0..count {
            let mut len_bytes = [0u8; 2];
            rng.fill(&mut len_bytes).unwrap();
            let len = usize::from(u16::from_le_bytes(len_bytes)) % (max_len + 1);
            let mut input = vec![0u8; len];
            rng.fill(&mut input).unwrap();
            // Every other input is a seed with two bytes flipped and the random bytes
            // appended, so that random bytes also reach past the first checks.
            if i % 2 == 1 {
                let (_, seed) = &seeds[i / 2 % seeds.len()];
                let mut mutated = seed.clone();
                let mut flips = [0u8; 4];
                rng.fill(&mut flips).unwrap();
                for flip in flips.chunks_exact(2) {
                    if !mutated.is_empty() {
                        let at = usize::from(flip[0]) % mutated.len();
                        mutated[at] ^= flip[1];
                    }
                }
                mutated.extend_from_slice(&input);
                input = mutated;
            }
            run(name, &format!("random input {i}"), *target, &input);
        }
    }
}
