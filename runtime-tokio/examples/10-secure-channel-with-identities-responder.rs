//! Step 10, Secure channel with identities, responder node: a long-term identity kept
//! in a key file, and a trust policy of its own. Start it first; it prints its
//! identifier, which the initiator needs.
//!
//! ```sh
//! cargo run -p onward-tokio --example 10-secure-channel-with-identities-responder -- [ADDRESS] [KEY_FILE] [MESSAGES] [INITIATOR_IDENTIFIER]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:4000`. `KEY_FILE` (default `onward-responder.key`
//! in the temporary directory) is loaded if it exists, otherwise a new identity is
//! generated and saved there, so the identifier stays the same from run to run. It
//! runs until it has echoed `MESSAGES` messages, if given (`-` for no limit), or until
//! Ctrl-C. With `INITIATOR_IDENTIFIER`, only that initiator may open a channel and
//! reach the echoer; without it, any initiator may, each one still authenticated.

use std::path::{Path, PathBuf};

use onward_tokio::{
    Access, Context, Identifier, Identity, Node, Result, Routed, TrustIdentifier, Worker,
};
use tokio::sync::mpsc;

mod common;

const PROGRAM: &str = "10-secure-channel-with-identities-responder";
const USAGE: &str = "[ADDRESS] [KEY_FILE] [MESSAGES] [INITIATOR_IDENTIFIER]";

/// Sends every message back to where it came from, saying who sent it, and counts it.
struct Echoer {
    echoed: mpsc::UnboundedSender<()>,
}

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
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

/// Loads the identity in `path`, or generates one and saves it there (mode 0600).
fn load_or_generate(path: &Path) -> Result<Identity> {
    if path.exists() {
        let identity = Identity::load(path)?;
        println!(
            "responder: loaded identity {} from {}",
            identity.identifier(),
            path.display()
        );
        Ok(identity)
    } else {
        let identity = Identity::generate()?;
        identity.save(path)?;
        println!(
            "responder: generated identity {}, saved to {}",
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
    let address = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    let key_file = args.next().map_or_else(
        || std::env::temp_dir().join("onward-responder.key"),
        PathBuf::from,
    );
    let limit: Option<usize> = args.next_parsed("MESSAGES")?;
    let initiator: Option<Identifier> = args.next_parsed("INITIATOR_IDENTIFIER")?;
    args.done()?;

    let node = Node::start().await?;
    let identity = load_or_generate(&key_file)?;
    println!("responder: identifier {}", identity.identifier());

    // A custom trust policy is any `Fn(&Identifier) -> bool`. It is asked once per
    // handshake, after the initiator has proved it holds the identity's key. This one
    // accepts the initiator it was told about, or everyone, and says what it decided.
    let trust = move |peer: &Identifier| {
        let accepted = initiator.is_none_or(|only| *peer == only);
        let verdict = if accepted { "accepts" } else { "refuses" };
        println!("responder: trust policy {verdict} {peer}");
        accepted
    };
    node.create_secure_channel_listener("secure", &identity, trust)
        .await?;
    // The echoer takes messages only through secure channels, and with an initiator
    // given, only through channels from it. (And from this node.)
    let access = match initiator {
        Some(only) => Access::secure_channels_from(TrustIdentifier::new(only)),
        None => Access::secure_channels(),
    };
    let (echoed, mut echoes) = mpsc::unbounded_channel();
    node.start_worker_with("echoer", Echoer { echoed }, access)
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
