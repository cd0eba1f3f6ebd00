//! The memory budget: what it counts, what is refused or shed at it, and that the
//! bytes come back.

use super::*;

/// A frame header claiming `len` bytes, after the preamble, and `sent` of them.
fn half_frame(len: u32, sent: usize) -> Vec<u8> {
    let mut bytes = crate::framing::PREAMBLE.to_vec();
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend(std::iter::repeat_n(0u8, sent));
    bytes
}

fn closed(outputs: &[Output], id: ConnectionId) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Close { connection } if *connection == id))
}

/// A core with `memory_budget` (keepalives off), a mailbox "app" that takes anything,
/// and an open connection it dialled to "b:4000", which is handed a message of
/// `payload` bytes and reports nothing written. Returns the core and the connection.
fn dialled(memory_budget: usize, payload: usize, now: Instant) -> (NodeCore, ConnectionId) {
    let mut core = core(NodeConfig {
        memory_budget,
        keepalive_interval: Duration::MAX,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    core.handle_send(&app(), to_b(payload), now).unwrap();
    let Some(Output::Connect { connection, .. }) = drain(&mut core).into_iter().next() else {
        panic!("a connect");
    };
    core.handle_connected(connection, now);
    let _ = drain(&mut core);
    (core, connection)
}

/// A message from "app" to "x" on the node at "b:4000", of `payload` bytes.
fn to_b(payload: usize) -> TransportMessage {
    TransportMessage::new(route![tcp("b:4000"), "x"], route!["app"], vec![0; payload])
}

/// Peers that authenticated nothing and leave frames half sent hold at most a quarter
/// of the budget: the connection whose bytes would pass it is closed, the others
/// keep theirs, and every byte comes back when they go.
#[test]
fn half_sent_frames_hold_at_most_the_unauthenticated_share() {
    let now = Instant::now();
    let budget = 1 << 20;
    let mut core = core(NodeConfig {
        memory_budget: budget,
        ..NodeConfig::default()
    });
    let mut open = Vec::new();
    for i in 0..10 {
        let id = core.handle_incoming_connection(format!("10.0.0.{i}:1"), now);
        let _ = drain(&mut core);
        // 100,000 bytes of a 200,000-byte frame each: the third would pass 256 KiB.
        core.handle_received(id, &half_frame(200_000, 100_000), now);
        let outputs = drain(&mut core);
        assert!(
            core.memory_unauthenticated() <= budget / 4,
            "after connection {i}: {} bytes",
            core.memory_unauthenticated()
        );
        if closed(&outputs, id) {
            assert!(outputs.iter().any(|o| matches!(o,
                Output::Event(NodeEvent::ConnectionClosed { error: Some(e), .. })
                    if e.contains("memory budget") && e.contains("authenticated nothing"))));
        } else {
            open.push(id);
        }
    }
    assert_eq!(
        open.len(),
        2,
        "two half frames fit in 256 KiB, a third does not"
    );
    assert_eq!(core.stats().connections_shed, 8);
    assert_eq!(core.memory_in_use(), core.memory_unauthenticated());
    assert!(core.memory_in_use() >= 200_000);
    for id in open {
        core.handle_connection_closed(id, None, now);
    }
    assert_eq!(core.memory_in_use(), 0, "all of it came back");
    assert_eq!(core.memory_unauthenticated(), 0);
}

/// Past the frame's deadline a half-sent frame goes with its connection, and its
/// bytes with it.
#[test]
fn a_half_sent_frame_is_returned_at_its_deadline() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    let id = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    core.handle_received(id, &half_frame(100_000, 60_000), now);
    // The half frame, and the preamble this node sent and the peer has not taken.
    assert_eq!(
        core.memory_in_use(),
        60_000 + PREAMBLE.len() + crate::node::budget::TRANSMIT_OVERHEAD
    );
    let deadline = core.poll_timeout().expect("a deadline");
    core.handle_timeout(deadline);
    assert_eq!(core.connection_count(), 0);
    assert_eq!(core.memory_in_use(), 0);
}

/// A peer that never reads: its backlog grows up to the budget, then sends to it are
/// refused with the budget named, and written bytes come back.
#[test]
fn unsent_bytes_are_refused_at_the_budget_and_come_back_when_written() {
    let now = Instant::now();
    let (mut core, connection) = dialled(100_000, 9_000, now);
    let mut sent = 1;
    let error = loop {
        match core.handle_send(&app(), to_b(9_000), now) {
            Ok(()) => sent += 1,
            Err(error) => break error,
        }
    };
    assert_eq!(
        sent, 10,
        "ten 9,000-byte messages and their overhead fit in 100,000 bytes"
    );
    assert!(
        matches!(
            error,
            NodeError::MemoryBudget {
                share: BudgetShare::Node,
                limit: 100_000,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("the node holds"));
    assert_eq!(core.stats().memory_refusals, 1);
    let held = core.memory_in_use();
    assert!(held <= 100_000 && held > 90_000, "{held}");
    let _ = drain(&mut core);
    core.handle_written(connection, held, now);
    assert_eq!(core.memory_in_use(), 0);
    core.handle_send(&app(), to_b(9_000), now).unwrap();
}

/// A mailbox's unread bytes count: a local sender is refused at its byte share, a
/// message from a connection waits for room, and consuming gives the bytes back.
#[test]
fn mailbox_bytes_are_a_share_of_the_budget() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_mailbox_bytes: 50_000,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let big = || TransportMessage::new(route!["app"], route!["app"], vec![0; 20_000]);
    core.handle_send(&app(), big(), now).unwrap();
    core.handle_send(&app(), big(), now).unwrap();
    let error = core.handle_send(&app(), big(), now).unwrap_err();
    assert!(
        matches!(&error, NodeError::MemoryBudget { share: BudgetShare::Mailbox(a), .. } if *a == app()),
        "{error}"
    );
    let held = core.memory_in_use();
    assert_eq!(held, 2 * crate::node::budget::message_cost(&big()));
    // The same message from a connection waits, and its connection is paused.
    let id = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    core.handle_written(id, PREAMBLE.len(), now);
    core.handle_received(id, &frames(&[big()]), now);
    assert!(core.is_reading_paused(id));
    assert!(core.memory_in_use() > held, "a stalled message is held too");
    let _ = drain(&mut core);
    core.handle_consumed(&app(), now);
    assert!(!core.is_reading_paused(id), "room for it now");
    let delivered = drain(&mut core)
        .into_iter()
        .filter(|o| matches!(o, Output::Deliver { .. }))
        .count();
    assert_eq!(delivered, 1);
    core.handle_consumed(&app(), now);
    core.handle_consumed(&app(), now);
    assert_eq!(core.memory_in_use(), 0);
}

/// A message from a connection that finds the node's budget spent waits, as at a full
/// mailbox, and goes on when bytes are written.
#[test]
fn a_message_from_a_connection_waits_for_the_budget() {
    let now = Instant::now();
    // A backlog to a peer that does not read.
    let (mut core, out) = dialled(50_000, 40_000, now);
    let id = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    let message = TransportMessage::new(route!["app"], route![], vec![0; 15_000]);
    core.handle_received(id, &frames(&[message]), now);
    assert!(
        core.is_reading_paused(id),
        "no room in the budget: it waits"
    );
    assert!(!drain(&mut core)
        .iter()
        .any(|o| matches!(o, Output::Deliver { .. })));
    core.handle_written(out, 40_000, now);
    assert!(!core.is_reading_paused(id));
    assert!(drain(&mut core)
        .iter()
        .any(|o| matches!(o, Output::Deliver { .. })));
}

/// Replies to peers that authenticated nothing and do not read fill the quarter of the
/// budget those peers share; a reply to a newcomer then sheds the largest holder,
/// with that share named, and goes out. A reply that finds its own connection the
/// largest holder sheds it, and is refused.
#[test]
fn a_full_unauthenticated_share_sheds_its_largest_holder() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        memory_budget: 400_000,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    // Each peer asks "app" once; the way back to it is the reply's route.
    let ask = |core: &mut NodeCore, peer: &str| {
        let id = core.handle_incoming_connection(peer.into(), now);
        let ask = TransportMessage::new(route!["app"], route!["x"], vec![1]);
        core.handle_received(id, &frames(&[ask]), now);
        let back = drain(core)
            .into_iter()
            .find_map(|o| match o {
                Output::Deliver { message, .. } => Some(message.return_route),
                _ => None,
            })
            .expect("delivered");
        (id, back)
    };
    let (hog, to_hog) = ask(&mut core, "10.0.0.1:1");
    let reply = |back: &Route| TransportMessage::new(back.clone(), route!["app"], vec![0; 10_000]);
    // The hog never reads: its replies pile up to the share.
    let mut sent = 0;
    while core.memory_unauthenticated() + 10_200 <= 100_000 {
        core.handle_send(&app(), reply(&to_hog), now).unwrap();
        sent += 1;
    }
    assert_eq!(sent, 9);
    // A newcomer's reply needs room: the hog goes, the reply goes out.
    let (newcomer, to_newcomer) = ask(&mut core, "10.0.0.2:1");
    core.handle_send(&app(), reply(&to_newcomer), now).unwrap();
    let outputs = drain(&mut core);
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Close { connection } if *connection == hog)));
    assert!(outputs.iter().any(|o| matches!(o,
        Output::Event(NodeEvent::ConnectionClosed { error: Some(e), .. })
            if e.contains("authenticated nothing") && e.contains("the most"))));
    assert_eq!(core.connection_count(), 1);
    assert_eq!(core.stats().connections_shed, 1);
    assert!(core.memory_unauthenticated() <= 100_000);
    // The newcomer does not read either: at the share, it is the largest holder.
    let error = loop {
        if let Err(error) = core.handle_send(&app(), reply(&to_newcomer), now) {
            break error;
        }
    };
    assert!(
        matches!(
            error,
            NodeError::MemoryBudget {
                share: BudgetShare::Unauthenticated,
                limit: 100_000,
                ..
            }
        ),
        "{error}"
    );
    assert!(core.connection_peer(newcomer).is_none(), "shed");
    assert_eq!(core.stats().memory_refusals, 1);
    // What is left is the two asks, until "app" takes them.
    core.handle_consumed(&app(), now);
    core.handle_consumed(&app(), now);
    assert_eq!(core.memory_in_use(), 0);
}

/// A partial frame on a connection this node dialled is not in the unauthenticated
/// share, but the node's budget holds for it too: past it, the connection is closed
/// with the node's budget named.
#[test]
fn a_partial_frame_past_the_node_budget_is_shed() {
    let now = Instant::now();
    let (mut core, connection) = dialled(100_000, 1, now);
    core.handle_received(connection, &half_frame(200_000, 90_000), now);
    assert_eq!(core.connection_count(), 1, "within the budget");
    core.handle_received(connection, &[0; 20_000], now);
    let outputs = drain(&mut core);
    assert!(closed(&outputs, connection));
    assert!(outputs.iter().any(|o| matches!(o,
        Output::Event(NodeEvent::ConnectionClosed { error: Some(e), .. })
            if e.contains("the node holds"))));
    assert_eq!(core.stats().connections_shed, 1);
    assert_eq!(core.memory_in_use(), 0);
}

/// A message that waited for the node's budget past `max_stall` is dropped and
/// reported as a budget refusal, not as a full mailbox (which it was not).
#[test]
fn a_wait_for_the_budget_that_times_out_names_the_budget() {
    let now = Instant::now();
    // A backlog to a peer that does not read.
    let (mut core, _) = dialled(50_000, 40_000, now);
    let id = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    let message = TransportMessage::new(route!["app"], route![], vec![0; 15_000]);
    core.handle_received(id, &frames(&[message]), now);
    assert!(core.is_reading_paused(id));
    let _ = drain(&mut core);
    let deadline = now + core.config().max_stall;
    core.handle_timeout(deadline);
    let failed = drain(&mut core).into_iter().find_map(|o| match o {
        Output::Event(NodeEvent::DeliveryFailed { error, .. }) => Some(error),
        _ => None,
    });
    assert!(
        matches!(
            failed,
            Some(NodeError::MemoryBudget {
                share: BudgetShare::Node,
                ..
            })
        ),
        "{failed:?}"
    );
    assert!(!core.is_reading_paused(id));
    // Nothing was delivered, and the refusal was counted as the budget's.
    assert_eq!(core.mailbox_unread(&app()), Some(0));
    assert_eq!(core.stats().memory_refusals, 1);
}
