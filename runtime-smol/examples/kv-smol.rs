//! The key-value service of `onward-tokio`'s `kv` example on smol, all three roles in
//! one process: the service (`runtime-tokio/examples/kvstore/mod.rs`) is the same file;
//! only the runtime crate's name differs.
//!
//! ```sh
//! cargo run -p onward-smol --example kv-smol
//! ```

use onward_smol as onward;

#[path = "../../runtime-tokio/examples/common/mod.rs"]
mod common;
#[path = "../../runtime-tokio/examples/kvstore/mod.rs"]
mod kv;

const PROGRAM: &str = "kv-smol";

fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, "");
    common::finish(PROGRAM, smol::block_on(run(args)))
}

async fn run(args: common::Args) -> common::Outcome {
    args.done()?;
    kv::demo().await
}
