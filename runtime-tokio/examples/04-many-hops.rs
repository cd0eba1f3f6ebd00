//! Step 04, Many hops: three hop workers in a chain, `route!["h1", "h2", "h3", "echoer"]`.
//!
//! Each hop takes itself off the onward route and puts itself on the return route, so
//! the reply travels h3, h2, h1 back to the app.
//!
//! ```sh
//! cargo run -p onward-tokio --example 04-many-hops
//! ```

use onward_tokio::{route, Access, Context, Node, Opaque, Result, Routed, Worker};

mod common;

const PROGRAM: &str = "04-many-hops";
const USAGE: &str = "";

/// Forwards every message one step along its onward route.
struct Hop;

impl Worker for Hop {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        println!(
            "{}: onward route {}, return route {}",
            ctx.address(),
            msg.onward_route(),
            msg.return_route()
        );
        let mut message = msg.into_transport_message();
        message.onward_route.step();
        message.return_route.prepend(ctx.address().clone());
        ctx.forward(message).await
    }
}

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
    for hop in ["h1", "h2", "h3"] {
        node.start_worker_with(hop, Hop, Access::local_only())
            .await?;
    }
    // Every worker takes messages only from senders on this node.
    node.start_worker_with("echoer", Echoer, Access::local_only())
        .await?;

    let mut ctx = node.context("app").await?;
    let route = route!["h1", "h2", "h3", "echoer"];
    println!("app: sending \"Hello\" along {route}");
    ctx.send(route, "Hello".to_string()).await?;

    let reply: Routed<String> = ctx.receive().await?;
    println!(
        "app: received {:?}, return route {}",
        reply.body(),
        reply.return_route()
    );

    node.stop().await?;
    Ok(())
}
