//! Step 10, Secure channel with identities, initiator node: its own long-term identity
//! in a key file, and it trusts only the responder it was told about.
//!
//! ```sh
//! cargo run -p onward-tokio --example 10-secure-channel-with-identities-initiator -- RESPONDER_IDENTIFIER [RESPONDER] [KEY_FILE]
//! ```
//!
//! `RESPONDER_IDENTIFIER` is the `I...` identifier the responder printed. `RESPONDER`
//! defaults to `127.0.0.1:4000`; `KEY_FILE` to `onward-initiator.key` in the temporary
//! directory, loaded if it exists, otherwise generated and saved. If the node at the
//! responder's address proves any other identity, the channel is refused and the
//! program exits with the error.

use std::path::{Path, PathBuf};

use onward_tokio::{route, tcp, Identifier, Identity, Node, Result, Routed, TrustIdentifier};

mod common;

const PROGRAM: &str = "10-secure-channel-with-identities-initiator";
const USAGE: &str = "RESPONDER_IDENTIFIER [RESPONDER] [KEY_FILE]";

/// Loads the identity in `path`, or generates one and saves it there (mode 0600).
fn load_or_generate(path: &Path) -> Result<Identity> {
    if path.exists() {
        let identity = Identity::load(path)?;
        println!(
            "initiator: loaded identity {} from {}",
            identity.identifier(),
            path.display()
        );
        Ok(identity)
    } else {
        let identity = Identity::generate()?;
        identity.save(path)?;
        println!(
            "initiator: generated identity {}, saved to {}",
            identity.identifier(),
            path.display()
        );
        Ok(identity)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(mut args: common::Args) -> common::Outcome {
    let trusted: Identifier = args.next_parsed("RESPONDER_IDENTIFIER")?.ok_or(format!(
        "RESPONDER_IDENTIFIER is missing; usage: {PROGRAM} {USAGE}"
    ))?;
    let responder = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    let key_file = args.next().map_or_else(
        || std::env::temp_dir().join("onward-initiator.key"),
        PathBuf::from,
    );
    args.done()?;

    let node = Node::start().await?;
    let identity = load_or_generate(&key_file)?;
    println!("initiator: identifier {}", identity.identifier());

    // Only the responder whose identifier we were given is accepted: anyone else at
    // that address fails the handshake, and no message is sent.
    println!("initiator: trusting only {trusted}");
    let channel = node
        .create_secure_channel(
            route![tcp(responder), "secure"],
            &identity,
            TrustIdentifier::new(trusted),
        )
        .await?;
    println!(
        "initiator: secure channel established, responder verified as {}",
        channel.peer()
    );

    let mut ctx = node.context("app").await?;
    println!("initiator: sending \"Hello\" through the channel to echoer");
    ctx.send(route![channel.address(), "echoer"], "Hello".to_string())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!("initiator: received {:?}", reply.body());

    node.stop().await?;
    Ok(())
}
