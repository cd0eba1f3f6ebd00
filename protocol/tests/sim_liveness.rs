//! Liveness and failure reporting over virtual time: restarted responders, crashed
//! initiators, far failures and lost handshake records each end in a named error
//! within a documented bound, and the ends of dead peers are reclaimed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sim.rs"]
mod sim;

use std::time::Duration;

use onward_protocol::channel::{ChannelError, HandshakeStage};
use onward_protocol::node::{NodeConfig, NodeError, NodeEvent, Origin};
use onward_protocol::report::{is_report, Report, ReportCode};
use onward_protocol::{route, tcp, Address, TransportMessage};

use sim::{everyone, identity, Behaviour, LinkFaults, NodeId, Sim};

/// A (no listener) and B (listening at b:4000, channel listener "secure", an echoer),
/// with "app" on A holding what it receives.
fn pair(seed: u64, keepalives: bool) -> (Sim, NodeId, NodeId) {
    let mut sim = Sim::new(seed);
    sim.keepalives = keepalives;
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    (sim, a, b)
}

/// A's route to B's channel listener.
fn to_b() -> onward_protocol::Route {
    route![tcp("b:4000"), "secure"]
}

/// A channel from A to B, established.
fn open(sim: &mut Sim, a: NodeId) -> Address {
    sim.establish(a, to_b(), identity(1), everyone()).unwrap()
}

/// Sends `body` from A's app through `channel` to B's echoer, and checks the echo.
fn echo(sim: &mut Sim, a: NodeId, channel: &Address, body: &[u8]) {
    sim.send(a, "app", route![channel.clone(), "echoer"], body.to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.mailbox(a, "app").payloads().last(),
        Some(&body.to_vec())
    );
}

/// The channel failure A's core reported for `channel`, with its time.
fn failure(sim: &Sim, node: NodeId, channel: &Address) -> Option<(Duration, ChannelError)> {
    sim.node(node).events.iter().find_map(|(t, e)| match e {
        NodeEvent::ChannelFailed {
            address,
            error: NodeError::Channel { error, .. },
            ..
        } if address == channel => Some((*t, error.clone())),
        _ => None,
    })
}

/// The errors reported to local `sender` on `node`, with their times.
fn told(sim: &Sim, node: NodeId, sender: &str) -> Vec<(Duration, NodeError)> {
    let sender = Address::local(sender);
    sim.node(node)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            NodeEvent::DeliveryFailed {
                sender: Some(s),
                error,
                ..
            } if *s == sender => Some((*t, error.clone())),
            _ => None,
        })
        .collect()
}

/// After a responder's node restarts, the initiator's next send through the old
/// channel brings a report from the new node; the initiator probes, hears nothing,
/// and within 2 s fails the channel with `PeerLost`, telling the sender. A sender
/// after that is told at once; a new channel works.
#[test]
fn a_restarted_responder_is_found_within_two_seconds() {
    let (mut sim, a, b) = pair(1701, false);
    let channel = open(&mut sim, a);
    echo(&mut sim, a, &channel, b"one");

    sim.restart(b);
    sim.run_for(Duration::from_secs(5));
    let sent_at = sim.now();
    // The send itself succeeds: the record goes out over a new connection.
    sim.send(a, "app", route![channel.clone(), "echoer"], b"two".to_vec())
        .unwrap();
    assert!(
        sim.run_until(Duration::from_secs(2), |sim| failure(sim, a, &channel)
            .is_some())
    );
    let (at, error) = failure(&sim, a, &channel).unwrap();
    let took = at - sent_at;
    println!("responder restart: send to failure {took:?}");
    assert!(took <= Duration::from_secs(2), "{took:?}");
    match &error {
        ChannelError::PeerLost { report, .. } => {
            assert_eq!(report.code, ReportCode::UnknownAddress);
        }
        other => panic!("{other:?}"),
    }
    // The sender was told, with the same error.
    let told = told(&sim, a, "app");
    assert!(
        told.iter().any(|(_, e)| matches!(
            e,
            NodeError::Channel {
                error: ChannelError::PeerLost { .. },
                ..
            }
        )),
        "{told:?}"
    );
    // A later send is refused at once, saying why.
    let late = sim.send(a, "app", route![channel.clone(), "echoer"], b"x".to_vec());
    assert!(
        matches!(
            &late,
            Err(NodeError::Channel {
                error: ChannelError::PeerLost { .. },
                ..
            })
        ),
        "{late:?}"
    );
    assert_eq!(sim.core(a).channel_count(), 0);
    let again = sim.establish(a, to_b(), identity(1), everyone()).unwrap();
    sim.send(a, "app", route![again, "echoer"], b"three".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.mailbox(a, "app").payloads().last(),
        Some(&b"three".to_vec())
    );
}

/// With keepalives on, an idle initiator finds a restarted responder by itself: its
/// next keepalive brings the report, and the probe fails it, within a keepalive
/// interval and a probe timeout of the restart.
#[test]
fn an_idle_initiator_finds_a_restarted_responder_by_its_keepalive() {
    let (mut sim, a, b) = pair(1702, true);
    let channel = open(&mut sim, a);
    let restarted_at = sim.now();
    sim.restart(b);
    assert!(
        sim.run_until(Duration::from_secs(12), |sim| failure(sim, a, &channel)
            .is_some())
    );
    let (at, error) = failure(&sim, a, &channel).unwrap();
    println!("idle initiator: restart to failure {:?}", at - restarted_at);
    assert!(at - restarted_at <= Duration::from_secs(11) + Duration::from_millis(100));
    assert!(matches!(error, ChannelError::PeerLost { .. }), "{error:?}");
}

/// A crashed initiator leaves its channel ends on the responder; the idle deadline
/// reclaims them, and an initiator shut out by the full channel table meanwhile gets
/// a channel afterwards.
#[test]
fn a_crashed_initiators_ends_are_reclaimed() {
    let mut sim = Sim::new(1703);
    sim.keepalives = true;
    let a = sim.add_node("a", None);
    let c = sim.add_node("c", None);
    let b = sim.add_node_with(
        "b",
        Some("b:4000"),
        NodeConfig {
            max_channels: 2,
            ..NodeConfig::default()
        },
    );
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    for _ in 0..2 {
        sim.establish(a, to_b(), identity(1), everyone()).unwrap();
    }
    assert_eq!(sim.core(b).channel_count(), 2);
    let crashed_at = sim.now();
    sim.restart(a);
    // The table is full: C's hello is dropped, and C told at once.
    let started = sim.now();
    let refused = sim
        .establish(c, to_b(), identity(3), everyone())
        .unwrap_err();
    assert!(sim.now() - started < Duration::from_millis(100));
    assert!(
        matches!(&refused, NodeError::Channel { error: ChannelError::RouteFailed { report }, .. }
            if report.code == ReportCode::Overloaded && report.detail.contains("too many secure channels")),
        "{refused:?}"
    );
    assert!(
        sim.run_until(Duration::from_secs(60), |sim| sim.core(b).channel_count()
            == 0)
    );
    let reclaimed = sim.now() - crashed_at;
    println!("crashed initiator: ends reclaimed after {reclaimed:?}");
    assert!(
        reclaimed >= Duration::from_secs(29) && reclaimed <= Duration::from_secs(31),
        "{reclaimed:?}"
    );
    let unresponsive = sim
        .events(b)
        .filter(|e| {
            matches!(
                e,
                NodeEvent::ChannelFailed {
                    error: NodeError::Channel {
                        error: ChannelError::Unresponsive { .. },
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    assert_eq!(unresponsive, 2);
    sim.establish(c, to_b(), identity(3), everyone()).unwrap();
}

/// The bytes an idle channel costs: A's transmits over ten quiet minutes with one
/// channel, against the same connection with none.
#[test]
fn keepalive_cost_of_an_idle_channel() {
    let mut per_minute = Vec::new();
    for with_channel in [false, true] {
        let (mut sim, a, _b) = pair(1704, true);
        if with_channel {
            open(&mut sim, a);
        } else {
            sim.send(a, "app", route![tcp("b:4000"), "echoer"], b"x".to_vec())
                .unwrap();
        }
        sim.run_for(Duration::from_secs(60));
        sim.node_mut(a).capture = true;
        sim.run_for(Duration::from_secs(600));
        let sent: usize = sim.node(a).captured.iter().map(Vec::len).sum();
        assert_eq!(sim.core(a).connection_count(), 1, "the connection lives");
        per_minute.push(sent / 10);
    }
    let channel = per_minute[1] - per_minute[0].min(per_minute[1]);
    println!(
        "bytes per minute, both directions at A: connection alone {}, with an idle channel {} ({channel} for the channel)",
        per_minute[0], per_minute[1]
    );
    // Six keepalives a minute each way, of about a hundred bytes each.
    assert!(channel > 0 && channel < 1500, "{per_minute:?}");
}

/// A message through a channel to an address that does not exist on the far node
/// comes back as a report, authenticated by the channel; the same over plain TCP
/// comes back unauthenticated.
#[test]
fn a_far_unknown_address_is_reported_to_the_sender() {
    let (mut sim, a, b) = pair(1705, false);
    let channel = open(&mut sim, a);
    sim.send(a, "app", route![channel.clone(), "nobody"], b"?".to_vec())
        .unwrap();
    sim.send(a, "app", route![tcp("b:4000"), "nobody"], b"?".to_vec())
        .unwrap();
    sim.run_until_idle();
    let app = sim.mailbox(a, "app");
    assert_eq!(app.received.len(), 2);
    for (message, origin) in app.received.iter().zip(&app.origins) {
        assert!(is_report(message));
        let report = Report::decode(&message.payload).unwrap();
        assert_eq!(report.code, ReportCode::UnknownAddress);
        assert_eq!(report.address, Address::local("nobody"));
        match origin {
            Origin::Channel { peer, .. } => assert_eq!(**peer, identity(2).identifier()),
            Origin::Transport { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(app
        .origins
        .iter()
        .any(|o| matches!(o, Origin::Channel { .. })));
    assert_eq!(sim.core(b).stats().reports_sent, 2);
    // The channel is unharmed.
    assert!(sim.core(a).channel_peer(&channel).is_some());
}

/// A middle node whose next hop is down reports it: the initiator's handshake fails
/// at once with the middle node's reason, not at the handshake timeout.
#[test]
fn a_dead_next_hop_fails_the_handshake_at_once() {
    let mut sim = Sim::new(1706);
    let a = sim.add_node("a", None);
    let _m = sim.add_node("m", Some("m:3000"));
    let started = sim.now();
    let error = sim
        .establish(
            a,
            route![tcp("m:3000"), tcp("b:4000"), "secure"],
            identity(1),
            everyone(),
        )
        .unwrap_err();
    let took = sim.now() - started;
    println!("dead next hop: handshake failed after {took:?}");
    assert!(took < Duration::from_millis(200), "{took:?}");
    match error {
        NodeError::Channel {
            error: ChannelError::RouteFailed { report },
            ..
        } => {
            assert_eq!(report.code, ReportCode::Unreachable);
            assert_eq!(report.address, tcp("b:4000"));
            assert!(report.detail.contains("refused"), "{report}");
        }
        other => panic!("{other:?}"),
    }
}

/// A listener that is not there: the far node reports the unknown address, and the
/// handshake fails at once.
#[test]
fn a_missing_listener_fails_the_handshake_at_once() {
    let (mut sim, a, _b) = pair(1707, false);
    let error = sim
        .establish(a, route![tcp("b:4000"), "nothing"], identity(1), everyone())
        .unwrap_err();
    assert!(sim.now() < Duration::from_millis(100));
    assert!(
        matches!(&error, NodeError::Channel { error: ChannelError::RouteFailed { report }, .. }
            if report.code == ReportCode::UnknownAddress && report.address == Address::local("nothing")),
        "{error:?}"
    );
}

/// Over a link that loses a third of what it carries, handshakes complete by
/// sending their records again, and duplicates make no second channel end.
#[test]
fn handshakes_survive_loss_and_duplication() {
    let mut established = 0;
    for seed in 0..20 {
        let (mut sim, a, b) = pair(1710 + seed, false);
        sim.set_all_links(LinkFaults::lossy(0.3, 0.3, 0.0, 0.0));
        match sim.establish(a, to_b(), identity(1), everyone()) {
            Ok(_) => {
                established += 1;
                sim.run_until_idle();
                assert_eq!(sim.core(b).channel_count(), 1, "seed {seed}: one end only");
            }
            Err(error) => assert!(
                matches!(
                    error,
                    NodeError::Channel {
                        error: ChannelError::HandshakeTimeout { .. },
                        ..
                    }
                ),
                "seed {seed}: {error:?}"
            ),
        }
    }
    println!("30% loss, 30% duplication: {established} of 20 handshakes completed");
    assert!(established >= 15, "{established} of 20");
    // Without retransmission the same links complete far fewer.
    let mut without = 0;
    for seed in 0..20 {
        let (mut sim, a, _b) = pair(1710 + seed, false);
        sim.channel.handshake_resend = None;
        sim.set_all_links(LinkFaults::lossy(0.3, 0.3, 0.0, 0.0));
        without += usize::from(sim.establish(a, to_b(), identity(1), everyone()).is_ok());
    }
    println!("the same without retransmission: {without} of 20");
    assert!(without < established);
}

/// The responder's node restarts at every moment of a handshake (hello, response,
/// finish or confirm in flight, or just after): the initiator either establishes a
/// channel that then works, or fails with a named error well within the handshake
/// timeout; never silence. A new channel then works.
#[test]
fn restarts_at_every_stage_of_a_handshake() {
    let mut outcomes = Vec::new();
    for delay_ms in [0u64, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 25, 30] {
        let (mut sim, a, b) = pair(1730 + delay_ms, false);
        let (id, _) = sim
            .create_channel(a, to_b(), identity(1), everyone())
            .unwrap();
        sim.run_for(Duration::from_millis(delay_ms));
        sim.restart(b);
        let started = sim.now();
        assert!(sim.run_until(Duration::from_secs(11), |sim| sim
            .channel_outcome(a, id)
            .is_some()));
        match sim.channel_outcome(a, id).cloned() {
            Some(NodeEvent::ChannelEstablished { address, .. }) => {
                // A channel that survived must work, or fail by name on first use.
                sim.send(a, "app", route![address.clone(), "echoer"], b"ok".to_vec())
                    .unwrap();
                sim.run_for(Duration::from_secs(3));
                let echoed = sim.mailbox(a, "app").payloads() == [b"ok".to_vec()];
                // The record may also have been lost with the old connection: the
                // sender is told that.
                let failed =
                    failure(&sim, a, &address).is_some() || !told(&sim, a, "app").is_empty();
                assert!(
                    echoed != failed,
                    "{delay_ms} ms: echoed {echoed}, failed {failed}"
                );
                outcomes.push(format!(
                    "{delay_ms} ms: established; {}",
                    if echoed {
                        "echoed".to_owned()
                    } else {
                        format!("{:?}", told(&sim, a, "app"))
                    }
                ));
            }
            Some(NodeEvent::ChannelFailed { error, .. }) => {
                let took = sim.now() - started;
                assert!(took < Duration::from_secs(10), "{delay_ms} ms: {took:?}");
                // The connection the hello waited for closed, a node reported the
                // listener's end gone, or the finish was never confirmed.
                assert!(
                    matches!(
                        error,
                        NodeError::ConnectFailed { .. }
                            | NodeError::ConnectionClosed { .. }
                            | NodeError::Channel {
                                error: ChannelError::RouteFailed { .. }
                                    | ChannelError::HandshakeTimeout {
                                        stage: HandshakeStage::FinishSent,
                                        ..
                                    },
                                ..
                            }
                    ),
                    "{delay_ms} ms: {error:?}"
                );
                outcomes.push(format!("{delay_ms} ms: {error}"));
            }
            other => panic!("{delay_ms} ms: {other:?}"),
        }
        let again = sim.establish(a, to_b(), identity(1), everyone()).unwrap();
        sim.send_message(
            a,
            &Address::local("app"),
            TransportMessage::new(route![again, "echoer"], route!["app"], b"new".to_vec()),
        )
        .unwrap();
        sim.run_until_idle();
        assert_eq!(
            sim.mailbox(a, "app").payloads().last(),
            Some(&b"new".to_vec()),
            "{delay_ms} ms"
        );
    }
    println!("{}", outcomes.join("\n"));
}

/// The times at which `node` reported the channel at `address` established.
fn established_at(sim: &Sim, node: NodeId, address: &Address) -> Vec<Duration> {
    sim.node(node)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            NodeEvent::ChannelEstablished { address: a, .. } if a == address => Some(*t),
            _ => None,
        })
        .collect()
}

/// A persistent channel outlives a restart of its responder: it fails by name, sends
/// meanwhile fail by name, and a second later it is established again at the same
/// address, which then carries messages as before.
#[test]
fn a_persistent_channel_comes_back_after_a_responder_restart() {
    let (mut sim, a, b) = pair(1750, false);
    let (_, channel) = sim
        .create_persistent_channel(a, to_b(), identity(1), everyone())
        .unwrap();
    sim.run_until_idle();
    assert!(sim.core(a).is_persistent_channel(&channel));
    assert!(!sim.core(a).is_persistent_channel(&Address::local("app")));
    sim.send(a, "app", route![channel.clone(), "echoer"], b"one".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(sim.mailbox(a, "app").payloads(), [b"one".to_vec()]);

    sim.restart(b);
    sim.run_for(Duration::from_secs(1));
    sim.send(
        a,
        "app",
        route![channel.clone(), "echoer"],
        b"lost".to_vec(),
    )
    .unwrap();
    assert!(
        sim.run_until(Duration::from_secs(2), |sim| failure(sim, a, &channel)
            .is_some())
    );
    let (failed_at, _) = failure(&sim, a, &channel).unwrap();
    // Down: a send fails at once, by name.
    let down = sim.send(a, "app", route![channel.clone(), "echoer"], b"x".to_vec());
    assert!(
        matches!(&down, Err(NodeError::Channel { address, error: ChannelError::PeerLost { .. } }) if *address == channel),
        "{down:?}"
    );
    assert!(sim.run_until(Duration::from_secs(3), |sim| established_at(
        sim, a, &channel
    )
    .len()
        == 2));
    let back = established_at(&sim, a, &channel)[1] - failed_at;
    println!("persistent channel: failure to established again {back:?}");
    assert!(back <= Duration::from_millis(1100), "{back:?}");
    sim.send(a, "app", route![channel.clone(), "echoer"], b"two".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.mailbox(a, "app").payloads().last(),
        Some(&b"two".to_vec()),
        "the same address carries messages again"
    );
    assert_eq!(sim.core(b).channel_count(), 1, "one end at the responder");
    assert!(sim.core(a).stats().reports_received >= 1);

    // A second restart: the wait went back to its start when the channel came back.
    sim.restart(b);
    sim.run_for(Duration::from_secs(1));
    sim.send(
        a,
        "app",
        route![channel.clone(), "echoer"],
        b"lost".to_vec(),
    )
    .unwrap();
    assert!(sim.run_until(Duration::from_secs(2), |sim| sim
        .node(a)
        .events
        .iter()
        .filter(
            |(_, e)| matches!(e, NodeEvent::ChannelFailed { address, .. } if *address == channel)
        )
        .count()
        == 2));
    let failed_again = sim.now();
    assert!(sim.run_until(Duration::from_secs(3), |sim| established_at(
        sim, a, &channel
    )
    .len()
        == 3));
    let back = established_at(&sim, a, &channel)[2] - failed_again;
    assert!(back <= Duration::from_millis(1100), "{back:?}");
}

/// A persistent channel whose responder stays away is tried again with a doubling
/// wait, up to a minute, never more often; closing it ends the attempts.
#[test]
fn a_persistent_channel_backs_off_and_closing_it_ends_it() {
    let (mut sim, a, b) = pair(1751, true);
    let (_, channel) = sim
        .create_persistent_channel(a, to_b(), identity(1), everyone())
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    sim.partition(a, b);
    sim.restart(b);
    sim.run_for(Duration::from_secs(300));
    let failures: Vec<Duration> = sim
        .node(a)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            NodeEvent::ChannelFailed { address, .. } if *address == channel => Some(*t),
            _ => None,
        })
        .collect();
    println!(
        "persistent channel, responder away for 300 s: {} failed starts",
        failures.len()
    );
    // Gaps between failed starts grow, and none is over a minute plus a handshake.
    for pair in failures.windows(2).skip(1) {
        assert!(
            pair[1] - pair[0] <= Duration::from_secs(60 + 11),
            "{failures:?}"
        );
    }
    assert!(failures.len() >= 5 && failures.len() <= 12, "{failures:?}");
    // Closed while down: no more attempts, and a send says it is closed.
    sim.close_channel(a, &channel);
    let before = sim.node(a).events.len();
    sim.heal(a, b);
    sim.run_for(Duration::from_secs(300));
    assert!(!sim.core(a).is_persistent_channel(&channel));
    assert!(established_at(&sim, a, &channel).len() == 1);
    assert!(sim.node(a).events[before..].iter().all(
        |(_, e)| !matches!(e, NodeEvent::ChannelFailed { address, .. } if *address == channel)
    ));
    let closed = sim.send(a, "app", route![channel.clone(), "echoer"], b"x".to_vec());
    assert!(
        matches!(
            &closed,
            Err(NodeError::Channel {
                error: ChannelError::Closed,
                ..
            })
        ),
        "{closed:?}"
    );
}

/// A channel closed by its peer tells the latest senders into it at this end (a
/// request waiting for its reply, say), with a channel-specific error, and counts it.
#[test]
fn senders_are_told_when_the_peer_closes_their_channel() {
    let (mut sim, a, b) = pair(1760, false);
    let channel = open(&mut sim, a);
    echo(&mut sim, a, &channel, b"one");
    let b_end = sim
        .events(b)
        .find_map(|e| match e {
            NodeEvent::ChannelEstablished {
                address,
                initiator: false,
                ..
            } => Some(address.clone()),
            _ => None,
        })
        .unwrap();
    sim.close_channel(b, &b_end);
    sim.run_until_idle();
    assert!(told(&sim, a, "app").iter().any(|(_, e)| matches!(
        e,
        NodeError::Channel { address, error: ChannelError::Closed } if *address == channel
    )));
    assert!(sim.events(a).any(|e| matches!(
        e,
        NodeEvent::ChannelClosed { by_peer: true, address, .. } if *address == channel
    )));
    assert_eq!(sim.core(a).stats().channels_closed, 1);
    assert_eq!(sim.core(b).stats().channels_closed, 1);
    assert_eq!(
        sim.core(a).channel_state(&channel),
        Some(onward_protocol::node::ChannelState::Ended(
            ChannelError::Closed
        ))
    );
}
