//! The adversarial section of the suite: a hostile client on loopback holds idle and
//! half-open connections, leaves frames half sent, and floods a listener with hellos
//! it never reads the answers to, while a legitimate node opens channels and sends
//! through them. Each test asserts that the legitimate traffic flows during the attack,
//! that the node's memory, as its core accounts for it, stays within the configured
//! budget, and that it falls back once the attacker is gone.
//!
//! The attacker connects from 127.0.0.2, so that the per-source limit (which it
//! reaches) is not shared with the legitimate node on 127.0.0.1. Counts and times are
//! bounded: tens of connections, a flood of at most two seconds.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onward_protocol::api::{NodeOptions, SecureChannel};
use onward_protocol::framing::{encode_frame, PREAMBLE};
use onward_protocol::identity::Identity;
use onward_protocol::node::TRANSMIT_OVERHEAD;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp, Route, TransportMessage};

use crate::harness::{blocking, options, within, Harness};
use crate::workers::Echoer;

/// The memory budget of the attacked node in these tests: connections that
/// authenticated nothing share a quarter of it, 2 MiB.
const BUDGET: usize = 8 << 20;

/// How long an operation expected to succeed may take.
const STEP: Duration = Duration::from_secs(30);

/// The attacker's source address.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Options of the attacked node: the given budget, incoming connection limit and
/// default everything else.
fn attacked(budget: usize, max_incoming: usize) -> NodeOptions {
    let mut options = options();
    options.core.memory_budget = budget;
    options.core.max_incoming_connections = max_incoming;
    options
}

/// Connects to `peer` from the attacker's address.
fn connect_from_attacker(peer: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(ATTACKER, 0).into())?;
    socket.connect(&peer.into())?;
    Ok(socket.into())
}

/// A node B listening on loopback with an echoer and a channel listener "secure",
/// with `options`; a node A with a channel to it. Returns both and the channel.
async fn pair<H: Harness>(options: NodeOptions) -> (H::Node, H::Node, SocketAddr, SecureChannel) {
    let b = H::start(options).await.expect("B starts");
    let b_addr = b.listen("127.0.0.1:0").await.expect("B listens");
    b.start_worker("echoer", Echoer).await.expect("echoer");
    b.create_secure_channel_listener("secure", &identity(), TrustEveryone)
        .await
        .expect("listener");
    let (a, channel) = newcomer::<H>(b_addr, "the first channel").await;
    (a, b, b_addr, channel)
}

/// A new node with a channel to B's listener at `b_addr`, opened within [`STEP`].
async fn newcomer<H: Harness>(b_addr: SocketAddr, what: &str) -> (H::Node, SecureChannel) {
    let node = H::start(options()).await.expect("a new node starts");
    let channel = within::<H, _>(
        STEP,
        what,
        node.create_secure_channel(
            route![tcp(b_addr.to_string()), "secure"],
            &identity(),
            TrustEveryone,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    (node, channel)
}

fn identity() -> Identity {
    Identity::generate().expect("identity")
}

/// Sends `count` messages through `channel` to B's echoer and waits for each reply.
async fn echo_through<H: Harness>(a: &H::Node, channel: &SecureChannel, count: usize, tag: &str) {
    let mut ctx = a.context(format!("legit-{tag}")).await.expect("context");
    for i in 0..count {
        let text = format!("{tag} {i}");
        within::<H, _>(STEP, "an echo during the attack", async {
            ctx.send(route![channel.address().clone(), "echoer"], text.clone())
                .await
                .expect("send");
            let reply = ctx.receive::<String>().await.expect("reply");
            assert_eq!(reply.body(), &text);
        })
        .await;
    }
}

/// Checks B's memory against its budget: the total within it, and what connections
/// that authenticated nothing hold within their quarter (plus the preamble the node
/// sends each connection it accepts, which is not checked against the budget).
fn assert_within_budget(b: &onward_protocol::api::Node, connections: usize, when: &str) {
    let (total, unauthenticated) = b.memory_in_use();
    let preambles = connections * (PREAMBLE.len() + TRANSMIT_OVERHEAD);
    assert!(
        total <= BUDGET + preambles,
        "{when}: {total} bytes in use, budget {BUDGET}"
    );
    assert!(
        unauthenticated <= BUDGET / 4 + preambles,
        "{when}: {unauthenticated} bytes held by unauthenticated connections, share {}",
        BUDGET / 4
    );
}

/// Waits until B holds nothing for unauthenticated connections and little in all.
async fn assert_memory_comes_back<H: Harness>(b: &onward_protocol::api::Node) {
    let deadline = Instant::now() + STEP;
    loop {
        let (total, unauthenticated) = b.memory_in_use();
        if unauthenticated == 0 && total < 64 * 1024 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "memory did not come back: {total} bytes, {unauthenticated} unauthenticated"
        );
        H::sleep(Duration::from_millis(20)).await;
    }
}

/// Connections from the attacker, each sent `bytes` and then held open, until the
/// returned flag is set; the thread returns how many it opened.
fn hold_connections(
    peer: SocketAddr,
    count: usize,
    bytes: Vec<u8>,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..count {
            let Ok(mut stream) = connect_from_attacker(peer) else {
                continue;
            };
            // A node that already closed this one refuses the write: so be it.
            let _ = stream.write_all(&bytes);
            held.push(stream);
        }
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        held.len()
    });
    (stop, thread)
}

/// Idle connections: the attacker opens twice the node's incoming limit, sending only
/// part of the preamble. The oldest that authenticated nothing are closed for newer
/// ones, a legitimate node still connects and opens a channel, and its traffic flows.
pub async fn attack_connection_slots<H: Harness>() {
    let max_incoming = 16;
    let (a, b, b_addr, channel) = pair::<H>(attacked(BUDGET, max_incoming)).await;
    let (stop, thread) = hold_connections(b_addr, 2 * max_incoming, PREAMBLE[..3].to_vec());
    // Wait until the attacker has made every connection (the node takes them all).
    let deadline = Instant::now() + STEP;
    while b.stats().connections_evicted < max_incoming as u64 {
        assert!(Instant::now() < deadline, "{:?}", b.stats());
        H::sleep(Duration::from_millis(10)).await;
    }
    // A new node still gets in, and the established channel still carries messages.
    let (c, second) = newcomer::<H>(b_addr, "a channel while the slots are taken").await;
    echo_through::<H>(&a, &channel, 20, "slots").await;
    echo_through::<H>(&c, &second, 5, "newcomer").await;
    assert_within_budget(&b, 3 * max_incoming, "slots");
    stop.store(true, Ordering::Relaxed);
    let opened = blocking(move || thread.join().expect("attacker")).await;
    assert_eq!(opened, 2 * max_incoming);
    assert_memory_comes_back::<H>(&b).await;
    for node in [a, b, c] {
        node.stop().await.expect("stop");
    }
}

/// Half-sent frames: 24 connections each send a frame header for 256 KiB and 200,000
/// bytes of it, 4.8 MB in all against a 2 MiB share. The node sheds the connections
/// past the share, its memory stays within budget, the channel carries messages
/// throughout, and every byte comes back when the attacker leaves.
pub async fn attack_half_sent_frames<H: Harness>() {
    let connections = 24;
    let (a, b, b_addr, channel) = pair::<H>(attacked(BUDGET, 1024)).await;
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(&(256u32 * 1024).to_be_bytes());
    bytes.extend(std::iter::repeat_n(0x5a, 200_000));
    let (stop, thread) = hold_connections(b_addr, connections, bytes);
    let deadline = Instant::now() + STEP;
    while b.stats().connections_shed == 0 {
        assert!(Instant::now() < deadline, "nothing shed: {:?}", b.stats());
        assert_within_budget(&b, connections, "while half frames arrive");
        H::sleep(Duration::from_millis(5)).await;
    }
    echo_through::<H>(&a, &channel, 20, "half-frames").await;
    assert_within_budget(&b, connections, "half frames held");
    let (_, held) = b.memory_in_use();
    assert!(held > BUDGET / 8, "the attacker did hold memory: {held}");
    stop.store(true, Ordering::Relaxed);
    let _ = blocking(move || thread.join().expect("attacker")).await;
    assert_memory_comes_back::<H>(&b).await;
    echo_through::<H>(&a, &channel, 5, "after").await;
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A hello flood: two connections send random hellos as fast as they can for two
/// seconds and never read what comes back. The listener answers them with cookies
/// (not handshakes) until the unread cookies fill the unauthenticated share and the
/// flooding connections are shed; three new legitimate channels open during the
/// flood, the existing one carries messages, memory stays within budget, and it comes
/// back.
pub async fn attack_hello_flood<H: Harness>() {
    let (a, b, b_addr, channel) = pair::<H>(attacked(BUDGET, 1024)).await;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || flood_hellos(b_addr, t, &sent, &stop))
        })
        .collect();
    let started = Instant::now();
    // Wait until the listener is under load.
    while b.stats().cookies_sent == 0 {
        assert!(started.elapsed() < STEP, "no cookies: {:?}", b.stats());
        H::sleep(Duration::from_millis(5)).await;
    }
    let before = b.stats().handshakes_answered;
    let mut channels = Vec::new();
    for i in 0..3 {
        let (c, new) = newcomer::<H>(b_addr, "a channel during the flood").await;
        echo_through::<H>(&c, &new, 3, &format!("new {i}")).await;
        channels.push(c);
        assert_within_budget(&b, 3, "during the flood");
    }
    echo_through::<H>(&a, &channel, 20, "flood").await;
    while started.elapsed() < Duration::from_secs(2) {
        assert_within_budget(&b, 3, "during the flood");
        H::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    blocking(move || {
        for t in threads {
            t.join().expect("flooder");
        }
    })
    .await;
    let stats = b.stats();
    let flood = sent.load(Ordering::Relaxed);
    // Each new channel took one handshake (after a cookie); the flood's hellos got
    // cookies, apart from the few before the listener was under load.
    let answered = stats.handshakes_answered - before;
    assert!(
        answered <= 3 + 64,
        "{answered} handshakes answered during a flood of {flood} hellos: {stats:?}"
    );
    // The flood got cookies, until its connections, which never read them, held the
    // share of unauthenticated connections and were shed (the rest of their hellos
    // then went unread with them).
    assert!(
        stats.cookies_sent >= 1000
            && (stats.cookies_sent > flood / 2 || stats.connections_shed > 0),
        "{flood} hellos: {stats:?}"
    );
    assert_memory_comes_back::<H>(&b).await;
    for node in channels.into_iter().chain([a, b]) {
        node.stop().await.expect("stop");
    }
}

/// One flooding connection: hellos with made-up ephemeral keys, in batches, until
/// `stop`; it never reads.
fn flood_hellos(peer: SocketAddr, seed: u64, sent: &AtomicU64, stop: &AtomicBool) {
    let Ok(mut stream) = connect_from_attacker(peer) else {
        return;
    };
    let _ = stream.write_all(&PREAMBLE);
    let onward: Route = route!["secure"];
    let mut n = seed << 40;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(64 * 80);
        for _ in 0..64 {
            n += 1;
            let mut hello = vec![0x01, 0x01];
            for i in 0..4u64 {
                hello.extend_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i).to_be_bytes());
            }
            let message = TransportMessage::new(onward.clone(), route!["x"], hello);
            encode_frame(&message.to_bytes().expect("encode"), u32::MAX, &mut batch)
                .expect("frame");
        }
        if stream.write_all(&batch).is_err() {
            return;
        }
        sent.fetch_add(64, Ordering::Relaxed);
    }
}
