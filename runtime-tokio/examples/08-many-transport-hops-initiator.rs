//! Step 08, Many transport hops, initiator node: sends to the echoer on the responder
//! node through the middle node, `route![tcp(middle), tcp(responder), "echoer"]`.
//!
//! ```sh
//! cargo run -p onward-tokio --example 08-many-transport-hops-initiator -- [MIDDLE] [RESPONDER]
//! ```
//!
//! `MIDDLE` defaults to `127.0.0.1:3000` and `RESPONDER` to `127.0.0.1:4000`; the
//! responder's address is the one the middle node connects to.

use onward_tokio::{route, tcp, Access, Node, Routed};

mod common;

const PROGRAM: &str = "08-many-transport-hops-initiator";
const USAGE: &str = "[MIDDLE] [RESPONDER]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let middle = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let responder = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    args.done()?;

    let node = Node::start().await?;
    // The reply comes back over plain TCP, which a context refuses unless told.
    let mut ctx = node.context_with("app", Access::anyone()).await?;
    let route = route![tcp(middle), tcp(responder), "echoer"];
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
