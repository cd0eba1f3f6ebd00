//! Bulk throughput and round trips over loopback TCP, on tokio, in one process:
//! an onward secure channel against raw TCP and TLS 1.3 (rustls, AES-256-GCM) on the
//! same runtime and threading, measured in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use onward_bench::{quick, Figure, Report};
use onward_tokio::protocol::api::Bytes;
use onward_tokio::{
    route, tcp, Any, Context, Identity, Node, Result, Routed, TrustEveryone, Worker,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const BENCH_BULK: &str = "bulk";
const BENCH_RTT: &str = "roundtrip";

/// The largest body that fits one channel record with this benchmark's routes (a
/// record carries at most 65519 bytes of plaintext, routes included).
const LARGEST: usize = 65_000;

struct Sink {
    expected: usize,
    seen: usize,
    done: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Worker for Sink {
    type Message = Bytes;

    async fn handle_message(&mut self, _ctx: &mut Context, msg: Routed<Bytes>) -> Result<()> {
        self.seen += 1;
        std::hint::black_box(msg.body().len());
        if self.seen == self.expected {
            if let Some(done) = self.done.lock().unwrap().take() {
                let _ = done.send(());
            }
        }
        Ok(())
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

/// Nodes for one measurement: the far end B with a channel listener, an optional
/// middle M, and the near end A with a channel to B.
struct Setup {
    nodes: Vec<Node>,
    a: Node,
    channel: onward_tokio::SecureChannel,
}

async fn setup(hops: usize, far: impl FnOnce(&Node) -> futures_like::Ready) -> Setup {
    let b = Node::start().await.unwrap();
    let b_addr = b.listen("127.0.0.1:0").await.unwrap();
    b.create_secure_channel_listener("secure", &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    far(&b).await;
    let mut nodes = vec![b];
    let mut route = route![tcp(b_addr.to_string()), "secure"];
    if hops == 2 {
        let m = Node::start().await.unwrap();
        let m_addr = m.listen("127.0.0.1:0").await.unwrap();
        route.prepend(tcp(m_addr.to_string()));
        nodes.push(m);
    }
    let a = Node::start().await.unwrap();
    let channel = a
        .create_secure_channel(route, &Identity::generate().unwrap(), TrustEveryone)
        .await
        .unwrap();
    Setup { nodes, a, channel }
}

impl Setup {
    async fn stop(self) {
        self.a.stop().await.unwrap();
        for node in self.nodes {
            node.stop().await.unwrap();
        }
    }
}

/// A tiny stand-in for a boxed future so `setup` can take async set-up code.
mod futures_like {
    pub type Ready = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

async fn bulk_onward(size: usize, count: usize) -> f64 {
    let (tx, rx) = oneshot::channel();
    let done = Arc::new(Mutex::new(Some(tx)));
    let setup = setup(1, |b| {
        let b = b.clone();
        Box::pin(async move {
            b.start_worker(
                "sink",
                Sink {
                    expected: count,
                    seen: 0,
                    done,
                },
            )
            .await
            .unwrap();
        })
    })
    .await;
    let ctx = setup.a.context("app").await.unwrap();
    let body = Bytes(vec![0xab; size]);
    let start = Instant::now();
    for _ in 0..count {
        ctx.send(route![setup.channel.address(), "sink"], body.clone())
            .await
            .unwrap();
    }
    rx.await.unwrap();
    let elapsed = start.elapsed();
    drop(ctx);
    setup.stop().await;
    (size * count) as f64 / elapsed.as_secs_f64() / 1e6
}

async fn bulk_raw(size: usize, count: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = vec![0u8; size];
        for _ in 0..count {
            let len = s.read_u32().await.unwrap() as usize;
            s.read_exact(&mut buf[..len]).await.unwrap();
        }
    });
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let body = vec![0xabu8; size];
    let start = Instant::now();
    for _ in 0..count {
        s.write_u32(size as u32).await.unwrap();
        s.write_all(&body).await.unwrap();
    }
    reader.await.unwrap();
    (size * count) as f64 / start.elapsed().as_secs_f64() / 1e6
}

mod tls {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    pub fn pair() -> (TlsAcceptor, TlsConnector) {
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384],
            ..rustls::crypto::ring::default_provider()
        });
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (
            TlsAcceptor::from(Arc::new(server)),
            TlsConnector::from(Arc::new(client)),
        )
    }

    pub fn name() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }
}

async fn bulk_tls(size: usize, count: usize) -> f64 {
    let (acceptor, connector) = tls::pair();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut s = acceptor.accept(s).await.unwrap();
        let mut buf = vec![0u8; size];
        for _ in 0..count {
            let len = s.read_u32().await.unwrap() as usize;
            s.read_exact(&mut buf[..len]).await.unwrap();
        }
    });
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut s = connector.connect(tls::name(), s).await.unwrap();
    let body = vec![0xabu8; size];
    let start = Instant::now();
    for _ in 0..count {
        s.write_u32(size as u32).await.unwrap();
        s.write_all(&body).await.unwrap();
    }
    s.flush().await.unwrap();
    reader.await.unwrap();
    (size * count) as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Round-trip latencies in microseconds, with `window` messages kept in flight.
struct Latencies(Vec<f64>);

impl Latencies {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

async fn rtt_onward(hops: usize, window: usize, count: usize) -> (Latencies, f64) {
    let setup = setup(hops, |b| {
        let b = b.clone();
        Box::pin(async move { b.start_worker("echo", Echo).await.unwrap() })
    })
    .await;
    let mut ctx = setup.a.context("app").await.unwrap();
    let body = Bytes(vec![7; 64]);
    let mut sent = std::collections::VecDeque::new();
    let mut latencies = Vec::with_capacity(count);
    let start = Instant::now();
    let mut sent_count = 0;
    while latencies.len() < count {
        while sent.len() < window && sent_count < count {
            sent.push_back(Instant::now());
            ctx.send(route![setup.channel.address(), "echo"], body.clone())
                .await
                .unwrap();
            sent_count += 1;
        }
        let _reply: Routed<Bytes> = ctx.receive().await.unwrap();
        let at = sent.pop_front().unwrap();
        latencies.push(at.elapsed().as_secs_f64() * 1e6);
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    drop(ctx);
    setup.stop().await;
    (Latencies(latencies), rate)
}

async fn rtt_raw(window: usize, count: usize) -> (Latencies, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..count {
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        }
    });
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (mut r, mut w) = s.into_split();
    let mut sent = std::collections::VecDeque::new();
    let mut latencies = Vec::with_capacity(count);
    let body = [7u8; 64];
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let mut sent_count = 0;
    while latencies.len() < count {
        while sent.len() < window && sent_count < count {
            sent.push_back(Instant::now());
            w.write_all(&body).await.unwrap();
            sent_count += 1;
        }
        r.read_exact(&mut buf).await.unwrap();
        latencies.push(sent.pop_front().unwrap().elapsed().as_secs_f64() * 1e6);
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    server.await.unwrap();
    (Latencies(latencies), rate)
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    }
}

fn main() {
    let quick = quick();
    let volume = if quick { 2 << 20 } else { 256 << 20 };
    let rtt_count = if quick { 200 } else { 20_000 };
    let mut report = Report::default();
    for threads in [1, 2] {
        let rt = runtime(threads);
        let label = if threads == 1 {
            "1 thread"
        } else {
            "2 threads"
        };
        rt.block_on(async {
            for size in [1024, 16 * 1024, LARGEST] {
                let count = (volume / size).max(16);
                let onward = bulk_onward(size, count).await;
                let raw = bulk_raw(size, count).await;
                let tls = bulk_tls(size, count).await;
                let name = format!("tokio {label}, {size} B messages");
                report.add(Figure {
                    bench: BENCH_BULK,
                    name: name.clone(),
                    value: onward,
                    unit: "MB/s",
                    peer: "rustls TLS 1.3".into(),
                    peer_value: tls,
                    target: Some(1.5),
                    lower_is_better: false,
                });
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
            }
            for window in [1, 100] {
                let (raw, raw_rate) = rtt_raw(window, rtt_count).await;
                for hops in [1, 2] {
                    let (ours, rate) = rtt_onward(hops, window, rtt_count).await;
                    let name = format!("tokio {label}, {hops} hop(s), {window} in flight");
                    report.add(Figure {
                        bench: BENCH_RTT,
                        name: format!("{name}, p50"),
                        value: ours.percentile(0.5),
                        unit: "us",
                        peer: "raw TCP echo".into(),
                        peer_value: raw.percentile(0.5),
                        target: Some(1.0 / 1.3),
                        lower_is_better: true,
                    });
                    report.add(Figure {
                        bench: BENCH_RTT,
                        name: format!("{name}, p99"),
                        value: ours.percentile(0.99),
                        unit: "us",
                        peer: "raw TCP echo".into(),
                        peer_value: raw.percentile(0.99),
                        target: None,
                        lower_is_better: true,
                    });
                    report.add(Figure {
                        bench: BENCH_RTT,
                        name: format!("{name}, rate"),
                        value: rate,
                        unit: "msg/s",
                        peer: "raw TCP echo".into(),
                        peer_value: raw_rate,
                        target: None,
                        lower_is_better: false,
                    });
                }
            }
        });
    }
    report.print_table();
}
