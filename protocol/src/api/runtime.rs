//! The one seam between onward and an async runtime.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future: what [`Runtime`] methods return, so the trait stays
/// object-safe and one node can hold `Arc<dyn Runtime>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The two halves of a connected stream (TCP, or a [stream transport](super::StreamTransport)
/// of the application's), as `futures-io` traits.
pub struct Stream {
    /// Reads what the peer sent.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// Writes to the peer; closing it shuts down the sending direction.
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// Who the peer is, for errors and logs: for TCP its socket address
    /// (`host:port`, whose host the node's limit of connections per source counts).
    pub peer: String,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// A bound TCP listener.
pub trait Listener: Send + 'static {
    /// The address it is bound to (with the real port when port 0 was asked for).
    fn local_addr(&self) -> SocketAddr;

    /// Waits for the next incoming connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Stream>>;
}

/// What onward needs from an async runtime: spawning, TCP and sleeping.
///
/// Adapter crates (`onward-tokio`, `onward-async-std`, `onward-smol`) implement it in a
/// few dozen lines; everything else is written once on top of it.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// Connects to `peer` (`host:port`).
    fn connect(&self, peer: String) -> BoxFuture<'static, io::Result<Stream>>;

    /// Binds a TCP listener to `address` (`host:port`, port 0 for any).
    fn bind(&self, address: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The current time, passed to the node core with every input.
    fn now(&self) -> Instant {
        Instant::now()
    }
}
