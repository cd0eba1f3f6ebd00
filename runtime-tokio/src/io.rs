//! tokio's TCP types behind the `futures-io` traits onward's async layer uses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use onward_protocol::api::{BoxFuture, Listener, Stream};
use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Splits a connected tokio stream into onward's reader and writer.
pub(crate) fn stream(stream: tokio::net::TcpStream) -> io::Result<Stream> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let (reader, writer) = stream.into_split();
    Ok(Stream {
        reader: Box::new(Reader(reader)),
        writer: Box::new(Writer(writer)),
        peer: peer.to_string(),
    })
}

struct Reader(OwnedReadHalf);

impl futures::io::AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Writer(OwnedWriteHalf);

impl futures::io::AsyncWrite for Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

pub(crate) struct TokioListener {
    listener: tokio::net::TcpListener,
    local: std::net::SocketAddr,
}

impl TokioListener {
    pub(crate) fn new(listener: tokio::net::TcpListener) -> io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self { listener, local })
    }
}

impl Listener for TokioListener {
    fn local_addr(&self) -> std::net::SocketAddr {
        self.local
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Stream>> {
        Box::pin(async move {
            let (socket, _) = self.listener.accept().await?;
            stream(socket)
        })
    }
}
