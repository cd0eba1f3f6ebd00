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
