//! Cross-runtime interop: a secure channel from an initiator on one runtime, through
//! a middle node on a second, to a responder on a third, in all six orders. Each node
//! runs on its own runtime in its own thread; the threads exchange ports over std
//! channels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures::channel::oneshot;
use onward_protocol::api::{Context, Routed};
use onward_protocol::identity::{Identifier, Identity};
use onward_protocol::trust::TrustIdentifier;
use onward_protocol::{route, tcp};
use onward_tests::harness::{options, run};
use onward_tests::workers::Tagger;
use onward_tests::{AsyncStd, Harness, Smol, Tokio};

/// The longest a node thread may run.
const LIMIT: Duration = Duration::from_secs(30);

/// How long the coordinator waits for a node to report its port.
const READY: Duration = Duration::from_secs(10);

/// Messages each way.
const MESSAGES: usize = 50;

/// The responder: a secure channel listener as `alice`, accepting only `initiator`,
/// and a worker that answers with its runtime's name.
async fn responder<H: Harness>(
    alice: Identity,
    initiator: Identifier,
    ready: mpsc::Sender<String>,
    done: oneshot::Receiver<()>,
) {
    let node = H::start(options()).await.expect("responder starts");
    let bound = node.listen("127.0.0.1:0").await.expect("listen");
    node.create_secure_channel_listener("secure", &alice, TrustIdentifier::new(initiator))
        .await
        .expect("listener");
    node.start_worker("echoer", Tagger(H::NAME.to_owned()))
        .await
        .expect("worker");
    ready.send(bound.to_string()).expect("coordinator waits");
    let _ = done.await;
    node.stop().await.expect("responder stops");
}

/// The middle node: a TCP listener and nothing else.
async fn middle<H: Harness>(ready: mpsc::Sender<String>, done: oneshot::Receiver<()>) {
    let node = H::start(options()).await.expect("middle starts");
    let bound = node.listen("127.0.0.1:0").await.expect("listen");
    ready.send(bound.to_string()).expect("coordinator waits");
    let _ = done.await;
    node.stop().await.expect("middle stops");
}

/// The initiator: a channel as `bob` through `m` to `b`, expecting `responder`, then
/// messages there and replies back, checking the reply names the responder's runtime.
async fn initiator<H: Harness>(
    bob: Identity,
    responder: Identifier,
    m: String,
    b: String,
    responder_runtime: &'static str,
) {
    let node = H::start(options()).await.expect("initiator starts");
    let channel = node
        .create_secure_channel(
            route![tcp(m), tcp(b), "secure"],
            &bob,
            TrustIdentifier::new(responder),
        )
        .await
        .expect("channel across runtimes");
    assert_eq!(channel.peer(), &responder);
    let mut ctx: Context = node.context("app").await.expect("context");
    for i in 0..MESSAGES {
        ctx.send(route![channel.address(), "echoer"], format!("Hello {i}"))
            .await
            .expect("send");
    }
    for i in 0..MESSAGES {
        let reply: Routed<String> = ctx.receive().await.expect("reply");
        assert_eq!(reply.body(), &format!("{responder_runtime}: Hello {i}"));
    }
    node.stop().await.expect("initiator stops");
}

/// Runs the three nodes: initiator on `I`, middle on `M`, responder on `R`.
fn interop<I: Harness, M: Harness, R: Harness>() {
    let alice = Identity::generate().expect("identity");
    let bob = Identity::generate().expect("identity");
    let (alice_id, bob_id) = (alice.identifier(), bob.identifier());

    let (ready, b_port) = mpsc::channel();
    let (stop_responder, done) = oneshot::channel();
    let r = thread::spawn(move || run::<R>(LIMIT, responder::<R>(alice, bob_id, ready, done)));
    let b = b_port.recv_timeout(READY).expect("the responder listens");

    let (ready, m_port) = mpsc::channel();
    let (stop_middle, done) = oneshot::channel();
    let m = thread::spawn(move || run::<M>(LIMIT, middle::<M>(ready, done)));
    let m_addr = m_port.recv_timeout(READY).expect("the middle node listens");

    let i = thread::spawn(move || {
        run::<I>(LIMIT, initiator::<I>(bob, alice_id, m_addr, b, R::NAME));
    });
    let outcome = i.join();
    let _ = stop_middle.send(());
    let _ = stop_responder.send(());
    let middle = m.join();
    let responder = r.join();
    for (node, result) in [
        ("initiator", outcome),
        ("middle", middle),
        ("responder", responder),
    ] {
        if let Err(panic) = result {
            eprintln!("{node} failed ({} → {} → {})", I::NAME, M::NAME, R::NAME);
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn tokio_through_async_std_to_smol() {
    interop::<Tokio, AsyncStd, Smol>();
}

#[test]
fn tokio_through_smol_to_async_std() {
    interop::<Tokio, Smol, AsyncStd>();
}

#[test]
fn smol_through_tokio_to_async_std() {
    interop::<Smol, Tokio, AsyncStd>();
}

#[test]
fn smol_through_async_std_to_tokio() {
    interop::<Smol, AsyncStd, Tokio>();
}

#[test]
fn async_std_through_tokio_to_smol() {
    interop::<AsyncStd, Tokio, Smol>();
}

#[test]
fn async_std_through_smol_to_tokio() {
    interop::<AsyncStd, Smol, Tokio>();
}
