//! Memory for idle channels: two node cores joined in memory establish 10,000 secure
//! channels, and the growth of resident memory is divided among the 20,000 channel
//! endpoints. The peer figure is the target itself (2 KiB per endpoint). Two more
//! figures add what the same channels hold once each has carried one message each
//! way, and eight each way (from the eighth data record a direction keeps its key
//! expanded: the speed of a busy channel, bought with about 550 bytes a direction).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use onward_bench::{quick, Figure, Report};
use onward_protocol::channel::ChannelConfig;
use onward_protocol::identity::Identity;
use onward_protocol::node::{Access, ChannelRules, NodeConfig, NodeCore, NodeEvent, Output};
use onward_protocol::random::SeededRandom;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp, Address};

/// Resident memory in bytes, from /proc/self/statm.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Channel ends established on each side (their encryptor addresses), gathered by
/// [`pump`].
#[derive(Default)]
struct Established {
    /// Whether to keep the addresses (they take memory of their own) or only count.
    keep: bool,
    count: usize,
    a: Vec<Address>,
    b: Vec<Address>,
}

/// Carries bytes both ways until nothing moves; deliveries are taken at once.
fn pump(
    a: &mut NodeCore,
    b: &mut NodeCore,
    a_conn: onward_protocol::node::ConnectionId,
    b_conn: onward_protocol::node::ConnectionId,
    now: Instant,
    established: &mut Established,
) -> usize {
    let mut delivered = 0;
    loop {
        let mut moved = false;
        while let Some(out) = a.poll_output() {
            match out {
                Output::Transmit { bytes, .. } => {
                    b.handle_received(b_conn, &bytes, now);
                    a.handle_written(a_conn, bytes.len(), now);
                    moved = true;
                }
                Output::Deliver { address, .. } => {
                    a.handle_consumed(&address, now);
                    delivered += 1;
                }
                Output::Event(NodeEvent::ChannelEstablished { address, .. }) => {
                    established.count += 1;
                    if established.keep {
                        established.a.push(address);
                    }
                }
                _ => {}
            }
        }
        while let Some(out) = b.poll_output() {
            match out {
                Output::Transmit { bytes, .. } => {
                    a.handle_received(a_conn, &bytes, now);
                    b.handle_written(b_conn, bytes.len(), now);
                    moved = true;
                }
                Output::Deliver { address, .. } => {
                    b.handle_consumed(&address, now);
                    delivered += 1;
                }
                Output::Event(NodeEvent::ChannelEstablished { address, .. })
                    if established.keep =>
                {
                    established.b.push(address);
                }
                _ => {}
            }
        }
        if !moved {
            return delivered;
        }
    }
}

/// Establishes `channels` channels between two fresh node cores and returns the growth
/// of resident memory per endpoint, and (if `messages` is not 0) what that many
/// messages each way on every channel add per endpoint. The two cores are returned, to be dropped only after
/// every measurement (freed memory would be reused by the next one, unseen).
fn measure(channels: usize, messages: usize) -> (f64, f64, (NodeCore, NodeCore)) {
    let now = Instant::now();
    // The clock stands still while every channel opens, so to the listener all the
    // hellos arrive within one second: past `cookie_threshold` it would answer with
    // cookies and, at `cookie_hellos_per_source`, leave the rest for a later second
    // that never comes. Cookies change nothing in an established channel's memory.
    let config = NodeConfig {
        max_channels: channels + 10,
        cookie_threshold: None,
        ..NodeConfig::default()
    };
    let mut a = NodeCore::new(config.clone(), Box::new(SeededRandom::new(1)));
    let mut b = NodeCore::new(config, Box::new(SeededRandom::new(2)));
    let alice = Arc::new(Identity::generate().unwrap());
    let bob = Arc::new(Identity::generate().unwrap());
    b.create_channel_listener(
        Address::local("secure"),
        bob,
        Arc::new(TrustEveryone),
        ChannelConfig::default(),
        ChannelRules::new(),
        now,
    )
    .unwrap();
    // Open the connection with a first message so both cores know it.
    a.register(Address::local("app"), Access::anyone(), now)
        .unwrap();
    b.register(Address::local("sink"), Access::anyone(), now)
        .unwrap();
    let hello = onward_protocol::TransportMessage::new(
        route![tcp("b:4000"), "nobody"],
        route!["app"],
        vec![],
    );
    a.handle_send(&Address::local("app"), hello, now).unwrap();
    let Some(Output::Connect {
        connection: a_conn, ..
    }) = a.poll_output()
    else {
        panic!("expected a connect")
    };
    let b_conn = b.handle_incoming_connection("a:1".into(), now);
    a.handle_connected(a_conn, now);
    let mut established = Established {
        keep: messages > 0,
        ..Established::default()
    };
    pump(&mut a, &mut b, a_conn, b_conn, now, &mut established);

    let before = resident();
    for _ in 0..channels {
        a.create_channel(
            route![tcp("b:4000"), "secure"],
            alice.clone(),
            Arc::new(TrustEveryone),
            &ChannelConfig::default(),
            ChannelRules::new(),
            now,
        )
        .unwrap();
        pump(&mut a, &mut b, a_conn, b_conn, now, &mut established);
    }
    let after = resident();
    assert_eq!(established.count, channels);
    assert_eq!(a.channel_count() + b.channel_count(), 2 * channels);
    let endpoints = (2 * channels) as f64;
    let idle = after.saturating_sub(before) as f64 / endpoints;
    if messages == 0 {
        return (idle, 0.0, (a, b));
    }
    // `messages` each way on every channel, then the growth since establishment.
    let ends = std::mem::take(&mut established);
    let mut delivered = 0;
    for (ours, theirs) in ends
        .a
        .iter()
        .zip(&ends.b)
        .flat_map(|pair| std::iter::repeat_n(pair, messages))
    {
        let to_b = onward_protocol::TransportMessage::new(
            route![ours.clone(), "sink"],
            route!["app"],
            vec![1; 64],
        );
        a.handle_send(&Address::local("app"), to_b, now).unwrap();
        let to_a = onward_protocol::TransportMessage::new(
            route![theirs.clone(), "app"],
            route!["sink"],
            vec![2; 64],
        );
        b.handle_send(&Address::local("sink"), to_a, now).unwrap();
        delivered += pump(&mut a, &mut b, a_conn, b_conn, now, &mut established);
    }
    assert_eq!(delivered, 2 * channels * messages);
    let used = resident();
    (idle, used.saturating_sub(after) as f64 / endpoints, (a, b))
}

fn main() {
    let channels = if quick() { 200 } else { 10_000 };
    // Idle: the addresses are not kept, so nothing but the channels grows.
    let (idle, _, first) = measure(channels, 0);
    let mut report = Report::default();
    report.add(Figure {
        bench: "memory",
        name: format!("resident memory per idle channel endpoint ({channels} channels)"),
        value: idle,
        unit: "bytes",
        peer: "target 2 KiB".into(),
        peer_value: 2048.0,
        target: Some(1.0),
        lower_is_better: true,
    });
    // Used: another pair of nodes each time, whose addresses are kept to send on each
    // channel; what sending adds is measured from the point the channels are
    // established. Every pair is kept until the end, so that memory freed by one is
    // not reused, unseen, by the next.
    let mut pairs = vec![first];
    for (messages, words) in [(1, "one message"), (8, "eight messages")] {
        let (_, added, pair) = measure(channels, messages);
        pairs.push(pair);
        report.add(Figure {
            bench: "memory",
            name: format!(
                "resident memory per channel endpoint after {words} each way ({channels} channels)"
            ),
            value: idle + added,
            unit: "bytes",
            peer: "target 2 KiB".into(),
            peer_value: 2048.0,
            target: Some(1.0),
            lower_is_better: true,
        });
    }
    report.print_table();
}
