//! A key-value service over a secure channel through a middle node, in three roles,
//! or all three in one process:
//!
//! ```sh
//! cargo run -p onward-tokio --example kv -- server [ADDRESS]
//! cargo run -p onward-tokio --example kv -- middle [ADDRESS]
//! cargo run -p onward-tokio --example kv -- client MIDDLE SERVER SERVER_IDENTIFIER [TASKS] [PER_TASK]
//! cargo run -p onward-tokio --example kv -- demo
//! ```
//!
//! The server prints its identifier and address and runs until stopped; so does the
//! middle node. The client runs `TASKS` (10) concurrent tasks, each putting and
//! getting `PER_TASK` (50) keys, and prints how many requests were answered. The
//! service itself (`examples/kvstore/mod.rs`) is the same file on smol
//! (`onward-smol`'s `kv-smol` example).

use std::time::Instant;

use onward_tokio as onward;

mod common;
mod kvstore;
use kvstore as kv;

const PROGRAM: &str = "kv";
const USAGE: &str =
    "server [ADDRESS] | middle [ADDRESS] | client MIDDLE SERVER SERVER_IDENTIFIER [TASKS] [PER_TASK] | demo";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    match args.next().as_deref() {
        Some("server") => {
            let address = args.next().unwrap_or_else(|| "127.0.0.1:4000".into());
            args.done()?;
            let (_node, bound, id) = kv::server(&address).await?;
            println!("kv server: identifier {id}");
            println!("kv server: listening on {bound}");
            futures::future::pending::<()>().await;
            Ok(())
        }
        Some("middle") => {
            let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
            args.done()?;
            let (_node, bound) = kv::middle(&address).await?;
            println!("kv middle: listening on {bound}");
            futures::future::pending::<()>().await;
            Ok(())
        }
        Some("client") => {
            let (Some(middle), Some(server)) = (args.next(), args.next()) else {
                return Err(format!(
                    "client needs MIDDLE SERVER SERVER_IDENTIFIER; usage: {PROGRAM} {USAGE}"
                )
                .into());
            };
            let server_id: onward::Identifier = args.next_parsed("server identifier")?.ok_or(
                format!("client needs SERVER_IDENTIFIER; usage: {PROGRAM} {USAGE}"),
            )?;
            let tasks = args.next_parsed("tasks")?.unwrap_or(10);
            let per_task = args.next_parsed("per task")?.unwrap_or(50);
            args.done()?;
            let started = Instant::now();
            let answered = kv::client(&middle, &server, server_id, tasks, per_task).await?;
            println!(
                "kv client: {answered} requests answered in {} ms",
                started.elapsed().as_millis()
            );
            Ok(())
        }
        Some("demo") | None => {
            args.done()?;
            kv::demo().await
        }
        Some(other) => Err(format!("unknown role {other:?}; usage: {PROGRAM} {USAGE}").into()),
    }
}
