//! Every refusal a command or send returns, with its fields.

use super::*;

// ---- TooManyChannels ------------------------------------------------------------------

#[test]
fn a_channel_past_max_channels_is_refused_until_one_goes() {
    let now = Instant::now();
    let config = NodeConfig {
        max_channels: 2,
        ..NodeConfig::default()
    };
    let (mut core, encryptor) = local_channel(config);
    let refused = open_channel(&mut core, route!["secure"], ChannelRules::new(), now);
    assert_eq!(
        refused.map(|_| ()),
        Err(NodeError::TooManyChannels { limit: 2 })
    );
    assert_eq!(core.channel_count(), 2);
    assert!(drain(&mut core).is_empty(), "no hello went out");

    // Closing the channel removes both ends; there is room again.
    core.close_channel(&encryptor, now);
    let _ = drain(&mut core);
    assert_eq!(core.channel_count(), 0);
    open_channel(&mut core, route!["secure"], ChannelRules::new(), now).unwrap();
}

// ---- RoutingLoop ----------------------------------------------------------------------

/// Through a channel whose both ends are in this node, each pass costs two local hops
/// (the encryptor, then the record at the decryptor), and delivery one more: a route
/// of two passes takes exactly five.
#[test]
fn more_local_hops_than_max_local_hops_is_a_routing_loop() {
    let now = Instant::now();
    let config = NodeConfig {
        max_local_hops: 5,
        ..NodeConfig::default()
    };
    let (mut core, channel) = local_channel(config);

    let twice = route![channel.clone(), channel.clone(), "app"];
    core.handle_send(
        &app(),
        TransportMessage::new(twice, route!["app"], b"5".to_vec()),
        now,
    )
    .unwrap();
    let delivered = drain(&mut core)
        .into_iter()
        .filter(|o| matches!(o, Output::Deliver { .. }))
        .count();
    assert_eq!(delivered, 1, "five hops is the limit, not past it");
    core.handle_consumed(&app(), now);

    let thrice = route![channel.clone(), channel.clone(), channel, "app"];
    let result = core.handle_send(
        &app(),
        TransportMessage::new(thrice, route!["app"], b"7".to_vec()),
        now,
    );
    assert_eq!(result, Err(NodeError::RoutingLoop { limit: 5 }));
    assert!(
        !drain(&mut core)
            .iter()
            .any(|o| matches!(o, Output::Deliver { .. })),
        "the looping message is dropped"
    );
}

// ---- UnsupportedTransport -------------------------------------------------------------

#[test]
fn addresses_of_transports_the_node_does_not_carry_are_refused() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::anyone(), now).unwrap();

    // Only local addresses can be registered, as mailboxes or listeners.
    let remote = Address::tcp("127.0.0.1:4000");
    assert_eq!(
        core.register(remote.clone(), Access::anyone(), now),
        Err(NodeError::UnsupportedTransport(remote.clone()))
    );
    assert_eq!(
        core.create_channel_listener(
            remote.clone(),
            identity(2),
            everyone(),
            ChannelConfig::default(),
            ChannelRules::new(),
            now
        ),
        Err(NodeError::UnsupportedTransport(remote.clone()))
    );
    assert!(!core.has_address(&remote));

    // A message to a transport type that has no transport here.
    let custom = Address::new(TransportType(9), b"broker:1".to_vec()).unwrap();
    let message = TransportMessage::new(route![custom.clone(), "x"], route!["app"], b"x".to_vec());
    assert_eq!(
        core.handle_send(&app(), message, now),
        Err(NodeError::UnsupportedTransport(custom))
    );
    // A TCP address whose value is not `host:port` text.
    let garbled = Address::new(TransportType::TCP, vec![0xff, 0xfe]).unwrap();
    let message = TransportMessage::new(route![garbled.clone(), "x"], route!["app"], b"x".to_vec());
    assert_eq!(
        core.handle_send(&app(), message, now),
        Err(NodeError::UnsupportedTransport(garbled))
    );
    assert!(drain(&mut core).is_empty(), "nothing was dialled");
    assert_eq!(core.connection_count(), 0);
}

// ---- AddressInUse ---------------------------------------------------------------------

#[test]
fn a_taken_address_cannot_be_taken_again() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::anyone(), now).unwrap();
    assert_eq!(
        core.register(app(), Access::anyone(), now),
        Err(NodeError::AddressInUse(app()))
    );
    assert_eq!(
        core.create_channel_listener(
            app(),
            identity(2),
            everyone(),
            ChannelConfig::default(),
            ChannelRules::new(),
            now
        ),
        Err(NodeError::AddressInUse(app()))
    );
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
    assert_eq!(
        core.register(secure.clone(), Access::anyone(), now),
        Err(NodeError::AddressInUse(secure.clone()))
    );
    assert_eq!(
        core.create_channel_listener(
            secure.clone(),
            identity(3),
            everyone(),
            ChannelConfig::default(),
            ChannelRules::new(),
            now
        ),
        Err(NodeError::AddressInUse(secure))
    );

    // The mailbox that was there first still takes messages.
    core.handle_send(
        &app(),
        TransportMessage::new(route!["app"], route!["app"], b"x".to_vec()),
        now,
    )
    .unwrap();
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Output::Deliver { address, .. }] if *address == app()
    ));
}

// ---- Message --------------------------------------------------------------------------

/// A message to a TCP peer is encoded before anything is dialled: one that breaks a
/// message limit is refused with the limit, at exactly the limit it goes.
#[test]
fn a_message_past_a_limit_is_refused_before_any_connection() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::anyone(), now).unwrap();
    let to = |payload: usize, back: Route| {
        TransportMessage::new(route![tcp("b:4000"), "x"], back, vec![0x5a; payload])
    };

    let too_large = core.handle_send(&app(), to(MAX_PAYLOAD_LEN + 1, route!["app"]), now);
    assert_eq!(
        too_large,
        Err(NodeError::Message(MessageError::PayloadTooLarge {
            len: MAX_PAYLOAD_LEN + 1
        }))
    );
    let long_back: Route = (0..=MAX_ROUTE_LEN)
        .map(|i| Address::local(format!("r{i}")))
        .collect();
    let too_long = core.handle_send(&app(), to(1, long_back), now);
    assert_eq!(
        too_long,
        Err(NodeError::Message(MessageError::RouteTooLong {
            which: "return",
            len: MAX_ROUTE_LEN + 1
        }))
    );
    let mut long_onward: Route = (0..=MAX_ROUTE_LEN)
        .map(|i| Address::local(format!("o{i}")))
        .collect();
    long_onward.prepend(tcp("b:4000"));
    let too_long = core.handle_send(
        &app(),
        TransportMessage::new(long_onward, route!["app"], b"x".to_vec()),
        now,
    );
    assert_eq!(
        too_long,
        Err(NodeError::Message(MessageError::RouteTooLong {
            which: "onward",
            len: MAX_ROUTE_LEN + 1
        }))
    );
    assert!(drain(&mut core).is_empty(), "nothing was dialled");
    assert_eq!(core.connection_count(), 0);

    // At the limits: accepted, and waiting for the connection.
    let full_back: Route = (0..MAX_ROUTE_LEN)
        .map(|i| Address::local(format!("r{i}")))
        .collect();
    core.handle_send(&app(), to(MAX_PAYLOAD_LEN, full_back), now)
        .unwrap();
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Output::Connect { peer, .. }] if *peer == tcp("b:4000")
    ));
}

/// The sender's own frame limit: a message whose frame is exactly `max_frame_len` goes,
/// one byte more is refused as a message that cannot be sent.
#[test]
fn a_frame_past_max_frame_len_is_refused_at_the_sender() {
    let now = Instant::now();
    let message = |payload: usize| {
        TransportMessage::new(route![tcp("b:4000"), "x"], route!["app"], vec![1; payload])
    };
    // What goes in the frame: the message with the TCP hop taken off.
    let mut on_the_wire = message(1000);
    let _ = on_the_wire.onward_route.step();
    let limit = on_the_wire.encoded_len();
    let config = NodeConfig {
        max_frame_len: u32::try_from(limit).unwrap(),
        ..NodeConfig::default()
    };

    let mut core = core(config);
    core.register(app(), Access::anyone(), now).unwrap();
    core.handle_send(&app(), message(1000), now).unwrap();
    let refused = core.handle_send(&app(), message(1001), now);
    let reason = FramingError::FrameTooLarge {
        len: limit as u64 + 1,
        max: u32::try_from(limit).unwrap(),
    }
    .to_string();
    assert_eq!(
        refused,
        Err(NodeError::Message(MessageError::Malformed {
            offset: None,
            reason
        }))
    );
}

// ---- Random ---------------------------------------------------------------------------

#[test]
fn a_failing_random_source_is_reported_and_leaves_nothing_behind() {
    let now = Instant::now();
    let mut core = failing_after(0);
    core.register(app(), Access::anyone(), now).unwrap();

    // A channel needs an ephemeral key and two fresh addresses.
    let channel = open_channel(&mut core, route!["secure"], ChannelRules::new(), now);
    assert_eq!(channel.map(|_| ()), Err(NodeError::Random(RandomError)));
    // A new connection needs a fresh alias.
    let message = TransportMessage::new(route![tcp("b:4000"), "x"], route!["app"], b"x".to_vec());
    assert_eq!(
        core.handle_send(&app(), message, now),
        Err(NodeError::Random(RandomError))
    );
    assert!(drain(&mut core).is_empty());
    assert_eq!(core.channel_count(), 0);
    assert_eq!(core.connection_count(), 0);
    // An incoming connection that cannot get an alias is closed at once.
    let incoming = core.handle_incoming_connection("peer:1".into(), now);
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Output::Close { connection }] if *connection == incoming
    ));
    assert_eq!(core.connection_count(), 0);

    // The source failing at any later point of a channel's creation (after the key,
    // between the two addresses) fails it the same way, with nothing left over.
    let mut failures = 0;
    for left in 1..16 {
        let mut core = failing_after(left);
        core.register(Address::local("sink"), Access::anyone(), now)
            .unwrap();
        let created = open_channel(&mut core, route!["sink"], ChannelRules::new(), now);
        match created {
            Err(error) => {
                assert_eq!(error, NodeError::Random(RandomError), "after {left} fills");
                assert_eq!(core.channel_count(), 0, "after {left} fills");
                assert!(drain(&mut core).is_empty(), "after {left} fills");
                failures += 1;
            }
            // Enough randomness: the hello went to the sink.
            Ok(_) => break,
        }
    }
    assert!(failures >= 2, "only {failures} points of failure reached");
}

/// A `max_stall` too large to add to the clock: a connection's message waits for room
/// without a deadline, instead of the core panicking on `Instant` overflow.
#[test]
fn an_unbounded_max_stall_waits_without_a_deadline() {
    let now = Instant::now();
    let mut core = core(NodeConfig {
        mailbox_capacity: 1,
        max_stall: std::time::Duration::MAX,
        keepalive_interval: std::time::Duration::MAX,
        ..NodeConfig::default()
    });
    core.register(app(), Access::anyone(), now).unwrap();
    let conn = core.handle_incoming_connection("peer:1".into(), now);
    let mut bytes = crate::framing::PREAMBLE.to_vec();
    for _ in 0..2 {
        let m = TransportMessage::new(route!["app"], route!["x"], vec![1]);
        let encoded = m.to_bytes().unwrap();
        bytes.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&encoded);
    }
    core.handle_received(conn, &bytes, now);
    let outputs = drain(&mut core);
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::PauseReading { connection } if *connection == conn)));
    assert!(core.is_reading_paused(conn));
    assert_eq!(core.poll_timeout(), None, "no deadline to wake for");
    core.handle_consumed(&app(), now);
    assert!(drain(&mut core)
        .iter()
        .any(|o| matches!(o, Output::ResumeReading { connection } if *connection == conn)));
    assert!(!core.is_reading_paused(conn));
}
