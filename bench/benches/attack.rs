//! The attacks of issue 16 against a node with default options, on tokio over
//! loopback, with the figures a security reviewer asks for: resident memory before,
//! at the peak of and after each attack (beside the node's own accounting), the
//! handshakes a legitimate node completes per second during a hello flood of at least
//! 10,000 hellos a second (beside the rate without the flood), and how long a
//! newcomer waits for a slot when every incoming slot is held (beside the same with
//! none held).
//!
//! The attacker runs on threads of this process, connecting from 127.0.0.2 and up, 60
//! connections per address (so that the per-source limit, 64, does not stop it, and
//! is not shared with the legitimate nodes on 127.0.0.1). It holds up to 2,100 sockets, and the node as many:
//! raise the open-file limit first (`ulimit -n 8192`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onward_bench::{quick, Figure, Report};
use onward_protocol::api::{Context, NodeOptions, Routed, Worker};
use onward_protocol::framing::{encode_frame, PREAMBLE};
use onward_protocol::identity::Identity;
use onward_protocol::node::Access;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp, Route, TransportMessage};
use onward_tokio::Node;

/// The attacker's `n`th source address: 127.0.0.2 for its first 60 connections, then
/// 127.0.0.3, and so on, to stay under the node's 64 connections per source.
fn attacker(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2 + u8::try_from(n / 60).unwrap_or(200),
    ))
}

/// Resident memory in bytes, from /proc/self/statm.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Samples resident memory and the node's accounting every 5 ms, keeping the peaks.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak_rss: Arc<AtomicUsize>,
    peak_node: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(node: Node) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss = Arc::new(AtomicUsize::new(resident()));
        let peak_node = Arc::new(AtomicUsize::new(0));
        let (s, r, n) = (stop.clone(), peak_rss.clone(), peak_node.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                r.fetch_max(resident(), Ordering::Relaxed);
                n.fetch_max(node.memory_in_use().0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            peak_rss,
            peak_node,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the peak resident memory and node accounting.
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.peak_rss.load(Ordering::Relaxed),
            self.peak_node.load(Ordering::Relaxed),
        )
    }
}

fn connect_from_attacker(peer: SocketAddr, n: usize) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(attacker(n), 0).into())?;
    socket.connect(&peer.into())?;
    Ok(socket.into())
}

/// Opens `count` attacker connections, sends each `bytes`, and holds them until
/// `stop`; returns how many it opened.
fn hold(peer: SocketAddr, count: usize, bytes: Vec<u8>, stop: Arc<AtomicBool>) -> usize {
    let mut held = Vec::new();
    for n in 0..count {
        match connect_from_attacker(peer, n) {
            Ok(mut s) => {
                let _ = s.write_all(&bytes);
                held.push(s);
            }
            Err(e) => eprintln!("attacker: connect failed: {e}"),
        }
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
    held.len()
}

/// An echo for plain messages from anyone (the attacker's never-read replies).
struct PlainEcho;

impl Worker for PlainEcho {
    type Message = String;

    async fn handle_message(
        &mut self,
        ctx: &mut Context,
        msg: Routed<String>,
    ) -> onward_protocol::api::Result<()> {
        let _ = ctx.send(msg.return_route().clone(), msg.into_body()).await;
        Ok(())
    }
}

struct World {
    a: Node,
    b: Node,
    b_addr: SocketAddr,
}

async fn world() -> World {
    let b = Node::start_with(NodeOptions::default()).await.unwrap();
    let b_addr = b.listen("127.0.0.1:0").await.unwrap();
    b.create_secure_channel_listener("secure", &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    b.start_worker_with("plain", PlainEcho, Access::anyone())
        .await
        .unwrap();
    let a = Node::start_with(NodeOptions::default()).await.unwrap();
    World { a, b, b_addr }
}

/// Opens channels from node A to B one after another for `time` (each waiting for the
/// one before); returns how many completed per second. A handshake that fails (one the
/// listener dropped times out) is counted apart and printed.
async fn handshakes_per_second(w: &World, time: Duration) -> f64 {
    let me = Identity::generate().unwrap();
    let start = Instant::now();
    let (mut n, mut failed) = (0u32, 0u32);
    while start.elapsed() < time {
        match w
            .a
            .create_secure_channel(
                route![tcp(w.b_addr.to_string()), "secure"],
                &me,
                TrustEveryone,
            )
            .await
        {
            Ok(channel) => {
                w.a.close_secure_channel(&channel).await;
                n += 1;
            }
            Err(error) => {
                failed += 1;
                println!("# a handshake failed: {error}");
            }
        }
    }
    if failed > 0 {
        println!("# {failed} handshakes failed, {n} completed");
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// Waits until B's accounting is back to what it was before an attack.
async fn settle(b: &Node, baseline: usize) -> Duration {
    let start = Instant::now();
    while b.memory_in_use().0 > baseline + 64 * 1024 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// The handshakes a legitimate node completed per second during an attack, beside
/// the rate without one.
fn handshake_figure(report: &mut Report, name: String, during: f64, calm: f64) {
    report.add(Figure {
        bench: "attack",
        name,
        value: during,
        unit: "hs/s",
        peer: "no attack".into(),
        peer_value: calm,
        target: None,
        lower_is_better: false,
    });
}

fn memory_figures(
    report: &mut Report,
    attack: &str,
    before: usize,
    peak: (usize, usize),
    after: usize,
) {
    report.add(Figure {
        bench: "attack",
        name: format!("{attack}: peak resident memory"),
        value: mib(peak.0),
        unit: "MiB",
        peer: "before".into(),
        peer_value: mib(before),
        target: None,
        lower_is_better: true,
    });
    report.add(Figure {
        bench: "attack",
        name: format!("{attack}: resident memory after"),
        value: mib(after),
        unit: "MiB",
        peer: "before".into(),
        peer_value: mib(before),
        target: None,
        lower_is_better: true,
    });
    report.add(Figure {
        bench: "attack",
        name: format!("{attack}: peak node accounting"),
        value: mib(peak.1),
        unit: "MiB",
        peer: "budget".into(),
        peer_value: 256.0,
        target: Some(1.0),
        lower_is_better: true,
    });
}

fn hello_frames(seed: u64, count: usize) -> Vec<u8> {
    let mut batch = Vec::with_capacity(count * 80);
    for k in 0..count as u64 {
        let n = (seed << 40) + k;
        let mut hello = vec![0x01, 0x01];
        for i in 0..4u64 {
            hello.extend_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i).to_be_bytes());
        }
        let m = TransportMessage::new(route!["secure"], route!["x"], hello);
        encode_frame(&m.to_bytes().unwrap(), u32::MAX, &mut batch).unwrap();
    }
    batch
}

/// One flooding connection from the attacker: hellos in batches of 64, at `rate` a
/// second if given (else as fast as it can write), until `stop`. It never reads.
fn flood(peer: SocketAddr, t: u64, rate: Option<u64>, stop: &AtomicBool, sent: &AtomicU64) {
    let mut s = connect_from_attacker(peer, 0).unwrap();
    s.write_all(&PREAMBLE).unwrap();
    let start = Instant::now();
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some(rate) = rate {
            // Ahead of the pace: wait for it.
            let due = Duration::from_secs_f64(k as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let batch = hello_frames(t * 1_000_000_000 + k, 64);
        k += 64;
        if s.write_all(&batch).is_err() {
            return;
        }
        sent.fetch_add(64, Ordering::Relaxed);
    }
}

fn main() {
    let quick = quick();
    let scale = |full: usize, small: usize| if quick { small } else { full };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut report = Report::default();
    runtime.block_on(async {
        let w = world().await;
        let measure = Duration::from_millis(scale(3000, 200) as u64);
        let calm = handshakes_per_second(&w, measure).await;
        let baseline = w.b.memory_in_use().0;

        // 1. Connection slots: more idle connections than incoming slots.
        let slots = NodeOptions::default().core.max_incoming_connections;
        let before = resident();
        let sampler = Sampler::start(w.b.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let attack = {
            let (peer, stop) = (w.b_addr, stop.clone());
            let count = scale(slots + 76, 100);
            std::thread::spawn(move || hold(peer, count, PREAMBLE[..3].to_vec(), stop))
        };
        let t = Instant::now();
        while w.b.stats().connections_evicted < scale(76, 0) as u64
            && t.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let newcomer = Node::start_with(NodeOptions::default()).await.unwrap();
        let t = Instant::now();
        let channel = newcomer
            .create_secure_channel(
                route![tcp(w.b_addr.to_string()), "secure"],
                &Identity::generate().unwrap(),
                TrustEveryone,
            )
            .await
            .expect("a newcomer's channel while every slot is held");
        let while_full = t.elapsed();
        newcomer.close_secure_channel(&channel).await;
        let other = Node::start_with(NodeOptions::default()).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        let held = attack.join().unwrap();
        settle(&w.b, baseline).await;
        let t = Instant::now();
        let _ = other
            .create_secure_channel(
                route![tcp(w.b_addr.to_string()), "secure"],
                &Identity::generate().unwrap(),
                TrustEveryone,
            )
            .await
            .unwrap();
        let free = t.elapsed();
        report.add(Figure {
            bench: "attack",
            name: format!("slots: a newcomer's first channel, {held} idle connections held"),
            value: while_full.as_secs_f64() * 1000.0,
            unit: "ms",
            peer: "no slot held".into(),
            peer_value: free.as_secs_f64() * 1000.0,
            target: None,
            lower_is_better: true,
        });
        let peak = sampler.finish();
        memory_figures(&mut report, "slots", before, peak, resident());
        println!("# slots: {:?}", w.b.stats());
        newcomer.stop().await.unwrap();
        other.stop().await.unwrap();

        // 2. Half-sent frames: 1,023 connections, 262,143 bytes of a 262,144-byte frame.
        let before = resident();
        let sampler = Sampler::start(w.b.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(&262_144u32.to_be_bytes());
        bytes.extend(std::iter::repeat_n(0u8, 262_143));
        let attack = {
            let (peer, stop) = (w.b_addr, stop.clone());
            let count = scale(1023, 40);
            std::thread::spawn(move || hold(peer, count, bytes, stop))
        };
        let t = Instant::now();
        let expected = (scale(1023, 40) * 262_143).min(NodeOptions::default().core.memory_budget / 4);
        while w.b.memory_in_use().1 + 300_000 < expected && t.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = handshakes_per_second(&w, measure).await;
        stop.store(true, Ordering::Relaxed);
        let held = attack.join().unwrap();
        let back = settle(&w.b, baseline).await;
        let peak = sampler.finish();
        memory_figures(&mut report, "half-sent frames", before, peak, resident());
        handshake_figure(&mut report, format!("half-sent frames: handshakes/s ({held} connections)"), during, calm);
        println!("# half-sent frames: accounting back in {back:?}; {:?}", w.b.stats());

        // 3. Hello floods over four connections that never read: at the issue's
        // 11,000 a second, then as fast as the attacker's threads can write.
        for rate in [Some(11_000u64), None] {
            let label = match rate {
                Some(r) => format!("hello flood at {r}/s"),
                None => "hello flood, unpaced".to_owned(),
            };
            let before = resident();
            let stats_before = w.b.stats();
            let sampler = Sampler::start(w.b.clone());
            let stop = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let flooders: Vec<_> = (0..4u64)
                .map(|t| {
                    let (peer, stop, sent) = (w.b_addr, stop.clone(), sent.clone());
                    std::thread::spawn(move || flood(peer, t, rate.map(|r| r / 4), &stop, &sent))
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let t = Instant::now();
            let sent_at = sent.load(Ordering::Relaxed);
            let during =
                handshakes_per_second(&w, Duration::from_millis(scale(5000, 300) as u64)).await;
            let flood_rate =
                (sent.load(Ordering::Relaxed) - sent_at) as f64 / t.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            for f in flooders {
                f.join().unwrap();
            }
            let back = settle(&w.b, baseline).await;
            let peak = sampler.finish();
            let stats = w.b.stats();
            handshake_figure(&mut report, format!("{label}: handshakes/s ({flood_rate:.0} hellos/s)"), during, calm);
            memory_figures(&mut report, &label, before, peak, resident());
            println!(
                "# {label}: {} hellos sent, {} cookies, {} handshakes answered, {} rate-limited, {} memory refusals, {} connections shed; accounting back in {back:?}",
                sent.load(Ordering::Relaxed),
                stats.cookies_sent - stats_before.cookies_sent,
                stats.handshakes_answered - stats_before.handshakes_answered,
                stats.hellos_rate_limited - stats_before.hellos_rate_limited,
                stats.memory_refusals - stats_before.memory_refusals,
                stats.connections_shed - stats_before.connections_shed,
            );
            // Out of the listener's load window before the next measurement.
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }

        // 4. Peers that never read: 64 connections ask for 60 KiB echoes, 300 each.
        let before = resident();
        let stats_before = w.b.stats();
        let sampler = Sampler::start(w.b.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let mut bytes = PREAMBLE.to_vec();
        for _ in 0..scale(300, 10) {
            let body = vec![b'x'; 60 * 1024];
            let mut payload = Vec::new();
            // The echo's message type is String: a CBOR text string.
            payload.push(0x7a);
            payload.extend_from_slice(&(body.len() as u32).to_be_bytes());
            payload.extend_from_slice(&body);
            let m = TransportMessage::new(route!["plain"], Route::from(onward_protocol::Address::local("x")), payload);
            encode_frame(&m.to_bytes().unwrap(), u32::MAX, &mut bytes).unwrap();
        }
        let attack = {
            let (peer, stop) = (w.b_addr, stop.clone());
            let count = scale(64, 4);
            std::thread::spawn(move || hold(peer, count, bytes, stop))
        };
        tokio::time::sleep(Duration::from_millis(scale(3000, 200) as u64)).await;
        let during = handshakes_per_second(&w, measure).await;
        stop.store(true, Ordering::Relaxed);
        let held = attack.join().unwrap();
        let back = settle(&w.b, baseline).await;
        let peak = sampler.finish();
        memory_figures(&mut report, "peers that never read", before, peak, resident());
        handshake_figure(&mut report, format!("peers that never read: handshakes/s ({held} peers)"), during, calm);
        let stats = w.b.stats();
        println!(
            "# peers that never read: {} memory refusals; accounting back in {back:?}",
            stats.memory_refusals - stats_before.memory_refusals
        );
        // An idle connection is closed at its first-frame deadline.
        let mut s = connect_from_attacker(w.b_addr, 0).unwrap();
        let t = Instant::now();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        println!("# an idle connection was closed after {:?}", t.elapsed());
        w.a.stop().await.unwrap();
        w.b.stop().await.unwrap();
    });
    report.print_table();
}
