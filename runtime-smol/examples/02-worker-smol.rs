//! Step 02, Worker, on smol: start an echoer at the address "echoer", send it a
//! message and receive the reply.
//!
//! ```sh
//! cargo run -p onward-smol --example 02-worker-smol
//! ```

use onward_smol::{route, Access, Context, Node, Result, Routed, Worker};

// The same conventions as the tokio examples: `RUST_LOG`, `--help`, errors as sentences.
#[path = "../../runtime-tokio/examples/common/mod.rs"]
mod common;

const PROGRAM: &str = "02-worker-smol";

/// Sends every message back to where it came from.
struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        println!(
            "echoer: received {:?}, replying along {}",
            msg.body(),
            msg.return_route()
        );
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, "");
    common::finish(PROGRAM, smol::block_on(run(args)))
}

async fn run(args: common::Args) -> common::Outcome {
    args.done()?;
    let node = Node::start().await?;
    // Only senders on this node may reach the echoer.
    node.start_worker_with("echoer", Echoer, Access::local_only())
        .await?;

    // The application's own address, to send from and receive replies at.
    let mut ctx = node.context("app").await?;
    println!("app: sending \"Hello\" to echoer");
    ctx.send(route!["echoer"], "Hello".to_string()).await?;

    let reply: Routed<String> = ctx.receive().await?;
    println!(
        "app: received {:?}, return route {}",
        reply.body(),
        reply.return_route()
    );

    node.stop().await?;
    Ok(())
}
