//! The relay service's answers to registrations that must fail, and its forwarding
//! of a name nobody registered. (Registrations that succeed need a connection: the
//! suite's relay section runs them on every runtime.)

use super::*;

fn answers(outputs: Vec<Output>) -> Vec<(u8, String)> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Deliver { message, .. } => {
                Some(ciborium::from_reader(message.payload.as_slice()).expect("an answer"))
            }
            _ => None,
        })
        .collect()
}

fn registration(code: u8, name: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    ciborium::into_writer(&(code, name), &mut payload).unwrap();
    payload
}

#[test]
fn registrations_that_cannot_be_taken_are_answered_with_why() {
    let now = Instant::now();
    let (mut core, encryptor) = local_channel(NodeConfig::default());
    core.create_relay(Address::local("relay"), Access::secure_channels(), now)
        .unwrap();
    assert!(matches!(
        core.create_relay(Address::local("relay"), Access::secure_channels(), now),
        Err(NodeError::AddressInUse(_))
    ));
    let long = "x".repeat(MAX_RELAY_NAME_LEN + 1);
    let cases: Vec<(Vec<u8>, RelayStatus)> = vec![
        (Vec::new(), RelayStatus::Invalid),
        (vec![0xff; 40], RelayStatus::Invalid),
        (registration(2, "alice"), RelayStatus::Invalid),
        (registration(RELAY_REGISTER, ""), RelayStatus::Invalid),
        (registration(RELAY_REGISTER, "a/b"), RelayStatus::Invalid),
        (registration(RELAY_REGISTER, "a#b"), RelayStatus::Invalid),
        (registration(RELAY_REGISTER, &long), RelayStatus::Invalid),
        // Well formed, but through a channel inside this node: there is no
        // connection to forward over.
        (
            registration(RELAY_REGISTER, "alice"),
            RelayStatus::NotDirect,
        ),
    ];
    for (payload, status) in cases {
        // A registration whose only fault is its name is told what a name is.
        let bad_name = status == RelayStatus::Invalid
            && ciborium::from_reader::<(u8, String), _>(payload.as_slice())
                .is_ok_and(|(code, _)| code == RELAY_REGISTER);
        let message =
            TransportMessage::new(route![encryptor.clone(), "relay"], route!["app"], payload);
        core.handle_send(&app(), message, now).unwrap();
        let got = answers(drain(&mut core));
        assert_eq!(got.len(), 1);
        assert_eq!(
            RelayStatus::from_code(got[0].0),
            Some(status),
            "{}",
            got[0].1
        );
        assert_eq!(got[0].1.contains("letters"), bad_name, "{}", got[0].1);
    }
    assert!(core.relay_names().is_empty());
    assert!(!core.has_address(&relay_address(&Address::local("relay"), "alice")));
}

#[test]
fn a_registration_outside_a_channel_is_not_taken() {
    let now = Instant::now();
    let mut core = core(NodeConfig::default());
    core.register(app(), Access::local_only(), now).unwrap();
    // Even a service open to anyone takes names only through secure channels.
    core.create_relay(Address::local("relay"), Access::anyone(), now)
        .unwrap();
    let id = core.handle_incoming_connection("peer:1".into(), now);
    let _ = drain(&mut core);
    let message = TransportMessage::new(
        route!["relay"],
        route!["app"],
        registration(RELAY_REGISTER, "alice"),
    );
    core.handle_received(id, &frames(&[message]), now);
    let _ = drain(&mut core);
    assert!(core.relay_names().is_empty());
    // A service for channels only refuses it outright, and counts it.
    core.create_relay(Address::local("strict"), Access::secure_channels(), now)
        .unwrap();
    let message = TransportMessage::new(
        route!["strict"],
        route!["app"],
        registration(RELAY_REGISTER, "alice"),
    );
    let refused = core.stats().messages_refused;
    core.handle_received(id, &frames(&[message])[PREAMBLE.len()..], now);
    assert_eq!(core.stats().messages_refused, refused + 1);
}

#[test]
fn names_are_addresses_under_the_service() {
    assert!(is_valid_relay_name("alice.example-1_b"));
    assert!(!is_valid_relay_name("é"));
    assert!(!is_valid_relay_name(" "));
    assert_eq!(
        relay_address(&Address::local("relay"), "alice"),
        Address::local("relay/alice")
    );
}

/// Carries every transmit between two cores joined by one connection (`a_conn` on
/// A, `b_conn` on B) until nothing moves; returns what each delivered.
fn pump(
    a: &mut NodeCore,
    a_conn: ConnectionId,
    b: &mut NodeCore,
    b_conn: ConnectionId,
    now: Instant,
) -> (Vec<TransportMessage>, Vec<TransportMessage>) {
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        for output in drain(a) {
            match output {
                Output::Transmit { connection, bytes } if connection == a_conn => {
                    a.handle_written(a_conn, bytes.len(), now);
                    b.handle_received(b_conn, &bytes, now);
                    moved = true;
                }
                Output::Deliver {
                    address, message, ..
                } => {
                    a.handle_consumed(&address, now);
                    to_a.push(message);
                }
                _ => {}
            }
        }
        for output in drain(b) {
            match output {
                Output::Transmit { connection, bytes } if connection == b_conn => {
                    b.handle_written(b_conn, bytes.len(), now);
                    a.handle_received(a_conn, &bytes, now);
                    moved = true;
                }
                Output::Deliver {
                    address, message, ..
                } => {
                    b.handle_consumed(&address, now);
                    to_b.push(message);
                }
                _ => {}
            }
        }
        if !moved {
            return (to_a, to_b);
        }
    }
}

/// A node H connected to the relay node R, with a secure channel to R's listener as
/// identity `seed`: returns H, its connection to R, R's connection from H, and H's
/// encryptor.
fn connected_to_relay(
    r: &mut NodeCore,
    seed: u8,
    now: Instant,
) -> (NodeCore, ConnectionId, ConnectionId, Address) {
    let mut h = NodeCore::new(
        NodeConfig::default(),
        Box::new(SeededRandom::new(u64::from(seed))),
    );
    h.register(app(), Access::secure_channels(), now).unwrap();
    let (_, encryptor) = h
        .create_channel(
            route![tcp("r:1"), "secure"],
            identity(seed),
            everyone(),
            &ChannelConfig::default(),
            ChannelRules::new(),
            now,
        )
        .unwrap();
    let Some(Output::Connect {
        connection: h_conn, ..
    }) = h.poll_output()
    else {
        panic!("a connect first")
    };
    let r_conn = r.handle_incoming_connection(format!("h{seed}:1"), now);
    h.handle_connected(h_conn, now);
    let _ = pump(&mut h, h_conn, r, r_conn, now);
    assert!(matches!(
        h.channel_state(&encryptor),
        Some(ChannelState::Established(_))
    ));
    (h, h_conn, r_conn, encryptor)
}

/// Sends a registration of `name` from H through its channel and returns R's answer.
fn register_name(
    h: &mut NodeCore,
    h_conn: ConnectionId,
    r: &mut NodeCore,
    r_conn: ConnectionId,
    encryptor: &Address,
    name: &str,
    now: Instant,
) -> (RelayStatus, String) {
    let message = TransportMessage::new(
        route![encryptor.clone(), "relay"],
        route!["app"],
        registration(RELAY_REGISTER, name),
    );
    h.handle_send(&app(), message, now).unwrap();
    let (to_h, _) = pump(h, h_conn, r, r_conn, now);
    assert_eq!(to_h.len(), 1, "one answer");
    let (code, detail): (u8, String) = ciborium::from_reader(to_h[0].payload.as_slice()).unwrap();
    (RelayStatus::from_code(code).unwrap(), detail)
}

/// Registered over a direct connection, a name is forwarded over it; another identity
/// cannot take it, its owner may again, the table's limit holds, and once the owner's
/// connection closes the name is kept for it and a message to it fails by name.
#[test]
fn a_name_is_forwarded_over_its_owners_connection_and_kept_for_it() {
    let now = Instant::now();
    let mut r = core(NodeConfig {
        max_relay_names: 1,
        ..NodeConfig::default()
    });
    listen(&mut r, ChannelRules::new(), now).unwrap();
    r.create_relay(Address::local("relay"), Access::secure_channels(), now)
        .unwrap();
    r.register(Address::local("local"), Access::local_only(), now)
        .unwrap();
    let (mut h, h_conn, r_conn, enc) = connected_to_relay(&mut r, 11, now);
    let alice = relay_address(&Address::local("relay"), "alice");
    assert_eq!(
        register_name(&mut h, h_conn, &mut r, r_conn, &enc, "alice", now),
        (RelayStatus::Registered, alice.to_string())
    );
    assert_eq!(
        r.relay_names(),
        vec![(alice.clone(), identity(11).identifier(), true)]
    );
    // Again, by its owner: still registered. Past the limit, a new name is not.
    assert_eq!(
        register_name(&mut h, h_conn, &mut r, r_conn, &enc, "alice", now).0,
        RelayStatus::Registered
    );
    assert_eq!(
        register_name(&mut h, h_conn, &mut r, r_conn, &enc, "bob", now).0,
        RelayStatus::Full
    );
    // Another identity, connected too, cannot take it.
    let (mut s, s_conn, rs_conn, s_enc) = connected_to_relay(&mut r, 12, now);
    assert_eq!(
        register_name(&mut s, s_conn, &mut r, rs_conn, &s_enc, "alice", now).0,
        RelayStatus::Taken
    );
    // A message to the name goes over H's connection, and H delivers it.
    h.register(Address::local("echo"), Access::anyone(), now)
        .unwrap();
    let message = TransportMessage::new(route![alice.clone(), "echo"], route!["local"], vec![9]);
    r.handle_send(&Address::local("local"), message, now)
        .unwrap();
    let (to_h, _) = pump(&mut h, h_conn, &mut r, r_conn, now);
    assert_eq!(to_h.len(), 1);
    assert_eq!(to_h[0].payload, [9]);
    // H's connection goes: the name stays H's, and a message to it fails by name.
    r.handle_connection_closed(r_conn, Some("gone"), now);
    assert_eq!(
        r.relay_names(),
        vec![(alice.clone(), identity(11).identifier(), false)]
    );
    let message = TransportMessage::new(route![alice.clone(), "echo"], route!["local"], vec![9]);
    assert!(matches!(
        r.handle_send(&Address::local("local"), message, now),
        Err(NodeError::RelayNotConnected(a)) if a == alice
    ));
    // The other identity still cannot take it while H is away.
    assert_eq!(
        register_name(&mut s, s_conn, &mut r, rs_conn, &s_enc, "alice", now).0,
        RelayStatus::Taken
    );
}

#[test]
fn statuses_have_one_code_each() {
    for status in [
        RelayStatus::Registered,
        RelayStatus::Taken,
        RelayStatus::Invalid,
        RelayStatus::NotDirect,
        RelayStatus::Full,
    ] {
        assert_eq!(RelayStatus::from_code(status.code()), Some(status));
    }
    assert_eq!(RelayStatus::from_code(5), None);
    assert_eq!(RelayStatus::from_code(255), None);
}
