//! Connection budgets and deadlines, congestion, stalls, and the counters.

use super::*;

// ---- incoming connection budgets -------------------------------------------------------

/// At most `max_incoming_per_source` incoming connections from one address, whatever
/// their ports; other addresses are not affected, and a slot frees when one goes.
#[test]
fn incoming_connections_are_limited_per_source_address() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_incoming_per_source: 2,
        ..NodeConfig::default()
    });
    let closed = |core: &mut NodeCore, id: ConnectionId| {
        drain(core)
            .iter()
            .any(|o| matches!(o, Output::Close { connection } if *connection == id))
    };
    let first = core.handle_incoming_connection("10.0.0.1:1000".into(), now);
    let second = core.handle_incoming_connection("10.0.0.1:1001".into(), now);
    assert!(!closed(&mut core, first) && !closed(&mut core, second));
    let third = core.handle_incoming_connection("10.0.0.1:1002".into(), now);
    assert!(closed(&mut core, third), "a third from the same address");
    let v6 =
        ["[::1]:7", "[::1]:8", "[::1]:9"].map(|p| core.handle_incoming_connection(p.into(), now));
    assert!(closed(&mut core, v6[2]), "a third from ::1");
    let other = core.handle_incoming_connection("10.0.0.2:1000".into(), now);
    assert!(!closed(&mut core, other));
    assert_eq!(core.stats().connections_refused, 2);
    core.handle_connection_closed(first, None, now);
    let again = core.handle_incoming_connection("10.0.0.1:1003".into(), now);
    assert!(!closed(&mut core, again), "a slot freed");
    assert_eq!(core.connection_count(), 5);
}

/// Outgoing connections have their own budget: a node whose incoming connections are
/// full still dials out.
#[test]
fn a_full_incoming_budget_does_not_stop_dialling_out() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_incoming_connections: 2,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    for port in 0..5 {
        let _ = core.handle_incoming_connection(format!("10.0.0.{port}:1"), now);
    }
    let _ = drain(&mut core);
    core.handle_send(
        &app(),
        TransportMessage::new(route![tcp("b:4000"), "x"], route!["app"], vec![1]),
        now,
    )
    .unwrap();
    assert!(drain(&mut core)
        .iter()
        .any(|o| matches!(o, Output::Connect { peer, .. } if *peer == tcp("b:4000"))));
    assert_eq!(core.stats().connections_evicted, 3);
}

// ---- congestion, getters, and what a dropped or unregistered thing leaves ------------

/// A mailbox is congested from half its capacity unread, and a congested mailbox
/// that goes away says so (`Decongested`), once; one that was not congested says
/// nothing.
#[test]
fn mailbox_congestion_is_named_and_cleared_by_unregistering() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        mailbox_capacity: 4,
        ..NodeConfig::default()
    });
    assert_eq!(core.config().mailbox_capacity, 4);
    core.register(app(), Access::anyone(), now).unwrap();
    let sink = Address::local("sink");
    core.register(sink.clone(), Access::anyone(), now).unwrap();
    let to_sink = route!["sink"];
    core.handle_send(&app(), local_to(to_sink.clone()), now)
        .unwrap();
    assert_eq!(core.congestion(&to_sink), None);
    assert!(!core.is_congested(&to_sink));
    core.handle_send(&app(), local_to(to_sink.clone()), now)
        .unwrap();
    assert_eq!(core.congestion(&to_sink), Some(Hop::Mailbox(sink.clone())));
    assert!(core.is_congested(&to_sink));
    assert_eq!(core.congestion(&route!["app"]), None);
    let _ = drain(&mut core);
    core.unregister(&sink, now);
    assert_eq!(
        drain(&mut core)
            .iter()
            .filter(|o| matches!(o, Output::Decongested(Hop::Mailbox(a)) if *a == sink))
            .count(),
        1
    );
    // "app" was never congested: unregistering it tells no one anything.
    core.unregister(&app(), now);
    assert!(drain(&mut core).is_empty());
    // Unregistering a channel listener's address through `unregister` does nothing.
    listen(&mut core, ChannelRules::new(), now).unwrap();
    core.unregister(&Address::local("secure"), now);
    assert!(core.has_address(&Address::local("secure")));
}

/// A connection is congested from half its backlog unsent, whether reached by its TCP
/// address, by its alias, or through a channel whose first hop it is; its backlog is
/// what was handed to it and not written.
#[test]
fn connection_congestion_is_named_by_every_route_that_leads_there() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_connection_backlog: 1000,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let to_b = route![tcp("b:4000"), "x"];
    core.handle_send(&app(), local_to(to_b.clone()), now)
        .unwrap();
    let Some(Output::Connect { connection, .. }) = core.poll_output() else {
        panic!("a connect")
    };
    core.handle_connected(connection, now);
    let sent: usize = drain(&mut core)
        .iter()
        .map(|o| match o {
            Output::Transmit { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(core.connection_backlog(connection), Some(sent));
    assert_eq!(core.congestion(&to_b), None);
    while core.connection_backlog(connection) < Some(500) {
        core.handle_send(&app(), local_to(to_b.clone()), now)
            .unwrap();
    }
    let _ = drain(&mut core);
    assert_eq!(core.congestion(&to_b), Some(Hop::Connection(connection)));
    // A TCP address with no connection is not congested.
    assert_eq!(core.congestion(&route![tcp("c:4000"), "x"]), None);
    // Written: no longer congested.
    core.handle_written(
        connection,
        core.connection_backlog(connection).unwrap(),
        now,
    );
    assert_eq!(core.connection_backlog(connection), Some(0));
    assert_eq!(core.congestion(&to_b), None);

    // An incoming connection, by its alias (learned from a delivery's return route).
    let incoming = core.handle_incoming_connection("peer:1".into(), now);
    core.handle_received(incoming, &frames(&[local_to(route!["app"])]), now);
    let alias = drain(&mut core)
        .into_iter()
        .find_map(|o| match o {
            Output::Deliver { message, .. } => message.return_route.next().cloned(),
            _ => None,
        })
        .unwrap();
    while core.connection_backlog(incoming) < Some(500) {
        core.handle_send(&app(), local_to(route![alias.clone(), "x"]), now)
            .unwrap();
    }
    assert_eq!(
        core.congestion(&route![alias, "x"]),
        Some(Hop::Connection(incoming))
    );
}

/// A channel whose far end is reached over a congested connection is congested with
/// that connection.
#[test]
fn a_channel_is_congested_when_its_first_hop_is() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_connection_backlog: 1000,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let (_, encryptor) = open_channel(
        &mut core,
        route![tcp("b:4000"), "secure"],
        ChannelRules::new(),
        now,
    )
    .unwrap();
    let Some(Output::Connect { connection, .. }) = core.poll_output() else {
        panic!("a connect")
    };
    core.handle_connected(connection, now);
    let _ = drain(&mut core);
    let through = route![encryptor.clone(), "x"];
    assert_eq!(core.congestion(&through), None);
    // Fill the connection's backlog with plain messages to the same peer.
    while core.connection_backlog(connection) < Some(500) {
        core.handle_send(&app(), local_to(route![tcp("b:4000"), "y"]), now)
            .unwrap();
    }
    assert_eq!(core.congestion(&through), Some(Hop::Connection(connection)));
    assert!(core.is_congested(&through));
}

/// A removed listener's address is free again, and a hello to it finds nothing.
#[test]
fn a_removed_listener_takes_no_hellos() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    let secure = Address::local("secure");
    core.create_channel_listener(
        secure.clone(),
        identity(2),
        everyone(),
        ChannelConfig::default(),
        ChannelRules::new(),
        now,
    )
    .unwrap();
    core.remove_channel_listener(&secure, now);
    assert!(!core.has_address(&secure));
    let refused = open_channel(&mut core, route!["secure"], ChannelRules::new(), now);
    assert_eq!(
        refused.map(|_| ()),
        Err(NodeError::UnknownAddress(secure.clone()))
    );
    core.register(secure, Access::anyone(), now).unwrap();
}

/// Stalled, a connection may hold at most its backlog limit of unread bytes: exactly
/// the limit is kept, one byte more closes it.
#[test]
fn a_paused_connection_holds_exactly_its_backlog_limit() {
    let now = Instant::now();
    let limit = 2000;
    let mut core = core(NodeConfig {
        mailbox_capacity: 1,
        max_connection_backlog: limit,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    core.handle_received(
        conn,
        &frames(&[local_to(route!["app"]), local_to(route!["app"])]),
        now,
    );
    assert!(core.is_reading_paused(conn));
    // A frame that claims more than the limit, its body arriving byte by byte.
    core.handle_received(conn, &u32::try_from(limit + 10).unwrap().to_be_bytes(), now);
    core.handle_received(conn, &vec![0; limit], now);
    assert_eq!(core.connection_count(), 1, "exactly the limit is kept");
    core.handle_received(conn, &[0], now);
    assert_eq!(core.connection_count(), 0, "one byte more closes it");
}

/// A connection dropped while stalled loses its waiting message, counted; and it
/// leaves the other stalled connections to be retried.
#[test]
fn a_stalled_connection_dropped_counts_its_messages_and_spares_the_others() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        mailbox_capacity: 1,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let one = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    let two = core.handle_incoming_connection("10.0.0.2:1".into(), now);
    let m = local_to(route!["app"]);
    core.handle_received(
        one,
        &frames(&[m.clone(), m.clone(), m.clone(), m.clone()]),
        now,
    );
    core.handle_received(two, &frames(std::slice::from_ref(&m)), now);
    assert!(core.is_reading_paused(one) && core.is_reading_paused(two));
    let _ = drain(&mut core);
    let before = core.stats().delivery_failures;
    core.handle_connection_closed(one, None, now);
    // The one waiting is lost and counted (the frames behind it were never routed).
    assert_eq!(core.stats().delivery_failures - before, 1);
    core.handle_consumed(&app(), now);
    assert!(
        drain(&mut core).iter().any(|o| matches!(o, Output::Deliver { origin: Origin::Transport { connection }, .. } if *connection == two)),
        "the other stalled connection goes on"
    );
}

/// Two connections stalled on two full mailboxes: resuming one leaves the other
/// stalled, to resume in its turn.
#[test]
fn resuming_one_stalled_connection_leaves_the_other_waiting() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        mailbox_capacity: 1,
        ..NodeConfig::default()
    });
    let other = Address::local("other");
    core.register(app(), Access::anyone(), now).unwrap();
    core.register(other.clone(), Access::anyone(), now).unwrap();
    let one = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    let two = core.handle_incoming_connection("10.0.0.2:1".into(), now);
    let to = |r: Route| local_to(r);
    core.handle_received(one, &frames(&[to(route!["app"]), to(route!["app"])]), now);
    core.handle_received(
        two,
        &frames(&[to(route!["other"]), to(route!["other"])]),
        now,
    );
    assert!(core.is_reading_paused(one) && core.is_reading_paused(two));
    let _ = drain(&mut core);
    core.handle_consumed(&app(), now);
    let _ = drain(&mut core);
    assert!(!core.is_reading_paused(one));
    assert!(
        core.is_reading_paused(two),
        "still waiting for its own mailbox"
    );
    core.handle_consumed(&other, now);
    assert!(drain(&mut core)
        .iter()
        .any(|o| matches!(o, Output::Deliver { address, .. } if *address == other)));
    assert!(!core.is_reading_paused(two));
}

/// Every local hop of a message counts once in `messages_routed`: a delivery is one.
#[test]
fn messages_routed_counts_each_hop() {
    let now = Instant::now();
    let (mut core, encryptor) = local_channel(NodeConfig::default());
    let before = core.stats().messages_routed;
    core.handle_send(&app(), local_to(route!["app"]), now)
        .unwrap();
    assert_eq!(core.stats().messages_routed - before, 1);
    // Through a channel in this node: the encryptor, the record at the decryptor, the
    // delivery.
    let before = core.stats().messages_routed;
    core.handle_send(&app(), local_to(route![encryptor, "app"]), now)
        .unwrap();
    assert_eq!(core.stats().messages_routed - before, 3);
}

/// A listener whose random source fails at any point of answering a hello rejects
/// that hello, counted once, and leaves no channel end behind; with enough
/// randomness it answers.
#[test]
fn a_hello_the_listener_cannot_answer_for_want_of_randomness_is_counted_once() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(5);
    let hello = ChannelEnd::initiator(
        &ChannelConfig::default(),
        identity(1),
        everyone(),
        &mut rng,
        now,
    )
    .unwrap()
    .poll_transmit()
    .unwrap();
    let mut rejected = 0;
    let mut answered = false;
    for left in 1..24 {
        let mut core = failing_after(left);
        let listening = listen(&mut core, ChannelRules::new(), now);
        assert!(listening.is_ok());
        let conn = core.handle_incoming_connection("peer:1".into(), now);
        if core.connection_count() == 0 {
            continue; // no alias: the randomness ran out before the hello
        }
        let _ = drain(&mut core);
        core.handle_received(
            conn,
            &frames(&[TransportMessage::new(
                route!["secure"],
                route!["x"],
                hello.clone(),
            )]),
            now,
        );
        let stats = core.stats();
        if core.channel_count() == 1 {
            answered = true;
            assert_eq!(stats.hellos_rejected, 0, "after {left} fills");
        } else {
            rejected += 1;
            assert_eq!(stats.hellos_rejected, 1, "after {left} fills");
            assert_eq!(core.channel_count(), 0);
        }
    }
    assert!(
        rejected >= 2 && answered,
        "{rejected} rejected, answered: {answered}"
    );
}

/// A stall is the node's wait, not the peer's silence: once it ends, the connection's
/// idle deadline runs from then, not from before the stall.
#[test]
fn a_stall_does_not_count_against_the_peers_idle_deadline() {
    let start = Instant::now();
    let config = NodeConfig {
        mailbox_capacity: 1,
        ..NodeConfig::default()
    };
    let (idle, max_stall) = (config.unproven_idle_timeout, config.max_stall);
    let mut core = core(config);
    core.register(app(), Access::anyone(), start).unwrap();
    let conn = core.handle_incoming_connection("peer:1".into(), start);
    core.handle_received(
        conn,
        &frames(&[local_to(route!["app"]), local_to(route!["app"])]),
        start,
    );
    assert!(core.is_reading_paused(conn));
    assert!(!core.is_connection_proven(conn));
    // The stall gives up after max_stall, well past which the idle deadline would
    // have come had it run from the last bytes.
    let later = start + idle + max_stall;
    core.handle_timeout(later);
    assert!(!core.is_reading_paused(conn));
    core.handle_timeout(later + Duration::from_secs(1));
    assert_eq!(
        core.connection_count(),
        1,
        "the idle clock restarted at the resume"
    );
    core.handle_timeout(later + idle);
    assert_eq!(
        core.connection_count(),
        0,
        "and runs out a full timeout after it"
    );
}

/// At the outgoing limit a new peer's dial closes the outgoing connection unused for
/// longest that holds nothing; when every one holds unsent bytes (or is still
/// opening), the send is refused with the limit named.
#[test]
fn the_idlest_outgoing_connection_makes_room_and_a_busy_one_does_not() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_outgoing_connections: 2,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let dial = |core: &mut NodeCore, peer: &str| {
        let message = TransportMessage::new(route![tcp(peer), "x"], route!["app"], vec![1]);
        let result = core.handle_send(&app(), message, now);
        let outputs = drain(core);
        let connect = outputs.iter().find_map(|o| match o {
            Output::Connect { connection, .. } => Some(*connection),
            _ => None,
        });
        (result, connect, outputs)
    };
    let (_, a, _) = dial(&mut core, "a:1");
    let a = a.unwrap();
    let (_, b, _) = dial(&mut core, "b:1");
    let b = b.unwrap();
    // Both still opening: neither may go.
    let (refused, _, _) = dial(&mut core, "c:1");
    assert!(
        matches!(&refused, Err(NodeError::ConnectFailed { reason, .. }) if reason.contains("too many outgoing")),
        "{refused:?}"
    );
    // Both open and written out; B used since A: A goes for C.
    for id in [a, b] {
        core.handle_connected(id, now);
        let written: usize = drain(&mut core)
            .iter()
            .map(|o| match o {
                Output::Transmit { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        core.handle_written(id, written, now);
    }
    let (result, c, outputs) = dial(&mut core, "c:1");
    result.unwrap();
    assert!(c.is_some());
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Close { connection } if *connection == a)));
    assert_eq!(core.stats().connections_evicted, 1);
    assert!(core.connection_peer(b).is_some());
}

/// A middle node passes a frame on to the next node as the encoding of the message it
/// carries, its payload untouched, its next hop taken off and the connection's alias
/// put on its way back; a frame it cannot pass on (no room for another outgoing
/// connection) is answered with a report along that way back, and counted.
#[test]
fn a_middle_node_passes_frames_on_and_reports_those_it_cannot() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_outgoing_connections: 1,
        ..NodeConfig::default()
    });
    let incoming = core.handle_incoming_connection("10.0.0.9:5".into(), now);
    let _ = drain(&mut core);
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000 / 2).collect();
    let to = |peer: &str| {
        TransportMessage::new(
            route![tcp(peer), "x", "y"],
            route!["app", "z"],
            payload.clone(),
        )
    };
    let before = core.stats().messages_routed;
    core.handle_received(incoming, &frames(&[to("b:1")]), now);
    let outgoing = drain(&mut core)
        .iter()
        .find_map(|o| match o {
            Output::Connect { connection, peer } if *peer == tcp("b:1") => Some(*connection),
            _ => None,
        })
        .expect("a connection to the next node");
    assert_eq!(core.stats().messages_routed - before, 1);
    core.handle_connected(outgoing, now);
    let sent: Vec<u8> = drain(&mut core)
        .into_iter()
        .filter_map(|o| match o {
            Output::Transmit { connection, bytes } if connection == outgoing => Some(bytes),
            _ => None,
        })
        .flatten()
        .collect();
    let frame = sent
        .strip_prefix(crate::framing::PREAMBLE.as_slice())
        .expect("the preamble first");
    let (len, body) = frame.split_at(crate::framing::FRAME_HEADER_LEN);
    assert_eq!(
        u32::from_be_bytes(len.try_into().unwrap()) as usize,
        body.len()
    );
    let passed = TransportMessage::decode(body).unwrap();
    assert_eq!(passed.onward_route, route!["x", "y"]);
    assert_eq!(passed.return_route.len(), 3);
    let alias = passed.return_route.next().unwrap().clone();
    assert!(alias.is_local());
    assert_eq!(passed.return_route, route![alias.clone(), "app", "z"]);
    assert_eq!(passed.payload, payload);
    assert_eq!(passed.to_bytes().unwrap(), body, "the canonical encoding");
    // The one outgoing slot is busy (its frame not yet written): a frame for another
    // node is answered along its way back, over the connection it came in on.
    core.handle_received(
        incoming,
        &frames(&[to("c:1")])[crate::framing::PREAMBLE.len()..],
        now,
    );
    let outputs = drain(&mut core);
    assert!(!outputs
        .iter()
        .any(|o| matches!(o, Output::Connect { peer, .. } if *peer == tcp("c:1"))));
    let reports = reports_in(&outputs);
    assert_eq!(reports.len(), 1, "{outputs:?}");
    let (back, report) = &reports[0];
    assert_eq!(*back, route!["app", "z"]);
    assert_eq!(report.address, tcp("c:1"));
    assert!(report.detail.contains("too many outgoing"), "{report}");
    assert!(outputs.iter().all(|o| match o {
        Output::Transmit { connection, .. } => *connection == incoming,
        _ => true,
    }));
    assert_eq!(core.stats().reports_sent, 1);
    assert_eq!(core.connection_count(), 2, "both connections stay open");
}

// ---- transmit buffers -----------------------------------------------------------------

/// A transmit's buffer given back once written is cleared and built into the next
/// small frame; one with too much room is not kept, and a large frame gets a buffer
/// of its own.
#[test]
fn a_written_transmit_buffer_is_reused_for_the_next_small_frame() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::local_only(), now).unwrap();
    let send = |core: &mut NodeCore, len: usize| -> Vec<u8> {
        let message = TransportMessage::new(route![tcp("b:1"), "x"], route!["app"], vec![7; len]);
        core.handle_send(&app(), message, now).unwrap();
        let mut outputs = drain(core);
        let connect = outputs.iter().find_map(|o| match o {
            Output::Connect { connection, .. } => Some(*connection),
            _ => None,
        });
        if let Some(connection) = connect {
            core.handle_connected(connection, now);
            outputs.extend(drain(core));
        }
        let transmits: Vec<Vec<u8>> = outputs
            .into_iter()
            .filter_map(|o| match o {
                Output::Transmit { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect();
        transmits.into_iter().last().expect("a frame")
    };
    let mut first = send(&mut core, 10);
    let expected = first.clone();
    // Room no new frame of this size gets, to tell the buffer given back.
    first.reserve_exact(3000);
    let (at, room) = (first.as_ptr(), first.capacity());
    core.recycle_transmit(first);
    let second = send(&mut core, 10);
    assert_eq!(
        (second.as_ptr(), second.capacity()),
        (at, room),
        "the buffer given back is reused"
    );
    assert_eq!(second, expected, "nothing of the old frame is left over");
    core.recycle_transmit(second);
    // A large frame leaves the kept buffer for a small one.
    let large = send(&mut core, crate::node::SPARE_TRANSMIT_MAX);
    assert_ne!(large.as_ptr(), at);
    assert!(large.capacity() > crate::node::SPARE_TRANSMIT_MAX);
    core.recycle_transmit(large);
    let small = send(&mut core, 10);
    assert_eq!((small.as_ptr(), small.capacity()), (at, room));
    // The large buffer was not kept: the next small frame has a buffer of its own.
    let other = send(&mut core, 10);
    assert!(other.capacity() < room);
}
