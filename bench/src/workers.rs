//! Workers the benchmark programs share: a sink that says when it has seen enough,
//! and an echo that sends each message back as it came.

use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use onward_protocol::api::{Bytes, Context, Opaque, Result, Routed, Worker};

/// Takes messages and fires its signal once it has seen `expected` of them.
#[derive(Debug)]
pub struct Sink {
    expected: usize,
    seen: usize,
    done: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Sink {
    /// A sink for `expected` messages, and what completes once they are all in.
    pub fn new(expected: usize) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let sink = Self {
            expected,
            seen: 0,
            done: Arc::new(Mutex::new(Some(tx))),
        };
        (sink, rx)
    }
}

impl Worker for Sink {
    type Message = Bytes;

    async fn handle_message(&mut self, _ctx: &mut Context, msg: Routed<Bytes>) -> Result<()> {
        self.seen += 1;
        std::hint::black_box(msg.body().len());
        if self.seen == self.expected {
            let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        Ok(())
    }
}

/// Sends each message back along its return route, its payload untouched.
#[derive(Debug)]
pub struct Echo;

impl Worker for Echo {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        let mut message = msg.into_transport_message();
        message.onward_route = std::mem::take(&mut message.return_route);
        ctx.forward(message).await
    }
}
