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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod io;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use onward_protocol::api::{self, BoxFuture, Listener, Runtime, Stream};

/// The whole sans-IO core and async layer, for what the re-exports above leave out.
pub use onward_protocol as protocol;
pub use onward_protocol::api::{
    Any, Bytes, Context, Error, Message, NodeOptions, Result, Routed, SecureChannel, Sender, Worker,
};
pub use onward_protocol::identity::{Identifier, Identity};
/// What [`Error::Node`] holds, so callers can match on it.
pub use onward_protocol::node::NodeError;
pub use onward_protocol::trust::{TrustAnyOf, TrustEveryone, TrustIdentifier, TrustPolicy};
pub use onward_protocol::{route, tcp, Address, Route, TransportMessage};

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
            let listener = tokio::net::TcpListener::bind(&address).await?;
            Ok(Box::new(io::TokioListener::new(listener)?) as Box<dyn Listener>)
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
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
