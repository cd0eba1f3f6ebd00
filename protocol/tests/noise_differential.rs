//! Differential tests: our Noise XX against the independent `snow` implementation
//! (whose default resolver uses RustCrypto, not ring), both suites, both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onward_protocol::noise::{
    x25519_public, CipherSuite, HandshakeState, Role, TransportState, MAX_MESSAGE_LEN, TAG_LEN,
};
use onward_protocol::random::{RandomSource, SeededRandom};

/// Handshakes per suite and per direction.
const HANDSHAKES: usize = 1000;

/// One side of a handshake, from either implementation.
enum Handshake {
    Ours(Box<HandshakeState>),
    Snow(Box<snow::HandshakeState>),
}

enum Transport {
    Ours(TransportState),
    Snow(Box<snow::TransportState>),
}

struct Keys {
    prologue: Vec<u8>,
    s: [u8; 32],
    e: [u8; 32],
}

impl Handshake {
    fn ours(role: Role, suite: CipherSuite, k: &Keys) -> Self {
        Handshake::Ours(Box::new(HandshakeState::with_fixed_ephemeral(
            role,
            suite,
            &k.prologue,
            k.s,
            k.e,
        )))
    }

    fn snow(role: Role, suite: CipherSuite, k: &Keys) -> Self {
        let builder = snow::Builder::new(suite.protocol_name().parse().unwrap())
            .prologue(&k.prologue)
            .local_private_key(&k.s)
            .fixed_ephemeral_key_for_testing_only(&k.e);
        let state = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        };
        Handshake::Snow(Box::new(state.unwrap()))
    }

    fn write(&mut self, payload: &[u8], out: &mut [u8]) -> usize {
        match self {
            Handshake::Ours(h) => h.write_message(payload, out).unwrap(),
            Handshake::Snow(h) => h.write_message(payload, out).unwrap(),
        }
    }

    fn read(&mut self, message: &[u8], out: &mut [u8]) -> usize {
        match self {
            Handshake::Ours(h) => h.read_message(message, out).unwrap(),
            Handshake::Snow(h) => h.read_message(message, out).unwrap(),
        }
    }

    fn hash(&self) -> Vec<u8> {
        match self {
            Handshake::Ours(h) => h.handshake_hash().to_vec(),
            Handshake::Snow(h) => h.get_handshake_hash().to_vec(),
        }
    }

    fn remote_static(&self) -> Vec<u8> {
        match self {
            Handshake::Ours(h) => h.remote_static().unwrap().to_vec(),
            Handshake::Snow(h) => h.get_remote_static().unwrap().to_vec(),
        }
    }

    fn finished(&self) -> bool {
        match self {
            Handshake::Ours(h) => h.is_finished(),
            Handshake::Snow(h) => h.is_handshake_finished(),
        }
    }

    fn into_transport(self) -> Transport {
        match self {
            Handshake::Ours(h) => Transport::Ours(h.into_transport().unwrap()),
            Handshake::Snow(h) => Transport::Snow(Box::new(h.into_transport_mode().unwrap())),
        }
    }
}

impl Transport {
    fn write(&mut self, payload: &[u8], out: &mut [u8]) -> usize {
        match self {
            Transport::Ours(t) => t.write_message(payload, out).unwrap(),
            Transport::Snow(t) => t.write_message(payload, out).unwrap(),
        }
    }

    fn read(&mut self, message: &[u8], out: &mut [u8]) -> usize {
        match self {
            Transport::Ours(t) => t.read_message(message, out).unwrap(),
            Transport::Snow(t) => t.read_message(message, out).unwrap(),
        }
    }

    fn rekey_outgoing(&mut self) {
        match self {
            Transport::Ours(t) => t.rekey_outgoing().unwrap(),
            Transport::Snow(t) => t.rekey_outgoing(),
        }
    }

    fn rekey_incoming(&mut self) {
        match self {
            Transport::Ours(t) => t.rekey_incoming().unwrap(),
            Transport::Snow(t) => t.rekey_incoming(),
        }
    }
}

struct Gen(SeededRandom);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        let mut b = [0u8; 8];
        self.0.fill(&mut b).unwrap();
        (u64::from_le_bytes(b) % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.0.fill(&mut v).unwrap();
        v
    }

    fn key(&mut self) -> [u8; 32] {
        self.bytes(32).try_into().unwrap()
    }

    /// A payload length: usually small, sometimes up to `max`.
    fn payload_len(&mut self, max: usize) -> usize {
        match self.below(20) {
            0 => max,
            1 => self.below(max + 1),
            _ => self.below(200.min(max) + 1),
        }
    }
}

/// Runs one handshake and a transport exchange between `initiator` and `responder`
/// and returns every message on the wire, in order.
fn run(
    g: &mut Gen,
    mut initiator: Handshake,
    mut responder: Handshake,
    init_keys: &Keys,
    resp_keys: &Keys,
) -> Vec<Vec<u8>> {
    let mut wire = Vec::new();
    // snow asks for room for a tag after the first message's payload even though that
    // message has none, so its buffers are a tag longer than the largest message.
    let mut out = vec![0u8; MAX_MESSAGE_LEN + TAG_LEN];
    let mut got = vec![0u8; MAX_MESSAGE_LEN + TAG_LEN];
    // Largest payload each handshake message can carry.
    let limits = [
        MAX_MESSAGE_LEN - 32,
        MAX_MESSAGE_LEN - 32 - 48 - TAG_LEN,
        MAX_MESSAGE_LEN - 48 - TAG_LEN,
    ];
    for (i, limit) in limits.into_iter().enumerate() {
        let payload = {
            let len = g.payload_len(limit);
            g.bytes(len)
        };
        let (writer, reader) = if i % 2 == 0 {
            (&mut initiator, &mut responder)
        } else {
            (&mut responder, &mut initiator)
        };
        let n = writer.write(&payload, &mut out);
        let m = reader.read(&out[..n], &mut got);
        assert_eq!(got[..m], payload[..], "handshake payload {i}");
        wire.push(out[..n].to_vec());
    }
    assert!(initiator.finished() && responder.finished());
    assert_eq!(
        initiator.hash(),
        responder.hash(),
        "handshake hashes differ"
    );
    assert_eq!(initiator.remote_static(), x25519_public(&resp_keys.s));
    assert_eq!(responder.remote_static(), x25519_public(&init_keys.s));
    wire.push(initiator.hash());

    let mut a = initiator.into_transport();
    let mut b = responder.into_transport();
    for round in 0..g.below(8) {
        let from_initiator = g.below(2) == 0;
        let (writer, reader) = if from_initiator {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        if g.below(10) == 0 {
            writer.rekey_outgoing();
            reader.rekey_incoming();
        }
        let payload = {
            let len = g.payload_len(MAX_MESSAGE_LEN - TAG_LEN);
            g.bytes(len)
        };
        let n = writer.write(&payload, &mut out);
        let m = reader.read(&out[..n], &mut got);
        assert_eq!(got[..m], payload[..], "transport message {round}");
        wire.push(out[..n].to_vec());
    }
    wire
}

fn differential(suite: CipherSuite, seed: u64) -> usize {
    let mut runs = 0;
    for i in 0..HANDSHAKES {
        let mut g = Gen(SeededRandom::new(seed ^ i as u64));
        let prologue = {
            let len = g.below(100);
            g.bytes(len)
        };
        let init = Keys {
            prologue: prologue.clone(),
            s: g.key(),
            e: g.key(),
        };
        let resp = Keys {
            prologue,
            s: g.key(),
            e: g.key(),
        };
        let script = g.0.clone();

        // The same script (payloads, message order, rekeys) for each pairing, so the
        // wire bytes must be identical whoever plays which side.
        let ours_init = run(
            &mut Gen(script.clone()),
            Handshake::ours(Role::Initiator, suite, &init),
            Handshake::snow(Role::Responder, suite, &resp),
            &init,
            &resp,
        );
        let snow_init = run(
            &mut Gen(script.clone()),
            Handshake::snow(Role::Initiator, suite, &init),
            Handshake::ours(Role::Responder, suite, &resp),
            &init,
            &resp,
        );
        let snow_only = run(
            &mut Gen(script),
            Handshake::snow(Role::Initiator, suite, &init),
            Handshake::snow(Role::Responder, suite, &resp),
            &init,
            &resp,
        );
        assert_eq!(ours_init, snow_only, "{suite}: run {i}, ours as initiator");
        assert_eq!(snow_init, snow_only, "{suite}: run {i}, ours as responder");
        runs += 2;
    }
    runs
}

#[test]
fn aesgcm_matches_snow_in_both_directions() {
    let runs = differential(CipherSuite::Aes256GcmSha256, 0xA5A5);
    assert_eq!(runs, 2 * HANDSHAKES);
}

#[test]
fn chachapoly_matches_snow_in_both_directions() {
    let runs = differential(CipherSuite::ChaCha20Poly1305Sha256, 0xC4C4);
    assert_eq!(runs, 2 * HANDSHAKES);
}

#[test]
fn random_ephemerals_interoperate_with_snow() {
    // The normal constructors, ephemeral from the random source, against snow's own RNG.
    let mut rng = SeededRandom::new(99);
    for suite in CipherSuite::ALL {
        for _ in 0..50 {
            let mut s = [0u8; 32];
            rng.fill(&mut s).unwrap();
            let snow_key = snow::Builder::new(suite.protocol_name().parse().unwrap())
                .generate_keypair()
                .unwrap();
            let ours = HandshakeState::initiator(suite, b"app", s, &mut rng).unwrap();
            let theirs = snow::Builder::new(suite.protocol_name().parse().unwrap())
                .prologue(b"app")
                .local_private_key(&snow_key.private)
                .build_responder()
                .unwrap();
            let mut g = Gen(SeededRandom::new(1));
            let init = Keys {
                prologue: b"app".to_vec(),
                s,
                e: [0; 32],
            };
            let resp = Keys {
                prologue: b"app".to_vec(),
                s: snow_key.private.clone().try_into().unwrap(),
                e: [0; 32],
            };
            run(
                &mut g,
                Handshake::Ours(Box::new(ours)),
                Handshake::Snow(Box::new(theirs)),
                &init,
                &resp,
            );
        }
    }
}
