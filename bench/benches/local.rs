//! Local routing on every runtime (tokio, smol, async-std), with one thread and two:
//! round trips through a three-hop chain of workers and an echoer, against the same
//! chain of tasks joined by `futures` channels on the same runtime (the cost of plain
//! message passing, with no routing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use onward_bench::rt::{Rt, EVERY_RUNTIME};
use onward_bench::{quick, Figure, Report};
use onward_protocol::api::{Bytes, Context, Opaque, Result, Routed, Worker};
use onward_protocol::route;

struct Hop;

impl Worker for Hop {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        let mut message = msg.into_transport_message();
        if let Some(me) = message.onward_route.step() {
            message.return_route.prepend(me);
        }
        ctx.forward(message).await
    }
}

struct Echo;

impl Worker for Echo {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> Result<()> {
        let mut message = msg.into_transport_message();
        message.onward_route = std::mem::take(&mut message.return_route);
        ctx.forward(message).await
    }
}

async fn onward_chain(rt: &Rt, window: usize, count: usize) -> f64 {
    let node = rt.node().await.unwrap();
    for hop in ["h1", "h2", "h3"] {
        node.start_worker(hop, Hop).await.unwrap();
    }
    node.start_worker("echo", Echo).await.unwrap();
    let mut ctx = node.context("app").await.unwrap();
    let body = Bytes(vec![1; 64]);
    let start = Instant::now();
    let (mut sent, mut received) = (0, 0);
    while received < count {
        while sent - received < window && sent < count {
            ctx.send(route!["h1", "h2", "h3", "echo"], body.clone())
                .await
                .unwrap();
            sent += 1;
        }
        let _: Routed<Bytes> = ctx.receive().await.unwrap();
        received += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    drop(ctx);
    node.stop().await.unwrap();
    rate
}

/// The same shape with plain tasks and `futures` channels: out through three
/// forwarding tasks to an echo task, and back through the same three.
async fn channel_chain(rt: &Rt, window: usize, count: usize) -> f64 {
    let (first_tx, mut input) = mpsc::unbounded::<Vec<u8>>();
    let (last_back_tx, mut back_rx) = mpsc::unbounded::<Vec<u8>>();
    let mut back = last_back_tx;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        // Each hop forwards outbound messages on and inbound ones back.
        let (next_tx, next_rx) = mpsc::unbounded::<Vec<u8>>();
        let (return_tx, mut return_rx) = mpsc::unbounded::<Vec<u8>>();
        let mut out = std::mem::replace(&mut input, next_rx);
        let mut next = next_tx;
        let mut previous = std::mem::replace(&mut back, return_tx);
        tasks.push(rt.spawn(async move {
            loop {
                futures::select! {
                    m = out.next() => match m {
                        Some(m) => { let _ = next.send(m).await; }
                        None => break,
                    },
                    m = return_rx.next() => match m {
                        Some(m) => { let _ = previous.send(m).await; }
                        None => break,
                    },
                }
            }
        }));
    }
    tasks.push(rt.spawn(async move {
        while let Some(m) = input.next().await {
            let _ = back.send(m).await;
        }
    }));
    let mut first_tx = first_tx;
    let start = Instant::now();
    let (mut sent, mut received) = (0, 0);
    while received < count {
        while sent - received < window && sent < count {
            first_tx.send(vec![1; 64]).await.unwrap();
            sent += 1;
        }
        back_rx.next().await.unwrap();
        received += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    drop(first_tx);
    drop(back_rx);
    for task in tasks {
        task.await;
    }
    rate
}

fn main() {
    let count = if quick() { 500 } else { 100_000 };
    let mut report = Report::default();
    for (kind, threads) in EVERY_RUNTIME {
        let rt = Rt::new(kind, threads);
        rt.block_on(async {
            for window in [1, 10, 100, 1000] {
                let ours = onward_chain(&rt, window, count).await;
                let peer = channel_chain(&rt, window, count).await;
                report.add(Figure {
                    bench: "local",
                    name: format!("{}, 3 hops + echo, {window} in flight", rt.label()),
                    value: ours,
                    unit: "rt/s",
                    peer: "task chain, futures mpsc".into(),
                    peer_value: peer,
                    target: None,
                    lower_is_better: false,
                });
            }
        });
    }
    report.print_table();
}
