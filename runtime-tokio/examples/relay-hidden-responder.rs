//! Relay, the hidden responder: a node with no listener at all. It connects to the
//! relay, registers the name "alice" through a secure channel to it, and serves a
//! secure channel listener at "secure" and an echoer, which initiators reach at
//! `route![tcp(relay), "relay/alice", "secure"]`. The registration is kept: after the
//! connection drops or the relay restarts, it registers again by itself.
//!
//! ```sh
//! cargo run -p onward-tokio --example relay-hidden-responder -- RELAY_IDENTIFIER [RELAY] [MESSAGES]
//! ```
//!
//! `RELAY_IDENTIFIER` is what the relay printed; `RELAY` defaults to `127.0.0.1:5000`.
//! It runs until it has echoed `MESSAGES` messages, if given, or until Ctrl-C.

use onward_tokio::{
    route, tcp, Access, Context, Identifier, Identity, Node, Result, Routed, TrustEveryone,
    TrustIdentifier, Worker,
};
use tokio::sync::mpsc;

mod common;

const PROGRAM: &str = "relay-hidden-responder";
const USAGE: &str = "RELAY_IDENTIFIER [RELAY] [MESSAGES]";

/// Sends every message back, saying who sent it, and counts it.
struct Echoer {
    echoed: mpsc::UnboundedSender<()>,
}

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        if let Some(peer) = msg.sender().and_then(|end| ctx.secure_channel_peer(end)) {
            println!(
                "echoer: received {:?} through a secure channel from {peer}",
                msg.body()
            );
        }
        ctx.send(msg.return_route(), msg.into_body()).await?;
        let _ = self.echoed.send(());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let relay_id: Identifier = args
        .next_parsed("RELAY_IDENTIFIER")?
        .ok_or("RELAY_IDENTIFIER is required")?;
    let relay = args.next().unwrap_or_else(|| "127.0.0.1:5000".to_string());
    let limit: Option<usize> = args.next_parsed("MESSAGES")?;
    args.done()?;

    let node = Node::start().await?;
    let identity = Identity::generate()?;
    println!("hidden: identity {}", identity.identifier());
    node.create_secure_channel_listener("secure", &identity, TrustEveryone)
        .await?;
    let (echoed, mut echoes) = mpsc::unbounded_channel();
    node.start_worker_with("echoer", Echoer { echoed }, Access::secure_channels())
        .await?;
    // No listener: the relay forwards to us over the connection we open to it.
    let registration = node
        .register_with_relay(
            route![tcp(&relay), "secure"],
            "relay",
            "alice",
            &identity,
            TrustIdentifier::new(relay_id),
        )
        .await?;
    println!(
        "hidden: registered, reachable at {} on {relay}",
        registration.address()
    );

    let echoed_enough = async {
        let mut count = 0;
        while Some(count) != limit && echoes.recv().await.is_some() {
            count += 1;
        }
        count
    };
    tokio::select! {
        count = echoed_enough => println!("hidden: echoed {count} messages, stopping"),
        _ = tokio::signal::ctrl_c() => println!("hidden: interrupted, stopping"),
    }
    node.stop().await?;
    Ok(())
}
