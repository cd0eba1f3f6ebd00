//! Writes the fuzz targets' seed inputs (`onward_fuzz_harness::seeds`) into
//! `fuzz/corpus/<target>/seed-<name>`. Run it after changing an input layout in the
//! harness:
//!
//! ```text
//! cargo run -p onward-fuzz-harness --example write-seed-corpus
//! ```

use std::path::Path;

use onward_fuzz_harness::{seeds, TARGETS};

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for (name, _) in TARGETS {
        let dir = corpus.join(name);
        std::fs::create_dir_all(&dir)?;
        for (seed, input) in seeds(name) {
            std::fs::write(dir.join(format!("seed-{seed}")), input)?;
        }
        println!("{}: {} seeds", dir.display(), seeds(name).len());
    }
    Ok(())
}
