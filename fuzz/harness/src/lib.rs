//! onward-fuzz-harness: the fuzz targets of `onward-protocol`, as plain functions.
//!
//! The cargo-fuzz package (`fuzz/`, nightly) calls them from its one-line
//! `fuzz/fuzz_targets/<name>.rs` files; the replay test of this package
//! (`tests/corpus.rs`) runs them over the committed corpus on stable Rust, in the
//! ordinary test suite. Not published; nothing here is a public API of onward.
//!
//! The harness uses `onward-protocol` with its `test-hooks` feature: the `channel`
//! target jumps channel counters to a rekey boundary or the end of the counter space,
//! which random traffic never reaches.
//!
//! Each target takes arbitrary bytes, drives one decoder or state machine with them
//! and checks its invariants, usually against a simple reference model. A target
//! panics only when an invariant is broken: that panic is what the fuzzer reports. Bad
//! input alone must never make a target panic. [`TARGETS`] lists them all; each has a
//! one-line file `fuzz/fuzz_targets/<name>.rs` and a seed corpus
//! `fuzz/corpus/<name>/`, which [`seeds`] regenerates.
//!
//! The inputs are read with a small cursor: when the input runs out, every further
//! read yields zeros, so every byte string is a valid input.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// A fuzz target reports a broken invariant by panicking; that is its whole purpose.
// The library, onward-protocol, keeps the workspace's ban on panics, unwraps and
// expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use onward_protocol::channel::replay::{ReplayError, ReplayWindow, WINDOW};
use onward_protocol::channel::{
    ChannelConfig, ChannelError, ChannelEvent, CloseReason, SecureChannel, MAX_DATA_COUNTER,
};
use onward_protocol::framing::{
    encode_frame, FrameDecoder, FramingError, PREAMBLE, PREAMBLE_MAGIC,
};
use onward_protocol::identity::Identity;
use onward_protocol::message::{TransportMessage, MAX_ENCODED_LEN};
use onward_protocol::noise::{
    CipherSuite, HandshakeState, NoiseError, StaticKeypair, DH_LEN, MAX_MESSAGE_LEN,
};
use onward_protocol::random::SeededRandom;
use onward_protocol::routing::{
    Address, AddressError, Route, TransportType, MAX_ADDRESS_LEN, MAX_ROUTE_LEN,
};
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp};

mod node;

pub use node::node;

/// A fuzz target: bytes in, a panic out only when an invariant is broken.
pub type Target = fn(&[u8]);

/// Every target, by the name of its file in `fuzz/fuzz_targets/` and its corpus
/// directory in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("message", message),
    ("address", address),
    ("frames", frames),
    ("noise_responder", noise_responder),
    ("noise_initiator", noise_initiator),
    ("channel", channel),
    ("channel_handshake", channel_handshake),
    ("replay_window", replay_window),
    ("node", node),
];

// ---- input cursor -------------------------------------------------------------------

/// Reads a fuzz input front to back; past its end every read yields zeros or nothing.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        u64::from_be_bytes(bytes)
    }

    /// Up to `n` bytes.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Applies `edits` to a genuine record: each 3 bytes are a big-endian position (modulo
/// the length) and a byte to XOR there; 1 byte left over truncates the record by that
/// many bytes, 2 bytes left over are appended.
fn alter(genuine: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut altered = genuine.to_vec();
    let mut chunks = edits.chunks_exact(3);
    for edit in &mut chunks {
        if !altered.is_empty() {
            let i = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % altered.len();
            altered[i] ^= edit[2];
        }
    }
    match *chunks.remainder() {
        [cut] => altered.truncate(altered.len().saturating_sub(usize::from(cut))),
        [a, b] => altered.extend_from_slice(&[a, b]),
        _ => {}
    }
    altered
}

// ---- message ------------------------------------------------------------------------

/// `TransportMessage::decode` on arbitrary bytes. A decoded message is within every
/// limit, and re-encodes to exactly the accepted input (only canonical encodings are
/// accepted, so each message has one), within [`MAX_ENCODED_LEN`].
pub fn message(data: &[u8]) {
    let Ok(decoded) = TransportMessage::decode(data) else {
        return;
    };
    decoded
        .check_limits()
        .expect("a decoded message is within every limit");
    let encoded = decoded.to_bytes().expect("a decoded message encodes");
    assert_eq!(
        encoded, data,
        "an accepted input is not the message's encoding"
    );
    assert_eq!(encoded.len(), decoded.encoded_len());
    assert!(
        encoded.len() <= MAX_ENCODED_LEN,
        "encoding of {} bytes exceeds MAX_ENCODED_LEN",
        encoded.len()
    );
    let _ = format!("{decoded:?}");
}

// ---- address ------------------------------------------------------------------------

/// Address text parsing on arbitrary text, then route building from the same bytes.
///
/// An address that parses prints as one line of printable ASCII that parses back to
/// itself. Then the bytes are read as operations (make an address and append or
/// prepend it, step, prepend or append part of the route, encode a message carrying
/// the route), checked against a `VecDeque` of addresses.
pub fn address(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(a) = text.parse::<Address>() {
            check_address_text(&a);
        }
    }
    route_operations(data);
}

fn check_address_text(a: &Address) {
    assert!(a.value().len() <= MAX_ADDRESS_LEN);
    let printed = a.to_string();
    assert!(
        printed.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "{printed:?} is not one line of printable ASCII"
    );
    assert_eq!(
        printed.parse::<Address>().as_ref(),
        Ok(a),
        "{printed:?} does not parse back"
    );
    assert_eq!(format!("{a:?}"), printed);
}

/// Largest route the route operations build, so that doubling stays cheap.
const FUZZ_ROUTE_CAP: usize = 64;

fn route_operations(data: &[u8]) {
    let mut input = Input::new(data);
    let mut route = Route::new();
    let mut model: VecDeque<Address> = VecDeque::new();
    while !input.is_empty() {
        match input.byte() % 7 {
            op @ (0 | 1) => {
                let transport = TransportType(input.byte());
                let len = usize::from(input.u16() % 300);
                let value = input.bytes(len);
                match Address::new(transport, value.to_vec()) {
                    Ok(a) => {
                        assert!(value.len() <= MAX_ADDRESS_LEN);
                        assert_eq!(a.transport(), transport);
                        assert_eq!(a.value(), value);
                        check_address_text(&a);
                        if model.len() < FUZZ_ROUTE_CAP {
                            if op == 0 {
                                route.append(a.clone());
                                model.push_back(a);
                            } else {
                                route.prepend(a.clone());
                                model.push_front(a);
                            }
                        }
                    }
                    Err(AddressError::TooLong { len }) => {
                        assert!(value.len() > MAX_ADDRESS_LEN && len == value.len());
                    }
                    Err(e) => panic!("Address::new failed with {e}"),
                }
            }
            2 => assert_eq!(route.step(), model.pop_front()),
            op @ (3 | 4) => {
                // A part of the route itself, prepended or appended.
                let k = usize::from(input.byte()) % (model.len() + 1);
                if model.len() + k <= FUZZ_ROUTE_CAP {
                    let part: Route = model.iter().take(k).cloned().collect();
                    if op == 3 {
                        route.prepend_route(part);
                        for a in model
                            .iter()
                            .take(k)
                            .cloned()
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                        {
                            model.push_front(a);
                        }
                    } else {
                        route.append_route(part);
                        model.extend(model.iter().take(k).cloned().collect::<Vec<_>>());
                    }
                }
            }
            5 => {
                // A local address from text, as `route!` makes it.
                let len = usize::from(input.byte());
                let name = String::from_utf8_lossy(input.bytes(len)).into_owned();
                let one = route![name.as_str()];
                assert_eq!(one.len(), 1);
                let a = one.next().cloned().expect("a route of one address");
                assert!(a.is_local());
                assert_eq!(a.value_str(), Some(name.as_str()));
                if model.len() < FUZZ_ROUTE_CAP {
                    route.append_route(one);
                    model.push_back(a);
                }
            }
            _ => {
                // A message carrying the route both ways.
                let len = usize::from(input.byte());
                let payload = input.bytes(len).to_vec();
                let back: Route = model.iter().rev().cloned().collect();
                let m = TransportMessage::new(route.clone(), back, payload);
                let too_long = model.len() > MAX_ROUTE_LEN
                    || model.iter().any(|a| a.value().len() > MAX_ADDRESS_LEN);
                match m.to_bytes() {
                    Ok(bytes) => {
                        assert!(!too_long, "a route over the limit was encoded");
                        assert_eq!(TransportMessage::decode(&bytes).as_ref(), Ok(&m));
                    }
                    Err(e) => assert!(too_long, "a route within the limits failed: {e}"),
                }
            }
        }
        assert_eq!(route.len(), model.len());
        assert!(route.iter().eq(model.iter()), "route and model differ");
        assert_eq!(route.next(), model.front());
        assert_eq!(route.last(), model.back());
        assert_eq!(route.is_empty(), model.is_empty());
        assert_eq!(route, model.iter().cloned().collect::<Route>());
    }
    let shown = route.to_string();
    assert!(shown.starts_with('[') && shown.ends_with(']'));
}

// ---- frames -------------------------------------------------------------------------

/// The stream frame decoder fed in chunks chosen by the input, against a reference
/// decoder that sees the whole stream at once.
///
/// Layout: a flags byte (bit 0: start after the preamble; bit 1: put a genuine
/// preamble in front of the stream), a big-endian `u16` maximum frame length, a count
/// `n` (up to 15) and `n` chunk sizes (used in a cycle; 0 is an empty call), then the
/// stream. The decoder must yield exactly the reference's frames, fail with the same
/// error at the same point (and repeat it), and hold no more than the partial frame.
pub fn frames(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let after_preamble = flags & 1 != 0;
    let max = u32::from(input.u16());
    let n = usize::from(input.byte() % 16);
    let sizes: Vec<usize> = input.bytes(n).iter().map(|&b| usize::from(b)).collect();
    let mut stream = Vec::new();
    if flags & 2 != 0 {
        stream.extend_from_slice(&PREAMBLE);
    }
    stream.extend_from_slice(input.rest());

    let expected = reference_frames(&stream, !after_preamble, max);

    let mut decoder = if after_preamble {
        FrameDecoder::after_preamble(max)
    } else {
        FrameDecoder::new(max)
    };
    assert_eq!(decoder.max_frame_len(), max);
    let mut got = Vec::new();
    let mut error: Option<FramingError> = None;
    let mut fed = 0;
    let mut rest = &stream[..];
    let mut calls = 0usize;
    // Chunk sizes cycle; with no size, or only zeros, the rest goes in one call.
    let usable = sizes.iter().any(|&s| s > 0);
    loop {
        let size = if usable {
            sizes[calls % sizes.len()]
        } else {
            rest.len()
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let result = decoder.handle_bytes(chunk);
        fed += chunk.len();
        rest = tail;
        calls += 1;
        got.extend(std::iter::from_fn(|| decoder.poll_frame()));
        match (&error, result) {
            (None, Ok(())) => {}
            (None, Err(e)) => error = Some(e),
            (Some(first), later) => assert_eq!(
                later.as_ref(),
                Err(first),
                "a failed decoder must repeat its error"
            ),
        }
        assert!(decoder.buffered_len() <= fed);
        if rest.is_empty() && (calls >= sizes.len() || !usable) {
            break;
        }
    }

    assert_eq!(
        got, expected.frames,
        "chunked decoding yielded other frames than the reference"
    );
    assert_eq!(
        error, expected.error,
        "chunked decoding ended otherwise than the reference"
    );
    match &error {
        Some(_) => assert!(!decoder.preamble_received()),
        None => {
            assert_eq!(decoder.preamble_received(), expected.preamble_done);
            assert_eq!(decoder.buffered_len(), expected.partial);
        }
    }
    // Frames encode back to the bytes they came from.
    let mut encoded = Vec::new();
    if !after_preamble && expected.preamble_done {
        encoded.extend_from_slice(&PREAMBLE);
    }
    for frame in &got {
        encode_frame(frame, max, &mut encoded).expect("a decoded frame is within the limit");
    }
    assert!(stream.starts_with(&encoded));
}

/// What the reference decoder finds in a whole stream.
struct ReferenceFrames {
    frames: Vec<Vec<u8>>,
    error: Option<FramingError>,
    preamble_done: bool,
    /// Body bytes of the incomplete last frame.
    partial: usize,
}

/// Decodes a whole stream by the rules of docs/PROTOCOL.md section 4.
fn reference_frames(stream: &[u8], expect_preamble: bool, max: u32) -> ReferenceFrames {
    let mut out = ReferenceFrames {
        frames: Vec::new(),
        error: None,
        preamble_done: false,
        partial: 0,
    };
    let mut rest = stream;
    if expect_preamble {
        // The magic is checked byte by byte.
        for (offset, &expected) in PREAMBLE_MAGIC.iter().enumerate() {
            match stream.get(offset) {
                None => return out,
                Some(&byte) if byte != expected => {
                    out.error = Some(FramingError::NotOnward {
                        offset,
                        byte,
                        expected,
                    });
                    return out;
                }
                Some(_) => {}
            }
        }
        // The version is checked as a whole, once both bytes are in.
        let m = PREAMBLE_MAGIC.len();
        let (Some(&hi), Some(&lo)) = (stream.get(m), stream.get(m + 1)) else {
            return out;
        };
        let version = u16::from_be_bytes([hi, lo]);
        if [hi, lo] != PREAMBLE[m..] {
            out.error = Some(FramingError::UnsupportedVersion(version));
            return out;
        }
        rest = &stream[PREAMBLE.len()..];
    }
    out.preamble_done = true;
    while let Some(header) = rest.get(..4) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if len > max {
            out.error = Some(FramingError::FrameTooLarge {
                len: len.into(),
                max,
            });
            return out;
        }
        let body = &rest[4..];
        let len = len as usize;
        if body.len() < len {
            out.partial = body.len();
            return out;
        }
        out.frames.push(body[..len].to_vec());
        rest = &body[len..];
    }
    out
}

// ---- Noise --------------------------------------------------------------------------

/// The prologue of the Noise targets' handshakes.
const NOISE_PROLOGUE: &[u8] = b"onward fuzzing";
const INITIATOR_STATIC_SEED: u64 = 1;
const RESPONDER_STATIC_SEED: u64 = 2;
const RESPONDER_PAYLOAD: &[u8] = b"message 2";
const FINISH_PAYLOAD: &[u8] = b"message 3";

fn suite_from_bit(flags: u8) -> CipherSuite {
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

// ---- secure channel -------------------------------------------------------------------

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
fn established_pair(suite: CipherSuite) -> (SecureChannel, SecureChannel, HandshakeRecords) {
    let now = base_time();
    let (alice, bob) = identities();
    let config = channel_config(suite);
    let mut rng = SeededRandom::new(7);
    let mut i =
        SecureChannel::initiator(&config, bob.clone(), Arc::new(TrustEveryone), &mut rng, now)
            .expect("the initiator starts");
    let hello = i.poll_transmit().expect("the hello");
    let mut r = SecureChannel::responder(
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

/// The reference model of a replay window: every counter ever accepted, and the newest.
#[derive(Default)]
struct ReplayModel {
    seen: BTreeSet<u64>,
    newest: Option<u64>,
}

impl ReplayModel {
    /// The acceptance rule of `channel/replay.rs`, stated plainly.
    fn verdict(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if counter > newest {
            Ok(())
        } else if newest - counter >= WINDOW {
            Err(ReplayError::TooOld { counter, newest })
        } else if self.seen.contains(&counter) {
            Err(ReplayError::Replayed { counter })
        } else {
            Ok(())
        }
    }

    fn mark(&mut self, counter: u64) {
        self.seen.insert(counter);
        self.newest = Some(self.newest.map_or(counter, |n| n.max(counter)));
    }
}

/// Counters the `channel` target may jump both ends to before sending: the start, just
/// before a rekey boundary, just before a later one, and just before the end of the
/// counter space.
const CHANNEL_JUMPS: [u64; 4] = [0, (1 << 16) - 48, (5 << 16) - 48, MAX_DATA_COUNTER - 48];

/// Most records one `channel` input may make the sender seal.
const CHANNEL_MAX_SENDS: usize = 5000;

/// The receiving side of the `channel` target with its reference model.
struct Receiver<'a> {
    end: &'a mut SecureChannel,
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
    end: &'a mut SecureChannel,
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
/// handshake record ends the channel with a `Failed` event and nothing is sent; a refused
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
    let mut i =
        SecureChannel::initiator(&config, bob.clone(), Arc::new(TrustEveryone), &mut rng, now)
            .expect("the initiator starts");
    assert_eq!(i.poll_transmit().as_ref(), Some(&genuine.hello));
    if stage == 0 {
        let hello = record_for(&genuine.hello);
        match SecureChannel::responder(
            &config,
            alice,
            Arc::new(TrustEveryone),
            &mut rng,
            &hello,
            now,
        ) {
            Ok(mut r) => {
                assert_eq!(hello.len(), genuine.hello.len());
                assert_eq!(hello[0], genuine.hello[0]);
                assert!(config.accepted_suites.contains(&suite) || hello[1] != genuine.hello[1]);
                let response = r.poll_transmit().expect("a response");
                assert_eq!(response.len(), genuine.response.len());
                assert_eq!(r.poll_transmit(), None);
                if hello == genuine.hello {
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
    let mut r = SecureChannel::responder(
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
        if timed_out {
            assert!(receiver.is_ended());
            assert_eq!(
                events,
                [ChannelEvent::Failed(ChannelError::HandshakeTimeout(
                    config.handshake_timeout
                ))]
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
            assert_eq!(events, [ChannelEvent::Failed(e)]);
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

// ---- replay window ------------------------------------------------------------------

/// The replay window against a `BTreeSet` of accepted counters.
///
/// The input is operations, each a byte: bit 0 says mark (else check); bit 1 says the
/// counter is the newest minus a big-endian `u16` (saturating at 0; the `u16` itself
/// before anything is marked), else a big-endian `u64`. Every check and mark must
/// agree with the model, a check must change nothing, and a refused mark too.
pub fn replay_window(data: &[u8]) {
    let mut input = Input::new(data);
    let mut window = ReplayWindow::new();
    let mut model = ReplayModel::default();
    while !input.is_empty() {
        let op = input.byte();
        let counter = if op & 2 != 0 {
            let back = u64::from(input.u16());
            match model.newest {
                Some(newest) => newest.saturating_sub(back),
                None => back,
            }
        } else {
            input.u64()
        };
        let before = window.clone();
        let expected = model.verdict(counter);
        if op & 1 == 0 {
            assert_eq!(window.check(counter), expected, "check({counter})");
            assert!(window == before, "check({counter}) changed the window");
        } else {
            assert_eq!(window.mark(counter), expected, "mark({counter})");
            if expected.is_ok() {
                model.mark(counter);
                assert_eq!(
                    window.check(counter),
                    Err(ReplayError::Replayed { counter })
                );
            } else {
                assert!(
                    window == before,
                    "a refused mark({counter}) changed the window"
                );
            }
        }
        assert_eq!(window.newest(), model.newest);
    }
}

// ---- seeds --------------------------------------------------------------------------

/// Seed inputs for `target`, made from genuine encodings, with file names; empty for
/// an unknown target. `examples/write-seed-corpus.rs` of this package writes them
/// to `fuzz/corpus/<target>/`.
pub fn seeds(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    match target {
        "message" => message_seeds(),
        "address" => address_seeds(),
        "frames" => frame_seeds(),
        "noise_responder" => vec![
            ("genuine", vec![0x06, 0, 0]),
            ("genuine-chacha", vec![0x07, 0, 0]),
            (
                "genuine-with-payload",
                [&[0x06, 0, 5][..], b"hello"].concat(),
            ),
            ("altered-third", vec![0x06, 0, 0, 0, 40, 0x80]),
            ("raw-first", [&[0x00, 0, 32][..], &[9; 32]].concat()),
        ],
        "noise_initiator" => vec![
            ("genuine", vec![0x02, 0, 0]),
            ("genuine-chacha", vec![0x03, 0, 0]),
            ("altered-second", vec![0x02, 0, 0, 0, 33, 0x01]),
            ("truncated-second", vec![0x02, 0, 0, 16]),
            ("raw-second", [&[0x00, 0, 0][..], &[7; 96]].concat()),
        ],
        "channel" => vec![
            ("send-deliver", vec![0x00, 0, 3, 0, 0, 0, 3, 0, 0]),
            (
                "reordered",
                vec![0x02, 0, 0, 0, 3, 0, 1, 3, 0, 0, 3, 0, 2, 4, 0, 0],
            ),
            ("burst-too-old", vec![0x00, 2, 0xff, 3, 0, 0, 3, 0x07, 0xf7]),
            (
                "rekey-boundary",
                vec![0x04, 2, 8, 3, 0, 0, 3, 0, 60, 3, 0, 0],
            ),
            ("exhaustion", vec![0x0c, 2, 7, 3, 0, 0, 0, 3, 0, 0]),
            ("altered", vec![0x00, 0, 5, 0, 0, 0, 12, 0x40, 3, 0, 0]),
            (
                "forged-counter",
                [&[0x00, 0, 6, 41][..], &u64::MAX.to_be_bytes(), &[0; 40]].concat(),
            ),
            ("close", vec![0x01, 0, 7, 3, 0, 0, 3, 0, 1, 0]),
            ("exhaustion-toward-initiator", vec![0x0e, 2, 7, 3, 0, 0]),
        ],
        "channel_handshake" => vec![
            ("hello-genuine", vec![0x10, 0]),
            ("hello-genuine-chacha", vec![0x11, 0]),
            ("hello-suite-refused", vec![0x12, 0]),
            ("hello-raw", [&[0x00, 0, 0x01, 0x01][..], &[5; 32]].concat()),
            ("response-genuine", vec![0x14, 0]),
            ("response-genuine-chacha", vec![0x15, 0]),
            ("response-bit-flip", vec![0x14, 0, 0, 50, 0x02]),
            ("finish-genuine", vec![0x18, 0]),
            ("finish-truncated", vec![0x18, 0, 1]),
            ("confirm-genuine", vec![0x1c, 0]),
            ("confirm-altered", vec![0x1c, 0, 0, 12, 0x01]),
            ("timeout", vec![0x14, 100]),
            ("before-timeout", vec![0x1c, 99]),
        ],
        "node" => vec![
            (
                "echo-over-tcp",
                vec![0, 0, 3, b'h', b'i', b'!', 1, 1, 2, 7, 4, 7, 10],
            ),
            (
                "channel",
                vec![
                    7, 1, 1, 2, 7, 4, 7, 2, 7, 4, 7, 0, 4, 2, b'o', b'k', 2, 7, 4, 7, 10, 8, 0, 2,
                    7,
                ],
            ),
            (
                "garbage",
                [&[6u8, 20][..], &[9; 20], &[1, 6, 5], b"onwx!", &[0, 0]].concat(),
            ),
            ("timeouts", vec![7, 11, 0xff, 0xff, 1, 0, 11, 0xff, 0xff]),
            (
                "refused-and-reset",
                vec![0, 1, 0, 1, 0, 7, 1, 1, 9, 0, 2, 7],
            ),
        ],
        "replay_window" => {
            let abs = |op: u8, c: u64| [&[op][..], &c.to_be_bytes()].concat();
            let rel = |op: u8, back: u16| [&[op | 2][..], &back.to_be_bytes()].concat();
            vec![
                ("in-order", (0..40).flat_map(|c| abs(1, c)).collect()),
                (
                    "relative",
                    [
                        abs(1, 5000),
                        rel(1, 5),
                        rel(1, 5),
                        rel(0, 1983),
                        rel(0, 1984),
                        rel(1, 1984),
                        abs(1, 1 << 40),
                        rel(1, 2048),
                    ]
                    .concat(),
                ),
                (
                    "huge",
                    [
                        abs(1, u64::MAX),
                        abs(0, 0),
                        rel(1, 0),
                        abs(1, u64::MAX - 1984),
                    ]
                    .concat(),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

fn message_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let encode = |m: TransportMessage| m.to_bytes().expect("a seed message encodes");
    let full_address =
        Address::new(TransportType(255), vec![b'x'; MAX_ADDRESS_LEN]).expect("within the limit");
    vec![
        ("empty", encode(TransportMessage::default())),
        (
            "documented",
            encode(TransportMessage::new(
                route!["ab"],
                route![tcp("x")],
                b"hi".to_vec(),
            )),
        ),
        (
            "three-hops",
            encode(TransportMessage::new(
                route!["h1", tcp("127.0.0.1:4000"), "echoer"],
                route!["app"],
                b"hello".to_vec(),
            )),
        ),
        (
            "long-address",
            encode(TransportMessage::new(
                route![full_address.clone(), "a"],
                route![full_address],
                vec![0; 300],
            )),
        ),
        (
            "full-route",
            encode(TransportMessage::new(
                (0..MAX_ROUTE_LEN)
                    .map(|i| Address::local(i.to_string()))
                    .collect(),
                route![],
                Vec::new(),
            )),
        ),
        // [1, [[0, h'']], [], h''] with indefinite-length arrays: refused.
        (
            "indefinite",
            vec![0x9f, 0x01, 0x9f, 0x82, 0x00, 0x40, 0xff, 0x80, 0x40, 0xff],
        ),
        ("unknown-version", vec![0x82, 0x07, 0xf6]),
        (
            "transport-type-too-big",
            vec![0x84, 0x01, 0x81, 0x82, 0x19, 0x01, 0x00, 0x40, 0x80, 0x40],
        ),
    ]
}

fn address_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("local", b"0#echoer".to_vec()),
        ("tcp", b"1#127.0.0.1:4000".to_vec()),
        ("escapes", b"7#%00%25a%ff%0a".to_vec()),
        ("custom", b"200#x#y".to_vec()),
        // append 0#ab, prepend 1#x, step, append a copy, encode.
        (
            "route-ops",
            vec![
                0, 0, 0, 2, b'a', b'b', 1, 1, 0, 1, b'x', 2, 4, 1, 5, 3, b'h', b'o', b'p', 6, 2,
                b'h', b'i',
            ],
        ),
    ]
}

fn frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut stream = PREAMBLE.to_vec();
    for frame in [&b"one"[..], b"", b"three"] {
        encode_frame(frame, 1000, &mut stream).expect("within the limit");
    }
    let whole = [&[0x00, 0x03, 0xe8, 0][..], &stream].concat();
    let chunked = [&[0x00, 0x03, 0xe8, 3, 1, 0, 5][..], &stream].concat();
    let after = [&[0x01, 0x03, 0xe8, 1, 2][..], &stream[PREAMBLE.len()..]].concat();
    let too_large = [&[0x03, 0x00, 0x04, 1, 3][..], &[0, 0, 0, 5, 1, 2, 3, 4, 5]].concat();
    let mut other_version = b"onward\x00\x02".to_vec();
    other_version.extend_from_slice(&[0, 0, 0, 0]);
    vec![
        ("whole", whole),
        ("chunked", chunked),
        ("after-preamble", after),
        ("too-large", too_large),
        (
            "other-version",
            [&[0x00, 0x00, 0x10, 1, 7][..], &other_version].concat(),
        ),
        (
            "not-onward",
            [&[0x00, 0x00, 0x10, 0][..], b"GET / HTTP/1.1\r\n"].concat(),
        ),
    ]
}
