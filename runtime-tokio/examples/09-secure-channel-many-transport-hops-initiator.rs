//! Step 09, Secure channel over many transport hops, initiator node: opens a secure
//! channel to the responder's listener through the middle node,
//! `route![tcp(middle), tcp(responder), "secure"]`, then talks to the echoer through it.
//! The middle node passes on only encrypted records.
//!
//! ```sh
//! cargo run -p onward-tokio --example 09-secure-channel-many-transport-hops-initiator -- [MIDDLE] [RESPONDER]
//! ```
//!
//! `MIDDLE` defaults to `127.0.0.1:3000` and `RESPONDER` to `127.0.0.1:4000`.

use onward_tokio::{route, tcp, Identity, Node, Routed, TrustEveryone};

mod common;

const PROGRAM: &str = "09-secure-channel-many-transport-hops-initiator";
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
    let identity = Identity::generate()?;
    println!("initiator: identity {}", identity.identifier());

    // The handshake travels the route; the channel is usable once both sides have
    // proved their identities. Step 10 restricts whom each side trusts.
    let channel = node
        .create_secure_channel(
            route![tcp(middle), tcp(responder), "secure"],
            &identity,
            TrustEveryone,
        )
        .await?;
    println!(
        "initiator: secure channel established at {}, responder verified as {}",
        channel.address(),
        channel.peer()
    );

    let mut ctx = node.context("app").await?;
    println!("initiator: sending \"Hello\" through the channel to echoer");
    ctx.send(route![channel.address(), "echoer"], "Hello".to_string())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!(
        "initiator: received {:?}, return route {}",
        reply.body(),
        reply.return_route()
    );

    node.stop().await?;
    Ok(())
}
