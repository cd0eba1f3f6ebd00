//! Step 08, Many transport hops, middle node: only a TCP listener, no workers.
//!
//! A message arriving with `route![tcp("127.0.0.1:4000"), "echoer"]` left in its onward
//! route is passed on to that TCP address; the reply comes back the same way, because
//! each node puts the connection it came from on the return route.
//!
//! ```sh
//! cargo run -p onward-tokio --example 08-many-transport-hops-middle -- [ADDRESS]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:3000`. It runs until Ctrl-C.

use onward_tokio::Node;

mod common;

const PROGRAM: &str = "08-many-transport-hops-middle";
const USAGE: &str = "[ADDRESS]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_string());
    args.done()?;

    let node = Node::start().await?;
    let bound = node.listen(&address).await?;
    println!("middle: listening on {bound}");

    tokio::signal::ctrl_c().await?;
    println!(
        "middle: interrupted after routing {} messages, stopping",
        node.stats().messages_routed
    );
    node.stop().await?;
    Ok(())
}
