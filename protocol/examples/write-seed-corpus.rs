//! Writes the fuzz targets' seed inputs (`onward_protocol::fuzzing::seeds`) into
//! `fuzz/corpus/<target>/seed-<name>`. Run it after changing an input layout in the
//! fuzzing module:
//!
//! ```text
//! cargo run -p onward-protocol --example write-seed-corpus
//! ```

use std::path::Path;

use onward_protocol::fuzzing::{seeds, TARGETS};

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
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
