//! onward on tokio.
//!
//! This crate implements onward's [`Runtime`] for tokio
//! and re-exports the node API, so that an application reads:
//!
//! ```no_run
//! use onward_tokio::{route, Context, Node, Result, Routed, Worker};
//!
//! struct Echoer;
//!
//! impl Worker for Echoer {
//!     type Message = String;
//!     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
//!         ctx.send(msg.return_route(), msg.into_body()).await
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let node = Node::start().await?;
//!     node.start_worker("echoer", Echoer).await?;
//!     let mut ctx = node.context("app").await?;
//!     ctx.send(route!["echoer"], "Hello".to_string()).await?;
//!     let reply: Routed<String> = ctx.receive().await?;
//!     assert_eq!(reply.body(), "Hello");
//!     node.stop().await
//! }
//! ```
//!
//! It contains no protocol logic: everything but the sockets, timers and task
//! spawning comes from `onward-protocol`.
//!
//! # The API in five minutes
//!
//! Everything below comes from this crate; on smol or async-std only the crate name
//! and the line that runs `main` change (see [Other runtimes](#other-runtimes)). The
//! guide's ten steps, one program each, are in `runtime-tokio/examples/`.
//!
//! ## Nodes
//!
//! [`Node::start`] starts a node on the current tokio runtime, and [`Node::start_with`]
//! takes [`NodeOptions`] to change its limits and timeouts. `node.stop().await`
//! closes the node's secure channels (telling their peers), lets workers finish the
//! messages in their mailboxes, flushes connections and ends the node's tasks. A
//! `Node` is cheap to clone, and every clone is a handle on the same node.
//!
//! ```
//! use std::time::Duration;
//!
//! use onward_tokio::{Node, NodeOptions, Result};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<()> {
//!     let options = NodeOptions {
//!         receive_timeout: Duration::from_secs(5),
//!         ..NodeOptions::default()
//!     };
//!     let node = Node::start_with(options).await?;
//!     let same_node = node.clone();
//!     same_node.stop().await
//! }
//! ```
//!
//! ## Workers
//!
//! A [`Worker`] is code that runs at an address and handles the messages sent there.
//! Write `handle_message` as a plain `async fn`. The body type is any `serde` type,
//! carried as CBOR. A [`Routed<M>`](Routed) is the body with its routes:
//! [`body`](Routed::body), [`into_body`](Routed::into_body),
//! [`return_route`](Routed::return_route) (where to reply),
//! [`sender`](Routed::sender) and [`onward_route`](Routed::onward_route).
//!
//! A worker that passes messages on without reading them takes `type Message = Opaque`
//! and forwards the whole message: it takes the [`TransportMessage`] with
//! [`into_transport_message`](Routed::into_transport_message), removes itself from the
//! front of the onward route with `step()`, puts itself on the front of the return
//! route with `prepend(..)`, and hands it to [`Context::forward`]. The reply then
//! comes back through it (step 03, `examples/03-routing.rs`).
//!
//! ```
//! use onward_tokio::{route, Opaque, Context, Node, Result, Routed, Worker};
//!
//! /// Sends every message back to where it came from.
//! struct Echoer;
//!
//! impl Worker for Echoer {
//!     type Message = String;
//!
//!     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
//!         ctx.send(msg.return_route(), msg.into_body()).await
//!     }
//! }
//!
//! /// Passes every message one step along its onward route.
//! struct Hop;
//!
//! impl Worker for Hop {
//!     type Message = Opaque;
//!
//!     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
//!         let mut message = msg.into_transport_message();
//!         message.onward_route.step(); // this hop
//!         message.return_route.prepend(ctx.address().clone()); // replies come back here
//!         ctx.forward(message).await
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<()> {
//!     let node = Node::start().await?;
//!     node.start_worker("h1", Hop).await?;
//!     node.start_worker("echoer", Echoer).await?;
//!
//!     let mut ctx = node.context("app").await?;
//!     ctx.send(route!["h1", "echoer"], "Hello".to_string()).await?;
//!     let reply: Routed<String> = ctx.receive().await?;
//!     assert_eq!(reply.body(), "Hello");
//!     assert_eq!(reply.return_route(), route!["h1", "echoer"]);
//!
//!     node.stop_worker("h1").await?;
//!     node.stop().await
//! }
//! ```
//!
//! ## Contexts
//!
//! A [`Context`] is an address with a mailbox, for the application to send from and
//! receive at: `let mut ctx = node.context("app").await?`, then
//! `ctx.send(route, body).await?` and `let reply: Routed<String> = ctx.receive().await?`.
//! [`Context::receive`] waits up to the node's receive timeout;
//! [`Context::receive_timeout`] chooses the wait. [`Context::sender`] gives a handle
//! that sends as the context from another task while this one receives. Workers get a
//! context in every call.
//!
//! ```
//! use std::time::Duration;
//!
//! use onward_tokio::{Error, Node, Result};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<()> {
//!     let node = Node::start().await?;
//!     let mut ctx = node.context("app").await?;
//!     let nothing = ctx.receive_timeout::<String>(Duration::from_millis(10)).await;
//!     assert!(matches!(nothing, Err(Error::Timeout(_))));
//!     node.stop().await
//! }
//! ```
//!
//! ## Routes and transports
//!
//! [`route!`] lists addresses, next hop first. Plain strings are local addresses, and
//! [`tcp("127.0.0.1:4000")`](tcp()) is a TCP peer. A route through a TCP address
//! connects on demand, and the node at the other end carries on with the rest of the
//! route. [`node.listen("127.0.0.1:4000")`](protocol::api::Node::listen) accepts
//! connections; port 0 picks a free port, and the bound address is returned. Replies
//! need no set-up: each hop and each connection puts an address that leads back on
//! the return route.
//!
//! Two nodes in one process, the second reaching the first's echoer over TCP (step
//! 07):
//!
//! ```
//! # use onward_tokio::{Context, Routed, Worker};
//! # struct Echoer;
//! # impl Worker for Echoer {
//! #     type Message = String;
//! #     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> onward_tokio::Result<()> {
//! #         ctx.send(msg.return_route(), msg.into_body()).await
//! #     }
//! # }
//! use onward_tokio::{route, tcp, Access, Node, Result};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<()> {
//!     let b = Node::start().await?;
//!     // Plain messages over TCP reach only workers and contexts that say they take
//!     // them: anyone able to connect could have sent one.
//!     b.start_worker_with("echoer", Echoer, Access::anyone()).await?;
//!     let bound = b.listen("127.0.0.1:0").await?;
//!
//!     let a = Node::start().await?;
//!     let mut ctx = a.context_with("app", Access::anyone()).await?;
//!     ctx.send(route![tcp(bound.to_string()), "echoer"], "Hello".to_string())
//!         .await?;
//!     let reply: Routed<String> = ctx.receive().await?;
//!     assert_eq!(reply.body(), "Hello");
//!
//!     a.stop().await?;
//!     b.stop().await
//! }
//! ```
//!
//! ## Secure channels
//!
//! A listener on one node, [`create_secure_channel_listener`], and an initiator
//! anywhere a route reaches, [`create_secure_channel`], with a route to the listener
//! through any hops and TCP connections. `create_secure_channel` returns once the
//! handshake is done and both sides have proved their identities;
//! [`channel.peer()`](SecureChannel::peer) is the responder's verified identifier.
//! Send through the channel with `route![channel.address(), ...]`: the rest of the
//! route is followed on the far node. On the responder, a worker learns who sent a
//! message through a channel with [`msg.channel_peer()`](Routed::channel_peer). Nodes
//! in between see only routes and encrypted records. [`close_secure_channel`] closes
//! a channel and tells the peer.
//!
//! [`create_secure_channel_listener`]: protocol::api::Node::create_secure_channel_listener
//! [`create_secure_channel`]: protocol::api::Node::create_secure_channel
//! [`close_secure_channel`]: protocol::api::Node::close_secure_channel
//!
//! An initiator that reaches a responder listening on `127.0.0.1:4000` through a
//! middle node listening on `127.0.0.1:3000` (steps 08 and 09; this needs both to be
//! running, so it is only compiled here):
//!
//! ```no_run
//! use onward_tokio::{route, tcp, Identifier, Identity, Node, Routed, TrustIdentifier};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The responder printed its identifier; pass it as the first argument.
//!     let responder: Identifier = std::env::args().nth(1).unwrap_or_default().parse()?;
//!
//!     let node = Node::start().await?;
//!     let me = Identity::generate()?;
//!     let channel = node
//!         .create_secure_channel(
//!             route![tcp("127.0.0.1:3000"), tcp("127.0.0.1:4000"), "secure"],
//!             &me,
//!             TrustIdentifier::new(responder),
//!         )
//!         .await?;
//!     assert_eq!(channel.peer(), &responder);
//!
//!     let mut ctx = node.context("app").await?;
//!     ctx.send(route![channel.address(), "echoer"], "Hello".to_string())
//!         .await?;
//!     let reply: Routed<String> = ctx.receive().await?;
//!     println!("{}", reply.body());
//!     node.close_secure_channel(&channel).await;
//!     node.stop().await?;
//!     Ok(())
//! }
//! ```
//!
//! The responder's side, with a worker that names the sender:
//!
//! ```no_run
//! use onward_tokio::{Access, Context, Identity, Node, Result, Routed, TrustEveryone, Worker};
//!
//! struct Echoer;
//!
//! impl Worker for Echoer {
//!     type Message = String;
//!
//!     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
//!         if let Some(peer) = msg.channel_peer() {
//!             println!("{:?} from {peer}", msg.body());
//!         }
//!         ctx.send(msg.return_route(), msg.into_body()).await
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let node = Node::start().await?;
//!     let identity = Identity::generate()?;
//!     println!("{}", identity.identifier());
//!     node.listen("127.0.0.1:4000").await?;
//!     node.create_secure_channel_listener("secure", &identity, TrustEveryone)
//!         .await?;
//!     // Only through secure channels: a plain frame over TCP to "echoer" is refused.
//!     node.start_worker_with("echoer", Echoer, Access::secure_channels())
//!         .await?;
//!     tokio::signal::ctrl_c().await.ok();
//!     node.stop().await
//! }
//! ```
//!
//! ## Identities and trust policies
//!
//! [`Identity::generate`], [`Identity::load`] and [`Identity::save`] (PKCS#8, file
//! mode 0600) make and keep a long-term identity. [`Identity::identifier`] is a
//! printable [`Identifier`] (`I` and 64 hex digits) that parses back with `.parse()`.
//!
//! A trust policy decides which verified peers a channel accepts: [`TrustEveryone`],
//! [`TrustIdentifier::new(id)`](TrustIdentifier::new),
//! [`TrustAnyOf::new([id1, id2])`](TrustAnyOf::new), or any closure
//! `|peer: &Identifier| -> bool`. A refused peer fails the handshake, and no message
//! goes through the channel.
//!
//! ```
//! use onward_tokio::{
//!     route, Error, Identifier, Identity, Node, NodeError, TrustAnyOf, TrustEveryone,
//!     TrustIdentifier,
//! };
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let alice = Identity::generate()?;
//!     let bob = Identity::generate()?;
//!     let text = alice.identifier().to_string();
//!     assert!(text.starts_with('I') && text.len() == 65);
//!     let parsed: Identifier = text.parse()?;
//!     assert_eq!(parsed, alice.identifier());
//!
//!     let node = Node::start().await?;
//!     node.create_secure_channel_listener("secure", &alice, TrustEveryone)
//!         .await?;
//!
//!     // Accepted: alice is one of the two.
//!     let both = TrustAnyOf::new([alice.identifier(), bob.identifier()]);
//!     let channel = node.create_secure_channel(route!["secure"], &bob, both).await?;
//!     assert_eq!(channel.peer(), &alice.identifier());
//!
//!     // Accepted by a closure.
//!     let expected = alice.identifier();
//!     let custom = move |peer: &Identifier| *peer == expected;
//!     node.create_secure_channel(route!["secure"], &bob, custom).await?;
//!
//!     // Refused: the listener is alice, not bob.
//!     let refused = node
//!         .create_secure_channel(route!["secure"], &bob, TrustIdentifier::new(bob.identifier()))
//!         .await;
//!     assert!(matches!(refused, Err(Error::Node(NodeError::Channel { .. }))));
//!
//!     node.stop().await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Who may reach a worker: access rules
//!
//! A secure channel proves which *node* is at its other end; it says nothing about
//! which sender on that node wrote a message, and nothing protects a worker from
//! plain messages that never crossed a channel. Each worker and context therefore has
//! an [`Access`] rule, checked by the node before delivery:
//!
//! - [`Access::local_only`]: senders on this node;
//! - [`Access::secure_channels`] (the default of `start_worker` and `context`): this
//!   node, and messages that came through any secure channel;
//! - [`Access::secure_channels_from(policy)`](Access::secure_channels_from): this
//!   node, and secure channels whose verified peer `policy` accepts;
//! - [`Access::anyone`]: also plain messages from TCP connections, which anyone able to
//!   connect could send.
//!
//! A secure channel itself takes messages only from senders on its own node
//! ([`ChannelRules`] widens that for gateways, and can restrict where the messages it
//! decrypts may go). A refused message is counted in
//! [`stats().messages_refused`](protocol::api::Node::stats), logged at a bounded rate,
//! and a sender on the same node gets [`NodeError::Refused`] naming the address and
//! its rule. [`Routed::origin`] tells a worker where a message came from, and
//! [`Routed::channel_peer`] the verified peer of its channel.
//!
//! ```
//! # use onward_tokio::{Context, Routed, Worker};
//! # struct Echoer;
//! # impl Worker for Echoer {
//! #     type Message = String;
//! #     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> onward_tokio::Result<()> {
//! #         ctx.send(msg.return_route(), msg.into_body()).await
//! #     }
//! # }
//! use onward_tokio::{route, Access, Error, Identity, Node, NodeError, TrustIdentifier};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let alice = Identity::generate()?;
//!     let bob = Identity::generate()?;
//!     let node = Node::start().await?;
//!     node.create_secure_channel_listener("secure", &alice, onward_tokio::TrustEveryone)
//!         .await?;
//!     // Through secure channels from bob only.
//!     let only_bob = Access::secure_channels_from(TrustIdentifier::new(bob.identifier()));
//!     node.start_worker_with("echoer", Echoer, only_bob).await?;
//!     // Reachable only from this node.
//!     node.start_worker_with("admin", Echoer, Access::local_only()).await?;
//!
//!     let channel = node.create_secure_channel(route!["secure"], &bob, TrustEveryone).await?;
//!     let mut ctx = node.context("app").await?;
//!     ctx.send(route![channel.address(), "echoer"], "hi".to_string()).await?;
//!     let reply: onward_tokio::Routed<String> = ctx.receive().await?;
//!     assert_eq!(reply.body(), "hi");
//!
//!     // Through the channel to "admin": refused, and the sender is told (both ends of
//!     // this channel are on this node, so the sender is local).
//!     let refused = ctx.send(route![channel.address(), "admin"], "let me in".to_string()).await;
//!     assert!(matches!(refused, Err(Error::Node(NodeError::Refused { .. }))));
//!     assert_eq!(node.stats().messages_refused, 1);
//!     node.stop().await?;
//!     Ok(())
//! }
//! # use onward_tokio::TrustEveryone;
//! ```
//!
//! ## Errors
//!
//! One [`Error`] enum, `#[non_exhaustive]`, whose messages name the address or peer
//! concerned; [`NodeError`] is re-exported too, to match on:
//!
//! - `Error::Node(NodeError::UnknownAddress(..))`: a send to an address that does not
//!   exist;
//! - `Error::Node(NodeError::ConnectFailed { .. })`: a refused connection, reported by
//!   the next `receive`, since connecting happens after `send` returns;
//! - `Error::Node(NodeError::Channel { .. })`: a failed or refused handshake;
//! - `Error::Timeout`: nothing arrived in time;
//! - `Error::Stopped`: the node has stopped;
//! - and `Error::Io`, `Error::Encode`, `Error::Decode`, `Error::Identity`.
//!
//! [`Error`] converts into [`std::io::Error`] with a matching [`std::io::ErrorKind`].
//!
//! ```
//! use std::io::ErrorKind;
//!
//! use onward_tokio::{route, Error, Node, NodeError, Result};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<()> {
//!     let node = Node::start().await?;
//!     let ctx = node.context("app").await?;
//!     let error = match ctx.send(route!["nobody"], "Hello".to_string()).await {
//!         Err(error) => error,
//!         Ok(()) => unreachable!("there is no worker at \"nobody\""),
//!     };
//!     assert!(matches!(error, Error::Node(NodeError::UnknownAddress(_))));
//!     assert_eq!(std::io::Error::from(error).kind(), ErrorKind::NotFound);
//!     node.stop().await
//! }
//! ```
//!
//! # Other runtimes
//!
//! onward runs on tokio, smol and async-std. Each runtime has its own crate, which
//! re-exports the same API under the same names (`tests/tests/same_api.rs` checks
//! this), so an application changes only the crate name and the line that runs its
//! `main`:
//!
//! | runtime | crate | run `main` with |
//! |---|---|---|
//! | tokio | `onward-tokio` | `#[tokio::main]` |
//! | smol | `onward-smol` | `smol::block_on(async { ... })` |
//! | async-std | `onward-async-std` | `async_std::task::block_on(async { ... })` |
//!
//! The crate docs of `onward-smol` and `onward-async-std` open with the echoer above
//! on their runtime. Nodes on different runtimes talk to each other: the wire is the
//! same.
//!
//! Examples on smol and async-std (the tokio ones are the guide's steps, in
//! `runtime-tokio/examples/`):
//!
//! ```sh
//! cargo run -p onward-smol --example 02-worker-smol
//! cargo run -p onward-smol --example 09-secure-channel-many-transport-hops-smol
//! cargo run -p onward-async-std --example 02-worker-async-std
//! cargo run -p onward-async-std --example 09-secure-channel-many-transport-hops-async-std
//! ```
//!
//! One conformance suite (`tests/`, package `onward-tests`) runs every guide step, the
//! error cases, 10,000-message pipelines, a receiver slower than the network (nothing
//! lost at its full mailbox) and misbehaving peers over loopback TCP on each runtime,
//! and a secure channel across three nodes on three different runtimes in all six
//! orders. `cargo test --workspace` includes it; to run it alone:
//!
//! ```sh
//! cargo test -p onward-tests
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod io;

/// The code of the README, compiled as doc tests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use onward_protocol::api::{self, Listener, Runtime};

/// The whole sans-IO core and async layer, for what the re-exports above leave out.
pub use onward_protocol as protocol;
/// Transports an application adds to a node, relays, and TCP portals.
pub use onward_protocol::api::{
    BoxFuture, Inlet, MessageTransport, Outlet, PortalOptions, PortalStats, RelayRegistration,
    Stream, StreamListener, StreamTransport, Unit,
};
pub use onward_protocol::api::{
    Bytes, Context, Error, Message, NodeOptions, Opaque, Result, Routed, SecureChannel, SendId,
    Sender, Worker,
};
/// Why a secure channel failed or ended, and its settings.
pub use onward_protocol::channel::{ChannelConfig, ChannelError, HandshakeStage};
pub use onward_protocol::identity::{Identifier, Identity, IdentityError};
/// What [`Error::Node`] holds, so callers can match on it.
pub use onward_protocol::node::NodeError;
/// Access rules and where a message came from: who may reach a worker or a channel.
pub use onward_protocol::node::{Access, ChannelRules, Origin};
/// The node's limits, and its counters.
pub use onward_protocol::node::{ChannelState, NodeConfig, NodeStats};
/// What a relay answered, and the kinds of transport.
pub use onward_protocol::node::{RelayStatus, TransportKind};
/// What [`Error::Remote`] holds: a node on the route could not pass a message on.
pub use onward_protocol::report::{Report, ReportCode};
pub use onward_protocol::trust::{
    TrustAnyOf, TrustEveryone, TrustFileError, TrustIdentifier, TrustPolicy,
};
pub use onward_protocol::{route, tcp, Address, Route, TransportMessage, TransportType};

/// tokio as an onward [`Runtime`]: tasks are spawned on the tokio runtime that was
/// current when it was made, from whatever thread asks (a node dropped outside the
/// runtime still stops cleanly; after the runtime has shut down, spawning does nothing).
#[derive(Debug, Clone)]
pub struct Tokio(tokio::runtime::Handle);

impl Tokio {
    /// The tokio runtime this is called from.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::runtime::Handle::current`] does.
    pub fn current() -> Self {
        Self(tokio::runtime::Handle::current())
    }
}

impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(self.0.spawn(task));
    }

    fn connect(&self, peer: String) -> BoxFuture<'static, std::io::Result<Stream>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(&peer).await?;
            io::stream(stream)
        })
    }

    fn bind(&self, address: String) -> BoxFuture<'static, std::io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = listen(&address).await?;
            Ok(Box::new(io::TokioListener::new(listener)?) as Box<dyn Listener>)
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The listen backlog: connections the kernel completes and queues before the node
/// accepts them. tokio's own `TcpListener::bind` uses 128, which overflows when a few
/// hundred connections arrive within milliseconds; the kernel caps this value at its
/// maximum (`net.core.somaxconn` on Linux).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds a listener to the first address `address` resolves to that can be bound, with
/// a backlog of [`LISTEN_BACKLOG`] (and address reuse on Unix, as tokio's `bind` has).
async fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{address} resolves to no address"),
    );
    for resolved in tokio::net::lookup_host(address).await? {
        let socket = match resolved {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let bound = socket.and_then(|socket| {
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(resolved)?;
            socket.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// A node on tokio. It dereferences to [`api::Node`], which has the methods.
#[derive(Debug, Clone)]
pub struct Node(api::Node);

impl Node {
    /// Starts a node with default options on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`api::Node::start_on`].
    pub async fn start() -> Result<Node> {
        Self::start_with(NodeOptions::default()).await
    }

    /// Starts a node with `options` on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`api::Node::start_on`].
    pub async fn start_with(options: NodeOptions) -> Result<Node> {
        api::Node::start_on(Arc::new(Tokio::current()), options)
            .await
            .map(Node)
    }
}

impl Deref for Node {
    type Target = api::Node;

    fn deref(&self) -> &api::Node {
        &self.0
    }
}
