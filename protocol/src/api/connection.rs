//! Connection tasks: dialling, accepting, and the reader and writer of each stream,
//! with the writer's batching.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{self, Either};
use futures::AsyncWriteExt;

use crate::node::{ConnectionId, NodeCore};

use super::driver::{ConnectionHandle, FrameSink, Shared};
use super::outbox::{outbox, spend, Queued, Spent, Taken, WriterEnd};
use super::runtime::Stream;
use super::signal::{Gate, Signal};
use super::transport::{StreamListener, StreamTransport};
use crate::routing::TransportType;

impl Shared {
    /// Dials `peer` over `transport` for the core's connection `connection`, within
    /// the connect timeout.
    pub(super) fn spawn_connect(
        self: &Arc<Self>,
        connection: ConnectionId,
        peer: String,
        transport: Arc<dyn StreamTransport>,
    ) {
        let shared = self.clone();
        self.spawn(async move {
            let timeout = shared.options.connect_timeout;
            let connect = transport.connect(&peer);
            let result = match future::select(connect, shared.runtime.sleep(timeout)).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                )),
            };
            match result {
                Ok(stream) => shared.attach(stream, |core, now| {
                    core.handle_connected(connection, now);
                    connection
                }),
                Err(error) => {
                    tracing::debug!(%peer, %error, "connect failed");
                    shared.with_core(|core, now| {
                        core.handle_connect_failed(connection, &error.to_string(), now)
                    });
                }
            }
        });
    }

    /// Accepts connections of stream transport `transport` until the node stops.
    pub(super) async fn accept_loop(
        self: Arc<Self>,
        transport: TransportType,
        mut listener: Box<dyn StreamListener>,
    ) {
        loop {
            let accepted = match future::select(listener.accept(), self.closing.wait()).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(_) => return,
            };
            match accepted {
                Ok(stream) => {
                    let peer = stream.peer.clone();
                    self.attach(stream, |core, now| {
                        core.handle_incoming_stream(transport, peer, now)
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    // Errors such as too many open files pass; back off briefly so a
                    // persistent one does not spin.
                    self.runtime.sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Starts the reader and writer tasks of a connected stream. `start` tells the
    /// core and returns the connection's id; the writer is registered under it before
    /// the core's outputs (the preamble first) are carried out.
    fn attach(
        self: &Arc<Self>,
        stream: Stream,
        start: impl FnOnce(&mut NodeCore, Instant) -> ConnectionId,
    ) {
        let Stream { reader, writer, .. } = stream;
        let (outbox, writer) = outbox(writer);
        let queued = outbox.queued();
        let close = Signal::default();
        let reading = Gate::default();
        let connection = {
            let now = self.runtime.now();
            let mut d = self.driver();
            if self.stopping.is_fired() {
                // Accepted or connected once the node has stopped: nobody would ever
                // close it. (While workers drain, connections still open: a reply may
                // need one.)
                return;
            }
            let connection = start(&mut d.core, now);
            d.connections.insert(
                connection,
                ConnectionHandle {
                    writer: FrameSink::Stream(outbox),
                    close: close.clone(),
                    reading: reading.clone(),
                },
            );
            self.dispatch(&mut d, now);
            connection
        };
        let shared = self.clone();
        let reader_close = close.clone();
        self.spawn(async move {
            shared
                .read_loop(connection, reader, queued, reader_close, reading)
                .await
        });
        let shared = self.clone();
        self.spawn(async move { shared.write_loop(connection, writer, close).await });
    }

    async fn read_loop(
        self: Arc<Self>,
        connection: ConnectionId,
        mut reader: Box<dyn futures::io::AsyncRead + Send + Unpin>,
        outbox: Queued,
        close: Signal,
        reading: Gate,
    ) {
        /// Reads in a row that found bytes waiting, at most, before the task gives
        /// way to others: up to 256 KiB handled at a turn.
        const READS_BEFORE_YIELD: u32 = 4;
        let mut buf = vec![0u8; 64 * 1024];
        let mut ready_in_a_row = 0;
        // One wait for the end, made once: it stays registered with its signals for
        // the whole loop instead of registering (and allocating) again per read.
        let stop = pin!(future::select(close.wait(), self.stopping.wait()));
        let mut stop = stop;
        loop {
            // Backpressure: while the core has paused this connection (a message of
            // its waits for room in a full mailbox), read nothing more; TCP then slows
            // the sender. The core opens the gate again when the wait is over.
            if let Either::Right(_) = future::select(reading.opened(), stop.as_mut()).await {
                return;
            }
            // Whether the read had to wait for the socket: the task then gave way.
            let mut waited = false;
            let read = future::poll_fn(|cx| {
                let read = std::pin::Pin::new(&mut *reader).poll_read(cx, &mut buf);
                waited |= read.is_pending();
                read
            });
            let read = match future::select(read, stop.as_mut()).await {
                Either::Left((read, _)) => read,
                Either::Right(_) => return,
            };
            match read {
                Ok(0) => {
                    // The peer stopped sending; it may still read what is queued for
                    // it, replies included. The core closes the connection once that
                    // is written.
                    self.with_core(|core, now| core.handle_read_closed(connection, now));
                    return;
                }
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    // What answers these bytes may go at once (see `outbox`).
                    outbox.allow_write_now();
                    self.with_core(|core, now| core.handle_received(connection, bytes, now));
                    // A peer that keeps the socket full would otherwise keep this task
                    // running without a pause, and on a one-thread executor nothing
                    // else (other connections, timers, workers) would run meanwhile:
                    // after a few reads in a row that found bytes waiting, give way.
                    // A read that waited already gave way, so the common case (a
                    // message, then quiet) pays for no extra turn of the executor.
                    ready_in_a_row = if waited { 0 } else { ready_in_a_row + 1 };
                    if ready_in_a_row >= READS_BEFORE_YIELD {
                        ready_in_a_row = 0;
                        yield_now().await;
                    }
                }
                Err(error) => {
                    let reason = error.to_string();
                    self.with_core(|core, now| {
                        core.handle_connection_closed(connection, Some(&reason), now)
                    });
                    return;
                }
            }
        }
    }

    async fn write_loop(self: Arc<Self>, connection: ConnectionId, end: WriterEnd, close: Signal) {
        const BATCH: usize = 256 * 1024;
        /// Frames taken for one write, at most (small ones are gathered).
        const TAKE: usize = 1024;
        // The core forgot a closed connection: stop writing to it at once. One wait,
        // made once and kept registered for the whole loop (see `read_loop`).
        let stop = pin!(future::select(close.wait(), self.halt.wait()));
        let mut stop = stop;
        let mut batch = Batch::default();
        let mut frames = Vec::new();
        let mut stream = loop {
            let take = future::poll_fn(|cx| end.poll_take(cx, &mut frames, BATCH, TAKE));
            let mut stream = match future::select(take, stop.as_mut()).await {
                Either::Left((Taken::Write(stream), _)) => stream,
                Either::Left((Taken::Ended(stream), _)) => break Some(stream),
                Either::Right(_) => break end.take(),
            };
            batch.clear();
            for frame in frames.drain(..) {
                batch.push(frame);
            }
            let result = {
                let write = pin!(async {
                    batch.write_to(&mut stream).await?;
                    stream.flush().await
                });
                match future::select(write, stop.as_mut()).await {
                    Either::Left((result, _)) => Some(result),
                    Either::Right(_) => None,
                }
            };
            let Some(result) = result else {
                break Some(stream);
            };
            if let Err(error) = result {
                let reason = error.to_string();
                self.with_core(|core, now| {
                    core.handle_connection_closed(connection, Some(&reason), now)
                });
                close.fire();
                break Some(stream);
            }
            let written = batch.len;
            // The frames go now: the core counts them as written, so nothing may
            // keep them but the core itself, as buffers for later frames.
            batch.finish();
            // Parked before the core hears of it: frames its outputs queue may then
            // be written at once by this task's call.
            end.park(stream);
            if written > 0 {
                self.with_core(|core, now| {
                    core.handle_written(connection, written, now);
                    for bytes in batch.spent.drain(..) {
                        core.recycle_transmit(bytes);
                    }
                });
            }
        };
        drop(end);
        if let Some(stream) = stream.as_mut() {
            let _ = stream.close().await;
        }
    }
}

/// Frames waiting for one vectored write. Small frames are gathered into one piece (a
/// copy of a few bytes saves a system call); a large frame stays its own piece and is
/// written from where it lies, not copied. One batch serves a writer for its life: once
/// written, its list of pieces is emptied, not freed, and of its frames' buffers those
/// the core may reuse are kept in `spent` for it and the rest dropped.
#[derive(Default)]
struct Batch {
    pieces: Vec<Vec<u8>>,
    len: usize,
    spent: Spent,
}

impl Batch {
    /// Frames up to this size are gathered; larger ones are written as they are.
    const SMALL: usize = 4096;
    /// A gathering piece stops growing at this size.
    const GATHER: usize = 16 * 1024;
    /// Pieces one vectored write takes at most.
    const MAX_PIECES: usize = 64;

    /// Drops the frames; the list keeps its room for the next write.
    fn clear(&mut self) {
        self.pieces.clear();
        self.spent.clear();
        self.len = 0;
    }

    /// After a write: keeps the buffers the core may reuse in `spent`, drops the
    /// rest; the list keeps its room for the next write.
    fn finish(&mut self) {
        for piece in self.pieces.drain(..) {
            spend(&mut self.spent, piece);
        }
        self.len = 0;
    }

    fn push(&mut self, frame: Vec<u8>) {
        self.len += frame.len();
        match self.pieces.last_mut() {
            Some(last) if frame.len() <= Self::SMALL && last.len() < Self::GATHER => {
                last.extend_from_slice(&frame);
                spend(&mut self.spent, frame);
            }
            _ => self.pieces.push(frame),
        }
    }

    /// Writes every piece, in order, with as few system calls as the writer allows
    /// (up to [`MAX_PIECES`](Self::MAX_PIECES) pieces a call, their slices on the
    /// stack).
    async fn write_to(
        &self,
        writer: &mut (dyn futures::io::AsyncWrite + Send + Unpin),
    ) -> std::io::Result<()> {
        for pieces in self.pieces.chunks(Self::MAX_PIECES) {
            let mut slices = [std::io::IoSlice::new(&[]); Self::MAX_PIECES];
            for (slice, piece) in slices.iter_mut().zip(pieces) {
                *slice = std::io::IoSlice::new(piece);
            }
            let mut rest = slices.get_mut(..pieces.len()).unwrap_or_default();
            while !rest.is_empty() {
                let n = writer.write_vectored(rest).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                std::io::IoSlice::advance_slices(&mut rest, n);
            }
        }
        Ok(())
    }
}

/// Lets the executor run other tasks once before this one goes on.
async fn yield_now() {
    let mut yielded = false;
    future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Accepts at most `step` bytes per call, vectored or not.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl futures::io::AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.step - n);
                self.written.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_batch_writes_every_frame_in_order_through_partial_writes() {
        let frames: Vec<Vec<u8>> = [10, 5000, 3, 70_000, 1, 2, 4096, 20_000, 7]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8; len])
            .collect();
        let mut batch = Batch::default();
        batch.clear();
        batch.push(vec![9; 100]);
        batch.push(vec![9; 10_000]);
        // A batch is reused: what the last write held is gone.
        batch.clear();
        batch.push(frames[0].clone());
        for frame in &frames[1..] {
            batch.push(frame.clone());
        }
        let expected: Vec<u8> = frames.concat();
        assert_eq!(batch.len, expected.len());
        // Small neighbours were gathered; the large frames stand alone.
        assert!(
            batch.pieces.len() < frames.len(),
            "{} pieces",
            batch.pieces.len()
        );
        assert!(batch.pieces.iter().any(|p| p.len() == 70_000));
        for step in [1, 7, 4096, 1 << 20] {
            let mut out = Trickle {
                written: Vec::new(),
                step,
                calls: 0,
            };
            futures::FutureExt::now_or_never(batch.write_to(&mut out))
                .expect("the writer never waits")
                .unwrap();
            assert_eq!(out.written, expected, "step {step}");
            if step == 1 << 20 {
                assert_eq!(
                    out.calls, 1,
                    "one vectored write when the writer takes it all"
                );
            }
        }
    }

    #[test]
    fn a_written_batch_keeps_the_small_buffers_for_the_core_and_drops_the_large() {
        let mut batch = Batch::default();
        for (byte, len) in [(1, 100), (2, 50), (3, 10_000), (4, 60)] {
            batch.push(vec![byte; len]);
        }
        // The second and fourth frames were gathered into the pieces before them.
        assert_eq!(batch.pieces.len(), 2);
        assert_eq!(batch.spent.len(), 2);
        batch.finish();
        assert!(batch.pieces.is_empty() && batch.len == 0);
        // The gathered piece that began with the first frame is kept too; the large
        // one is dropped.
        assert_eq!(batch.spent.len(), 3);
        assert!(batch
            .spent
            .iter()
            .all(|b| b.capacity() <= crate::node::SPARE_TRANSMIT_MAX));
        assert_eq!(batch.spent[0], vec![2; 50]);
        assert_eq!(batch.spent[2].get(..100), Some(&[1; 100][..]));
        // Never more than the core keeps.
        for _ in 0..crate::node::SPARE_TRANSMITS * 2 {
            batch.push(vec![5; 10]);
        }
        batch.finish();
        assert_eq!(batch.spent.len(), crate::node::SPARE_TRANSMITS);
    }

    #[test]
    fn a_batch_of_more_pieces_than_one_write_takes_goes_out_whole_and_in_order() {
        let frames: Vec<Vec<u8>> = (0..Batch::MAX_PIECES + 6)
            .map(|i| vec![i as u8; Batch::SMALL + 1])
            .collect();
        let mut batch = Batch::default();
        batch.clear();
        batch.push(frames[0].clone());
        for frame in &frames[1..] {
            batch.push(frame.clone());
        }
        assert_eq!(batch.pieces.len(), Batch::MAX_PIECES + 6);
        let mut out = Trickle {
            written: Vec::new(),
            step: 1 << 30,
            calls: 0,
        };
        futures::FutureExt::now_or_never(batch.write_to(&mut out))
            .expect("the writer never waits")
            .unwrap();
        assert_eq!(out.written, frames.concat());
        assert_eq!(out.calls, 2, "one write per {} pieces", Batch::MAX_PIECES);
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        let mut batch = Batch::default();
        batch.clear();
        batch.push(vec![1, 2, 3]);
        let mut out = Trickle {
            written: Vec::new(),
            step: 0,
            calls: 0,
        };
        let error = futures::FutureExt::now_or_never(batch.write_to(&mut out))
            .expect("the writer never waits")
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
    }
}
