//! The transports section of the suite: routes that leave TCP, on every runtime.
//! Step 09 over a stream transport written outside onward's crates
//! ([`crate::unix`]), with the middle node's bytes checked for plaintext.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use onward_protocol::api::Error;
use onward_protocol::node::NodeError;
use onward_protocol::routing::TransportType;
use onward_protocol::trust::{TrustEveryone, TrustIdentifier};
use onward_protocol::{route, Address};

use crate::harness::{options, Harness};
use crate::suite::{ask, identity, start};
use crate::unix::{UnixTransport, UNIX};
use crate::workers::Echoer;

/// A directory of its own for one test's sockets, removed when dropped.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "onward-unix-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("socket directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unix(path: &str) -> Address {
    Address::new(UNIX, path.as_bytes().to_vec()).expect("a short path")
}

/// Step 09 over Unix sockets: a channel from A to B through M, every hop a Unix
/// socket of a transport the application added. The echo works, M routed the
/// records, and nothing M read holds a message in clear.
pub async fn step_09_over_a_transport_of_the_application<H: Harness>() {
    let dir = SocketDir::new();
    let (b_path, m_path) = (dir.path("b.sock"), dir.path("m.sock"));
    let alice = identity();

    let b = start::<H>(options()).await;
    b.add_stream_transport(UNIX, UnixTransport::default())
        .expect("transport");
    let bound = b.listen_on(UNIX, &b_path).await.expect("b listens");
    assert_eq!(bound, b_path);
    b.start_worker("echoer", Echoer).await.expect("echoer");
    b.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .expect("listener");

    let m = start::<H>(options()).await;
    let tap = UnixTransport::default();
    m.add_stream_transport(UNIX, tap.clone())
        .expect("transport");
    m.listen_on(UNIX, &m_path).await.expect("m listens");

    let a = start::<H>(options()).await;
    a.add_stream_transport(UNIX, UnixTransport::default())
        .expect("transport");
    let channel = a
        .create_secure_channel(
            route![unix(&m_path), unix(&b_path), "secure"],
            &identity(),
            TrustIdentifier::new(alice.identifier()),
        )
        .await
        .expect("channel over unix sockets");
    assert_eq!(channel.peer(), &alice.identifier());
    let mut ctx = a.context("app").await.expect("context");
    for i in 0..10 {
        let text = format!("Hello over a Unix socket {i}");
        let reply = ask(&mut ctx, route![channel.address(), "echoer"], &text).await;
        assert_eq!(reply.body(), &text);
    }
    assert!(m.stats().messages_routed >= 24, "M routed the records");
    let seen = tap.seen.lock().expect("tap").clone();
    assert!(seen.starts_with(b"onward"), "M read onward streams");
    assert!(
        !seen.windows(5).any(|w| w == b"Hello"),
        "M read a message in clear"
    );
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

/// A node refuses to take a transport type twice, or types that are not transports,
/// and cannot listen with a transport it was not given.
pub async fn transports_are_added_once_and_listen_needs_one<H: Harness>() {
    let node = start::<H>(options()).await;
    assert!(matches!(
        node.add_stream_transport(TransportType::TCP, UnixTransport::default()),
        Err(Error::Node(NodeError::TransportExists(TransportType::TCP)))
    ));
    assert!(matches!(
        node.add_stream_transport(TransportType::LOCAL, UnixTransport::default()),
        Err(Error::Node(NodeError::TransportNotAvailable { .. }))
    ));
    assert!(matches!(
        node.listen_on(UNIX, "/nowhere").await,
        Err(Error::Node(NodeError::TransportNotAvailable { .. }))
    ));
    // A route over a transport the node lacks fails at once, by name.
    let ctx = node.context("app").await.expect("context");
    let error = ctx
        .send(route![unix("/nowhere"), "echoer"], "x".to_string())
        .await
        .expect_err("no such transport");
    assert!(
        matches!(&error, Error::Node(NodeError::UnsupportedTransport(a)) if *a == unix("/nowhere")),
        "{error}"
    );
    node.add_stream_transport(UNIX, UnixTransport::default())
        .expect("transport");
    assert!(matches!(
        node.listen_on(UNIX, "/nonexistent-dir/x.sock").await,
        Err(Error::Io { .. })
    ));
    node.stop().await.expect("stop");
}
