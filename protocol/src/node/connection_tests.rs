//! Unit tests of the connection table: its invariants after every step, limits,
//! deadlines, keepalives and charges.

use super::*;
use std::time::Duration;

fn tcp(peer: &str) -> Address {
    crate::routing::tcp(peer)
}

fn table(max_backlog: usize, max_queued: usize) -> ConnectionTable {
    ConnectionTable::new(&NodeConfig {
        max_connection_backlog: max_backlog,
        max_queued_while_connecting: max_queued,
        max_outgoing_connections: 4,
        max_incoming_connections: 4,
        // Keepalives have a test of their own.
        keepalive_interval: Duration::MAX,
        ..NodeConfig::default()
    })
}

/// A keepalive check comes every interval on an open connection, and sends an
/// empty frame only if nothing else was sent since the one before; a connection
/// still opening has none.
#[test]
fn keepalives_go_out_only_on_quiet_open_connections() {
    let mut t = ConnectionTable::new(&NodeConfig {
        keepalive_interval: Duration::from_secs(20),
        ..NodeConfig::default()
    });
    let start = Instant::now();
    let s = |n: u64| start + Duration::from_secs(n);
    let out = t.open(tcp("b:1"), TransportKind::Stream, a("out"), start);
    assert_eq!(t.next_deadline(), None, "nothing while connecting");
    let _ = t.connected(out, b"pre", s(1)).unwrap();
    check(&t);
    assert_eq!(t.next_deadline(), Some(s(21)));
    // The preamble went out since the connection opened: no keepalive at 21 s.
    assert_eq!(t.expired(s(21)), [(out, Expired::Keepalive)]);
    assert_eq!(t.keepalive(out, s(21)), None);
    check(&t);
    // Nothing sent since, but the preamble is still unwritten: it will be heard first.
    assert_eq!(t.next_deadline(), Some(s(41)));
    assert_eq!(t.keepalive(out, s(41)), None);
    // Written: the next quiet interval gets one, accounted for like any transmit.
    let _ = t.written(out, 3);
    assert_eq!(t.keepalive(out, s(61)), Some(vec![0; 4]));
    assert_eq!(t.get(out).unwrap().backlog(), 4);
    check(&t);
    // A frame sent in the next interval makes the next check quiet.
    let _ = t.written(out, 4);
    let _ = t.send(out, vec![1; 10], None, None, 0).unwrap();
    let _ = t.written(out, 10);
    assert_eq!(t.keepalive(out, s(81)), None);
    assert_eq!(t.keepalive(out, s(101)), Some(vec![0; 4]));
    check(&t);
}

/// A zero keepalive interval turns keepalives off rather than checking at every call.
#[test]
fn a_zero_keepalive_interval_means_none() {
    let mut t = ConnectionTable::new(&NodeConfig {
        keepalive_interval: Duration::ZERO,
        ..NodeConfig::default()
    });
    let start = Instant::now();
    let out = t.open(tcp("b:1"), TransportKind::Stream, a("out"), start);
    let _ = t.connected(out, b"pre", start).unwrap();
    assert_eq!(t.next_deadline(), None);
    check(&t);
}

fn check(table: &ConnectionTable) {
    let limits = table.limits();
    for (id, conn) in &table.connections {
        let in_flight: usize = conn.in_flight.iter().map(|f| f.remaining).sum();
        assert_eq!(
            conn.backlog, in_flight,
            "{id}: backlog is the sum in flight"
        );
        assert!(conn.in_flight.iter().all(|f| f.remaining > 0));
        let congested = match &conn.state {
            State::Connecting(q) => q.len() >= limits.max_queued / 2,
            State::Open => conn.backlog >= limits.max_backlog / 2,
        };
        assert_eq!(conn.congested, congested, "{id}: congestion flag");
        if conn.direction == Direction::Outgoing {
            let remote = conn
                .remote
                .as_ref()
                .expect("an outgoing connection has its address");
            assert_eq!(table.outgoing.get(remote), Some(id));
        }
    }
    for (remote, id) in &table.outgoing {
        assert_eq!(
            table.connections.get(id).and_then(|c| c.remote.as_ref()),
            Some(remote)
        );
    }
    let inboxes = table.connections.values().filter(|c| c.inbox).count();
    assert_eq!(table.inboxes, inboxes, "inboxes counted");
    // One timer per connection with a deadline, and it is that deadline.
    let armed: Vec<(Instant, ConnectionId)> = table
        .connections
        .iter()
        .filter_map(|(id, c)| Some((c.deadline?, *id)))
        .collect();
    assert_eq!(table.timers.iter().copied().collect::<Vec<_>>(), {
        let mut armed = armed;
        armed.sort();
        armed
    });
    for (id, conn) in &table.connections {
        assert_eq!(
            conn.deadline,
            deadline(conn, &table.timeouts),
            "{id}: deadline"
        );
    }
    // Sources count the incoming connections.
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for conn in table.connections.values() {
        if let Some(source) = &conn.source {
            *sources.entry(source.clone()).or_default() += 1;
        }
    }
    assert_eq!(sources, table.per_source);
    // Charges are what each connection holds, and the sums are theirs.
    for (id, conn) in &table.connections {
        assert_eq!(
            conn.charge,
            (conn.holds(), conn.is_unproven_incoming()),
            "{id}: charge"
        );
        let queued: usize = match &conn.state {
            State::Connecting(q) => q.iter().map(|f| f.frame.len()).sum(),
            State::Open => 0,
        };
        assert_eq!(conn.queued_bytes, queued, "{id}: queued bytes");
    }
    let charges = table.connections.values().map(|c| c.charge);
    assert_eq!(table.charged, charges.clone().map(|c| c.0).sum::<usize>());
    assert_eq!(
        table.charged_unproven,
        charges.filter(|c| c.1).map(|c| c.0).sum::<usize>()
    );
}

#[test]
fn a_source_is_the_host_of_host_and_port() {
    assert_eq!(source_of("10.0.0.1:5000"), "10.0.0.1");
    assert_eq!(source_of("[::1]:7"), "[::1]");
    assert_eq!(source_of("example.org:80"), "example.org");
    // Without a numeric port, the whole string is the source.
    assert_eq!(source_of("raw"), "raw");
    assert_eq!(source_of("a:b"), "a:b");
    assert_eq!(source_of("host:"), "host:");
    assert_eq!(source_of("host:8x"), "host:8x");
}

#[test]
fn each_expiry_says_what_was_missed() {
    let t = table(100, 10);
    let timeouts = t.timeouts();
    assert!(Expired::FirstFrame
        .reason(timeouts)
        .contains("first frame within 10s"));
    assert!(Expired::PartialFrame
        .reason(timeouts)
        .contains("frame left unfinished for 30s"));
    assert!(Expired::Idle
        .reason(timeouts)
        .contains("nothing received for 60s"));
}

#[test]
fn outgoing_connections_do_not_count_as_incoming() {
    let mut t = ConnectionTable::new(&NodeConfig {
        max_incoming_connections: 2,
        ..NodeConfig::default()
    });
    let now = Instant::now();
    for peer in ["a:1", "b:1", "c:1"] {
        let _ = t.open(tcp(peer), TransportKind::Stream, a(peer), now);
    }
    assert_eq!(t.incoming_len(), 0);
    assert!(!t.incoming_full());
    for n in 0..2u8 {
        let id = t.next_id();
        let _ = t.accept(id, format!("10.0.0.{n}:1"), a(&format!("in{n}")), b"p", now);
    }
    assert_eq!(t.incoming_len(), 2);
    assert!(t.incoming_full());
    check(&t);
}

#[test]
fn the_byte_limit_holds_exactly_while_connecting() {
    let mut t = table(100, 10);
    let id = t.open(
        tcp("p:1"),
        TransportKind::Stream,
        a("alias"),
        Instant::now(),
    );
    assert!(matches!(
        t.send(id, vec![0; 60], None, None, 0),
        Ok(Sent::Queued)
    ));
    assert!(
        matches!(t.send(id, vec![0; 40], None, None, 0), Ok(Sent::Queued)),
        "exactly the limit"
    );
    assert!(matches!(
        t.send(id, vec![0; 1], None, None, 0),
        Err(NodeError::ConnectionBacklogFull {
            queued: 100,
            limit: 100,
            ..
        })
    ));
    check(&t);
}

#[test]
fn deadlines_follow_each_unauthenticated_stage() {
    let mut t = table(1000, 10);
    let start = Instant::now();
    let s = |n: u64| start + Duration::from_secs(n);
    let id = t.next_id();
    let _ = t.accept(id, "10.0.0.1:5".into(), a("alias"), b"p", start);
    check(&t);
    let timeouts = *t.timeouts();
    assert_eq!(t.next_deadline(), Some(start + timeouts.first_frame));
    assert_eq!(
        t.expired(start + timeouts.first_frame),
        [(id, Expired::FirstFrame)]
    );
    // Half the preamble: the partial-frame clock starts; the first-frame one holds.
    let conn = t.get_mut(id).unwrap();
    conn.decoder
        .handle_bytes(&crate::framing::PREAMBLE[..2])
        .unwrap();
    t.received(id, s(1), false);
    check(&t);
    assert_eq!(t.next_deadline(), Some(start + timeouts.first_frame));
    // The rest and a whole frame: only the idle deadline of an unproven connection.
    let conn = t.get_mut(id).unwrap();
    conn.decoder
        .handle_bytes(&crate::framing::PREAMBLE[2..])
        .unwrap();
    conn.decoder.handle_bytes(&[0, 0, 0, 1, 9]).unwrap();
    let _ = conn.decoder.poll_frame();
    t.received(id, s(2), true);
    check(&t);
    assert_eq!(t.next_deadline(), Some(s(2) + timeouts.idle));
    // A frame begun and not finished.
    t.get_mut(id)
        .unwrap()
        .decoder
        .handle_bytes(&[0, 0, 0, 9, 1])
        .unwrap();
    t.received(id, s(3), false);
    check(&t);
    assert_eq!(
        t.next_deadline(),
        Some(s(3) + timeouts.frame.min(timeouts.idle))
    );
    assert_eq!(
        t.expired(s(3) + timeouts.frame),
        [(id, Expired::PartialFrame)]
    );
    // Proven: the idle deadline goes, the partial frame's stays.
    t.proven(id);
    check(&t);
    assert_eq!(t.next_deadline(), Some(s(3) + timeouts.frame));
    let _ = t.remove(id);
    check(&t);
    assert_eq!(t.next_deadline(), None);
    assert!(t.per_source.is_empty());
}

fn a(name: &str) -> Address {
    Address::local(name)
}

#[test]
fn frames_wait_while_connecting_and_go_out_behind_the_preamble() {
    let mut t = table(1000, 8);
    let id = t.open(
        tcp("p:1"),
        TransportKind::Stream,
        a("alias"),
        Instant::now(),
    );
    assert_eq!(t.outgoing(&tcp("p:1")), Some(id));
    assert!(matches!(
        t.send(id, vec![1; 10], Some(&a("s1")), None, 0),
        Ok(Sent::Queued)
    ));
    assert!(matches!(
        t.send(id, vec![2; 20], None, None, 0),
        Ok(Sent::Queued)
    ));
    check(&t);
    assert_eq!(
        t.get(id).map(Connection::backlog),
        Some(0),
        "nothing handed over yet"
    );
    let (transmits, _) = t.connected(id, b"pre", Instant::now()).unwrap();
    assert_eq!(transmits, vec![b"pre".to_vec(), vec![1; 10], vec![2; 20]]);
    assert_eq!(t.get(id).map(Connection::backlog), Some(33));
    check(&t);
    assert!(
        t.connected(id, b"pre", Instant::now()).is_none(),
        "opens once"
    );
    // Written across transmit boundaries, oldest first.
    assert!(!t.written(id, 5));
    check(&t);
    let dropped = t.remove(id).unwrap();
    assert_eq!(
        dropped.unwritten,
        vec![Some((a("s1"), 0)), None],
        "the preamble has no sender"
    );
    assert!(dropped.unsent.is_none());
    assert_eq!(t.outgoing(&tcp("p:1")), None);
    check(&t);
}

#[test]
fn the_backlog_is_the_sum_of_unwritten_bytes_through_any_writes() {
    let mut t = table(1 << 20, 8);
    let id = t.next_id();
    let _ = t.accept(id, "p".into(), a("alias"), b"preamble", Instant::now());
    let sizes = [1usize, 70, 3, 4096, 9, 1, 500];
    for (i, len) in sizes.iter().enumerate() {
        let sender = a(&format!("s{i}"));
        assert!(
            matches!(t.send(id, vec![0; *len], Some(&sender), None, 0), Ok(Sent::Transmit(f)) if f.len() == *len)
        );
        check(&t);
    }
    let total: usize = 8 + sizes.iter().sum::<usize>();
    let mut left = total;
    for step in [1usize, 7, 8, 2, 100, 4000, 3] {
        let n = step.min(left);
        t.written(id, n);
        left -= n;
        check(&t);
        assert_eq!(t.get(id).map(Connection::backlog), Some(left));
    }
    // The unwritten frames are exactly those not wholly written.
    let dropped = t.remove(id).unwrap();
    let written = total - left;
    let mut end = 8;
    let mut expected = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        end += len;
        if end > written {
            expected.push(Some((a(&format!("s{i}")), 0)));
        }
    }
    assert_eq!(dropped.unwritten, expected);
}

#[test]
fn limits_refuse_without_changing_anything() {
    let mut t = table(100, 2);
    let id = t.open(tcp("p"), TransportKind::Stream, a("alias"), Instant::now());
    assert!(
        t.send(id, vec![0; 101], None, None, 0).is_err(),
        "bytes limit while connecting"
    );
    assert!(t.send(id, vec![0; 60], None, None, 0).is_ok());
    assert!(t.send(id, vec![0; 30], None, None, 0).is_ok());
    let error = t.send(id, vec![0; 1], None, None, 0).unwrap_err();
    assert!(
        matches!(
            error,
            NodeError::ConnectionBacklogFull {
                limit: 2,
                queued: 90,
                ..
            }
        ),
        "{error}"
    );
    check(&t);
    let (transmits, _) = t.connected(id, b"x", Instant::now()).unwrap();
    assert_eq!(transmits.len(), 3);
    let error = t.send(id, vec![0; 10], None, None, 0).unwrap_err();
    assert!(
        matches!(
            error,
            NodeError::ConnectionBacklogFull {
                limit: 100,
                queued: 91,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        t.send(id, vec![0; 9], None, None, 0).is_ok(),
        "exactly at the limit is taken"
    );
    check(&t);
    let gone = ConnectionId(99);
    assert!(matches!(
        t.send(gone, vec![], None, None, 0),
        Err(NodeError::ConnectionClosed { .. })
    ));
}

#[test]
fn congestion_is_flagged_at_half_and_its_end_reported_once() {
    let mut t = table(100, 4);
    let id = t.next_id();
    let _ = t.accept(id, "p".into(), a("alias"), b"p", Instant::now());
    assert!(t.send(id, vec![0; 48], None, None, 0).is_ok());
    assert!(!t.get(id).unwrap().is_congested());
    assert!(t.send(id, vec![0; 1], None, None, 0).is_ok());
    assert!(t.get(id).unwrap().is_congested(), "at half");
    check(&t);
    assert!(t.written(id, 1), "below half: relieved");
    assert!(!t.written(id, 1), "reported once");
    check(&t);
    // An opening connection is congested by its count of waiting frames, and may
    // be relieved by opening.
    let out = t.open(tcp("q"), TransportKind::Stream, a("alias2"), Instant::now());
    assert!(t.send(out, vec![0; 1], None, None, 0).is_ok());
    assert!(t.send(out, vec![0; 1], None, None, 0).is_ok());
    assert!(t.get(out).unwrap().is_congested());
    let (_, relieved) = t.connected(out, b"p", Instant::now()).unwrap();
    assert!(relieved);
    check(&t);
    assert!(t.send(out, vec![0; 60], None, None, 0).is_ok());
    assert!(t.remove(out).unwrap().was_congested);
}

#[test]
fn a_dropped_opening_connection_names_its_waiting_senders() {
    let mut t = table(100, 4);
    let id = t.open(tcp("p"), TransportKind::Stream, a("alias"), Instant::now());
    assert!(t.send(id, vec![1], Some(&a("x")), None, 0).is_ok());
    assert!(t.send(id, vec![2], None, None, 0).is_ok());
    let dropped = t.remove(id).unwrap();
    assert_eq!(
        dropped.unsent,
        Some(vec![(Some((a("x"), 0)), None), (None, None)])
    );
    assert!(dropped.unwritten.is_empty());
    assert!(t.remove(id).is_none());
    // A second dial to the same peer after the first is gone is a new connection.
    let again = t.open(tcp("p"), TransportKind::Stream, a("alias"), Instant::now());
    assert_ne!(again, id);
    check(&t);
}
