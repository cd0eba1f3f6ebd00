//! Step 01, Node: start a node on tokio and stop it cleanly.
//!
//! ```sh
//! cargo run -p onward-tokio --example 01-node
//! ```

use onward_tokio::Node;

mod common;

const PROGRAM: &str = "01-node";
const USAGE: &str = "";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(args: common::Args) -> common::Outcome {
    // A node owns the router, the workers' mailboxes, connections and secure channels.
    args.done()?;
    let node = Node::start().await?;
    println!("node: started");

    // Stopping closes channels, lets workers finish their mailboxes, flushes
    // connections and ends every task the node started.
    node.stop().await?;
    println!("node: stopped");
    Ok(())
}
