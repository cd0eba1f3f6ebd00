//! The TCP glue that `onward-smol` and `onward-async-std` share.
//!
//! Both runtimes sit on `async-io`, and their TCP streams implement the `futures-io`
//! traits onward's async layer reads and writes through, so what is left between a
//! runtime's sockets and onward's [`Runtime`](onward_protocol::api::Runtime) trait is
//! the same for both: split a stream into reader and writer, and wrap a listener.
//! Applications do not use this crate; they use one of the two adapters.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use onward_protocol::api::{BoxFuture, Listener, Stream};

/// Splits a connected stream into onward's reader and writer.
///
/// The stream must be a cheap handle on one socket (both runtimes' `TcpStream`s are
/// reference counted), so the reader and the writer are two clones and neither waits
/// on a lock the other holds. Closing the writer flushes it and then calls
/// `shutdown_write`, which must shut down the socket's sending direction: the
/// `futures-io` close of a shared `async-io` socket only flushes, and a portal's
/// half-close needs the peer to see the end of the stream.
pub fn stream<S>(stream: S, peer: SocketAddr, shutdown_write: fn(&S) -> io::Result<()>) -> Stream
where
    S: AsyncRead + AsyncWrite + Clone + Send + Unpin + 'static,
{
    Stream {
        reader: Box::new(stream.clone()),
        writer: Box::new(Writer {
            stream,
            shutdown_write,
        }),
        peer: peer.to_string(),
    }
}

/// The writing half of a [`stream`]: the stream, whose close shuts down its sending
/// direction.
struct Writer<S> {
    stream: S,
    shutdown_write: fn(&S) -> io::Result<()>,
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Writer<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        Poll::Ready((self.shutdown_write)(&self.stream))
    }
}

/// The listen backlog of every onward TCP listener: connections the kernel completes
/// and queues before the node accepts them. The operating system's own default (128
/// in std and mio) overflows when a few hundred connections arrive within
/// milliseconds, as they do on a busy server; the kernel caps this value at its own
/// maximum (`net.core.somaxconn` on Linux).
pub const LISTEN_BACKLOG: i32 = 1024;

/// A non-blocking std TCP listener bound to the first of `addresses` that can be
/// bound, with address reuse on Unix and a backlog of [`LISTEN_BACKLOG`], for a
/// runtime to wrap.
///
/// # Errors
///
/// The error of the last address tried, or `InvalidInput` if there was none.
pub fn listen(
    addresses: impl IntoIterator<Item = SocketAddr>,
) -> io::Result<std::net::TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on");
    for address in addresses {
        match listen_one(address) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = error,
        }
    }
    Err(last)
}

fn listen_one(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// How a [`TcpListener`] accepts: the runtime's own `accept`, turned into a [`Stream`].
pub type Accept<L> = for<'a> fn(&'a L) -> BoxFuture<'a, io::Result<Stream>>;

/// A runtime's bound TCP listener as onward's [`Listener`].
pub struct TcpListener<L> {
    listener: L,
    local: SocketAddr,
    accept: Accept<L>,
}

impl<L> std::fmt::Debug for TcpListener<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl<L: Send + Sync + 'static> TcpListener<L> {
    /// Wraps `listener`, bound to `local`, which `accept` accepts from.
    pub fn new(listener: L, local: SocketAddr, accept: Accept<L>) -> Self {
        Self {
            listener,
            local,
            accept,
        }
    }

    /// The same, boxed as the [`Runtime::bind`](onward_protocol::api::Runtime::bind)
    /// result.
    pub fn boxed(listener: L, local: SocketAddr, accept: Accept<L>) -> Box<dyn Listener> {
        Box::new(Self::new(listener, local, accept))
    }
}

impl<L: Send + Sync + 'static> Listener for TcpListener<L> {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Stream>> {
        (self.accept)(&self.listener)
    }
}
