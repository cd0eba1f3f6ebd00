//! A secure channel through Redis Streams against the same channel over direct TCP,
//! in the same run, on tokio: round trips (one message out, its echo back) and bulk
//! (1 KiB messages one way, until the far worker has them all). It starts its own
//! `redis-server` on a free loopback port (no persistence); where none is installed it
//! says so and measures nothing. `--quick` runs briefly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use futures::channel::oneshot;
use onward_bench::workers::{Echo, Sink};
use onward_bench::{quick, Figure, Report};
use onward_protocol::api::{Bytes, Opaque, Routed};
use onward_protocol::identity::Identity;
use onward_protocol::node::Access;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp, Route};
use onward_redis::{redis, RedisTransport, REDIS};
use onward_tests::redis_server::RedisServer;
use onward_tokio::Node;

/// The far node: an echoer, a sink for `expected` messages, a channel listener.
async fn far(node: &Node, expected: usize) -> oneshot::Receiver<()> {
    node.start_worker_with("echo", Echo, Access::secure_channels())
        .await
        .unwrap();
    let (sink, rx) = Sink::new(expected);
    node.start_worker_with("sink", sink, Access::secure_channels())
        .await
        .unwrap();
    node.create_secure_channel_listener("secure", &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    rx
}

/// Round trip latencies (µs, sorted) and bulk throughput (MB/s) through a channel
/// along `to_far` from `near` to `far`'s listener.
async fn measure(
    near: &Node,
    to_far: Route,
    done: oneshot::Receiver<()>,
    rtts: usize,
    bulk: usize,
) -> (Vec<f64>, f64) {
    let channel = near
        .create_secure_channel(to_far, &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    let mut ctx = near.new_context().await.unwrap();
    let echo = route![channel.address(), "echo"];
    let body = Bytes::from(vec![7u8; 64]);
    for _ in 0..10 {
        ctx.send(echo.clone(), body.clone()).await.unwrap();
        let _: Routed<Opaque> = ctx.receive().await.unwrap();
    }
    let mut times = Vec::with_capacity(rtts);
    for _ in 0..rtts {
        let start = Instant::now();
        ctx.send(echo.clone(), body.clone()).await.unwrap();
        let _: Routed<Opaque> = ctx.receive().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let sink = route![channel.address(), "sink"];
    let kib = Bytes::from(vec![1u8; 1024]);
    let start = Instant::now();
    for _ in 0..bulk {
        ctx.send(sink.clone(), kib.clone()).await.unwrap();
    }
    done.await.unwrap();
    let mbps = (bulk * 1024) as f64 / start.elapsed().as_secs_f64() / 1e6;
    (times, mbps)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let Some(server) = RedisServer::start() else {
        println!("broker: redis-server is not installed: nothing measured");
        return;
    };
    let (rtts, bulk) = if quick() { (50, 200) } else { (2000, 20_000) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Direct TCP: A -> B.
        let b = Node::start().await.unwrap();
        let b_done = far(&b, bulk).await;
        let b_addr = b.listen("127.0.0.1:0").await.unwrap().to_string();
        let a = Node::start().await.unwrap();
        let (tcp_rtt, tcp_bulk) = measure(
            &a,
            route![tcp(b_addr.as_str()), "secure"],
            b_done,
            rtts,
            bulk,
        )
        .await;
        // Through Redis: C -> Redis -> D.
        let d = Node::start().await.unwrap();
        let d_done = far(&d, bulk).await;
        let inbox = RedisTransport::connect(&server.url(), "bench:d")
            .await
            .unwrap();
        d.add_message_transport(REDIS, inbox).unwrap();
        let c = Node::start().await.unwrap();
        let inbox = RedisTransport::connect(&server.url(), "bench:c")
            .await
            .unwrap();
        c.add_message_transport(REDIS, inbox).unwrap();
        let (redis_rtt, redis_bulk) =
            measure(&c, route![redis("bench:d"), "secure"], d_done, rtts, bulk).await;

        let mut report = Report::default();
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            report.add(Figure {
                bench: "broker",
                name: format!("round trip {name} through Redis Streams (64 B, tokio, {rtts})"),
                value: percentile(&redis_rtt, p),
                unit: "us",
                peer: "direct TCP".into(),
                peer_value: percentile(&tcp_rtt, p),
                target: None,
                lower_is_better: true,
            });
        }
        report.add(Figure {
            bench: "broker",
            name: format!("bulk through Redis Streams (1 KiB, tokio, {bulk})"),
            value: redis_bulk,
            unit: "MB/s",
            peer: "direct TCP".into(),
            peer_value: tcp_bulk,
            target: None,
            lower_is_better: false,
        });
        report.print_table();
        for node in [a, b, c, d] {
            node.stop().await.unwrap();
        }
    });
}
