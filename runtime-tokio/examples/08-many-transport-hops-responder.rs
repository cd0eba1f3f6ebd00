//! Step 08, Many transport hops, responder node: listens on TCP and runs the echoer.
//! Start it first, then the middle node and the initiator, each in its own terminal.
//!
//! ```sh
//! cargo run -p onward-tokio --example 08-many-transport-hops-responder -- [ADDRESS] [MESSAGES]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:4000`. It runs until it has echoed `MESSAGES`
//! messages, if given, or until Ctrl-C.

use onward_tokio::{Access, Context, Node, Result, Routed, Worker};
use tokio::sync::mpsc;

mod common;

const PROGRAM: &str = "08-many-transport-hops-responder";
const USAGE: &str = "[ADDRESS] [MESSAGES]";

/// Sends every message back to where it came from, and counts it.
struct Echoer {
    echoed: mpsc::UnboundedSender<()>,
}

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        println!(
            "echoer: received {:?}, replying along {}",
            msg.body(),
            msg.return_route()
        );
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
    let (echoed, mut echoes) = mpsc::unbounded_channel();
    // Plain routing over TCP, on purpose: anyone who can connect may reach the echoer.
    node.start_worker_with("echoer", Echoer { echoed }, Access::anyone())
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
    Ok(())
}
