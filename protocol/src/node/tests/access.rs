//! Access rules: who may reach a mailbox, a channel, a listener.

use super::*;

// ---- Refused (access rules) -----------------------------------------------------------

/// A local sender refused by a mailbox's rule gets `Refused` naming the address, its
/// origin and the rule, synchronously; the refusal is counted, nothing is delivered.
#[test]
fn a_local_sender_refused_by_a_rule_is_told_with_the_address_and_rule() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::local_only(), now).unwrap();
    let closed = Address::local("closed");
    core.register(closed.clone(), Access::no_one(), now)
        .unwrap();
    let result = core.handle_send(
        &app(),
        TransportMessage::new(route!["closed"], route!["app"], b"x".to_vec()),
        now,
    );
    assert_eq!(
        result,
        Err(NodeError::Refused {
            address: closed,
            origin: Origin::Local,
            rule: "0#closed takes messages only from no one".into(),
        })
    );
    assert!(drain(&mut core).is_empty());
    let stats = core.stats();
    assert_eq!(stats.messages_refused, 1);
    // Only the refusal, not also a delivery failure: the sender has its error.
    assert_eq!(stats.delivery_failures, 0);
}

/// Plain frames from a connection to mailboxes that take channels only: each refused
/// and counted, no event per message (a hostile peer cannot fill the event queue with
/// them), the connection stays open, and a mailbox that takes transport still gets its
/// message with its origin. Each refusal is reported back along the return route,
/// within the node's rate of reports.
#[test]
fn plain_frames_to_protected_mailboxes_are_refused_without_events() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        max_reports_per_second: 10,
        ..NodeConfig::default()
    });
    core.register(app(), Access::secure_channels(), now)
        .unwrap();
    let open = Address::local("open");
    core.register(open.clone(), Access::anyone(), now).unwrap();
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    let _ = drain(&mut core);
    let to = |to: &str| TransportMessage::new(route![to], route!["x"], vec![1]);
    let mut messages = vec![to("app"); 100];
    messages.push(to("open"));
    core.handle_received(conn, &frames(&messages), now);
    let outputs = drain(&mut core);
    let delivered: Vec<_> = outputs
        .iter()
        .filter(|o| !matches!(o, Output::Transmit { .. }))
        .collect();
    match delivered.as_slice() {
        [Output::Deliver {
            address, origin, ..
        }] => {
            assert_eq!(*address, open);
            assert_eq!(*origin, Origin::Transport { connection: conn });
        }
        other => panic!("expected one delivery, got {other:?}"),
    }
    let reports = reports_in(&outputs);
    assert_eq!(reports.len(), 10, "the rate of reports holds");
    for (to, report) in &reports {
        assert_eq!(*to, route!["x"], "back along the return route");
        assert_eq!(report.code, crate::report::ReportCode::Refused);
        assert_eq!(report.address, app());
        assert!(!report.detail.contains("secure"), "the rule is not told");
    }
    assert_eq!(core.stats().reports_sent, 10);
    assert_eq!(core.stats().reports_suppressed, 90);
    assert_eq!(core.stats().messages_refused, 100);
    assert_eq!(core.stats().delivery_failures, 0);
    assert_eq!(core.connection_count(), 1, "the connection stays open");
    // A second later, reports go again; a report itself is never answered.
    let later = now + std::time::Duration::from_secs(1);
    let report = crate::report::Report::new(crate::report::ReportCode::Failed, app(), "");
    core.handle_received(
        conn,
        &frames(&[to("app"), report.into_message(route!["app"])])[crate::framing::PREAMBLE.len()..],
        later,
    );
    assert_eq!(reports_in(&drain(&mut core)).len(), 1);
    assert_eq!(core.stats().messages_refused, 102);
}

/// A channel's encryptor takes messages only from its own node by default: a plain
/// frame addressed to it is refused (the injection attack), while the node's own
/// senders still use the channel.
#[test]
fn a_frame_to_an_encryptor_is_refused_unless_the_channel_allows_it() {
    let now = Instant::now();
    for (ingress, refused) in [
        (ChannelRules::new(), true),
        (ChannelRules::new().ingress(Access::anyone()), false),
    ] {
        let (mut core, encryptor) =
            local_channel_with(NodeConfig::default(), ChannelRules::new(), ingress);
        let conn = core.handle_incoming_connection("attacker:1".into(), now);
        let injected = TransportMessage::new(
            route![encryptor.clone(), "app"],
            route!["x"],
            b"injected".to_vec(),
        );
        core.handle_received(conn, &frames(&[injected]), now);
        let delivered: Vec<Origin> = drain(&mut core)
            .into_iter()
            .filter_map(|o| match o {
                Output::Deliver { origin, .. } => Some(origin),
                _ => None,
            })
            .collect();
        if refused {
            assert!(delivered.is_empty(), "{delivered:?}");
            assert_eq!(core.stats().messages_refused, 1);
        } else {
            // Widened on purpose: the message went through the channel.
            assert!(
                matches!(delivered.as_slice(), [Origin::Channel { .. }]),
                "{delivered:?}"
            );
            assert_eq!(core.stats().messages_refused, 0);
        }
        // The node's own sender uses the channel either way.
        core.handle_send(
            &app(),
            TransportMessage::new(route![encryptor, "app"], route!["app"], b"own".to_vec()),
            now,
        )
        .unwrap();
        assert!(drain(&mut core).iter().any(|o| matches!(
            o,
            Output::Deliver { origin: Origin::Channel { .. }, message, .. } if message.payload == b"own"
        )));
    }
}

/// A listener whose channels deliver only to "public": a message through one of them
/// to any other first hop is refused with the channel's rule; to "public" it goes.
#[test]
fn a_channel_delivers_only_where_its_listener_allows() {
    let now = Instant::now();
    let (mut core, encryptor) = local_channel_with(
        NodeConfig::default(),
        ChannelRules::new().deliver_only_to(["public"]),
        ChannelRules::new(),
    );
    let public = Address::local("public");
    core.register(public.clone(), Access::anyone(), now)
        .unwrap();
    let through = |to: Route| {
        let mut onward = route![encryptor.clone()];
        for a in to.iter() {
            onward.append(a.clone());
        }
        TransportMessage::new(onward, route!["app"], b"m".to_vec())
    };
    let refused = core.handle_send(&app(), through(route!["app"]), now);
    match refused {
        Err(NodeError::Refused {
            address,
            origin: Origin::Channel { peer, .. },
            rule,
        }) => {
            assert_eq!(address, app());
            assert_eq!(*peer, identity(1).identifier());
            assert!(rule.contains("delivers only to 0#public"), "{rule}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A TCP first hop is not on the list either.
    assert!(matches!(
        core.handle_send(&app(), through(route![tcp("elsewhere:1"), "x"]), now),
        Err(NodeError::Refused { .. })
    ));
    core.handle_send(&app(), through(route!["public"]), now)
        .unwrap();
    assert!(drain(&mut core).iter().any(
        |o| matches!(o, Output::Deliver { address, origin: Origin::Channel { .. }, .. } if *address == public)
    ));
    assert_eq!(core.stats().messages_refused, 2);
}

/// A listener that takes hellos only from its own node refuses a hello from a
/// connection before any handshake work, and creates no channel end.
#[test]
fn a_listener_refuses_hellos_its_rule_does_not_admit() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    listen(
        &mut core,
        ChannelRules::new().hellos(Access::local_only()),
        now,
    )
    .unwrap();
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
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    let _ = drain(&mut core);
    core.handle_received(
        conn,
        &frames(&[TransportMessage::new(route!["secure"], route!["x"], hello)]),
        now,
    );
    let outputs = drain(&mut core);
    let reports = reports_in(&outputs);
    assert_eq!(outputs.len(), 1, "no handshake answer, only a report");
    assert_eq!(reports[0].1.code, crate::report::ReportCode::Refused);
    assert_eq!(core.channel_count(), 0);
    assert_eq!(core.stats().messages_refused, 1);
    assert_eq!(
        core.stats().hellos_rejected,
        0,
        "refused before it is read as a hello"
    );
    // From this node, the same listener answers.
    core.register(app(), Access::anyone(), now).unwrap();
    open_channel(&mut core, route!["secure"], ChannelRules::new(), now).unwrap();
    assert_eq!(core.channel_count(), 2);
}

/// A message from a connection that waits for room in a full mailbox keeps its origin
/// through the stall.
#[test]
fn a_stalled_message_keeps_its_origin() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        mailbox_capacity: 1,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    let _ = drain(&mut core);
    let m = TransportMessage::new(route!["app"], route!["x"], vec![1]);
    core.handle_received(conn, &frames(&[m.clone(), m]), now);
    let _ = drain(&mut core);
    assert!(core.is_reading_paused(conn));
    core.handle_consumed(&app(), now);
    let origins: Vec<Origin> = drain(&mut core)
        .into_iter()
        .filter_map(|o| match o {
            Output::Deliver { origin, .. } => Some(origin),
            _ => None,
        })
        .collect();
    assert_eq!(origins, [Origin::Transport { connection: conn }]);
}
