//! A listener under a hello flood, simulated deterministically: cookies keep the work
//! it does for unauthenticated hellos bounded while real handshakes still complete,
//! without an extra round trip when it is not under load; and the memory a flood
//! makes the node hold stays within its budget and comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::time::Duration;

use onward_protocol::framing::{FrameDecoder, PREAMBLE};
use onward_protocol::node::{Access, NodeConfig, NodeEvent};
use onward_protocol::{route, tcp, Route, TransportMessage};

use sim::{everyone, frame, identity, Behaviour, NodeId, Sim};

/// A hello record with ephemeral key bytes made from `n`, and a cookie if given.
fn hello(n: u64, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut record = vec![0x01, 0x01];
    for i in 0..4u64 {
        record.extend_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i).to_be_bytes());
    }
    record.extend_from_slice(cookie.unwrap_or_default());
    record
}

fn to_listener(record: Vec<u8>) -> Vec<u8> {
    frame(&TransportMessage::new(
        route!["secure"],
        route!["x"],
        record,
    ))
}

/// A raw attacker's view of what the node sent it: the cookie replies, in order.
struct Replies {
    decoder: FrameDecoder,
    read: usize,
}

impl Replies {
    fn new() -> Self {
        Self {
            decoder: FrameDecoder::default(),
            read: 0,
        }
    }

    /// The (echo, cookie) of each cookie reply received since the last call.
    fn take(&mut self, received: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.decoder.handle_bytes(&received[self.read..]).unwrap();
        self.read = received.len();
        std::iter::from_fn(|| self.decoder.poll_frame())
            .filter_map(|f| TransportMessage::decode(&f).ok())
            .filter(|m| m.payload.first() == Some(&0x05) && m.payload.len() == 49)
            .map(|m| (m.payload[1..17].to_vec(), m.payload[17..].to_vec()))
            .collect()
    }
}

struct World {
    sim: Sim,
    a: NodeId,
    b: NodeId,
}

fn world(seed: u64, config: NodeConfig) -> World {
    let mut sim = Sim::new(seed);
    let a = sim.add_node("a", None);
    let b = sim.add_node_with(
        "b",
        Some("b:4000"),
        NodeConfig {
            unproven_idle_timeout: Duration::MAX,
            ..config
        },
    );
    sim.add_worker(a, "app", Behaviour::Sink);
    sim.add_worker(b, "echoer", Behaviour::Echo);
    sim.add_channel_listener(b, "secure", identity(2), everyone());
    World { sim, a, b }
}

fn listener_route() -> Route {
    route![tcp("b:4000"), "secure"]
}

/// Without load, a handshake takes no cookie round trip.
#[test]
fn without_load_a_handshake_takes_no_cookie() {
    let mut w = world(301, NodeConfig::default());
    for _ in 0..5 {
        w.sim
            .establish(w.a, listener_route(), identity(1), everyone())
            .unwrap();
    }
    let stats = w.sim.core(w.b).stats();
    assert_eq!(stats.cookies_sent, 0);
    assert_eq!(stats.handshakes_answered, 5);
}

/// A flood of 11,000 hellos a second over four connections for three seconds, one of
/// them answering every cookie it gets: the listener answers with a handshake only
/// the hellos before it was loaded, the attacker's cookied hellos at the per-source
/// rate, and the real ones, which all complete, each within a few round trips.
#[test]
fn a_hello_flood_gets_cookies_and_real_handshakes_complete() {
    let config = NodeConfig::default();
    let per_source = u64::from(config.cookie_hellos_per_source);
    let half_open = config.max_half_open_per_listener;
    let mut w = world(302, config);
    let raws: Vec<_> = (0..4)
        .map(|_| {
            let r = w.sim.raw_connect("b:4000");
            w.sim.raw_send(r, &PREAMBLE);
            r
        })
        .collect();
    let mut replies = Replies::new();
    let mut sent_by_echo: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut real = Vec::new();
    let mut n = 0u64;
    let millis = 3000;
    for tick in 0..millis {
        for i in 0..11 {
            n += 1;
            let h = hello(n, None);
            if i % 4 == 0 {
                sent_by_echo.insert(h[2..18].to_vec(), n);
            }
            w.sim.raw_send(raws[i % 4], &to_listener(h));
        }
        // The first connection answers every cookie reply, as a determined attacker
        // would.
        let received = w.sim.raw(raws[0]).received.clone();
        for (echo, cookie) in replies.take(&received) {
            if let Some(&k) = sent_by_echo.get(&echo) {
                w.sim
                    .raw_send(raws[0], &to_listener(hello(k, Some(&cookie))));
            }
        }
        if tick % 100 == 50 {
            let (id, _) = w
                .sim
                .create_channel(w.a, listener_route(), identity(1), everyone())
                .unwrap();
            real.push((id, w.sim.now()));
        }
        w.sim.run_for(Duration::from_millis(1));
    }
    w.sim.run_for(Duration::from_millis(500));

    for (id, started) in &real {
        let Some(NodeEvent::ChannelEstablished { .. }) = w.sim.channel_outcome(w.a, *id) else {
            panic!(
                "{id:?} started at {started:?}: {:?}",
                w.sim.channel_outcome(w.a, *id)
            );
        };
    }
    let stats = w.sim.core(w.b).stats();
    let seconds = (millis / 1000 + 1) as u64;
    let flood = n;
    let answered = stats.handshakes_answered;
    assert!(
        answered <= half_open as u64 / 2 + per_source * seconds + real.len() as u64,
        "{answered} handshakes for {flood} hellos"
    );
    assert!(stats.cookies_sent >= flood - answered, "{stats:?}");
    assert!(
        stats.hellos_deferred > 0 && stats.hellos_rate_limited > 0,
        "the cookied flood waited, and was dropped past what may wait: {stats:?}"
    );
    // Nothing that mattered was lost: the listener's node holds what it did before.
    assert!(w.sim.core(w.b).memory_in_use() < 64 * 1024);
}

/// A real initiator under load: its first hello gets a cookie reply, its second (with
/// the cookie) a handshake; the channel carries messages.
#[test]
fn an_initiator_answers_a_cookie_and_its_channel_carries_messages() {
    let mut w = world(
        303,
        NodeConfig {
            // Every hello finds the listener loaded.
            cookie_threshold: Some(0),
            ..NodeConfig::default()
        },
    );
    let channel = w
        .sim
        .establish(w.a, listener_route(), identity(1), everyone())
        .unwrap();
    let stats = w.sim.core(w.b).stats();
    assert_eq!((stats.cookies_sent, stats.handshakes_answered), (1, 1));
    w.sim
        .send(
            w.a,
            "app",
            route![channel, "echoer"],
            b"after a cookie".to_vec(),
        )
        .unwrap();
    w.sim.run_until_idle();
    assert_eq!(
        w.sim.mailbox(w.a, "app").payloads(),
        vec![b"after a cookie".to_vec()]
    );
}

/// A plain connection that carries nothing for minutes stays open when its dialler
/// sends keepalives (every 20 s at most 40 s apart, within the listener's 60 s idle
/// deadline for connections that authenticated nothing), and is closed at that
/// deadline when it does not.
#[test]
fn keepalives_keep_a_quiet_plain_connection_open() {
    for keepalives in [true, false] {
        let mut sim = Sim::new(304);
        sim.keepalives = true;
        let a = sim.add_node_with(
            "a",
            None,
            NodeConfig {
                keepalive_interval: if keepalives {
                    Duration::from_secs(20)
                } else {
                    Duration::MAX
                },
                ..NodeConfig::default()
            },
        );
        let b = sim.add_node("b", Some("b:4000"));
        sim.add_worker(a, "app", Behaviour::Sink);
        sim.add_worker_with(b, "plain", Behaviour::Sink, Access::anyone());
        sim.send(a, "app", route![tcp("b:4000"), "plain"], b"hi".to_vec())
            .unwrap();
        sim.run_for(Duration::from_secs(1));
        assert_eq!(sim.mailbox(b, "plain").payloads().len(), 1);
        sim.run_for(Duration::from_secs(300));
        let closed = sim.events(b).any(|e| {
            matches!(e, NodeEvent::ConnectionClosed { error: Some(reason), .. }
                if reason.contains("authenticated nothing"))
        });
        if keepalives {
            assert_eq!(sim.pipes_between(a, b), 1, "still open after 5 minutes");
            assert!(!closed);
            // And it still carries messages.
            sim.send(a, "app", route![tcp("b:4000"), "plain"], b"later".to_vec())
                .unwrap();
            sim.run_for(Duration::from_secs(1));
            assert_eq!(sim.mailbox(b, "plain").payloads().len(), 2);
        } else {
            assert_eq!(sim.pipes_between(a, b), 0);
            assert!(closed, "closed for silence");
        }
    }
}

/// A busy initiator under load: 100 channels at once from one node, past its source's
/// 64 answered hellos a second. The rest wait for the next second; all 100 channels
/// open, none fails.
#[test]
fn a_busy_initiator_under_load_is_slowed_not_failed() {
    let mut w = world(
        305,
        NodeConfig {
            cookie_threshold: Some(0),
            ..NodeConfig::default()
        },
    );
    let ids: Vec<_> = (0..100)
        .map(|_| {
            w.sim
                .create_channel(w.a, listener_route(), identity(1), everyone())
                .unwrap()
                .0
        })
        .collect();
    w.sim.run_for(Duration::from_secs(3));
    for id in &ids {
        assert!(
            matches!(
                w.sim.channel_outcome(w.a, *id),
                Some(NodeEvent::ChannelEstablished { .. })
            ),
            "{id:?}: {:?}",
            w.sim.channel_outcome(w.a, *id)
        );
    }
    let stats = w.sim.core(w.b).stats();
    assert_eq!(stats.hellos_deferred, 36, "{stats:?}");
    assert_eq!(stats.hellos_rate_limited, 0);
    assert_eq!(stats.handshakes_answered, 100);
}
