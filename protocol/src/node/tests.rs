//! Unit tests of the node core's refusals: every [`NodeError`] variant that a command
//! or a send can return, produced by the call that meets it, with its fields, and the
//! core left as it was.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::channel::ChannelConfig;
use crate::framing::FramingError;
use crate::message::{MessageError, MAX_PAYLOAD_LEN};
use crate::random::{RandomError, SeededRandom};
use crate::routing::MAX_ROUTE_LEN;
use crate::trust::TrustEveryone;
use crate::{route, tcp};

fn core(config: NodeConfig) -> NodeCore {
    NodeCore::new(config, Box::new(SeededRandom::new(7)))
}

fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]).unwrap())
}

fn everyone() -> Arc<dyn TrustPolicy> {
    Arc::new(TrustEveryone)
}

fn app() -> Address {
    Address::local("app")
}

fn drain(core: &mut NodeCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// A core with a mailbox "app", a channel listener "secure", and a channel from the
/// same node to it, established (a local handshake completes inside
/// `create_channel`). Returns the core and the initiator's encryptor address. The
/// initiator takes messages out of secure channels as well as local ones, so that a
/// route may pass through it more than once.
fn local_channel(config: NodeConfig) -> (NodeCore, Address) {
    local_channel_with(
        config,
        ChannelRules::new(),
        ChannelRules::new().ingress(Access::secure_channels()),
    )
}

/// As [`local_channel`], with the listener's and the initiator's rules given.
fn local_channel_with(
    config: NodeConfig,
    listener: ChannelRules,
    initiator: ChannelRules,
) -> (NodeCore, Address) {
    let now = Instant::now();
    let mut core = core(config);
    core.register(app(), Access::anyone(), now).unwrap();
    core.create_channel_listener(
        Address::local("secure"),
        identity(2),
        everyone(),
        ChannelConfig::default(),
        listener,
        now,
    )
    .unwrap();
    let (_, encryptor) = core
        .create_channel(
            route!["secure"],
            identity(1),
            everyone(),
            &ChannelConfig::default(),
            initiator,
            now,
        )
        .unwrap();
    let established = drain(&mut core).into_iter().any(|o| {
        matches!(o, Output::Event(NodeEvent::ChannelEstablished { address, initiator: true, .. })
            if address == encryptor)
    });
    assert!(established, "the local handshake completes at once");
    assert_eq!(core.channel_count(), 2, "both ends live in this node");
    (core, encryptor)
}

/// A random source that gives `left` fills, then fails for ever.
struct FailAfter {
    left: usize,
    inner: SeededRandom,
}

impl RandomSource for FailAfter {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        if self.left == 0 {
            return Err(RandomError);
        }
        self.left -= 1;
        self.inner.fill(dest)
    }
}

fn failing_after(left: usize) -> NodeCore {
    NodeCore::new(
        NodeConfig::default(),
        Box::new(FailAfter {
            left,
            inner: SeededRandom::new(3),
        }),
    )
}

// ---- TooManyChannels ------------------------------------------------------------------

#[test]
fn a_channel_past_max_channels_is_refused_until_one_goes() {
    let now = Instant::now();
    let config = NodeConfig {
        max_channels: 2,
        ..NodeConfig::default()
    };
    let (mut core, encryptor) = local_channel(config);
    let refused = core.create_channel(
        route!["secure"],
        identity(1),
        everyone(),
        &ChannelConfig::default(),
        ChannelRules::new(),
        now,
    );
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
    core.create_channel(
        route!["secure"],
        identity(1),
        everyone(),
        &ChannelConfig::default(),
        ChannelRules::new(),
        now,
    )
    .unwrap();
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
        [Output::Connect { peer, .. }] if peer == "b:4000"
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
    let channel = core.create_channel(
        route!["secure"],
        identity(1),
        everyone(),
        &ChannelConfig::default(),
        ChannelRules::new(),
        now,
    );
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
        let created = core.create_channel(
            route!["sink"],
            identity(1),
            everyone(),
            &ChannelConfig::default(),
            ChannelRules::new(),
            now,
        );
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

// ---- Refused (access rules) -----------------------------------------------------------

/// The preamble and one frame per message, as a peer's connection carries them.
fn frames(messages: &[TransportMessage]) -> Vec<u8> {
    let mut bytes = crate::framing::PREAMBLE.to_vec();
    for m in messages {
        let encoded = m.to_bytes().unwrap();
        bytes.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&encoded);
    }
    bytes
}

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
/// message with its origin.
#[test]
fn plain_frames_to_protected_mailboxes_are_refused_without_events() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
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
    match outputs.as_slice() {
        [Output::Deliver {
            address, origin, ..
        }] => {
            assert_eq!(*address, open);
            assert_eq!(*origin, Origin::Transport { connection: conn });
        }
        other => panic!("expected one delivery, got {other:?}"),
    }
    assert_eq!(core.stats().messages_refused, 100);
    assert_eq!(core.stats().delivery_failures, 0);
    assert_eq!(core.connection_count(), 1, "the connection stays open");
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
    core.create_channel_listener(
        Address::local("secure"),
        identity(2),
        everyone(),
        ChannelConfig::default(),
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
    assert!(drain(&mut core).is_empty(), "no handshake answer");
    assert_eq!(core.channel_count(), 0);
    assert_eq!(core.stats().messages_refused, 1);
    assert_eq!(
        core.stats().hellos_rejected,
        0,
        "refused before it is read as a hello"
    );
    // From this node, the same listener answers.
    core.register(app(), Access::anyone(), now).unwrap();
    core.create_channel(
        route!["secure"],
        identity(1),
        everyone(),
        &ChannelConfig::default(),
        ChannelRules::new(),
        now,
    )
    .unwrap();
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
        .any(|o| matches!(o, Output::Connect { peer, .. } if peer == "b:4000")));
    assert_eq!(core.stats().connections_evicted, 3);
}

// ---- congestion, getters, and what a dropped or unregistered thing leaves ------------

/// A local message to `to` from "app".
fn local_to(to: Route) -> TransportMessage {
    TransportMessage::new(to, route!["app"], vec![1])
}

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
    core.create_channel_listener(
        Address::local("secure"),
        identity(2),
        everyone(),
        ChannelConfig::default(),
        ChannelRules::new(),
        now,
    )
    .unwrap();
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
    let (_, encryptor) = core
        .create_channel(
            route![tcp("b:4000"), "secure"],
            identity(1),
            everyone(),
            &ChannelConfig::default(),
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
    let refused = core.create_channel(
        route!["secure"],
        identity(1),
        everyone(),
        &ChannelConfig::default(),
        ChannelRules::new(),
        now,
    );
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
        let listening = core.create_channel_listener(
            Address::local("secure"),
            identity(2),
            everyone(),
            ChannelConfig::default(),
            ChannelRules::new(),
            now,
        );
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
