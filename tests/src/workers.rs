//! The workers of the guide, written once for every runtime.

use onward_protocol::api::{Context, Opaque, Result, Routed, Worker};

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
