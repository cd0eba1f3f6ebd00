//! The liveness section of the suite: restarted peers, far failures and dead next
//! hops become named errors within their documented bounds, on every runtime, over
//! real loopback TCP.

use std::time::{Duration, Instant};

use onward_protocol::api::{Context, Error, SecureChannel};
use onward_protocol::channel::ChannelError;
use onward_protocol::identity::Identity;
use onward_protocol::node::{Access, ChannelRules, NodeError, Origin};
use onward_protocol::report::ReportCode;
use onward_protocol::trust::{TrustEveryone, TrustIdentifier};
use onward_protocol::{route, tcp, Address};

use crate::harness::{options, within, Harness};
use crate::suite::{
    ask, closed_port, identity, listen, responder, responder_and_initiator, start, STEP,
};

/// Starts a node listening on `address` (a port just freed), retrying while the port
/// is not yet free again.
pub(crate) async fn listen_again<H: Harness>(node: &H::Node, address: &str) {
    within::<H, _>(STEP, "listening again", async {
        while node.listen(address).await.is_err() {
            H::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Starts the responder again at `address` as `alice`: a fresh node with the echoer
/// and the channel listener "secure", as [`responder`] makes them.
async fn restart_responder<H: Harness>(alice: &Identity, address: &str) -> H::Node {
    let b = start::<H>(options()).await;
    listen_again::<H>(&b, address).await;
    b.start_worker("echoer", crate::workers::Echoer)
        .await
        .expect("echoer");
    b.create_secure_channel_listener("secure", alice, TrustEveryone)
        .await
        .expect("listener");
    b
}

/// Asks the echoer through `channel` and checks the answer.
async fn echo_through(ctx: &mut Context, channel: &SecureChannel, text: &str) {
    let reply = ask(ctx, route![channel.address(), "echoer"], text).await;
    assert_eq!(reply.body(), text);
}

/// The responder's node restarts without a word to the initiator (the middle node
/// that carried its close records was down): the initiator's next send through the
/// old channel reaches the new node, which reports the channel unknown; the
/// initiator probes, hears nothing, and `receive` says so within 2 s. A new channel
/// then works.
pub async fn a_restarted_responder_is_found_within_two_seconds<H: Harness>() {
    let alice = identity();
    let bob = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let a = start::<H>(options()).await;
    let to_b = || route![tcp(m_addr.as_str()), tcp(b_addr.as_str()), "secure"];
    let channel = a
        .create_secure_channel(to_b(), &bob, TrustIdentifier::new(alice.identifier()))
        .await
        .expect("channel");
    let mut ctx = a.context("app").await.expect("context");
    echo_through(&mut ctx, &channel, "before").await;

    // The middle node goes first, so the responder's close records go nowhere; then
    // both come back on the same ports, the responder with the same identity.
    m.stop().await.expect("stop the middle node");
    b.stop().await.expect("stop the responder");
    let m = start::<H>(options()).await;
    listen_again::<H>(&m, &m_addr).await;
    let b = restart_responder::<H>(&alice, &b_addr).await;

    // The first send may go into the connection the middle node's stop closed: its
    // loss is reported, or (if TCP took it before the close) it is lost without a
    // word. The next goes over a new connection, and the error follows within 2 s.
    let mut sent_at = Instant::now();
    let error = within::<H, _>(STEP, "the old channel failing", async {
        loop {
            sent_at = Instant::now();
            if let Err(error) = ctx
                .send(route![channel.address(), "echoer"], "after".to_owned())
                .await
            {
                break error;
            }
            match ctx.receive_timeout::<String>(Duration::from_secs(3)).await {
                Err(Error::Node(NodeError::ConnectionClosed { .. }) | Error::Timeout(_)) => {}
                Err(error) => break error,
                Ok(reply) => panic!("a reply through a channel the responder forgot: {reply:?}"),
            }
        }
    })
    .await;
    let took = sent_at.elapsed();
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                error: ChannelError::PeerLost { report, .. },
                ..
            }) if report.code == ReportCode::UnknownAddress
        ),
        "unexpected error: {error}"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");

    let channel = a
        .create_secure_channel(to_b(), &bob, TrustIdentifier::new(alice.identifier()))
        .await
        .expect("a new channel");
    echo_through(&mut ctx, &channel, "again").await;
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

/// A message to an address that does not exist on the far node comes back as
/// `Error::Remote`: authenticated when it went through a secure channel, and over
/// plain TCP from the connection.
pub async fn a_far_unknown_address_is_a_remote_error<H: Harness>() {
    let alice = identity();
    let (b, b_addr, a, channel, mut ctx) = responder_and_initiator::<H>(&alice).await;
    // A report is a message like any other to the access rule of where it goes: a
    // context that sends plain messages takes plain replies, reports included.
    let mut plain = a
        .context_with("plain", Access::anyone())
        .await
        .expect("context");
    for (ctx, route) in [
        (&mut ctx, route![channel.address(), "nobody"]),
        (&mut plain, route![tcp(b_addr.as_str()), "nobody"]),
    ] {
        ctx.send(route, "hello?".to_owned()).await.expect("sent");
        let error = ctx.receive::<String>().await.expect_err("a report");
        match &error {
            Error::Remote { report, origin } => {
                assert_eq!(report.code, ReportCode::UnknownAddress);
                assert_eq!(report.address, Address::local("nobody"));
                assert!(
                    matches!(origin, Origin::Channel { peer, .. } if **peer == alice.identifier())
                        || matches!(origin, Origin::Transport { .. }),
                    "{origin}"
                );
            }
            other => panic!("unexpected: {other}"),
        }
        assert!(
            error.to_string().contains("unknown address 0#nobody"),
            "{error}"
        );
    }
    // The channel is unharmed.
    echo_through(&mut ctx, &channel, "still").await;
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A middle node whose next hop refuses connections says so: the initiator's
/// handshake fails at once with the middle node's report, not at its timeout.
pub async fn a_dead_next_hop_fails_a_handshake_at_once<H: Harness>() {
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let mut options = options();
    options.channel.handshake_timeout = Duration::from_secs(20);
    let a = start::<H>(options).await;
    let closed = closed_port();
    let started = Instant::now();
    let error = a
        .create_secure_channel(
            route![tcp(m_addr.as_str()), tcp(closed.as_str()), "secure"],
            &identity(),
            TrustEveryone,
        )
        .await
        .expect_err("nothing behind the middle node");
    let took = started.elapsed();
    assert!(
        matches!(
            &error,
            Error::Node(NodeError::Channel {
                error: ChannelError::RouteFailed { report },
                ..
            }) if report.code == ReportCode::Unreachable && report.address == tcp(closed.as_str())
        ),
        "unexpected error: {error}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    a.stop().await.expect("stop");
    m.stop().await.expect("stop");
}

/// A persistent channel outlives a restart of its responder's node: sends fail by
/// name while it is down, and within a few seconds the same channel address carries
/// messages again.
pub async fn a_persistent_channel_survives_a_responder_restart<H: Harness>() {
    let alice = identity();
    let (b, b_addr) = responder::<H>(options(), &alice, TrustEveryone).await;
    let a = start::<H>(options()).await;
    let channel = a
        .create_persistent_secure_channel(
            route![tcp(b_addr.as_str()), "secure"],
            &identity(),
            TrustIdentifier::new(alice.identifier()),
            ChannelRules::new(),
        )
        .await
        .expect("channel");
    let mut ctx = a.context("app").await.expect("context");
    echo_through(&mut ctx, &channel, "before").await;

    b.stop().await.expect("stop the responder");
    let b = restart_responder::<H>(&alice, &b_addr).await;

    let started = Instant::now();
    let mut errors = Vec::new();
    let reply = within::<H, _>(STEP, "the channel back", async {
        loop {
            let sent = ctx
                .send(route![channel.address(), "echoer"], "after".to_owned())
                .await;
            let received = match sent {
                Ok(()) => ctx.receive_timeout::<String>(Duration::from_secs(2)).await,
                Err(error) => Err(error),
            };
            match received {
                Ok(reply) => break reply,
                Err(error) => {
                    errors.push(error.to_string());
                    H::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
    .await;
    assert_eq!(reply.body(), "after");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: {errors:?}",
        started.elapsed()
    );
    // Every failure meanwhile named the channel, but for a message written into the
    // old connection as it closed, which TCP lost without a word (a timeout).
    assert!(
        errors
            .iter()
            .all(|e| { e.contains(&channel.address().to_string()) || e.starts_with("timed out") }),
        "{errors:?}"
    );
    a.close_secure_channel(&channel).await;
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// Dropping the last handle on a channel closes it, here and at the peer; dropping a
/// clone does not.
pub async fn dropping_the_last_handle_closes_a_channel<H: Harness>() {
    let (b, _, a, channel, mut ctx) = responder_and_initiator::<H>(&identity()).await;
    let copy = channel.clone();
    drop(channel);
    echo_through(&mut ctx, &copy, "a clone is left").await;
    let address = copy.address().clone();
    drop(copy);
    let error = ctx
        .send(route![address.clone(), "echoer"], "late".to_owned())
        .await
        .expect_err("closed");
    assert!(
        matches!(&error, Error::Node(NodeError::Channel { address: a, error: ChannelError::Closed }) if *a == address),
        "unexpected error: {error}"
    );
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}
