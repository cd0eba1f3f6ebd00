//! Shared support for onward's benchmark programs: timing loops and a report that
//! prints a table and one JSON line per figure, each beside the peer it is compared
//! with in the same run.
#![forbid(unsafe_code)]

pub mod rt;
pub mod workers;

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Whether the program was started with `--quick`: every benchmark runs briefly, as a
/// smoke test; the figures are not meaningful.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// How long each measurement runs.
pub fn measure_time() -> Duration {
    if quick() {
        Duration::from_millis(20)
    } else {
        Duration::from_secs(2)
    }
}

/// Runs `op` repeatedly for about `time` (after a short warm-up) and returns
/// operations per second.
pub fn rate(time: Duration, mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < time / 10 {
        op();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut batch: u64 = 1;
    loop {
        for _ in 0..batch {
            op();
        }
        n += batch;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return n as f64 / elapsed.as_secs_f64();
        }
        batch = (batch * 2).min(1 << 16);
    }
}

/// Keeps a value alive so the optimiser cannot remove the work that made it.
pub fn keep<T>(value: T) -> T {
    black_box(value)
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Which benchmark.
    pub bench: &'static str,
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit; larger is better unless `lower_is_better`.
    pub unit: &'static str,
    /// What it is compared with.
    pub peer: String,
    /// The peer's value in the same run.
    pub peer_value: f64,
    /// The target ratio `value / peer_value` (inverted when lower is better).
    pub target: Option<f64>,
    /// Whether smaller values are better (latency, memory).
    pub lower_is_better: bool,
}

impl Figure {
    /// `value / peer_value`, or `peer_value / value` when lower is better: above 1
    /// means better than the peer.
    pub fn ratio(&self) -> f64 {
        if self.lower_is_better {
            self.peer_value / self.value
        } else {
            self.value / self.peer_value
        }
    }

    /// Whether the target is met (true when there is none).
    pub fn met(&self) -> bool {
        self.target.is_none_or(|t| self.ratio() >= t)
    }
}

/// Collects figures and prints them.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    /// Adds a figure and prints its JSON line at once.
    pub fn add(&mut self, figure: Figure) {
        println!(
            "{{\"bench\":\"{}\",\"figure\":\"{}\",\"value\":{:.3},\"unit\":\"{}\",\"peer\":\"{}\",\"peer_value\":{:.3},\"ratio\":{:.3},\"target\":{},\"met\":{},\"quick\":{}}}",
            figure.bench,
            figure.name,
            figure.value,
            figure.unit,
            figure.peer,
            figure.peer_value,
            figure.ratio(),
            figure.target.map_or("null".to_string(), |t| format!("{t:.2}")),
            figure.met(),
            quick(),
        );
        self.figures.push(figure);
    }

    /// Every figure so far.
    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    /// Prints the table of every figure.
    pub fn print_table(&self) {
        println!();
        println!(
            "{:<10} {:<56} {:>12} {:<8} {:<16} {:>14} {:>7} {:>7}",
            "bench", "figure", "value", "unit", "peer", "peer value", "ratio", "target"
        );
        for f in &self.figures {
            println!(
                "{:<10} {:<56} {:>12.1} {:<8} {:<16} {:>14.1} {:>7.2} {:>7}",
                f.bench,
                f.name,
                f.value,
                f.unit,
                f.peer,
                f.peer_value,
                f.ratio(),
                f.target.map_or("-".to_string(), |t| format!(
                    "{}{t:.2}",
                    if f.met() { "✓" } else { "✗" }
                )),
            );
        }
        if quick() {
            println!("(--quick: a smoke run; the figures are not meaningful)");
        }
    }
}
