//! Secure channel state machines, two ends in memory: establishment, refusal,
//! tampering, timeouts, and the transport phase under loss, duplication and
//! reordering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use onward_protocol::channel::replay::WINDOW;
use onward_protocol::channel::{
    ChannelConfig, ChannelEnd, ChannelError, ChannelEvent, CloseReason, HandshakeStage,
    ReplayError, MAX_DATA_COUNTER, MAX_INNER_MESSAGE_LEN, REKEY_SHIFT,
};
use onward_protocol::identity::{Identifier, Identity};
use onward_protocol::noise::CipherSuite;
use onward_protocol::random::SeededRandom;
use onward_protocol::report::{Report, ReportCode};
use onward_protocol::trust::{TrustEveryone, TrustIdentifier, TrustPolicy};
use onward_protocol::{route, TransportMessage};
use proptest::prelude::*;

fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]).unwrap())
}

fn everyone() -> Arc<dyn TrustPolicy> {
    Arc::new(TrustEveryone)
}

fn msg(payload: &[u8]) -> TransportMessage {
    TransportMessage::new(route!["echoer"], route!["app"], payload.to_vec())
}

fn drain_transmits(c: &mut ChannelEnd) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn drain_events(c: &mut ChannelEnd) -> Vec<ChannelEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn received(events: &[ChannelEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            ChannelEvent::Received(m) => Some(m.payload.clone()),
            _ => None,
        })
        .collect()
}

struct Handshake {
    hello: Vec<u8>,
    response: Vec<u8>,
    finish: Vec<u8>,
    confirm: Vec<u8>,
}

/// Runs a handshake between fresh ends, recording each record.
fn establish_with(
    config: &ChannelConfig,
    seed: u64,
    initiator_trust: Arc<dyn TrustPolicy>,
    responder_trust: Arc<dyn TrustPolicy>,
) -> (ChannelEnd, ChannelEnd, Handshake) {
    establish_at(
        config,
        seed,
        initiator_trust,
        responder_trust,
        Instant::now(),
    )
}

/// As [`establish_with`], at `now`.
fn establish_at(
    config: &ChannelConfig,
    seed: u64,
    initiator_trust: Arc<dyn TrustPolicy>,
    responder_trust: Arc<dyn TrustPolicy>,
    now: Instant,
) -> (ChannelEnd, ChannelEnd, Handshake) {
    let mut rng = SeededRandom::new(seed);
    let mut i = ChannelEnd::initiator(config, identity(1), initiator_trust, &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    assert!(ChannelEnd::is_hello(&hello));
    let mut r = ChannelEnd::responder(config, &identity(2), responder_trust, &mut rng, &hello, now)
        .unwrap();
    let response = r.poll_transmit().unwrap();
    i.handle_record(&response, now).unwrap();
    let finish = i.poll_transmit().unwrap();
    assert!(
        !i.is_established(),
        "the initiator waits for the responder's verdict"
    );
    r.handle_record(&finish, now).unwrap();
    let confirm = r.poll_transmit().unwrap();
    i.handle_record(&confirm, now).unwrap();
    (
        i,
        r,
        Handshake {
            hello,
            response,
            finish,
            confirm,
        },
    )
}

fn establish() -> (ChannelEnd, ChannelEnd) {
    let (i, r, _) = establish_with(&ChannelConfig::default(), 1, everyone(), everyone());
    (i, r)
}

#[test]
fn two_identities_establish_and_exchange_both_ways() {
    for suite in CipherSuite::ALL {
        let config = ChannelConfig {
            suite,
            ..ChannelConfig::default()
        };
        let (mut i, mut r, _) = establish_with(&config, 7, everyone(), everyone());
        let now = Instant::now();
        assert_eq!(i.peer(), Some(&identity(2).identifier()));
        assert_eq!(r.peer(), Some(&identity(1).identifier()));
        assert_eq!(
            drain_events(&mut i),
            [ChannelEvent::Established {
                peer: identity(2).identifier()
            }]
        );
        assert_eq!(
            drain_events(&mut r),
            [ChannelEvent::Established {
                peer: identity(1).identifier()
            }]
        );
        assert!(
            i.poll_timeout().is_some(),
            "an established end has its keepalive timer"
        );

        for n in 0..5u8 {
            i.handle_send(&msg(&[n; 100]), now).unwrap();
            for record in drain_transmits(&mut i) {
                r.handle_record(&record, now).unwrap();
            }
            let events = drain_events(&mut r);
            let [ChannelEvent::Received(m)] = &events[..] else {
                panic!("{events:?}")
            };
            assert_eq!(m, &msg(&[n; 100]), "routes and payload survive");

            r.handle_send(&msg(&[n + 100; 3]), now).unwrap();
            for record in drain_transmits(&mut r) {
                i.handle_record(&record, now).unwrap();
            }
            assert_eq!(received(&drain_events(&mut i)), [vec![n + 100; 3]]);
        }
    }
}

#[test]
fn records_have_the_documented_sizes() {
    let (mut i, _r, h) = establish_with(&ChannelConfig::default(), 3, everyone(), everyone());
    assert_eq!(h.hello.len(), 34);
    assert_eq!(h.response.len(), 193);
    assert_eq!(h.finish.len(), 161);
    assert_eq!(h.confirm.len(), 9 + 1 + 16);
    assert_eq!(&h.hello[..2], &[0x01, 0x01]);
    assert_eq!(h.response[0], 0x02);
    assert_eq!(h.finish[0], 0x03);
    assert_eq!(&h.confirm[..9], &[0x04, 0, 0, 0, 0, 0, 0, 0, 0]);
    let now = Instant::now();
    i.handle_send(&msg(b"x"), now).unwrap();
    let record = i.poll_transmit().unwrap();
    let inner = msg(b"x").to_bytes().unwrap();
    assert_eq!(record.len(), 9 + 1 + inner.len() + 16);
    assert_eq!(
        &record[..9],
        &[0x04, 0, 0, 0, 0, 0, 0, 0, 0],
        "the initiator's first counter is 0"
    );
}

#[test]
fn sending_before_establishment_is_refused() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(1);
    let mut i = ChannelEnd::initiator(
        &ChannelConfig::default(),
        identity(1),
        everyone(),
        &mut rng,
        now,
    )
    .unwrap();
    assert_eq!(
        i.handle_send(&msg(b"early"), now),
        Err(ChannelError::NotEstablished)
    );
}

#[test]
fn a_responder_that_refuses_tells_the_initiator_authenticated() {
    let now = Instant::now();
    let config = ChannelConfig::default();
    let mut rng = SeededRandom::new(5);
    let only_someone_else: Arc<dyn TrustPolicy> =
        Arc::new(TrustIdentifier::new(identity(9).identifier()));
    let mut i = ChannelEnd::initiator(&config, identity(1), everyone(), &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let mut r = ChannelEnd::responder(
        &config,
        &identity(2),
        only_someone_else,
        &mut rng,
        &hello,
        now,
    )
    .unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    let err = r
        .handle_record(&i.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(
        err,
        ChannelError::Untrusted {
            peer: identity(1).identifier()
        }
    );
    assert!(r.is_ended());
    assert_eq!(
        drain_events(&mut r),
        [],
        "reported once, as the returned error"
    );
    assert_eq!(r.handle_send(&msg(b"x"), now), Err(ChannelError::Closed));

    let refusal = r.poll_transmit().expect("an authenticated refusal");
    let mut forged = refusal.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert!(i.handle_record(&forged, now).is_err());
    assert!(!i.is_ended(), "a forged refusal changes nothing");
    assert_eq!(
        i.handle_record(&refusal, now),
        Err(ChannelError::RefusedByPeer)
    );
    assert!(i.is_ended());
    assert_eq!(
        drain_events(&mut i),
        [],
        "reported once, as the returned error"
    );
    assert_eq!(i.peer(), None);
}

#[test]
fn an_initiator_that_refuses_the_responder_sends_nothing_more() {
    let now = Instant::now();
    let config = ChannelConfig::default();
    let mut rng = SeededRandom::new(6);
    let picky: Arc<dyn TrustPolicy> =
        Arc::new(|peer: &Identifier| *peer == identity(9).identifier());
    let mut i = ChannelEnd::initiator(&config, identity(1), picky, &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let mut r =
        ChannelEnd::responder(&config, &identity(2), everyone(), &mut rng, &hello, now).unwrap();
    let err = i
        .handle_record(&r.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(
        err,
        ChannelError::Untrusted {
            peer: identity(2).identifier()
        }
    );
    assert_eq!(
        i.poll_transmit(),
        None,
        "no finish, so the responder learns nothing of the initiator"
    );
    assert!(i.is_ended());
    assert_eq!(
        drain_events(&mut i),
        [],
        "reported once, as the returned error"
    );
    // The responder's handshake then times out: no call returns that, so it is an
    // event.
    let deadline = r.poll_timeout().unwrap();
    r.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!r.is_ended());
    r.handle_timeout(deadline);
    assert_eq!(
        drain_events(&mut r),
        [ChannelEvent::Failed(ChannelError::HandshakeTimeout {
            after: config.handshake_timeout,
            stage: HandshakeStage::ResponseSent,
        })]
    );
}

#[test]
fn a_stalled_handshake_times_out_on_each_side() {
    let now = Instant::now();
    let config = ChannelConfig {
        handshake_timeout: Duration::from_secs(3),
        ..ChannelConfig::default()
    };
    let mut rng = SeededRandom::new(8);
    let mut i = ChannelEnd::initiator(&config, identity(1), everyone(), &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    // No answer: the hello goes again after 1 s, then 2 s later the deadline ends it.
    assert_eq!(i.poll_timeout(), Some(now + Duration::from_secs(1)));
    i.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(drain_transmits(&mut i), [hello]);
    assert_eq!(i.poll_timeout(), Some(now + Duration::from_secs(3)));
    i.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(
        drain_events(&mut i),
        [ChannelEvent::Failed(ChannelError::HandshakeTimeout {
            after: Duration::from_secs(3),
            stage: HandshakeStage::HelloSent,
        })]
    );
    assert_eq!(i.poll_timeout(), None);

    // An initiator whose finish was lost waits for a confirmation that never comes.
    let mut i = ChannelEnd::initiator(&config, identity(1), everyone(), &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let mut r =
        ChannelEnd::responder(&config, &identity(2), everyone(), &mut rng, &hello, now).unwrap();
    i.handle_record(&r.poll_transmit().unwrap(), now).unwrap();
    let lost_finish = i.poll_transmit().unwrap();
    assert_eq!(i.poll_timeout(), Some(now + Duration::from_secs(1)));
    i.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(
        drain_transmits(&mut i),
        [lost_finish],
        "the finish goes again"
    );
    i.handle_timeout(now + Duration::from_secs(3));
    assert!(i.is_ended());
    assert!(matches!(
        drain_events(&mut i)[..],
        [ChannelEvent::Failed(ChannelError::HandshakeTimeout {
            stage: HandshakeStage::FinishSent,
            ..
        })]
    ));
    r.handle_timeout(now + Duration::from_secs(3));
    assert!(r.is_ended());
    assert!(matches!(
        drain_events(&mut r)[..],
        [ChannelEvent::Failed(ChannelError::HandshakeTimeout {
            stage: HandshakeStage::ResponseSent,
            ..
        })]
    ));
}

/// Runs the handshake with one record altered; returns whether each end established.
fn handshake_with_tampering(step: usize, tamper: impl Fn(&mut Vec<u8>)) -> (bool, bool) {
    let now = Instant::now();
    let config = ChannelConfig::default();
    let mut rng = SeededRandom::new(11);
    let mut i = ChannelEnd::initiator(&config, identity(1), everyone(), &mut rng, now).unwrap();
    let mut hello = i.poll_transmit().unwrap();
    if step == 0 {
        tamper(&mut hello);
    }
    let Ok(mut r) = ChannelEnd::responder(&config, &identity(2), everyone(), &mut rng, &hello, now)
    else {
        return (false, false);
    };
    let mut response = r.poll_transmit().unwrap();
    if step == 1 {
        tamper(&mut response);
    }
    if i.handle_record(&response, now).is_ok() {
        if let Some(mut finish) = i.poll_transmit() {
            if step == 2 {
                tamper(&mut finish);
            }
            if r.handle_record(&finish, now).is_ok() {
                for confirm in drain_transmits(&mut r) {
                    let _ = i.handle_record(&confirm, now);
                }
            }
        }
    }
    (i.is_established(), r.is_established())
}

#[test]
fn every_bit_flip_of_every_handshake_record_aborts_the_channel() {
    let (_, _, h) = establish_with(&ChannelConfig::default(), 11, everyone(), everyone());
    let lens = [h.hello.len(), h.response.len(), h.finish.len()];
    let mut cases = 0;
    for (step, len) in lens.into_iter().enumerate() {
        for bit in 0..len * 8 {
            let outcome = handshake_with_tampering(step, |r| r[bit / 8] ^= 1 << (bit % 8));
            assert_eq!(outcome, (false, false), "record {step}, bit {bit}");
            cases += 1;
        }
    }
    assert_eq!(cases, (34 + 193 + 161) * 8);
    // And the untampered run does establish, so the check above can fail.
    assert_eq!(handshake_with_tampering(9, |_| {}), (true, true));
}

#[test]
fn truncated_or_extended_handshake_records_abort_the_channel() {
    for step in 0..3 {
        for cut in 0..200 {
            let outcome =
                handshake_with_tampering(step, |r| r.truncate(cut.min(r.len().saturating_sub(1))));
            assert_eq!(outcome, (false, false), "record {step} cut to {cut}");
        }
        assert_eq!(
            handshake_with_tampering(step, |r| r.push(0)),
            (false, false)
        );
    }
}

#[test]
fn a_response_recorded_from_another_handshake_is_rejected() {
    let (_, _, first) = establish_with(&ChannelConfig::default(), 21, everyone(), everyone());
    let now = Instant::now();
    let mut rng = SeededRandom::new(22);
    let mut i = ChannelEnd::initiator(
        &ChannelConfig::default(),
        identity(1),
        everyone(),
        &mut rng,
        now,
    )
    .unwrap();
    let _ = i.poll_transmit();
    assert!(i
        .handle_record(&first.response, now)
        .unwrap_err()
        .is_fatal());
    assert!(i.is_ended());
}

#[test]
fn a_suite_the_responder_does_not_accept_is_refused() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(3);
    let initiator_config = ChannelConfig {
        suite: CipherSuite::ChaCha20Poly1305Sha256,
        ..ChannelConfig::default()
    };
    let responder_config = ChannelConfig {
        accepted_suites: vec![CipherSuite::Aes256GcmSha256],
        ..ChannelConfig::default()
    };
    let mut i =
        ChannelEnd::initiator(&initiator_config, identity(1), everyone(), &mut rng, now).unwrap();
    let hello = i.poll_transmit().unwrap();
    let err = ChannelEnd::responder(
        &responder_config,
        &identity(2),
        everyone(),
        &mut rng,
        &hello,
        now,
    )
    .unwrap_err();
    assert_eq!(err, ChannelError::UnsupportedSuite(0x02));
    let mut unknown = hello.clone();
    unknown[1] = 0x7f;
    assert_eq!(
        ChannelEnd::responder(
            &responder_config,
            &identity(2),
            everyone(),
            &mut rng,
            &unknown,
            now
        )
        .unwrap_err(),
        ChannelError::UnsupportedSuite(0x7f)
    );
}

/// Sends `n` messages from `from`, returning the records.
fn send_many(from: &mut ChannelEnd, n: usize, tag: u8) -> Vec<Vec<u8>> {
    let now = Instant::now();
    (0..n)
        .map(|k| {
            from.handle_send(&msg(&[tag, (k % 256) as u8, (k / 256) as u8]), now)
                .unwrap();
            from.poll_transmit().unwrap()
        })
        .collect()
}

#[test]
fn a_replayed_record_is_rejected() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    let records = send_many(&mut i, 1, 0);
    r.handle_record(&records[0], now).unwrap();
    assert!(matches!(
        r.handle_record(&records[0], now),
        Err(ChannelError::Replay { counter: 0, .. })
    ));
    assert_eq!(received(&drain_events(&mut r)).len(), 1);
}

#[test]
fn reordered_records_within_the_window_are_accepted_once_each() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut r);
    let records = send_many(&mut i, 300, 1);
    for record in records.iter().rev() {
        r.handle_record(record, now).unwrap();
    }
    for record in &records {
        assert!(r.handle_record(record, now).is_err());
    }
    let mut got = received(&drain_events(&mut r));
    assert_eq!(got.len(), 300);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 300);
}

#[test]
fn a_record_older_than_the_window_is_rejected() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    let records = send_many(&mut i, WINDOW as usize + 10, 2);
    let (first, rest) = records.split_first().unwrap();
    for record in rest {
        r.handle_record(record, now).unwrap();
    }
    assert!(matches!(
        r.handle_record(first, now),
        Err(ChannelError::Replay { counter: 0, .. })
    ));
}

#[test]
fn a_forged_record_with_a_huge_counter_does_not_move_the_window() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut r);
    let records = send_many(&mut i, 10, 3);
    let mut forged = records[0].clone();
    forged[1..9].copy_from_slice(&1_000_000_000u64.to_be_bytes());
    assert!(r.handle_record(&forged, now).is_err());
    let mut forged_near = records[0].clone();
    forged_near[1..9].copy_from_slice(&5u64.to_be_bytes());
    assert_eq!(
        r.handle_record(&forged_near, now),
        Err(ChannelError::Forged { counter: 5 })
    );
    for record in &records {
        r.handle_record(record, now).unwrap();
    }
    assert_eq!(received(&drain_events(&mut r)).len(), 10);
}

#[test]
fn every_bit_flip_of_a_transport_record_is_rejected_and_the_next_accepted() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut r);
    let records = send_many(&mut i, 2, 4);
    for bit in 0..records[0].len() * 8 {
        let mut flipped = records[0].clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(r.handle_record(&flipped, now).is_err(), "bit {bit}");
    }
    assert!(drain_events(&mut r).is_empty());
    r.handle_record(&records[0], now).unwrap();
    r.handle_record(&records[1], now).unwrap();
    assert_eq!(received(&drain_events(&mut r)).len(), 2);
    // Truncated and extended records too.
    let records = send_many(&mut i, 1, 5);
    for cut in 0..records[0].len() {
        assert!(r.handle_record(&records[0][..cut], now).is_err());
    }
    let mut longer = records[0].clone();
    longer.push(0);
    assert!(r.handle_record(&longer, now).is_err());
    r.handle_record(&records[0], now).unwrap();
}

#[test]
fn reordering_across_a_rekey_boundary() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut r);
    let boundary = 1u64 << REKEY_SHIFT;
    i.jump_send_counter_for_tests(boundary - 5);
    r.jump_receive_counter_for_tests(boundary - 5);
    let records = send_many(&mut i, 10, 6);
    // A record after the boundary arrives first, then all in reverse order.
    r.handle_record(&records[7], now).unwrap();
    let mut rejected = 0;
    for record in records.iter().rev() {
        if r.handle_record(record, now).is_err() {
            rejected += 1;
        }
    }
    assert_eq!(
        rejected, 1,
        "only the duplicate of the record delivered first"
    );
    assert_eq!(received(&drain_events(&mut r)).len(), 10);
    // A record of the new generation sealed with the old key does not open: the keys
    // really changed at the boundary.
    let mut stale = records[0].clone();
    stale[1..9].copy_from_slice(&(boundary + 100).to_be_bytes());
    assert!(matches!(
        r.handle_record(&stale, now),
        Err(ChannelError::Forged { .. })
    ));
    let more = send_many(&mut i, 3, 7);
    for record in &more {
        r.handle_record(record, now).unwrap();
    }
    assert_eq!(received(&drain_events(&mut r)).len(), 3);
}

#[test]
fn generations_ahead_are_derived_up_to_the_limit() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut r);
    let generation = 1u64 << REKEY_SHIFT;
    // The sender crosses three boundaries for real (rekeying each time) while the
    // receiver sees nothing: the receiver derives the three keys itself.
    for g in 1..=3u64 {
        i.jump_send_counter_for_tests(g * generation - 1);
        let _lost = send_many(&mut i, 2, 8);
    }
    let records = send_many(&mut i, 1, 8);
    r.handle_record(&records[0], now).unwrap();
    assert_eq!(received(&drain_events(&mut r)).len(), 1);
    // The jump hook relabels the sender's key without rekeying, so a sender moved far
    // ahead this way is out of step; a forged counter far ahead is refused outright.
    let mut far = records[0].clone();
    far[1..9].copy_from_slice(&(10 * generation).to_be_bytes());
    assert!(matches!(
        r.handle_record(&far, now),
        Err(ChannelError::TooFarAhead { .. })
    ));
}

#[test]
fn counter_exhaustion_ends_the_channel() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    i.jump_send_counter_for_tests(MAX_DATA_COUNTER);
    r.jump_receive_counter_for_tests(MAX_DATA_COUNTER);
    drain_events(&mut i);
    let last = send_many(&mut i, 1, 9);
    r.handle_record(&last[0], now).unwrap();
    assert_eq!(
        i.handle_send(&msg(b"one too many"), now),
        Err(ChannelError::CounterExhausted)
    );
    assert!(i.is_ended());
    assert_eq!(
        drain_events(&mut i),
        [],
        "reported once, as the returned error"
    );
    let close = i
        .poll_transmit()
        .expect("a close record on the reserved counter");
    assert_eq!(&close[1..9], &(MAX_DATA_COUNTER + 1).to_be_bytes());
    r.handle_record(&close, now).unwrap();
    let events = drain_events(&mut r);
    assert_eq!(
        events.last(),
        Some(&ChannelEvent::Closed {
            reason: CloseReason::CounterExhausted,
            by_peer: true
        })
    );
}

#[test]
fn an_oversized_message_is_refused_at_the_sender() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut r);
    let too_big = msg(&vec![0; MAX_INNER_MESSAGE_LEN]);
    assert!(matches!(
        i.handle_send(&too_big, now),
        Err(ChannelError::PlaintextTooLarge { .. })
    ));
    assert_eq!(i.poll_transmit(), None);
    assert!(
        i.is_established(),
        "refusing one message does not end the channel"
    );
    // The largest that fits goes through: find it from the encoding overhead.
    let overhead = msg(&vec![0; 1000]).to_bytes().unwrap().len() - 1000;
    let fits = msg(&vec![1; MAX_INNER_MESSAGE_LEN - overhead]);
    assert_eq!(fits.to_bytes().unwrap().len(), MAX_INNER_MESSAGE_LEN);
    i.handle_send(&fits, now).unwrap();
    r.handle_record(&i.poll_transmit().unwrap(), now).unwrap();
    assert_eq!(
        received(&drain_events(&mut r))[0].len(),
        MAX_INNER_MESSAGE_LEN - overhead
    );
    let one_more = msg(&vec![1; MAX_INNER_MESSAGE_LEN - overhead + 1]);
    assert!(matches!(
        i.handle_send(&one_more, now),
        Err(ChannelError::PlaintextTooLarge { .. })
    ));
}

#[test]
fn close_is_authenticated() {
    let (mut i, mut r) = establish();
    let now = Instant::now();
    drain_events(&mut i);
    drain_events(&mut r);
    i.close(now);
    assert_eq!(
        drain_events(&mut i),
        [ChannelEvent::Closed {
            reason: CloseReason::Normal,
            by_peer: false
        }]
    );
    let close = i.poll_transmit().unwrap();
    let mut forged = close.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert!(r.handle_record(&forged, now).is_err());
    assert!(r.is_established(), "a forged close changes nothing");
    r.handle_record(&close, now).unwrap();
    assert_eq!(
        drain_events(&mut r),
        [ChannelEvent::Closed {
            reason: CloseReason::Normal,
            by_peer: true
        }]
    );
    assert_eq!(r.handle_send(&msg(b"x"), now), Err(ChannelError::Closed));
}

#[derive(Debug, Clone)]
enum Op {
    Send(bool),
    Deliver(prop::sample::Index, bool),
    Duplicate(prop::sample::Index),
    Drop(prop::sample::Index),
    /// The sender skips this many counters (records it never sends), if that keeps it
    /// in its key generation: the receiver then finds records in flight too old.
    Skip(bool, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(Op::Send),
        (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(i, d)| Op::Deliver(i, d)),
        any::<prop::sample::Index>().prop_map(Op::Duplicate),
        any::<prop::sample::Index>().prop_map(Op::Drop),
        (any::<bool>(), 1..WINDOW).prop_map(|(from, n)| Op::Skip(from, n)),
    ]
}

/// What §6 says a receiver does with a record's counter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Accept,
    Replayed,
    TooOld,
}

/// One direction of the channel as the test sees it: the payload sent with each
/// counter, and a model of the receiver's replay window (PROTOCOL.md §6).
#[derive(Default)]
struct Direction {
    sent: std::collections::BTreeMap<u64, Vec<u8>>,
    accepted: std::collections::BTreeSet<u64>,
    newest: Option<u64>,
    /// The verdict on the first copy of each counter that was delivered.
    first_verdict: std::collections::BTreeMap<u64, Verdict>,
    /// How many times each counter's message was delivered.
    delivered: std::collections::BTreeMap<u64, usize>,
}

impl Direction {
    fn verdict(&self, counter: u64) -> Verdict {
        match self.newest {
            Some(newest) if counter <= newest && newest - counter >= WINDOW => Verdict::TooOld,
            _ if self.accepted.contains(&counter) => Verdict::Replayed,
            _ => Verdict::Accept,
        }
    }

    /// Delivers `record` to `to` and checks the outcome against the model.
    fn deliver(&mut self, to: &mut ChannelEnd, record: &[u8]) -> Result<(), TestCaseError> {
        let counter = u64::from_be_bytes(record[1..9].try_into().unwrap());
        let verdict = self.verdict(counter);
        self.first_verdict.entry(counter).or_insert(verdict);
        let result = to.handle_record(record, Instant::now());
        let got = received(&drain_events(to));
        let expected = match (verdict, self.newest) {
            (Verdict::Accept, _) => Ok(()),
            (Verdict::Replayed, _) => Err(ReplayError::Replayed { counter }),
            (Verdict::TooOld, Some(newest)) => Err(ReplayError::TooOld { counter, newest }),
            (Verdict::TooOld, None) => unreachable!("nothing accepted, nothing too old"),
        }
        .map_err(|source| ChannelError::Replay { counter, source });
        prop_assert_eq!(result, expected, "counter {}", counter);
        if verdict == Verdict::Accept {
            prop_assert_eq!(&got, &[self.sent[&counter].clone()], "counter {}", counter);
            self.accepted.insert(counter);
            self.newest = self.newest.max(Some(counter));
            *self.delivered.entry(counter).or_default() += 1;
        } else {
            prop_assert!(got.is_empty(), "counter {}", counter);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Records are sent, delivered (kept in flight or not), duplicated, dropped and
    /// delivered out of order; senders skip counters. Every delivery is checked against
    /// the replay window's rule: a record is accepted (its message delivered, once) unless
    /// its counter was already accepted or is too old, and refused for exactly that reason.
    /// At the end every record that was not dropped has been delivered exactly once,
    /// unless it was too old when it first arrived. The initiator's direction starts just
    /// before a key generation boundary, so records are also reordered across a rekey.
    #[test]
    fn lossy_reordering_network_delivers_every_record_in_the_window_exactly_once(
        ops in proptest::collection::vec(op(), 1..300)
    ) {
        let (mut i, mut r) = establish();
        let generation = 1u64 << REKEY_SHIFT;
        i.jump_send_counter_for_tests(generation - 16);
        r.jump_receive_counter_for_tests(generation - 16);
        drain_events(&mut i);
        drain_events(&mut r);
        let now = Instant::now();
        // Records in flight, with whether the initiator sent them.
        let mut flight: Vec<(Vec<u8>, bool)> = Vec::new();
        // Indexed by whether the initiator sends.
        let mut directions = [Direction::default(), Direction::default()];
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Send(from_initiator) => {
                    let payload = (n as u32).to_be_bytes().to_vec();
                    let end = if from_initiator { &mut i } else { &mut r };
                    let counter = end.next_send_counter().unwrap();
                    end.handle_send(&msg(&payload), now).unwrap();
                    flight.push((end.poll_transmit().unwrap(), from_initiator));
                    directions[usize::from(from_initiator)].sent.insert(counter, payload);
                }
                Op::Deliver(index, keep) if !flight.is_empty() => {
                    let k = index.index(flight.len());
                    let (record, from_initiator) = if keep { flight[k].clone() } else { flight.swap_remove(k) };
                    let to = if from_initiator { &mut r } else { &mut i };
                    directions[usize::from(from_initiator)].deliver(to, &record)?;
                }
                Op::Duplicate(index) if !flight.is_empty() => {
                    let k = index.index(flight.len());
                    flight.push(flight[k].clone());
                }
                Op::Drop(index) if !flight.is_empty() => {
                    let k = index.index(flight.len());
                    flight.swap_remove(k);
                }
                Op::Skip(from_initiator, skip) => {
                    let end = if from_initiator { &mut i } else { &mut r };
                    let next = end.next_send_counter().unwrap();
                    // The hook relabels the sender's key as the target's generation
                    // without rekeying, so it may only move within the generation of
                    // the key it holds: that of the last counter it used (the sender
                    // rekeys when it seals the first record of a generation).
                    if (next + skip) >> REKEY_SHIFT == (next - 1) >> REKEY_SHIFT {
                        end.jump_send_counter_for_tests(next + skip);
                    }
                }
                _ => {}
            }
        }
        // Deliver what is still in flight, so that everything not dropped arrives.
        for (record, from_initiator) in flight {
            let to = if from_initiator { &mut r } else { &mut i };
            directions[usize::from(from_initiator)].deliver(to, &record)?;
        }
        for direction in &directions {
            for counter in direction.sent.keys() {
                // Once if its first copy to arrive was accepted; never if every copy was
                // dropped or the first was too old.
                let first = direction.first_verdict.get(counter);
                let times = direction.delivered.get(counter).copied().unwrap_or(0);
                let expected = usize::from(first == Some(&Verdict::Accept));
                prop_assert_eq!(times, expected, "counter {}: {:?}", counter, first);
            }
        }
        prop_assert!(i.is_established() && r.is_established());
    }
}

// ---- liveness: keepalives, the idle deadline, probes, duplicates ---------------------

fn report() -> Report {
    Report::new(
        ReportCode::UnknownAddress,
        onward_protocol::Address::local("gone"),
        "",
    )
}

/// An idle established end sends a keepalive each interval; the peer takes it
/// silently; an end that hears nothing for the idle timeout fails, telling the peer
/// with a close record.
#[test]
fn keepalives_and_the_idle_deadline() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let config = ChannelConfig::default();
    let (mut i, mut r, _) = establish_at(&config, 31, everyone(), everyone(), t0);
    let _ = (drain_events(&mut i), drain_events(&mut r));
    assert_eq!(i.poll_timeout(), Some(t0 + s(10)));
    i.handle_timeout(t0 + s(10));
    let keepalives = drain_transmits(&mut i);
    assert_eq!(keepalives.len(), 1);
    // 9 bytes of header, 2 of plaintext, 16 of tag.
    assert_eq!(keepalives[0].len(), 27);
    r.handle_record(&keepalives[0], t0 + s(10)).unwrap();
    assert_eq!(drain_events(&mut r), [], "a keepalive is not a message");
    assert!(drain_transmits(&mut r).is_empty(), "nor answered");
    // The responder, hearing the keepalive at 10 s, lives until 40 s; its own
    // keepalive at 10 s is due since it sent nothing.
    r.handle_timeout(t0 + s(10));
    assert_eq!(drain_transmits(&mut r).len(), 1);
    r.handle_timeout(t0 + s(39));
    assert!(!r.is_ended());
    let _ = drain_transmits(&mut r);
    r.handle_timeout(t0 + s(40));
    assert!(r.is_ended());
    assert_eq!(
        drain_events(&mut r),
        [ChannelEvent::Failed(ChannelError::Unresponsive {
            silent_for: s(30)
        })]
    );
    let close = drain_transmits(&mut r);
    assert_eq!(close.len(), 1, "the peer is told");
    i.handle_record(&close[0], t0 + s(40)).unwrap();
    assert_eq!(
        drain_events(&mut i),
        [ChannelEvent::Closed {
            reason: CloseReason::Unresponsive,
            by_peer: true
        }]
    );
    // Without keepalives and idle deadline, an established end has no timer.
    let (i, _, _) = establish_at(
        &ChannelConfig::default().without_keepalives(),
        32,
        everyone(),
        everyone(),
        t0,
    );
    assert_eq!(i.poll_timeout(), None);
}

/// A report makes an established end probe its peer: an answer (and only a genuine
/// one) keeps the channel; no answer within the probe timeout fails it. A replayed
/// probe is not answered again.
#[test]
fn a_report_is_verified_by_a_probe() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (mut i, mut r, _) = establish_at(&ChannelConfig::default(), 33, everyone(), everyone(), t0);
    let _ = (drain_events(&mut i), drain_events(&mut r));

    i.handle_report(report(), t0).unwrap();
    let probe = drain_transmits(&mut i);
    assert_eq!(probe.len(), 1);
    assert_eq!(i.poll_timeout(), Some(t0 + ms(1000)));
    // A second report while the probe waits sends nothing more.
    i.handle_report(report(), t0 + ms(10)).unwrap();
    assert!(drain_transmits(&mut i).is_empty());
    r.handle_record(&probe[0], t0 + ms(20)).unwrap();
    let answer = drain_transmits(&mut r);
    assert_eq!(answer.len(), 1, "a probe is answered at once");
    // The replayed probe is rejected, and not answered.
    assert!(r.handle_record(&probe[0], t0 + ms(21)).is_err());
    assert!(drain_transmits(&mut r).is_empty());
    i.handle_record(&answer[0], t0 + ms(40)).unwrap();
    i.handle_timeout(t0 + ms(2000));
    assert!(i.is_established(), "the answer cleared the probe");
    let _ = drain_transmits(&mut i);

    // No answer this time: the end fails after the probe timeout.
    i.handle_report(report(), t0 + ms(3000)).unwrap();
    let _lost_probe = drain_transmits(&mut i);
    i.handle_timeout(t0 + ms(3999));
    assert!(i.is_established());
    i.handle_timeout(t0 + ms(4000));
    assert!(i.is_ended());
    match &drain_events(&mut i)[..] {
        [ChannelEvent::Failed(ChannelError::PeerLost { report: r, waited })] => {
            assert_eq!(**r, report());
            assert_eq!(*waited, ms(1000));
        }
        other => panic!("{other:?}"),
    }
    // During the handshake a report ends the channel at once, with its reason.
    let mut rng = SeededRandom::new(34);
    let config = ChannelConfig::default();
    let mut i = ChannelEnd::initiator(&config, identity(1), everyone(), &mut rng, t0).unwrap();
    assert_eq!(
        i.handle_report(report(), t0),
        Err(ChannelError::RouteFailed {
            report: Box::new(report())
        })
    );
    assert!(i.is_ended());
    assert_eq!(
        drain_events(&mut i),
        [],
        "reported once, as the returned error"
    );
}

/// A responder answers a duplicate hello with its response again, and a duplicate
/// finish (once established) with a new confirm, a few times at most; a finish that
/// is not the one it took is dropped.
#[test]
fn duplicates_of_handshake_records_are_answered_a_few_times() {
    let t0 = Instant::now();
    let (mut i, mut r, h) = establish_at(&ChannelConfig::default(), 35, everyone(), everyone(), t0);
    let _ = (drain_events(&mut i), drain_events(&mut r));
    let mut answered = 0;
    for _ in 0..10 {
        if r.handle_record(&h.finish, t0).is_ok() {
            let confirm = drain_transmits(&mut r);
            assert_eq!(confirm.len(), 1);
            assert_ne!(confirm[0], h.confirm, "a new record, not a replay");
            i.handle_record(&confirm[0], t0).unwrap();
            answered += 1;
        }
    }
    assert_eq!(answered, 4);
    let mut other = h.finish.clone();
    other[5] ^= 1;
    assert!(r.handle_record(&other, t0).is_err());

    let mut rng = SeededRandom::new(36);
    let config = ChannelConfig::default();
    let mut i = ChannelEnd::initiator(&config, identity(1), everyone(), &mut rng, t0).unwrap();
    let hello = i.poll_transmit().unwrap();
    let mut r =
        ChannelEnd::responder(&config, &identity(2), everyone(), &mut rng, &hello, t0).unwrap();
    let response = r.poll_transmit().unwrap();
    let answers = (0..10).filter(|_| r.answer_duplicate_hello(t0)).count();
    assert_eq!(answers, 4);
    let again = drain_transmits(&mut r);
    assert!(again.iter().all(|a| *a == response));
    i.handle_record(&again[0], t0).unwrap();
    r.handle_record(&drain_transmits(&mut i)[0], t0).unwrap();
    assert!(r.is_established());
    assert!(!r.answer_duplicate_hello(t0), "not once established");
}

/// Keepalives and probes are ordinary records: once every message counter is used, no
/// keepalive goes out (the last counter is kept for a close), and when the silent
/// peer is given up the close takes that last counter.
#[test]
fn keepalives_never_take_the_counter_kept_for_a_close() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let (mut i, mut r, _) = establish_at(&ChannelConfig::default(), 37, everyone(), everyone(), t0);
    let _ = (drain_events(&mut i), drain_events(&mut r));
    i.jump_send_counter_for_tests(MAX_DATA_COUNTER + 1);
    i.handle_timeout(t0 + s(10));
    assert!(
        drain_transmits(&mut i).is_empty(),
        "no keepalive on the close's counter"
    );
    i.handle_timeout(t0 + s(30));
    assert!(i.is_ended());
    let close = drain_transmits(&mut i);
    assert_eq!(close.len(), 1, "the close still goes");
    assert_eq!(&close[0][1..9], &(MAX_DATA_COUNTER + 1).to_be_bytes());
}
