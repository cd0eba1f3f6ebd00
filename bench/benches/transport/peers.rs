//! The peers onward is measured against, on the same runtime and threading: raw TCP
//! (bulk, echo round trips, and echo through a relay chain that forwards bytes, as a
//! middle node forwards frames) and, on tokio, TLS 1.3 with rustls.

use std::collections::VecDeque;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use onward_bench::rt::Rt;
use onward_protocol::api::Stream;

use super::{allocations, megabytes, Trips};

/// A connected pair of raw TCP streams made with this runtime's own TCP types (through
/// the runtime crate's adapter, the same I/O path onward's connections take).
pub(super) async fn raw_pair(rt: &Rt) -> (Stream, Stream) {
    let runtime = rt.runtime();
    let mut listener = runtime.bind("127.0.0.1:0".into()).await.unwrap();
    let addr = listener.local_addr();
    let accepted = rt.spawn(async move { listener.accept().await.unwrap() });
    let near = runtime.connect(addr.to_string()).await.unwrap();
    (near, accepted.await)
}

pub(super) async fn bulk_raw(rt: &Rt, size: usize, count: usize) -> f64 {
    let (mut near, mut far) = raw_pair(rt).await;
    let reader = rt.spawn(async move {
        let mut buf = vec![0u8; size];
        for _ in 0..count {
            let mut len = [0u8; 4];
            far.reader.read_exact(&mut len).await.unwrap();
            let len = u32::from_be_bytes(len) as usize;
            far.reader.read_exact(&mut buf[..len]).await.unwrap();
        }
    });
    // The length prefix and the body in one write, as a framed sender would do.
    let mut framed = (size as u32).to_be_bytes().to_vec();
    framed.resize(4 + size, 0xab);
    let start = Instant::now();
    for _ in 0..count {
        near.writer.write_all(&framed).await.unwrap();
    }
    near.writer.flush().await.unwrap();
    reader.await;
    megabytes(size, count, start.elapsed())
}

pub(super) mod tls {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    pub(crate) fn pair() -> (TlsAcceptor, TlsConnector) {
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

    pub(crate) fn name() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }
}

/// TLS 1.3 bulk throughput, on tokio only (tokio-rustls is the ready adapter).
pub(super) async fn bulk_tls(size: usize, count: usize) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

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
    megabytes(size, count, start.elapsed())
}

/// 64-byte round trips over a raw TCP stream to an echo server.
pub(super) async fn rtt_raw(near: &mut Stream, window: usize, count: usize) -> Trips {
    let mut sent = VecDeque::with_capacity(window);
    let mut latencies = Vec::with_capacity(count);
    let body = [7u8; 64];
    let mut buf = [0u8; 64];
    let allocated = allocations();
    let start = Instant::now();
    let mut sent_count = 0;
    while latencies.len() < count {
        while sent.len() < window && sent_count < count {
            sent.push_back(Instant::now());
            near.writer.write_all(&body).await.unwrap();
            sent_count += 1;
        }
        near.reader.read_exact(&mut buf).await.unwrap();
        latencies.push(sent.pop_front().unwrap().elapsed().as_secs_f64() * 1e6);
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let allocations = (allocations() - allocated) as f64 / count as f64;
    Trips {
        latencies,
        rate,
        allocations,
    }
}

/// Echoes everything read on `stream` until the peer closes it.
pub(super) async fn echo_stream(mut stream: Stream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.writer.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

pub(super) async fn rtt_raw_local(rt: &Rt, window: usize, count: usize) -> Trips {
    let (mut near, far) = raw_pair(rt).await;
    let server = rt.spawn(echo_stream(far));
    let trips = rtt_raw(&mut near, window, count).await;
    drop(near);
    server.await;
    trips
}

/// Copies what `from` reads to `to` until `from` ends, then shuts `to` down.
pub(super) async fn forward(
    mut from: Box<dyn futures::io::AsyncRead + Send + Unpin>,
    mut to: Box<dyn futures::io::AsyncWrite + Send + Unpin>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}

/// The raw TCP relay chain: two tasks forward bytes between `inner` (towards the
/// client) and `outer` (towards the echo server), as a middle node forwards frames.
pub(super) fn relay(rt: &Rt, inner: Stream, outer: Stream) -> [BoxFuture<'static, ()>; 2] {
    [
        rt.spawn(forward(inner.reader, outer.writer)),
        rt.spawn(forward(outer.reader, inner.writer)),
    ]
}

/// Round trips to an echo server through a raw TCP relay chain in this process.
pub(super) async fn rtt_raw_relay_local(rt: &Rt, window: usize, count: usize) -> Trips {
    let (relay_out, far) = raw_pair(rt).await;
    let server = rt.spawn(echo_stream(far));
    let (mut near, relay_in) = raw_pair(rt).await;
    let forwarders = relay(rt, relay_in, relay_out);
    let trips = rtt_raw(&mut near, window, count).await;
    drop(near);
    for task in forwarders {
        task.await;
    }
    server.await;
    trips
}
