//! The `channel` and `channel_handshake` targets: secure channel ends fed genuine,
//! altered and fuzzed records.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use onward_protocol::channel::cookie::HELLO_WITH_COOKIE_LEN;
use onward_protocol::channel::{
    ChannelConfig, ChannelEnd, ChannelError, ChannelEvent, CloseReason, HandshakeStage,
    MAX_DATA_COUNTER,
};
use onward_protocol::identity::Identity;
use onward_protocol::message::TransportMessage;
use onward_protocol::noise::CipherSuite;
use onward_protocol::random::SeededRandom;
use onward_protocol::route;
use onward_protocol::trust::TrustEveryone;

use crate::input::{alter, Input};
use crate::noise::suite_from_bit;
use crate::replay_window::ReplayModel;

/// The two identities of the channel targets, made once.
fn identities() -> &'static (Arc<Identity>, Arc<Identity>) {
    static IDENTITIES: OnceLock<(Arc<Identity>, Arc<Identity>)> = OnceLock::new();
    IDENTITIES.get_or_init(|| {
        (
            Arc::new(Identity::from_seed(&[1; 32]).expect("any seed makes an identity")),
            Arc::new(Identity::from_seed(&[2; 32]).expect("any seed makes an identity")),
        )
    })
}

/// A base time for the channel targets. The channels never read a clock; only
/// differences from this instant matter, so the outcome of a target does not depend
/// on its value.
fn base_time() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The records of one deterministic handshake.
struct HandshakeRecords {
    hello: Vec<u8>,
    response: Vec<u8>,
    finish: Vec<u8>,
    confirm: Vec<u8>,
}

fn channel_config(suite: CipherSuite) -> ChannelConfig {
    ChannelConfig {
        suite,
        ..ChannelConfig::default()
    }
}

/// Runs a deterministic handshake to the end.
fn established_pair(suite: CipherSuite) -> (ChannelEnd, ChannelEnd, HandshakeRecords) {
    let now = base_time();
    let (alice, bob) = identities();
    let config = channel_config(suite);
    let mut rng = SeededRandom::new(7);
    let mut i = ChannelEnd::initiator(&config, bob.clone(), Arc::new(TrustEveryone), &mut rng, now)
        .expect("the initiator starts");
    let hello = i.poll_transmit().expect("the hello");
    let mut r = ChannelEnd::responder(
        &config,
        alice,
        Arc::new(TrustEveryone),
        &mut rng,
        &hello,
        now,
    )
    .expect("the responder accepts a genuine hello");
    let response = r.poll_transmit().expect("the response");
    i.handle_record(&response, now)
        .expect("the initiator accepts a genuine response");
    let finish = i.poll_transmit().expect("the finish");
    r.handle_record(&finish, now)
        .expect("the responder accepts a genuine finish");
    let confirm = r.poll_transmit().expect("the confirmation");
    i.handle_record(&confirm, now)
        .expect("the initiator accepts a genuine confirmation");
    assert!(i.is_established() && r.is_established());
    for end in [&mut i, &mut r] {
        let events: Vec<_> = std::iter::from_fn(|| end.poll_event()).collect();
        assert!(matches!(
            events.as_slice(),
            [ChannelEvent::Established { .. }]
        ));
        assert_eq!(end.poll_transmit(), None);
    }
    (
        i,
        r,
        HandshakeRecords {
            hello,
            response,
            finish,
            confirm,
        },
    )
}

/// The counter of a transport record, if it has the layout of one.
fn record_counter(record: &[u8]) -> Option<u64> {
    if record.first() != Some(&0x04) || record.len() < 9 + 16 {
        return None;
    }
    Some(u64::from_be_bytes(record[1..9].try_into().ok()?))
}

/// The message the channel targets send with counter `counter`: every run sends the
/// same message for the same counter, so a record accepted by the receiver, from
/// whatever run the fuzzer copied it, must carry exactly this message.
fn message_for(counter: u64) -> TransportMessage {
    let payload = counter.to_be_bytes().repeat((counter % 5) as usize);
    TransportMessage::new(route!["echoer"], route!["app"], payload)
}

/// Counters the `channel` target may jump both ends to before sending: the start, just
/// before a rekey boundary, just before a later one, and just before the end of the
/// counter space.
const CHANNEL_JUMPS: [u64; 4] = [0, (1 << 16) - 48, (5 << 16) - 48, MAX_DATA_COUNTER - 48];

/// Most records one `channel` input may make the sender seal.
const CHANNEL_MAX_SENDS: usize = 5000;

/// The receiving side of the `channel` target with its reference model.
struct Receiver<'a> {
    end: &'a mut ChannelEnd,
    model: ReplayModel,
    delivered: BTreeSet<u64>,
    ended: bool,
    now: Instant,
}

impl Receiver<'_> {
    /// Delivers a record. `genuine` says the record is exactly as the sender sealed it.
    fn deliver(&mut self, record: &[u8], genuine: bool) {
        let counter = record_counter(record);
        let result = self.end.handle_record(record, self.now);
        let events: Vec<_> = std::iter::from_fn(|| self.end.poll_event()).collect();
        assert_eq!(self.end.poll_transmit(), None, "a receiver sent something");
        if self.ended {
            assert_eq!(result, Err(ChannelError::Closed));
            assert!(events.is_empty());
            return;
        }
        match result {
            Ok(()) => {
                let c = counter.expect("only transport records are accepted");
                assert_eq!(
                    self.model.verdict(c),
                    Ok(()),
                    "record {c} accepted against the replay model"
                );
                self.model.mark(c);
                match events.as_slice() {
                    [ChannelEvent::Received(m)] => {
                        assert_eq!(
                            m,
                            &message_for(c),
                            "record {c} delivered a message never sent"
                        );
                        assert!(self.delivered.insert(c), "message {c} delivered twice");
                    }
                    [ChannelEvent::Closed { by_peer: true, .. }] => {
                        assert!(self.end.is_ended());
                        self.ended = true;
                    }
                    // A confirmation record: authenticated, carries nothing.
                    [] => assert!(self.end.is_established()),
                    other => panic!("unexpected events {other:?}"),
                }
            }
            Err(e) => {
                assert!(!e.is_fatal(), "a transport record ended the channel: {e}");
                assert!(events.is_empty(), "a refused record reported {events:?}");
                assert!(self.end.is_established());
                if genuine {
                    let c = counter.expect("a genuine record has a counter");
                    match self.model.verdict(c) {
                        Ok(()) => panic!("fresh genuine record {c} within the window refused: {e}"),
                        Err(source) => assert_eq!(
                            e,
                            ChannelError::Replay { counter: c, source },
                            "genuine record {c} refused for the wrong reason"
                        ),
                    }
                }
                if let ChannelError::BadPlaintext { counter, .. } = e {
                    // Authenticated, so marked, but undecodable: only the sender could
                    // have made it, and ours never does.
                    panic!("record {counter} authenticated with a bad plaintext");
                }
            }
        }
    }
}

/// The sending side of the `channel` target.
struct Sender<'a> {
    end: &'a mut ChannelEnd,
    sent: Vec<Vec<u8>>,
    sends: usize,
    now: Instant,
}

impl Sender<'_> {
    fn send(&mut self) {
        if self.sends >= CHANNEL_MAX_SENDS {
            return;
        }
        self.sends += 1;
        let ended = self.end.is_ended();
        let counter = self.end.next_send_counter();
        let message = message_for(counter.unwrap_or(0));
        match self.end.handle_send(&message, self.now) {
            Ok(()) => {
                let c = counter.expect("an established channel has a counter");
                assert!(c <= MAX_DATA_COUNTER);
                let record = self.end.poll_transmit().expect("a sealed record");
                assert_eq!(record_counter(&record), Some(c));
                self.sent.push(record);
            }
            Err(ChannelError::CounterExhausted) => {
                assert!(counter > Some(MAX_DATA_COUNTER));
                assert!(self.end.is_ended());
                let close = self.end.poll_transmit().expect("a close record");
                assert_eq!(record_counter(&close), Some(MAX_DATA_COUNTER + 1));
                self.sent.push(close);
            }
            Err(ChannelError::Closed) => assert!(ended),
            Err(e) => panic!("sending failed: {e}"),
        }
        assert_eq!(self.end.poll_transmit(), None);
    }

    fn close(&mut self) {
        if self.end.is_ended() {
            return;
        }
        self.end.close(self.now);
        let close = self.end.poll_transmit().expect("a close record");
        self.sent.push(close);
        let events: Vec<_> = std::iter::from_fn(|| self.end.poll_event()).collect();
        assert_eq!(
            events,
            [ChannelEvent::Closed {
                reason: CloseReason::Normal,
                by_peer: false
            }]
        );
    }
}

/// An established channel's receiving end fed genuine, duplicated, reordered, altered
/// and fuzzed records, against a reference model of the replay window.
///
/// Layout: a flags byte (bit 0: suite; bit 1: the responder sends and the initiator
/// receives; bits 2-3: a counter to jump both ends to, from `CHANNEL_JUMPS`), then
/// operations, each a byte (modulo 8): 0-1 send one message; 2 send a burst of
/// `8 * next byte` messages; 3-4 deliver sent record `u16` (counted from the newest);
/// 5 deliver it altered by a 3-byte edit (see `alter`); 6 deliver a fuzzed record
/// (a length byte and bytes; with an odd length byte, after a transport header with
/// a fuzzed counter); 7 close the sender.
///
/// Invariants: nothing is delivered that was not sent; no message is delivered twice;
/// every fresh genuine record within the window is accepted and every other genuine
/// record refused as the model says; no transport record ends the channel; and at the
/// end a new genuine record is still accepted.
pub fn channel(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let suite = suite_from_bit(flags);
    let toward_initiator = flags & 2 != 0;
    let jump = CHANNEL_JUMPS[usize::from((flags >> 2) & 3)];
    let now = base_time();

    let (mut initiator, mut responder, _) = established_pair(suite);
    let (sending, receiving) = if toward_initiator {
        (&mut responder, &mut initiator)
    } else {
        (&mut initiator, &mut responder)
    };
    let mut model = ReplayModel::default();
    if jump != 0 {
        sending.jump_send_counter_for_tests(jump);
        receiving.jump_receive_counter_for_tests(jump);
    } else if toward_initiator {
        // The initiator accepted the confirmation, counter 0, during the handshake.
        model.mark(0);
    }
    let mut sender = Sender {
        end: sending,
        sent: Vec::new(),
        sends: 0,
        now,
    };
    let mut receiver = Receiver {
        end: receiving,
        model,
        delivered: BTreeSet::new(),
        ended: false,
        now,
    };

    while !input.is_empty() {
        match input.byte() % 8 {
            0 | 1 => sender.send(),
            2 => {
                for _ in 0..usize::from(input.byte()) * 8 {
                    sender.send();
                }
            }
            op @ (3..=5) => {
                let back = usize::from(input.u16());
                let edit = if op == 5 { input.bytes(3) } else { &[] };
                if sender.sent.is_empty() {
                    continue;
                }
                let k = sender.sent.len() - 1 - back % sender.sent.len();
                let record = sender.sent[k].clone();
                let altered = alter(&record, edit);
                receiver.deliver(&altered, altered == record);
            }
            6 => {
                let len = input.byte();
                let mut record = Vec::new();
                if len % 2 == 1 {
                    record.push(0x04);
                    record.extend_from_slice(&input.u64().to_be_bytes());
                }
                record.extend_from_slice(input.bytes(usize::from(len)));
                let genuine = sender.sent.contains(&record);
                receiver.deliver(&record, genuine);
            }
            _ => sender.close(),
        }
    }

    // The channel still works: the next genuine record is accepted.
    if !sender.end.is_ended() && !receiver.ended {
        let before = sender.sent.len();
        sender.sends = 0;
        sender.send();
        if let Some(record) = sender.sent.get(before).cloned() {
            receiver.deliver(&record, true);
        }
    }
}

/// The handshake records of a secure channel replaced by fuzzed or altered bytes.
///
/// Layout: a flags byte (bit 0: suite; bit 1: the responder accepts only the other
/// suite; bits 2-3: which record is replaced: hello, response, finish or
/// confirmation; bit 4: the record is the genuine one altered by the edits of
/// `alter`, rather than raw bytes), a byte `t` (if not 0, the receiving end first
/// sees time pass `t * 100 ms`), then the record or its edits.
///
/// Invariants: genuine records are accepted and altered ones refused; a refused
/// handshake record ends the channel, its error returned (not also an event), and nothing is sent; a refused
/// confirmation changes nothing and the genuine one still establishes the channel;
/// the handshake deadline holds.
pub fn channel_handshake(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let suite = suite_from_bit(flags);
    let stage = (flags >> 2) & 3;
    let altered_genuine = flags & 16 != 0;
    let wait = Duration::from_millis(100 * u64::from(input.byte()));
    let part = input.rest();
    let now = base_time();
    let later = now + wait;
    let timed_out = wait >= channel_config(suite).handshake_timeout;

    let (alice, bob) = identities();
    let (_, _, genuine) = established_pair(suite);
    let mut config = channel_config(suite);
    if flags & 2 != 0 {
        config.accepted_suites.retain(|&s| s != suite);
    }
    let record_for = |genuine: &[u8]| {
        if altered_genuine {
            alter(genuine, part)
        } else {
            part.to_vec()
        }
    };
    let mut rng = SeededRandom::new(7);
    let mut i = ChannelEnd::initiator(&config, bob.clone(), Arc::new(TrustEveryone), &mut rng, now)
        .expect("the initiator starts");
    assert_eq!(i.poll_transmit().as_ref(), Some(&genuine.hello));
    if stage == 0 {
        let hello = record_for(&genuine.hello);
        match ChannelEnd::responder(
            &config,
            alice,
            Arc::new(TrustEveryone),
            &mut rng,
            &hello,
            now,
        ) {
            Ok(mut r) => {
                // A hello, or a hello with a cookie: the cookie is the listener's to
                // check, and the channel end answers the hello under it.
                assert!(
                    hello.len() == genuine.hello.len() || hello.len() == HELLO_WITH_COOKIE_LEN,
                    "a hello of {} bytes was taken",
                    hello.len()
                );
                let hello = &hello[..genuine.hello.len()];
                assert_eq!(hello[0], genuine.hello[0]);
                assert!(config.accepted_suites.contains(&suite) || hello[1] != genuine.hello[1]);
                let response = r.poll_transmit().expect("a response");
                assert_eq!(response.len(), genuine.response.len());
                assert_eq!(r.poll_transmit(), None);
                if *hello == genuine.hello[..] {
                    assert_eq!(response, genuine.response);
                }
            }
            Err(e) => {
                assert!(
                    hello != genuine.hello || !config.accepted_suites.contains(&suite),
                    "a genuine hello was refused: {e}"
                );
            }
        }
        return;
    }
    if !config.accepted_suites.contains(&suite) {
        return;
    }
    let mut r = ChannelEnd::responder(
        &config,
        alice,
        Arc::new(TrustEveryone),
        &mut rng,
        &genuine.hello,
        now,
    )
    .expect("the responder accepts a genuine hello");
    assert_eq!(r.poll_transmit().as_ref(), Some(&genuine.response));

    // The end that receives the replaced record, and the record.
    let (receiver, record, original) = match stage {
        1 => (&mut i, record_for(&genuine.response), &genuine.response),
        2 => {
            i.handle_record(&genuine.response, now)
                .expect("a genuine response is accepted");
            assert_eq!(i.poll_transmit().as_ref(), Some(&genuine.finish));
            (&mut r, record_for(&genuine.finish), &genuine.finish)
        }
        _ => {
            i.handle_record(&genuine.response, now)
                .expect("a genuine response is accepted");
            r.handle_record(&genuine.finish, now)
                .expect("a genuine finish is accepted");
            assert_eq!(r.poll_transmit().as_ref(), Some(&genuine.confirm));
            let _ = i.poll_transmit();
            (&mut i, record_for(&genuine.confirm), &genuine.confirm)
        }
    };
    let events: Vec<_> = std::iter::from_fn(|| receiver.poll_event()).collect();
    assert!(events.is_empty(), "{events:?}");
    if !wait.is_zero() {
        receiver.handle_timeout(later);
        let events: Vec<_> = std::iter::from_fn(|| receiver.poll_event()).collect();
        // The initiator sends its latest handshake record again while it waits; the
        // responder waits for a duplicate before it sends anything again.
        let resent = match stage {
            1 => Some(&genuine.hello),
            3 => Some(&genuine.finish),
            _ => None,
        };
        while let Some(again) = receiver.poll_transmit() {
            assert_eq!(
                Some(&again),
                resent,
                "only the latest handshake record goes again"
            );
        }
        if timed_out {
            let stage = match stage {
                1 => HandshakeStage::HelloSent,
                2 => HandshakeStage::ResponseSent,
                _ => HandshakeStage::FinishSent,
            };
            assert!(receiver.is_ended());
            assert_eq!(
                events,
                [ChannelEvent::Failed(ChannelError::HandshakeTimeout {
                    after: config.handshake_timeout,
                    stage,
                })]
            );
            assert_eq!(receiver.poll_timeout(), None);
            assert_eq!(
                receiver.handle_record(&record, later),
                Err(ChannelError::Closed)
            );
            return;
        }
        assert!(events.is_empty() && !receiver.is_ended());
        assert!(receiver.poll_timeout() > Some(later));
    }

    let result = receiver.handle_record(&record, later);
    let events: Vec<_> = std::iter::from_fn(|| receiver.poll_event()).collect();
    let transmits: Vec<_> = std::iter::from_fn(|| receiver.poll_transmit()).collect();
    let is_genuine = &record == original;
    match (stage, result) {
        // A cookie reply where the response is due: dropped, or (if it echoes the
        // hello) answered with the hello again; the handshake goes on either way.
        (1, result) if ChannelEnd::is_cookie_reply(&record) => {
            assert!(!receiver.is_ended(), "a cookie reply ended the handshake");
            assert!(events.is_empty());
            match result {
                Ok(()) => assert!(
                    transmits.len() == 1 && transmits[0].len() == HELLO_WITH_COOKIE_LEN,
                    "a cookie reply is answered with the hello and the cookie"
                ),
                Err(e) => {
                    assert!(!e.is_fatal(), "{e}");
                    assert!(transmits.is_empty());
                }
            }
        }
        (1 | 2, Ok(())) => {
            assert!(is_genuine, "an altered handshake record was accepted");
            let next = if stage == 1 {
                &genuine.finish
            } else {
                &genuine.confirm
            };
            assert_eq!(transmits.as_slice(), std::slice::from_ref(next));
            assert!(events.is_empty() == (stage == 1));
        }
        (1 | 2, Err(e)) => {
            assert!(!is_genuine, "a genuine handshake record was refused: {e}");
            assert!(receiver.is_ended());
            assert!(
                events.is_empty(),
                "the error is reported once, returned: {e}"
            );
            assert!(
                transmits.is_empty(),
                "a refused handshake record was answered"
            );
            assert_eq!(receiver.peer(), None);
        }
        (_, Ok(())) => {
            assert!(is_genuine, "an altered confirmation was accepted");
            assert!(receiver.is_established());
        }
        (_, Err(e)) => {
            assert!(!is_genuine, "a genuine confirmation was refused: {e}");
            assert!(!e.is_fatal() && !receiver.is_ended() && !receiver.is_established());
            assert!(events.is_empty() && transmits.is_empty());
            // Nothing changed: the genuine confirmation still establishes the channel.
            receiver
                .handle_record(&genuine.confirm, later)
                .expect("the genuine confirmation after a refused one");
            assert!(receiver.is_established());
        }
    }
}
