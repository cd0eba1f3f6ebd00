//! The transports section of the suite: routes that leave TCP, on every runtime.
//! Step 09 over a stream transport written outside onward's crates
//! ([`crate::unix`]), with the middle node's bytes checked for plaintext; and a
//! message transport whose inboxes have less room than a sender's batch
//! ([`crate::inbox`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use onward_protocol::api::{Error, Routed};
use onward_protocol::node::NodeError;
use onward_protocol::routing::TransportType;
use onward_protocol::trust::{TrustEveryone, TrustIdentifier};
use onward_protocol::{route, Address};

use crate::harness::{options, within, Harness};
use crate::inbox::{Inboxes, MEMORY};
use crate::suite::{ask, identity, start, STEP};
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

/// A message transport whose inboxes have room for 4 units, refusing any larger offer
/// whole. A's first record is held back while 39 more queue behind it, so the next
/// batch is far larger than the room: it is offered again in halves until a part
/// fits, and all 40 messages arrive, in order, well before A's 2-second limit for an
/// inbox that takes nothing.
pub async fn a_batch_larger_than_the_inbox_room_is_split<H: Harness>() {
    const ROOM: usize = 4;
    const COUNT: u32 = 40;
    let inboxes = Inboxes::new(ROOM);
    let b = start::<H>(options()).await;
    let b_inbox = b
        .add_message_transport(MEMORY, inboxes.transport("b"))
        .expect("transport");
    let alice = identity();
    b.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .expect("listener");
    let mut reader = b.context("reader").await.expect("context");

    let mut a_options = options();
    a_options.connect_timeout = Duration::from_secs(2);
    let a = start::<H>(a_options).await;
    a.add_message_transport(MEMORY, inboxes.transport("a"))
        .expect("transport");
    let channel = a
        .create_secure_channel(
            route![b_inbox, "secure"],
            &identity(),
            TrustIdentifier::new(alice.identifier()),
        )
        .await
        .expect("channel over in-memory inboxes");
    let ctx = a.context("app").await.expect("context");
    let release = inboxes.hold();
    for i in 0..COUNT {
        ctx.send(route![channel.address(), "reader"], i)
            .await
            .expect("send");
    }
    drop(release);
    for i in 0..COUNT {
        let got: Routed<u32> = within::<H, _>(STEP, "the next message", reader.receive())
            .await
            .expect("message");
        assert_eq!(*got.body(), i, "in order, none lost");
    }
    assert!(
        inboxes.largest_offer() > ROOM,
        "a batch of {} units was the largest offered: the test made none past the room",
        inboxes.largest_offer()
    );
    assert!(inboxes.refused() > 0, "no offer was refused");
    for node in [a, b] {
        node.stop().await.expect("stop");
    }
}
