//! Step 01, Node: start a node on tokio and stop it cleanly.
//!
//! ```sh
//! cargo run -p onward-tokio --example 01-node
//! ```

use onward_tokio::{Node, Result};

#[tokio::main]
async fn main() -> Result<()> {
    // A node owns the router, the workers' mailboxes, connections and secure channels.
    let node = Node::start().await?;
    println!("node: started");

    // Stopping closes channels, lets workers finish their mailboxes, flushes
    // connections and ends every task the node started.
    node.stop().await?;
    println!("node: stopped");
    Ok(())
}
