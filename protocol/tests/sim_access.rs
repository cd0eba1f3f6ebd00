//! Access rules under hostile peers, simulated deterministically: plain frames to
//! protected workers, injection into a channel through an encryptor address learned
//! from a return route, hellos to a listener that takes none from outside, and the
//! gateway a channel becomes only when its rules say so. The simulator itself checks
//! that every delivery is one the mailbox's rule admits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sim.rs"]
mod sim;

use std::time::Duration;

use onward_protocol::channel::{ChannelConfig, ChannelEnd};
use onward_protocol::framing::PREAMBLE;
use onward_protocol::node::{Access, ChannelRules, NodeEvent, Origin};
use onward_protocol::random::SeededRandom;
use onward_protocol::report::{is_report, Report, ReportCode};
use onward_protocol::trust::TrustIdentifier;
use onward_protocol::{route, tcp, Address, Route, TransportMessage};

use sim::{everyone, frame, identity, messages_in, Behaviour, NodeId, Sim};

fn plain(onward: Route, payload: &[u8]) -> Vec<u8> {
    frame(&TransportMessage::new(
        onward,
        route!["x"],
        payload.to_vec(),
    ))
}

/// A (identity 1) → M → B (identity 2) with a channel to B's listener "secure". B's
/// "echoer" takes secure channels only (the default), "vault" only channels from
/// identity 1, and "plain" anyone; A's "app" takes what comes back (secure channels).
struct World {
    sim: Sim,
    a: NodeId,
    b: NodeId,
    channel: Address,
}

fn world(seed: u64) -> World {
    let mut sim = Sim::new(seed);
    let a = sim.add_node("a", None);
    let _m = sim.add_node("m", Some("m:3000"));
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker_with(a, "app", Behaviour::Sink, Access::secure_channels());
    sim.add_worker_with(b, "echoer", Behaviour::Echo, Access::secure_channels());
    sim.add_worker_with(
        b,
        "vault",
        Behaviour::Sink,
        Access::secure_channels_from(TrustIdentifier::new(identity(1).identifier())),
    );
    sim.add_worker_with(b, "plain", Behaviour::Sink, Access::anyone());
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    let channel = sim
        .establish(
            a,
            route![tcp("m:3000"), tcp("b:4000"), "secure"],
            identity(1),
            everyone(),
        )
        .unwrap();
    World { sim, a, b, channel }
}

/// B's end of the channel: first on the return route of what came through it.
fn b_end(w: &World) -> Address {
    let echoed = &w.sim.mailbox(w.b, "echoer").received;
    echoed
        .first()
        .and_then(|m| m.return_route.next().cloned())
        .expect("a message through the channel")
}

#[test]
fn hostile_frames_to_protected_addresses_are_refused_and_the_channel_goes_on() {
    let mut w = world(301);
    w.sim
        .send(
            w.a,
            "app",
            route![w.channel.clone(), "echoer"],
            b"first".to_vec(),
        )
        .unwrap();
    w.sim.run_until_idle();
    let b_end = b_end(&w);
    let before = w.sim.core(w.b).stats();

    // A hostile connection to B: plain frames to the channel-only echoer, to the
    // identity-only vault, and into B's channel end; interleaved with channel traffic.
    let raw = w.sim.raw_connect("b:4000");
    w.sim.raw_send(raw, &PREAMBLE);
    let rounds = 300u64;
    for i in 0..rounds {
        w.sim
            .raw_send(raw, &plain(route!["echoer"], b"plain to echoer"));
        w.sim
            .raw_send(raw, &plain(route!["vault"], b"plain to vault"));
        w.sim
            .raw_send(raw, &plain(route![b_end.clone(), "app"], b"injected"));
        w.sim.raw_send(raw, &plain(route!["plain"], b"allowed"));
        let body = format!("through the channel {i}").into_bytes();
        w.sim
            .send(w.a, "app", route![w.channel.clone(), "echoer"], body)
            .unwrap();
        w.sim.run_for(Duration::from_millis(1));
    }
    // Well within the idle timeout of a connection that authenticated nothing.
    w.sim.run_for(Duration::from_secs(1));

    let stats = w.sim.core(w.b).stats();
    assert_eq!(stats.messages_refused - before.messages_refused, 3 * rounds);
    assert_eq!(
        stats.delivery_failures, before.delivery_failures,
        "refusals are counted once, as refusals"
    );
    assert!(
        !w.sim.raw(raw).closed,
        "refusals do not close the connection"
    );
    // Only what came through the channel reached the echoer, and all of it.
    let echoer = w.sim.mailbox(w.b, "echoer");
    assert_eq!(echoer.received.len() as u64, 1 + rounds);
    assert!(echoer
        .origins
        .iter()
        .all(|o| o.channel_peer() == Some(&identity(1).identifier())));
    assert!(w.sim.mailbox(w.b, "vault").received.is_empty());
    assert_eq!(w.sim.mailbox(w.b, "plain").received.len() as u64, rounds);
    // A got every echo, and nothing injected.
    let app = w.sim.mailbox(w.a, "app");
    assert_eq!(app.received.len() as u64, 1 + rounds);
    assert!(app.payloads().iter().all(|p| p != b"injected"));

    // Left silent, the hostile connection is closed by the idle timeout of a
    // connection that never authenticated anything; the channel's connection stays.
    let timed_out = w.sim.core(w.b).stats().connections_timed_out;
    w.sim.run_until_idle();
    assert!(w.sim.raw(raw).closed);
    assert_eq!(w.sim.core(w.b).stats().connections_timed_out, timed_out + 1);
    assert_eq!(w.sim.core(w.b).connection_count(), 1);
}

/// The attack of the issue: A's message leaves the channel at B and goes on over TCP
/// to D, which so learns B's channel end. D (or anyone) then sends `[B's end, "app"]`
/// to B. B refuses it; A's app sees nothing from it.
#[test]
fn an_encryptor_address_learned_from_a_return_route_cannot_be_used_from_outside() {
    let mut sim = Sim::new(302);
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    let d = sim.add_node("d", Some("d:5000"));
    sim.add_worker_with(a, "app", Behaviour::Sink, Access::secure_channels());
    sim.add_worker_with(d, "service", Behaviour::Hold, Access::anyone());
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    let channel = sim
        .establish(a, route![tcp("b:4000"), "secure"], identity(1), everyone())
        .unwrap();
    sim.send(
        a,
        "app",
        route![channel, tcp("d:5000"), "service"],
        b"to D".to_vec(),
    )
    .unwrap();
    sim.run_until_idle();
    let at_d = sim.take(d, "service");
    assert_eq!(at_d.len(), 1);
    // D's return route: its connection from B, B's channel end, A's app.
    let b_end = at_d[0].return_route.iter().nth(1).unwrap().clone();
    assert!(sim.core(b).channel_peer(&b_end).is_some());

    // D injects, over its own connection to B.
    let before = sim.core(b).stats().messages_refused;
    for _ in 0..10 {
        sim.send(
            d,
            "service",
            route![tcp("b:4000"), b_end.clone(), "app"],
            b"from D, posing as B".to_vec(),
        )
        .unwrap();
    }
    sim.run_until_idle();
    assert_eq!(sim.core(b).stats().messages_refused - before, 10);
    assert!(sim.mailbox(a, "app").received.is_empty());
}

/// A channel whose rules admit transport on purpose (a gateway): the same injection
/// goes through, and arrives marked as coming through the channel from the gateway's
/// identity. Widening is a decision, not a default.
#[test]
fn a_channel_opened_as_a_gateway_takes_what_its_rule_admits() {
    let mut sim = Sim::new(303);
    let a = sim.add_node("a", None);
    let b = sim.add_node("b", Some("b:4000"));
    let x = sim.add_node("x", None);
    sim.add_worker_with(a, "app", Behaviour::Sink, Access::secure_channels());
    sim.add_worker(x, "client", Behaviour::Sink);
    sim.add_channel_listener_with(
        b,
        "secure",
        identity(2),
        everyone(),
        ChannelRules::new().ingress(Access::anyone()),
    );
    let channel = sim
        .establish(a, route![tcp("b:4000"), "secure"], identity(1), everyone())
        .unwrap();
    let _ = channel;
    // The gateway's end: B's side of the channel.
    let b_end = sim
        .events(b)
        .find_map(|e| match e {
            NodeEvent::ChannelEstablished { address, .. } => Some(address.clone()),
            _ => None,
        })
        .unwrap();
    sim.send(
        x,
        "client",
        route![tcp("b:4000"), b_end, "app"],
        b"through the gateway".to_vec(),
    )
    .unwrap();
    sim.run_until_idle();
    let app = sim.mailbox(a, "app");
    assert_eq!(app.payloads(), [b"through the gateway".to_vec()]);
    assert_eq!(
        app.origins[0].channel_peer(),
        Some(&identity(2).identifier())
    );
}

/// A listener that takes hellos only from its own node: a flood of valid hellos from
/// a raw connection creates no channel end and costs no handshake work, and the
/// node's own initiators still get channels.
#[test]
fn a_listener_closed_to_the_outside_spends_nothing_on_hellos() {
    let mut sim = Sim::new(304);
    let b = sim.add_node("b", Some("b:4000"));
    sim.add_worker_with(b, "app", Behaviour::Sink, Access::local_only());
    sim.add_channel_listener_with(
        b,
        "internal",
        identity(2),
        everyone(),
        ChannelRules::new().hellos(Access::local_only()),
    );
    let raw = sim.raw_connect("b:4000");
    sim.raw_send(raw, &PREAMBLE);
    let mut rng = SeededRandom::new(7);
    for _ in 0..50 {
        let hello = ChannelEnd::initiator(
            &ChannelConfig::default(),
            identity(9),
            everyone(),
            &mut rng,
            sim.instant(),
        )
        .unwrap()
        .poll_transmit()
        .unwrap();
        sim.raw_send(
            raw,
            &frame(&TransportMessage::new(
                route!["internal"],
                route!["x"],
                hello,
            )),
        );
    }
    sim.run_until_idle();
    assert_eq!(sim.core(b).channel_count(), 0);
    assert_eq!(sim.core(b).stats().messages_refused, 50);
    assert_eq!(sim.core(b).stats().hellos_rejected, 0);
    // No handshake answer went back: only a report of each refusal.
    let answers = messages_in(&sim.raw(raw).received);
    assert_eq!(answers.len(), 50);
    for answer in answers {
        assert!(is_report(&answer));
        assert_eq!(answer.onward_route, route!["x"]);
        let report = Report::decode(&answer.payload).unwrap();
        assert_eq!(report.code, ReportCode::Refused);
        assert_eq!(report.address, Address::local("internal"));
    }
    sim.establish(b, route!["internal"], identity(1), everyone())
        .unwrap();
}

/// Rules are the node's configuration: a restarted node has them again, and a message
/// a rule refuses before the restart is refused after it.
#[test]
fn rules_survive_a_restart() {
    let mut w = world(305);
    let raw = w.sim.raw_connect("b:4000");
    w.sim.raw_send(raw, &PREAMBLE);
    w.sim.raw_send(raw, &plain(route!["echoer"], b"before"));
    w.sim.run_until_idle();
    assert_eq!(w.sim.core(w.b).stats().messages_refused, 1);
    w.sim.restart(w.b);
    w.sim.run_until_idle();
    let raw = w.sim.raw_connect("b:4000");
    w.sim.raw_send(raw, &PREAMBLE);
    w.sim.raw_send(raw, &plain(route!["echoer"], b"after"));
    w.sim.raw_send(raw, &plain(route!["plain"], b"after"));
    w.sim.run_until_idle();
    assert_eq!(
        w.sim.core(w.b).stats().messages_refused,
        1,
        "a fresh core counts anew"
    );
    assert!(w.sim.mailbox(w.b, "echoer").received.is_empty());
    assert!(matches!(
        w.sim.mailbox(w.b, "plain").origins.last(),
        Some(Origin::Transport { .. })
    ));
}
