//! Step 05, Secure channel: a listener at "secure" and an initiator in the same node;
//! the app talks to the echoer through the channel, `route![channel, "echoer"]`.
//!
//! ```sh
//! cargo run -p onward-tokio --example 05-secure-channel
//! ```

use onward_tokio::{
    route, Access, Context, Identity, Node, Result, Routed, TrustEveryone, TrustIdentifier, Worker,
};

mod common;

const PROGRAM: &str = "05-secure-channel";
const USAGE: &str = "";

/// Sends every message back to where it came from, saying who sent it.
struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        // A message that came through a secure channel has the channel's end first on
        // its return route; the channel knows the peer's verified identifier.
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

    // The responder's side: an identity, and a listener that accepts any initiator.
    let responder = Identity::generate()?;
    println!("responder identity: {}", responder.identifier());
    node.create_secure_channel_listener("secure", &responder, TrustEveryone)
        .await?;
    // The echoer takes messages from this node and through secure channels.
    node.start_worker_with("echoer", Echoer, Access::secure_channels())
        .await?;

    // The initiator's side: its own identity, and it accepts only that responder.
    let initiator = Identity::generate()?;
    println!("initiator identity: {}", initiator.identifier());
    let channel = node
        .create_secure_channel(
            route!["secure"],
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
