//! onward on smol.
//!
//! This crate implements onward's [`Runtime`] for smol
//! and re-exports the node API, so that an application reads:
//!
//! ```
//! use onward_smol::{route, Context, Node, Result, Routed, Worker};
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
//! fn main() -> Result<()> {
//!     smol::block_on(async {
//!         let node = Node::start().await?;
//!         node.start_worker("echoer", Echoer).await?;
//!         let mut ctx = node.context("app").await?;
//!         ctx.send(route!["echoer"], "Hello".to_string()).await?;
//!         let reply: Routed<String> = ctx.receive().await?;
//!         assert_eq!(reply.body(), "Hello");
//!         node.stop().await
//!     })
//! }
//! ```
//!
//! Tasks go to smol's global executor, so any thread may start a node and block on
//! it. The crate contains no protocol logic: everything but the sockets, timers and
//! task spawning comes from `onward-protocol`.
//!
//! # On smol
//!
//! The API is the one `onward-tokio` documents (its crate docs walk through it), under
//! the same names; only the crate name changes, and `main` runs its future with
//! `smol::block_on(async { ... })` instead of `#[tokio::main]`. Nodes on smol talk to
//! nodes on tokio and async-std: the wire is the same, and the conformance suite
//! (`tests/`) runs every guide step on smol and mixes it with the other runtimes.
//!
//! Two of the guide's steps have a smol example: step 02 (a worker) and step 09 (a
//! secure channel through a middle node, with the three nodes in one process):
//!
//! ```sh
//! cargo run -p onward-smol --example 02-worker-smol
//! cargo run -p onward-smol --example 09-secure-channel-many-transport-hops-smol
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use onward_protocol::api::{self, Listener, Runtime};
use smol::net::{TcpListener, TcpStream};

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

/// smol as an onward [`Runtime`]: tasks are spawned on smol's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }

    fn connect(&self, peer: String) -> BoxFuture<'static, io::Result<Stream>> {
        Box::pin(async move { stream(TcpStream::connect(&peer).await?) })
    }

    fn bind(&self, address: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let addresses = smol::net::resolve(address.as_str()).await?;
            let listener = TcpListener::try_from(onward_futures_io::listen(addresses)?)?;
            let local = listener.local_addr()?;
            Ok(onward_futures_io::TcpListener::boxed(
                listener, local, accept,
            ))
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }
}

fn stream(stream: TcpStream) -> io::Result<Stream> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    Ok(onward_futures_io::stream(stream, peer, |s: &TcpStream| {
        s.shutdown(std::net::Shutdown::Write)
    }))
}

fn accept(listener: &TcpListener) -> BoxFuture<'_, io::Result<Stream>> {
    Box::pin(async move { stream(listener.accept().await?.0) })
}

/// A node on smol. It dereferences to [`api::Node`], which has the methods.
#[derive(Debug, Clone)]
pub struct Node(api::Node);

impl Node {
    /// Starts a node with default options on smol's global executor.
    ///
    /// # Errors
    ///
    /// As [`api::Node::start_on`].
    pub async fn start() -> Result<Node> {
        Self::start_with(NodeOptions::default()).await
    }

    /// Starts a node with `options` on smol's global executor.
    ///
    /// # Errors
    ///
    /// As [`api::Node::start_on`].
    pub async fn start_with(options: NodeOptions) -> Result<Node> {
        api::Node::start_on(Arc::new(Smol), options).await.map(Node)
    }
}

impl Deref for Node {
    type Target = api::Node;

    fn deref(&self) -> &api::Node {
        &self.0
    }
}
