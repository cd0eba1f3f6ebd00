//! Step 07, Routing over a transport, initiator node: sends to the echoer on the
//! responder node, `route![tcp("127.0.0.1:4000"), "echoer"]`, and waits for the reply.
//! The node connects on demand when a route leads through a TCP address.
//!
//! ```sh
//! cargo run -p onward-tokio --example 07-routing-over-transport-initiator -- [RESPONDER]
//! ```
//!
//! `RESPONDER` is the responder's TCP address, `127.0.0.1:4000` by default.

use onward_tokio::{route, tcp, Access, Node, Routed};

mod common;

const PROGRAM: &str = "07-routing-over-transport-initiator";
const USAGE: &str = "[RESPONDER]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let responder = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    args.done()?;

    let node = Node::start().await?;
    // The reply comes back over plain TCP, which a context refuses unless told.
    let mut ctx = node.context_with("app", Access::anyone()).await?;
    let route = route![tcp(responder), "echoer"];
    println!("initiator: sending \"Hello\" along {route}");
    ctx.send(route, "Hello".to_string()).await?;

    let reply: Routed<String> = ctx.receive().await?;
    println!(
        "initiator: received {:?}, return route {}",
        reply.body(),
        reply.return_route()
    );

    node.stop().await?;
    Ok(())
}
