//! Liveness in the node core: keepalives between channel ends, and reports of what
//! could not be delivered.

use std::time::{Duration, Instant};

use super::*;
use crate::report::{report_marker, Report, ReportCode};

/// Two ends of a channel inside one node keep each other alive with keepalives for
/// as long as time runs, and no timer is ever late or missing.
#[test]
fn a_quiet_channel_lives_on_keepalives() {
    let (mut core, _) = local_channel(NodeConfig::default());
    let start = Instant::now();
    let mut now = start;
    let mut timeouts = 0;
    while now < start + Duration::from_secs(600) {
        now = core.poll_timeout().expect("keepalive timers");
        core.handle_timeout(now);
        let _ = drain(&mut core);
        timeouts += 1;
    }
    assert_eq!(core.channel_count(), 2, "both ends alive after 10 minutes");
    // One keepalive per end per interval (10 s), give or take the ends' phase.
    assert!((55..=125).contains(&timeouts), "{timeouts} timer rounds");
}

/// A message from another node to an address nothing here has is reported back along
/// its return route as an unknown address; a report never gets one, nor a message
/// with an empty return route.
#[test]
fn an_unknown_address_is_reported_back() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    let _ = drain(&mut core);
    let gone = Address::local("0123456789abcdef");
    let record = TransportMessage::new(route![gone.clone()], route!["my-end"], vec![4; 40]);
    let report = Report::new(ReportCode::UnknownAddress, gone.clone(), "")
        .into_message(route![gone.clone()]);
    let unanswerable = TransportMessage::new(route![gone.clone()], Route::new(), vec![1]);
    core.handle_received(conn, &frames(&[record, report, unanswerable]), now);
    let reports = reports_in(&drain(&mut core));
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (to, report) = &reports[0];
    assert_eq!(*to, route!["my-end"]);
    assert_eq!(report.code, ReportCode::UnknownAddress);
    assert_eq!(report.address, gone);
    assert_eq!(core.stats().reports_sent, 1);
    assert_eq!(core.connection_count(), 1, "the connection stays open");
    assert!(report_marker().to_string().starts_with("255#"));
}

/// A sender to a channel end that ended is told why it ended, not only that the
/// address is unknown.
#[test]
fn a_sender_to_a_closed_channel_is_told_it_closed() {
    let (mut core, encryptor) = local_channel(NodeConfig::default());
    let now = Instant::now();
    core.close_channel(&encryptor, now);
    let _ = drain(&mut core);
    let error = core
        .handle_send(&app(), local_to(route![encryptor.clone(), "app"]), now)
        .expect_err("the channel is gone");
    assert_eq!(
        error,
        NodeError::Channel {
            address: encryptor,
            error: crate::channel::ChannelError::Closed,
        }
    );
}

/// A peer that stops sending (half-close) still gets what is queued for it: the
/// connection closes only once that is written, or at once if nothing is queued.
#[test]
fn a_half_closed_connection_is_closed_after_its_replies_are_written() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    let _ = drain(&mut core);
    // A frame to an unknown address: its report is queued for the peer.
    let record = TransportMessage::new(route!["nobody"], route!["back"], vec![1]);
    core.handle_received(conn, &frames(&[record]), now);
    assert_eq!(reports_in(&drain(&mut core)).len(), 1);
    // The preamble and the report.
    let queued = core.connection_backlog(conn).unwrap();
    core.handle_read_closed(conn, now);
    // Bytes "after" the end of the stream are not routed.
    let late = TransportMessage::new(route!["nobody"], route!["back"], vec![2]);
    core.handle_received(
        conn,
        &frames(&[late])[crate::framing::PREAMBLE.len()..],
        now,
    );
    assert!(
        !drain(&mut core)
            .iter()
            .any(|o| matches!(o, Output::Close { .. })),
        "the report is still to be written"
    );
    assert_eq!(core.connection_count(), 1);
    core.handle_written(conn, queued - 1, now);
    assert_eq!(core.connection_count(), 1, "one byte is left");
    core.handle_written(conn, 1, now);
    let outputs = drain(&mut core);
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Close { connection } if *connection == conn)));
    assert_eq!(core.connection_count(), 0);

    // Nothing queued: closed at once.
    let conn = core.handle_incoming_connection("peer:2".into(), now);
    let _ = drain(&mut core);
    core.handle_written(conn, core.connection_backlog(conn).unwrap(), now);
    core.handle_read_closed(conn, now);
    assert!(drain(&mut core)
        .iter()
        .any(|o| matches!(o, Output::Close { .. })));

    // Never written: closed at the frame deadline.
    let conn = core.handle_incoming_connection("peer:3".into(), now);
    let _ = drain(&mut core);
    core.handle_read_closed(conn, now);
    assert_eq!(core.connection_count(), 1);
    let deadline = core.poll_timeout().expect("a drain deadline");
    assert_eq!(deadline, now + NodeConfig::default().frame_timeout);
    core.handle_timeout(deadline);
    assert_eq!(core.connection_count(), 0);
    assert_eq!(core.stats().connections_timed_out, 1);
}

/// A tracked send that fails after it returned is reported with its id; an untracked
/// one with 0.
#[test]
fn a_tracked_send_is_reported_with_its_id() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    let tracked = TransportMessage::new(route![tcp("x:1"), "w"], route!["app"], vec![1]);
    core.handle_send_tracked(&app(), tracked, 7, now).unwrap();
    let plain = TransportMessage::new(route![tcp("y:1"), "w"], route!["app"], vec![1]);
    core.handle_send(&app(), plain, now).unwrap();
    let connects: Vec<ConnectionId> = drain(&mut core)
        .into_iter()
        .filter_map(|o| match o {
            Output::Connect { connection, .. } => Some(connection),
            _ => None,
        })
        .collect();
    for connection in connects {
        core.handle_connect_failed(connection, "refused", now);
    }
    let sends: Vec<(String, u64)> = drain(&mut core)
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(NodeEvent::DeliveryFailed {
                error: NodeError::ConnectFailed { peer, .. },
                send,
                ..
            }) => Some((peer, send)),
            _ => None,
        })
        .collect();
    assert_eq!(sends, [("x:1".to_owned(), 7), ("y:1".to_owned(), 0)]);
}
