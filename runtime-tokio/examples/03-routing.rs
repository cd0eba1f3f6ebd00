//! Step 03, Routing: a hop worker passes messages on, and the reply retraces the route.
//!
//! The app sends to `route!["h1", "echoer"]`. The hop at "h1" takes itself off the
//! front of the onward route and puts itself on the front of the return route, so the
//! echoer's reply goes back through "h1" to the app.
//!
//! ```sh
//! cargo run -p onward-tokio --example 03-routing
//! ```

use onward_tokio::{route, Access, Context, Node, Opaque, Result, Routed, Worker};

mod common;

const PROGRAM: &str = "03-routing";
const USAGE: &str = "";

/// Forwards every message one step along its onward route.
struct Hop;

impl Worker for Hop {
    // A hop never reads the body: `Opaque` takes every payload as it is.
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        println!(
            "{}: onward route {}, return route {}",
            ctx.address(),
            msg.onward_route(),
            msg.return_route()
        );
        let mut message = msg.into_transport_message();
        message.onward_route.step(); // this hop
        message.return_route.prepend(ctx.address().clone()); // replies come back here
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
    // Both workers take messages only from senders on this node.
    node.start_worker_with("h1", Hop, Access::local_only())
        .await?;
    node.start_worker_with("echoer", Echoer, Access::local_only())
        .await?;

    let mut ctx = node.context("app").await?;
    let route = route!["h1", "echoer"];
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
