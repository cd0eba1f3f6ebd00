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

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_string());

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
