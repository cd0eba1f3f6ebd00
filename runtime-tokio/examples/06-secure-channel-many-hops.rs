//! Step 06, Secure channel over many hops: the channel's route is
//! `route!["h1", "h2", "h3", "secure"]`, and the hops see only its encrypted records.
//!
//! ```sh
//! cargo run -p onward-tokio --example 06-secure-channel-many-hops
//! ```

use onward_tokio::{
    route, Access, Context, Identity, Node, Opaque, Result, Routed, TrustEveryone, TrustIdentifier,
    Worker,
};

mod common;

const PROGRAM: &str = "06-secure-channel-many-hops";
const USAGE: &str = "";

/// Forwards every message one step along its onward route, without reading it.
struct Hop;

impl Worker for Hop {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        println!(
            "{}: forwarding {} bytes the hop cannot read, onward route {}",
            ctx.address(),
            msg.payload().len(),
            msg.onward_route()
        );
        let mut message = msg.into_transport_message();
        message.onward_route.step();
        message.return_route.prepend(ctx.address().clone());
        ctx.forward(message).await
    }
}

/// Sends every message back to where it came from, saying who sent it.
struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        let peer = msg.sender().and_then(|end| ctx.secure_channel_peer(end));
        match peer {
            Some(peer) => println!(
                "echoer: received {:?} through a secure channel from {peer}",
                msg.body()
            ),
            None => println!(
                "echoer: received {:?} outside any secure channel",
                msg.body()
            ),
        }
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
        // The hops pass on what this node sends them; nothing reaches them from outside.
        node.start_worker_with(hop, Hop, Access::local_only())
            .await?;
    }

    let responder = Identity::generate()?;
    println!("responder identity: {}", responder.identifier());
    node.create_secure_channel_listener("secure", &responder, TrustEveryone)
        .await?;
    // The echoer takes messages from this node and through secure channels.
    node.start_worker_with("echoer", Echoer, Access::secure_channels())
        .await?;

    let initiator = Identity::generate()?;
    println!("initiator identity: {}", initiator.identifier());
    let channel = node
        .create_secure_channel(
            route!["h1", "h2", "h3", "secure"],
            &initiator,
            TrustIdentifier::new(responder.identifier()),
        )
        .await?;
    println!(
        "app: secure channel established at {}, peer verified as {}",
        channel.address(),
        channel.peer()
    );

    let mut ctx = node.context("app").await?;
    println!("app: sending \"Hello\" through the channel to echoer");
    ctx.send(route![channel.address(), "echoer"], "Hello".to_string())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!(
        "app: received {:?}, return route {}",
        reply.body(),
        reply.return_route()
    );

    node.stop().await?;
    Ok(())
}
