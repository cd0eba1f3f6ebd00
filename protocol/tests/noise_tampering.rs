//! Tampering and misuse: altered, truncated or extended messages, mismatched peers, and
//! every API call in every handshake state must give an error, never a session or a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onward_protocol::noise::{
    CipherSuite, HandshakeState, NoiseError, Role, TransportState, MAX_MESSAGE_LEN, TAG_LEN,
};
use onward_protocol::random::{RandomSource, SeededRandom};
use proptest::prelude::*;

const PAYLOADS: [&[u8]; 3] = [b"first", b"second!", b"third..."];

fn key(seed: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    SeededRandom::new(u64::from(seed)).fill(&mut k).unwrap();
    k
}

fn initiator(suite: CipherSuite, prologue: &[u8]) -> HandshakeState {
    HandshakeState::with_fixed_ephemeral(Role::Initiator, suite, prologue, key(1), key(2))
}

fn responder(suite: CipherSuite, prologue: &[u8]) -> HandshakeState {
    HandshakeState::with_fixed_ephemeral(Role::Responder, suite, prologue, key(3), key(4))
}

/// How a handshake attempt ended.
#[derive(Debug)]
enum Outcome {
    /// Both sides finished and agree: the transports work both ways.
    Session,
    /// A call failed at message `index`; the failing side is poisoned.
    Failed { index: usize, error: NoiseError },
}

/// Runs a handshake in which `alter(i, message)` may change each message in flight.
/// Honest writers keep writing; the first error ends the attempt.
fn handshake_with(
    mut i: HandshakeState,
    mut r: HandshakeState,
    mut alter: impl FnMut(usize, &mut Vec<u8>),
) -> Outcome {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let mut payload = vec![0u8; MAX_MESSAGE_LEN];
    for (index, sent) in PAYLOADS.iter().enumerate() {
        let (writer, reader) = if index % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = match writer.write_message(sent, &mut buf) {
            Ok(n) => n,
            Err(error) => {
                assert!(writer.is_poisoned());
                return Outcome::Failed { index, error };
            }
        };
        let mut message = buf[..n].to_vec();
        alter(index, &mut message);
        if let Err(error) = reader.read_message(&message, &mut payload) {
            assert!(reader.is_poisoned());
            assert_eq!(reader.remote_static(), None);
            assert!(!reader.is_finished() && !reader.is_my_turn());
            return Outcome::Failed { index, error };
        }
    }
    let (mut a, mut b) = (i.into_transport().unwrap(), r.into_transport().unwrap());
    assert_eq!(a.handshake_hash(), b.handshake_hash());
    assert!(transport_works(&mut a, &mut b));
    Outcome::Session
}

fn transport_works(a: &mut TransportState, b: &mut TransportState) -> bool {
    let mut buf = [0u8; 64];
    let mut out = [0u8; 64];
    let n = a.write_message(b"ping", &mut buf).unwrap();
    let there = b
        .read_message(&buf[..n], &mut out)
        .map(|m| out[..m] == *b"ping");
    let n = b.write_message(b"pong", &mut buf).unwrap();
    let back = a
        .read_message(&buf[..n], &mut out)
        .map(|m| out[..m] == *b"pong");
    there == Ok(true) && back == Ok(true)
}

/// Wire lengths of the honest transcript.
fn honest_lengths(suite: CipherSuite) -> Vec<usize> {
    let mut lengths = Vec::new();
    let outcome = handshake_with(initiator(suite, b"p"), responder(suite, b"p"), |_, m| {
        lengths.push(m.len())
    });
    assert!(matches!(outcome, Outcome::Session));
    lengths
}

#[test]
fn honest_handshake_succeeds() {
    for suite in CipherSuite::ALL {
        assert_eq!(honest_lengths(suite), vec![32 + 5, 96 + 7, 64 + 8]);
    }
}

#[test]
fn every_bit_flip_of_every_handshake_message_fails_the_handshake() {
    let mut cases = 0;
    for suite in CipherSuite::ALL {
        for (target, len) in honest_lengths(suite).into_iter().enumerate() {
            for bit in 0..len * 8 {
                let outcome =
                    handshake_with(initiator(suite, b"p"), responder(suite, b"p"), |i, m| {
                        if i == target {
                            m[bit / 8] ^= 1 << (bit % 8);
                        }
                    });
                match outcome {
                    Outcome::Session => {
                        panic!("{suite}: flip of bit {bit} in message {target} went unnoticed")
                    }
                    // A flip in message 1's ephemeral key or plaintext payload changes the
                    // responder's transcript, which the initiator notices reading message 2
                    // (or the responder at once, if the key became a low-order point).
                    Outcome::Failed { index, error } => {
                        if target == 0 {
                            assert!(index <= 1, "{suite}: bit {bit}: failed at {index}");
                            assert!(matches!(
                                error,
                                NoiseError::DecryptFailed | NoiseError::LowOrderPoint
                            ));
                        } else {
                            assert_eq!(index, target);
                            assert_eq!(error, NoiseError::DecryptFailed);
                        }
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 8 * ((32 + 5) + (96 + 7) + (64 + 8)));
}

#[test]
fn every_truncation_and_extension_fails_the_handshake() {
    let mut cases = 0;
    for suite in CipherSuite::ALL {
        for (target, len) in honest_lengths(suite).into_iter().enumerate() {
            let edits = (0..len).map(Some).chain([None]);
            for truncate_to in edits {
                let outcome =
                    handshake_with(initiator(suite, b"p"), responder(suite, b"p"), |i, m| {
                        if i == target {
                            match truncate_to {
                                Some(n) => m.truncate(n),
                                None => m.push(0),
                            }
                        }
                    });
                assert!(
                    matches!(outcome, Outcome::Failed { .. }),
                    "{suite}: message {target} edited to {truncate_to:?} went unnoticed"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * ((32 + 5 + 1) + (96 + 7 + 1) + (64 + 8 + 1)));
}

#[test]
fn different_prologues_fail_before_any_transport_message() {
    for suite in CipherSuite::ALL {
        let outcome = handshake_with(initiator(suite, b"v1"), responder(suite, b"v2"), |_, _| {});
        assert!(matches!(
            outcome,
            Outcome::Failed {
                index: 1,
                error: NoiseError::DecryptFailed
            }
        ));
        let outcome = handshake_with(initiator(suite, b""), responder(suite, b"\0"), |_, _| {});
        assert!(matches!(outcome, Outcome::Failed { index: 1, .. }));
    }
}

#[test]
fn different_suites_fail_before_any_transport_message() {
    let [a, b] = CipherSuite::ALL;
    for (x, y) in [(a, b), (b, a)] {
        let outcome = handshake_with(initiator(x, b"p"), responder(y, b"p"), |_, _| {});
        assert!(matches!(
            outcome,
            Outcome::Failed {
                index: 1,
                error: NoiseError::DecryptFailed
            }
        ));
    }
}

#[test]
fn messages_replayed_from_an_earlier_handshake_fail() {
    for suite in CipherSuite::ALL {
        // Record a genuine earlier handshake between the same static keys, in which the
        // initiator used another ephemeral key.
        let mut old = Vec::new();
        let earlier =
            HandshakeState::with_fixed_ephemeral(Role::Initiator, suite, b"p", key(1), key(8));
        let outcome = handshake_with(earlier, responder(suite, b"p"), |_, m| old.push(m.clone()));
        assert!(matches!(outcome, Outcome::Session));
        // Replaying its second or third message into a new handshake fails at once.
        for target in [1, 2] {
            let outcome = handshake_with(initiator(suite, b"p"), responder(suite, b"p"), |i, m| {
                if i == target {
                    *m = old[target].clone();
                }
            });
            match outcome {
                Outcome::Failed { index, error } => {
                    assert_eq!(index, target);
                    assert_eq!(error, NoiseError::DecryptFailed);
                }
                Outcome::Session => panic!("{suite}: replayed message {target} accepted"),
            }
        }
    }
}

/// A pair of finished transports.
fn transports(suite: CipherSuite) -> (TransportState, TransportState) {
    let (mut i, mut r) = (initiator(suite, b"p"), responder(suite, b"p"));
    let mut buf = [0u8; 256];
    let mut out = [0u8; 256];
    let n = i.write_message(b"", &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    let n = r.write_message(b"", &mut buf).unwrap();
    i.read_message(&buf[..n], &mut out).unwrap();
    let n = i.write_message(b"", &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    (i.into_transport().unwrap(), r.into_transport().unwrap())
}

#[test]
fn tampered_transport_messages_are_rejected_without_disturbing_the_session() {
    for suite in CipherSuite::ALL {
        let (mut a, mut b) = transports(suite);
        let mut buf = [0u8; 64];
        let mut out = [0u8; 64];
        let n = a.write_message(b"transport", &mut buf).unwrap();
        for bit in 0..n * 8 {
            let mut bad = buf[..n].to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                b.read_message(&bad, &mut out),
                Err(NoiseError::DecryptFailed)
            );
        }
        // Shorter than a tag: too short to open; from a tag on: not authentic.
        for len in 0..n {
            let expected = if len < TAG_LEN {
                NoiseError::MessageTooShort { len, min: TAG_LEN }
            } else {
                NoiseError::DecryptFailed
            };
            assert_eq!(
                b.read_message(&buf[..len], &mut out),
                Err(expected),
                "cut at {len}"
            );
        }
        let mut longer = buf[..n].to_vec();
        longer.push(0);
        assert_eq!(
            b.read_message(&longer, &mut out),
            Err(NoiseError::DecryptFailed)
        );
        assert_eq!(b.receiving_nonce(), 0);
        let m = b.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..m], b"transport");
        // A replay of the same message is now refused: the nonce moved on.
        assert_eq!(
            b.read_message(&buf[..n], &mut out),
            Err(NoiseError::DecryptFailed)
        );
        // Messages in the wrong direction are refused too.
        let n = a.write_message(b"x", &mut buf).unwrap();
        assert_eq!(
            a.read_message(&buf[..n], &mut out),
            Err(NoiseError::DecryptFailed)
        );
    }
}

#[test]
fn transport_rekey_must_match_on_both_sides() {
    for suite in CipherSuite::ALL {
        let (mut a, mut b) = transports(suite);
        let mut buf = [0u8; 64];
        let mut out = [0u8; 64];
        a.rekey_outgoing().unwrap();
        let n = a.write_message(b"after rekey", &mut buf).unwrap();
        assert_eq!(a.sending_nonce(), 1);
        assert_eq!(
            b.read_message(&buf[..n], &mut out),
            Err(NoiseError::DecryptFailed)
        );
        b.rekey_incoming().unwrap();
        let m = b.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..m], b"after rekey");
    }
}

#[test]
fn transport_size_limits() {
    for suite in CipherSuite::ALL {
        let (mut a, mut b) = transports(suite);
        let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let payload = vec![7u8; MAX_MESSAGE_LEN - TAG_LEN + 1];
        assert!(matches!(
            a.write_message(&payload, &mut buf),
            Err(NoiseError::MessageTooLarge { .. })
        ));
        assert_eq!(a.sending_nonce(), 0);
        let n = a.write_message(&payload[1..], &mut buf).unwrap();
        assert_eq!(n, MAX_MESSAGE_LEN);
        assert!(matches!(
            b.read_message(&buf[..n], &mut out[..10]),
            Err(NoiseError::BufferTooSmall { .. })
        ));
        assert!(matches!(
            b.read_message(&buf, &mut out),
            Err(NoiseError::MessageTooLarge { .. })
        ));
        assert_eq!(b.read_message(&buf[..n], &mut out).unwrap(), n - TAG_LEN);
    }
}

#[test]
fn transport_nonce_exhaustion_through_into_cipher_states() {
    for suite in CipherSuite::ALL {
        let (a, b) = transports(suite);
        let (mut send, _) = a.into_cipher_states();
        let (_, mut recv) = b.into_cipher_states();
        send.set_nonce_for_tests(u64::MAX - 1);
        recv.set_nonce_for_tests(u64::MAX - 1);
        let mut buf = [0u8; 64];
        let mut out = [0u8; 64];
        let n = send.encrypt_with_ad(&[], b"last", &mut buf).unwrap();
        assert_eq!(recv.decrypt_with_ad(&[], &buf[..n], &mut out).unwrap(), 4);
        assert_eq!(
            send.encrypt_with_ad(&[], b"no", &mut buf),
            Err(NoiseError::NonceExhausted)
        );
        assert_eq!(
            recv.decrypt_with_ad(&[], &buf[..n], &mut out),
            Err(NoiseError::NonceExhausted)
        );
    }
}

// ----- misuse -----

/// Both sides after `k` honest messages, and the message the next reader would read
/// (computed on a separate, identical pair: the handshakes are deterministic).
fn after(suite: CipherSuite, k: usize) -> (HandshakeState, HandshakeState, Option<Vec<u8>>) {
    let (mut i, mut r) = advanced(suite, k);
    let mut buf = [0u8; 256];
    let pending = match k {
        0 | 2 => Some(&mut i),
        1 => Some(&mut r),
        _ => None,
    }
    .map(|writer| {
        let n = writer.write_message(b"", &mut buf).unwrap();
        buf[..n].to_vec()
    });
    let (i, r) = advanced(suite, k);
    (i, r, pending)
}

fn advanced(suite: CipherSuite, k: usize) -> (HandshakeState, HandshakeState) {
    let (mut i, mut r) = (initiator(suite, b"p"), responder(suite, b"p"));
    let mut buf = [0u8; 256];
    let mut out = [0u8; 256];
    for index in 0..k {
        let (writer, reader) = if index % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = writer.write_message(b"", &mut buf).unwrap();
        reader.read_message(&buf[..n], &mut out).unwrap();
    }
    (i, r)
}

/// After an error every call fails with `Poisoned`, and the getters still answer.
fn assert_poisoned(mut hs: HandshakeState, genuine: Option<&[u8]>) {
    let mut buf = [0u8; 256];
    let mut out = [0u8; 256];
    assert!(hs.is_poisoned());
    assert!(!hs.is_my_turn());
    assert!(!hs.is_finished());
    assert_eq!(hs.next_message_len(0), None);
    assert_eq!(hs.remote_static(), None);
    let _ = (hs.handshake_hash(), format!("{hs:?}"));
    assert_eq!(hs.write_message(b"", &mut buf), Err(NoiseError::Poisoned));
    assert_eq!(
        hs.read_message(&[0; 96], &mut out),
        Err(NoiseError::Poisoned)
    );
    if let Some(message) = genuine {
        assert_eq!(
            hs.read_message(message, &mut out),
            Err(NoiseError::Poisoned)
        );
    }
    assert_eq!(hs.into_transport().err(), Some(NoiseError::Poisoned));
}

#[test]
fn every_call_out_of_order_is_an_error_and_poisons() {
    let mut checked = 0;
    for suite in CipherSuite::ALL {
        for k in 0..=3 {
            for role in [Role::Initiator, Role::Responder] {
                let pick = |(i, r, p): (HandshakeState, HandshakeState, Option<Vec<u8>>)| {
                    (if role == Role::Initiator { i } else { r }, p)
                };
                let mine = k < 3 && ((k % 2 == 0) == (role == Role::Initiator));
                let mut buf = [0u8; 256];
                let mut out = [0u8; 256];

                // into_transport before the end.
                let (hs, _) = pick(after(suite, k));
                if k < 3 {
                    assert_eq!(
                        hs.into_transport().err(),
                        Some(NoiseError::HandshakeNotFinished { processed: k })
                    );
                } else {
                    assert!(hs.into_transport().is_ok());
                }

                // The call that is not this side's to make.
                let (mut hs, pending) = pick(after(suite, k));
                let result = if k == 3 {
                    hs.read_message(&[0; 64], &mut out)
                } else if mine {
                    // Even a message that would be valid for the peer to read.
                    hs.read_message(pending.as_deref().unwrap(), &mut out)
                } else {
                    hs.write_message(b"", &mut buf)
                };
                let expected = if k == 3 {
                    NoiseError::HandshakeFinished
                } else if mine {
                    NoiseError::ReadOutOfTurn
                } else {
                    NoiseError::WriteOutOfTurn
                };
                assert_eq!(result, Err(expected), "{suite}: {role:?} after {k}");
                assert_poisoned(hs, pending.as_deref());

                // Writing after the end poisons as well.
                if k == 3 {
                    let (mut hs, _) = pick(after(suite, k));
                    assert_eq!(
                        hs.write_message(b"", &mut buf),
                        Err(NoiseError::HandshakeFinished)
                    );
                    assert_poisoned(hs, None);
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 4 * 2);
}

/// The writer and reader of message `k`, after `k` honest messages.
fn writer_reader(suite: CipherSuite, k: usize) -> (HandshakeState, HandshakeState) {
    let (i, r) = advanced(suite, k);
    if k % 2 == 0 {
        (i, r)
    } else {
        (r, i)
    }
}

#[test]
fn bad_buffers_and_sizes_are_errors_that_poison() {
    for suite in CipherSuite::ALL {
        for k in 0..3 {
            // Output buffer one byte short: an error, nothing written.
            let (mut writer, _) = writer_reader(suite, k);
            let needed = writer.next_message_len(3).unwrap();
            let mut small = vec![0xEEu8; needed - 1];
            assert_eq!(
                writer.write_message(b"abc", &mut small),
                Err(NoiseError::BufferTooSmall {
                    needed,
                    available: needed - 1
                })
            );
            assert!(small.iter().all(|&b| b == 0xEE));
            assert_poisoned(writer, None);

            // A payload one byte too large for the 65535-byte limit: refused before writing.
            let (mut writer, _) = writer_reader(suite, k);
            let fixed = writer.next_message_len(0).unwrap();
            let payload = vec![1u8; MAX_MESSAGE_LEN - fixed + 1];
            let mut big = vec![0xEEu8; MAX_MESSAGE_LEN + 100];
            assert_eq!(
                writer.write_message(&payload, &mut big),
                Err(NoiseError::MessageTooLarge {
                    len: MAX_MESSAGE_LEN + 1,
                    max: MAX_MESSAGE_LEN
                })
            );
            assert!(big.iter().all(|&b| b == 0xEE));
            assert_poisoned(writer, None);

            // The largest payload that fits is accepted.
            let (mut writer, mut reader) = writer_reader(suite, k);
            let n = writer.write_message(&payload[1..], &mut big).unwrap();
            assert_eq!(n, MAX_MESSAGE_LEN);
            let mut out = vec![0u8; MAX_MESSAGE_LEN];
            assert_eq!(
                reader.read_message(&big[..n], &mut out).unwrap(),
                payload.len() - 1
            );

            // A message longer than the limit.
            let (_, mut reader) = writer_reader(suite, k);
            assert!(matches!(
                reader.read_message(&vec![0u8; MAX_MESSAGE_LEN + 1], &mut out),
                Err(NoiseError::MessageTooLarge { .. })
            ));
            assert_poisoned(reader, None);

            // A payload buffer too small for a genuine message's payload.
            let (mut writer, mut reader) = writer_reader(suite, k);
            let n = writer.write_message(b"abc", &mut big).unwrap();
            assert!(matches!(
                reader.read_message(&big[..n], &mut [0u8; 2]),
                Err(NoiseError::BufferTooSmall { .. })
            ));
            assert_poisoned(reader, Some(&big[..n]));

            // An empty message.
            let (_, mut reader) = writer_reader(suite, k);
            assert!(matches!(
                reader.read_message(&[], &mut out),
                Err(NoiseError::MessageTooShort { len: 0, .. })
            ));
            assert_poisoned(reader, None);
        }
    }
}

#[test]
fn random_call_sequences_never_panic_and_errors_are_final() {
    let mut rng = SeededRandom::new(2024);
    let mut below = |n: u64| {
        let mut b = [0u8; 8];
        rng.fill(&mut b).unwrap();
        (u64::from_le_bytes(b) % n) as usize
    };
    let mut noise = SeededRandom::new(7);
    for run in 0..2000 {
        let suite = CipherSuite::ALL[run % 2];
        let (mut i, mut r) = (initiator(suite, b"p"), responder(suite, b"p"));
        let mut wire: Vec<Vec<u8>> = Vec::new();
        let mut failed = [false, false];
        for _ in 0..8 {
            let side = below(2);
            let hs = if side == 0 { &mut i } else { &mut r };
            let mut out = vec![0u8; below(200)];
            let result = match below(4) {
                0 => {
                    let payload = vec![0u8; below(100)];
                    let res = hs.write_message(&payload, &mut out);
                    if let Ok(n) = res {
                        wire.push(out[..n].to_vec());
                    }
                    res
                }
                1 if !wire.is_empty() => {
                    let m = wire[below(wire.len() as u64)].clone();
                    hs.read_message(&m, &mut out)
                }
                2 => {
                    let mut junk = vec![0u8; below(200)];
                    noise.fill(&mut junk).unwrap();
                    hs.read_message(&junk, &mut out)
                }
                _ => {
                    let _ = (hs.is_my_turn(), hs.is_finished(), hs.next_message_len(5));
                    continue;
                }
            };
            if failed[side] {
                assert_eq!(result, Err(NoiseError::Poisoned));
            }
            if result.is_err() {
                failed[side] = true;
                assert!(hs.is_poisoned());
            }
        }
        for (hs, failed) in [(i, failed[0]), (r, failed[1])] {
            let res = hs.into_transport();
            if failed {
                assert_eq!(res.err(), Some(NoiseError::Poisoned));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes as any handshake message: never a panic, and only the first
    /// message (plaintext by design) can be accepted. Shorter than the message's fixed
    /// fields and tags (32 bytes for message 1, 96 for message 2, 64 for message 3)
    /// is too short; message 2 and 3 then fail to decrypt the static key they carry;
    /// message 1's payload is copied out if the buffer can take it.
    #[test]
    fn arbitrary_handshake_messages_are_refused(
        k in 0usize..3,
        chacha in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        out_len in 0usize..400,
    ) {
        let suite = CipherSuite::ALL[usize::from(chacha)];
        let (_, mut reader) = writer_reader(suite, k);
        let mut out = vec![0u8; out_len];
        let result = reader.read_message(&bytes, &mut out);
        let (len, min) = (bytes.len(), [32, 96, 64][k]);
        let expected = if len < min {
            Err(NoiseError::MessageTooShort { len, min })
        } else if k > 0 {
            Err(NoiseError::DecryptFailed)
        } else if out_len < len - min {
            Err(NoiseError::BufferTooSmall { needed: len - min, available: out_len })
        } else {
            Ok(len - min)
        };
        prop_assert_eq!(&result, &expected);
        prop_assert_eq!(reader.is_poisoned(), result.is_err());
    }

    /// Our initiator and responder agree for any prologue and payloads, and the
    /// transport carries any payload both ways.
    #[test]
    fn any_prologue_and_payloads_round_trip(
        chacha in any::<bool>(),
        prologue in proptest::collection::vec(any::<u8>(), 0..64),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 5),
    ) {
        let suite = CipherSuite::ALL[usize::from(chacha)];
        let mut rng = SeededRandom::new(prologue.len() as u64);
        let mut i = HandshakeState::initiator(suite, &prologue, key(1), &mut rng).unwrap();
        let mut r = HandshakeState::responder(suite, &prologue, key(3), &mut rng).unwrap();
        let mut buf = vec![0u8; 1024];
        let mut out = vec![0u8; 1024];
        for (index, payload) in payloads[..3].iter().enumerate() {
            let (w, rd) = if index % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
            let n = w.write_message(payload, &mut buf).unwrap();
            let m = rd.read_message(&buf[..n], &mut out).unwrap();
            prop_assert_eq!(&out[..m], &payload[..]);
        }
        prop_assert_eq!(i.handshake_hash(), r.handshake_hash());
        let (mut a, mut b) = (i.into_transport().unwrap(), r.into_transport().unwrap());
        for (index, payload) in payloads[3..].iter().enumerate() {
            let (w, rd) = if index % 2 == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
            let n = w.write_message(payload, &mut buf).unwrap();
            let m = rd.read_message(&buf[..n], &mut out).unwrap();
            prop_assert_eq!(&out[..m], &payload[..]);
        }
    }
}
