//! A stream transport written outside onward's crates, with only the public API: Unix
//! domain sockets. Addresses of its type carry a socket path (`100#/tmp/b.sock`).
//!
//! It uses smol's Unix sockets, which run on `async-io`'s own reactor and so work
//! under any executor: the suite runs the guide's step 09 over it on every runtime.
//! Each transport can record what its streams carry, both ways, so that a test can
//! look at every byte a middle node saw.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::io::AsyncRead;
use onward_protocol::api::{BoxFuture, Stream, StreamListener, StreamTransport};
use onward_protocol::routing::TransportType;
use smol::net::unix::{UnixListener, UnixStream};

/// The transport type the suite gives Unix sockets (any free type would do).
pub const UNIX: TransportType = TransportType(100);

/// Unix domain sockets as an onward stream transport.
#[derive(Clone, Default)]
pub struct UnixTransport {
    /// Every byte its streams read, in arrival order per stream, appended.
    pub seen: Arc<Mutex<Vec<u8>>>,
}

impl UnixTransport {
    fn stream(&self, socket: UnixStream, peer: String) -> Stream {
        Stream {
            reader: Box::new(Tap {
                inner: socket.clone(),
                seen: self.seen.clone(),
            }),
            writer: Box::new(socket),
            peer,
        }
    }
}

impl StreamTransport for UnixTransport {
    fn connect(&self, peer: &str) -> BoxFuture<'static, io::Result<Stream>> {
        let (this, peer) = (self.clone(), peer.to_owned());
        Box::pin(async move {
            let socket = UnixStream::connect(&peer).await?;
            Ok(this.stream(socket, peer))
        })
    }

    fn listen(&self, address: &str) -> BoxFuture<'static, io::Result<Box<dyn StreamListener>>> {
        let (this, path) = (self.clone(), address.to_owned());
        Box::pin(async move {
            let listener: Box<dyn StreamListener> = Box::new(Listener {
                inner: UnixListener::bind(&path)?,
                path,
                transport: this,
            });
            Ok(listener)
        })
    }
}

struct Listener {
    inner: UnixListener,
    path: String,
    transport: UnixTransport,
}

impl StreamListener for Listener {
    fn local_address(&self) -> String {
        self.path.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Stream>> {
        Box::pin(async move {
            let (socket, _) = self.inner.accept().await?;
            // A connecting Unix socket usually has no path: name it by the listener.
            Ok(self.transport.stream(socket, self.path.clone()))
        })
    }
}

/// A reader that appends what it reads to a shared record.
struct Tap {
    inner: UnixStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.extend_from_slice(&buf[..*n]);
        }
        polled
    }
}
