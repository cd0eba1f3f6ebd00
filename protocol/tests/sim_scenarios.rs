//! The guide's steps 03 to 10 as deterministic simulations of node cores: local hops,
//! many hops, a channel in one node, a channel over hops, TCP routing, a middle node
//! that only listens, a channel through it that it cannot read, and channels between
//! identities under each trust policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sim.rs"]
mod sim;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use onward_protocol::channel::ChannelError;
use onward_protocol::identity::Identifier;
use onward_protocol::node::{NodeError, NodeEvent};
use onward_protocol::trust::{TrustAnyOf, TrustIdentifier, TrustPolicy};
use onward_protocol::{route, tcp, Address, Route};

use sim::{everyone, identity, Behaviour, NodeId, Sim};

fn local(name: &str) -> Address {
    Address::local(name)
}

/// The encryptor address of the channel end on `node` with the given role.
fn established_end(sim: &Sim, node: NodeId, initiator: bool) -> (Address, Identifier) {
    sim.events(node)
        .find_map(|e| match e {
            NodeEvent::ChannelEstablished {
                address,
                peer,
                initiator: i,
                ..
            } if *i == initiator => Some((address.clone(), *peer)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no established channel end (initiator: {initiator})"))
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn step_03_hop_then_echoer_and_back() {
    let mut sim = Sim::new(3);
    let n = sim.add_node("n", None);
    sim.add_worker(n, "app", Behaviour::Sink);
    sim.add_worker(n, "h", Behaviour::Hop);
    sim.add_worker(n, "echoer", Behaviour::Echo);

    sim.send(n, "app", route!["h", "echoer"], b"hello".to_vec())
        .unwrap();
    sim.run_until_idle();

    let hop = &sim.mailbox(n, "h").received;
    assert_eq!(hop.len(), 2, "the hop sees the message and the reply");
    // Out: the hop's onward route starts with itself.
    assert_eq!(hop[0].onward_route, route!["h", "echoer"]);
    assert_eq!(hop[0].return_route, route!["app"]);
    // Back: the reply retraces the hop.
    assert_eq!(hop[1].onward_route, route!["h", "app"]);
    assert_eq!(hop[1].return_route, route!["echoer"]);

    let echo = &sim.mailbox(n, "echoer").received;
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].onward_route, route!["echoer"]);
    assert_eq!(echo[0].return_route, route!["h", "app"]);

    let app = &sim.mailbox(n, "app").received;
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].onward_route, route!["app"]);
    assert_eq!(app[0].return_route, route!["h", "echoer"]);
    assert_eq!(app[0].payload, b"hello");
    assert!(sim.node(n).worker_errors.is_empty());
}

#[test]
fn step_04_many_hops() {
    let mut sim = Sim::new(4);
    let n = sim.add_node("n", None);
    sim.add_worker(n, "app", Behaviour::Sink);
    for h in ["h1", "h2", "h3"] {
        sim.add_worker(n, h, Behaviour::Hop);
    }
    sim.add_worker(n, "echoer", Behaviour::Echo);

    sim.send(
        n,
        "app",
        route!["h1", "h2", "h3", "echoer"],
        b"four".to_vec(),
    )
    .unwrap();
    sim.run_until_idle();

    let hops = ["h1", "h2", "h3"];
    for (i, h) in hops.iter().enumerate() {
        let seen = &sim.mailbox(n, h).received;
        assert_eq!(seen.len(), 2, "{h} sees the message and the reply");
        // Out: onward starts with the hop itself; the return route names the hops
        // before it, nearest first, then the sender.
        let onward: Route = hops[i..]
            .iter()
            .copied()
            .chain(["echoer"])
            .map(local)
            .collect();
        let back: Route = hops[..i]
            .iter()
            .rev()
            .copied()
            .chain(["app"])
            .map(local)
            .collect();
        assert_eq!(seen[0].onward_route, onward, "{h} out");
        assert_eq!(seen[0].return_route, back, "{h} out");
        // Back: the reply retraces the hops in reverse.
        let onward_back: Route = hops[..=i]
            .iter()
            .rev()
            .copied()
            .chain(["app"])
            .map(local)
            .collect();
        let return_back: Route = hops[i + 1..]
            .iter()
            .copied()
            .chain(["echoer"])
            .map(local)
            .collect();
        assert_eq!(seen[1].onward_route, onward_back, "{h} back");
        assert_eq!(seen[1].return_route, return_back, "{h} back");
    }
    let echo = &sim.mailbox(n, "echoer").received;
    assert_eq!(echo[0].return_route, route!["h3", "h2", "h1", "app"]);
    let app = &sim.mailbox(n, "app").received;
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].payload, b"four");
    assert_eq!(app[0].return_route, route!["h1", "h2", "h3", "echoer"]);
}

#[test]
fn step_05_secure_channel_in_one_node() {
    let mut sim = Sim::new(5);
    let n = sim.add_node("n", None);
    sim.add_worker(n, "app", Behaviour::Sink);
    sim.add_worker(n, "echoer", Behaviour::Echo);
    let (alice, bob) = (identity(1), identity(2));
    sim.add_channel_listener(n, "secure", alice.clone(), everyone());

    let channel = sim
        .establish(n, route!["secure"], bob.clone(), everyone())
        .unwrap();
    let (responder_end, responder_peer) = established_end(&sim, n, false);
    let (initiator_end, initiator_peer) = established_end(&sim, n, true);
    assert_eq!(initiator_end, channel);
    assert_eq!(initiator_peer, alice.identifier());
    assert_eq!(responder_peer, bob.identifier());

    sim.send(
        n,
        "app",
        route![channel.clone(), "echoer"],
        b"secret".to_vec(),
    )
    .unwrap();
    sim.run_until_idle();

    let echo = &sim.mailbox(n, "echoer").received;
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].payload, b"secret");
    assert_eq!(echo[0].onward_route, route!["echoer"]);
    // The decrypted message returns through the responder's encryptor.
    assert_eq!(echo[0].return_route, route![responder_end.clone(), "app"]);
    let app = &sim.mailbox(n, "app").received;
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].payload, b"secret");
    assert_eq!(app[0].return_route, route![channel, "echoer"]);
}

#[test]
fn step_06_secure_channel_over_many_hops() {
    let mut sim = Sim::new(6);
    let n = sim.add_node("n", None);
    sim.add_worker(n, "app", Behaviour::Sink);
    sim.add_worker(n, "echoer", Behaviour::Echo);
    for h in ["h1", "h2", "h3"] {
        sim.add_worker(n, h, Behaviour::Hop);
    }
    sim.add_channel_listener(n, "secure", identity(1), everyone());

    let channel = sim
        .establish(
            n,
            route!["h1", "h2", "h3", "secure"],
            identity(2),
            everyone(),
        )
        .unwrap();
    let marker = b"step-06 plaintext marker".to_vec();
    sim.send(n, "app", route![channel, "echoer"], marker.clone())
        .unwrap();
    sim.run_until_idle();

    // The hello went out along the channel's route, starting with the first hop.
    let h1 = &sim.mailbox(n, "h1").received;
    assert_eq!(h1[0].onward_route, route!["h1", "h2", "h3", "secure"]);
    for h in ["h1", "h2", "h3"] {
        let seen = &sim.mailbox(n, h).received;
        // hello, response, finish, confirm, the message, the reply.
        assert_eq!(seen.len(), 6, "{h} carries every record both ways");
        for m in seen {
            assert!(!contains(&m.payload, &marker), "{h} saw plaintext");
        }
    }
    let echo = &sim.mailbox(n, "echoer").received;
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].payload, marker);
    let app = &sim.mailbox(n, "app").received;
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].payload, marker);
}

#[test]
fn step_07_routing_over_a_transport() {
    let mut sim = Sim::new(7);
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);

    // Within a second each: well inside the idle timeout of a plain connection.
    for i in 0..3u8 {
        sim.send(a, "app", route![tcp("b:4000"), "echoer"], vec![i; 8])
            .unwrap();
        sim.run_for(Duration::from_secs(1));
    }

    let echo = &sim.mailbox(b, "echoer").received;
    assert_eq!(echo.len(), 3);
    assert_eq!(echo[0].onward_route, route!["echoer"]);
    // The TCP hop is gone; a connection alias leads back to "app" on A.
    assert_eq!(echo[0].return_route.len(), 2);
    let alias = echo[0].return_route.next().unwrap().clone();
    assert!(alias.is_local() && alias != local("app"));
    assert_eq!(echo[0].return_route.last(), Some(&local("app")));

    let app = &sim.mailbox(a, "app").received;
    assert_eq!(app.len(), 3);
    for (i, m) in app.iter().enumerate() {
        assert_eq!(m.payload, vec![i as u8; 8]);
        assert_eq!(m.return_route.len(), 2);
        assert_eq!(m.return_route.last(), Some(&local("echoer")));
    }
    // One connection carried everything.
    assert_eq!(sim.pipes_between(a, b), 1);
    assert_eq!(sim.core(a).connection_count(), 1);
    assert_eq!(sim.core(b).connection_count(), 1);
    // Plain, it authenticated nothing: left idle, B closes it after its idle timeout.
    sim.run_until_idle();
    assert_eq!(sim.core(b).connection_count(), 0);
    assert_eq!(sim.core(a).connection_count(), 0);
    assert_eq!(sim.core(b).stats().connections_timed_out, 1);
}

fn three_nodes(seed: u64) -> (Sim, NodeId, NodeId, NodeId) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node("a", None);
    let m = sim.add_node("m", Some("m:3000"));
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    (sim, a, m, b)
}

#[test]
fn step_08_middle_node_with_only_a_listener() {
    let (mut sim, a, m, b) = three_nodes(8);
    sim.send(
        a,
        "app",
        route![tcp("m:3000"), tcp("b:4000"), "echoer"],
        b"via m".to_vec(),
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1));

    let echo = &sim.mailbox(b, "echoer").received;
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].onward_route, route!["echoer"]);
    // Two connection aliases (on B, then on M), then the sender.
    assert_eq!(echo[0].return_route.len(), 3);
    assert_eq!(echo[0].return_route.last(), Some(&local("app")));

    let app = &sim.mailbox(a, "app").received;
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].payload, b"via m");
    assert_eq!(app[0].return_route.len(), 3);
    assert_eq!(app[0].return_route.last(), Some(&local("echoer")));

    assert!(sim.node(m).mailboxes.is_empty(), "M has no workers");
    assert_eq!(sim.core(m).connection_count(), 2);
    assert_eq!(sim.pipes_between(a, m), 1);
    assert_eq!(sim.pipes_between(m, b), 1);
    assert_eq!(sim.pipes_between(a, b), 0);
    assert!(sim.events(m).next().is_none(), "nothing went wrong on M");
}

#[test]
fn step_09_channel_through_a_middle_node_that_sees_only_ciphertext() {
    let (mut sim, a, m, b) = three_nodes(9);
    let (alice, bob) = (identity(1), identity(2));
    sim.add_channel_listener(b, "secure", bob.clone(), everyone());
    sim.node_mut(m).capture = true;

    let channel = sim
        .establish(
            a,
            route![tcp("m:3000"), tcp("b:4000"), "secure"],
            alice.clone(),
            everyone(),
        )
        .unwrap();
    assert_eq!(sim.core(a).channel_peer(&channel), Some(bob.identifier()));
    assert_eq!(established_end(&sim, b, false).1, alice.identifier());

    let marker = *b"onward-step-09-plaintext-marker!";
    for _ in 0..3 {
        sim.send(a, "app", route![channel.clone(), "echoer"], marker.to_vec())
            .unwrap();
        sim.run_until_idle();
    }

    let echo = &sim.mailbox(b, "echoer").received;
    assert_eq!(echo.len(), 3);
    assert!(echo.iter().all(|m| m.payload == marker));
    assert_eq!(sim.mailbox(a, "app").received.len(), 3);

    let captured = &sim.node(m).captured;
    assert!(
        captured.len() >= 2 * (4 + 6),
        "M carried every record both ways"
    );
    let all: Vec<u8> = captured.concat();
    assert!(!contains(&all, &marker), "M saw the plaintext");
    assert!(!contains(&all, b"echoer"), "M saw the inner route");

    // The capture does see plaintext that is not in a channel.
    sim.send(
        a,
        "app",
        route![tcp("m:3000"), tcp("b:4000"), "echoer"],
        marker.to_vec(),
    )
    .unwrap();
    sim.run_until_idle();
    let all: Vec<u8> = sim.node(m).captured.concat();
    assert!(contains(&all, &marker));
}

/// Runs a handshake from A (alice) to B's listener (bob) directly over TCP with the
/// given policies. Returns the simulation and A's outcome.
fn handshake(
    initiator_trust: Arc<dyn TrustPolicy>,
    listener_trust: Arc<dyn TrustPolicy>,
) -> (Sim, NodeId, NodeId, Result<Address, NodeError>) {
    let mut sim = Sim::new(10);
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(2), listener_trust);
    let outcome = sim.establish(
        a,
        route![tcp("b:4000"), "secure"],
        identity(1),
        initiator_trust,
    );
    // Let the responder's side finish too (a refused initiator leaves it to time out).
    sim.run_until_idle();
    (sim, a, b, outcome)
}

fn assert_established(sim: &mut Sim, a: NodeId, b: NodeId, outcome: Result<Address, NodeError>) {
    let channel = outcome.unwrap();
    let (alice, bob) = (identity(1).identifier(), identity(2).identifier());
    let (a_end, a_peer) = established_end(sim, a, true);
    assert_eq!(a_end, channel);
    assert_eq!(a_peer, bob);
    assert_eq!(sim.core(a).channel_peer(&channel), Some(bob));
    let (b_end, b_peer) = established_end(sim, b, false);
    assert_eq!(b_peer, alice);
    assert_eq!(sim.core(b).channel_peer(&b_end), Some(alice));
    sim.send(a, "app", route![channel, "echoer"], b"trusted".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(sim.mailbox(b, "echoer").payloads(), [b"trusted".to_vec()]);
    assert_eq!(sim.mailbox(a, "app").payloads(), [b"trusted".to_vec()]);
}

/// The responder refused the initiator: both ends failed, nothing was delivered.
fn assert_refused_by_listener(
    sim: &mut Sim,
    a: NodeId,
    b: NodeId,
    outcome: Result<Address, NodeError>,
) {
    let alice = identity(1).identifier();
    match outcome {
        Err(NodeError::Channel {
            error: ChannelError::RefusedByPeer,
            ..
        }) => {}
        other => panic!("initiator: expected RefusedByPeer, got {other:?}"),
    }
    let b_failure = sim
        .events(b)
        .find_map(|e| match e {
            NodeEvent::ChannelFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .expect("the responder's end failed");
    assert!(
        matches!(b_failure, NodeError::Channel { error: ChannelError::Untrusted { peer }, .. } if peer == alice),
        "responder: {b_failure:?}"
    );
    assert_no_channel_and_nothing_delivered(sim, a, b);
}

fn assert_no_channel_and_nothing_delivered(sim: &mut Sim, a: NodeId, b: NodeId) {
    assert!(!sim
        .events(a)
        .chain(sim.events(b))
        .any(|e| matches!(e, NodeEvent::ChannelEstablished { .. })));
    assert_eq!(sim.core(a).channel_count(), 0);
    assert_eq!(sim.core(b).channel_count(), 0);
    let (failed_address, why) = sim
        .events(a)
        .find_map(|e| match e {
            NodeEvent::ChannelFailed {
                address,
                error: NodeError::Channel { error, .. },
                ..
            } => Some((address.clone(), error.clone())),
            _ => None,
        })
        .unwrap();
    let sent = sim.send(
        a,
        "app",
        route![failed_address.clone(), "echoer"],
        b"x".to_vec(),
    );
    // A sender to the failed channel is told why it failed.
    assert_eq!(
        sent,
        Err(NodeError::Channel {
            address: failed_address,
            error: why
        })
    );
    sim.run_until_idle();
    assert!(sim.mailbox(b, "echoer").received.is_empty());
    assert!(sim.mailbox(a, "app").received.is_empty());
}

#[test]
fn step_10_trust_everyone() {
    let (mut sim, a, b, outcome) = handshake(everyone(), everyone());
    assert_established(&mut sim, a, b, outcome);
}

#[test]
fn step_10_trust_identifier() {
    let (alice, bob) = (identity(1).identifier(), identity(2).identifier());
    let (mut sim, a, b, outcome) = handshake(
        Arc::new(TrustIdentifier::new(bob)),
        Arc::new(TrustIdentifier::new(alice)),
    );
    assert_established(&mut sim, a, b, outcome);
}

#[test]
fn step_10_listener_refuses_a_wrong_identifier() {
    let carol = identity(3).identifier();
    let (mut sim, a, b, outcome) = handshake(everyone(), Arc::new(TrustIdentifier::new(carol)));
    assert_refused_by_listener(&mut sim, a, b, outcome);
}

#[test]
fn step_10_initiator_refuses_a_wrong_identifier() {
    let (bob, carol) = (identity(2).identifier(), identity(3).identifier());
    let (mut sim, a, b, outcome) = handshake(Arc::new(TrustIdentifier::new(carol)), everyone());
    match outcome {
        Err(NodeError::Channel {
            error: ChannelError::Untrusted { peer },
            ..
        }) => assert_eq!(peer, bob),
        other => panic!("initiator: expected Untrusted, got {other:?}"),
    }
    // The initiator sends nothing more; the responder's handshake times out.
    let b_failure = sim
        .node(b)
        .events
        .iter()
        .find_map(|(at, e)| match e {
            NodeEvent::ChannelFailed { error, .. } => Some((*at, error.clone())),
            _ => None,
        })
        .expect("the responder's end failed");
    assert!(matches!(
        b_failure.1,
        NodeError::Channel {
            error: ChannelError::HandshakeTimeout { .. },
            ..
        }
    ));
    assert!(b_failure.0 >= Duration::from_secs(10));
    assert_no_channel_and_nothing_delivered(&mut sim, a, b);
}

#[test]
fn step_10_trust_any_of() {
    let (alice, bob, carol) = (
        identity(1).identifier(),
        identity(2).identifier(),
        identity(3).identifier(),
    );
    let (mut sim, a, b, outcome) = handshake(
        Arc::new(TrustAnyOf::new([carol, bob])),
        Arc::new(TrustAnyOf::new([alice, carol])),
    );
    assert_established(&mut sim, a, b, outcome);

    let (mut sim, a, b, outcome) = handshake(everyone(), Arc::new(TrustAnyOf::new([carol])));
    assert_refused_by_listener(&mut sim, a, b, outcome);
}

#[test]
fn step_10_closure_policy() {
    let alice = identity(1).identifier();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let policy = move |peer: &Identifier| {
        counted.fetch_add(1, Ordering::SeqCst);
        *peer == alice
    };
    let (mut sim, a, b, outcome) = handshake(everyone(), Arc::new(policy));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "asked once per handshake");
    assert_established(&mut sim, a, b, outcome);

    let (mut sim, a, b, outcome) = handshake(everyone(), Arc::new(|_: &Identifier| false));
    assert_refused_by_listener(&mut sim, a, b, outcome);
}

#[test]
fn closing_a_channel_tells_the_peer_and_removes_both_ends() {
    let (mut sim, a, _m, b) = three_nodes(11);
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    let channel = sim
        .establish(
            a,
            route![tcp("m:3000"), tcp("b:4000"), "secure"],
            identity(1),
            everyone(),
        )
        .unwrap();
    assert_eq!(sim.core(b).channel_count(), 1);

    sim.close_channel(a, &channel);
    sim.run_until_idle();
    assert!(sim.events(a).any(|e| matches!(
        e,
        NodeEvent::ChannelClosed { address, by_peer: false, .. } if *address == channel
    )));
    assert!(sim
        .events(b)
        .any(|e| matches!(e, NodeEvent::ChannelClosed { by_peer: true, .. })));
    assert_eq!(sim.core(a).channel_count(), 0);
    assert_eq!(sim.core(b).channel_count(), 0);
    assert_eq!(
        sim.send(
            a,
            "app",
            route![channel.clone(), "echoer"],
            b"late".to_vec()
        ),
        Err(NodeError::Channel {
            address: channel,
            error: ChannelError::Closed
        })
    );
}

// ---- channels under concurrency, reordering and long use -------------------------------

/// Two initiators on two nodes whose handshakes are in flight at one listener at the
/// same time: both responder ends exist before either is established, and each channel
/// ends up with the right peer at each end, carrying its own messages only.
#[test]
fn two_handshakes_in_flight_at_one_listener_each_reach_the_right_peer() {
    let mut sim = Sim::new(21);
    let a1 = sim.add_node("a1", None);
    let a2 = sim.add_node("a2", None);
    let b = sim.add_node("b", Some("b:4000"));
    for a in [a1, a2] {
        sim.add_worker(a, "app", Behaviour::Sink);
    }
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(3), everyone());

    let (one, _) = sim
        .create_channel(a1, route![tcp("b:4000"), "secure"], identity(1), everyone())
        .unwrap();
    let (two, _) = sim
        .create_channel(a2, route![tcp("b:4000"), "secure"], identity(2), everyone())
        .unwrap();
    let overlapped = sim.run_until(Duration::from_secs(5), |s| s.core(b).channel_count() == 2);
    assert!(overlapped, "both hellos reached the listener");
    assert!(
        !sim.events(b)
            .any(|e| matches!(e, NodeEvent::ChannelEstablished { .. })),
        "neither handshake had finished when the second began"
    );
    sim.run_until_idle();

    let mut ends = Vec::new();
    for (a, id, seed) in [(a1, one, 1), (a2, two, 2)] {
        let channel = match sim.channel_outcome(a, id) {
            Some(NodeEvent::ChannelEstablished { address, peer, .. }) => {
                assert_eq!(*peer, identity(3).identifier());
                address.clone()
            }
            other => panic!("a{seed}: {other:?}"),
        };
        ends.push((a, channel, seed));
    }
    let responders: Vec<Identifier> = sim
        .events(b)
        .filter_map(|e| match e {
            NodeEvent::ChannelEstablished {
                peer,
                initiator: false,
                ..
            } => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(responders.len(), 2);
    assert!(responders.contains(&identity(1).identifier()));
    assert!(responders.contains(&identity(2).identifier()));

    for (a, channel, seed) in &ends {
        let text = format!("from a{seed}").into_bytes();
        sim.send(*a, "app", route![channel.clone(), "echoer"], text)
            .unwrap();
    }
    sim.run_until_idle();
    // B saw each message come out of the channel end whose peer sent it.
    for message in &sim.mailbox(b, "echoer").received {
        let end = message.return_route.next().unwrap();
        let peer = sim.core(b).channel_peer(end).unwrap();
        let seed = if peer == identity(1).identifier() {
            1
        } else {
            2
        };
        assert_eq!(message.payload, format!("from a{seed}").into_bytes());
    }
    assert_eq!(sim.mailbox(b, "echoer").received.len(), 2);
    for (a, _, seed) in ends {
        assert_eq!(
            sim.mailbox(a, "app").payloads(),
            [format!("from a{seed}").into_bytes()],
            "each reply came back through its own channel"
        );
    }
}

/// A transport record from the responder that overtakes its confirm (reordered on
/// the way, as a multi-hop route may) still establishes the initiator: any record
/// that authenticates says the responder accepted it. The message is delivered, and
/// the confirm arriving late is taken quietly.
#[test]
fn a_message_that_overtakes_the_confirm_is_delivered_and_establishes_the_channel() {
    use std::cell::RefCell;
    use std::rc::Rc;

    use onward_protocol::framing::FRAME_HEADER_LEN;
    use onward_protocol::TransportMessage;

    let mut sim = Sim::new(22);
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "srv", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(2), everyone());

    // The attacker on B → A holds back the first transport record (the confirm; the
    // handshake response is another kind), sends an empty frame (a keepalive) in its
    // place, and lets it through right after the next frame.
    const KIND_TRANSPORT: u8 = 0x04;
    let held: Rc<RefCell<(Option<Vec<u8>>, bool)>> = Rc::default();
    let state = held.clone();
    sim.set_tamper(
        b,
        a,
        Some(Box::new(move |bytes: &mut Vec<u8>| {
            let mut state = state.borrow_mut();
            if let Some(confirm) = state.0.take() {
                bytes.extend_from_slice(&confirm);
                state.1 = true;
                return;
            }
            if state.1 {
                return;
            }
            let message = TransportMessage::decode(&bytes[FRAME_HEADER_LEN..]).unwrap();
            if message.payload.first() == Some(&KIND_TRANSPORT) {
                state.0 = Some(std::mem::replace(bytes, vec![0; FRAME_HEADER_LEN]));
            }
        })),
    );

    let (id, channel) = sim
        .create_channel(a, route![tcp("b:4000"), "secure"], identity(1), everyone())
        .unwrap();
    let responded = sim.run_until(Duration::from_secs(5), |s| {
        s.events(b)
            .any(|e| matches!(e, NodeEvent::ChannelEstablished { .. }))
    });
    assert!(responded, "the responder accepted the initiator");
    assert!(held.borrow().0.is_some(), "the confirm is held back");
    assert!(sim.channel_outcome(a, id).is_none(), "A still waits for it");

    // B speaks first, through its end, before A has its confirm.
    let (b_end, _) = established_end(&sim, b, false);
    sim.send(b, "srv", route![b_end, "app"], b"first word".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert!(held.borrow().1, "the message went ahead of the confirm");

    match sim.channel_outcome(a, id) {
        Some(NodeEvent::ChannelEstablished { address, peer, .. }) => {
            assert_eq!(*address, channel);
            assert_eq!(*peer, identity(2).identifier());
        }
        other => panic!("A: expected established, got {other:?}"),
    }
    let received = &sim.mailbox(a, "app").received;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].payload, b"first word");
    assert_eq!(received[0].return_route.next(), Some(&channel));
    assert_eq!(
        sim.core(a).stats().records_rejected,
        0,
        "the late confirm is no forgery"
    );

    // And the channel carries on both ways.
    sim.send(a, "app", route![channel, "echoer"], b"and back".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.mailbox(a, "app").payloads(),
        [b"first word".to_vec(), b"and back".to_vec()]
    );
}

/// More than 2^16 records each way through a channel between two node cores: the keys
/// change generation on both sides, and every message arrives, in order.
#[test]
fn a_channel_carries_messages_in_order_across_its_rekey_boundary() {
    use onward_protocol::channel::REKEY_SHIFT;

    let count: u32 = (1 << REKEY_SHIFT) + 100;
    let mut sim = Sim::new(23);
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    let channel = sim
        .establish(a, route![tcp("b:4000"), "secure"], identity(1), everyone())
        .unwrap();

    for batch in (0..count).collect::<Vec<_>>().chunks(1024) {
        for i in batch {
            sim.send(a, "app", route![channel.clone(), "echoer"], i.to_be_bytes())
                .unwrap();
        }
        sim.run_until_idle();
    }
    let expected: Vec<Vec<u8>> = (0..count).map(|i| i.to_be_bytes().to_vec()).collect();
    // A's records numbered 0.., B's 1.. after its confirm: both cross 2^16.
    assert!(
        sim.mailbox(b, "echoer").payloads() == expected,
        "B, in order"
    );
    assert!(sim.mailbox(a, "app").payloads() == expected, "A, in order");
    for n in [a, b] {
        assert_eq!(sim.core(n).stats().records_rejected, 0);
        assert_eq!(sim.core(n).stats().delivery_failures, 0);
    }
}
