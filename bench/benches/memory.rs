//! Memory for idle channels: two node cores joined in memory establish 10,000 secure
//! channels, and the growth of resident memory is divided among the 20,000 channel
//! endpoints. The peer figure is the target itself (2 KiB per endpoint).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use onward_bench::{quick, Figure, Report};
use onward_protocol::channel::ChannelConfig;
use onward_protocol::identity::Identity;
use onward_protocol::node::{NodeConfig, NodeCore, NodeEvent, Output};
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

fn pump(
    a: &mut NodeCore,
    b: &mut NodeCore,
    a_conn: onward_protocol::node::ConnectionId,
    b_conn: onward_protocol::node::ConnectionId,
    now: Instant,
) -> usize {
    let mut established = 0;
    loop {
        let mut moved = false;
        while let Some(out) = a.poll_output() {
            match out {
                Output::Transmit { bytes, .. } => {
                    b.handle_received(b_conn, &bytes, now);
                    a.handle_written(a_conn, bytes.len(), now);
                    moved = true;
                }
                Output::Event(NodeEvent::ChannelEstablished { .. }) => established += 1,
                _ => {}
            }
        }
        while let Some(out) = b.poll_output() {
            if let Output::Transmit { bytes, .. } = out {
                a.handle_received(a_conn, &bytes, now);
                b.handle_written(b_conn, bytes.len(), now);
                moved = true;
            }
        }
        if !moved {
            return established;
        }
    }
}

fn main() {
    let channels = if quick() { 200 } else { 10_000 };
    let now = Instant::now();
    let config = NodeConfig {
        max_channels: channels + 10,
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
    )
    .unwrap();
    // Open the connection with a first message so both cores know it.
    a.register(Address::local("app")).unwrap();
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
    pump(&mut a, &mut b, a_conn, b_conn, now);

    let before = resident();
    let mut established = 0;
    for _ in 0..channels {
        a.create_channel(
            route![tcp("b:4000"), "secure"],
            alice.clone(),
            Arc::new(TrustEveryone),
            &ChannelConfig::default(),
            now,
        )
        .unwrap();
        established += pump(&mut a, &mut b, a_conn, b_conn, now);
    }
    let after = resident();
    assert_eq!(established, channels);
    assert_eq!(a.channel_count() + b.channel_count(), 2 * channels);
    let per_endpoint = after.saturating_sub(before) as f64 / (2 * channels) as f64;
    let mut report = Report::default();
    report.add(Figure {
        bench: "memory",
        name: format!("resident memory per idle channel endpoint ({channels} channels)"),
        value: per_endpoint,
        unit: "bytes",
        peer: "target 2 KiB".into(),
        peer_value: 2048.0,
        target: Some(1.0),
        lower_is_better: true,
    });
    report.print_table();
}
