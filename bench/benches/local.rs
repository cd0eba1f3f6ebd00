//! Local routing on tokio: round trips through a three-hop chain of workers and an
//! echoer, against the same chain of tasks joined by tokio channels (the cost of
//! plain message passing, with no routing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use onward_bench::{quick, Figure, Report};
use onward_tokio::protocol::api::Bytes;
use onward_tokio::{route, Any, Context, Node, Result, Routed, Worker};
use tokio::sync::mpsc;

struct Hop;

impl Worker for Hop {
    type Message = Any;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Any>) -> Result<()> {
        let mut message = msg.into_transport_message();
        if let Some(me) = message.onward_route.step() {
            message.return_route.prepend(me);
        }
        ctx.forward(message).await
    }
}

struct Echo;

impl Worker for Echo {
    type Message = Any;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Any>) -> Result<()> {
        let mut message = msg.into_transport_message();
        message.onward_route = std::mem::take(&mut message.return_route);
        ctx.forward(message).await
    }
}

async fn onward_chain(window: usize, count: usize) -> f64 {
    let node = Node::start().await.unwrap();
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

/// The same shape with tokio tasks and channels: out through three forwarding tasks
/// to an echo task, and back through the same three.
async fn channel_chain(window: usize, count: usize) -> f64 {
    type Msg = (Vec<u8>, bool);
    let (first_tx, mut rx_prev) = mpsc::unbounded_channel::<Msg>();
    let (back_tx, mut back_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    // Each hop forwards outbound messages on and inbound ones back.
    let mut txs = vec![first_tx];
    let mut return_txs: Vec<mpsc::UnboundedSender<Vec<u8>>> = vec![back_tx];
    for _ in 0..3 {
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        let (rtx, mut rrx) = mpsc::unbounded_channel::<Vec<u8>>();
        let back = return_txs.last().unwrap().clone();
        let mut input = std::mem::replace(&mut rx_prev, rx);
        let next = tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some((m, _)) = input.recv() => { let _ = next.send((m, true)); }
                    Some(m) = rrx.recv() => { let _ = back.send(m); }
                    else => break,
                }
            }
        });
        txs.push(tx);
        return_txs.push(rtx);
    }
    let back = return_txs.last().unwrap().clone();
    tokio::spawn(async move {
        while let Some((m, _)) = rx_prev.recv().await {
            let _ = back.send(m);
        }
    });
    let start = Instant::now();
    let (mut sent, mut received) = (0, 0);
    while received < count {
        while sent - received < window && sent < count {
            txs[0].send((vec![1; 64], true)).unwrap();
            sent += 1;
        }
        back_rx.recv().await.unwrap();
        received += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let count = if quick() { 500 } else { 100_000 };
    let mut report = Report::default();
    for threads in [1, 2] {
        let rt = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        };
        rt.block_on(async {
            for window in [1, 10, 100, 1000] {
                let ours = onward_chain(window, count).await;
                let peer = channel_chain(window, count).await;
                report.add(Figure {
                    bench: "local",
                    name: format!("tokio {threads} thread(s), 3 hops + echo, {window} in flight"),
                    value: ours,
                    unit: "rt/s",
                    peer: "tokio mpsc chain".into(),
                    peer_value: peer,
                    target: None,
                    lower_is_better: false,
                });
            }
        });
    }
    report.print_table();
}
