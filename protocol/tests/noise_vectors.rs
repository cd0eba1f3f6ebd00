//! The published Noise XX test vectors, replayed byte for byte in both roles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onward_protocol::noise::{
    x25519_public, CipherSuite, HandshakeState, Role, TransportState, MAX_MESSAGE_LEN,
};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/noise-xx.json");

struct Message {
    payload: Vec<u8>,
    ciphertext: Vec<u8>,
}

struct Vector {
    name: String,
    source: String,
    suite: CipherSuite,
    init_prologue: Vec<u8>,
    init_static: [u8; 32],
    init_ephemeral: [u8; 32],
    resp_prologue: Vec<u8>,
    resp_static: [u8; 32],
    resp_ephemeral: [u8; 32],
    handshake_hash: Option<[u8; 32]>,
    messages: Vec<Message>,
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

fn key(v: &Value, field: &str) -> [u8; 32] {
    bytes(v, field).try_into().unwrap()
}

fn load() -> Vec<Vector> {
    let json: Value = serde_json::from_str(VECTORS).unwrap();
    json["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            for psks in ["init_psks", "resp_psks"] {
                if let Some(list) = v.get(psks) {
                    assert!(list.as_array().unwrap().is_empty(), "PSKs are not used");
                }
            }
            let name = v["protocol_name"].as_str().unwrap().to_owned();
            Vector {
                suite: CipherSuite::from_protocol_name(&name).unwrap(),
                source: v["source"].as_str().unwrap().to_owned(),
                name,
                init_prologue: bytes(v, "init_prologue"),
                init_static: key(v, "init_static"),
                init_ephemeral: key(v, "init_ephemeral"),
                resp_prologue: bytes(v, "resp_prologue"),
                resp_static: key(v, "resp_static"),
                resp_ephemeral: key(v, "resp_ephemeral"),
                handshake_hash: v.get("handshake_hash").map(|_| key(v, "handshake_hash")),
                messages: v["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| Message {
                        payload: bytes(m, "payload"),
                        ciphertext: bytes(m, "ciphertext"),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Plays `role` of `vector`: writes this side's messages and checks them byte for byte,
/// reads the peer's messages from the vector and checks the payloads. Returns the
/// number of messages checked.
fn replay(vector: &Vector, role: Role) -> usize {
    let ctx = format!("{} ({}) as {role:?}", vector.name, vector.source);
    let (prologue, s, e, peer_s) = match role {
        Role::Initiator => (
            &vector.init_prologue,
            vector.init_static,
            vector.init_ephemeral,
            vector.resp_static,
        ),
        Role::Responder => (
            &vector.resp_prologue,
            vector.resp_static,
            vector.resp_ephemeral,
            vector.init_static,
        ),
    };
    let mut hs = HandshakeState::with_fixed_ephemeral(role, vector.suite, prologue, s, e);
    assert_eq!(hs.local_static_public(), x25519_public(&s), "{ctx}");
    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    let mut checked = 0;

    let mine = |i: usize| (i % 2 == 0) == (role == Role::Initiator);
    let (handshake, transport) = vector.messages.split_at(3);
    for (i, m) in handshake.iter().enumerate() {
        assert_eq!(hs.is_my_turn(), mine(i), "{ctx}: turn before message {i}");
        if mine(i) {
            let n = hs.write_message(&m.payload, &mut out).unwrap();
            assert_eq!(
                hex::encode(&out[..n]),
                hex::encode(&m.ciphertext),
                "{ctx}: message {i}"
            );
        } else {
            let n = hs.read_message(&m.ciphertext, &mut out).unwrap();
            assert_eq!(out[..n], m.payload[..], "{ctx}: payload of message {i}");
        }
        checked += 1;
    }
    assert!(hs.is_finished(), "{ctx}");
    assert_eq!(hs.remote_static(), Some(x25519_public(&peer_s)), "{ctx}");
    if let Some(expected) = vector.handshake_hash {
        assert_eq!(hs.handshake_hash(), expected, "{ctx}: handshake hash");
    }
    let hash = hs.handshake_hash();

    let mut ts: TransportState = hs.into_transport().unwrap();
    assert_eq!(ts.handshake_hash(), hash, "{ctx}");
    assert_eq!(ts.remote_static(), x25519_public(&peer_s), "{ctx}");
    for (j, m) in transport.iter().enumerate() {
        let i = j + 3;
        if mine(i) {
            let n = ts.write_message(&m.payload, &mut out).unwrap();
            assert_eq!(
                hex::encode(&out[..n]),
                hex::encode(&m.ciphertext),
                "{ctx}: message {i}"
            );
        } else {
            let n = ts.read_message(&m.ciphertext, &mut out).unwrap();
            assert_eq!(out[..n], m.payload[..], "{ctx}: payload of message {i}");
        }
        checked += 1;
    }
    checked
}

#[test]
fn all_vectors_in_both_roles() {
    let vectors = load();
    assert_eq!(vectors.len(), 6);
    for suite in CipherSuite::ALL {
        assert_eq!(vectors.iter().filter(|v| v.suite == suite).count(), 3);
    }
    assert_eq!(
        vectors
            .iter()
            .filter(|v| v.handshake_hash.is_some())
            .count(),
        4
    );
    let mut checked = 0;
    for vector in &vectors {
        assert!(
            vector.messages.len() >= 3,
            "{}: too few messages",
            vector.name
        );
        for role in [Role::Initiator, Role::Responder] {
            checked += replay(vector, role);
        }
    }
    // 4 vectors of 6 messages and 2 of 5, each message checked once per role.
    assert_eq!(checked, 2 * (4 * 6 + 2 * 5));
}
