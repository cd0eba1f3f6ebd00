//! Unit tests of the channel end: proofs, lengths, records in place, counters,
//! bad plaintexts and cookie replies.

use super::*;
use crate::noise::MAX_MESSAGE_LEN;
use crate::random::SeededRandom;
use crate::route;
use crate::trust::TrustEveryone;

fn id(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]).unwrap())
}

#[test]
fn a_responder_proof_signed_by_another_key_is_rejected() {
    let now = Instant::now();
    let config = ChannelConfig::default();
    let mut rng = SeededRandom::new(1);
    let mut i =
        ChannelEnd::initiator(&config, id(1), Arc::new(TrustEveryone), &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let (_r, response) = Responder::start_signed_by(
        &config,
        &id(2),
        &id(3),
        Arc::new(TrustEveryone),
        &mut rng,
        &hello,
    )
    .unwrap();
    assert_eq!(
        i.handle_record(&response, now),
        Err(ChannelError::BadIdentityProof)
    );
    assert!(i.is_ended());
    assert_eq!(i.poll_transmit(), None);
    assert_eq!(i.poll_event(), None, "the error is reported once, returned");
}

#[test]
fn an_initiator_proof_signed_by_another_key_is_rejected_and_told() {
    let now = Instant::now();
    let config = ChannelConfig::default();
    let mut rng = SeededRandom::new(2);
    let mut i =
        ChannelEnd::initiator(&config, id(1), Arc::new(TrustEveryone), &mut rng, now).unwrap();
    if let State::Initiating(initiator) = &mut i.state {
        initiator.forge_proof_with(id(3));
    }
    let hello = i.poll_transmit().unwrap();
    let mut r = ChannelEnd::responder(
        &config,
        &id(2),
        Arc::new(TrustEveryone),
        &mut rng,
        &hello,
        now,
    )
    .unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    let finish = i.poll_transmit().unwrap();
    assert_eq!(
        r.handle_record(&finish, now),
        Err(ChannelError::BadIdentityProof)
    );
    assert_eq!(r.peer(), None);
    let refusal = r.poll_transmit().unwrap();
    assert_eq!(
        i.handle_record(&refusal, now),
        Err(ChannelError::RefusedByPeer)
    );
}

#[test]
fn records_to_an_ended_channel_are_refused() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(3);
    let mut i = ChannelEnd::initiator(
        &ChannelConfig::default(),
        id(1),
        Arc::new(TrustEveryone),
        &mut rng,
        now,
    )
    .unwrap();
    i.close(now);
    assert_eq!(
        i.handle_record(&[0x02; 193], now),
        Err(ChannelError::Closed)
    );
    assert_eq!(
        i.handle_send(&TransportMessage::default(), now),
        Err(ChannelError::Closed)
    );
    i.close(now);
    assert_eq!(
        std::iter::from_fn(|| i.poll_event()).count(),
        1,
        "closing twice reports one close"
    );
}

/// Seals `plaintext` as the next record of `end` (established or confirming),
/// bypassing the checks of `handle_send`: a peer that misbehaves after the handshake.
fn seal_raw(end: &mut ChannelEnd, plaintext: &[u8]) -> Vec<u8> {
    match &mut end.state {
        State::Established { encryptor, .. } | State::Confirming { encryptor, .. } => {
            encryptor.seal(plaintext, false).unwrap()
        }
        _ => panic!("not established"),
    }
}

fn pair() -> (ChannelEnd, ChannelEnd, Vec<u8>) {
    let now = Instant::now();
    let config = ChannelConfig::default();
    let mut rng = SeededRandom::new(4);
    let mut i =
        ChannelEnd::initiator(&config, id(1), Arc::new(TrustEveryone), &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let mut r = ChannelEnd::responder(
        &config,
        &id(2),
        Arc::new(TrustEveryone),
        &mut rng,
        &hello,
        now,
    )
    .unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    r.handle_record(&i.poll_transmit().unwrap(), now).unwrap();
    let confirm = r.poll_transmit().unwrap();
    (i, r, confirm)
}

/// An initiator as identity 1, trusting everyone.
fn start_initiator(rng: &mut SeededRandom) -> ChannelEnd {
    let config = ChannelConfig::default();
    ChannelEnd::initiator(&config, id(1), Arc::new(TrustEveryone), rng, Instant::now()).unwrap()
}

/// A responder as identity 2, trusting everyone, to `hello`.
fn start_responder(rng: &mut SeededRandom, hello: &[u8]) -> Result<ChannelEnd, ChannelError> {
    let config = ChannelConfig::default();
    let trust = Arc::new(TrustEveryone);
    ChannelEnd::responder(&config, &id(2), trust, rng, hello, Instant::now())
}

/// A message from "a" to "b" whose encoding is `len` bytes long.
fn inner_of_len(len: usize) -> TransportMessage {
    (0..=len)
        .rev()
        .map(|p| TransportMessage::new(route!["a"], route!["b"], vec![5; p]))
        .find(|m| m.encoded_len() == len)
        .expect("an exact length")
}

#[test]
fn the_largest_inner_message_goes_in_one_record_and_one_byte_more_does_not() {
    assert_eq!(MAX_RECORD_PLAINTEXT, 65_519);
    assert_eq!(MAX_INNER_MESSAGE_LEN, 65_518);
    // docs/PROTOCOL.md §8: data counters end at 2^64-3; 2^64-2 is the final close.
    assert_eq!(MAX_DATA_COUNTER, 0xffff_ffff_ffff_fffd);
    let now = Instant::now();
    let (mut i, mut r, confirm) = pair();
    i.handle_record(&confirm, now).unwrap();
    let largest = inner_of_len(MAX_INNER_MESSAGE_LEN);
    let too_large = inner_of_len(MAX_INNER_MESSAGE_LEN + 1);
    assert!(ChannelEnd::fits_in_one_record(&largest));
    assert!(!ChannelEnd::fits_in_one_record(&too_large));
    i.handle_send(&largest, now).unwrap();
    let record = i.poll_transmit().unwrap();
    assert_eq!(record.len(), ChannelEnd::record_len(&largest));
    assert_eq!(record.len(), 9 + 1 + MAX_INNER_MESSAGE_LEN + 16);
    r.handle_record(&record, now).unwrap();
    let received: Vec<_> = std::iter::from_fn(|| r.poll_event())
        .filter(|e| matches!(e, ChannelEvent::Received(_)))
        .collect();
    assert_eq!(received, [ChannelEvent::Received(largest)]);
    assert_eq!(
        i.handle_send(&too_large, now),
        Err(ChannelError::PlaintextTooLarge {
            len: MAX_INNER_MESSAGE_LEN + 1,
            max: MAX_INNER_MESSAGE_LEN
        })
    );
    assert_eq!(i.poll_transmit(), None);
}

#[test]
fn handshake_records_of_the_wrong_length_are_refused_as_such() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(9);
    let mut i = start_initiator(&mut rng);
    let hello = i.poll_transmit().unwrap();
    let wrong = ChannelError::Malformed("handshake record has the wrong length");
    let mut longer = hello.clone();
    longer.push(0);
    // A hello carries no encrypted payload: only its length check refuses a longer one.
    assert_eq!(
        start_responder(&mut rng, &longer).err(),
        Some(wrong.clone())
    );
    let shorter = &hello[..hello.len() - 1];
    assert_eq!(
        start_responder(&mut rng, shorter).err(),
        Some(wrong.clone())
    );
    let mut r = start_responder(&mut rng, &hello).unwrap();
    let mut response = r.poll_transmit().unwrap();
    response.push(0);
    assert_eq!(i.handle_record(&response, now), Err(wrong));
}

#[test]
fn only_a_hello_is_a_hello() {
    let now = Instant::now();
    let hello = start_initiator(&mut SeededRandom::new(7))
        .poll_transmit()
        .unwrap();
    assert!(ChannelEnd::is_hello(&hello));
    let (_, mut r, confirm) = pair();
    assert!(!ChannelEnd::is_hello(&confirm));
    r.handle_send(
        &TransportMessage::new(route!["x"], route!["y"], vec![1]),
        now,
    )
    .unwrap();
    assert!(!ChannelEnd::is_hello(&r.poll_transmit().unwrap()));
    assert!(!ChannelEnd::is_hello(&[]));
    assert!(!ChannelEnd::is_hello(&[wire::KIND_RESPONSE]));
}

#[test]
fn the_next_send_counter_follows_the_records_sent() {
    let now = Instant::now();
    let fresh = start_initiator(&mut SeededRandom::new(8));
    assert_eq!(
        fresh.next_send_counter(),
        None,
        "no keys before the response"
    );
    assert!(format!("{fresh:?}").contains("initiating"));
    let (mut i, r, confirm) = pair();
    assert_eq!(
        i.next_send_counter(),
        Some(0),
        "confirming: nothing sent yet"
    );
    assert_eq!(r.next_send_counter(), Some(1), "the confirm took counter 0");
    i.handle_record(&confirm, now).unwrap();
    for n in 0..3 {
        i.handle_send(
            &TransportMessage::new(route!["x"], route!["y"], vec![n]),
            now,
        )
        .unwrap();
    }
    assert_eq!(i.next_send_counter(), Some(3));
    assert!(format!("{r:?}").contains("established"));
}

#[test]
fn authenticated_records_with_bad_plaintexts_are_dropped_and_the_channel_goes_on() {
    let now = Instant::now();
    let (mut i, mut r, confirm) = pair();
    i.handle_record(&confirm, now).unwrap();
    for bad in [
        &[0x7f][..],
        &[PLAIN_CLOSE],
        &[PLAIN_CLOSE, 0, 0],
        &[PLAIN_CONFIRM, 1],
        &[PLAIN_MESSAGE, 0xff],
    ] {
        let record = seal_raw(&mut r, bad);
        assert!(
            matches!(
                i.handle_record(&record, now),
                Err(ChannelError::BadPlaintext { .. })
            ),
            "{bad:02x?}"
        );
        assert!(i.is_established(), "{bad:02x?} ended the channel");
    }
    r.handle_send(&TransportMessage::default(), now).unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    assert!(std::iter::from_fn(|| i.poll_event()).any(|e| matches!(e, ChannelEvent::Received(_))));
}

#[test]
fn a_malformed_close_while_confirming_does_not_end_the_channel() {
    let now = Instant::now();
    let (mut i, mut r, _confirm_lost) = pair();
    // The confirm is lost; a close without its reason byte arrives instead.
    let record = seal_raw(&mut r, &[PLAIN_CLOSE]);
    assert!(matches!(
        i.handle_record(&record, now),
        Err(ChannelError::BadPlaintext { .. })
    ));
    assert!(!i.is_ended());
}

#[test]
fn an_oversized_transport_record_is_refused_at_the_receiver() {
    let now = Instant::now();
    let (mut i, _r, confirm) = pair();
    i.handle_record(&confirm, now).unwrap();
    let mut huge = vec![wire::KIND_TRANSPORT];
    huge.extend_from_slice(&5u64.to_be_bytes());
    huge.extend(std::iter::repeat_n(0u8, MAX_MESSAGE_LEN + 1));
    assert!(matches!(
        i.handle_record(&huge, now),
        Err(ChannelError::Malformed(_))
    ));
    assert!(i.is_established());
}

#[test]
fn records_opened_in_place_match_copies_and_forgeries_leave_no_plaintext() {
    let now = Instant::now();
    let (mut i, mut r, confirm) = pair();
    i.handle_record(&confirm, now).unwrap();
    let secret = b"attack at dawn, attack at dawn, attack at dawn".to_vec();
    let message = TransportMessage::new(route!["x"], route![], secret.clone());
    r.handle_send(&message, now).unwrap();
    let record = r.poll_transmit().unwrap();

    // A forged copy: refused, the buffer holds none of the plaintext, and the
    // genuine record is still accepted afterwards (nothing was marked).
    let mut forged = record.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        i.handle_record_in_place(&mut forged, now),
        Err(ChannelError::Forged { .. })
    ));
    assert!(
        !forged.windows(6).any(|w| w == b"attack"),
        "unauthenticated plaintext left in the buffer"
    );

    let mut genuine = record.clone();
    i.handle_record_in_place(&mut genuine, now).unwrap();
    assert!(
        genuine.windows(secret.len()).any(|w| w == &secret[..]),
        "decrypted where it lay"
    );
    assert_eq!(
        std::iter::from_fn(|| i.poll_event()).last(),
        Some(ChannelEvent::Received(message)),
        "the same message as from a copy"
    );
    // A replay of it, in place or from a copy, is refused.
    assert!(matches!(
        i.handle_record_in_place(&mut record.clone(), now),
        Err(ChannelError::Replay { .. })
    ));
    assert!(matches!(
        i.handle_record(&record, now),
        Err(ChannelError::Replay { .. })
    ));
}

#[test]
fn a_record_appended_to_a_caller_buffer_is_the_same_record() {
    let now = Instant::now();
    let (mut i, mut r, confirm) = pair();
    let message = TransportMessage::new(route!["x"], route!["y"], vec![5; 1000]);
    // Before the channel is established: an error, and the buffer is untouched.
    let mut out = vec![0xaa; 5];
    assert_eq!(
        i.handle_send_into(&message, &mut out, now),
        Err(ChannelError::NotEstablished)
    );
    assert_eq!(out, [0xaa; 5]);
    i.handle_record(&confirm, now).unwrap();
    i.handle_send_into(&message, &mut out, now).unwrap();
    assert_eq!(&out[..5], &[0xaa; 5], "what was there is kept");
    assert_eq!(out.len(), 5 + ChannelEnd::record_len(&message));
    assert_eq!(i.poll_transmit(), None, "appended, not queued");
    r.handle_record(&out[5..], now).unwrap();
    assert_eq!(
        std::iter::from_fn(|| r.poll_event()).last(),
        Some(ChannelEvent::Received(message))
    );
    // Too large for one record: an error, and the buffer is untouched.
    let huge = TransportMessage::new(route!["x"], route![], vec![0; MAX_MESSAGE_LEN]);
    let before = out.clone();
    assert!(matches!(
        i.handle_send_into(&huge, &mut out, now),
        Err(ChannelError::PlaintextTooLarge { .. })
    ));
    assert_eq!(out, before);
}

/// An initiator answers a cookie reply to its own hello by sending the hello again
/// with the cookie, at most `MAX_COOKIE_ROUNDS` times; a reply to another hello or
/// a malformed one is dropped and the handshake goes on; a responder takes the
/// hello with its cookie and the handshake completes.
#[test]
fn an_initiator_sends_its_hello_again_with_a_cookie() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(12);
    let mut i = start_initiator(&mut rng);
    let hello = i.poll_transmit().unwrap();
    let mut jar = cookie::CookieJar::new();
    let listener = crate::Address::local("secure");
    let back = crate::route!["alias", "decryptor"];
    let reply = jar.reply(&listener, &back, &hello, &mut rng, now).unwrap();
    assert!(ChannelEnd::is_cookie_reply(&reply));
    assert!(!ChannelEnd::is_cookie_reply(&hello));

    // A reply echoing another hello, and a cut one: dropped, nothing sent.
    let mut other = reply.clone();
    other[1] ^= 1;
    for bad in [other, reply[..reply.len() - 1].to_vec()] {
        let error = i.handle_record(&bad, now).unwrap_err();
        assert!(matches!(error, ChannelError::Malformed(_)), "{error}");
        assert!(!error.is_fatal());
        assert!(i.poll_transmit().is_none());
    }
    for _ in 0..initiator::MAX_COOKIE_ROUNDS {
        i.handle_record(&reply, now).unwrap();
        let again = i.poll_transmit().unwrap();
        assert_eq!(again.len(), cookie::HELLO_WITH_COOKIE_LEN);
        assert_eq!(again[..hello.len()], hello[..]);
        let (_, cookie) = cookie::split_hello(&again).unwrap();
        assert!(jar.check(&listener, &back, &hello, cookie.unwrap(), now));
    }
    assert!(i.handle_record(&reply, now).is_err(), "one cookie too many");
    assert!(i.poll_transmit().is_none());

    // The hello with its cookie starts a responder; the handshake completes.
    let mut with_cookie = hello.clone();
    with_cookie.extend_from_slice(&reply[1 + cookie::ECHO_LEN..]);
    let mut r = start_responder(&mut rng, &with_cookie).unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    r.handle_record(&i.poll_transmit().unwrap(), now).unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    assert!(i.is_established() && r.is_established());
    // Once past its hello, an initiator takes a cookie reply as the malformed
    // record it then is.
    assert!(i.handle_record(&reply, now).is_err());
    assert!(i.is_established());
}

/// Whether each direction of `end` keeps its key expanded: (sending, receiving).
fn keeps_keys(end: &ChannelEnd) -> (bool, bool) {
    match &end.state {
        State::Established {
            encryptor,
            decryptor,
            ..
        } => (encryptor.keeps_key(), decryptor.keeps_key()),
        _ => panic!("not established"),
    }
}

#[test]
fn keys_stay_expanded_from_the_eighth_data_record_of_a_direction_until_it_is_quiet() {
    let now = Instant::now();
    let (mut i, mut r, confirm) = pair();
    i.handle_record(&confirm, now).unwrap();
    assert_eq!(keeps_keys(&i), (false, false), "a confirm is not data");
    assert_eq!(keeps_keys(&r), (false, false));
    while r.poll_event().is_some() {} // the responder's `Established`
    let message = TransportMessage::new(route!["x"], route!["y"], vec![1; 64]);
    for sent in 1..=usize::from(KEEP_KEYS_AFTER) {
        i.handle_send(&message, now).unwrap();
        r.handle_record(&i.poll_transmit().unwrap(), now).unwrap();
        assert!(
            matches!(r.poll_event(), Some(ChannelEvent::Received(_))),
            "record {sent} delivered"
        );
        assert!(r.poll_event().is_none());
        let kept = sent >= usize::from(KEEP_KEYS_AFTER);
        assert_eq!(keeps_keys(&i), (kept, false), "after {sent} records");
        assert_eq!(keeps_keys(&r), (false, kept), "after {sent} records");
        // A busy receiver keeps room for one event; a quiet one keeps none.
        assert_eq!(
            r.events.capacity(),
            usize::from(kept),
            "after {sent} records"
        );
    }
    // A keepalive interval with nothing sent: the initiator's sending direction is
    // quiet, and so is the responder's receiving one once the keepalive arrives.
    let later = now + DEFAULT_KEEPALIVE_INTERVAL;
    i.handle_timeout(later);
    let keepalive = i.poll_transmit().expect("a keepalive");
    assert_eq!(
        keeps_keys(&i),
        (false, false),
        "quiet: expanded per record again"
    );
    r.handle_record(&keepalive, later).unwrap();
    assert_eq!(keeps_keys(&r), (false, false));
    assert!(r.poll_event().is_none());
    assert_eq!(r.events.capacity(), 0, "quiet: no event storage kept");
    // And busy again: kept from the eighth data record after the quiet.
    for sent in 1..=usize::from(KEEP_KEYS_AFTER) {
        i.handle_send(&message, later).unwrap();
        r.handle_record(&i.poll_transmit().unwrap(), later).unwrap();
        let kept = sent >= usize::from(KEEP_KEYS_AFTER);
        assert_eq!(keeps_keys(&i), (kept, false), "after {sent} more records");
        assert_eq!(keeps_keys(&r), (false, kept), "after {sent} more records");
    }
    // A record the window refuses (a replay) is not data: only opened ones count.
    let (mut i, mut r, confirm) = pair();
    i.handle_record(&confirm, now).unwrap();
    i.handle_send(&message, now).unwrap();
    let record = i.poll_transmit().unwrap();
    r.handle_record(&record, now).unwrap();
    for _ in 0..usize::from(KEEP_KEYS_AFTER) {
        let _ = r.handle_record(&record, now);
    }
    assert_eq!(keeps_keys(&r), (false, false), "replays do not count");
}
