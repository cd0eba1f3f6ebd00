//! Unit tests of portal sessions: the message codec and its bad inputs, whole sessions
//! carried between two ends (reordered and duplicated on the way), backpressure,
//! half-close, violations, resets and timeouts.

use super::*;
use proptest::prelude::*;

fn t0() -> Instant {
    Instant::now()
}

/// Both ends of a session, opened: the inlet with window `inlet_window`, the outlet
/// with `outlet_window`.
fn open_pair(
    inlet_window: u32,
    outlet_window: u32,
    now: Instant,
) -> (PortalSession, PortalSession) {
    let mut inlet = PortalSession::inlet(inlet_window, now);
    let Some(PortalOutput::Send(open)) = inlet.poll_output() else {
        panic!("the open first")
    };
    let mut outlet = PortalSession::outlet(&open.encode(), outlet_window).unwrap();
    outlet.handle_connected();
    let outs = drain(&mut outlet);
    assert_eq!(outs[1], PortalOutput::Opened);
    let PortalOutput::Send(opened) = &outs[0] else {
        panic!("opened")
    };
    inlet.handle_message(&opened.encode(), now);
    assert_eq!(drain(&mut inlet), vec![PortalOutput::Opened]);
    (inlet, outlet)
}

fn drain(session: &mut PortalSession) -> Vec<PortalOutput> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

/// What a socket end saw: bytes written, whether its write side was shut, how the
/// session closed.
#[derive(Default, Debug)]
struct End {
    written: Vec<u8>,
    shut: bool,
    closed: Option<Result<(), PortalError>>,
}

/// Moves outputs: messages from `from` to `to` (in `order`: a permutation of each
/// batch, with copies), writes into `end` (reported written at once unless `stall`).
fn carry(
    from: &mut PortalSession,
    end: &mut End,
    to: &mut PortalSession,
    now: Instant,
    shuffle: &mut impl FnMut(&mut Vec<Vec<u8>>),
    stall: bool,
) -> bool {
    let mut messages = Vec::new();
    let mut moved = false;
    for output in drain(from) {
        moved = true;
        match output {
            PortalOutput::Send(message) => messages.push(message.encode()),
            PortalOutput::Write(bytes) => {
                end.written.extend_from_slice(&bytes);
                if !stall {
                    from.handle_written(bytes.len());
                }
            }
            PortalOutput::ShutdownWrite => end.shut = true,
            PortalOutput::Closed(result) => end.closed = Some(result),
            PortalOutput::Opened => {}
        }
    }
    shuffle(&mut messages);
    for message in messages {
        to.handle_message(&message, now);
    }
    moved
}

/// Sends `a_data` from the inlet's socket and `b_data` from the outlet's, each as much
/// as the window allows at a time, both half-closing after, until both sessions close.
fn run_session(
    a_data: &[u8],
    b_data: &[u8],
    window: u32,
    shuffle: &mut impl FnMut(&mut Vec<Vec<u8>>),
) -> (End, End) {
    let now = t0();
    let (mut a, mut b) = open_pair(window, window, now);
    let (mut a_end, mut b_end) = (End::default(), End::default());
    let (mut a_at, mut b_at) = (0, 0);
    for _ in 0..100_000 {
        for (session, data, at) in [(&mut a, a_data, &mut a_at), (&mut b, b_data, &mut b_at)] {
            let n = session.send_capacity().min(data.len() - *at);
            if n > 0 {
                session.handle_read(&data[*at..*at + n]).unwrap();
                *at += n;
            } else if *at == data.len() {
                session.handle_read_closed();
            }
        }
        let moved_a = carry(&mut a, &mut a_end, &mut b, now, shuffle, false);
        let moved_b = carry(&mut b, &mut b_end, &mut a, now, shuffle, false);
        if a.is_closed() && b.is_closed() && !moved_a && !moved_b {
            break;
        }
    }
    // What the inlet's socket was asked to write came from the outlet, and back.
    (a_end, b_end)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn every_message_round_trips_and_bad_bytes_are_refused() {
    for message in [
        PortalMessage::Open { window: 7 },
        PortalMessage::Opened { window: u32::MAX },
        PortalMessage::Data {
            offset: u64::MAX - 3,
            bytes: vec![1, 2, 3],
        },
        PortalMessage::Credit { written: 99 },
        PortalMessage::Fin { end: 0 },
        PortalMessage::Reset {
            reason: "gone".into(),
        },
    ] {
        assert_eq!(PortalMessage::decode(&message.encode()), Ok(message));
    }
    let too_big = [vec![2], vec![0; 8], vec![0; MAX_PORTAL_CHUNK + 1]].concat();
    for bad in [
        vec![],
        vec![6],
        vec![255, 0],
        vec![0, 0, 0, 0],
        vec![0, 0, 0, 0, 0, 0],
        // A window of 0: the other end could never send.
        vec![0, 0, 0, 0, 0],
        vec![1, 0, 0, 0, 0],
        vec![2, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![2, 0, 0],
        too_big,
        vec![3; 8],
        vec![4, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [vec![5], vec![b'x'; MAX_RESET_REASON + 1]].concat(),
        vec![5, 0xff, 0xfe],
    ] {
        assert!(
            matches!(PortalMessage::decode(&bad), Err(PortalError::Malformed(_))),
            "{bad:?}"
        );
    }
    // A long reason is cut to the limit, at a character boundary.
    let long = PortalMessage::Reset {
        reason: "é".repeat(150),
    };
    let PortalMessage::Reset { reason } = PortalMessage::decode(&long.encode()).unwrap() else {
        panic!()
    };
    assert_eq!(reason.len(), MAX_RESET_REASON);
}

proptest! {
    #[test]
    fn decoding_any_bytes_gives_a_value_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(message) = PortalMessage::decode(&bytes) {
            prop_assert_eq!(message.encode(), bytes);
        }
    }
}

#[test]
fn a_session_carries_both_streams_and_their_ends() {
    let (a_data, b_data) = (data(300_000, 1), data(123_457, 2));
    let (a_end, b_end) = run_session(&a_data, &b_data, 64 * 1024, &mut |_| {});
    assert_eq!(
        a_end.written, b_data,
        "the inlet's socket got the outlet's stream"
    );
    assert_eq!(b_end.written, a_data);
    assert!(a_end.shut && b_end.shut, "half-closes crossed");
    assert_eq!(a_end.closed, Some(Ok(())));
    assert_eq!(b_end.closed, Some(Ok(())));
}

#[test]
fn reordered_and_duplicated_messages_still_make_the_streams() {
    let (a_data, b_data) = (data(200_000, 3), data(90_000, 4));
    let mut n = 0u32;
    let (a_end, b_end) = run_session(&a_data, &b_data, 256 * 1024, &mut |batch| {
        n += 1;
        batch.reverse();
        if n % 3 == 0 {
            let copies: Vec<Vec<u8>> = batch.iter().take(2).cloned().collect();
            batch.extend(copies);
        }
    });
    assert_eq!(a_end.written, b_data);
    assert_eq!(b_end.written, a_data);
    assert_eq!(a_end.closed, Some(Ok(())));
}

#[test]
fn a_slow_writer_stops_the_sender_at_one_window() {
    let now = t0();
    let window = 100_000;
    let (mut a, mut b) = open_pair(window, window, now);
    assert_eq!(a.send_capacity(), window as usize);
    a.handle_read(&data(window as usize, 5)).unwrap();
    assert_eq!(a.send_capacity(), 0, "nothing more until credit");
    assert!(matches!(
        a.handle_read(&[1]),
        Err(PortalError::Violation(_))
    ));
    let mut b_end = End::default();
    // B writes nothing yet: no credit comes back.
    carry(&mut a, &mut End::default(), &mut b, now, &mut |_| {}, false);
    carry(&mut b, &mut b_end, &mut a, now, &mut |_| {}, true);
    assert_eq!(b_end.written.len(), window as usize);
    assert_eq!(a.send_capacity(), 0);
    // B's socket takes the bytes: credit flows, and A may send again.
    b.handle_written(window as usize);
    carry(&mut b, &mut End::default(), &mut a, now, &mut |_| {}, false);
    assert_eq!(a.send_capacity(), window as usize);
}

/// Something done to a session, in a table of cases.
type Action = Box<dyn Fn(&mut PortalSession)>;

#[test]
fn broken_rules_reset_the_session() {
    let now = t0();
    let cases: Vec<(Action, &str)> = vec![
        (
            Box::new(move |s| {
                s.handle_message(
                    &PortalMessage::Data {
                        offset: u64::from(DEFAULT_PORTAL_WINDOW),
                        bytes: vec![1],
                    }
                    .encode(),
                    now,
                )
            }),
            "past the window",
        ),
        (
            Box::new(move |s| {
                s.handle_message(&PortalMessage::Credit { written: 1 }.encode(), now)
            }),
            "credit for bytes never sent",
        ),
        (
            Box::new(move |s| {
                s.handle_message(&PortalMessage::Fin { end: 2 }.encode(), now);
                s.handle_message(
                    &PortalMessage::Data {
                        offset: 2,
                        bytes: vec![1],
                    }
                    .encode(),
                    now,
                )
            }),
            "past the end",
        ),
        (
            Box::new(move |s| s.handle_message(&PortalMessage::Open { window: 1 }.encode(), now)),
            "out of turn",
        ),
        (
            Box::new(move |s| s.handle_message(&[9, 9], now)),
            "unknown kind",
        ),
    ];
    for (act, why) in cases {
        let (mut a, _) = open_pair(DEFAULT_PORTAL_WINDOW, DEFAULT_PORTAL_WINDOW, now);
        act(&mut a);
        let outs = drain(&mut a);
        assert!(
            outs.iter()
                .any(|o| matches!(o, PortalOutput::Send(PortalMessage::Reset { .. }))),
            "{why}: the other end is told"
        );
        assert!(
            matches!(outs.last(), Some(PortalOutput::Closed(Err(e))) if e.to_string().contains(why)),
            "{why}: {outs:?}"
        );
        assert!(a.is_closed());
        // A closed session ignores what comes after.
        a.handle_message(&PortalMessage::Credit { written: 0 }.encode(), now);
        assert!(drain(&mut a).is_empty());
    }
}

#[test]
fn out_of_order_data_is_bounded_by_the_window() {
    let now = t0();
    let (mut a, _) = open_pair(100_000, 100_000, now);
    let chunk = |offset: u64| {
        PortalMessage::Data {
            offset,
            bytes: vec![0; 30_000],
        }
        .encode()
    };
    a.handle_message(&chunk(10_000), now);
    a.handle_message(&chunk(40_000), now);
    assert_eq!(a.buffered(), 60_000);
    // The same offset again replaces, not adds.
    a.handle_message(&chunk(10_000), now);
    assert_eq!(a.buffered(), 60_000);
    // Overlapping copies at other offsets count: up to the window, not past it.
    a.handle_message(&chunk(10_001), now);
    assert_eq!(a.buffered(), 90_000);
    assert!(!a.is_closed());
    a.handle_message(&chunk(10_002), now);
    assert!(a.is_closed(), "more than a window out of order");
    assert_eq!(a.buffered(), 0);
    // Once the gap fills, what waited is written in order, overlaps once.
    let (mut b, _) = open_pair(100_000, 100_000, now);
    b.handle_message(&chunk(20_000), now);
    b.handle_message(&chunk(10_000), now);
    b.handle_message(&chunk(0), now);
    let written: usize = drain(&mut b)
        .iter()
        .map(|o| match o {
            PortalOutput::Write(bytes) => bytes.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(written, 50_000);
    assert_eq!(b.buffered(), 0);
    assert_eq!(b.poll_timeout(), None, "no gap left");
}

#[test]
fn tiny_pieces_out_of_order_cost_their_bookkeeping() {
    let now = t0();
    let (mut a, _) = open_pair(100_000, 100_000, now);
    let mut held = 0;
    for i in 1..2_000u64 {
        let piece = PortalMessage::Data {
            offset: 2 * i,
            bytes: vec![1],
        };
        a.handle_message(&piece.encode(), now);
        if a.is_closed() {
            break;
        }
        held += 1;
    }
    // 129 counted per one-byte piece: about 775 pieces in a window of 100,000.
    assert_eq!(held, 100_000 / (AHEAD_ENTRY_COST + 1));
    let outs = drain(&mut a);
    assert!(matches!(
        outs.last(),
        Some(PortalOutput::Closed(Err(PortalError::Violation(_))))
    ));
}

#[test]
fn an_end_is_checked_against_the_furthest_data_and_missing_data_before_it_times_out() {
    let now = t0();
    // A long piece at 100 and a short one further on: the long one ends furthest.
    let (mut a, _) = open_pair(100_000, 100_000, now);
    for (offset, len) in [(100u64, 40_000usize), (200, 1)] {
        let data = PortalMessage::Data {
            offset,
            bytes: vec![0; len],
        };
        a.handle_message(&data.encode(), now);
    }
    a.handle_message(&PortalMessage::Fin { end: 201 }.encode(), now);
    assert!(a.is_closed(), "an end before data already sent");

    // An end announced past what arrived, with nothing held ahead: the missing tail
    // is a gap, and times out by name.
    let (mut b, _) = open_pair(100_000, 100_000, now);
    let data = PortalMessage::Data {
        offset: 0,
        bytes: vec![0; 50],
    };
    b.handle_message(&data.encode(), now);
    assert_eq!(b.poll_timeout(), None);
    b.handle_message(&PortalMessage::Fin { end: 100 }.encode(), now);
    let deadline = b.poll_timeout().expect("the missing tail is a gap");
    assert_eq!(deadline, now + GAP_TIMEOUT);
    b.handle_timeout(deadline);
    assert!(matches!(
        drain(&mut b).last(),
        Some(PortalOutput::Closed(Err(PortalError::Lost {
            offset: 50,
            ..
        })))
    ));
    // The tail arriving in time clears it.
    let (mut c, _) = open_pair(100_000, 100_000, now);
    c.handle_message(&PortalMessage::Fin { end: 10 }.encode(), now);
    assert!(c.poll_timeout().is_some());
    let tail = PortalMessage::Data {
        offset: 0,
        bytes: vec![0; 10],
    };
    c.handle_message(&tail.encode(), now);
    assert_eq!(c.poll_timeout(), None);
    assert!(drain(&mut c).contains(&PortalOutput::ShutdownWrite));
}

#[test]
fn a_reset_from_the_other_end_or_a_failed_target_ends_the_session_by_name() {
    let now = t0();
    let mut inlet = PortalSession::inlet(DEFAULT_PORTAL_WINDOW, now);
    let Some(PortalOutput::Send(open)) = inlet.poll_output() else {
        panic!()
    };
    let mut outlet = PortalSession::outlet(&open.encode(), DEFAULT_PORTAL_WINDOW).unwrap();
    outlet.handle_failed("connection refused by 127.0.0.1:1");
    let outs = drain(&mut outlet);
    let PortalOutput::Send(reset) = &outs[0] else {
        panic!()
    };
    inlet.handle_message(&reset.encode(), now);
    assert_eq!(
        drain(&mut inlet),
        vec![PortalOutput::Closed(Err(PortalError::Reset(
            "connection refused by 127.0.0.1:1".into()
        )))]
    );
    // A keepalive is a credit already given: the other end takes it as nothing new.
    let (mut inlet, mut outlet) = open_pair(64, 64, now);
    inlet.handle_keepalive();
    let outs = drain(&mut inlet);
    assert_eq!(
        outs,
        vec![PortalOutput::Send(PortalMessage::Credit { written: 0 })]
    );
    let PortalOutput::Send(keepalive) = &outs[0] else {
        panic!()
    };
    outlet.handle_message(&keepalive.encode(), now);
    assert!(drain(&mut outlet).is_empty() && !outlet.is_closed());
    // An unreachable other end closes the session by name, telling no one.
    let (mut inlet, _) = open_pair(64, 64, now);
    inlet.handle_unreachable("unknown address 0#gone");
    assert_eq!(
        drain(&mut inlet),
        vec![PortalOutput::Closed(Err(PortalError::Unreachable(
            "unknown address 0#gone".into()
        )))]
    );
    inlet.handle_unreachable("again");
    inlet.handle_failed("and again");
    assert!(drain(&mut inlet).is_empty() && inlet.is_closed());
    // Not an open: no outlet.
    assert!(PortalSession::outlet(&PortalMessage::Fin { end: 0 }.encode(), 1).is_err());
    assert!(PortalSession::outlet(&[], 1).is_err());
}

#[test]
fn an_unanswered_open_and_a_gap_that_stays_open_time_out() {
    let now = t0();
    let mut inlet = PortalSession::inlet(DEFAULT_PORTAL_WINDOW, now);
    let _ = drain(&mut inlet);
    assert_eq!(inlet.poll_timeout(), Some(now + OPEN_TIMEOUT));
    inlet.handle_timeout(now + OPEN_TIMEOUT - Duration::from_millis(1));
    assert!(!inlet.is_closed());
    inlet.handle_timeout(now + OPEN_TIMEOUT);
    assert!(matches!(
        drain(&mut inlet).last(),
        Some(PortalOutput::Closed(Err(PortalError::OpenTimeout(_))))
    ));
    assert_eq!(inlet.poll_timeout(), None);

    let (mut a, _) = open_pair(DEFAULT_PORTAL_WINDOW, DEFAULT_PORTAL_WINDOW, now);
    assert_eq!(a.poll_timeout(), None);
    a.handle_message(
        &PortalMessage::Data {
            offset: 10,
            bytes: vec![1],
        }
        .encode(),
        now,
    );
    assert_eq!(a.poll_timeout(), Some(now + GAP_TIMEOUT));
    a.handle_timeout(now + GAP_TIMEOUT);
    assert!(matches!(
        drain(&mut a).last(),
        Some(PortalOutput::Closed(Err(PortalError::Lost {
            offset: 0,
            ..
        })))
    ));
}

#[test]
fn a_half_closed_end_still_gets_the_reply() {
    let now = t0();
    let (mut a, mut b) = open_pair(DEFAULT_PORTAL_WINDOW, DEFAULT_PORTAL_WINDOW, now);
    let (mut a_end, mut b_end) = (End::default(), End::default());
    // The client sends a request and shuts down its write side at once.
    a.handle_read(b"GET /").unwrap();
    a.handle_read_closed();
    assert_eq!(a.send_capacity(), 0, "nothing read after the end");
    carry(&mut a, &mut a_end, &mut b, now, &mut |_| {}, false);
    carry(&mut b, &mut b_end, &mut a, now, &mut |_| {}, false);
    assert_eq!(b_end.written, b"GET /");
    assert!(b_end.shut, "the target sees the half-close");
    assert!(!a.is_closed() && !b.is_closed());
    // The reply still comes back, then B's end.
    b.handle_read(b"200 OK").unwrap();
    b.handle_read_closed();
    for _ in 0..4 {
        carry(&mut b, &mut b_end, &mut a, now, &mut |_| {}, false);
        carry(&mut a, &mut a_end, &mut b, now, &mut |_| {}, false);
    }
    assert_eq!(a_end.written, b"200 OK");
    assert!(a_end.shut);
    assert_eq!(a_end.closed, Some(Ok(())));
    assert_eq!(b_end.closed, Some(Ok(())));
}

#[test]
fn the_documented_windows_and_reason_limit_hold() {
    // docs/PROTOCOL.md section 11: 1 MiB by default, at most 64 MiB.
    assert_eq!(DEFAULT_PORTAL_WINDOW, 1_048_576);
    assert_eq!(MAX_PORTAL_WINDOW, 67_108_864);
    let mut big = PortalSession::inlet(u32::MAX, t0());
    assert_eq!(
        big.poll_output(),
        Some(PortalOutput::Send(PortalMessage::Open {
            window: MAX_PORTAL_WINDOW
        }))
    );
    // A long reason is cut to 200 bytes at a character boundary: 'é' is two bytes,
    // and 199 ASCII bytes leave no room for the next one.
    let reason = format!("{}{}", "x".repeat(199), "é".repeat(10));
    let encoded = PortalMessage::Reset { reason }.encode();
    assert_eq!(encoded.len(), 1 + 199);
    assert_eq!(
        PortalMessage::decode(&encoded),
        Ok(PortalMessage::Reset {
            reason: "x".repeat(199)
        })
    );
}

#[test]
fn each_end_opens_and_ends_once() {
    let now = t0();
    // An inlet is not connected to a target: that call does nothing.
    let mut inlet = PortalSession::inlet(64, now);
    drain(&mut inlet);
    inlet.handle_connected();
    assert!(drain(&mut inlet).is_empty());
    // An outlet connects once: a second call sends no second Opened.
    let open = PortalMessage::Open { window: 64 }.encode();
    let mut outlet = PortalSession::outlet(&open, 64).unwrap();
    // Before it is connected, its stream cannot end: nothing to say.
    outlet.handle_read_closed();
    assert!(drain(&mut outlet).is_empty());
    // An Opened is the outlet's to send, not to receive.
    let mut confused = PortalSession::outlet(&open, 64).unwrap();
    confused.handle_message(&PortalMessage::Opened { window: 64 }.encode(), now);
    assert!(matches!(
        drain(&mut confused).last(),
        Some(PortalOutput::Closed(Err(PortalError::Violation(_))))
    ));
    outlet.handle_connected();
    assert_eq!(drain(&mut outlet).len(), 2);
    outlet.handle_connected();
    assert!(drain(&mut outlet).is_empty());
    // Its stream ends once.
    outlet.handle_read_closed();
    assert_eq!(
        drain(&mut outlet),
        vec![PortalOutput::Send(PortalMessage::Fin { end: 0 })]
    );
    outlet.handle_read_closed();
    assert!(drain(&mut outlet).is_empty());
}

#[test]
fn credit_goes_back_at_half_a_window_or_when_all_is_written() {
    let now = t0();
    let (mut a, _) = open_pair(100, 100, now);
    let data = PortalMessage::Data {
        offset: 0,
        bytes: vec![7; 80],
    };
    a.handle_message(&data.encode(), now);
    assert_eq!(drain(&mut a), vec![PortalOutput::Write(vec![7; 80])]);
    let credits = |a: &mut PortalSession| -> Vec<u64> {
        drain(a)
            .into_iter()
            .filter_map(|o| match o {
                PortalOutput::Send(PortalMessage::Credit { written }) => Some(written),
                _ => None,
            })
            .collect()
    };
    a.handle_written(49);
    assert_eq!(credits(&mut a), Vec::<u64>::new(), "49 of a window of 100");
    a.handle_written(1);
    assert_eq!(credits(&mut a), vec![50], "half a window");
    a.handle_written(29);
    assert_eq!(
        credits(&mut a),
        Vec::<u64>::new(),
        "29 more, 1 still to write"
    );
    a.handle_written(1);
    assert_eq!(credits(&mut a), vec![80], "everything received is written");
    a.handle_written(0);
    assert_eq!(credits(&mut a), Vec::<u64>::new(), "nothing new");
    // More written than received is capped: the credit never runs ahead.
    a.handle_written(500);
    assert_eq!(credits(&mut a), Vec::<u64>::new());
    // A closed session gives no credit.
    let (mut b, _) = open_pair(100, 100, now);
    b.handle_message(&data.encode(), now);
    b.handle_failed("gone");
    drain(&mut b);
    b.handle_written(80);
    assert_eq!(credits(&mut b), Vec::<u64>::new());
}

#[test]
fn the_edges_of_reassembly() {
    let now = t0();
    let data = |offset: u64, len: usize| PortalMessage::Data {
        offset,
        bytes: vec![3; len],
    };
    let written = |outs: &[PortalOutput]| -> usize {
        outs.iter()
            .map(|o| match o {
                PortalOutput::Write(b) => b.len(),
                _ => 0,
            })
            .sum()
    };
    // Exactly a window of cost held ahead is allowed; one byte more is not.
    let (mut a, _) = open_pair(1000, 1000, now);
    a.handle_message(&data(1, 1000 - AHEAD_ENTRY_COST).encode(), now);
    assert!(!a.is_closed(), "a cost of exactly the window");
    let (mut a, _) = open_pair(1000, 1000, now);
    a.handle_message(&data(1, 1000 - AHEAD_ENTRY_COST + 1).encode(), now);
    assert!(a.is_closed(), "a cost of the window and a byte");
    // A one-byte piece right after a one-byte gap is written once the gap fills.
    let (mut b, _) = open_pair(1000, 1000, now);
    b.handle_message(&data(1, 1).encode(), now);
    b.handle_message(&data(0, 1).encode(), now);
    assert_eq!(written(&drain(&mut b)), 2);
    // What is taken from ahead leaves exactly the rest counted.
    let (mut c, _) = open_pair(1000, 1000, now);
    c.handle_message(&data(10, 10).encode(), now);
    c.handle_message(&data(30, 5).encode(), now);
    assert_eq!(c.buffered(), 15);
    c.handle_message(&data(0, 10).encode(), now);
    assert_eq!(c.buffered(), 5);
    assert_eq!(written(&drain(&mut c)), 20);
    // With an end announced further on, data in order does not close the gap.
    let (mut d, _) = open_pair(1000, 1000, now);
    d.handle_message(&PortalMessage::Fin { end: 100 }.encode(), now);
    d.handle_message(&data(0, 50).encode(), now);
    assert!(d.poll_timeout().is_some(), "50 bytes still missing");
    let outs = drain(&mut d);
    assert!(!outs.contains(&PortalOutput::ShutdownWrite), "{outs:?}");
    d.handle_message(&data(50, 50).encode(), now);
    assert_eq!(d.poll_timeout(), None);
    let outs = drain(&mut d);
    assert_eq!(
        outs.iter()
            .filter(|o| **o == PortalOutput::ShutdownWrite)
            .count(),
        1
    );
    // An end exactly where the data stopped leaves nothing missing: no timer, and the
    // write side is shut once.
    let (mut e, _) = open_pair(1000, 1000, now);
    e.handle_message(&data(0, 50).encode(), now);
    assert!(!drain(&mut e).contains(&PortalOutput::ShutdownWrite));
    e.handle_message(&PortalMessage::Fin { end: 50 }.encode(), now);
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(drain(&mut e), vec![PortalOutput::ShutdownWrite]);
    e.handle_written(50);
    assert!(!drain(&mut e).contains(&PortalOutput::ShutdownWrite));
}
