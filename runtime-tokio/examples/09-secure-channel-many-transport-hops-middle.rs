//! Step 09, Secure channel over many transport hops, middle node: only a TCP listener.
//!
//! It passes on the channel's records to the responder, and the responder's back, without
//! being able to read them: it holds no key, and besides the routes the records carry
//! only public keys and ciphertext.
//!
//! ```sh
//! cargo run -p onward-tokio --example 09-secure-channel-many-transport-hops-middle -- [ADDRESS]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:3000`. It runs until Ctrl-C.

use onward_tokio::Node;

mod common;

const PROGRAM: &str = "09-secure-channel-many-transport-hops-middle";
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
