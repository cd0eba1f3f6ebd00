//! The conformance suite: every guide step, the error cases, pipelining and bad
//! peers, stopping, concurrent channels, limits at and past their values, and who a
//! message came from, each an `async fn` generic over the runtime.
//! [`conformance_suite!`](crate::conformance_suite) turns them into tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use onward_protocol::api::{self, Context, Error, NodeOptions, Opaque, Routed, SecureChannel};
use onward_protocol::channel::{ChannelError, HandshakeStage, MAX_INNER_MESSAGE_LEN};
use onward_protocol::framing::{encode_frame, FrameDecoder, PREAMBLE};
use onward_protocol::identity::{Identifier, Identity};
use onward_protocol::message::{MessageError, MAX_PAYLOAD_LEN};
use onward_protocol::node::{Access, ChannelRules, NodeError, Origin};
use onward_protocol::report::{is_report, Report, ReportCode};
use onward_protocol::routing::MAX_ROUTE_LEN;
use onward_protocol::trust::{TrustAnyOf, TrustEveryone, TrustIdentifier, TrustPolicy};
use onward_protocol::{route, tcp, Address, Route, TransportMessage};

use crate::harness::{blocking, options, short_options, within, Harness, NeverConnects};
use crate::workers::{
    Echoer, Fragile, Gated, Hop, NumberEchoer, PayloadEchoer, PeerTeller, Reporter, Sink, Stuck,
};

/// How long an operation the suite expects to succeed may take.
pub(crate) const STEP: Duration = Duration::from_secs(30);

/// Messages in the pipelining tests.
const PIPELINED: u32 = 10_000;

pub(crate) async fn start<H: Harness>(options: NodeOptions) -> H::Node {
    H::start(options).await.expect("node starts")
}

pub(crate) async fn listen<H: Harness>(node: &H::Node) -> String {
    node.listen("127.0.0.1:0")
        .await
        .expect("listens on loopback")
        .to_string()
}

pub(crate) fn identity() -> Identity {
    Identity::generate().expect("identity")
}

/// Sends `text` to `route` from `ctx` and returns the reply.
pub(crate) async fn ask(ctx: &mut Context, route: Route, text: &str) -> Routed<String> {
    ctx.send(route, text.to_owned()).await.expect("send");
    ctx.receive().await.expect("reply")
}

/// Starts a node with an echoer at "echoer" and a secure channel listener at "secure"
/// with `identity`, trusting `trust`; returns it and its TCP address.
/// A responder as `alice` (see [`responder`]), and a node with a secure channel to
/// it over TCP, as a fresh identity trusting everyone, with a context "app". Returns
/// the responder, its TCP address, the initiator, the channel and the context.
pub(crate) async fn responder_and_initiator<H: Harness>(
    alice: &Identity,
) -> (H::Node, String, H::Node, SecureChannel, Context) {
    let (b, b_addr) = responder::<H>(options(), alice, TrustEveryone).await;
    let a = start::<H>(options()).await;
    let channel = a
        .create_secure_channel(
            route![tcp(b_addr.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect("channel");
    let ctx = a.context("app").await.expect("context");
    (b, b_addr, a, channel, ctx)
}

pub(crate) async fn responder<H: Harness>(
    options: NodeOptions,
    identity: &Identity,
    trust: impl TrustPolicy,
) -> (H::Node, String) {
    let node = start::<H>(options).await;
    let address = listen::<H>(&node).await;
    node.start_worker("echoer", Echoer).await.expect("echoer");
    node.create_secure_channel_listener("secure", identity, trust)
        .await
        .expect("secure channel listener");
    (node, address)
}

// ---- the guide's steps --------------------------------------------------------------

/// 01: a node starts and stops; once stopped it refuses new work.
pub async fn step_01_node<H: Harness>() {
    let node = start::<H>(options()).await;
    node.stop().await.expect("stop");
    node.stop().await.expect("a second stop is harmless");
    assert!(matches!(node.context("app").await, Err(Error::Stopped)));
}

/// 02: an echoer at "echoer" answers the application.
pub async fn step_02_worker<H: Harness>() {
    let node = start::<H>(options()).await;
    node.start_worker("echoer", Echoer).await.expect("echoer");
    let mut ctx = node.context("app").await.expect("context");
    let reply = ask(&mut ctx, route!["echoer"], "Hello").await;
    assert_eq!(reply.body(), "Hello");
    assert_eq!(reply.return_route(), route!["echoer"]);
    assert_eq!(reply.onward_route(), &route!["app"]);
    node.stop().await.expect("stop");
}

/// 03: a hop worker passes the message on, and the reply retraces the route.
pub async fn step_03_routing<H: Harness>() {
    let node = start::<H>(options()).await;
    node.start_worker("h1", Hop).await.expect("hop");
    node.start_worker("echoer", Echoer).await.expect("echoer");
    let mut ctx = node.context("app").await.expect("context");
    let reply = ask(&mut ctx, route!["h1", "echoer"], "Hello").await;
    assert_eq!(reply.body(), "Hello");
    assert_eq!(reply.return_route(), route!["h1", "echoer"]);
    assert_eq!(reply.onward_route(), &route!["app"]);
    node.stop().await.expect("stop");
}

/// 04: three hops there and back.
pub async fn step_04_many_hops<H: Harness>() {
    let node = start::<H>(options()).await;
    for hop in ["h1", "h2", "h3"] {
        node.start_worker(hop, Hop).await.expect("hop");
    }
    node.start_worker("echoer", Echoer).await.expect("echoer");
    let mut ctx = node.context("app").await.expect("context");
    let reply = ask(&mut ctx, route!["h1", "h2", "h3", "echoer"], "Hello").await;
    assert_eq!(reply.body(), "Hello");
    assert_eq!(reply.return_route(), route!["h1", "h2", "h3", "echoer"]);
    node.stop().await.expect("stop");
}

/// 05: a secure channel listener and an initiator in one node.
pub async fn step_05_secure_channel<H: Harness>() {
    let node = start::<H>(options()).await;
    let alice = identity();
    let bob = identity();
    node.start_worker("echoer", Echoer).await.expect("echoer");
    node.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .expect("listener");
    let channel = node
        .create_secure_channel(route!["secure"], &bob, TrustEveryone)
        .await
        .expect("channel");
    assert_eq!(channel.peer(), &alice.identifier());
    let mut ctx = node.context("app").await.expect("context");
    let reply = ask(&mut ctx, route![channel.address(), "echoer"], "Hello").await;
    assert_eq!(reply.body(), "Hello");
    assert_eq!(reply.return_route().next(), Some(channel.address()));
    node.stop().await.expect("stop");
}

/// 06: a secure channel over three hop workers.
pub async fn step_06_secure_channel_many_hops<H: Harness>() {
    let node = start::<H>(options()).await;
    let alice = identity();
    let bob = identity();
    for hop in ["h1", "h2", "h3"] {
        node.start_worker(hop, Hop).await.expect("hop");
    }
    node.start_worker("echoer", Echoer).await.expect("echoer");
    node.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .expect("listener");
    let channel = node
        .create_secure_channel(route!["h1", "h2", "h3", "secure"], &bob, TrustEveryone)
        .await
        .expect("channel");
    assert_eq!(channel.peer(), &alice.identifier());
    let mut ctx = node.context("app").await.expect("context");
    for i in 0..10 {
        let text = format!("Hello {i}");
        let reply = ask(&mut ctx, route![channel.address(), "echoer"], &text).await;
        assert_eq!(reply.body(), &text);
    }
    node.stop().await.expect("stop");
}

/// 07: a route over a TCP connection to another node.
pub async fn step_07_transport<H: Harness>() {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("echoer");
    let a = start::<H>(options()).await;
    let mut ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let reply = ask(&mut ctx, route![tcp(b_addr.as_str()), "echoer"], "Hello").await;
    assert_eq!(reply.body(), "Hello");
    let back = reply.return_route();
    assert_eq!(
        back.len(),
        2,
        "the way back is the connection, then the echoer"
    );
    assert_eq!(back.last(), Some(&Address::local("echoer")));
    // The reply's way back leads to the echoer again.
    let again = ask(&mut ctx, back, "Again").await;
    assert_eq!(again.body(), "Again");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// 08: A → M → B, with nothing on M but a TCP listener.
pub async fn step_08_many_transport_hops<H: Harness>() {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("echoer");
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let a = start::<H>(options()).await;
    let mut ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let route = route![tcp(m_addr.as_str()), tcp(b_addr.as_str()), "echoer"];
    let reply = ask(&mut ctx, route, "Hello").await;
    assert_eq!(reply.body(), "Hello");
    assert_eq!(reply.return_route().len(), 3);
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

/// 09: a secure channel from A to B through M.
pub async fn step_09_secure_channel_many_transport_hops<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let a = start::<H>(options()).await;
    let channel = a
        .create_secure_channel(
            route![tcp(m_addr.as_str()), tcp(b_addr.as_str()), "secure"],
            &bob,
            TrustIdentifier::new(alice.identifier()),
        )
        .await
        .expect("channel");
    assert_eq!(channel.peer(), &alice.identifier());
    let mut ctx = a.context("app").await.expect("context");
    for i in 0..10 {
        let text = format!("Hello {i}");
        let reply = ask(&mut ctx, route![channel.address(), "echoer"], &text).await;
        assert_eq!(reply.body(), &text);
        assert_eq!(reply.return_route().next(), Some(channel.address()));
    }
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

/// A trust policy that accepts one identifier and records every identifier it was
/// asked about, so a test can see what the responder verified.
fn recording(accept: Identifier) -> (impl TrustPolicy, Arc<Mutex<Vec<Identifier>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let policy = move |peer: &Identifier| {
        record.lock().expect("lock").push(*peer);
        *peer == accept
    };
    (policy, seen)
}

/// 10: identities and trust policies: both sides verify each other; a policy that
/// does not accept the peer fails the channel with a clear error, in bounded time.
pub async fn step_10_identities<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let carol = identity();
    // The responder accepts bob only, and records whom it was asked about.
    let (policy, seen) = recording(bob.identifier());
    // Long handshake timeouts: the refusals below are authenticated answers, not
    // timeouts, and the successes must not race a timer on a loaded machine.
    let (b, b_addr) = responder::<H>(options(), &alice, policy).await;
    let a = start::<H>(options()).await;
    let to_b = || route![tcp(b_addr.as_str()), "secure"];

    // The right identifier, on both sides.
    let channel = a
        .create_secure_channel(to_b(), &bob, TrustIdentifier::new(alice.identifier()))
        .await
        .expect("channel with trusted identities");
    assert_eq!(channel.peer(), &alice.identifier());
    assert_eq!(seen.lock().expect("lock").as_slice(), &[bob.identifier()]);
    let mut ctx = a.context("app").await.expect("context");
    let reply = ask(&mut ctx, route![channel.address(), "echoer"], "Hello").await;
    assert_eq!(reply.body(), "Hello");

    // Any of a set, and a closure.
    let any_of = TrustAnyOf::new([carol.identifier(), alice.identifier()]);
    let channel = a
        .create_secure_channel(to_b(), &bob, any_of)
        .await
        .expect("channel with TrustAnyOf");
    assert_eq!(channel.peer(), &alice.identifier());
    let expected = alice.identifier();
    let channel = a
        .create_secure_channel(to_b(), &bob, move |peer: &Identifier| *peer == expected)
        .await
        .expect("channel with a closure");
    assert_eq!(channel.peer(), &alice.identifier());

    // The initiator expects someone else.
    let started = Instant::now();
    let error = a
        .create_secure_channel(to_b(), &bob, TrustIdentifier::new(carol.identifier()))
        .await
        .expect_err("the responder is not carol");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel { error: ChannelError::Untrusted { peer }, .. })
                if *peer == alice.identifier()
        ),
        "unexpected error: {error}"
    );
    assert!(started.elapsed() < STEP);

    // The responder does not accept the initiator.
    let started = Instant::now();
    let error = a
        .create_secure_channel(to_b(), &carol, TrustEveryone)
        .await
        .expect_err("the responder refuses carol");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                error: ChannelError::RefusedByPeer,
                ..
            })
        ),
        "unexpected error: {error}"
    );
    assert!(
        started.elapsed() < STEP,
        "refusal took {:?}",
        started.elapsed()
    );
    assert!(seen.lock().expect("lock").contains(&carol.identifier()));

    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- errors -------------------------------------------------------------------------

/// A send to an address that does not exist fails at once.
pub async fn error_unknown_address<H: Harness>() {
    let node = start::<H>(options()).await;
    let ctx = node.context("app").await.expect("context");
    let error = ctx
        .send(route!["nobody"], "Hello".to_owned())
        .await
        .expect_err("no such address");
    assert!(
        matches!(&error, Error::Node(NodeError::UnknownAddress(a)) if *a == Address::local("nobody")),
        "unexpected error: {error}"
    );
    node.stop().await.expect("stop");
}

/// A port nobody listens on: a loopback port that was just free.
pub(crate) fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    address.to_string()
}

/// A connection refused: the error arrives from `receive`, naming the peer, and a
/// secure channel over it fails at once with the same error rather than wait for its
/// handshake timeout.
pub async fn error_connection_refused<H: Harness>() {
    let mut options = options();
    // A refused loopback connect fails in microseconds. With a handshake timeout of
    // 20 s, an answer within half of it can only be the refusal itself, never the
    // handshake timer; and 10 s of slack trips only if the failure waited for that
    // timer, not because a loaded machine was slow.
    options.channel.handshake_timeout = Duration::from_secs(20);
    let at_once = options.channel.handshake_timeout / 2;
    let node = start::<H>(options).await;
    let closed = closed_port();
    let mut ctx = node.context("app").await.expect("context");
    ctx.send(route![tcp(closed.as_str()), "x"], "Hello".to_owned())
        .await
        .expect("the message waits for the connection");
    let started = Instant::now();
    let error = ctx.receive::<String>().await.expect_err("refused");
    assert!(
        matches!(&error, Error::Node(NodeError::ConnectFailed { peer, .. }) if *peer == closed),
        "unexpected error: {error}"
    );
    assert!(started.elapsed() < STEP);

    let started = Instant::now();
    let error = node
        .create_secure_channel(
            route![tcp(closed.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect_err("no channel over a refused connection");
    let took = started.elapsed();
    assert!(
        matches!(&error, Error::Node(NodeError::ConnectFailed { peer, .. }) if *peer == closed),
        "unexpected error: {error}"
    );
    assert!(
        took < at_once,
        "took {took:?}: the handshake timer, not the refusal"
    );
    node.stop().await.expect("stop");
}

/// Nothing answers: `receive` and a handshake end with a timeout, on the runtime's
/// timer, after about the configured time.
pub async fn error_timeouts<H: Harness>() {
    let options = short_options();
    let handshake = options.channel.handshake_timeout;
    let b = start::<H>(options.clone()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("sink", Sink, Access::anyone())
        .await
        .expect("sink");
    let a = start::<H>(options).await;
    a.start_worker("sink", Sink).await.expect("sink");

    let mut ctx = a.context("app").await.expect("context");
    let wait = Duration::from_millis(200);
    let started = Instant::now();
    let error = ctx
        .receive_timeout::<String>(wait)
        .await
        .expect_err("nothing");
    assert!(matches!(error, Error::Timeout(t) if t == wait), "{error}");
    assert!(started.elapsed() >= wait);

    for route in [route!["sink"], route![tcp(b_addr.as_str()), "sink"]] {
        let started = Instant::now();
        let error = a
            .create_secure_channel(route, &identity(), TrustEveryone)
            .await
            .expect_err("the sink never answers");
        assert!(
            matches!(
                &error,
                Error::Node(NodeError::Channel {
                    error: ChannelError::HandshakeTimeout {
                        after: t,
                        stage: HandshakeStage::HelloSent,
                    },
                    ..
                }) if *t == handshake
            ),
            "unexpected error: {error}"
        );
        let took = started.elapsed();
        assert!(took >= handshake && took < STEP, "took {took:?}");
    }
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// The middle node stops mid-conversation, with messages in flight: messages then
/// fail or time out, never hang; once it is back on the same port, a new channel
/// works.
pub async fn error_middle_node_stopped<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let a = start::<H>(options()).await;
    let to_b = || route![tcp(m_addr.as_str()), tcp(b_addr.as_str()), "secure"];
    let channel = a
        .create_secure_channel(to_b(), &bob, TrustEveryone)
        .await
        .expect("channel");
    let mut ctx = a.context("app").await.expect("context");
    let reply = ask(&mut ctx, route![channel.address(), "echoer"], "before").await;
    assert_eq!(reply.body(), "before");

    // Stop the middle node while a stream of messages is in flight through it: the
    // replies stop coming, and nothing hangs.
    b.start_worker("numbers", NumberEchoer)
        .await
        .expect("echoer");
    let tx = a.context("tx").await.expect("context");
    let mut rx = a.context("rx").await.expect("context");
    let back = rx.address().clone();
    let onward = route![channel.address(), "numbers"];
    let started = Instant::now();
    let send = async {
        for i in 0..2_000 {
            // Sends after the stop may be refused; that is one of the allowed outcomes.
            let _ = tx.forward(numbered(onward.clone(), &back, i)).await;
            if i % 64 == 0 {
                yield_now().await;
            }
        }
    };
    let receive = async {
        let mut received = 0;
        // The replies end once the middle node is gone; a gap this long means they
        // have ended (before the stop, only a hang would leave one).
        while rx
            .receive_timeout::<u32>(Duration::from_secs(5))
            .await
            .is_ok()
        {
            received += 1;
            if received == 100 {
                m.stop().await.expect("stop the middle node");
            }
        }
        received
    };
    let ((), received) = futures::join!(send, receive);
    assert!(received >= 100, "only {received} replies before the stop");
    assert!(started.elapsed() < STEP, "took {:?}", started.elapsed());
    m.stop().await.expect("a second stop is harmless");

    for i in 0..3 {
        let started = Instant::now();
        let sent = ctx
            .send(route![channel.address(), "echoer"], format!("during {i}"))
            .await;
        // The first message may go into the dying connection and be lost (a
        // timeout); later ones find the middle node refusing connections.
        if sent.is_ok() {
            let received = ctx.receive_timeout::<String>(Duration::from_secs(2)).await;
            assert!(
                matches!(
                    received,
                    Err(Error::Timeout(_)
                        | Error::Node(
                            NodeError::ConnectFailed { .. } | NodeError::ConnectionClosed { .. }
                        ))
                ),
                "unexpected: {received:?}"
            );
        }
        assert!(started.elapsed() < STEP);
    }

    let m = start::<H>(options()).await;
    let bound = within::<H, _>(STEP, "listening again", async {
        loop {
            // The port may take a moment to be free again after the stop.
            match m.listen(&m_addr).await {
                Ok(bound) => break bound,
                Err(_) => H::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert_eq!(bound.to_string(), m_addr);
    let channel = a
        .create_secure_channel(to_b(), &bob, TrustEveryone)
        .await
        .expect("a new channel through the restarted middle node");
    let reply = ask(&mut ctx, route![channel.address(), "echoer"], "after").await;
    assert_eq!(reply.body(), "after");
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

/// The responder stops: it closes its channel ends and tells the initiator, whose
/// channel then ends; a send through it fails at once, saying it closed.
pub async fn error_responder_stopped<H: Harness>() {
    let (b, _, a, channel, mut ctx) = responder_and_initiator::<H>(&identity()).await;
    let reply = ask(&mut ctx, route![channel.address(), "echoer"], "before").await;
    assert_eq!(reply.body(), "before");

    b.stop().await.expect("stop the responder");
    // The close record crosses the connection; wait, bounded, until the initiator
    // has taken it.
    let error = within::<H, _>(STEP, "the channel closing", async {
        loop {
            match ctx
                .send(route![channel.address(), "echoer"], "after".to_owned())
                .await
            {
                Err(error) => break error,
                Ok(()) => H::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert!(
        matches!(&error, Error::Node(NodeError::Channel { address, error: ChannelError::Closed }) if address == channel.address()),
        "unexpected error: {error}"
    );
    a.stop().await.expect("stop");
}

// ---- no deadlock --------------------------------------------------------------------

fn numbered(onward: Route, back: &Address, i: u32) -> TransportMessage {
    let mut payload = Vec::new();
    ciborium::into_writer(&i, &mut payload).expect("encode");
    TransportMessage::new(onward, Route::from(back.clone()), payload)
}

/// Sends [`PIPELINED`] numbers along `onward` from one context while another receives
/// the replies, concurrently, and checks every one arrives.
async fn pipeline(tx: Context, mut rx: Context, onward: Route) {
    let back = rx.address().clone();
    let send = async {
        for i in 0..PIPELINED {
            tx.forward(numbered(onward.clone(), &back, i))
                .await
                .expect("send");
            if i % 64 == 0 {
                yield_now().await;
            }
        }
    };
    let receive = async {
        let mut seen = BTreeSet::new();
        while seen.len() < PIPELINED as usize {
            let reply: Routed<u32> = rx.receive().await.expect("reply");
            assert!(seen.insert(*reply.body()), "duplicate {}", reply.body());
        }
    };
    futures::join!(send, receive);
}

/// A receiver slower than the network, behind a TCP connection and a mailbox of four:
/// its connection stops being read while the mailbox is full and resumes as it takes
/// messages, so every message arrives, in order (none dropped at the full mailbox).
pub async fn slow_receiver_over_tcp_loses_nothing<H: Harness>() {
    const COUNT: u32 = 500;
    let mut slow_options = options();
    slow_options.core.mailbox_capacity = 4;
    // No give-up while the test runs: a lost message would be a failure.
    slow_options.core.max_stall = Duration::from_secs(60);
    let b = start::<H>(slow_options).await;
    let b_addr = listen::<H>(&b).await;
    let mut slow = b
        .context_with("slow", Access::anyone())
        .await
        .expect("context");
    let a = start::<H>(options()).await;
    let tx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    for i in 0..COUNT {
        tx.forward(numbered(
            route![tcp(b_addr.as_str()), "slow"],
            tx.address(),
            i,
        ))
        .await
        .expect("send");
    }
    // Only now does the receiver start taking messages.
    for i in 0..COUNT {
        let message: Routed<u32> = slow.receive().await.expect("every message arrives");
        assert_eq!(*message.body(), i, "in order");
    }
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// Yields once to the executor, so the sender and the receiver interleave.
async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// 10,000 messages pipelined through three hop workers and back.
pub async fn pipelined_three_hops<H: Harness>() {
    let node = start::<H>(options()).await;
    for hop in ["h1", "h2", "h3"] {
        node.start_worker(hop, Hop).await.expect("hop");
    }
    node.start_worker("echoer", NumberEchoer)
        .await
        .expect("echoer");
    let tx = node.context("tx").await.expect("context");
    let rx = node.context("rx").await.expect("context");
    pipeline(tx, rx, route!["h1", "h2", "h3", "echoer"]).await;
    node.stop().await.expect("stop");
}

/// 10,000 messages pipelined through a secure channel over two TCP hops.
pub async fn pipelined_secure_channel_two_tcp_hops<H: Harness>() {
    let alice = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    b.start_worker("numbers", NumberEchoer)
        .await
        .expect("echoer");
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let a = start::<H>(options()).await;
    let channel: SecureChannel = a
        .create_secure_channel(
            route![tcp(m_addr.as_str()), tcp(b_addr.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect("channel");
    let tx = a.context("tx").await.expect("context");
    let rx = a.context("rx").await.expect("context");
    pipeline(tx, rx, route![channel.address(), "numbers"]).await;
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

// ---- bad peers ----------------------------------------------------------------------

/// Connects a raw client to `peer`, sends `bytes`, and reports whether the node then
/// disconnected it (EOF or reset), waiting as long as only a hang would take.
fn disconnected_after(peer: SocketAddr, bytes: Vec<u8>) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect(peer).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    stream.write_all(&bytes).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {} // the node's own preamble
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("still connected after {STEP:?}"))
            }
            Err(_) => return Ok(()),
        }
    }
}

/// A peer that sends a wrong preamble, one that sends an oversized frame length, and
/// one that sends garbage after a good preamble are each disconnected, while the node
/// keeps serving a well-behaved peer.
pub async fn bad_peers_disconnected<H: Harness>() {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("echoer");
    let a = start::<H>(options()).await;
    let mut ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let to_b = || route![tcp(b_addr.as_str()), "echoer"];
    assert_eq!(ask(&mut ctx, to_b(), "first").await.body(), "first");

    let peer: SocketAddr = b_addr.parse().expect("socket address");
    let max_frame = options().core.max_frame_len;
    let mut oversized = PREAMBLE.to_vec();
    oversized.extend_from_slice(&(max_frame + 1).to_be_bytes());
    let mut garbage = PREAMBLE.to_vec();
    garbage.extend_from_slice(&8u32.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 8]);
    let cases = [
        ("wrong preamble", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("oversized frame", oversized),
        ("garbage frame", garbage),
    ];
    // The three bad clients run at once, each on its own thread, while the good peer
    // keeps exchanging messages until they are all done.
    let done = std::sync::atomic::AtomicBool::new(false);
    let bad = async {
        let results = futures::future::join_all(cases.map(|(what, bytes)| async move {
            (
                what,
                blocking(move || disconnected_after(peer, bytes)).await,
            )
        }))
        .await;
        done.store(true, std::sync::atomic::Ordering::Release);
        results
    };
    let good = async {
        let mut exchanged = 0;
        while exchanged < 5 || !done.load(std::sync::atomic::Ordering::Acquire) {
            let text = format!("meanwhile {exchanged}");
            assert_eq!(ask(&mut ctx, to_b(), &text).await.body(), &text);
            exchanged += 1;
            yield_now().await;
        }
    };
    let (results, ()) = futures::join!(bad, good);
    for (what, result) in results {
        assert_eq!(result, Ok(()), "{what}");
    }
    assert_eq!(ask(&mut ctx, to_b(), "after").await.body(), "after");
    let stats = b.stats();
    assert!(stats.connections_refused >= 3, "{stats:?}");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- stopping -------------------------------------------------------------------------

/// A node stopped while a secure channel it creates is in its handshake: the pending
/// `create_secure_channel` returns `Stopped` at once, rather than hang (the node's
/// timer, which would end the handshake, is gone with the node).
pub async fn stop_during_a_handshake<H: Harness>() {
    let mut options = options();
    // Only the stop can end this handshake within the test.
    options.channel.handshake_timeout = Duration::from_secs(3600);
    let node = start::<H>(options).await;
    let (tx, mut hellos) = mpsc::unbounded();
    node.start_worker("silent", Reporter(tx))
        .await
        .expect("worker");
    let bob = identity();
    let create = node.create_secure_channel(route!["silent"], &bob, TrustEveryone);
    let stop = async {
        // The hello reached a worker that never answers: the handshake is under way.
        within::<H, _>(STEP, "the hello", hellos.next())
            .await
            .expect("a hello");
        node.stop().await.expect("stop");
    };
    let (created, ()) = within::<H, _>(STEP, "the pending channel to end", async {
        futures::join!(create, stop)
    })
    .await;
    assert!(matches!(created, Err(Error::Stopped)), "{created:?}");
}

/// What was queued when `stop` was called is done before it returns, as its
/// documentation says: a worker handles every message already in its mailbox, and a
/// connection flushes every frame already handed to it.
pub async fn stop_finishes_what_is_queued<H: Harness>() {
    const QUEUED: usize = 200;
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    let mut inbox = b
        .context_with("inbox", Access::anyone())
        .await
        .expect("context");
    let mut a_options = options();
    // Nothing here may be cut off: only a hang reaches this.
    a_options.stop_grace = STEP;
    let a = start::<H>(a_options).await;
    let (entered, in_hand) = oneshot::channel();
    let (open_gate, gate) = oneshot::channel();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let gated = Gated {
        entered: Some(entered),
        gate: Some(gate),
        handled: handled.clone(),
    };
    a.start_worker_with("gated", gated, Access::anyone())
        .await
        .expect("worker");
    let ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let to_b = || route![tcp(b_addr.as_str()), "inbox"];
    ctx.send(to_b(), "open".to_owned()).await.expect("send");
    let first: Routed<String> = inbox.receive().await.expect("the connection is open");
    assert_eq!(first.body(), "open");

    for i in 0..QUEUED {
        ctx.send(route!["gated"], i.to_string())
            .await
            .expect("send");
    }
    within::<H, _>(STEP, "the worker to take its first message", in_hand)
        .await
        .expect("entered");
    // The worker holds its first message; the others wait in its mailbox.
    assert!(handled.lock().expect("lock").is_empty());
    for i in 0..QUEUED {
        ctx.send(to_b(), format!("flush {i}")).await.expect("send");
    }
    // The gate opens only once `stop` has begun.
    futures::join!(async { a.stop().await.expect("stop") }, async {
        let _ = open_gate.send(());
    });
    let expected: Vec<String> = (0..QUEUED).map(|i| i.to_string()).collect();
    assert_eq!(
        *handled.lock().expect("lock"),
        expected,
        "handled before stop returned"
    );
    for i in 0..QUEUED {
        let message: Routed<String> = inbox.receive().await.expect("flushed");
        assert_eq!(message.body(), &format!("flush {i}"));
    }
    b.stop().await.expect("stop");
}

/// A worker that never finishes holds `stop` up for the grace period, no longer, and
/// its task is then cut off (the worker is dropped).
pub async fn stop_cuts_off_what_does_not_finish<H: Harness>() {
    let mut options = options();
    options.stop_grace = Duration::from_secs(1);
    let grace = options.stop_grace;
    let node = start::<H>(options).await;
    let (entered, in_hand) = oneshot::channel();
    let (alive, dropped) = oneshot::channel::<()>();
    let stuck = Stuck {
        entered: Some(entered),
        alive,
    };
    node.start_worker("stuck", stuck).await.expect("worker");
    let ctx = node.context("app").await.expect("context");
    ctx.send(route!["stuck"], "x".to_owned())
        .await
        .expect("send");
    within::<H, _>(STEP, "the worker to take the message", in_hand)
        .await
        .expect("entered");

    let started = Instant::now();
    node.stop().await.expect("stop");
    let took = started.elapsed();
    // At least the grace period, on the runtime's timer; the upper bound catches a
    // hang only.
    assert!(took >= grace && took < STEP, "stop took {took:?}");
    let cut_off = within::<H, _>(STEP, "the stuck worker to be cut off", dropped).await;
    assert!(cut_off.is_err(), "dropped, never sent on");
}

// ---- concurrent channels --------------------------------------------------------------

/// Two nodes create channels to one listener at once: both are established, each
/// with the responder as its peer, and the responder sees each one's messages coming
/// from that one's identity.
pub async fn concurrent_handshakes_at_one_listener<H: Harness>() {
    let alice = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    b.start_worker("who", PeerTeller).await.expect("worker");
    let to_b = || route![tcp(b_addr.as_str()), "secure"];
    let bobs = [identity(), identity()];
    let a1 = start::<H>(options()).await;
    let a2 = start::<H>(options()).await;
    let (one, two) = futures::join!(
        a1.create_secure_channel(to_b(), &bobs[0], TrustIdentifier::new(alice.identifier())),
        a2.create_secure_channel(to_b(), &bobs[1], TrustIdentifier::new(alice.identifier())),
    );
    for (a, channel, bob) in [(&a1, one, &bobs[0]), (&a2, two, &bobs[1])] {
        let channel = channel.expect("channel");
        assert_eq!(channel.peer(), &alice.identifier());
        let mut ctx = a.context("app").await.expect("context");
        let reply = ask(&mut ctx, route![channel.address(), "who"], "who am I?").await;
        assert_eq!(reply.body(), &bob.identifier().to_string());
        assert_eq!(reply.return_route().next(), Some(channel.address()));
    }
    for node in [a1, a2, b] {
        node.stop().await.expect("stop");
    }
}

/// One node opens several channels to one responder in parallel, each as another
/// identity: all are established, at distinct addresses, and what goes through each
/// arrives through that one (the responder sees that one's identity).
pub async fn parallel_channels_from_one_node<H: Harness>() {
    const CHANNELS: usize = 4;
    let alice = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    b.start_worker("who", PeerTeller).await.expect("worker");
    let a = start::<H>(options()).await;
    let bobs: Vec<Identity> = (0..CHANNELS).map(|_| identity()).collect();
    let channels = futures::future::join_all(bobs.iter().map(|bob| {
        a.create_secure_channel(
            route![tcp(b_addr.as_str()), "secure"],
            bob,
            TrustIdentifier::new(alice.identifier()),
        )
    }))
    .await;
    let channels: Vec<SecureChannel> = channels.into_iter().map(|c| c.expect("channel")).collect();
    let addresses: BTreeSet<&Address> = channels.iter().map(SecureChannel::address).collect();
    assert_eq!(addresses.len(), CHANNELS, "distinct channels");
    let mut ctx = a.context("app").await.expect("context");
    // Sent all at once, interleaved; each reply names the identity it came from.
    for (i, channel) in channels.iter().enumerate() {
        ctx.send(route![channel.address(), "who"], i.to_string())
            .await
            .expect("send");
    }
    let mut replies = BTreeMap::new();
    for _ in 0..CHANNELS {
        let reply: Routed<String> = ctx.receive().await.expect("reply");
        let through = reply.return_route().next().cloned().expect("a channel");
        replies.insert(through, reply.into_body());
    }
    for (channel, bob) in channels.iter().zip(&bobs) {
        assert_eq!(channel.peer(), &alice.identifier());
        assert_eq!(
            replies.get(channel.address()),
            Some(&bob.identifier().to_string())
        );
    }
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- closing a channel ----------------------------------------------------------------

/// `close_secure_channel` ends the channel at both ends: a send through it then fails
/// with `UnknownAddress` naming the end, on the side that closed it at once, and on
/// the peer once the close record has arrived.
pub async fn close_secure_channel_ends_both_sides<H: Harness>() {
    let (b, b_addr, a, channel, ctx) = responder_and_initiator::<H>(&identity()).await;
    let mut b_ctx = b
        .context_with("b_app", Access::anyone())
        .await
        .expect("context");
    ctx.send(route![channel.address(), "b_app"], "hello".to_owned())
        .await
        .expect("send");
    let hello: Routed<String> = b_ctx.receive().await.expect("through the channel");
    let b_end = hello.sender().cloned().expect("B's end of the channel");
    assert!(b_ctx.secure_channel_peer(&b_end).is_some());

    a.close_secure_channel(&channel).await;
    let error = ctx
        .send(route![channel.address(), "b_app"], "late".to_owned())
        .await
        .expect_err("A's end is gone");
    assert!(
        matches!(&error, Error::Node(NodeError::Channel { address, error: ChannelError::Closed }) if address == channel.address()),
        "unexpected error: {error}"
    );
    // The close record went over A's connection to B; a message sent after it on the
    // same connection arrives after B has taken it (TCP and B's routing keep order).
    ctx.send(route![tcp(b_addr.as_str()), "b_app"], "after".to_owned())
        .await
        .expect("send");
    let after: Routed<String> = b_ctx.receive().await.expect("after the close");
    assert_eq!(after.body(), "after");
    assert_eq!(b_ctx.secure_channel_peer(&b_end), None);
    let error = b_ctx
        .send(route![b_end.clone(), "app"], "late".to_owned())
        .await
        .expect_err("B's end is gone");
    assert!(
        matches!(&error, Error::Node(NodeError::Channel { address, error: ChannelError::Closed }) if *address == b_end),
        "unexpected error: {error}"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- limits, at the limit and one past ------------------------------------------------

fn cbor(text: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    ciborium::into_writer(&text, &mut payload).expect("encode");
    payload
}

/// A payload of exactly `MAX_PAYLOAD_LEN` bytes crosses TCP both ways; one byte more
/// is refused when sent, naming the length.
pub async fn limit_payload_over_tcp<H: Harness>() {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", PayloadEchoer, Access::anyone())
        .await
        .expect("worker");
    let a = start::<H>(options()).await;
    let mut ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let me = ctx.address().clone();
    let message = |len: usize| {
        TransportMessage::new(
            route![tcp(b_addr.as_str()), "echoer"],
            Route::from(me.clone()),
            vec![0x7e; len],
        )
    };
    ctx.forward(message(MAX_PAYLOAD_LEN))
        .await
        .expect("at the limit");
    let reply: Routed<Opaque> = ctx.receive().await.expect("echoed");
    assert_eq!(reply.payload(), vec![0x7e; MAX_PAYLOAD_LEN].as_slice());

    let error = ctx
        .forward(message(MAX_PAYLOAD_LEN + 1))
        .await
        .expect_err("one byte past the limit");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Message(MessageError::PayloadTooLarge { len }))
                if *len == MAX_PAYLOAD_LEN + 1
        ),
        "unexpected error: {error}"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A return route of `MAX_ROUTE_LEN` (32) addresses crosses TCP, and the reply comes
/// back along it; 33 are refused when sent.
pub async fn limit_return_route_over_tcp<H: Harness>() {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("worker");
    let a = start::<H>(options()).await;
    let mut ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let me = ctx.address().clone();
    let back = |len: usize| -> Route {
        std::iter::once(me.clone())
            .chain((1..len).map(|i| Address::local(format!("r{i}"))))
            .collect()
    };
    let to_b = || route![tcp(b_addr.as_str()), "echoer"];
    ctx.forward(TransportMessage::new(
        to_b(),
        back(MAX_ROUTE_LEN),
        cbor("32"),
    ))
    .await
    .expect("at the limit");
    let reply: Routed<String> = ctx.receive().await.expect("reply");
    assert_eq!(reply.body(), "32");
    assert_eq!(
        reply.onward_route(),
        &back(MAX_ROUTE_LEN),
        "the way back, whole"
    );

    let error = ctx
        .forward(TransportMessage::new(
            to_b(),
            back(MAX_ROUTE_LEN + 1),
            cbor("33"),
        ))
        .await
        .expect_err("one address past the limit");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Message(MessageError::RouteTooLong { which: "return", len }))
                if *len == MAX_ROUTE_LEN + 1
        ),
        "unexpected error: {error}"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// The largest message one channel record carries (`MAX_INNER_MESSAGE_LEN` bytes
/// encoded, routes included) goes through a channel over TCP and back; one byte more is
/// refused by the channel, naming both lengths.
pub async fn limit_channel_message<H: Harness>() {
    let alice = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    b.start_worker("bytes", PayloadEchoer)
        .await
        .expect("worker");
    let a = start::<H>(options()).await;
    let channel = a
        .create_secure_channel(
            route![tcp(b_addr.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect("channel");
    let mut ctx = a.context("app").await.expect("context");
    let me = Route::from(ctx.address().clone());
    // What the channel encrypts: the message as it goes on at B.
    let inner = |len: usize| TransportMessage::new(route!["bytes"], me.clone(), vec![3; len]);
    let largest = (0..MAX_INNER_MESSAGE_LEN)
        .rev()
        .find(|len| inner(*len).encoded_len() <= MAX_INNER_MESSAGE_LEN)
        .expect("a payload that fits");
    assert_eq!(inner(largest).encoded_len(), MAX_INNER_MESSAGE_LEN);
    let through = |len: usize| {
        TransportMessage::new(route![channel.address(), "bytes"], me.clone(), vec![3; len])
    };

    ctx.forward(through(largest))
        .await
        .expect("the largest message");
    let reply: Routed<Opaque> = ctx.receive().await.expect("echoed through the channel");
    assert_eq!(reply.payload().len(), largest);
    assert_eq!(reply.return_route().next(), Some(channel.address()));

    let error = ctx
        .forward(through(largest + 1))
        .await
        .expect_err("one byte more");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                address,
                error: ChannelError::PlaintextTooLarge { len, max },
            }) if address == channel.address()
                && *len == MAX_INNER_MESSAGE_LEN + 1
                && *max == MAX_INNER_MESSAGE_LEN
        ),
        "unexpected error: {error}"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A raw client that sends `bytes` and reads the node's preamble and one frame back,
/// decoded.
fn exchange(peer: SocketAddr, bytes: Vec<u8>) -> Result<TransportMessage, String> {
    let mut stream = std::net::TcpStream::connect(peer).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    stream.write_all(&bytes).map_err(|e| e.to_string())?;
    let mut preamble = [0u8; PREAMBLE.len()];
    stream
        .read_exact(&mut preamble)
        .map_err(|e| e.to_string())?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).map_err(|e| e.to_string())?;
    let mut frame = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut frame).map_err(|e| e.to_string())?;
    TransportMessage::decode(&frame).map_err(|e| e.to_string())
}

/// A receiving node's frame limit over real TCP. The default (262,144 bytes) is more
/// than any valid message takes (the simulator tests a frame of exactly that), so the
/// node here sets its limit to the size of one message: a frame of exactly that size
/// is read and answered, one a byte larger closes the connection unanswered.
pub async fn limit_frame_over_tcp<H: Harness>() {
    let request = |text: &str| TransportMessage::new(route!["echoer"], route!["raw"], cbor(text));
    let text = "x".repeat(100);
    let limit = request(&text).to_bytes().expect("encode").len();
    let mut b_options = options();
    b_options.core.max_frame_len = u32::try_from(limit).expect("small");
    let b = start::<H>(b_options).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("worker");
    let peer: SocketAddr = b_addr.parse().expect("socket address");
    let framed = |message: TransportMessage| {
        let mut bytes = PREAMBLE.to_vec();
        encode_frame(&message.to_bytes().expect("encode"), u32::MAX, &mut bytes).expect("frame");
        bytes
    };

    let at_limit = framed(request(&text));
    assert_eq!(at_limit.len(), PREAMBLE.len() + 4 + limit);
    let reply = blocking(move || exchange(peer, at_limit))
        .await
        .expect("answered");
    assert_eq!(reply.onward_route, route!["raw"]);
    assert_eq!(reply.payload, cbor(&text));

    let past = request(&format!("{text}x"));
    assert_eq!(past.to_bytes().expect("encode").len(), limit + 1);
    let past = framed(past);
    let result = blocking(move || disconnected_after(peer, past)).await;
    assert_eq!(result, Ok(()), "one byte past the limit");
    assert_eq!(b.stats().connections_refused, 1);
    b.stop().await.expect("stop");
}

// ---- connections and congestion -------------------------------------------------------

/// At the outgoing connection limit (1 here), a dial to a second peer closes the
/// connection unused for longest, if it holds nothing, rather than fail: a node that
/// has dialled many peers once is not stuck. The first peer is dialled again when
/// needed.
pub async fn max_connections_makes_room_by_closing_the_idlest<H: Harness>() {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("echoer");
    let c = start::<H>(options()).await;
    let c_addr = listen::<H>(&c).await;
    c.start_worker_with("echoer", Echoer, Access::anyone())
        .await
        .expect("echoer");
    let mut a_options = options();
    a_options.core.max_outgoing_connections = 1;
    let a = start::<H>(a_options).await;
    let mut ctx = a
        .context_with("app", Access::anyone())
        .await
        .expect("context");
    let to = |addr: &str| route![tcp(addr), "echoer"];
    assert_eq!(ask(&mut ctx, to(&b_addr), "first").await.body(), "first");
    assert_eq!(ask(&mut ctx, to(&c_addr), "second").await.body(), "second");
    assert_eq!(a.stats().connections_evicted, 1, "B's connection made room");
    assert_eq!(ask(&mut ctx, to(&b_addr), "again").await.body(), "again");
    assert_eq!(a.stats().connections_evicted, 2);
    for node in [a, b, c] {
        node.stop().await.expect("stop");
    }
}

/// A peer whose connect never completes: the message waiting for it, and a channel
/// over it, fail with `ConnectFailed` after the connect timeout (not the handshake
/// timeout). The runtime's connect is replaced by one that never completes, as a
/// peer that drops every SYN would make it; only loopback is used here.
pub async fn connect_timeout<H: Harness>() {
    let mut options = options();
    options.connect_timeout = Duration::from_millis(500);
    let timeout = options.connect_timeout;
    let node = api::Node::start_on(Arc::new(NeverConnects(H::runtime())), options)
        .await
        .expect("node starts");
    let peer = closed_port();
    let mut ctx = node.context("app").await.expect("context");
    let started = Instant::now();
    ctx.send(route![tcp(peer.as_str()), "x"], "Hello".to_owned())
        .await
        .expect("the message waits for the connection");
    let error = ctx.receive::<String>().await.expect_err("never connected");
    let took = started.elapsed();
    let expected = format!("no answer within {timeout:?}");
    assert!(
        matches!(&error, Error::Node(NodeError::ConnectFailed { peer: p, reason }) if *p == peer && *reason == expected),
        "unexpected error: {error}"
    );
    assert!(took >= timeout && took < STEP, "took {took:?}");

    let started = Instant::now();
    let error = node
        .create_secure_channel(
            route![tcp(peer.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect_err("no channel");
    let took = started.elapsed();
    assert!(
        matches!(&error, Error::Node(NodeError::ConnectFailed { peer: p, .. }) if *p == peer),
        "unexpected error: {error}"
    );
    assert!(took >= timeout && took < STEP, "took {took:?}");
    node.stop().await.expect("stop");
}

/// A peer that listens and never accepts. The kernel completes TCP handshakes for a
/// listening socket up to its backlog whether or not the program accepts, so the
/// connect succeeds and the connect timeout does not apply: the hello is written and
/// nothing comes back, and the channel fails by its handshake timeout.
pub async fn a_listener_that_never_accepts<H: Harness>() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = listener.local_addr().expect("address").to_string();
    let mut options = options();
    // Had the connect not completed, its timeout (5 s) would end the channel first,
    // with ConnectFailed; a loopback connect that the kernel answers takes far less.
    options.connect_timeout = Duration::from_secs(5);
    options.channel.handshake_timeout = Duration::from_secs(6);
    let handshake = options.channel.handshake_timeout;
    let node = start::<H>(options).await;
    let error = node
        .create_secure_channel(
            route![tcp(peer.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                error: ChannelError::HandshakeTimeout {
                        after: t,
                        stage: HandshakeStage::HelloSent,
                    },
                ..
            }) if *t == handshake
        ),
        "unexpected error: {error}"
    );
    node.stop().await.expect("stop");
    drop(listener);
}

/// An application context sending to a mailbox nobody reads waits while it is
/// congested (half full), and gives up with `Timeout` after the send timeout.
pub async fn send_timeout_on_a_congested_mailbox<H: Harness>() {
    let mut options = options();
    options.core.mailbox_capacity = 4;
    options.send_timeout = Duration::from_millis(500);
    let timeout = options.send_timeout;
    let node = start::<H>(options).await;
    let _unread = node.context("unread").await.expect("context");
    let ctx = node.context("app").await.expect("context");
    for i in 0..2 {
        ctx.send(route!["unread"], i).await.expect("room");
    }
    let started = Instant::now();
    let error = ctx
        .send(route!["unread"], 2)
        .await
        .expect_err("congested, and nobody reads");
    let took = started.elapsed();
    assert!(
        matches!(error, Error::Timeout(t) if t == timeout),
        "unexpected error: {error}"
    );
    assert!(took >= timeout && took < STEP, "took {took:?}");
    node.stop().await.expect("stop");
}

// ---- who sent it --------------------------------------------------------------------

/// A remote peer cannot pass for a secure channel: a raw client's plain frame whose
/// return route starts with the address of the responder's channel end reaches the
/// worker with the connection's alias first, and the worker learns no channel peer.
pub async fn a_remote_peer_cannot_put_a_channel_end_first<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .expect("listener");
    let (tx, mut reports) = mpsc::unbounded();
    b.start_worker_with("who", Reporter(tx), Access::anyone())
        .await
        .expect("worker");
    let a = start::<H>(options()).await;
    let channel = a
        .create_secure_channel(route![tcp(b_addr.as_str()), "secure"], &bob, TrustEveryone)
        .await
        .expect("channel");
    let ctx = a.context("app").await.expect("context");
    ctx.send(
        route![channel.address(), "who"],
        "through the channel".to_owned(),
    )
    .await
    .expect("send");
    let honest = within::<H, _>(STEP, "the message through the channel", reports.next())
        .await
        .expect("a report");
    assert_eq!(honest.peer, Some(bob.identifier()));
    let b_end = honest.sender.expect("B's end of the channel");

    let forged = TransportMessage::new(
        route!["who"],
        route![b_end.clone(), "x"],
        cbor("not through the channel"),
    );
    let mut bytes = PREAMBLE.to_vec();
    encode_frame(&forged.to_bytes().expect("encode"), u32::MAX, &mut bytes).expect("frame");
    let peer: SocketAddr = b_addr.parse().expect("socket address");
    blocking(move || -> std::io::Result<()> {
        let mut stream = std::net::TcpStream::connect(peer)?;
        stream.set_read_timeout(Some(STEP))?;
        stream.write_all(&bytes)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        // Until the node has read it all and closed its side.
        std::io::copy(&mut stream, &mut std::io::sink()).map(|_| ())
    })
    .await
    .expect("raw client");
    let report = within::<H, _>(STEP, "the raw client's message", reports.next())
        .await
        .expect("a report");
    assert_eq!(report.peer, None, "no channel peer for a plain message");
    assert_ne!(report.sender.as_ref(), Some(&b_end));
    assert_eq!(
        report.return_route.iter().nth(1),
        Some(&b_end),
        "the claimed end is still there, behind the connection's alias"
    );
    assert_eq!(
        ctx_peer(&b, &b_end).await,
        Some(bob.identifier()),
        "the channel is untouched"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- access rules ------------------------------------------------------------------

/// Sends `frames` plain messages to `onward` on the node at `peer` from a raw TCP
/// client, ends its stream, and reads until the node has closed its side. Returns
/// the messages the node wrote back.
fn raw_messages(peer: SocketAddr, onward: Route, frames: usize) -> Vec<TransportMessage> {
    let mut bytes = PREAMBLE.to_vec();
    for i in 0..frames {
        let message = TransportMessage::new(onward.clone(), route!["x"], cbor(&format!("raw {i}")));
        encode_frame(&message.to_bytes().expect("encode"), u32::MAX, &mut bytes).expect("frame");
    }
    let mut stream = std::net::TcpStream::connect(peer).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream.write_all(&bytes).expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("read until the node closes");
    // The node wrote what it had for this peer before it closed: its preamble, then
    // whole frames.
    let mut decoder = FrameDecoder::new(u32::MAX);
    decoder.handle_bytes(&answer).expect("a well-formed stream");
    std::iter::from_fn(|| decoder.poll_frame())
        .map(|frame| TransportMessage::decode(&frame).expect("a message"))
        .collect()
}

/// Checks that `answer` holds only reports that `address` refused a message, one per
/// message sent at most.
fn only_refusals(answer: &[TransportMessage], address: &Address, sent: usize) {
    assert!(answer.len() <= sent, "{} answers to {sent}", answer.len());
    for message in answer {
        assert!(is_report(message), "an answer that is not a report");
        let report = Report::decode(&message.payload).expect("a report");
        assert_eq!(report.code, ReportCode::Refused);
        assert_eq!(report.address, *address);
    }
}

/// A node listening on TCP with a channel listener "secure" as `alice`, its channels
/// keeping `rules`. Returns the node and its TCP address.
async fn listening_responder<H: Harness>(
    alice: &Identity,
    rules: ChannelRules,
) -> (H::Node, String) {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.create_secure_channel_listener_with("secure", alice, TrustEveryone, rules)
        .await
        .expect("listener");
    (b, b_addr)
}

/// A new node with a secure channel as `bob` to the listener "secure" at `b_addr`.
async fn channel_to<H: Harness>(b_addr: &str, bob: &Identity) -> (H::Node, SecureChannel) {
    let a = start::<H>(options()).await;
    let channel = a
        .create_secure_channel(route![tcp(b_addr), "secure"], bob, TrustEveryone)
        .await
        .expect("channel");
    (a, channel)
}

/// A worker that takes messages only through secure channels (the default) gets none
/// of 200 plain frames sent to it over TCP: each is refused and counted, the node
/// keeps serving, and a message through a channel still arrives.
pub async fn plain_frames_do_not_reach_a_worker_that_takes_channels_only<H: Harness>() {
    let alice = identity();
    let (b, b_addr) = listening_responder::<H>(&alice, ChannelRules::new()).await;
    let (tx, mut reports) = mpsc::unbounded();
    b.start_worker("echoer", Reporter(tx))
        .await
        .expect("worker");
    let peer: SocketAddr = b_addr.parse().expect("socket address");
    let answer = blocking(move || raw_messages(peer, route!["echoer"], 200)).await;
    // Nothing comes back to the raw client but reports of the refusals.
    only_refusals(&answer, &Address::local("echoer"), 200);
    assert!(!answer.is_empty());
    assert_eq!(b.stats().messages_refused, 200);

    let bob = identity();
    let (a, channel) = channel_to::<H>(&b_addr, &bob).await;
    let ctx = a.context("app").await.expect("context");
    ctx.send(route![channel.address(), "echoer"], "hello".to_owned())
        .await
        .expect("send");
    let report = within::<H, _>(STEP, "the message through the channel", reports.next())
        .await
        .expect("a report");
    // The first and only message the worker saw is the one through the channel.
    assert_eq!(report.origin.channel_peer(), Some(&bob.identifier()));
    assert!(matches!(report.origin, Origin::Channel { .. }));
    assert_eq!(b.stats().messages_refused, 200);
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// The injection attack: A's message leaves a channel on B and goes on over TCP to D,
/// so D learns the address of B's channel end. Anyone who can reach B then sends
/// `[B's end, "victim"]` to B. B refuses it (a channel takes messages only from its own
/// node), so nothing reaches A's victim as if from B. A marker that B's own
/// application sends through the same channel afterwards arrives first and alone.
pub async fn no_one_outside_a_node_can_speak_into_its_channel<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let (b, b_addr) = listening_responder::<H>(&alice, ChannelRules::new()).await;
    let d = start::<H>(options()).await;
    let d_addr = listen::<H>(&d).await;
    let (d_tx, mut d_reports) = mpsc::unbounded();
    d.start_worker_with("service", Reporter(d_tx), Access::anyone())
        .await
        .expect("service");

    let (a, channel) = channel_to::<H>(&b_addr, &bob).await;
    let (victim_tx, mut victim_reports) = mpsc::unbounded();
    a.start_worker("victim", Reporter(victim_tx))
        .await
        .expect("victim");
    let ctx = a.context("app").await.expect("context");
    ctx.send(
        route![channel.address(), tcp(d_addr.as_str()), "service"],
        "to D through B".to_owned(),
    )
    .await
    .expect("send");
    let at_d = within::<H, _>(STEP, "the message at D", d_reports.next())
        .await
        .expect("a report");
    // D's return route: the connection from B, B's channel end, A's app.
    let b_end = at_d
        .return_route
        .iter()
        .nth(1)
        .cloned()
        .expect("B's channel end on D's return route");
    assert_eq!(ctx_peer(&b, &b_end).await, Some(bob.identifier()));

    let peer: SocketAddr = b_addr.parse().expect("socket address");
    let onward = route![b_end.clone(), "victim"];
    let refused = b_end.clone();
    let answer = blocking(move || raw_messages(peer, onward, 3)).await;
    only_refusals(&answer, &refused, 3);
    assert_eq!(b.stats().messages_refused, 3, "B refused each injection");

    let b_ctx = b.context("b_app").await.expect("context");
    b_ctx
        .send(
            route![b_end, "victim"],
            "marker from B's own app".to_owned(),
        )
        .await
        .expect("B's own app may use its channel");
    let first = within::<H, _>(STEP, "the marker", victim_reports.next())
        .await
        .expect("a report");
    assert_eq!(first.origin.channel_peer(), Some(&alice.identifier()));
    assert_eq!(
        first.return_route.iter().nth(1),
        Some(&Address::local("b_app")),
        "the first message at the victim is the marker, not an injection"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
    d.stop().await.expect("stop");
}

/// A worker that takes channels only from one identity: a channel from another
/// identity reaches the node (the listener trusts everyone) but not the worker, and
/// the sender, on the same node here, is told why.
pub async fn a_worker_restricted_to_an_identity_refuses_other_channels<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let carol = identity();
    let node = start::<H>(options()).await;
    node.create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .expect("listener");
    let (tx, mut reports) = mpsc::unbounded();
    node.start_worker_with(
        "vault",
        Reporter(tx),
        Access::secure_channels_from(TrustIdentifier::new(bob.identifier())),
    )
    .await
    .expect("vault");
    let from_carol = node
        .create_secure_channel(route!["secure"], &carol, TrustEveryone)
        .await
        .expect("carol's channel");
    let from_bob = node
        .create_secure_channel(route!["secure"], &bob, TrustEveryone)
        .await
        .expect("bob's channel");
    let ctx = node.context("app").await.expect("context");
    let refused = ctx
        .send(route![from_carol.address(), "vault"], "carol".to_owned())
        .await;
    match refused {
        Err(Error::Node(NodeError::Refused {
            address,
            origin,
            rule,
        })) => {
            assert_eq!(address, Address::local("vault"));
            assert_eq!(origin.channel_peer(), Some(&carol.identifier()));
            assert!(rule.contains("secure channels from peers"), "{rule}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    ctx.send(route![from_bob.address(), "vault"], "bob".to_owned())
        .await
        .expect("bob may");
    let report = within::<H, _>(STEP, "bob's message", reports.next())
        .await
        .expect("a report");
    assert_eq!(report.origin.channel_peer(), Some(&bob.identifier()));
    assert_eq!(node.stats().messages_refused, 1);
    node.stop().await.expect("stop");
}

/// A listener whose channels may deliver only to "public": a message through one of
/// them to "private" is refused, one to "public" arrives.
pub async fn a_listener_restricts_where_its_channels_deliver<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let (b, b_addr) =
        listening_responder::<H>(&alice, ChannelRules::new().deliver_only_to(["public"])).await;
    let (public_tx, mut public) = mpsc::unbounded();
    b.start_worker("public", Reporter(public_tx))
        .await
        .expect("public");
    let (private_tx, mut private) = mpsc::unbounded();
    b.start_worker("private", Reporter(private_tx))
        .await
        .expect("private");

    let (a, channel) = channel_to::<H>(&b_addr, &bob).await;
    let ctx = a.context("app").await.expect("context");
    ctx.send(route![channel.address(), "private"], "no".to_owned())
        .await
        .expect("taken by A");
    ctx.send(route![channel.address(), "public"], "yes".to_owned())
        .await
        .expect("taken by A");
    let report = within::<H, _>(STEP, "the public message", public.next())
        .await
        .expect("a report");
    assert_eq!(report.origin.channel_peer(), Some(&bob.identifier()));
    // The channel keeps order: the private message was handled before the public one.
    assert_eq!(b.stats().messages_refused, 1);
    assert!(private.try_recv().is_err(), "nothing reached private");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- user code that panics --------------------------------------------------------

/// A worker that panics on one message loses that message only: the next is handled,
/// and the node goes on.
pub async fn a_panicking_worker_fails_only_that_message<H: Harness>() {
    let node = start::<H>(options()).await;
    node.start_worker_with("fragile", Fragile, Access::local_only())
        .await
        .expect("worker");
    let mut ctx = node.context("app").await.expect("context");
    for body in ["panic", "after", "panic", "again"] {
        ctx.send(route!["fragile"], body.to_owned())
            .await
            .expect("send");
    }
    for expected in ["after", "again"] {
        let reply: Routed<String> = ctx.receive().await.expect("a reply");
        assert_eq!(reply.body(), expected);
    }
    node.stop().await.expect("stop");
}

/// A trust policy that panics on one peer refuses that peer (an authenticated
/// refusal, at once), and the listener, the connection and the node go on: the next
/// handshake over the same connection succeeds.
pub async fn a_panicking_trust_policy_fails_only_that_handshake<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let carol = identity();
    let carol_id = carol.identifier();
    let policy = move |peer: &Identifier| {
        assert_ne!(*peer, carol_id, "the policy has a bug for carol");
        true
    };
    let (b, b_addr) = responder::<H>(options(), &alice, policy).await;
    let a = start::<H>(options()).await;
    let to_b = || route![tcp(b_addr.as_str()), "secure"];
    let error = a
        .create_secure_channel(to_b(), &carol, TrustEveryone)
        .await
        .expect_err("carol is refused");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                error: ChannelError::RefusedByPeer,
                ..
            })
        ),
        "unexpected error: {error}"
    );
    let channel = a
        .create_secure_channel(to_b(), &bob, TrustEveryone)
        .await
        .expect("bob still gets a channel");
    let mut ctx = a.context("app").await.expect("context");
    let reply = ask(
        &mut ctx,
        route![channel.address(), "echoer"],
        "still serving",
    )
    .await;
    assert_eq!(reply.body(), "still serving");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

// ---- deadlines of unauthenticated stages --------------------------------------------

/// A peer that connects and sends nothing, and one that sends only the preamble, are
/// closed at the first-frame deadline, counted, while the node serves others.
pub async fn a_silent_connection_is_closed_at_its_first_frame_deadline<H: Harness>() {
    let mut b_options = options();
    b_options.core.first_frame_timeout = Duration::from_millis(300);
    let b = start::<H>(b_options).await;
    let b_addr = listen::<H>(&b).await;
    let peer: SocketAddr = b_addr.parse().expect("socket address");
    for send in [&b""[..], &PREAMBLE[..]] {
        let send = send.to_vec();
        let answer = blocking(move || -> std::io::Result<Vec<u8>> {
            let mut stream = std::net::TcpStream::connect(peer)?;
            stream.set_read_timeout(Some(STEP))?;
            stream.write_all(&send)?;
            // Until the node closes its side: the deadline, not this client, ends it.
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer)?;
            Ok(answer)
        })
        .await
        .expect("the node closes the connection");
        assert_eq!(answer, PREAMBLE, "only the node's preamble, then the close");
    }
    assert_eq!(b.stats().connections_timed_out, 2);
    assert_eq!(b.stats().connections_refused, 0);
    b.stop().await.expect("stop");
}

/// What a context on `node` learns about `address` as a channel end.
async fn ctx_peer(node: &api::Node, address: &Address) -> Option<Identifier> {
    let ctx = node.context("peek").await.expect("context");
    ctx.secure_channel_peer(address)
}
