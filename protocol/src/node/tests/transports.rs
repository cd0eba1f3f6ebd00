//! Pluggable transports: adding them, a stream transport other than TCP, and a
//! message transport's inbox and units, with the bad units a broker may hold.

use super::*;
use crate::framing::DEFAULT_MAX_FRAME_LEN;

/// The message transport of these tests.
const BROKER: TransportType = TransportType(9);
/// A stream transport other than TCP.
const PIPE: TransportType = TransportType(7);

fn on(transport: TransportType, value: &str) -> Address {
    Address::new(transport, value.as_bytes().to_vec()).unwrap()
}

/// A core with the broker transport added and its inbox open; returns the inbox's id.
fn broker_node(seed: u64, inbox: &str, now: Instant) -> (NodeCore, ConnectionId) {
    let mut core = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(seed)));
    core.add_transport(BROKER, TransportKind::Message).unwrap();
    let id = core.open_inbox(BROKER, inbox.into(), now).unwrap();
    (core, id)
}

/// The units `core` asks to send, each with the peer of its connection (as the core
/// names it: the address's text), reporting each connection connected and each unit
/// written, as a broker adapter does.
fn units(core: &mut NodeCore, now: Instant) -> Vec<(String, Vec<u8>)> {
    let mut sent = Vec::new();
    loop {
        let outputs = drain(core);
        if outputs.is_empty() {
            return sent;
        }
        for output in outputs {
            match output {
                Output::Connect { connection, .. } => core.handle_connected(connection, now),
                Output::Transmit { connection, bytes } => {
                    let peer = core.connection_peer(connection).unwrap().0.to_owned();
                    core.handle_written(connection, bytes.len(), now);
                    sent.push((peer, bytes));
                }
                _ => {}
            }
        }
    }
}

fn delivered(outputs: Vec<Output>) -> Vec<TransportMessage> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Deliver { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[test]
fn only_real_transport_types_can_be_added_and_each_once() {
    let mut core = core(NodeConfig::default());
    assert_eq!(
        core.transport_kind(TransportType::TCP),
        Some(TransportKind::Stream)
    );
    for not_a_transport in [TransportType::LOCAL, crate::report::REPORT_TRANSPORT] {
        assert!(matches!(
            core.add_transport(not_a_transport, TransportKind::Stream),
            Err(NodeError::TransportNotAvailable { transport, .. }) if transport == not_a_transport
        ));
    }
    assert!(matches!(
        core.add_transport(TransportType::TCP, TransportKind::Message),
        Err(NodeError::TransportExists(TransportType::TCP))
    ));
    assert_eq!(
        core.transport_kind(TransportType::TCP),
        Some(TransportKind::Stream)
    );
    core.add_transport(PIPE, TransportKind::Stream).unwrap();
    assert_eq!(core.transport_kind(PIPE), Some(TransportKind::Stream));
    // An inbox is only for a message transport.
    let now = Instant::now();
    assert!(matches!(
        core.open_inbox(PIPE, "x".into(), now),
        Err(NodeError::TransportNotAvailable {
            needed: "message",
            ..
        })
    ));
    assert!(matches!(
        core.open_inbox(BROKER, "x".into(), now),
        Err(NodeError::TransportNotAvailable { .. })
    ));
}

#[test]
fn a_type_that_was_not_added_is_still_unsupported() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::local_only(), now).unwrap();
    let message = TransportMessage::new(route![on(PIPE, "p"), "x"], route!["app"], vec![1]);
    assert!(matches!(
        core.handle_send(&app(), message, now),
        Err(NodeError::UnsupportedTransport(a)) if a == on(PIPE, "p")
    ));
    // A listener of a type the node does not carry as a stream: closed at once.
    let id = core.handle_incoming_stream(PIPE, "somebody".into(), now);
    assert!(matches!(drain(&mut core)[..], [Output::Close { connection }] if connection == id));
    assert_eq!(core.stats().connections_refused, 1);
}

#[test]
fn a_stream_transport_is_routed_like_tcp_preamble_first() {
    let now = Instant::now();
    let mut a = core(NodeConfig::default());
    let mut b = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(8)));
    for core in [&mut a, &mut b] {
        core.add_transport(PIPE, TransportKind::Stream).unwrap();
    }
    a.register(app(), Access::local_only(), now).unwrap();
    b.register(Address::local("echoer"), Access::anyone(), now)
        .unwrap();
    let message = TransportMessage::new(
        route![on(PIPE, "/b.sock"), "echoer"],
        route!["app"],
        vec![5],
    );
    a.handle_send(&app(), message, now).unwrap();
    let Some(Output::Connect { connection, peer }) = a.poll_output() else {
        panic!("a connect first")
    };
    assert_eq!(peer, on(PIPE, "/b.sock"));
    assert!(a.congestion(&route![on(PIPE, "/b.sock")]).is_none());
    a.handle_connected(connection, now);
    let transmits: Vec<Vec<u8>> = drain(&mut a)
        .into_iter()
        .filter_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(transmits[0], PREAMBLE, "the preamble first, as on TCP");
    let incoming = b.handle_incoming_stream(PIPE, "a".into(), now);
    for bytes in &transmits {
        b.handle_received(incoming, bytes, now);
    }
    let got = delivered(drain(&mut b));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, [5]);
    // A failure names the address's text.
    a.handle_connection_closed(connection, Some("gone"), now);
    let closed = drain(&mut a).into_iter().any(|o| {
        matches!(o, Output::Event(NodeEvent::ConnectionClosed { peer, .. }) if peer == "7#/b.sock")
    });
    assert!(closed);
}

#[test]
fn units_go_to_the_peer_inbox_and_replies_come_back_to_the_sender_inbox() {
    let now = Instant::now();
    let (mut a, _) = broker_node(1, "a", now);
    let (mut b, b_inbox) = broker_node(2, "b", now);
    a.register(app(), Access::local_only(), now).unwrap();
    b.register(Address::local("echoer"), Access::anyone(), now)
        .unwrap();
    let message = TransportMessage::new(route![on(BROKER, "b"), "echoer"], route!["app"], vec![1]);
    a.handle_send(&app(), message, now).unwrap();
    let sent = units(&mut a, now);
    assert_eq!(sent.len(), 1, "one unit, no preamble, no keepalive");
    let (to, unit) = sent.into_iter().next().unwrap();
    assert_eq!(to, "9#b");
    assert_eq!(
        crate::framing::check_unit(&unit, DEFAULT_MAX_FRAME_LEN).unwrap() + 4,
        unit.len()
    );
    b.handle_unit(b_inbox, on(BROKER, "a"), unit, now);
    let got = delivered(drain(&mut b));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].return_route, route![on(BROKER, "a"), "app"]);
    // The inbox's own alias leads nowhere: nothing can be routed into an inbox.
    assert!(!b
        .targets
        .values()
        .any(|t| matches!(t, Target::Connection(c) if *c == b_inbox)));
    // The reply goes to A's inbox.
    let reply = TransportMessage::new(got[0].return_route.clone(), route!["echoer"], vec![2]);
    b.handle_send(&Address::local("echoer"), reply, now)
        .unwrap();
    let sent = units(&mut b, now);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "9#a");
}

#[test]
fn bad_units_are_dropped_and_counted_and_the_inbox_goes_on() {
    let now = Instant::now();
    let (mut b, inbox) = broker_node(2, "b", now);
    b.register(Address::local("echoer"), Access::anyone(), now)
        .unwrap();
    let good = frames(&[TransportMessage::new(route!["echoer"], route![], vec![7])])
        [PREAMBLE.len()..]
        .to_vec();
    let mut too_long_prefix = good.clone();
    too_long_prefix[3] += 1;
    let mut flipped = good.clone();
    flipped[4] ^= 0x80; // the envelope's first byte
    let oversized = {
        let mut unit = (DEFAULT_MAX_FRAME_LEN + 1).to_be_bytes().to_vec();
        unit.resize(4 + DEFAULT_MAX_FRAME_LEN as usize + 1, 0);
        unit
    };
    let bad: Vec<(Address, Vec<u8>)> = vec![
        (on(BROKER, "a"), Vec::new()),
        (on(BROKER, "a"), good[..3].to_vec()),
        (on(BROKER, "a"), good[..good.len() - 1].to_vec()),
        (on(BROKER, "a"), too_long_prefix),
        (on(BROKER, "a"), flipped),
        (on(BROKER, "a"), oversized),
        (on(BROKER, "a"), [good.clone(), good.clone()].concat()),
        // A sender that is no message transport's address.
        (tcp("a:1"), good.clone()),
        (Address::local("a"), good.clone()),
    ];
    let n = bad.len() as u64;
    for (from, unit) in bad {
        b.handle_unit(inbox, from, unit, now);
    }
    assert!(delivered(drain(&mut b)).is_empty());
    assert_eq!(b.stats().units_refused, n);
    assert_eq!(b.connection_count(), 1, "the inbox is still open");
    b.handle_unit(inbox, on(BROKER, "a"), good, now);
    assert_eq!(delivered(drain(&mut b)).len(), 1, "and still delivers");
    assert_eq!(b.stats().units_refused, n);
}

#[test]
fn a_full_mailbox_pauses_the_inbox_and_units_meanwhile_are_refused() {
    let now = Instant::now();
    let config = NodeConfig {
        mailbox_capacity: 1,
        ..NodeConfig::default()
    };
    let mut b = NodeCore::new(config, Box::new(SeededRandom::new(2)));
    b.add_transport(BROKER, TransportKind::Message).unwrap();
    let inbox = b.open_inbox(BROKER, "b".into(), now).unwrap();
    let echoer = Address::local("echoer");
    b.register(echoer.clone(), Access::anyone(), now).unwrap();
    let unit = |n: u8| {
        frames(&[TransportMessage::new(route!["echoer"], route![], vec![n])])[PREAMBLE.len()..]
            .to_vec()
    };
    b.handle_unit(inbox, on(BROKER, "a"), unit(1), now);
    b.handle_unit(inbox, on(BROKER, "a"), unit(2), now);
    let outputs = drain(&mut b);
    assert_eq!(delivered_count(&outputs), 1);
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::PauseReading { connection } if *connection == inbox)));
    // The adapter should have stopped reading: a unit now is not taken.
    b.handle_unit(inbox, on(BROKER, "a"), unit(3), now);
    assert_eq!(b.stats().units_refused, 1);
    b.handle_consumed(&echoer, now);
    let outputs = drain(&mut b);
    assert_eq!(
        delivered_count(&outputs),
        1,
        "the waiting unit's message goes on"
    );
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::ResumeReading { connection } if *connection == inbox)));
}

fn delivered_count(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::Deliver { .. }))
        .count()
}

/// A broker delivers at least once: a unit handed in twice carries a channel record
/// twice, and the replay window takes it once.
#[test]
fn a_unit_delivered_twice_reaches_the_worker_once_through_a_channel() {
    let now = Instant::now();
    let (mut a, a_inbox) = broker_node(1, "a", now);
    let (mut b, b_inbox) = broker_node(2, "b", now);
    a.register(app(), Access::local_only(), now).unwrap();
    b.register(Address::local("echoer"), Access::secure_channels(), now)
        .unwrap();
    listen(&mut b, ChannelRules::new(), now).unwrap();
    let (_, encryptor) = open_channel(
        &mut a,
        route![on(BROKER, "b"), "secure"],
        ChannelRules::new(),
        now,
    )
    .unwrap();
    // Carry units both ways until the handshake is done.
    for _ in 0..4 {
        for (to, unit) in units(&mut a, now) {
            assert_eq!(to, "9#b");
            b.handle_unit(b_inbox, on(BROKER, "a"), unit, now);
        }
        for (to, unit) in units(&mut b, now) {
            assert_eq!(to, "9#a");
            a.handle_unit(a_inbox, on(BROKER, "b"), unit, now);
        }
    }
    assert!(matches!(
        a.channel_state(&encryptor),
        Some(ChannelState::Established(_))
    ));
    let secret = b"attack at dawn".to_vec();
    let message = TransportMessage::new(route![encryptor, "echoer"], route!["app"], secret.clone());
    a.handle_send(&app(), message, now).unwrap();
    let sent = units(&mut a, now);
    assert_eq!(sent.len(), 1);
    let unit = sent[0].1.clone();
    // The broker's view: the payload is not in the unit in clear.
    assert!(!unit.windows(secret.len()).any(|w| w == secret));
    let rejected = b.stats().records_rejected;
    b.handle_unit(b_inbox, on(BROKER, "a"), unit.clone(), now);
    b.handle_unit(b_inbox, on(BROKER, "a"), unit, now);
    let got = delivered(drain(&mut b));
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(got[0].payload, secret);
    assert_eq!(
        b.stats().records_rejected,
        rejected + 1,
        "the copy was a replay"
    );
}

/// A message transport forwards only for this node's senders and secure channels
/// until told otherwise: a plain message from a TCP connection whose next hop is a
/// broker address is refused and counted, and nothing is sent to the broker; once the
/// rule says anyone, it goes. TCP forwards for anyone from the start.
#[test]
fn a_broker_takes_plain_messages_from_connections_only_when_told_to() {
    let now = Instant::now();
    let (mut m, _) = broker_node(3, "m", now);
    assert!(matches!(
        m.set_forwarding(PIPE, Access::anyone()),
        Err(NodeError::TransportNotAvailable { .. })
    ));
    let id = m.handle_incoming_connection("a:1".into(), now);
    let _ = drain(&mut m);
    let plain =
        |n: u8| TransportMessage::new(route![on(BROKER, "victim"), "x"], route!["app"], vec![n]);
    m.handle_received(id, &frames(&[plain(1)]), now);
    let outputs = drain(&mut m);
    assert!(!outputs.iter().any(|o| matches!(o, Output::Connect { .. })));
    assert_eq!(m.stats().messages_refused, 1);
    // A sender on the node may.
    m.register(app(), Access::local_only(), now).unwrap();
    m.handle_send(&app(), plain(2), now).unwrap();
    assert_eq!(units(&mut m, now).len(), 1);
    m.set_forwarding(BROKER, Access::anyone()).unwrap();
    m.handle_received(id, &frames(&[plain(3)])[PREAMBLE.len()..], now);
    let sent = units(&mut m, now);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "9#victim");
    assert_eq!(m.stats().messages_refused, 1);
    // TCP: anyone, until told otherwise.
    m.handle_received(
        id,
        &frames(&[TransportMessage::new(
            route![tcp("c:1"), "x"],
            route![],
            vec![4],
        )])[PREAMBLE.len()..],
        now,
    );
    assert!(drain(&mut m)
        .iter()
        .any(|o| matches!(o, Output::Connect { peer, .. } if *peer == tcp("c:1"))));
    m.set_forwarding(TransportType::TCP, Access::secure_channels())
        .unwrap();
    m.handle_received(
        id,
        &frames(&[TransportMessage::new(
            route![tcp("d:1"), "x"],
            route![],
            vec![5],
        )])[PREAMBLE.len()..],
        now,
    );
    assert!(!drain(&mut m)
        .iter()
        .any(|o| matches!(o, Output::Connect { .. })));
    assert_eq!(m.stats().messages_refused, 2);
}

/// An incoming stream of another transport than TCP is named with its type (so a
/// report about it reads as its address), one of TCP by `host:port`; a stream that
/// does not speak onward, and one past the limit of incoming streams, are refused and
/// counted (past the limit of incoming streams: the next test); one that sent a whole frame is past its first-frame deadline.
#[test]
fn incoming_streams_are_named_refused_and_counted() {
    let now = Instant::now();
    let mut b = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(8)));
    b.add_transport(PIPE, TransportKind::Stream).unwrap();
    b.register(Address::local("echo"), Access::anyone(), now)
        .unwrap();
    let pipe = b.handle_incoming_stream(PIPE, "a".into(), now);
    let tcp_in = b.handle_incoming_connection("a:1".into(), now);
    assert_eq!(b.connection_peer(pipe).unwrap().0, "7#a");
    assert_eq!(b.connection_peer(tcp_in).unwrap().0, "a:1");
    let _ = drain(&mut b);
    b.handle_received(tcp_in, b"HTTP/1.1", now);
    assert_eq!(b.stats().connections_refused, 1, "not onward: refused");
    // A whole frame on the pipe: its first-frame deadline is gone, so time past it
    // does not close it.
    b.handle_received(
        pipe,
        &frames(&[TransportMessage::new(route!["echo"], route![], vec![1])]),
        now,
    );
    let later = now + NodeConfig::default().first_frame_timeout + Duration::from_secs(1);
    b.handle_timeout(later);
    assert!(
        b.connection_peer(pipe).is_some(),
        "a stream that sent a frame stays"
    );
    assert_eq!(b.stats().connections_timed_out, 0);
}

#[test]
fn past_the_limit_of_incoming_streams_with_none_to_evict_a_new_one_is_refused() {
    let now = Instant::now();
    let mut b = NodeCore::new(
        NodeConfig {
            max_incoming_connections: 0,
            ..NodeConfig::default()
        },
        Box::new(SeededRandom::new(8)),
    );
    let id = b.handle_incoming_connection("a:1".into(), now);
    assert!(matches!(drain(&mut b)[..], [Output::Close { connection }] if connection == id));
    assert_eq!(b.stats().connections_refused, 1);
}
