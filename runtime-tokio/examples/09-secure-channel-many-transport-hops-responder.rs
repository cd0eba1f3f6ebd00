//! Step 09, Secure channel over many transport hops, responder node: a TCP listener, a
//! secure channel listener at "secure" and the echoer. Start it first, then the middle
//! node and the initiator, each in its own terminal.
//!
//! ```sh
//! cargo run -p onward-tokio --example 09-secure-channel-many-transport-hops-responder -- [ADDRESS] [MESSAGES]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:4000`. It runs until it has echoed `MESSAGES`
//! messages, if given, or until Ctrl-C.

use onward_tokio::{Access, Context, Identity, Node, Result, Routed, TrustEveryone, Worker};
use tokio::sync::mpsc;

mod common;

const PROGRAM: &str = "09-secure-channel-many-transport-hops-responder";
const USAGE: &str = "[ADDRESS] [MESSAGES]";

/// Sends every message back to where it came from, saying who sent it, and counts it.
struct Echoer {
    echoed: mpsc::UnboundedSender<()>,
}

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        // The channel's end is first on the return route of what came through it.
        match msg.sender().and_then(|end| ctx.secure_channel_peer(end)) {
            Some(peer) => println!(
                "echoer: received {:?} through a secure channel from {peer}",
                msg.body()
            ),
            None => println!(
                "echoer: received {:?} outside any secure channel",
                msg.body()
            ),
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
    let address = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    let limit: Option<usize> = args.next_parsed("MESSAGES")?;
    args.done()?;

    let node = Node::start().await?;
    let identity = Identity::generate()?;
    println!("responder: identity {}", identity.identifier());
    // Any initiator may open a channel; each one is still authenticated, and the
    // echoer learns who it is.
    node.create_secure_channel_listener("secure", &identity, TrustEveryone)
        .await?;
    let (echoed, mut echoes) = mpsc::unbounded_channel();
    // The echoer takes messages only through secure channels (and from this node): a
    // plain frame sent to it over TCP is refused and counted.
    node.start_worker_with("echoer", Echoer { echoed }, Access::secure_channels())
        .await?;
    let bound = node.listen(&address).await?;
    println!("responder: listening on {bound}");

    let echoed_enough = async {
        let mut count = 0;
        while Some(count) != limit && echoes.recv().await.is_some() {
            count += 1;
        }
        count
    };
    tokio::select! {
        count = echoed_enough => println!("responder: echoed {count} messages, stopping"),
        _ = tokio::signal::ctrl_c() => println!("responder: interrupted, stopping"),
    }
    node.stop().await?;
    println!(
        "responder: refused {} messages",
        node.stats().messages_refused
    );
    Ok(())
}
