//! The service section of the suite: what a service built on onward needs from the
//! API, on every runtime (requests and their replies, attributable failures, a receive
//! loop).

use std::time::Duration;

use futures::StreamExt;
use onward_protocol::api::Error;
use onward_protocol::channel::ChannelError;
use onward_protocol::node::{ChannelState, NodeError};
use onward_protocol::report::ReportCode;
use onward_protocol::route;

use futures::channel::oneshot;

use crate::harness::{options, within, Harness};
use crate::suite::{ask, identity, responder_and_initiator, STEP};
use crate::workers::{GatedEchoer, Late};

/// Ten tasks send requests concurrently through one channel, each through the same
/// context's senders: every reply answers its own request. A request to an address
/// that does not exist far away fails by itself, with the far node's report, while
/// the others go on.
pub async fn requests_from_concurrent_tasks_get_their_own_replies<H: Harness>() {
    let (b, _, a, channel, ctx) = responder_and_initiator::<H>(&identity()).await;
    let tasks = (0..10).map(|task| {
        let sender = ctx.sender();
        let channel = channel.clone();
        async move {
            for i in 0..20 {
                let body = format!("task {task} request {i}");
                let reply = sender
                    .request::<String>(
                        route![channel.address(), "echoer"],
                        body.clone(),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("a reply");
                assert_eq!(*reply.body(), body);
            }
        }
    });
    let failing = async {
        let error = ctx
            .request::<String>(
                route![channel.address(), "nobody"],
                "hello?".to_owned(),
                Duration::from_secs(10),
            )
            .await
            .expect_err("nothing at that address");
        assert!(
            matches!(&error, Error::Remote { report, .. } if report.code == ReportCode::UnknownAddress),
            "{error}"
        );
    };
    futures::join!(futures::future::join_all(tasks), failing);
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A reply that comes after its request gave up is never taken as the reply to the
/// next request.
pub async fn a_late_reply_is_not_the_next_requests_reply<H: Harness>() {
    let (b, _, a, channel, ctx) = responder_and_initiator::<H>(&identity()).await;
    b.start_worker("late", Late::default())
        .await
        .expect("worker");
    let to_late = || route![channel.address(), "late"];
    let first = ctx
        .request::<String>(to_late(), "first".to_owned(), Duration::from_millis(200))
        .await
        .expect_err("held until the next request");
    assert!(matches!(first, Error::Timeout(_)), "{first}");
    // The worker now answers "first" (to an address that is gone), then "second".
    let second = ctx
        .request::<String>(to_late(), "second".to_owned(), Duration::from_secs(10))
        .await
        .expect("the second reply");
    assert_eq!(second.body(), "second");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A context's messages as a stream, with no timeout: a service loop. The stream
/// ends when the node stops.
pub async fn a_context_is_a_stream_of_messages<H: Harness>() {
    let node = H::start(options()).await.expect("node");
    let mut server = node.context("server").await.expect("context");
    // A context needs no name of the user's.
    let client = node.new_context().await.expect("context");
    assert_ne!(
        client.address(),
        node.new_context().await.expect("another").address()
    );
    for i in 0..5 {
        client
            .send(route!["server"], format!("message {i}"))
            .await
            .expect("send");
    }
    let received: Vec<String> = server
        .messages::<String>()
        .take(5)
        .map(|m| m.expect("a message").into_body())
        .collect()
        .await;
    assert_eq!(
        received,
        (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
    node.stop().await.expect("stop");
    assert!(
        server.messages::<String>().next().await.is_none(),
        "the stream ends when the node stops"
    );
}

/// Stopping a server with requests waiting at a worker loses no reply: the worker
/// handles what its mailbox holds, its replies still go out through the channel, and
/// only then does the node close the channel.
pub async fn stopping_a_server_loses_no_reply<H: Harness>() {
    let (b, _, a, channel, mut ctx) = responder_and_initiator::<H>(&identity()).await;
    let (entered_tx, entered) = oneshot::channel();
    let (gate_tx, gate) = oneshot::channel();
    let (shut_tx, shut) = oneshot::channel();
    b.start_worker(
        "slow",
        GatedEchoer {
            entered: Some(entered_tx),
            gate: Some(gate),
            shut: Some(shut_tx),
            ..GatedEchoer::default()
        },
    )
    .await
    .expect("worker");
    const N: usize = 5;
    for i in 0..N {
        ctx.send(route![channel.address(), "slow"], format!("request {i}"))
            .await
            .expect("send");
    }
    within::<H, _>(STEP, "the first request in hand", entered)
        .await
        .expect("entered");
    // The requests went in order through one channel: once the echo of a later
    // message is back, B has put every request in the worker's mailbox.
    let marker = ask(&mut ctx, route![channel.address(), "echoer"], "marker").await;
    assert_eq!(marker.body(), "marker");

    let stop = b.stop();
    let replies = async {
        let _ = gate_tx.send(());
        let mut replies = Vec::new();
        for _ in 0..N {
            let reply = ctx.receive::<String>().await.expect("a reply");
            replies.push(reply.into_body());
        }
        replies
    };
    let (stopped, replies) = futures::join!(stop, replies);
    stopped.expect("stop");
    assert_eq!(
        replies,
        (0..N).map(|i| format!("request {i}")).collect::<Vec<_>>()
    );
    assert!(shut.await.is_ok(), "the worker's shutdown ran");
    a.stop().await.expect("stop");
}

/// `stop_worker` returns once the worker has handled its mailbox and run its
/// `shutdown`, not before.
pub async fn stop_worker_returns_after_shutdown<H: Harness>() {
    let node = H::start(options()).await.expect("node");
    let (shut_tx, mut shut) = oneshot::channel();
    let (open, shutdown_gate) = oneshot::channel();
    node.start_worker(
        "worker",
        GatedEchoer {
            shutdown_gate: Some(shutdown_gate),
            shut: Some(shut_tx),
            ..GatedEchoer::default()
        },
    )
    .await
    .expect("worker");
    let mut ctx = node.context("app").await.expect("context");
    assert_eq!(
        ask(&mut ctx, route!["worker"], "hello").await.body(),
        "hello"
    );
    // The shutdown waits for the gate, which opens only once `stop_worker` is under
    // way: returning early would find it not run.
    let (stopped, ()) = futures::join!(node.stop_worker("worker"), async {
        let _ = open.send(());
    });
    stopped.expect("stop the worker");
    assert_eq!(
        shut.try_recv(),
        Ok(Some(())),
        "shutdown ran before it returned"
    );
    node.stop().await.expect("stop");
}

/// A channel says what it is doing, and when it closes: its handle's state, a future
/// that resolves with why, the node's list of channels and counters; a request
/// waiting for a reply through it fails when it closes, saying so, instead of
/// waiting out its timeout.
pub async fn a_channel_is_observable_and_its_close_fails_waiting_requests<H: Harness>() {
    let alice = identity();
    let (b, _, a, channel, ctx) = responder_and_initiator::<H>(&alice).await;
    let (arrived, mut arrivals) = futures::channel::mpsc::unbounded();
    b.start_worker("sink", crate::workers::Reporter(arrived))
        .await
        .expect("worker");
    assert_eq!(
        channel.state(),
        Some(ChannelState::Established(alice.identifier()))
    );
    assert_eq!(
        a.channels(),
        vec![(
            channel.address().clone(),
            ChannelState::Established(alice.identifier())
        )]
    );
    assert_eq!(a.stats().channels_established, 1);

    let waiting = ctx.request::<String>(
        route![channel.address(), "sink"],
        "never answered".to_owned(),
        Duration::from_secs(20),
    );
    let started = std::time::Instant::now();
    let (reply, closed, stopped) = futures::join!(waiting, channel.closed(), async {
        // The request is at the worker, which never answers, when the server stops.
        arrivals.next().await.expect("the request arrives");
        b.stop().await
    });
    stopped.expect("stop");
    let error = reply.expect_err("no reply comes");
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                error: ChannelError::Closed,
                ..
            })
        ),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not its timeout"
    );
    assert!(
        matches!(&closed, NodeError::Channel { error: ChannelError::Closed, address } if address == channel.address()),
        "{closed}"
    );
    assert_eq!(
        channel.state(),
        Some(ChannelState::Ended(ChannelError::Closed))
    );
    assert!(a.channels().is_empty());
    assert_eq!(a.stats().channels_closed, 1);
    // Once ended, `closed` answers at once.
    assert!(matches!(channel.closed().await, NodeError::Channel { .. }));
    a.stop().await.expect("stop");
}

/// The node's runtime-neutral helpers: spawn, sleep and timeout, the same on every
/// runtime.
pub async fn the_node_spawns_sleeps_and_times_out<H: Harness>() {
    let node = H::start(options()).await.expect("node");
    let (tx, rx) = oneshot::channel();
    let sleeper = node.clone();
    node.spawn(async move {
        sleeper.sleep(Duration::from_millis(10)).await;
        let _ = tx.send(7);
    });
    let value = node
        .timeout(STEP, rx)
        .await
        .expect("in time")
        .expect("the task ran");
    assert_eq!(value, 7);
    let late = node
        .timeout(Duration::from_millis(20), futures::future::pending::<()>())
        .await
        .expect_err("never ready");
    assert!(matches!(late, Error::Timeout(d) if d == Duration::from_millis(20)));
    node.stop().await.expect("stop");
}

/// A send that fails after it returned names itself: two tracked sends to two
/// closed ports come back as two errors, each with its own send's id and peer.
pub async fn a_tracked_send_that_fails_later_names_itself<H: Harness>() {
    let node = H::start(options()).await.expect("node");
    let mut ctx = node.new_context().await.expect("context");
    let ports = [crate::suite::closed_port(), crate::suite::closed_port()];
    let mut sent = std::collections::BTreeMap::new();
    for port in &ports {
        let id = ctx
            .send_tracked(
                route![onward_protocol::tcp(port.as_str()), "x"],
                "hi".to_owned(),
            )
            .await
            .expect("taken: the connection is yet to open");
        sent.insert(id, port.clone());
    }
    for _ in 0..2 {
        match ctx.receive::<String>().await {
            Err(Error::Undelivered {
                send,
                error: NodeError::ConnectFailed { peer, .. },
            }) => assert_eq!(sent.remove(&send), Some(peer), "{send}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(sent.is_empty());
    node.stop().await.expect("stop");
}

/// The verified peer travels with the message: a worker that handles a message after
/// its channel has closed still knows who sent it (where a lookup of the channel end
/// finds nothing any more).
pub async fn the_verified_peer_travels_with_the_message<H: Harness>() {
    let (b, _, a, channel, ctx) = responder_and_initiator::<H>(&identity()).await;
    let (entered_tx, entered) = oneshot::channel();
    let (gate_tx, gate) = oneshot::channel();
    let (seen_tx, seen) = oneshot::channel();
    b.start_worker(
        "checker",
        crate::workers::LateLookup {
            entered: Some(entered_tx),
            gate: Some(gate),
            seen: Some(seen_tx),
        },
    )
    .await
    .expect("worker");
    ctx.send(route![channel.address(), "checker"], "who am I?".to_owned())
        .await
        .expect("send");
    within::<H, _>(STEP, "the message in hand", entered)
        .await
        .expect("entered");
    a.close_secure_channel(&channel).await;
    // B's end is gone once the close record has arrived: wait, bounded, for that.
    let b_ends = || b.channels();
    within::<H, _>(STEP, "B's end closing", async {
        while !b_ends().is_empty() {
            H::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let _ = gate_tx.send(());
    let (carried, looked_up) = within::<H, _>(STEP, "the check", seen).await.expect("seen");
    let me = a.channels();
    assert!(me.is_empty());
    assert!(carried.is_some(), "the peer came with the message");
    assert_eq!(looked_up, None, "the late lookup finds no channel");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}
