//! The workers of the guide, written once for every runtime.

use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use futures::channel::oneshot;
use onward_protocol::api::{Context, Opaque, Result, Routed, Worker};
use onward_protocol::identity::Identifier;
use onward_protocol::node::Origin;
use onward_protocol::{Address, Route, TransportMessage};

/// Replies to every message with its body, along its return route.
#[derive(Debug, Default)]
pub struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

/// Replies to every message with its body prefixed by a tag, so a test can tell which
/// node answered.
#[derive(Debug)]
pub struct Tagger(pub String);

impl Worker for Tagger {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        let reply = format!("{}: {}", self.0, msg.body());
        ctx.send(msg.return_route(), reply).await
    }
}

/// Echoes numbers: the pipelining tests send thousands of them.
#[derive(Debug, Default)]
pub struct NumberEchoer;

impl Worker for NumberEchoer {
    type Message = u32;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<u32>) -> Result<()> {
        ctx.send(msg.return_route(), *msg.body()).await
    }
}

/// Passes any message on: pops itself off the onward route, pushes itself on the
/// return route, and forwards the message unchanged otherwise.
#[derive(Debug, Default)]
pub struct Hop;

impl Worker for Hop {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        let mut message = msg.into_transport_message();
        message.onward_route.step();
        message.return_route.prepend(ctx.address().clone());
        ctx.forward(message).await
    }
}

/// Takes every message and does nothing with it: a peer that never answers.
#[derive(Debug, Default)]
pub struct Sink;

impl Worker for Sink {
    type Message = Opaque;

    async fn handle_message(&mut self, _ctx: &mut Context, _msg: Routed<Opaque>) -> Result<()> {
        Ok(())
    }
}

/// Replies with the raw payload it got, whatever it is, from its own address: for
/// payloads that are not CBOR (the limit tests send plain bytes).
#[derive(Debug, Default)]
pub struct PayloadEchoer;

impl Worker for PayloadEchoer {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        let back = msg.return_route();
        let payload = msg.into_transport_message().payload;
        ctx.forward(TransportMessage::new(
            back,
            Route::from(ctx.address().clone()),
            payload,
        ))
        .await
    }
}

/// Replies with the identifier of the secure channel peer that sent the message, as
/// the node verified it, or `"none"`.
#[derive(Debug, Default)]
pub struct PeerTeller;

impl Worker for PeerTeller {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        let peer = msg.sender().and_then(|s| ctx.secure_channel_peer(s));
        let reply = peer.map_or_else(|| "none".to_owned(), |p| p.to_string());
        ctx.send(msg.return_route(), reply).await
    }
}

/// What a [`Reporter`] saw of one message.
#[derive(Debug, Clone)]
pub struct Report {
    /// The first address of its return route.
    pub sender: Option<Address>,
    /// What the node says about that address as a secure channel end.
    pub peer: Option<Identifier>,
    /// Its whole return route.
    pub return_route: Route,
    /// Where the node says it came from.
    pub origin: Origin,
}

/// Takes every message, answers none, and reports each to the test.
#[derive(Debug)]
pub struct Reporter(pub UnboundedSender<Report>);

impl Worker for Reporter {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        let sender = msg.sender().cloned();
        let peer = sender.as_ref().and_then(|s| ctx.secure_channel_peer(s));
        let _ = self.0.unbounded_send(Report {
            sender,
            peer,
            return_route: msg.return_route(),
            origin: msg.origin().clone(),
        });
        Ok(())
    }
}

/// Records the bodies it handles, but holds on to the first until `gate` opens,
/// telling `entered` when it has it: the messages sent after it wait in its mailbox.
#[derive(Debug)]
pub struct Gated {
    /// Told when the first message is in hand.
    pub entered: Option<oneshot::Sender<()>>,
    /// Opened by the test.
    pub gate: Option<oneshot::Receiver<()>>,
    /// Every body handled, in order.
    pub handled: Arc<Mutex<Vec<String>>>,
}

impl Worker for Gated {
    type Message = String;

    async fn handle_message(&mut self, _ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
        }
        if let Some(gate) = self.gate.take() {
            let _ = gate.await;
        }
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.into_body());
        Ok(())
    }
}

/// Never finishes handling its first message. It holds `alive`, dropped with the
/// worker: the test learns from it that the worker's task was cut off.
#[derive(Debug)]
pub struct Stuck {
    /// Told when the message is in hand.
    pub entered: Option<oneshot::Sender<()>>,
    /// Never sent on; its receiver sees it go when the worker is dropped.
    pub alive: oneshot::Sender<()>,
}

impl Worker for Stuck {
    type Message = Opaque;

    async fn handle_message(&mut self, _ctx: &mut Context, _msg: Routed<Opaque>) -> Result<()> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
        }
        futures::future::pending::<()>().await;
        Ok(())
    }
}

/// Echoes every text body but "panic", on which it panics.
#[derive(Debug)]
pub struct Fragile;

impl Worker for Fragile {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        assert_ne!(msg.body(), "panic", "the body asked for a panic");
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

/// Holds each odd-numbered request and answers it only when the next one comes, just
/// before answering that one: the first reply of each pair arrives late, after its
/// requester may have given up.
#[derive(Debug, Default)]
pub struct Late {
    held: Option<(Route, String)>,
}

impl Worker for Late {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        match self.held.take() {
            None => {
                self.held = Some((msg.return_route(), msg.into_body()));
                Ok(())
            }
            Some((route, body)) => {
                // The late reply's address may be gone: that is the point.
                let _ = ctx.send(route, body).await;
                ctx.send(msg.return_route(), msg.into_body()).await
            }
        }
    }
}

/// Echoes every text body, but holds on to the first until `gate` opens, telling
/// `entered` when it has it; its `shutdown` waits for `shutdown_gate`, then tells
/// `shut`.
#[derive(Debug, Default)]
pub struct GatedEchoer {
    /// Told when the first message is in hand.
    pub entered: Option<oneshot::Sender<()>>,
    /// Opened by the test.
    pub gate: Option<oneshot::Receiver<()>>,
    /// Opened by the test, for `shutdown` to finish.
    pub shutdown_gate: Option<oneshot::Receiver<()>>,
    /// Told when `shutdown` has run.
    pub shut: Option<oneshot::Sender<()>>,
}

impl Worker for GatedEchoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
        }
        if let Some(gate) = self.gate.take() {
            let _ = gate.await;
        }
        ctx.send(msg.return_route(), msg.into_body()).await
    }

    async fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        if let Some(gate) = self.shutdown_gate.take() {
            let _ = gate.await;
        }
        if let Some(shut) = self.shut.take() {
            let _ = shut.send(());
        }
        Ok(())
    }
}

/// Holds its first message until `gate` opens (telling `entered` when it has it),
/// then tells `seen` who sent it, both ways: the peer that came with the message, and
/// a lookup of the channel end it came through, made only now.
#[derive(Debug)]
pub struct LateLookup {
    /// Told when the message is in hand.
    pub entered: Option<oneshot::Sender<()>>,
    /// Opened by the test.
    pub gate: Option<oneshot::Receiver<()>>,
    /// The peer carried with the message, and the one the late lookup finds.
    pub seen: Option<oneshot::Sender<(Option<Identifier>, Option<Identifier>)>>,
}

impl Worker for LateLookup {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
        }
        if let Some(gate) = self.gate.take() {
            let _ = gate.await;
        }
        let carried = msg.channel_peer().copied();
        let looked_up = msg.sender().and_then(|end| ctx.secure_channel_peer(end));
        if let Some(seen) = self.seen.take() {
            let _ = seen.send((carried, looked_up));
        }
        Ok(())
    }
}
