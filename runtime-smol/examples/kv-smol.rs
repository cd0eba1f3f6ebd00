//! The key-value service of `onward-tokio`'s `kv` example on smol, all three roles in
//! one process: the service (`runtime-tokio/examples/kvstore/mod.rs`) is the same file;
//! only the runtime crate's name differs.
//!
//! ```sh
//! cargo run -p onward-smol --example kv-smol
//! ```

use std::time::Instant;

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
    let (server, server_address, id) = kv::server("127.0.0.1:0").await?;
    let (middle, middle_address) = kv::middle("127.0.0.1:0").await?;
    println!("kv demo: server {server_address} ({id}), middle {middle_address}");
    let started = Instant::now();
    let answered = kv::client(
        &middle_address.to_string(),
        &server_address.to_string(),
        id,
        10,
        50,
    )
    .await?;
    println!(
        "kv client: {answered} requests answered in {} ms",
        started.elapsed().as_millis()
    );
    middle.stop().await?;
    server.stop().await?;
    Ok(())
}
