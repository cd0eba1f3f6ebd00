//! Runs fuzz targets on many pseudo-random inputs, on stable Rust: a long check by hand
//! where cargo-fuzz (nightly) is not at hand. Half the inputs are seeds with bytes
//! flipped and random bytes appended, as in the corpus test, with a different seed
//! each run unless one is given.
//!
//! ```text
//! cargo run --release -p onward-fuzz-harness --example random-run -- TARGET COUNT [SEED]
//! ```
//!
//! `TARGET` is a target's name or `all`. A broken invariant panics, naming the target,
//! the input's number and its bytes in hex, so it can be saved to the corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onward_fuzz_harness::{seeds, TARGETS};
use onward_protocol::random::{RandomSource, SeededRandom};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(which), Some(count)) = (args.first(), args.get(1).and_then(|c| c.parse().ok()))
    else {
        eprintln!("usage: random-run TARGET|all COUNT [SEED]");
        std::process::exit(2);
    };
    let seed = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()));
    let count: usize = count;
    for (name, target) in TARGETS.iter().filter(|(n, _)| which == "all" || which == n) {
        let mut rng = SeededRandom::new(seed);
        let seeds = seeds(name);
        let started = std::time::Instant::now();
        for i in 0..count {
            let mut len = [0u8; 2];
            rng.fill(&mut len).unwrap();
            let mut input = vec![0u8; usize::from(u16::from_le_bytes(len)) % 1024];
            rng.fill(&mut input).unwrap();
            if i % 2 == 1 && !seeds.is_empty() {
                let mut mutated = seeds[i / 2 % seeds.len()].1.clone();
                let mut flips = [0u8; 8];
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
            let outcome = std::panic::catch_unwind(|| target(&input));
            if outcome.is_err() {
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                panic!("{name}: input {i} (seed {seed}) broke an invariant: {hex}");
            }
        }
        println!(
            "{name}: {count} inputs, seed {seed}, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}
