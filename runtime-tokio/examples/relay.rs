//! Relay, the relay node: it listens on TCP and runs a relay service at "relay", so
//! that a node without a listener can register a name with it and be reached at
//! `"relay/<name>"` through it. Registrations come through a secure channel to its
//! listener "secure"; the relay forwards what is sent to a name over the registering
//! node's connection, and sees only routes and channel records.
//!
//! ```sh
//! cargo run -p onward-tokio --example relay -- [ADDRESS]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:5000`. It prints the relay's identity (the hidden
//! node trusts it) and runs until Ctrl-C. Then start `relay-hidden-responder` and
//! `relay-initiator`.

use onward_tokio::{Access, Identity, Node, TrustEveryone};

mod common;

const PROGRAM: &str = "relay";
const USAGE: &str = "[ADDRESS]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let address = args.next().unwrap_or_else(|| "127.0.0.1:5000".to_string());
    args.done()?;

    let node = Node::start().await?;
    let identity = Identity::generate()?;
    println!("relay: identity {}", identity.identifier());
    node.create_secure_channel_listener("secure", &identity, TrustEveryone)
        .await?;
    // Who may register names: here any node with a secure channel to us. A name then
    // belongs to the identity that registered it first.
    node.create_relay("relay", Access::secure_channels())
        .await?;
    let bound = node.listen(&address).await?;
    println!("relay: listening on {bound}");

    tokio::signal::ctrl_c().await?;
    for (name, owner, connected) in node.relay_names() {
        println!("relay: {name} registered by {owner}, connected: {connected}");
    }
    println!(
        "relay: interrupted after routing {} messages, stopping",
        node.stats().messages_routed
    );
    node.stop().await?;
    Ok(())
}
