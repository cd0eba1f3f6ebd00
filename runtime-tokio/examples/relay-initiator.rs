//! Relay, the initiator: opens a secure channel to the hidden responder's listener
//! through the relay, `route![tcp(relay), "relay/alice", "secure"]`, and talks to the
//! echoer through it. The relay passes on only routes and encrypted records.
//!
//! ```sh
//! cargo run -p onward-tokio --example relay-initiator -- HIDDEN_IDENTIFIER [RELAY]
//! ```
//!
//! `HIDDEN_IDENTIFIER` is what the hidden responder printed; `RELAY` defaults to
//! `127.0.0.1:5000`.

use onward_tokio::{route, tcp, Identifier, Identity, Node, Routed, TrustIdentifier};

mod common;

const PROGRAM: &str = "relay-initiator";
const USAGE: &str = "HIDDEN_IDENTIFIER [RELAY]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let hidden: Identifier = args
        .next_parsed("HIDDEN_IDENTIFIER")?
        .ok_or("HIDDEN_IDENTIFIER is required")?;
    let relay = args.next().unwrap_or_else(|| "127.0.0.1:5000".to_string());
    args.done()?;

    let node = Node::start().await?;
    let identity = Identity::generate()?;
    let channel = node
        .create_secure_channel(
            route![tcp(&relay), "relay/alice", "secure"],
            &identity,
            TrustIdentifier::new(hidden),
        )
        .await?;
    println!(
        "initiator: secure channel established at {}, hidden node verified as {}",
        channel.address(),
        channel.peer()
    );
    let mut ctx = node.context("app").await?;
    ctx.send(route![channel.address(), "echoer"], "Hello".to_string())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!("initiator: received {:?}", reply.body());
    node.stop().await?;
    Ok(())
}
