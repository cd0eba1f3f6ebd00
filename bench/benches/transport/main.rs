//! Bulk throughput and round trips over loopback TCP on every runtime (tokio, smol,
//! async-std), with one thread and with two: an onward secure channel against raw TCP
//! on the same runtime and threading, and on tokio against TLS 1.3 (rustls,
//! AES-256-GCM), measured in the same run. Round trips are also measured with the far
//! end in a second process: this program re-executes itself with `--serve <kind>`.
//! Round trips through a middle node are compared with a raw TCP relay chain (a task
//! that forwards bytes between two sockets, in front of the echo server), and every
//! round-trip measurement counts the allocations it made (a counting global allocator
//! wraps the system's for the whole program, peers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use onward_bench::rt::{Kind, Rt, EVERY_RUNTIME};
use onward_bench::workers::{Echo, Sink};
use onward_bench::{quick, Figure, Report};
use onward_protocol::api::{self, Bytes, Routed};
use onward_protocol::identity::Identity;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp, Route};

mod peers;
mod processes;

use peers::{bulk_raw, bulk_tls, rtt_raw_local, rtt_raw_relay_local};
use processes::*;

const BENCH_BULK: &str = "bulk";
const BENCH_RTT: &str = "roundtrip";
const BENCH_RUNTIME: &str = "runtime";
const BENCH_ALLOCATIONS: &str = "allocations";

/// Every allocation of the program goes through this wrapper, which counts them.
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Allocations made by the whole program (every thread) so far.
fn allocations() -> usize {
    ALLOCATOR.stats().allocations
}

/// The largest body that fits one channel record with this benchmark's routes (a
/// record carries at most 65519 bytes of plaintext, routes included).
const LARGEST: usize = 65_000;

/// The far end B with a channel listener at "secure", and an optional middle node M
/// that only listens. Returns the nodes and the route to B's listener.
async fn far_end(rt: &Rt, hops: usize) -> (Vec<api::Node>, Route) {
    let b = rt.node().await.unwrap();
    let b_addr = b.listen("127.0.0.1:0").await.unwrap();
    b.create_secure_channel_listener("secure", &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    let mut route = route![tcp(b_addr.to_string()), "secure"];
    let mut nodes = vec![b];
    if hops == 2 {
        let m = rt.node().await.unwrap();
        let m_addr = m.listen("127.0.0.1:0").await.unwrap();
        route.prepend(tcp(m_addr.to_string()));
        nodes.push(m);
    }
    (nodes, route)
}

async fn stop(nodes: Vec<api::Node>) {
    for node in nodes {
        node.stop().await.unwrap();
    }
}

/// Megabytes per second for `count` messages of `size` bytes.
fn megabytes(size: usize, count: usize, elapsed: Duration) -> f64 {
    (size * count) as f64 / elapsed.as_secs_f64() / 1e6
}

async fn bulk_onward(rt: &Rt, size: usize, count: usize) -> f64 {
    let (sink, rx) = Sink::new(count);
    let (far, route) = far_end(rt, 1).await;
    far[0].start_worker("sink", sink).await.unwrap();
    let a = rt.node().await.unwrap();
    let channel = a
        .create_secure_channel(route, &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    let ctx = a.context("app").await.unwrap();
    let body = Bytes(vec![0xab; size]);
    let start = Instant::now();
    for _ in 0..count {
        ctx.send(route![channel.address(), "sink"], body.clone())
            .await
            .unwrap();
    }
    rx.await.unwrap();
    let elapsed = start.elapsed();
    drop(ctx);
    a.stop().await.unwrap();
    stop(far).await;
    megabytes(size, count, elapsed)
}

/// Round-trip latencies in microseconds, and the rate in messages per second.
struct Trips {
    latencies: Vec<f64>,
    rate: f64,
    /// Allocations made by the whole program per round trip while they ran.
    allocations: f64,
}

impl Trips {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// 64-byte round trips from node `a` through a new channel along `route` to the echo
/// worker at the far end, `window` kept in flight.
async fn rtt_onward(a: &api::Node, route: Route, window: usize, count: usize) -> Trips {
    let channel = a
        .create_secure_channel(route, &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    let mut ctx = a.context("app").await.unwrap();
    let body = Bytes(vec![7; 64]);
    let mut sent = VecDeque::with_capacity(window);
    let mut latencies = Vec::with_capacity(count);
    let route = route![channel.address(), "echo"];
    let allocated = allocations();
    let start = Instant::now();
    let mut sent_count = 0;
    while latencies.len() < count {
        while sent.len() < window && sent_count < count {
            sent.push_back(Instant::now());
            ctx.send(route.clone(), body.clone()).await.unwrap();
            sent_count += 1;
        }
        let _reply: Routed<Bytes> = ctx.receive().await.unwrap();
        let at = sent.pop_front().unwrap();
        latencies.push(at.elapsed().as_secs_f64() * 1e6);
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let allocations = (allocations() - allocated) as f64 / count as f64;
    drop(ctx);
    a.close_secure_channel(&channel).await;
    Trips {
        latencies,
        rate,
        allocations,
    }
}

async fn rtt_onward_local(rt: &Rt, hops: usize, window: usize, count: usize) -> Trips {
    let (far, route) = far_end(rt, hops).await;
    far[0].start_worker("echo", Echo).await.unwrap();
    let a = rt.node().await.unwrap();
    let trips = rtt_onward(&a, route, window, count).await;
    a.stop().await.unwrap();
    stop(far).await;
    trips
}

/// The figures of one round-trip measurement against raw TCP echo (through a raw
/// relay chain when `hops` is 2): latency, rate and allocations.
fn add_rtt(report: &mut Report, name: &str, hops: usize, ours: &Trips, raw: &Trips) {
    let (peer, target) = if hops == 1 {
        ("raw TCP echo", 1.0 / 1.5)
    } else {
        ("raw TCP echo through a relay", 1.0 / 1.3)
    };
    report.add(Figure {
        bench: BENCH_RTT,
        name: format!("{name}, p50"),
        value: ours.percentile(0.5),
        unit: "us",
        peer: peer.into(),
        peer_value: raw.percentile(0.5),
        target: Some(target),
        lower_is_better: true,
    });
    report.add(Figure {
        bench: BENCH_RTT,
        name: format!("{name}, p99"),
        value: ours.percentile(0.99),
        unit: "us",
        peer: peer.into(),
        peer_value: raw.percentile(0.99),
        target: None,
        lower_is_better: true,
    });
    report.add(Figure {
        bench: BENCH_RTT,
        name: format!("{name}, rate"),
        value: ours.rate,
        unit: "msg/s",
        peer: peer.into(),
        peer_value: raw.rate,
        target: None,
        lower_is_better: false,
    });
    // The allocator counts every thread of this program: with the far end in the same
    // process, every node's allocations; with it in another, the near node's. The raw
    // peer's own count (its buffers are reused) is in the JSON line's name.
    report.add(Figure {
        bench: BENCH_ALLOCATIONS,
        name: format!("{name}, per round trip (raw TCP: {:.2})", raw.allocations),
        value: ours.allocations,
        unit: "allocs",
        peer: "target 10".into(),
        peer_value: 10.0,
        target: Some(1.0),
        lower_is_better: true,
    });
}

/// The figures one runtime contributes to the comparison between runtimes.
struct RuntimeFigures {
    label: String,
    /// Threads running tasks.
    threads: usize,
    /// Bulk throughput per message size, MB/s.
    bulk: Vec<(usize, f64)>,
    /// Round-trip rate per (hops, window), msg/s.
    rtt: Vec<((usize, usize), f64)>,
}

/// Sizes: how much each measurement moves.
struct Sizes {
    volume: usize,
    rtt_count: usize,
    /// Runs of each bulk measurement; the median is reported.
    trials: usize,
}

/// The median of `values` (not empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Seconds one AES-256-GCM seal and one open of a `size`-byte message take with `ring`,
/// in place (no copies), the median of a few hundred.
fn aead_seconds(size: usize) -> f64 {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let mut buf = vec![0xab; size];
    let mut times: Vec<f64> = (0..300u64)
        .map(|i| {
            let nonce = || {
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&i.to_be_bytes());
                Nonce::assume_unique_for_key(n)
            };
            let start = Instant::now();
            let tag = key
                .seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buf)
                .unwrap();
            key.open_in_place_separate_tag(nonce(), Aad::empty(), tag, &mut buf, 0..)
                .unwrap();
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut times)
}

fn measure(rt: &Rt, sizes: &Sizes, report: &mut Report) -> RuntimeFigures {
    let label = rt.label();
    let mut figures = RuntimeFigures {
        label: label.clone(),
        threads: rt.threads(),
        bulk: Vec::new(),
        rtt: Vec::new(),
    };
    rt.block_on(async {
        for size in [1024, 16 * 1024, LARGEST] {
            let count = (sizes.volume / size).max(16);
            // Throughput varies from run to run by 10-20% on a shared machine: each
            // figure is the median of several runs, the peers interleaved with ours.
            let (mut ours, mut raws, mut tlss) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..sizes.trials {
                ours.push(bulk_onward(rt, size, count).await);
                raws.push(bulk_raw(rt, size, count).await);
                if rt.kind() == Kind::Tokio {
                    tlss.push(bulk_tls(size, count).await);
                }
            }
            let (onward, raw) = (median(&mut ours), median(&mut raws));
            let name = format!("{label}, {size} B messages");
            if rt.kind() == Kind::Tokio {
                let tls = median(&mut tlss);
                report.add(Figure {
                    bench: BENCH_BULK,
                    name: name.clone(),
                    value: onward,
                    unit: "MB/s",
                    peer: "rustls TLS 1.3".into(),
                    peer_value: tls,
                    target: Some(if rt.threads() == 1 { 1.1 } else { 1.2 }),
                    lower_is_better: false,
                });
            }
            if rt.threads() == 1 {
                // One thread does everything in turn: the kernel's work for raw TCP and
                // one AES-256-GCM seal and open of each message bound what onward can do.
                let per_message = size as f64 / (raw * 1e6) + aead_seconds(size);
                report.add(Figure {
                    bench: BENCH_BULK,
                    name: name.clone(),
                    value: onward,
                    unit: "MB/s",
                    peer: "ceiling: raw TCP + AES-GCM".into(),
                    peer_value: size as f64 / per_message / 1e6,
                    target: (size >= 16 * 1024).then_some(0.85),
                    lower_is_better: false,
                });
            }
            report.add(Figure {
                bench: BENCH_BULK,
                name,
                value: onward,
                unit: "MB/s",
                peer: "raw TCP".into(),
                peer_value: raw,
                target: Some(0.7),
                lower_is_better: false,
            });
            figures.bulk.push((size, onward));
        }
        // Throughput may not fall as messages grow from 16 KiB to the largest.
        if let [.., (medium, at_medium), (largest, at_largest)] = figures.bulk[..] {
            report.add(Figure {
                bench: BENCH_BULK,
                name: format!("{label}, {largest} B messages against {medium} B"),
                value: at_largest,
                unit: "MB/s",
                peer: format!("onward, {medium} B messages"),
                peer_value: at_medium,
                target: Some(1.0),
                lower_is_better: false,
            });
        }
        for window in [1, 100] {
            let raw = rtt_raw_local(rt, window, sizes.rtt_count).await;
            let relayed = rtt_raw_relay_local(rt, window, sizes.rtt_count).await;
            for hops in [1, 2] {
                let ours = rtt_onward_local(rt, hops, window, sizes.rtt_count).await;
                let name = format!("{label}, {hops} hop(s), {window} in flight");
                add_rtt(
                    report,
                    &name,
                    hops,
                    &ours,
                    if hops == 1 { &raw } else { &relayed },
                );
                figures.rtt.push(((hops, window), ours.rate));
            }
        }
    });
    figures
}

/// "each runtime ≥ 0.8× the best runtime", for every bulk and round-trip figure: each
/// runtime against the best with the same number of threads, so that the comparison is
/// between runtimes, not between one thread and two.
fn compare_runtimes(all: &[RuntimeFigures], report: &mut Report) {
    let Some(first) = all.first() else { return };
    let best_of = |figures: &RuntimeFigures, value: &dyn Fn(&RuntimeFigures) -> f64| {
        all.iter()
            .filter(|f| f.threads == figures.threads)
            .max_by(|a, b| value(a).total_cmp(&value(b)))
            .map(|best| (best.label.clone(), value(best)))
            .unwrap()
    };
    for (i, (size, _)) in first.bulk.iter().enumerate() {
        for figures in all {
            let (peer, peer_value) = best_of(figures, &|f| f.bulk[i].1);
            report.add(Figure {
                bench: BENCH_RUNTIME,
                name: format!("{}, bulk {size} B", figures.label),
                value: figures.bulk[i].1,
                unit: "MB/s",
                peer,
                peer_value,
                target: Some(0.8),
                lower_is_better: false,
            });
        }
    }
    for (i, ((hops, window), _)) in first.rtt.iter().enumerate() {
        for figures in all {
            let (peer, peer_value) = best_of(figures, &|f| f.rtt[i].1);
            report.add(Figure {
                bench: BENCH_RUNTIME,
                name: format!(
                    "{}, round trips, {hops} hop(s), {window} in flight",
                    figures.label
                ),
                value: figures.rtt[i].1,
                unit: "msg/s",
                peer,
                peer_value,
                target: Some(0.8),
                lower_is_better: false,
            });
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(args.get(i + 1).map_or("", String::as_str));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--bulk-only") {
        // For profiling: the onward bulk path and its peers; tokio with one thread
        // unless a runtime ("smol", "async-std") and a thread count follow, and onward
        // alone when "alone" follows those.
        let size = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(LARGEST);
        let count = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(1000);
        let kind = match args.get(i + 3).map(String::as_str) {
            Some("smol") => Kind::Smol,
            Some("async-std") => Kind::AsyncStd,
            _ => Kind::Tokio,
        };
        let threads = args.get(i + 4).and_then(|s| s.parse().ok()).unwrap_or(1);
        let rt = Rt::new(kind, threads);
        if args.get(i + 5).map(String::as_str) == Some("alone") {
            // For a profile of onward's path alone: no peers.
            let rate = rt.block_on(bulk_onward(&rt, size, count));
            println!(
                "onward bulk, {}, {size} B x {count}: {rate:.1} MB/s",
                rt.label()
            );
            return;
        }
        // With its peers of the same run: raw TCP, the one-thread ceiling, and
        // rustls on tokio.
        let (rate, raw, tls) = rt.block_on(async {
            let rate = bulk_onward(&rt, size, count).await;
            let raw = bulk_raw(&rt, size, count).await;
            let tls = if kind == Kind::Tokio {
                Some(bulk_tls(size, count).await)
            } else {
                None
            };
            (rate, raw, tls)
        });
        let ceiling = size as f64 / (size as f64 / (raw * 1e6) + aead_seconds(size)) / 1e6;
        let tls = tls.map_or(String::new(), |tls| {
            format!(", rustls {tls:.1} MB/s ({:.2}x)", rate / tls)
        });
        println!(
            "onward bulk, {}, {size} B x {count}: {rate:.1} MB/s; raw TCP {raw:.1} MB/s, \
             ceiling {ceiling:.1} MB/s ({:.2}x){tls}",
            rt.label(),
            rate / ceiling
        );
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--rtt-only") {
        // For profiling: onward 64-byte round trips alone, tokio, one thread.
        let arg = |k: usize, default: usize| {
            args.get(i + k)
                .and_then(|s| s.parse().ok())
                .unwrap_or(default)
        };
        let (hops, window, count) = (arg(1, 1), arg(2, 1), arg(3, 20_000));
        let rt = Rt::new(Kind::Tokio, 1);
        // The raw peer of the same shape, in the same run: TCP echo for one hop, echo
        // through a raw relay chain for two.
        let (raw, trips) = rt.block_on(async {
            let raw = if hops == 1 {
                rtt_raw_local(&rt, window, count).await
            } else {
                rtt_raw_relay_local(&rt, window, count).await
            };
            (raw, rtt_onward_local(&rt, hops, window, count).await)
        });
        let (ours, theirs) = (trips.percentile(0.5), raw.percentile(0.5));
        println!(
            "onward round trips, {}, {hops} hop(s), {window} in flight: p50 {ours:.1} us \
             (raw {theirs:.1} us, {:.2}x), {:.0} msg/s (raw {:.0}), {:.1} allocations per round trip",
            rt.label(),
            ours / theirs,
            trips.rate,
            raw.rate,
            trips.allocations
        );
        return;
    }
    let sizes = if quick() {
        Sizes {
            volume: 1 << 20,
            rtt_count: 100,
            trials: 1,
        }
    } else {
        Sizes {
            volume: 128 << 20,
            rtt_count: 20_000,
            trials: 3,
        }
    };
    if args.iter().any(|a| a == ASYNC_STD_ONE_THREAD) {
        async_std_child(&sizes);
        return;
    }
    let mut report = Report::default();
    let mut all = Vec::new();
    for (kind, threads) in EVERY_RUNTIME {
        let rt = Rt::new(kind, threads);
        all.push(measure(&rt, &sizes, &mut report));
    }
    all.push(measure_async_std_one_thread(&mut report));
    compare_runtimes(&all, &mut report);
    measure_two_processes(&sizes, &mut report);
    report.print_table();
}
