//! Step 02, Worker: start an echoer at the address "echoer", send it a message and
//! receive the reply.
//!
//! ```sh
//! cargo run -p onward-tokio --example 02-worker
//! ```

use onward_tokio::{route, Access, Context, Node, Result, Routed, Worker};

mod common;

const PROGRAM: &str = "02-worker";
const USAGE: &str = "";

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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
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
