//! Node cores under faults, floods and limits, simulated deterministically: loss,
//! duplication, reordering and corruption on every link of a path; partitions; node
//! restarts; floods of garbage and of hellos; a middle node injecting records; and the
//! limits that refuse a message and tell its sender.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sim.rs"]
mod sim;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use onward_protocol::channel::{ChannelConfig, ChannelEnd, ChannelError};
use onward_protocol::framing::{DEFAULT_MAX_FRAME_LEN, PREAMBLE};
use onward_protocol::identity::Identity;
use onward_protocol::node::{NodeConfig, NodeError, NodeEvent};
use onward_protocol::random::SeededRandom;
use onward_protocol::report::{is_report, Report, ReportCode};
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp, Address, TransportMessage};

use sim::{everyone, frame, identity, Behaviour, LinkFaults, NodeId, Sim, PARTITION_CONNECT_DELAY};

/// A → M → B with a channel from A to B's listener "secure", established with no
/// faults. A has "app" (sink), B has "echoer".
struct Path {
    sim: Sim,
    a: NodeId,
    m: NodeId,
    b: NodeId,
    channel: Address,
}

/// `config` with no idle timeout for connections that authenticated nothing. The
/// listening nodes here keep their plain and relayed connections however long the
/// simulation runs until idle, as the tests of faults and limits assume; idle
/// timeouts have tests of their own (`sim_access.rs`, and
/// `connections_that_authenticate_nothing_time_out` below).
fn lasting(config: NodeConfig) -> NodeConfig {
    NodeConfig {
        unproven_idle_timeout: Duration::MAX,
        ..config
    }
}

fn path(seed: u64) -> Path {
    path_with(seed, NodeConfig::default())
}

fn path_with(seed: u64, b_config: NodeConfig) -> Path {
    let mut sim = Sim::new(seed);
    let a = sim.add_node("a", None);
    let m = sim.add_node_with("m", Some("m:3000"), lasting(NodeConfig::default()));
    let b = sim.add_node_with("b", Some("b:4000"), lasting(b_config));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    let channel = sim
        .establish(a, channel_route(), identity(1), everyone())
        .unwrap();
    Path {
        sim,
        a,
        m,
        b,
        channel,
    }
}

fn channel_route() -> onward_protocol::Route {
    route![tcp("m:3000"), tcp("b:4000"), "secure"]
}

fn payload(i: usize) -> Vec<u8> {
    format!("message {i:05} through the secure channel").into_bytes()
}

/// Sends `count` numbered messages through the channel to B's echoer, one every
/// `spacing`. Returns the payloads the core accepted.
fn send_many(p: &mut Path, count: usize, spacing: Duration) -> BTreeSet<Vec<u8>> {
    let mut sent = BTreeSet::new();
    for i in 0..count {
        let body = payload(i);
        if p.sim
            .send(
                p.a,
                "app",
                route![p.channel.clone(), "echoer"],
                body.clone(),
            )
            .is_ok()
        {
            sent.insert(body);
        }
        p.sim.run_for(spacing);
    }
    sent
}

/// Every payload received is one that was sent, unmodified, and none twice.
fn assert_sent_at_most_once(received: &[Vec<u8>], sent: &BTreeSet<Vec<u8>>, who: &str) {
    let mut seen = BTreeSet::new();
    for r in received {
        assert!(
            sent.contains(r),
            "{who} received a message that was never sent: {r:?}"
        );
        assert!(
            seen.insert(r.clone()),
            "{who} received a message twice: {r:?}"
        );
    }
}

// ---- faults on every link -------------------------------------------------------------

#[test]
fn every_fault_on_every_link_delivers_only_sent_messages_at_most_once() {
    let mut p = path(101);
    let faults = LinkFaults::lossy(0.1, 0.1, 0.2, 0.1);
    p.sim.set_link(p.a, p.m, faults.clone());
    p.sim.set_link(p.m, p.b, faults);

    let count = 400;
    let sent = send_many(&mut p, count, Duration::from_millis(1));
    p.sim.run_until_idle();

    let echoed = p.sim.mailbox(p.b, "echoer").payloads();
    let replies = p.sim.mailbox(p.a, "app").payloads();
    assert_sent_at_most_once(&echoed, &sent, "the echoer");
    assert_sent_at_most_once(&replies, &sent, "the app");
    // The faults bit, and the channel still carried most of the traffic.
    assert!(echoed.len() < count, "nothing was lost");
    assert!(
        echoed.len() > count / 3,
        "only {} of {count} arrived",
        echoed.len()
    );
    assert!(!replies.is_empty());
    assert!(p.sim.core(p.b).stats().records_rejected > 0);
}

#[test]
fn duplication_and_reordering_deliver_every_message_exactly_once() {
    let mut p = path(102);
    let faults = LinkFaults::lossy(0.0, 0.5, 0.5, 0.0);
    p.sim.set_link(p.a, p.m, faults.clone());
    p.sim.set_link(p.m, p.b, faults);

    let count = 300;
    let sent = send_many(&mut p, count, Duration::from_millis(1));
    assert_eq!(sent.len(), count);
    p.sim.run_until_idle();

    let echoed = p.sim.mailbox(p.b, "echoer").payloads();
    assert_sent_at_most_once(&echoed, &sent, "the echoer");
    assert_eq!(echoed.len(), count, "nothing is lost, nothing doubled");
    let in_order: Vec<Vec<u8>> = (0..count).map(payload).collect();
    assert_ne!(echoed, in_order, "the links did reorder");
    let replies = p.sim.mailbox(p.a, "app").payloads();
    assert_sent_at_most_once(&replies, &sent, "the app");
    assert_eq!(replies.len(), count);
    // The duplicates were seen and refused by the replay window.
    assert!(p.sim.core(p.b).stats().records_rejected > 0);
    assert!(p.sim.core(p.a).stats().records_rejected > 0);
}

#[test]
fn a_corrupted_message_is_never_delivered() {
    let mut p = path(103);
    let faults = LinkFaults::lossy(0.0, 0.0, 0.0, 0.3);
    p.sim.set_link(p.a, p.m, faults.clone());
    p.sim.set_link(p.m, p.b, faults);

    let count = 300;
    let sent = send_many(&mut p, count, Duration::from_millis(1));
    p.sim.run_until_idle();

    let echoed = p.sim.mailbox(p.b, "echoer").payloads();
    assert_sent_at_most_once(&echoed, &sent, "the echoer");
    assert_sent_at_most_once(&p.sim.mailbox(p.a, "app").payloads(), &sent, "the app");
    assert!(echoed.len() < count, "some messages were corrupted");
    assert!(!echoed.is_empty());
    // Corrupted records failed authentication rather than being delivered.
    assert!(p.sim.core(p.b).stats().records_rejected > 0);
}

// ---- partitions -----------------------------------------------------------------------

#[test]
fn a_partition_behind_the_middle_node_reports_errors_within_bounded_time() {
    let mut p = path(104);
    p.sim.partition(p.m, p.b);
    let start = p.sim.now();
    for i in 0..5 {
        p.sim
            .send(p.a, "app", route![p.channel.clone(), "echoer"], payload(i))
            .unwrap();
    }
    let end = p.sim.run_until_idle();
    // M reports each record it could not pass on; A's channel probes B through the
    // partition, hears nothing, and fails, telling the sender.
    let probe = ChannelConfig::default().probe_timeout;
    assert!(
        end - start <= 2 * PARTITION_CONNECT_DELAY.max(probe) + Duration::from_millis(100),
        "took {:?}",
        end - start
    );
    let lost = p
        .sim
        .events(p.a)
        .find_map(|e| match e {
            NodeEvent::ChannelFailed {
                error:
                    NodeError::Channel {
                        error: ChannelError::PeerLost { report, .. },
                        ..
                    },
                ..
            } => Some(report.clone()),
            _ => None,
        })
        .expect("the channel failed");
    assert_eq!(lost.code, ReportCode::Unreachable);
    assert_eq!(lost.address, tcp("b:4000"));
    assert!(p.sim.events(p.a).any(|e| matches!(
        e,
        NodeEvent::DeliveryFailed { sender: Some(s), error: NodeError::Channel { .. }, .. } if *s == Address::local("app")
    )));

    assert!(p.sim.mailbox(p.b, "echoer").received.is_empty());
    let closed = |sim: &Sim, n: NodeId| {
        sim.events(n)
            .filter(|e| matches!(e, NodeEvent::ConnectionClosed { .. }))
            .count()
    };
    assert!(
        closed(&p.sim, p.b) >= 1,
        "B saw its connection from M close"
    );
    // M: the old connection closed, and each forwarded message failed to connect.
    let failed = p
        .sim
        .events(p.m)
        .filter(|e| {
            matches!(e, NodeEvent::DeliveryFailed { sender: None, error: NodeError::ConnectFailed { peer, .. }, .. } if peer == "b:4000")
        })
        .count();
    assert_eq!(failed, 7, "five messages, the probe, and the close record");

    // Healed, the path reconnects and a new channel works.
    p.sim.heal(p.m, p.b);
    let channel = p
        .sim
        .establish(
            p.a,
            route![tcp("m:3000"), tcp("b:4000"), "secure"],
            identity(1),
            everyone(),
        )
        .unwrap();
    p.sim
        .send(p.a, "app", route![channel, "echoer"], b"healed".to_vec())
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(p.sim.mailbox(p.a, "app").payloads(), [b"healed".to_vec()]);
}

#[test]
fn a_partition_next_to_the_sender_is_reported_to_the_sender() {
    let mut p = path(105);
    p.sim.partition(p.a, p.m);
    // A learns that its connection to M closed.
    p.sim.run_until_idle();
    assert!(p
        .sim
        .events(p.a)
        .any(|e| matches!(e, NodeEvent::ConnectionClosed { peer, .. } if peer == "m:3000")));
    for i in 0..3 {
        p.sim
            .send(p.a, "app", route![p.channel.clone(), "echoer"], payload(i))
            .unwrap();
    }
    let start = p.sim.now();
    let end = p.sim.run_until_idle();
    assert!(end - start <= PARTITION_CONNECT_DELAY + Duration::from_millis(100));
    let app = Address::local("app");
    let to_app = p
        .sim
        .events(p.a)
        .filter(|e| {
            matches!(e, NodeEvent::DeliveryFailed { sender: Some(s), error: NodeError::ConnectFailed { peer, .. }, .. } if *s == app && peer == "m:3000")
        })
        .count();
    assert_eq!(to_app, 3);

    // A new channel across the partition fails as soon as the connect does, not at
    // its handshake timeout.
    let start = p.sim.now();
    let outcome = p
        .sim
        .establish(p.a, channel_route(), identity(1), everyone());
    assert!(
        matches!(outcome, Err(NodeError::ConnectFailed { ref peer, .. }) if peer == "m:3000"),
        "{outcome:?}"
    );
    assert!(p.sim.now() - start <= PARTITION_CONNECT_DELAY + Duration::from_millis(100));
}

#[test]
fn messages_in_flight_when_a_connection_dies_are_reported_to_their_sender() {
    let mut sim = Sim::new(115);
    let a = sim.add_node("a", None);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "sink", Behaviour::Sink);
    sim.send(a, "app", route![tcp("b:4000"), "sink"], b"first".to_vec())
        .unwrap();
    sim.run_until_idle();

    // Three messages are handed to a slow connection, which then dies before they
    // are written.
    sim.set_link(
        a,
        b,
        LinkFaults {
            latency: Duration::from_millis(100),
            ..LinkFaults::default()
        },
    );
    for i in 0..3u8 {
        sim.send(a, "app", route![tcp("b:4000"), "sink"], vec![i])
            .unwrap();
    }
    sim.run_for(Duration::from_millis(10));
    sim.partition(a, b);
    sim.run_until_idle();

    assert_eq!(sim.mailbox(b, "sink").payloads(), [b"first".to_vec()]);
    let app = Address::local("app");
    let reported = sim
        .events(a)
        .filter(|e| {
            matches!(e, NodeEvent::DeliveryFailed { sender: Some(s), error: NodeError::ConnectionClosed { peer, .. }, .. } if *s == app && peer == "b:4000")
        })
        .count();
    assert_eq!(reported, 3, "{:?}", sim.node(a).events);
}

// ---- restarts -------------------------------------------------------------------------

#[test]
fn after_the_middle_node_restarts_messages_flow_again() {
    let mut p = path(106);
    p.sim
        .send(
            p.a,
            "app",
            route![p.channel.clone(), "echoer"],
            b"before".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(p.sim.mailbox(p.a, "app").payloads(), [b"before".to_vec()]);

    p.sim.restart(p.m);
    p.sim.run_until_idle();
    assert!(p
        .sim
        .events(p.a)
        .any(|e| matches!(e, NodeEvent::ConnectionClosed { peer, .. } if peer == "m:3000")));
    assert!(p
        .sim
        .events(p.b)
        .any(|e| matches!(e, NodeEvent::ConnectionClosed { .. })));
    assert_eq!(p.sim.core(p.m).connection_count(), 0);

    // The initiator's channel routes by TCP addresses, so it reconnects through the
    // fresh M; the responder learns the new way back from the authenticated record.
    p.sim
        .send(
            p.a,
            "app",
            route![p.channel.clone(), "echoer"],
            b"after".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(
        p.sim.mailbox(p.b, "echoer").payloads(),
        [b"before".to_vec(), b"after".to_vec()]
    );
    assert_eq!(
        p.sim.mailbox(p.a, "app").payloads(),
        [b"before".to_vec(), b"after".to_vec()]
    );
    assert_eq!(p.sim.core(p.m).connection_count(), 2);
}

#[test]
fn after_the_responder_restarts_its_channel_is_gone_and_a_new_one_works() {
    let mut p = path(107);
    p.sim.restart(p.b);
    p.sim.run_until_idle();
    p.sim
        .send(
            p.a,
            "app",
            route![p.channel.clone(), "echoer"],
            b"lost".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert!(p.sim.mailbox(p.b, "echoer").received.is_empty());
    assert!(p.sim.events(p.b).any(|e| matches!(
        e,
        NodeEvent::DeliveryFailed {
            error: NodeError::UnknownAddress(_),
            ..
        }
    )));

    let channel = p
        .sim
        .establish(p.a, channel_route(), identity(1), everyone())
        .unwrap();
    p.sim
        .send(
            p.a,
            "app",
            route![channel, "echoer"],
            b"new channel".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(
        p.sim.mailbox(p.a, "app").payloads(),
        [b"new channel".to_vec()]
    );
}

// ---- floods and attacks ---------------------------------------------------------------

/// The memory bounds that must hold at every step of a flood at B.
fn check_bounds(sim: &Sim, b: NodeId) {
    let core = sim.core(b);
    let config = core.config();
    let established = sim
        .events(b)
        .filter(|e| matches!(e, NodeEvent::ChannelEstablished { .. }))
        .count();
    assert!(
        core.channel_count() <= config.max_half_open_per_listener + established,
        "{} channel ends, {} established",
        core.channel_count(),
        established
    );
    assert!(
        core.connection_count()
            <= config.max_incoming_connections + config.max_outgoing_connections
    );
    for c in sim.connections_of(b) {
        let backlog = core.connection_backlog(c).unwrap_or(0);
        assert!(
            backlog <= config.max_connection_backlog,
            "backlog {backlog}"
        );
    }
}

#[test]
fn floods_of_garbage_and_hellos_do_not_disturb_a_channel() {
    let max_half_open = 32;
    // Without cookies: the half-open ends alone keep real handshakes going.
    let config = NodeConfig {
        max_half_open_per_listener: max_half_open,
        max_connection_backlog: 64 * 1024,
        cookie_threshold: None,
        ..NodeConfig::default()
    };
    let mut p = path_with(108, config);
    let x = p.sim.add_node("x", None);
    p.sim.add_worker(x, "flood", Behaviour::Sink);
    let attacker = identity(9);
    let mut attacker_rng = SeededRandom::new(9);
    let before = p.sim.core(p.b).stats();

    // One connection that stays open and carries junk frames throughout.
    let junk = p.sim.raw_connect("b:4000");
    p.sim.raw_send(junk, &PREAMBLE);

    let garbage_streams: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"onward\x00\x09",
        &[
            b'o', b'n', b'w', b'a', b'r', b'd', 0, 1, 0xff, 0xff, 0xff, 0xff,
        ],
        &[
            b'o', b'n', b'w', b'a', b'r', b'd', 0, 1, 0, 0, 0, 3, 0xff, 0xfe, 0xfd,
        ],
    ];
    let mut garbage = Vec::new();
    let mut real = Vec::new();
    let mut sent = BTreeSet::new();
    let ticks = 600;
    for tick in 0..ticks {
        // A hello a millisecond at the listener, from a node that never finishes.
        let hello = ChannelEnd::initiator(
            &ChannelConfig::default(),
            attacker.clone(),
            everyone(),
            &mut attacker_rng,
            p.sim.instant(),
        )
        .unwrap()
        .poll_transmit()
        .unwrap();
        p.sim
            .send(x, "flood", route![tcp("b:4000"), "secure"], hello)
            .unwrap();
        // Junk frames: to nobody, a non-hello to the listener, a keepalive.
        let nobody = TransportMessage::new(route!["nobody"], route!["x"], vec![tick as u8; 40]);
        let not_hello = TransportMessage::new(route!["secure"], route!["x"], vec![0x04; 40]);
        p.sim.raw_send(junk, &frame(&nobody));
        p.sim.raw_send(junk, &frame(&not_hello));
        p.sim.raw_send(junk, &[0, 0, 0, 0]);
        // A fresh connection that breaks the stream protocol.
        if tick % 10 == 0 {
            let r = p.sim.raw_connect("b:4000");
            p.sim
                .raw_send(r, garbage_streams[(tick / 10) % garbage_streams.len()]);
            garbage.push(r);
        }
        // The established channel keeps carrying traffic.
        if tick % 5 == 0 {
            let body = payload(tick);
            p.sim
                .send(
                    p.a,
                    "app",
                    route![p.channel.clone(), "echoer"],
                    body.clone(),
                )
                .unwrap();
            sent.insert(body);
        }
        // Real handshakes keep starting.
        if tick % 50 == 0 {
            let (id, _) = p
                .sim
                .create_channel(p.a, channel_route(), identity(1), everyone())
                .unwrap();
            real.push(id);
        }
        let b = p.b;
        p.sim
            .run_for_checked(Duration::from_millis(1), |sim| check_bounds(sim, b));
    }
    let b = p.b;
    p.sim
        .run_for_checked(Duration::from_millis(200), |sim| check_bounds(sim, b));

    // The channel was undisturbed.
    let echoed = p.sim.mailbox(p.b, "echoer").payloads();
    assert_sent_at_most_once(&echoed, &sent, "the echoer");
    assert_eq!(echoed.len(), sent.len());
    assert_eq!(p.sim.mailbox(p.a, "app").payloads().len(), sent.len());
    // Every real handshake completed during the flood.
    for id in &real {
        assert!(
            matches!(
                p.sim.channel_outcome(p.a, *id),
                Some(NodeEvent::ChannelEstablished { .. })
            ),
            "{id:?}: {:?}",
            p.sim.channel_outcome(p.a, *id)
        );
    }
    // The flood was refused and counted: the junk frame to the listener (one a tick)
    // as a rejected hello; each valid hello from x as a half-open end, every one
    // evicted by a later hello but the last `max_half_open` (the real handshakes got
    // through before they were evicted, see above).
    let stats = p.sim.core(p.b).stats();
    assert_eq!(stats.hellos_rejected - before.hellos_rejected, ticks as u64);
    assert_eq!(
        stats.half_open_evicted - before.half_open_evicted,
        (ticks - max_half_open) as u64
    );
    assert_eq!(
        stats.connections_refused - before.connections_refused,
        garbage.len() as u64
    );
    assert!(stats.delivery_failures - before.delivery_failures >= ticks as u64);
    assert!(garbage.iter().all(|r| p.sim.raw(*r).closed));
    assert!(
        !p.sim.raw(junk).closed,
        "well-framed junk does not close a connection"
    );
    assert!(p.sim.raw(junk).received.starts_with(&PREAMBLE));

    // The half-open ends time out; only the established ones remain.
    p.sim.run_until_idle();
    let established = p
        .sim
        .events(p.b)
        .filter(|e| matches!(e, NodeEvent::ChannelEstablished { .. }))
        .count();
    assert_eq!(established, 1 + real.len());
    assert_eq!(p.sim.core(p.b).channel_count(), established);
}

/// The hello counters tell valid hellos from junk, flood by flood. Valid hellos are
/// never rejected while there is room: a full listener evicts its oldest half-open end
/// for each. Junk (not a hello, a cut hello, an unknown suite, no return route) is
/// rejected and evicts nothing. Valid hellos past `max_channels` are rejected for want
/// of room, and evict nothing either.
#[test]
fn hello_counters_tell_valid_hellos_from_junk() {
    let max_half_open = 8;
    let max_channels = 20;
    let config = NodeConfig {
        max_half_open_per_listener: max_half_open,
        max_channels,
        cookie_threshold: None,
        ..NodeConfig::default()
    };
    let mut sim = Sim::new(119);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(config));
    for listener in ["first", "second", "third"] {
        sim.add_channel_listener(b, listener, identity(2), everyone());
    }
    let raw = sim.raw_connect("b:4000");
    sim.raw_send(raw, &PREAMBLE);
    let mut rng = SeededRandom::new(19);
    let mut hello = |sim: &Sim| {
        ChannelEnd::initiator(
            &ChannelConfig::default(),
            identity(9),
            everyone(),
            &mut rng,
            sim.instant(),
        )
        .unwrap()
        .poll_transmit()
        .unwrap()
    };
    let to = |listener: &str, payload: Vec<u8>| {
        frame(&TransportMessage::new(
            route![Address::local(listener)],
            route!["x"],
            payload,
        ))
    };
    // (hellos rejected, half-open ends evicted, channel ends now)
    let counters = |sim: &Sim| {
        let s = sim.core(b).stats();
        (
            s.hellos_rejected,
            s.half_open_evicted,
            sim.core(b).channel_count(),
        )
    };
    let flood = 30;

    // Valid hellos at one listener: it keeps the newest `max_half_open`.
    for _ in 0..flood {
        let h = hello(&sim);
        sim.raw_send(raw, &to("first", h));
        sim.run_for(Duration::from_millis(1));
    }
    assert_eq!(
        counters(&sim),
        (0, (flood - max_half_open) as u64, max_half_open)
    );

    // Junk at the same listener: every one rejected, nothing evicted or added.
    for i in 0..flood {
        let valid = hello(&sim);
        let mut unknown_suite = valid.clone();
        unknown_suite[1] = 0x7f;
        let mut not_a_hello = valid.clone();
        not_a_hello[0] = 0x04;
        for junk in [
            not_a_hello,
            valid[..valid.len() - 1].to_vec(),
            unknown_suite,
        ] {
            sim.raw_send(raw, &to("first", junk));
        }
        // A hello with no way back, from a sender on B itself.
        let nowhere = TransportMessage::new(route!["first"], route![], valid);
        sim.send_message(b, &Address::local(format!("local{i}")), nowhere)
            .unwrap();
        sim.run_for(Duration::from_millis(1));
    }
    assert_eq!(
        counters(&sim),
        (
            4 * flood as u64,
            (flood - max_half_open) as u64,
            max_half_open
        )
    );

    // Valid hellos at two more listeners: the second keeps `max_half_open`, the third
    // takes what room `max_channels` leaves and the rest are rejected.
    for listener in ["second", "third"] {
        for _ in 0..flood {
            let h = hello(&sim);
            sim.raw_send(raw, &to(listener, h));
            sim.run_for(Duration::from_millis(1));
        }
    }
    let room_at_third = max_channels - 2 * max_half_open;
    assert_eq!(
        counters(&sim),
        (
            (4 * flood + flood - room_at_third) as u64,
            (2 * (flood - max_half_open)) as u64,
            max_channels
        )
    );
    assert!(
        !sim.raw(raw).closed,
        "well-framed hellos do not close a connection"
    );
}

#[test]
fn a_middle_node_cannot_inject_forged_or_replayed_records() {
    let mut p = path(109);
    p.sim.node_mut(p.m).capture = true;
    let sent = send_many(&mut p, 5, Duration::from_millis(1));
    p.sim.run_until_idle();
    assert_eq!(p.sim.mailbox(p.b, "echoer").received.len(), 5);

    // The records M forwarded to B's decryptor, as M saw them.
    let records: Vec<TransportMessage> = p
        .sim
        .node(p.m)
        .captured
        .iter()
        .filter(|c| c.len() > 4 && c[..] != PREAMBLE)
        .filter_map(|c| TransportMessage::decode(&c[4..]).ok())
        .filter(|msg| {
            msg.onward_route.len() == 1
                && p.sim
                    .core(p.b)
                    .has_address(msg.onward_route.next().unwrap())
                && msg.payload.first() == Some(&0x04)
        })
        .collect();
    assert_eq!(records.len(), 5, "{records:?}");

    let before = p.sim.core(p.b).stats().records_rejected;
    let raw = p.sim.raw_connect("b:4000");
    p.sim.raw_send(raw, &PREAMBLE);
    let mut injected = 0u64;
    for record in &records {
        // Replayed as is.
        p.sim.raw_send(raw, &frame(record));
        // Altered ciphertext.
        let mut forged = record.clone();
        let last = forged.payload.len() - 1;
        forged.payload[last] ^= 0x01;
        p.sim.raw_send(raw, &frame(&forged));
        // A counter far ahead.
        let mut ahead = record.clone();
        ahead.payload[1..9].copy_from_slice(&(u64::MAX - 10).to_be_bytes());
        p.sim.raw_send(raw, &frame(&ahead));
        injected += 3;
    }
    p.sim.run_until_idle();
    assert_eq!(p.sim.core(p.b).stats().records_rejected - before, injected);
    assert_eq!(p.sim.mailbox(p.b, "echoer").received.len(), 5);
    assert_sent_at_most_once(
        &p.sim.mailbox(p.b, "echoer").payloads(),
        &sent,
        "the echoer",
    );

    // The channel goes on, and replies still go back to A.
    p.sim
        .send(
            p.a,
            "app",
            route![p.channel.clone(), "echoer"],
            b"still here".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(p.sim.mailbox(p.a, "app").received.len(), 6);
    assert_eq!(p.sim.mailbox(p.a, "app").payloads()[5], b"still here");
}

#[test]
fn an_altered_return_route_on_an_authentic_record_does_not_cut_the_channel() {
    let mut p = path(114);
    let echo = |p: &mut Path, body: &[u8]| {
        p.sim
            .send(
                p.a,
                "app",
                route![p.channel.clone(), "echoer"],
                body.to_vec(),
            )
            .unwrap();
        p.sim.run_until_idle();
    };
    echo(&mut p, b"zero");

    // M rewrites the return route of the next record it forwards to A: the record
    // still authenticates (routes are outside it), but its last return address no
    // longer names B's channel end.
    let tampered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tampered.clone();
    p.sim.set_tamper(
        p.m,
        p.a,
        Some(Box::new(move |bytes: &mut Vec<u8>| {
            let Ok(mut message) = TransportMessage::decode(&bytes[4..]) else {
                return;
            };
            if message.payload.first() != Some(&0x04) || count.load(Ordering::SeqCst) > 0 {
                return;
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = message.return_route.pop_back();
            message.return_route.append(Address::local("elsewhere"));
            *bytes = frame(&message);
        })),
    );
    echo(&mut p, b"one");
    assert_eq!(tampered.load(Ordering::SeqCst), 1);
    p.sim.set_tamper(p.m, p.a, None);

    // The channel still reaches B's end.
    echo(&mut p, b"two");
    echo(&mut p, b"three");
    assert_eq!(
        p.sim.mailbox(p.a, "app").payloads(),
        [
            b"zero".to_vec(),
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec()
        ]
    );
}

// ---- limits -----------------------------------------------------------------------------

#[test]
fn a_full_mailbox_is_reported_to_the_sender() {
    let mut sim = Sim::new(110);
    let config = NodeConfig {
        mailbox_capacity: 3,
        ..NodeConfig::default()
    };
    let a = sim.add_node("a", None);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(config));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "app", Behaviour::Sink);
    sim.add_worker(b, "inbox", Behaviour::Hold);

    for i in 0..3u8 {
        sim.send(b, "app", route!["inbox"], vec![i]).unwrap();
    }
    let full = sim.send(b, "app", route!["inbox"], vec![3]);
    assert_eq!(
        full,
        Err(NodeError::MailboxFull {
            address: Address::local("inbox"),
            limit: 3
        })
    );
    assert_eq!(
        sim.core(b).mailbox_unread(&Address::local("inbox")),
        Some(3)
    );

    // From another node the message waits, and its connection stops being read.
    sim.send(a, "app", route![tcp("b:4000"), "inbox"], vec![4])
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    assert!(!sim
        .events(b)
        .any(|e| matches!(e, NodeEvent::DeliveryFailed { .. })));
    let conn = sim.connections_of(b)[0];
    assert!(sim.core(b).is_reading_paused(conn));

    // Taking messages makes room: the waiting one goes in first.
    assert_eq!(sim.take(b, "inbox").len(), 3);
    assert!(!sim.core(b).is_reading_paused(conn));
    sim.send(b, "app", route!["inbox"], vec![5]).unwrap();
    assert_eq!(
        sim.take(b, "inbox")
            .into_iter()
            .map(|m| m.payload)
            .collect::<Vec<_>>(),
        [vec![4], vec![5]]
    );
}

#[test]
fn a_send_to_an_unknown_address_is_refused() {
    let mut sim = Sim::new(111);
    let a = sim.add_node("a", None);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    sim.add_worker(a, "app", Behaviour::Sink);
    assert_eq!(
        sim.send(a, "app", route!["nobody"], b"x".to_vec()),
        Err(NodeError::UnknownAddress(Address::local("nobody")))
    );
    assert_eq!(
        sim.send(a, "app", route![], b"x".to_vec()),
        Err(NodeError::EmptyRoute)
    );
    // Remotely, the node where the address is unknown reports it.
    sim.send(a, "app", route![tcp("b:4000"), "nobody"], b"x".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert!(sim.events(b).any(|e| matches!(
        e,
        NodeEvent::DeliveryFailed { sender: None, error: NodeError::UnknownAddress(addr), .. } if *addr == Address::local("nobody")
    )));
}

#[test]
fn a_connect_to_nowhere_fails_the_delivery_and_a_channel_at_once() {
    let mut sim = Sim::new(112);
    let a = sim.add_node("a", None);
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.send(a, "app", route![tcp("nowhere:1"), "echoer"], b"x".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert!(sim.events(a).any(|e| matches!(
        e,
        NodeEvent::DeliveryFailed { sender: Some(s), error: NodeError::ConnectFailed { peer, .. }, .. }
            if *s == Address::local("app") && peer == "nowhere:1"
    )));
    assert_eq!(sim.core(a).connection_count(), 0);

    let start = sim.now();
    let (id, address) = sim
        .create_channel(
            a,
            route![tcp("nowhere:1"), "secure"],
            identity(1),
            everyone(),
        )
        .unwrap();
    sim.run_until_idle();
    match sim.channel_outcome(a, id) {
        Some(NodeEvent::ChannelFailed {
            address: failed,
            error: NodeError::ConnectFailed { peer, .. },
            ..
        }) => {
            assert_eq!(*failed, address);
            assert_eq!(peer, "nowhere:1");
        }
        other => panic!("expected ChannelFailed(ConnectFailed), got {other:?}"),
    }
    assert!(
        sim.now() - start < Duration::from_secs(1),
        "failed at once, not by timeout"
    );
    assert_eq!(sim.core(a).channel_count(), 0);
}

#[test]
fn connection_queues_refuse_beyond_their_limits() {
    let mut sim = Sim::new(113);
    let config = NodeConfig {
        max_queued_while_connecting: 4,
        max_connection_backlog: 1000,
        ..NodeConfig::default()
    };
    let a = sim.add_node_with("a", None, config);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "sink", Behaviour::Sink);

    // While connecting, at most four messages wait.
    let results: Vec<_> = (0..6u8)
        .map(|i| sim.send(a, "app", route![tcp("b:4000"), "sink"], vec![i; 100]))
        .collect();
    assert!(results[..4].iter().all(Result::is_ok));
    assert!(results[4..]
        .iter()
        .all(|r| matches!(r, Err(NodeError::ConnectionBacklogFull { limit: 4, .. }))));
    sim.run_until_idle();
    assert_eq!(sim.mailbox(b, "sink").received.len(), 4);

    // Once open, at most 1000 bytes may be unwritten; the link is slow.
    sim.set_link(
        a,
        b,
        LinkFaults {
            latency: Duration::from_secs(1),
            ..LinkFaults::default()
        },
    );
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..30u8 {
        match sim.send(a, "app", route![tcp("b:4000"), "sink"], vec![i; 100]) {
            Ok(()) => accepted += 1,
            Err(NodeError::ConnectionBacklogFull { limit: 1000, .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        for c in sim.connections_of(a) {
            assert!(sim.core(a).connection_backlog(c).unwrap() <= 1000);
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
    sim.run_until_idle();
    // Everything accepted arrived.
    assert_eq!(sim.mailbox(b, "sink").received.len(), 4 + accepted);
}

#[test]
fn incoming_connections_beyond_the_limit_evict_the_oldest_unproven() {
    let config = NodeConfig {
        max_incoming_connections: 4,
        ..NodeConfig::default()
    };
    let mut p = path_with(117, config);
    // B already holds one connection, from M, which carried the channel's handshake.
    assert_eq!(p.sim.core(p.b).connection_count(), 1);
    let from_m = p.sim.connections_of(p.b)[0];
    assert!(p.sim.core(p.b).is_connection_proven(from_m));
    let before = p.sim.core(p.b).stats();
    let raws: Vec<_> = (0..10).map(|_| p.sim.raw_connect("b:4000")).collect();
    p.sim.run_for(Duration::from_millis(100));
    // Each raw connection past the limit made room by closing the oldest one that
    // authenticated nothing; the connection from M stayed.
    assert_eq!(p.sim.core(p.b).connection_count(), 4);
    assert!(p.sim.connections_of(p.b).contains(&from_m));
    let closed: Vec<bool> = raws.iter().map(|r| p.sim.raw(*r).closed).collect();
    assert_eq!(closed, [[true; 7].as_slice(), &[false; 3]].concat());
    let stats = p.sim.core(p.b).stats();
    assert_eq!(stats.connections_evicted - before.connections_evicted, 7);
    assert_eq!(stats.connections_refused, before.connections_refused);
    // The channel on the connection already open is undisturbed.
    p.sim
        .send(
            p.a,
            "app",
            route![p.channel.clone(), "echoer"],
            b"still".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(p.sim.mailbox(p.a, "app").payloads(), [b"still".to_vec()]);
}

// ---- the simulator itself -------------------------------------------------------------

/// Everything observable about a faulty run: what each worker received (routes
/// included), every event with its time, every node's counters.
fn faulty_run(seed: u64) -> String {
    let mut p = path(seed);
    let faults = LinkFaults::lossy(0.1, 0.1, 0.3, 0.1);
    p.sim.set_link(p.a, p.m, faults.clone());
    p.sim.set_link(p.m, p.b, faults);
    send_many(&mut p, 100, Duration::from_millis(1));
    p.sim.run_until_idle();
    let mut out = String::new();
    for n in [p.a, p.m, p.b] {
        let node = p.sim.node(n);
        for (address, mailbox) in &node.mailboxes {
            for m in &mailbox.received {
                out += &format!("{address} {m:?} {:?}\n", m.payload);
            }
        }
        out += &format!("{:?}\n{:?}\n", node.events, node.core.stats());
    }
    out
}

#[test]
fn the_simulation_is_deterministic() {
    let first = faulty_run(7);
    assert_eq!(first, faulty_run(7), "the same seed gives the same run");
    assert_ne!(first, faulty_run(8), "another seed gives another run");
}

#[test]
#[should_panic(expected = "step budget")]
fn a_livelock_is_caught_by_the_step_budget() {
    // Two echoers on two nodes bounce one message back and forth for ever.
    let mut sim = Sim::new(116);
    let a = sim.add_node("a", None);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    sim.add_worker(a, "echoer", Behaviour::Echo);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.step_budget = 10_000;
    sim.send(
        a,
        "echoer",
        route![tcp("b:4000"), "echoer"],
        b"ping".to_vec(),
    )
    .unwrap();
    sim.run_until_idle();
}

/// A worker slower than the network: messages from a connection that find its mailbox
/// full wait (the connection stalls, reading pauses) instead of being dropped, and all
/// arrive in order once the worker takes them, in the clear and through a channel.
#[test]
fn a_full_mailbox_stalls_the_connection_and_nothing_is_lost() {
    for secure in [false, true] {
        let mut sim = Sim::new(117);
        let a = sim.add_node("a", None);
        let config = NodeConfig {
            mailbox_capacity: 4,
            ..NodeConfig::default()
        };
        let b = sim.add_node_with("b", Some("b:4000"), lasting(config));
        sim.add_worker(a, "app", Behaviour::Sink);
        sim.add_worker(b, "slow", Behaviour::Hold);
        let first_hop = if secure {
            let identity = Arc::new(Identity::generate_with(&mut SeededRandom::new(5)).unwrap());
            sim.add_channel_listener(b, "secure", identity.clone(), Arc::new(TrustEveryone));
            let channel = sim
                .establish(
                    a,
                    route![tcp("b:4000"), "secure"],
                    identity,
                    Arc::new(TrustEveryone),
                )
                .unwrap();
            route![channel]
        } else {
            route![tcp("b:4000")]
        };
        for i in 0..20u8 {
            let mut route = first_hop.clone();
            route.append(Address::local("slow"));
            sim.send(a, "app", route, vec![i; 100]).unwrap();
        }
        sim.run_for(Duration::from_millis(100));
        let conn = sim.connections_of(b)[0];
        assert_eq!(sim.mailbox(b, "slow").received.len(), 4, "secure: {secure}");
        assert!(sim.core(b).is_reading_paused(conn), "secure: {secure}");

        let mut taken = Vec::new();
        while taken.len() < 20 {
            let batch = sim.take(b, "slow");
            assert!(
                !batch.is_empty(),
                "stuck after {} (secure: {secure})",
                taken.len()
            );
            assert!(batch.len() <= 4);
            taken.extend(batch);
            sim.run_for(Duration::from_millis(100));
        }
        let payloads: Vec<Vec<u8>> = taken.into_iter().map(|m| m.payload).collect();
        let expected: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100]).collect();
        assert_eq!(payloads, expected, "all, in order (secure: {secure})");
        assert!(!sim.core(b).is_reading_paused(conn));
        assert_eq!(sim.core(b).stats().delivery_failures, 0);
    }
}

/// A connection stalled on a full mailbox whose worker then goes away is not stuck: the
/// waiting messages are reported undeliverable and reading resumes.
#[test]
fn a_stall_ends_when_its_mailbox_goes_away() {
    let mut sim = Sim::new(118);
    let a = sim.add_node("a", None);
    let config = NodeConfig {
        mailbox_capacity: 2,
        ..NodeConfig::default()
    };
    let b = sim.add_node_with("b", Some("b:4000"), lasting(config));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "slow", Behaviour::Hold);
    sim.add_worker(b, "other", Behaviour::Sink);
    for i in 0..5u8 {
        sim.send(a, "app", route![tcp("b:4000"), "slow"], vec![i])
            .unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    let conn = sim.connections_of(b)[0];
    assert!(sim.core(b).is_reading_paused(conn));

    sim.remove_worker(b, "slow");
    assert!(!sim.core(b).is_reading_paused(conn));
    let undeliverable = sim
        .events(b)
        .filter(|e| {
            matches!(
                e,
                NodeEvent::DeliveryFailed {
                    error: NodeError::UnknownAddress(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(undeliverable, 3, "the three that waited");
    // The connection carries on.
    sim.send(a, "app", route![tcp("b:4000"), "other"], vec![9])
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.mailbox(b, "other").payloads(), [vec![9]]);
}

/// A worker that stops taking messages holds up its connection for `max_stall` at
/// most: then the waiting message is dropped and reported, later ones to that mailbox
/// are dropped at once until it is down to half full, and the connection goes on.
#[test]
fn a_stall_gives_up_after_max_stall() {
    let mut sim = Sim::new(119);
    let a = sim.add_node("a", None);
    let config = NodeConfig {
        mailbox_capacity: 4,
        max_stall: Duration::from_secs(2),
        ..NodeConfig::default()
    };
    let b = sim.add_node_with("b", Some("b:4000"), lasting(config));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "stuck", Behaviour::Hold);
    sim.add_worker(b, "other", Behaviour::Sink);
    for i in 0..6u8 {
        sim.send(a, "app", route![tcp("b:4000"), "stuck"], vec![i])
            .unwrap();
    }
    sim.send(a, "app", route![tcp("b:4000"), "other"], vec![9])
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    let conn = sim.connections_of(b)[0];
    assert!(
        sim.core(b).is_reading_paused(conn),
        "waiting, within max_stall"
    );
    assert!(
        sim.mailbox(b, "other").received.is_empty(),
        "held up behind it"
    );

    sim.run_for(Duration::from_secs(2));
    assert!(
        !sim.core(b).is_reading_paused(conn),
        "given up after max_stall"
    );
    assert_eq!(sim.mailbox(b, "other").payloads(), [vec![9]]);
    let full = sim
        .events(b)
        .filter(|e| {
            matches!(
                e,
                NodeEvent::DeliveryFailed {
                    error: NodeError::MailboxFull { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        full, 2,
        "the one that waited, and the next one dropped at once"
    );
    assert_eq!(sim.core(b).stats().delivery_failures, 2);
    assert_eq!(sim.mailbox(b, "stuck").received.len(), 4);
}

/// A transport that goes on reading a paused connection cannot fill memory: once the
/// frames kept behind the stall exceed the connection backlog limit, the connection is
/// closed.
#[test]
fn reading_on_while_paused_is_cut_off() {
    let mut sim = Sim::new(120);
    let config = NodeConfig {
        mailbox_capacity: 1,
        max_connection_backlog: 8 * 1024,
        ..NodeConfig::default()
    };
    let b = sim.add_node_with("b", Some("b:4000"), lasting(config));
    sim.add_worker(b, "slow", Behaviour::Hold);
    let peer = sim.raw_connect("b:4000");
    sim.raw_send(peer, &PREAMBLE);
    let message = TransportMessage::new(route!["slow"], route![], vec![7; 1000]);
    let mut sent = 0usize;
    while !sim.raw(peer).closed && sent < 100 {
        // The simulator hands these bytes in whether or not reading is paused.
        sim.raw_send(peer, &frame(&message));
        sent += 1;
        sim.run_for(Duration::from_millis(10));
        if sent == 2 {
            let conn = sim.connections_of(b)[0];
            assert!(sim.core(b).is_reading_paused(conn), "stalled on the second");
        }
    }
    assert!(sim.raw(peer).closed, "still open after {sent} frames");
    assert!(
        (9..=12).contains(&sent),
        "closed after {sent} frames of about 1 KiB, past the 8 KiB limit"
    );
    assert_eq!(sim.mailbox(b, "slow").received.len(), 1);
    assert_eq!(sim.core(b).connection_count(), 0);
}

// ---- limits at exactly the limit and one past ---------------------------------------------

/// The frame limit on a receiving node, with the default of 262,144 bytes. No valid
/// message is that large (the largest is `MAX_ENCODED_LEN`), so a frame of exactly the
/// limit holds a message and padding: the framing takes it whole, and the message
/// layer refuses the padding. A frame declaring one byte more is refused by the
/// framing as soon as its length prefix arrives.
#[test]
fn a_frame_of_exactly_max_frame_len_is_read_and_one_byte_more_is_not() {
    use onward_protocol::framing::FramingError;
    use onward_protocol::message::{MessageError, MAX_ENCODED_LEN};

    let limit = DEFAULT_MAX_FRAME_LEN as usize;
    assert!(MAX_ENCODED_LEN < limit);
    let mut sim = Sim::new(130);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    sim.add_worker(b, "sink", Behaviour::Sink);
    let closed_because = |sim: &Sim, raw: usize| {
        let peer = format!("raw:{raw}");
        sim.events(b)
            .find_map(|e| match e {
                NodeEvent::ConnectionClosed {
                    peer: p,
                    error: Some(reason),
                    ..
                } if *p == peer => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{peer} was not closed"))
    };

    let message = TransportMessage::new(route!["sink"], route![], b"padded".to_vec())
        .to_bytes()
        .unwrap();
    let padding = limit - message.len();
    let at_limit = sim.raw_connect("b:4000");
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(&(limit as u32).to_be_bytes());
    bytes.extend_from_slice(&message);
    bytes.resize(PREAMBLE.len() + 4 + limit, 0);
    // All but the last byte: the frame is not complete, so the connection stays.
    sim.raw_send(at_limit, &bytes[..bytes.len() - 1]);
    sim.run_for(Duration::from_millis(50));
    assert!(!sim.raw(at_limit).closed, "waits for the rest of the frame");
    sim.raw_send(at_limit, &bytes[bytes.len() - 1..]);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        closed_because(&sim, at_limit),
        MessageError::TrailingBytes { extra: padding }.to_string(),
        "the whole frame was read and its message judged"
    );

    let past_limit = sim.raw_connect("b:4000");
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend_from_slice(&(limit as u32 + 1).to_be_bytes());
    sim.raw_send(past_limit, &bytes);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        closed_because(&sim, past_limit),
        FramingError::FrameTooLarge {
            len: limit as u64 + 1,
            max: DEFAULT_MAX_FRAME_LEN
        }
        .to_string(),
        "refused on its length prefix alone"
    );
    assert!(sim.raw(past_limit).closed);
    assert_eq!(sim.core(b).stats().connections_refused, 2);
    assert!(sim.mailbox(b, "sink").received.is_empty());
}

/// A middle node forwarding into a connection that never reports its bytes written:
/// frames past `max_connection_backlog` are dropped, each counted and reported as
/// `ConnectionBacklogFull` naming the next peer, the backlog never exceeds its limit,
/// and the middle node goes on forwarding to others (it does not stop reading the
/// sender's connection over it).
#[test]
fn forwarding_into_a_full_backlog_drops_counts_and_serves_others() {
    const LIMIT: usize = 2000;
    let mut sim = Sim::new(131);
    let a = sim.add_node("a", None);
    let m_config = NodeConfig {
        max_connection_backlog: LIMIT,
        ..NodeConfig::default()
    };
    let m = sim.add_node_with("m", Some("m:3000"), lasting(m_config));
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    let c = sim.add_node_with("c", Some("c:5000"), lasting(NodeConfig::default()));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "sink", Behaviour::Sink);
    sim.add_worker(c, "sink", Behaviour::Sink);
    let to_b = || route![tcp("m:3000"), tcp("b:4000"), "sink"];
    let to_c = || route![tcp("m:3000"), tcp("c:5000"), "sink"];

    // The connections open; then M → B stops reporting anything written (for an hour).
    sim.send(a, "app", to_b(), vec![0; 100]).unwrap();
    sim.send(a, "app", to_c(), vec![0; 100]).unwrap();
    sim.run_until_idle();
    assert_eq!(sim.mailbox(b, "sink").received.len(), 1);
    sim.set_link_one_way(
        m,
        b,
        LinkFaults {
            latency: Duration::from_secs(3600),
            ..LinkFaults::default()
        },
    );

    const SENT: usize = 50;
    for i in 0..SENT {
        sim.send(a, "app", to_b(), vec![i as u8; 100]).unwrap();
    }
    let m_to_b = {
        let m_core = sim.core(m);
        sim.connections_of(m)
            .into_iter()
            .find(|c| m_core.connection_peer(*c).map(|p| p.0) == Some("b:4000"))
            .unwrap()
    };
    sim.run_for_checked(Duration::from_secs(1), |sim| {
        assert!(sim.core(m).connection_backlog(m_to_b).unwrap() <= LIMIT);
    });
    let full: Vec<&NodeError> = sim
        .events(m)
        .filter_map(|e| match e {
            NodeEvent::DeliveryFailed {
                sender: None,
                error,
                ..
            } => Some(error),
            _ => None,
        })
        .collect();
    // Each drop is reported back to A; a report that finds M's small backlog to A full
    // is dropped in turn (and never reported itself).
    let (full, unreported): (Vec<&NodeError>, Vec<&NodeError>) = full.into_iter().partition(
        |e| matches!(e, NodeError::ConnectionBacklogFull { peer, .. } if peer == "b:4000"),
    );
    assert!(!full.is_empty(), "the backlog filled");
    for error in &full {
        assert!(
            matches!(error, NodeError::ConnectionBacklogFull { limit: LIMIT, .. }),
            "{error}"
        );
    }
    for error in &unreported {
        assert!(
            matches!(error, NodeError::ConnectionBacklogFull { peer, .. } if peer == "a:40000"),
            "{error}"
        );
    }
    let (dropped, unreported) = (full.len(), unreported.len());
    assert_eq!(sim.core(m).stats().reports_sent, dropped as u64);
    assert_eq!(
        sim.core(m).stats().delivery_failures,
        (dropped + unreported) as u64
    );
    assert!(dropped < SENT, "some fitted");
    assert!(sim.node(m).paused.is_empty(), "M never stopped reading A");

    // Meanwhile M serves A → C as before.
    sim.send(a, "app", to_c(), b"meanwhile".to_vec()).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.mailbox(c, "sink").payloads().last(),
        Some(&b"meanwhile".to_vec())
    );

    // What M accepted reaches B in the end, in order; nothing else does.
    sim.run_until_idle();
    let reports: Vec<Report> = sim
        .mailbox(a, "app")
        .received
        .iter()
        .filter(|m| is_report(m))
        .map(|m| Report::decode(&m.payload).unwrap())
        .collect();
    assert_eq!(reports.len(), dropped - unreported);
    assert!(reports
        .iter()
        .all(|r| r.code == ReportCode::Overloaded && r.address == tcp("b:4000")));
    let at_b = sim.mailbox(b, "sink").payloads();
    assert_eq!(at_b.len(), 1 + SENT - dropped);
    let expected: Vec<Vec<u8>> = (0..SENT - dropped).map(|i| vec![i as u8; 100]).collect();
    assert_eq!(at_b[1..], expected[..]);
}

/// At `max_outgoing_connections` a message to a new peer is refused at once, naming the peer
/// and the limit; once a connection goes there is room again.
#[test]
fn a_dial_past_max_outgoing_connections_fails_naming_the_limit() {
    let mut sim = Sim::new(132);
    let config = NodeConfig {
        max_outgoing_connections: 2,
        ..NodeConfig::default()
    };
    let a = sim.add_node_with("a", None, config);
    let b = sim.add_node_with("b", Some("b:4000"), lasting(NodeConfig::default()));
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "sink", Behaviour::Sink);

    sim.send(a, "app", route![tcp("b:4000"), "sink"], b"1".to_vec())
        .unwrap();
    sim.send(a, "app", route![tcp("nowhere:1"), "sink"], b"2".to_vec())
        .unwrap();
    assert_eq!(sim.core(a).connection_count(), 2);
    let refused = sim.send(a, "app", route![tcp("d:6000"), "sink"], b"3".to_vec());
    assert_eq!(
        refused,
        Err(NodeError::ConnectFailed {
            peer: "d:6000".into(),
            reason: "too many outgoing connections (limit 2)".into()
        })
    );
    // An open connection still takes messages at the limit.
    sim.send(a, "app", route![tcp("b:4000"), "sink"], b"4".to_vec())
        .unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.mailbox(b, "sink").payloads(),
        [b"1".to_vec(), b"4".to_vec()]
    );
    // "nowhere:1" refused its connection: a slot is free again.
    assert_eq!(sim.core(a).connection_count(), 1);
    sim.send(a, "app", route![tcp("d:6000"), "sink"], b"5".to_vec())
        .unwrap();
}

// ---- deadlines of unauthenticated stages ----------------------------------------------

/// Each unauthenticated stage has a deadline, closed and counted when missed: a peer
/// that sends nothing, one that sends only the preamble, one that leaves a frame half
/// sent, and one that goes silent after plain messages. A peer that keeps sending
/// keepalives stays; a connection that carried an authenticated record stays idle as
/// long as it likes.
#[test]
fn connections_that_authenticate_nothing_time_out() {
    let mut p = path(140);
    let b = p.b;
    let config = p.sim.core(b).config().clone();
    let before = p.sim.core(b).stats().connections_timed_out;
    // path() keeps idle connections; these deadlines hold whatever that setting says.
    let silent = p.sim.raw_connect("b:4000");
    let preamble_only = p.sim.raw_connect("b:4000");
    p.sim.raw_send(preamble_only, &PREAMBLE);
    let half_frame = p.sim.raw_connect("b:4000");
    p.sim.raw_send(half_frame, &PREAMBLE);
    let whole = frame(&TransportMessage::new(
        route!["echoer"],
        route!["x"],
        vec![1; 64],
    ));
    p.sim.raw_send(half_frame, &whole);
    p.sim.raw_send(half_frame, &whole[..10]);

    p.sim
        .run_for(config.first_frame_timeout - Duration::from_millis(1));
    assert!(!p.sim.raw(silent).closed && !p.sim.raw(preamble_only).closed);
    p.sim.run_for(Duration::from_millis(10));
    assert!(p.sim.raw(silent).closed, "no preamble in time");
    assert!(p.sim.raw(preamble_only).closed, "no first frame in time");
    assert!(
        !p.sim.raw(half_frame).closed,
        "its first frame came in time"
    );
    p.sim.run_for(config.frame_timeout);
    assert!(
        p.sim.raw(half_frame).closed,
        "the second frame was never finished"
    );
    assert_eq!(p.sim.core(b).stats().connections_timed_out - before, 3);
    // The connection from M carried the channel's records: it is still there.
    assert_eq!(p.sim.core(b).connection_count(), 1);

    // With the idle timeout in force: plain traffic, then silence, is closed; the same
    // with keepalives is not.
    let mut sim = Sim::new(141);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker(b, "sink", Behaviour::Sink);
    let idle = NodeConfig::default().unproven_idle_timeout;
    let quiet = sim.raw_connect("b:4000");
    let chatty = sim.raw_connect("b:4000");
    for raw in [quiet, chatty] {
        sim.raw_send(raw, &PREAMBLE);
        sim.raw_send(
            raw,
            &frame(&TransportMessage::new(route!["sink"], route!["x"], vec![2])),
        );
    }
    let step = idle / 4;
    for _ in 0..8 {
        sim.run_for(step);
        sim.raw_send(chatty, &[0, 0, 0, 0]);
    }
    assert!(sim.raw(quiet).closed, "silent past the idle timeout");
    assert!(!sim.raw(chatty).closed, "keepalives keep it");
    assert_eq!(sim.core(b).stats().connections_timed_out, 1);
    assert_eq!(sim.mailbox(b, "sink").received.len(), 2);
}

/// When every incoming connection has authenticated something, a new one is refused
/// rather than one of them closed.
#[test]
fn a_full_house_of_proven_connections_refuses_newcomers() {
    let config = NodeConfig {
        max_incoming_connections: 1,
        ..NodeConfig::default()
    };
    let mut p = path_with(142, config);
    let from_m = p.sim.connections_of(p.b)[0];
    let raw = p.sim.raw_connect("b:4000");
    p.sim.run_for(Duration::from_millis(100));
    assert!(p.sim.raw(raw).closed);
    assert_eq!(p.sim.connections_of(p.b), [from_m]);
    assert_eq!(p.sim.core(p.b).stats().connections_refused, 1);
    assert_eq!(p.sim.core(p.b).stats().connections_evicted, 0);
}

/// A message through a channel over a connection counts two local hops at the sender
/// (the encryptor, the record framed for the connection) and two at the receiver (the
/// record opened in its frame, the delivery).
#[test]
fn messages_routed_counts_the_fast_paths_too() {
    let mut p = path(143);
    p.sim.run_until_idle();
    let (a0, b0) = (
        p.sim.core(p.a).stats().messages_routed,
        p.sim.core(p.b).stats().messages_routed,
    );
    // The echoer only takes it: no reply to count.
    p.sim
        .node_mut(p.b)
        .mailboxes
        .get_mut(&Address::local("echoer"))
        .unwrap()
        .behaviour = Behaviour::Sink;
    p.sim
        .send(
            p.a,
            "app",
            route![p.channel.clone(), "echoer"],
            b"x".to_vec(),
        )
        .unwrap();
    p.sim.run_until_idle();
    assert_eq!(p.sim.core(p.a).stats().messages_routed - a0, 2);
    assert_eq!(p.sim.core(p.b).stats().messages_routed - b0, 2);
}
