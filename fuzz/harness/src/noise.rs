//! The `noise_responder` and `noise_initiator` targets: one side of a Noise XX
//! handshake against fuzzed or altered messages from the other.

use std::sync::OnceLock;

use onward_protocol::noise::{
    CipherSuite, HandshakeState, NoiseError, StaticKeypair, DH_LEN, MAX_MESSAGE_LEN,
};
use onward_protocol::random::SeededRandom;

use crate::input::{alter, Input};

/// The prologue of the Noise targets' handshakes.
const NOISE_PROLOGUE: &[u8] = b"onward fuzzing";
const INITIATOR_STATIC_SEED: u64 = 1;
const RESPONDER_STATIC_SEED: u64 = 2;
const RESPONDER_PAYLOAD: &[u8] = b"message 2";
const FINISH_PAYLOAD: &[u8] = b"message 3";

pub(crate) fn suite_from_bit(flags: u8) -> CipherSuite {
    if flags & 1 == 0 {
        CipherSuite::Aes256GcmSha256
    } else {
        CipherSuite::ChaCha20Poly1305Sha256
    }
}

fn static_keypair(seed: u64) -> StaticKeypair {
    StaticKeypair::generate(&mut SeededRandom::new(seed)).expect("a seeded source never fails")
}

/// The static key pairs of the Noise targets, made once per process.
fn static_keypairs() -> &'static (StaticKeypair, StaticKeypair) {
    static KEYS: OnceLock<(StaticKeypair, StaticKeypair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            static_keypair(INITIATOR_STATIC_SEED),
            static_keypair(RESPONDER_STATIC_SEED),
        )
    })
}

/// An initiator and a responder with fixed static and ephemeral keys.
fn noise_pair(suite: CipherSuite) -> (HandshakeState, HandshakeState) {
    let (i_static, r_static) = static_keypairs();
    let initiator = HandshakeState::initiator(
        suite,
        NOISE_PROLOGUE,
        *i_static.private(),
        &mut SeededRandom::new(11),
    )
    .expect("a seeded source never fails");
    let responder = HandshakeState::responder(
        suite,
        NOISE_PROLOGUE,
        *r_static.private(),
        &mut SeededRandom::new(12),
    )
    .expect("a seeded source never fails");
    (initiator, responder)
}

/// After an error a handshake state refuses everything and vouches for nothing.
fn check_poisoned(state: &mut HandshakeState) {
    assert!(state.is_poisoned(), "an error did not poison the handshake");
    assert!(!state.is_finished() && !state.is_my_turn());
    assert_eq!(state.remote_static(), None);
    let mut buf = [0u8; 128];
    assert_eq!(
        state.write_message(b"", &mut buf),
        Err(NoiseError::Poisoned)
    );
    assert_eq!(
        state.read_message(&[0u8; 96], &mut buf),
        Err(NoiseError::Poisoned)
    );
}

/// Both ends finished the same handshake: same hash, each other's keys, and working
/// transport states both ways.
fn check_finished_pair(
    initiator: HandshakeState,
    responder: HandshakeState,
    i_static: &StaticKeypair,
    r_static: &StaticKeypair,
) {
    assert!(initiator.is_finished() && responder.is_finished());
    assert_eq!(initiator.handshake_hash(), responder.handshake_hash());
    assert_eq!(initiator.remote_static(), Some(r_static.public()));
    assert_eq!(responder.remote_static(), Some(i_static.public()));
    let mut a = initiator
        .into_transport()
        .expect("a finished handshake splits");
    let mut b = responder
        .into_transport()
        .expect("a finished handshake splits");
    let (mut msg, mut out) = ([0u8; 64], [0u8; 64]);
    let n = a.write_message(b"ping", &mut msg).expect("transport write");
    let len = b.read_message(&msg[..n], &mut out).expect("transport read");
    assert_eq!(&out[..len], b"ping");
    let n = b.write_message(b"pong", &mut msg).expect("transport write");
    let len = a.read_message(&msg[..n], &mut out).expect("transport read");
    assert_eq!(&out[..len], b"pong");
}

/// A responder reads fuzzed bytes as message 1, writes message 2, then reads fuzzed
/// bytes as message 3.
///
/// Layout: a flags byte (bit 0: suite; bit 1: message 1 is written by a genuine
/// initiator, with the fuzzed part as its payload; bit 2, with bit 1: message 3 is the
/// genuine initiator's, altered by the edits of `alter`), a big-endian `u16` length
/// and that many bytes for message 1 (or its payload), and the rest for message 3 (or
/// its edits). Message 1 is accepted exactly when its length is possible; a genuine
/// message 3 is accepted and an altered one refused; every error poisons the state.
pub fn noise_responder(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let suite = suite_from_bit(flags);
    let genuine_first = flags & 2 != 0;
    let genuine_third = genuine_first && flags & 4 != 0;
    let first_len = usize::from(input.u16());
    let first_part = input.bytes(first_len);
    let third_part = input.rest();

    let (mut initiator, mut responder) = noise_pair(suite);
    let (i_static, r_static) = static_keypairs();
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let mut payload = vec![0u8; MAX_MESSAGE_LEN];

    // -> e
    let message1 = if genuine_first {
        match initiator.write_message(first_part, &mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(e) => {
                assert!(matches!(e, NoiseError::MessageTooLarge { .. }), "{e}");
                check_poisoned(&mut initiator);
                return;
            }
        }
    } else {
        first_part.to_vec()
    };
    let possible = (DH_LEN..=MAX_MESSAGE_LEN).contains(&message1.len());
    match responder.read_message(&message1, &mut payload) {
        Ok(n) => {
            assert!(possible);
            assert_eq!(&payload[..n], &message1[DH_LEN..], "message 1's payload");
            assert!(responder.is_my_turn());
        }
        Err(e) => {
            assert!(!possible, "message 1 of possible length refused: {e}");
            check_poisoned(&mut responder);
            return;
        }
    }

    // <- e, ee, s, es
    let message2 = match responder.write_message(RESPONDER_PAYLOAD, &mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(e) => {
            // Only a low-order ephemeral key from the peer makes writing fail.
            assert!(
                !genuine_first && e == NoiseError::LowOrderPoint,
                "writing message 2 failed: {e}"
            );
            check_poisoned(&mut responder);
            return;
        }
    };
    assert_eq!(
        responder.next_message_len(0),
        None,
        "message 3 is the initiator's"
    );

    // -> s, se
    let (message3, genuine) = if genuine_third {
        let n = initiator
            .read_message(&message2, &mut payload)
            .expect("a genuine message 2 is accepted");
        assert_eq!(&payload[..n], RESPONDER_PAYLOAD);
        let n = initiator
            .write_message(FINISH_PAYLOAD, &mut buf)
            .expect("message 3 is written");
        let genuine = buf[..n].to_vec();
        (alter(&genuine, third_part), Some(genuine))
    } else {
        (third_part.to_vec(), None)
    };
    match responder.read_message(&message3, &mut payload) {
        Ok(n) => {
            assert!(responder.is_finished());
            assert!(responder.remote_static().is_some());
            if let Some(genuine) = genuine {
                assert_eq!(message3, genuine, "an altered message 3 was accepted");
                assert_eq!(&payload[..n], FINISH_PAYLOAD);
                check_finished_pair(initiator, responder, i_static, r_static);
            } else {
                responder
                    .into_transport()
                    .expect("a finished handshake splits");
            }
        }
        Err(e) => {
            if let Some(genuine) = genuine {
                assert_ne!(message3, genuine, "a genuine message 3 was refused: {e}");
            }
            check_poisoned(&mut responder);
            assert!(responder.into_transport().is_err());
        }
    }
}

/// An initiator writes message 1, then reads fuzzed bytes as message 2.
///
/// Layout: a flags byte (bit 0: suite; bit 1: message 2 is a genuine responder's,
/// altered by the edits of `alter`), a big-endian `u16` length and that many bytes of
/// payload for message 1, and the rest for message 2 (or its edits). A genuine message
/// 2 is accepted and the handshake then completes; an altered one is refused; every
/// error poisons the state.
pub fn noise_initiator(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let suite = suite_from_bit(flags);
    let genuine_second = flags & 2 != 0;
    let first_len = usize::from(input.u16());
    let first_payload = input.bytes(first_len);
    let second_part = input.rest();

    let (mut initiator, mut responder) = noise_pair(suite);
    let (i_static, r_static) = static_keypairs();
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let mut payload = vec![0u8; MAX_MESSAGE_LEN];

    // -> e
    let message1 = match initiator.write_message(first_payload, &mut buf) {
        Ok(n) => {
            assert_eq!(n, DH_LEN + first_payload.len());
            buf[..n].to_vec()
        }
        Err(e) => {
            assert!(DH_LEN + first_payload.len() > MAX_MESSAGE_LEN, "{e}");
            check_poisoned(&mut initiator);
            return;
        }
    };

    // <- e, ee, s, es
    let (message2, genuine) = if genuine_second {
        let n = responder
            .read_message(&message1, &mut payload)
            .expect("a genuine message 1 is accepted");
        assert_eq!(&payload[..n], first_payload);
        let n = responder
            .write_message(RESPONDER_PAYLOAD, &mut buf)
            .expect("message 2 is written");
        let genuine = buf[..n].to_vec();
        (alter(&genuine, second_part), Some(genuine))
    } else {
        (second_part.to_vec(), None)
    };
    match initiator.read_message(&message2, &mut payload) {
        Ok(n) => {
            assert!(initiator.is_my_turn());
            assert!(initiator.remote_static().is_some());
            let Some(genuine) = genuine else { return };
            assert_eq!(message2, genuine, "an altered message 2 was accepted");
            assert_eq!(&payload[..n], RESPONDER_PAYLOAD);
            // -> s, se
            let n = initiator
                .write_message(FINISH_PAYLOAD, &mut buf)
                .expect("message 3 is written");
            let len = responder
                .read_message(&buf[..n], &mut payload)
                .expect("a genuine message 3 is accepted");
            assert_eq!(&payload[..len], FINISH_PAYLOAD);
            check_finished_pair(initiator, responder, i_static, r_static);
        }
        Err(e) => {
            if let Some(genuine) = genuine {
                assert_ne!(message2, genuine, "a genuine message 2 was refused: {e}");
            }
            check_poisoned(&mut initiator);
        }
    }
}
