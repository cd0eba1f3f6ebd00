//! The demo: three nodes in one process, and a secure channel from A to B over two TCP
//! hops through M.
//!
//! ```sh
//! cargo run -p onward-tokio --example demo
//! ```
//!
//! - B, the responder, listens on TCP and has a secure channel listener and an echoer.
//! - M, the middle node, only listens on TCP: it has no code of its own.
//! - A, the initiator, opens a secure channel to B through M and sends a message to B's
//!   echoer through it.
//!
//! A reaches M through a tap: a small TCP proxy in front of M's listener that copies
//! bytes both ways and prints every frame M receives from A and sends back to A. M
//! sees the routes, which it needs to pass frames on, and channel records: handshake
//! records (public keys and encrypted identity proofs) and encrypted transport
//! records. It never sees the message; the demo checks that its bytes never appear.

use std::sync::{Arc, Mutex, PoisonError};

use onward_tokio::protocol::framing::FrameDecoder;
use onward_tokio::{
    route, tcp, Access, Context, Identifier, Identity, Node, Result, Routed, TransportMessage,
    TrustIdentifier, Worker,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

mod common;

const PROGRAM: &str = "demo";
const USAGE: &str = "";

/// What A sends; the demo checks that M never sees these bytes.
const SECRET: &str = "Hello B, this is A: the vault code is 4711";

/// B's echoer: prints what arrived and who sent it, and sends it back.
struct Echoer {
    verified: mpsc::UnboundedSender<Identifier>,
}

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        if let Some(peer) = msg.channel_peer().copied() {
            println!(
                "B: echoer received {:?} through a secure channel from {peer}",
                msg.body()
            );
            let _ = self.verified.send(peer);
        }
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::logging();
    let args = common::Args::parse(PROGRAM, USAGE);
    common::finish(PROGRAM, run(args).await)
}

async fn run(args: common::Args) -> common::Outcome {
    args.done()?;
    let alice = Identity::generate()?; // B's identity
    let bob = Identity::generate()?; // A's identity

    // B: a TCP listener, a secure channel listener that accepts only A, an echoer.
    let b = Node::start().await?;
    b.create_secure_channel_listener("secure", &alice, TrustIdentifier::new(bob.identifier()))
        .await?;
    let (verified, mut verified_by_b) = mpsc::unbounded_channel();
    // The echoer takes messages only through channels from A (and from B itself).
    b.start_worker_with(
        "echoer",
        Echoer { verified },
        Access::secure_channels_from(TrustIdentifier::new(bob.identifier())),
    )
    .await?;
    let b_address = b.listen("127.0.0.1:0").await?;
    println!(
        "B: listening on {b_address}, identity {}",
        alice.identifier()
    );

    // M: only a TCP listener. The tap in front of it records what M sees.
    let m = Node::start().await?;
    let m_address = m.listen("127.0.0.1:0").await?;
    let tap = TcpListener::bind("127.0.0.1:0").await?;
    let tap_address = tap.local_addr()?;
    println!("M: listening on {m_address}, reached through a tap at {tap_address}");
    let seen_by_m = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(run_tap(tap, m_address.to_string(), seen_by_m.clone()));

    // A: a secure channel to B's listener through M, accepting only B.
    let a = Node::start().await?;
    println!("A: identity {}", bob.identifier());
    let route = route![
        tcp(tap_address.to_string()),
        tcp(b_address.to_string()),
        "secure"
    ];
    println!("A: opening a secure channel along {route}");
    let channel = a
        .create_secure_channel(route, &bob, TrustIdentifier::new(alice.identifier()))
        .await?;
    println!(
        "A: secure channel established, B verified as {}",
        channel.peer()
    );

    let mut ctx = a.context("app").await?;
    println!("A: sending {SECRET:?} to B's echoer through the channel");
    ctx.send(route![channel.address(), "echoer"], SECRET.to_string())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!("A: received {:?}", reply.body());
    let a_verified = *channel.peer();
    let b_verified = verified_by_b.recv().await.ok_or("B's echoer stopped")?;

    let m_routed = m.stats().messages_routed;
    a.stop().await?;
    m.stop().await?;
    b.stop().await?;

    let seen = seen_by_m.lock().unwrap_or_else(PoisonError::into_inner);
    let leaked = seen.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    println!();
    println!("A verified B as {a_verified}");
    println!("B verified A as {b_verified}");
    println!(
        "M routed {m_routed} messages, {} bytes on its connection with A; the plaintext appears in them: {}",
        seen.len(),
        if leaked { "yes" } else { "no" }
    );
    if leaked {
        return Err("M saw the plaintext".into());
    }
    if a_verified != alice.identifier() || b_verified != bob.identifier() {
        return Err("a side verified the wrong identity".into());
    }
    println!("demo: done");
    Ok(())
}

/// Accepts connections meant for M and copies them to `m`, both ways, printing the
/// frames that pass and keeping every byte in `seen`.
async fn run_tap(tap: TcpListener, m: String, seen: Arc<Mutex<Vec<u8>>>) {
    while let Ok((from_a, _)) = tap.accept().await {
        let to_m = match TcpStream::connect(&m).await {
            Ok(stream) => stream,
            Err(error) => {
                eprintln!("tap: cannot reach M at {m}: {error}");
                continue;
            }
        };
        let (a_read, a_write) = from_a.into_split();
        let (m_read, m_write) = to_m.into_split();
        tokio::spawn(pipe(a_read, m_write, "M received from A", seen.clone()));
        tokio::spawn(pipe(m_read, a_write, "M sent to A", seen.clone()));
    }
}

/// Copies bytes from `from` to `to` until either side closes, printing each frame.
async fn pipe(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    label: &'static str,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut frames = FrameDecoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bytes = buf.get(..n).unwrap_or_default();
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        // Print the frames these bytes complete (anything that is not onward framing
        // is copied on unprinted), then pass the bytes on.
        if frames.handle_bytes(bytes).is_ok() {
            while let Some(frame) = frames.poll_frame() {
                if let Ok(message) = TransportMessage::decode(&frame) {
                    println!(
                        "{label}: onward {}, return {}, payload {} bytes {}...",
                        message.onward_route,
                        message.return_route,
                        message.payload.len(),
                        hex(message.payload.get(..12).unwrap_or(&message.payload))
                    );
                }
            }
        }
        if to.write_all(bytes).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
