//! Step 09, a secure channel over many transport hops, on async-std: three nodes in one
//! process. B listens on TCP and has a secure channel listener and an echoer; M only
//! listens on TCP; A opens a secure channel to B through M and talks to B's echoer
//! through it. M passes on channel records it cannot read.
//!
//! ```sh
//! cargo run -p onward-async-std --example 09-secure-channel-many-transport-hops-async-std
//! ```

use onward_async_std::{
    route, tcp, Access, Context, Identity, Node, Result, Routed, TrustEveryone, TrustIdentifier,
    Worker,
};

// The same conventions as the tokio examples: `RUST_LOG`, `--help`, errors as sentences.
#[path = "../../runtime-tokio/examples/common/mod.rs"]
mod common;

const PROGRAM: &str = "09-secure-channel-many-transport-hops-async-std";

/// Sends every message back to where it came from.
struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        println!("B: echoer received {:?}", msg.body());
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, "");
    common::finish(PROGRAM, async_std::task::block_on(run(args)))
}

async fn run(args: common::Args) -> common::Outcome {
    args.done()?;
    // B, the responder.
    let alice = Identity::generate()?;
    let b = Node::start().await?;
    let b_address = b.listen("127.0.0.1:0").await?;
    b.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await?;
    // Only through secure channels (and from B itself) may the echoer be reached.
    b.start_worker_with("echoer", Echoer, Access::secure_channels())
        .await?;
    println!(
        "B: listening on {b_address}, identity {}",
        alice.identifier()
    );

    // M, the middle node: a TCP listener and nothing else.
    let m = Node::start().await?;
    let m_address = m.listen("127.0.0.1:0").await?;
    println!("M: listening on {m_address}");

    // A, the initiator: a channel through M to B, accepting only B's identity.
    let bob = Identity::generate()?;
    let a = Node::start().await?;
    let route = route![
        tcp(m_address.to_string()),
        tcp(b_address.to_string()),
        "secure"
    ];
    println!("A: opening a secure channel along {route}");
    let channel = a
        .create_secure_channel(route, &bob, TrustIdentifier::new(alice.identifier()))
        .await?;
    println!(
        "A: secure channel established, B verified as {}",
        channel.peer()
    );

    let mut ctx = a.context("app").await?;
    ctx.send(route![channel.address(), "echoer"], "Hello B".to_string())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!("A: received {:?} back through the channel", reply.body());
    println!("M: routed {} messages", m.stats().messages_routed);

    a.stop().await?;
    m.stop().await?;
    b.stop().await?;
    Ok(())
}
