//! The secure channel's security claims (docs/PROTOCOL.md §7-§8), each tested so that
//! breaking the claim in the code fails a test:
//!
//! - known-answer vectors (`vectors/channel.json`) for the identity proofs and every
//!   record, rebuilt byte for byte both by onward's channel ends and by an independent
//!   implementation of the specification written in this file;
//! - an identity proof replayed into another handshake fails at the proof check;
//! - a proof's signature is verified before the trust policy is consulted;
//! - forged records claiming newer key generations cannot advance the keys, and the
//!   limit of generations a receiver derives is exact;
//! - low-order X25519 keys are refused wherever a peer's key is read.
//!
//! Many tests play one side of the handshake with [`reference`], a Noise XX handshake
//! written token by token from the specification over `ring` and `x25519-dalek`, so
//! that they can put any key, DH result or payload in an otherwise valid message.
//!
//! Channel ends get their keys from a [`Scripted`] random source. Both
//! `ChannelEnd::initiator` and `ChannelEnd::responder` draw exactly two 32-byte values:
//! first the private key of the fresh Noise static key (`StaticKeypair::generate` in
//! `Initiator::start` / `Responder::start_signed_by`), then the Noise ephemeral private
//! key (`HandshakeState::initiator` / `responder`). The source fails any other draw,
//! and every test checks that both values were used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use onward_protocol::channel::{
    ChannelConfig, ChannelEnd, ChannelError, ChannelEvent, CloseReason, MAX_GENERATIONS_AHEAD,
    REKEY_SHIFT,
};
use onward_protocol::identity::{Identifier, Identity};
use onward_protocol::noise::{CipherSuite, NoiseError};
use onward_protocol::random::{RandomError, RandomSource};
use onward_protocol::trust::{TrustEveryone, TrustPolicy};
use onward_protocol::{route, TransportMessage};
use serde::{Deserialize, Serialize};

/// Counters per key generation.
const GEN: u64 = 1 << REKEY_SHIFT;

/// The Noise protocol, the identity proof and the record layouts of PROTOCOL.md §7-§8,
/// written from the text over `ring` and `x25519-dalek`. It takes nothing from onward but
/// the suites' names.
mod reference {
    use onward_protocol::noise::CipherSuite;
    use ring::signature::KeyPair;
    use ring::{aead, digest, hmac, signature};
    use x25519_dalek::{PublicKey, StaticSecret};

    /// The Noise prologue of every channel handshake.
    pub(crate) const PROLOGUE: &[u8] = b"onward/secure-channel/v1";
    /// The first bytes of every signed identity proof input.
    pub(crate) const PROOF_LABEL: &[u8] = b"onward/secure-channel/v1/identity-proof";
    /// Role byte of the responder's proof.
    pub(crate) const RESPONDER: u8 = 0x52;
    /// Role byte of the initiator's proof.
    pub(crate) const INITIATOR: u8 = 0x49;

    pub(crate) fn suite_code(suite: CipherSuite) -> u8 {
        match suite {
            CipherSuite::Aes256GcmSha256 => 0x01,
            CipherSuite::ChaCha20Poly1305Sha256 => 0x02,
            other => panic!("no code for {other}"),
        }
    }

    fn algorithm(suite: CipherSuite) -> &'static aead::Algorithm {
        match suite {
            CipherSuite::Aes256GcmSha256 => &aead::AES_256_GCM,
            CipherSuite::ChaCha20Poly1305Sha256 => &aead::CHACHA20_POLY1305,
            other => panic!("no AEAD for {other}"),
        }
    }

    /// 4 zero bytes and the 64-bit counter: big-endian for AES-GCM, little-endian for
    /// ChaCha20-Poly1305 (§7, "Nonces").
    fn nonce(suite: CipherSuite, n: u64) -> aead::Nonce {
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&match suite {
            CipherSuite::Aes256GcmSha256 => n.to_be_bytes(),
            _ => n.to_le_bytes(),
        });
        aead::Nonce::assume_unique_for_key(bytes)
    }

    fn aead_key(suite: CipherSuite, key: &[u8; 32]) -> aead::LessSafeKey {
        aead::LessSafeKey::new(aead::UnboundKey::new(algorithm(suite), key).unwrap())
    }

    pub(crate) fn seal(
        suite: CipherSuite,
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        plain: &[u8],
    ) -> Vec<u8> {
        let mut out = plain.to_vec();
        aead_key(suite, key)
            .seal_in_place_append_tag(nonce(suite, n), aead::Aad::from(ad), &mut out)
            .unwrap();
        out
    }

    pub(crate) fn open(
        suite: CipherSuite,
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let mut buf = sealed.to_vec();
        let len = aead_key(suite, key)
            .open_in_place(nonce(suite, n), aead::Aad::from(ad), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }

    /// Noise's `REKEY(k)`: the first 32 bytes of `ENCRYPT(k, 2^64-1, "", 32 zero bytes)`.
    pub(crate) fn rekey(suite: CipherSuite, key: &[u8; 32]) -> [u8; 32] {
        seal(suite, key, u64::MAX, &[], &[0; 32])[..32]
            .try_into()
            .unwrap()
    }

    pub(crate) fn hash(parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for part in parts {
            ctx.update(part);
        }
        ctx.finish().as_ref().try_into().unwrap()
    }

    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
        for part in parts {
            ctx.update(part);
        }
        ctx.sign().as_ref().try_into().unwrap()
    }

    /// Noise's `HKDF(chaining_key, input_key_material, 2)`.
    fn hkdf2(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
        let temp = hmac(ck, &[ikm]);
        let first = hmac(&temp, &[&[1]]);
        let second = hmac(&temp, &[&first, &[2]]);
        (first, second)
    }

    pub(crate) fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
        PublicKey::from(&StaticSecret::from(*private)).to_bytes()
    }

    /// X25519, without refusing anything: all zeros for a low-order public key.
    pub(crate) fn dh(private: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
        StaticSecret::from(*private)
            .diffie_hellman(&PublicKey::from(*public))
            .to_bytes()
    }

    /// The 104 bytes an identity signs (§8, "Identities in the handshake").
    pub(crate) fn proof_input(role: u8, noise_static: &[u8; 32], h: &[u8; 32]) -> Vec<u8> {
        [PROOF_LABEL, &[role], noise_static, h].concat()
    }

    pub(crate) fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
        let pair = signature::Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        pair.public_key().as_ref().try_into().unwrap()
    }

    pub(crate) fn sign(seed: &[u8; 32], message: &[u8]) -> Vec<u8> {
        let pair = signature::Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        pair.sign(message).as_ref().to_vec()
    }

    pub(crate) fn verify(public: &[u8], message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, public)
            .verify(message, sig)
            .is_ok()
    }

    /// An identity proof: the public key of the identity with Ed25519 seed `seed`, and its
    /// signature of `input`.
    pub(crate) fn proof(seed: &[u8; 32], input: &[u8]) -> Vec<u8> {
        [&ed25519_public(seed)[..], &sign(seed, input)].concat()
    }

    /// The proof an honest side sends.
    pub(crate) fn honest_proof(
        seed: &[u8; 32],
        role: u8,
        noise_static: &[u8; 32],
        h: &[u8; 32],
    ) -> Vec<u8> {
        proof(seed, &proof_input(role, noise_static, h))
    }

    /// A transport record: kind, counter, and the plaintext sealed with the counter as
    /// nonce and the 9 header bytes as associated data.
    pub(crate) fn transport_record(
        suite: CipherSuite,
        key: &[u8; 32],
        counter: u64,
        plain: &[u8],
    ) -> Vec<u8> {
        let mut record = vec![0x04];
        record.extend_from_slice(&counter.to_be_bytes());
        let sealed = seal(suite, key, counter, &record, plain);
        record.extend_from_slice(&sealed);
        record
    }

    pub(crate) fn open_record(
        suite: CipherSuite,
        key: &[u8; 32],
        record: &[u8],
    ) -> Option<Vec<u8>> {
        let (header, sealed) = record.split_at(9);
        let counter = u64::from_be_bytes(header[1..].try_into().unwrap());
        open(suite, key, counter, header, sealed)
    }

    /// Noise's `SymmetricState` for one XX handshake, the prologue mixed in.
    #[derive(Clone)]
    pub(crate) struct Transcript {
        suite: CipherSuite,
        ck: [u8; 32],
        h: [u8; 32],
        k: Option<[u8; 32]>,
        n: u64,
    }

    impl Transcript {
        pub(crate) fn new(suite: CipherSuite) -> Self {
            let name = suite.protocol_name().as_bytes();
            let h = if name.len() <= 32 {
                let mut h = [0u8; 32];
                h[..name.len()].copy_from_slice(name);
                h
            } else {
                hash(&[name])
            };
            let mut t = Self {
                suite,
                ck: h,
                h,
                k: None,
                n: 0,
            };
            t.mix_hash(PROLOGUE);
            t
        }

        pub(crate) fn h(&self) -> [u8; 32] {
            self.h
        }

        pub(crate) fn mix_hash(&mut self, data: &[u8]) {
            self.h = hash(&[&self.h, data]);
        }

        pub(crate) fn mix_key(&mut self, dh_output: &[u8; 32]) {
            let (ck, k) = hkdf2(&self.ck, dh_output);
            self.ck = ck;
            self.k = Some(k);
            self.n = 0;
        }

        pub(crate) fn encrypt_and_hash(&mut self, plain: &[u8]) -> Vec<u8> {
            let out = match self.k {
                Some(k) => {
                    let sealed = seal(self.suite, &k, self.n, &self.h, plain);
                    self.n += 1;
                    sealed
                }
                None => plain.to_vec(),
            };
            self.mix_hash(&out);
            out
        }

        pub(crate) fn decrypt_and_hash(&mut self, sealed: &[u8]) -> Option<Vec<u8>> {
            let out = match self.k {
                Some(k) => {
                    let plain = open(self.suite, &k, self.n, &self.h, sealed)?;
                    self.n += 1;
                    plain
                }
                None => sealed.to_vec(),
            };
            self.mix_hash(sealed);
            Some(out)
        }

        /// `Split()`: the initiator-to-responder key, then the responder-to-initiator key.
        pub(crate) fn split(&self) -> ([u8; 32], [u8; 32]) {
            hkdf2(&self.ck, &[])
        }
    }

    /// The responder's side of a handshake, token by token.
    #[derive(Clone)]
    pub(crate) struct Responder {
        pub(crate) t: Transcript,
        /// The initiator's ephemeral public key, from the hello.
        pub(crate) initiator_e: [u8; 32],
    }

    impl Responder {
        /// Reads a hello: `01`, the suite code, and Noise message 1 (`-> e`, empty payload).
        pub(crate) fn read_hello(suite: CipherSuite, hello: &[u8]) -> Self {
            assert_eq!(hello.len(), 34);
            assert_eq!(hello[..2], [0x01, suite_code(suite)]);
            let mut t = Transcript::new(suite);
            let initiator_e: [u8; 32] = hello[2..].try_into().unwrap();
            t.mix_hash(&initiator_e);
            assert_eq!(t.decrypt_and_hash(&[]).unwrap(), b"");
            Self { t, initiator_e }
        }

        /// Writes a response, `02` and `<- e, ee, s, es` with `payload`, putting exactly
        /// the given keys and DH results in it.
        pub(crate) fn response(
            &mut self,
            e_public: &[u8; 32],
            ee: &[u8; 32],
            s_public: &[u8; 32],
            es: &[u8; 32],
            payload: &[u8],
        ) -> Vec<u8> {
            let mut record = vec![0x02];
            record.extend_from_slice(e_public);
            self.t.mix_hash(e_public);
            self.t.mix_key(ee);
            record.extend(self.t.encrypt_and_hash(s_public));
            self.t.mix_key(es);
            record.extend(self.t.encrypt_and_hash(payload));
            record
        }

        /// The response an honest responder with these private keys writes.
        pub(crate) fn respond(
            &mut self,
            e_private: &[u8; 32],
            s_private: &[u8; 32],
            payload: &[u8],
        ) -> Vec<u8> {
            let re = self.initiator_e;
            self.response(
                &x25519_public(e_private),
                &dh(e_private, &re),
                &x25519_public(s_private),
                &dh(s_private, &re),
                payload,
            )
        }

        /// Reads a finish (`03`, `-> s, se` and a payload) after [`respond`](Self::respond):
        /// the initiator's static key and the payload.
        pub(crate) fn read_finish(
            &mut self,
            e_private: &[u8; 32],
            finish: &[u8],
        ) -> Option<([u8; 32], Vec<u8>)> {
            assert_eq!(finish[0], 0x03);
            let (s_sealed, payload) = finish[1..].split_at(48);
            let s: [u8; 32] = self.t.decrypt_and_hash(s_sealed)?.try_into().ok()?;
            self.t.mix_key(&dh(e_private, &s));
            Some((s, self.t.decrypt_and_hash(payload)?))
        }
    }

    /// The initiator's side of a handshake, token by token.
    #[derive(Clone)]
    pub(crate) struct Initiator {
        pub(crate) t: Transcript,
        e_private: [u8; 32],
        /// The responder's ephemeral public key, once read.
        pub(crate) responder_e: [u8; 32],
    }

    impl Initiator {
        /// Writes a hello with this ephemeral key.
        pub(crate) fn hello(suite: CipherSuite, e_private: [u8; 32]) -> (Self, Vec<u8>) {
            let mut t = Transcript::new(suite);
            let e = x25519_public(&e_private);
            let mut record = vec![0x01, suite_code(suite)];
            record.extend_from_slice(&e);
            t.mix_hash(&e);
            record.extend(t.encrypt_and_hash(&[]));
            let me = Self {
                t,
                e_private,
                responder_e: [0; 32],
            };
            (me, record)
        }

        /// Reads a response: the responder's static key and the payload, or `None` if it
        /// does not decrypt.
        pub(crate) fn read_response(&mut self, response: &[u8]) -> Option<([u8; 32], Vec<u8>)> {
            assert_eq!(response[0], 0x02);
            let body = &response[1..];
            self.responder_e = body[..32].try_into().unwrap();
            self.t.mix_hash(&self.responder_e);
            self.t.mix_key(&dh(&self.e_private, &self.responder_e));
            let s: [u8; 32] = self.t.decrypt_and_hash(&body[32..80])?.try_into().ok()?;
            self.t.mix_key(&dh(&self.e_private, &s));
            Some((s, self.t.decrypt_and_hash(&body[80..])?))
        }

        /// Writes a finish, `03` and `-> s, se` with `payload`, putting exactly the given
        /// static key and DH result in it.
        pub(crate) fn finish(
            &mut self,
            s_public: &[u8; 32],
            se: &[u8; 32],
            payload: &[u8],
        ) -> Vec<u8> {
            let mut record = vec![0x03];
            record.extend(self.t.encrypt_and_hash(s_public));
            self.t.mix_key(se);
            record.extend(self.t.encrypt_and_hash(payload));
            record
        }

        /// The finish an honest initiator with this static key writes.
        pub(crate) fn finish_with(&mut self, s_private: &[u8; 32], payload: &[u8]) -> Vec<u8> {
            let re = self.responder_e;
            self.finish(&x25519_public(s_private), &dh(s_private, &re), payload)
        }

        /// Reads back the finish this side wrote with `s_private`: its payload.
        pub(crate) fn reread_finish(
            &mut self,
            s_private: &[u8; 32],
            finish: &[u8],
        ) -> Option<Vec<u8>> {
            let (s_sealed, payload) = finish[1..].split_at(48);
            self.t.decrypt_and_hash(s_sealed)?;
            self.t.mix_key(&dh(s_private, &self.responder_e));
            self.t.decrypt_and_hash(payload)
        }
    }
}

// ---- helpers ------------------------------------------------------------------------

/// A random source that yields the given 32-byte values, in order, one per draw, and
/// fails any other draw (of another size, or one too many): it fixes the keys a channel
/// end makes. (Drawing them in another order changes every record of the vectors.)
struct Scripted(VecDeque<[u8; 32]>);

impl RandomSource for Scripted {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        let next = self.0.pop_front().ok_or(RandomError)?;
        if dest.len() != next.len() {
            return Err(RandomError);
        }
        dest.copy_from_slice(&next);
        Ok(())
    }
}

/// 32 arbitrary bytes named by `label`.
fn key(label: &str) -> [u8; 32] {
    reference::hash(&[b"onward channel tests: ", label.as_bytes()])
}

/// One side of a handshake: its identity's Ed25519 seed and the Noise private keys its
/// random source yields.
#[derive(Clone, Copy)]
struct Side {
    identity: [u8; 32],
    static_key: [u8; 32],
    ephemeral: [u8; 32],
}

impl Side {
    fn named(name: &str) -> Self {
        Self {
            identity: key(&format!("{name}: identity")),
            static_key: key(&format!("{name}: static")),
            ephemeral: key(&format!("{name}: ephemeral")),
        }
    }

    fn identity(&self) -> Arc<Identity> {
        Arc::new(Identity::from_seed(&self.identity).unwrap())
    }

    fn identifier(&self) -> Identifier {
        self.identity().identifier()
    }

    fn static_public(&self) -> [u8; 32] {
        reference::x25519_public(&self.static_key)
    }

    /// The draws `ChannelEnd::initiator` and `ChannelEnd::responder` make, in order: the
    /// Noise static private key, then the ephemeral private key.
    fn random(&self) -> Scripted {
        Scripted(VecDeque::from([self.static_key, self.ephemeral]))
    }
}

fn config(suite: CipherSuite) -> ChannelConfig {
    ChannelConfig {
        suite,
        ..ChannelConfig::default()
    }
}

fn everyone() -> Arc<dyn TrustPolicy> {
    Arc::new(TrustEveryone)
}

/// A trust policy that accepts everyone and records every identifier it is shown.
#[derive(Default)]
struct Recording(Mutex<Vec<Identifier>>);

impl TrustPolicy for Recording {
    fn is_trusted(&self, peer: &Identifier) -> bool {
        self.0.lock().unwrap().push(*peer);
        true
    }
}

impl Recording {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn shown(&self) -> Vec<Identifier> {
        self.0.lock().unwrap().clone()
    }
}

/// An initiator end with `side`'s keys, and its hello.
fn initiator_end(
    suite: CipherSuite,
    side: &Side,
    trust: Arc<dyn TrustPolicy>,
) -> (ChannelEnd, Vec<u8>) {
    let mut rng = side.random();
    let mut end = ChannelEnd::initiator(
        &config(suite),
        side.identity(),
        trust,
        &mut rng,
        Instant::now(),
    )
    .unwrap();
    assert!(rng.0.is_empty(), "the initiator draws exactly two keys");
    let hello = end.poll_transmit().unwrap();
    (end, hello)
}

/// A responder end with `side`'s keys answering `hello`, and its response.
fn responder_end(
    suite: CipherSuite,
    side: &Side,
    trust: Arc<dyn TrustPolicy>,
    hello: &[u8],
) -> Result<(ChannelEnd, Vec<u8>), ChannelError> {
    let mut rng = side.random();
    let mut end = ChannelEnd::responder(
        &config(suite),
        &side.identity(),
        trust,
        &mut rng,
        hello,
        Instant::now(),
    )?;
    assert!(rng.0.is_empty(), "the responder draws exactly two keys");
    let response = end.poll_transmit().unwrap();
    Ok((end, response))
}

fn received(end: &mut ChannelEnd) -> Vec<TransportMessage> {
    std::iter::from_fn(|| end.poll_event())
        .filter_map(|e| match e {
            ChannelEvent::Received(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The inner message the vectors' message records carry.
fn inner_message() -> TransportMessage {
    TransportMessage::new(
        route!["echoer"],
        route!["app"],
        b"hello over onward".to_vec(),
    )
}

/// The records of one run of onward's channel ends.
struct Records {
    hello: Vec<u8>,
    response: Vec<u8>,
    finish: Vec<u8>,
    confirm: Vec<u8>,
    message_counter_0: Vec<u8>,
    message_generation_1: Vec<u8>,
    close: Vec<u8>,
}

/// Runs onward's channel ends with these keys: the handshake; a message from the
/// initiator at counter 0, and (after the counter hooks move both ends to the last
/// counter of generation 0 and one more message) at counter 2^16, the first of
/// generation 1, sealed after one real rekey; then a close from the responder.
fn run_channel_ends(suite: CipherSuite, i: &Side, r: &Side) -> Records {
    let now = Instant::now();
    let (mut ie, hello) = initiator_end(suite, i, everyone());
    let (mut re, response) = responder_end(suite, r, everyone(), &hello).unwrap();
    ie.handle_record(&response, now).unwrap();
    let finish = ie.poll_transmit().unwrap();
    re.handle_record(&finish, now).unwrap();
    let confirm = re.poll_transmit().unwrap();
    ie.handle_record(&confirm, now).unwrap();
    assert_eq!(ie.peer(), Some(&r.identifier()));
    assert_eq!(re.peer(), Some(&i.identifier()));

    ie.handle_send(&inner_message(), now).unwrap();
    let message_counter_0 = ie.poll_transmit().unwrap();
    re.handle_record(&message_counter_0, now).unwrap();
    // The hooks relabel nothing here: counter 2^16 - 1 is still generation 0.
    ie.jump_send_counter_for_tests(GEN - 1);
    re.jump_receive_counter_for_tests(GEN - 1);
    ie.handle_send(&inner_message(), now).unwrap();
    re.handle_record(&ie.poll_transmit().unwrap(), now).unwrap();
    ie.handle_send(&inner_message(), now).unwrap();
    let message_generation_1 = ie.poll_transmit().unwrap();
    re.handle_record(&message_generation_1, now).unwrap();
    assert_eq!(received(&mut re), vec![inner_message(); 3]);

    re.close(now);
    let close = re.poll_transmit().unwrap();
    ie.handle_record(&close, now).unwrap();
    assert!(std::iter::from_fn(|| ie.poll_event()).any(|e| e
        == ChannelEvent::Closed {
            reason: CloseReason::Normal,
            by_peer: true
        }));
    Records {
        hello,
        response,
        finish,
        confirm,
        message_counter_0,
        message_generation_1,
        close,
    }
}

/// Both identity proofs as the records carry them, read with both sides' keys.
fn proofs_in(suite: CipherSuite, i: &Side, response: &[u8], finish: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut reader, _) = reference::Initiator::hello(suite, i.ephemeral);
    let (_, responder_proof) = reader.read_response(response).unwrap();
    let initiator_proof = reader.reread_finish(&i.static_key, finish).unwrap();
    (responder_proof, initiator_proof)
}

// ---- 1. known-answer vectors ----------------------------------------------------------

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/channel.json");

/// Set to write `vectors/channel.json` from a run of the code instead of only checking it.
const WRITE_VECTORS: &str = "ONWARD_WRITE_CHANNEL_VECTORS";

#[derive(Serialize, Deserialize)]
struct VectorFile {
    description: Vec<String>,
    /// What each field of a vector holds.
    fields: Vector,
    vectors: Vec<Vector>,
}

/// One vector. Every value is a string: hex unless its description says otherwise.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Vector {
    protocol_name: String,
    suite_code: String,
    prologue: String,
    initiator_identity_seed: String,
    initiator_identity_public_key: String,
    initiator_identifier: String,
    responder_identity_seed: String,
    responder_identity_public_key: String,
    responder_identifier: String,
    initiator_static_private: String,
    initiator_static_public: String,
    initiator_ephemeral_private: String,
    initiator_ephemeral_public: String,
    responder_static_private: String,
    responder_static_public: String,
    responder_ephemeral_private: String,
    responder_ephemeral_public: String,
    hello: String,
    responder_proof_hash: String,
    responder_proof_input: String,
    responder_proof: String,
    response: String,
    initiator_proof_hash: String,
    initiator_proof_input: String,
    initiator_proof: String,
    finish: String,
    handshake_hash: String,
    inner_message: String,
    confirm: RecordVector,
    message_counter_0: RecordVector,
    message_generation_1: RecordVector,
    close: RecordVector,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct RecordVector {
    sender: String,
    counter: String,
    key: String,
    plaintext: String,
    record: String,
}

fn description() -> Vec<String> {
    [
        "Known-answer vectors for onward secure channels (docs/PROTOCOL.md sections 7 and 8), \
         one per cipher suite.",
        "Inputs: the identities' Ed25519 seeds and both sides' Noise static and ephemeral \
         private keys. ChannelEnd::initiator and ChannelEnd::responder each draw two 32-byte \
         values from their random source: the static private key, then the ephemeral one.",
        "Every other field is derived from the inputs. Values are lowercase hex, except \
         protocol_name, the identifiers (text form, section 5), sender and counter (decimal).",
        "Generated once by onward (ONWARD_WRITE_CHANNEL_VECTORS=1 cargo test -p \
         onward-protocol --test channel_security onward_channel_ends), then frozen; \
         protocol/tests/channel_security.rs rebuilds every value with onward and with an \
         independent implementation of the specification.",
    ]
    .map(String::from)
    .to_vec()
}

fn field_descriptions() -> Vector {
    let s = String::from;
    let record = |plaintext: &str| RecordVector {
        sender: s("who sends it: initiator or responder"),
        counter: s("its counter (decimal)"),
        key: s(
            "the sender's key from Split() (the first for the initiator, the second for \
                the responder) after counter >> 16 Noise rekeys",
        ),
        plaintext: plaintext.to_owned(),
        record: s("04, the counter (8 bytes big-endian), \
                   ENCRYPT(key, nonce = counter, ad = those 9 bytes, plaintext)"),
    };
    let seed =
        |side: &str| format!("input: Ed25519 seed (RFC 8032 secret key) of the {side}'s identity");
    let private = |side: &str, which: &str, draw: &str| {
        format!(
            "input: the {side}'s Noise {which} private key, its random source's {draw} 32 bytes"
        )
    };
    Vector {
        protocol_name: s("the Noise protocol name"),
        suite_code: s("the suite's code byte in the hello"),
        prologue: s("the Noise prologue"),
        initiator_identity_seed: seed("initiator"),
        initiator_identity_public_key: s("its Ed25519 public key"),
        initiator_identifier: s("its identifier (SHA-256 of the public key), text form"),
        responder_identity_seed: seed("responder"),
        responder_identity_public_key: s("its Ed25519 public key"),
        responder_identifier: s("its identifier, text form"),
        initiator_static_private: private("initiator", "static", "first"),
        initiator_static_public: s("its X25519 public key"),
        initiator_ephemeral_private: private("initiator", "ephemeral", "next"),
        initiator_ephemeral_public: s("its X25519 public key"),
        responder_static_private: private("responder", "static", "first"),
        responder_static_public: s("its X25519 public key"),
        responder_ephemeral_private: private("responder", "ephemeral", "next"),
        responder_ephemeral_public: s("its X25519 public key"),
        hello: s("the hello: 01, suite code, Noise message 1 with an empty payload (34 bytes)"),
        responder_proof_hash: s("the handshake hash after message 1, which the responder signs"),
        responder_proof_input: s("what the responder signs (104 bytes): label, 52 ('R'), \
                                  responder_static_public, responder_proof_hash"),
        responder_proof: s(
            "responder_identity_public_key and its Ed25519 signature of \
                            responder_proof_input (96 bytes)",
        ),
        response: s("the response: 02, Noise message 2 carrying responder_proof (193 bytes)"),
        initiator_proof_hash: s("the handshake hash after message 2, which the initiator signs"),
        initiator_proof_input: s("what the initiator signs (104 bytes): label, 49 ('I'), \
                                  initiator_static_public, initiator_proof_hash"),
        initiator_proof: s(
            "initiator_identity_public_key and its Ed25519 signature of \
                            initiator_proof_input (96 bytes)",
        ),
        finish: s("the finish: 03, Noise message 3 carrying initiator_proof (161 bytes)"),
        handshake_hash: s("the handshake hash after message 3"),
        inner_message: s(
            "the inner message both message records carry (section 3 encoding): \
                          onward route [0#echoer], return route [0#app], payload the 17 ASCII \
                          bytes \"hello over onward\"",
        ),
        confirm: record("01: the responder's confirm, its first record"),
        message_counter_0: record("00 and inner_message: the initiator's first message"),
        message_generation_1: record(
            "00 and inner_message: the initiator's message at counter \
                                      65536, the first of key generation 1, after one rekey",
        ),
        close: record("02 00: the responder's close (reason normal), after its confirm"),
    }
}

fn fixed_inputs() -> (Side, Side) {
    (
        Side::named("vector initiator"),
        Side::named("vector responder"),
    )
}

fn hx(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

fn unhex32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

/// Everything derived from the inputs by the reference implementation, with the
/// identity proofs made and checked with `ring` from the specification's layout.
fn reference_vector(suite: CipherSuite, i: &Side, r: &Side) -> Vector {
    use reference::{dh, honest_proof, proof_input, transport_record, x25519_public};
    let (mut ini, hello) = reference::Initiator::hello(suite, i.ephemeral);
    let mut res = reference::Responder::read_hello(suite, &hello);

    let responder_hash = res.t.h();
    let responder_input = proof_input(reference::RESPONDER, &r.static_public(), &responder_hash);
    let responder_proof = honest_proof(
        &r.identity,
        reference::RESPONDER,
        &r.static_public(),
        &responder_hash,
    );
    let response = res.respond(&r.ephemeral, &r.static_key, &responder_proof);
    let (responder_static, payload) = ini.read_response(&response).unwrap();
    assert_eq!(
        (responder_static, &payload),
        (r.static_public(), &responder_proof)
    );

    let initiator_hash = ini.t.h();
    let initiator_input = proof_input(reference::INITIATOR, &i.static_public(), &initiator_hash);
    let initiator_proof = honest_proof(
        &i.identity,
        reference::INITIATOR,
        &i.static_public(),
        &initiator_hash,
    );
    let finish = ini.finish_with(&i.static_key, &initiator_proof);
    let (initiator_static, payload) = res.read_finish(&r.ephemeral, &finish).unwrap();
    assert_eq!(
        (initiator_static, &payload),
        (i.static_public(), &initiator_proof)
    );
    assert_eq!(ini.t.h(), res.t.h());
    let (to_responder, to_initiator) = ini.t.split();
    assert_eq!(res.t.split(), (to_responder, to_initiator));

    let inner = inner_message().to_bytes().unwrap();
    let message = [&[0x00][..], &inner].concat();
    let record = |sender: &str, key: &[u8; 32], counter: u64, plain: &[u8]| RecordVector {
        sender: sender.into(),
        counter: counter.to_string(),
        key: hx(key),
        plaintext: hx(plain),
        record: hx(transport_record(suite, key, counter, plain)),
    };
    let to_responder_1 = reference::rekey(suite, &to_responder);
    // Both sides' DH results agree, as X25519's do.
    assert_eq!(
        dh(&i.ephemeral, &r.static_public()),
        dh(&r.static_key, &x25519_public(&i.ephemeral))
    );
    Vector {
        protocol_name: suite.protocol_name().into(),
        suite_code: hx([reference::suite_code(suite)]),
        prologue: hx(reference::PROLOGUE),
        initiator_identity_seed: hx(i.identity),
        initiator_identity_public_key: hx(reference::ed25519_public(&i.identity)),
        initiator_identifier: i.identifier().to_string(),
        responder_identity_seed: hx(r.identity),
        responder_identity_public_key: hx(reference::ed25519_public(&r.identity)),
        responder_identifier: r.identifier().to_string(),
        initiator_static_private: hx(i.static_key),
        initiator_static_public: hx(x25519_public(&i.static_key)),
        initiator_ephemeral_private: hx(i.ephemeral),
        initiator_ephemeral_public: hx(x25519_public(&i.ephemeral)),
        responder_static_private: hx(r.static_key),
        responder_static_public: hx(x25519_public(&r.static_key)),
        responder_ephemeral_private: hx(r.ephemeral),
        responder_ephemeral_public: hx(x25519_public(&r.ephemeral)),
        hello: hx(&hello),
        responder_proof_hash: hx(responder_hash),
        responder_proof_input: hx(responder_input),
        responder_proof: hx(&responder_proof),
        response: hx(&response),
        initiator_proof_hash: hx(initiator_hash),
        initiator_proof_input: hx(initiator_input),
        initiator_proof: hx(&initiator_proof),
        finish: hx(&finish),
        handshake_hash: hx(ini.t.h()),
        inner_message: hx(&inner),
        confirm: record("responder", &to_initiator, 0, &[0x01]),
        message_counter_0: record("initiator", &to_responder, 0, &message),
        message_generation_1: record("initiator", &to_responder_1, GEN, &message),
        close: record("responder", &to_initiator, 1, &[0x02, 0x00]),
    }
}

/// A vector from a run of onward's channel ends: their records, the proofs they carry,
/// and the values derived on the way.
fn generate(suite: CipherSuite, i: &Side, r: &Side) -> Vector {
    let records = run_channel_ends(suite, i, r);
    let (responder_proof, initiator_proof) =
        proofs_in(suite, i, &records.response, &records.finish);
    let mut v = reference_vector(suite, i, r);
    v.hello = hx(records.hello);
    v.response = hx(records.response);
    v.responder_proof = hx(responder_proof);
    v.finish = hx(records.finish);
    v.initiator_proof = hx(initiator_proof);
    v.confirm.record = hx(records.confirm);
    v.message_counter_0.record = hx(records.message_counter_0);
    v.message_generation_1.record = hx(records.message_generation_1);
    v.close.record = hx(records.close);
    v
}

fn write_vectors() {
    let (i, r) = fixed_inputs();
    let file = VectorFile {
        description: description(),
        fields: field_descriptions(),
        vectors: CipherSuite::ALL
            .iter()
            .map(|&suite| generate(suite, &i, &r))
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
    // Other tests read the file meanwhile: replace it whole.
    let temporary = format!("{VECTORS_PATH}.new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, VECTORS_PATH).unwrap();
}

fn load_vectors() -> VectorFile {
    serde_json::from_str(&std::fs::read_to_string(VECTORS_PATH).unwrap()).unwrap()
}

/// The inputs of a vector.
fn inputs(v: &Vector) -> (CipherSuite, Side, Side) {
    let suite = CipherSuite::from_protocol_name(&v.protocol_name).unwrap();
    let i = Side {
        identity: unhex32(&v.initiator_identity_seed),
        static_key: unhex32(&v.initiator_static_private),
        ephemeral: unhex32(&v.initiator_ephemeral_private),
    };
    let r = Side {
        identity: unhex32(&v.responder_identity_seed),
        static_key: unhex32(&v.responder_static_private),
        ephemeral: unhex32(&v.responder_ephemeral_private),
    };
    (suite, i, r)
}

/// The fields of two vectors that differ, by name.
fn differences(expected: &Vector, actual: &Vector) -> Vec<String> {
    let (serde_json::Value::Object(e), serde_json::Value::Object(a)) = (
        serde_json::to_value(expected).unwrap(),
        serde_json::to_value(actual).unwrap(),
    ) else {
        unreachable!()
    };
    e.iter()
        .filter(|(name, value)| a.get(*name) != Some(value))
        .map(|(name, value)| format!("{name}: expected {value}, got {}", a[name]))
        .collect()
}

#[test]
fn onward_channel_ends_rebuild_every_vector_record_byte_for_byte() {
    if std::env::var_os(WRITE_VECTORS).is_some() {
        write_vectors();
    }
    let file = load_vectors();
    let suites: Vec<_> = file.vectors.iter().map(|v| inputs(v).0).collect();
    assert_eq!(suites, CipherSuite::ALL, "one vector per suite");
    for v in &file.vectors {
        let (suite, i, r) = inputs(v);
        let records = run_channel_ends(suite, &i, &r);
        for (name, expected, actual) in [
            ("hello", &v.hello, &records.hello),
            ("response", &v.response, &records.response),
            ("finish", &v.finish, &records.finish),
            ("confirm", &v.confirm.record, &records.confirm),
            (
                "message_counter_0",
                &v.message_counter_0.record,
                &records.message_counter_0,
            ),
            (
                "message_generation_1",
                &v.message_generation_1.record,
                &records.message_generation_1,
            ),
            ("close", &v.close.record, &records.close),
        ] {
            assert_eq!(&hex::encode(actual), expected, "{suite}: {name}");
        }
        let (responder_proof, initiator_proof) =
            proofs_in(suite, &i, &records.response, &records.finish);
        assert_eq!(
            hex::encode(responder_proof),
            v.responder_proof,
            "{suite}: the responder's proof"
        );
        assert_eq!(
            hex::encode(initiator_proof),
            v.initiator_proof,
            "{suite}: the initiator's proof"
        );
        assert_eq!(
            hex::encode(inner_message().to_bytes().unwrap()),
            v.inner_message
        );
    }
}

#[test]
fn the_reference_implementation_rebuilds_every_vector_field() {
    let file = load_vectors();
    assert_eq!(
        file.fields,
        field_descriptions(),
        "the field descriptions are current"
    );
    assert_eq!(file.description, description());
    let (i, r) = fixed_inputs();
    for v in &file.vectors {
        let (suite, vi, vr) = inputs(v);
        assert_eq!(
            (
                vi.identity,
                vi.static_key,
                vi.ephemeral,
                vr.identity,
                vr.static_key,
                vr.ephemeral
            ),
            (
                i.identity,
                i.static_key,
                i.ephemeral,
                r.identity,
                r.static_key,
                r.ephemeral
            ),
            "the inputs are the fixed ones"
        );
        let differ = differences(v, &reference_vector(suite, &vi, &vr));
        assert!(differ.is_empty(), "{suite}:\n{}", differ.join("\n"));
    }
}

#[test]
fn vector_proofs_verify_over_the_specified_bytes_and_nothing_else() {
    for v in &load_vectors().vectors {
        let (suite, i, r) = inputs(v);
        for (role, side, public_key, noise_static, hash, input, proof) in [
            (
                reference::RESPONDER,
                &r,
                &v.responder_identity_public_key,
                &v.responder_static_public,
                &v.responder_proof_hash,
                &v.responder_proof_input,
                &v.responder_proof,
            ),
            (
                reference::INITIATOR,
                &i,
                &v.initiator_identity_public_key,
                &v.initiator_static_public,
                &v.initiator_proof_hash,
                &v.initiator_proof_input,
                &v.initiator_proof,
            ),
        ] {
            let what = format!("{suite}, role {}", role as char);
            let public_key = hex::decode(public_key).unwrap();
            let noise_static = hex::decode(noise_static).unwrap();
            let hash = hex::decode(hash).unwrap();
            let input = hex::decode(input).unwrap();
            let proof = hex::decode(proof).unwrap();
            // The layout of §8, spelled out here rather than taken from any function.
            let mut spec_input = b"onward/secure-channel/v1/identity-proof".to_vec();
            spec_input.push(role);
            spec_input.extend_from_slice(&noise_static);
            spec_input.extend_from_slice(&hash);
            assert_eq!(spec_input.len(), 104);
            assert_eq!(input, spec_input, "{what}: the proof input");
            assert_eq!(
                public_key,
                reference::ed25519_public(&side.identity),
                "{what}"
            );
            assert_eq!(
                noise_static,
                reference::x25519_public(&side.static_key),
                "{what}"
            );
            assert_eq!(proof.len(), 96, "{what}");
            assert_eq!(
                proof[..32],
                public_key[..],
                "{what}: the proof presents the identity"
            );
            let signature = &proof[32..];
            assert!(
                reference::verify(&public_key, &spec_input, signature),
                "{what}: the signature verifies over the specified bytes"
            );
            // Change any part of the signed bytes and the signature no longer verifies:
            // role, static key, hash, label.
            for position in [39, 40, 72, 0] {
                let mut other = spec_input.clone();
                other[position] ^= 1;
                assert!(
                    !reference::verify(&public_key, &other, signature),
                    "{what}: byte {position}"
                );
            }
            assert!(
                !reference::verify(&public_key, &spec_input[..103], signature),
                "{what}"
            );
        }
        // Each side signs the hash before its own message: after message 1 for the
        // responder, after message 2 for the initiator.
        let (mut ini, hello) = reference::Initiator::hello(suite, i.ephemeral);
        assert_eq!(hex::encode(&hello), v.hello);
        let after_message_1 = ini.t.h();
        ini.read_response(&hex::decode(&v.response).unwrap())
            .unwrap();
        assert_eq!(hex::encode(after_message_1), v.responder_proof_hash);
        assert_eq!(hex::encode(ini.t.h()), v.initiator_proof_hash);
    }
}

// ---- 2 and 3. identity proofs: replays, forgeries and the trust policy -------------------

/// The responder's proof from one handshake, put in another handshake's otherwise
/// genuine message 2, reaches the proof check and is refused there, the policy
/// unconsulted. Two cases: the replayer reuses the first handshake's static key (only
/// the hash differs), or the second handshake has the first one's hash (the initiator
/// reused its ephemeral key) and only the static key differs.
#[test]
fn a_responder_proof_replayed_into_another_handshake_fails_at_the_proof_check() {
    let now = Instant::now();
    for suite in CipherSuite::ALL {
        let (i_a, r_a) = (Side::named("replay i A"), Side::named("replay r A"));
        let first = run_channel_ends(suite, &i_a, &r_a);
        let proof_a = proofs_in(suite, &i_a, &first.response, &first.finish).0;
        let hash_a = reference::Responder::read_hello(suite, &first.hello).t.h();
        let cases = [
            (
                "the same static key, another handshake",
                Side {
                    identity: i_a.identity,
                    ..Side::named("replay i B")
                },
                Side {
                    identity: r_a.identity,
                    static_key: r_a.static_key,
                    ..Side::named("replay r B")
                },
            ),
            (
                "the same handshake hash, another static key",
                Side {
                    identity: i_a.identity,
                    ephemeral: i_a.ephemeral,
                    ..Side::named("replay i C")
                },
                Side {
                    identity: r_a.identity,
                    ..Side::named("replay r C")
                },
            ),
        ];
        for (case, i_b, r_b) in cases {
            let what = format!("{suite}: {case}");
            let (_, hello) = initiator_end(suite, &i_b, everyone());
            let (_, response) = responder_end(suite, &r_b, everyone(), &hello).unwrap();
            let proof_b = {
                let (mut reader, _) = reference::Initiator::hello(suite, i_b.ephemeral);
                reader.read_response(&response).unwrap().1
            };
            let scripted = reference::Responder::read_hello(suite, &hello);
            assert_eq!(
                scripted.t.h() == hash_a,
                case.contains("same handshake hash"),
                "{what}"
            );
            assert_eq!(
                scripted
                    .clone()
                    .respond(&r_b.ephemeral, &r_b.static_key, &proof_b),
                response,
                "{what}: the reference writes onward's response"
            );
            let replayed = scripted
                .clone()
                .respond(&r_b.ephemeral, &r_b.static_key, &proof_a);

            // The genuine response is accepted, and the policy sees the responder once.
            let policy = Recording::new();
            let (mut end, _) = initiator_end(suite, &i_b, policy.clone());
            end.handle_record(&response, now).unwrap();
            assert_eq!(policy.shown(), [r_b.identifier()], "{what}");

            // The first handshake's proof in its place is refused, unshown to the policy.
            let policy = Recording::new();
            let (mut end, _) = initiator_end(suite, &i_b, policy.clone());
            assert_eq!(
                end.handle_record(&replayed, now),
                Err(ChannelError::BadIdentityProof),
                "{what}"
            );
            assert_eq!(
                policy.shown(),
                [],
                "{what}: the policy saw an unverified identity"
            );
            assert!(end.is_ended(), "{what}");
            assert_eq!(end.poll_transmit(), None, "{what}: no finish");
        }
    }
}

/// As above for the initiator's proof in message 3: the responder refuses it at the
/// proof check, unshown to its policy, and tells the initiator (close, reason 1).
#[test]
fn an_initiator_proof_replayed_into_another_handshake_fails_at_the_proof_check() {
    let now = Instant::now();
    for suite in CipherSuite::ALL {
        let (i_a, r_a) = (Side::named("replay2 i A"), Side::named("replay2 r A"));
        let first = run_channel_ends(suite, &i_a, &r_a);
        let proof_a = proofs_in(suite, &i_a, &first.response, &first.finish).1;
        let hash_a = {
            let (mut reader, _) = reference::Initiator::hello(suite, i_a.ephemeral);
            reader.read_response(&first.response).unwrap();
            reader.t.h()
        };
        let cases = [
            (
                "the same static key, another handshake",
                Side {
                    identity: i_a.identity,
                    static_key: i_a.static_key,
                    ..Side::named("replay2 i B")
                },
                Side {
                    identity: r_a.identity,
                    ..Side::named("replay2 r B")
                },
            ),
            (
                "the same handshake hash, another static key",
                Side {
                    identity: i_a.identity,
                    ephemeral: i_a.ephemeral,
                    ..Side::named("replay2 i C")
                },
                r_a,
            ),
        ];
        for (case, i_b, r_b) in cases {
            let what = format!("{suite}: {case}");
            let (mut initiator, hello) = initiator_end(suite, &i_b, everyone());
            let policy = Recording::new();
            let (mut responder, response) =
                responder_end(suite, &r_b, policy.clone(), &hello).unwrap();
            initiator.handle_record(&response, now).unwrap();
            let finish = initiator.poll_transmit().unwrap();
            let proof_b = proofs_in(suite, &i_b, &response, &finish).1;

            let (mut scripted, scripted_hello) = reference::Initiator::hello(suite, i_b.ephemeral);
            assert_eq!(scripted_hello, hello);
            scripted.read_response(&response).unwrap();
            assert_eq!(
                scripted.t.h() == hash_a,
                case.contains("same handshake hash"),
                "{what}"
            );
            let mut replay = scripted.clone();
            assert_eq!(
                scripted.finish_with(&i_b.static_key, &proof_b),
                finish,
                "{what}: the reference writes onward's finish"
            );
            let replayed = replay.finish_with(&i_b.static_key, &proof_a);

            // The genuine finish is accepted, and the policy sees the initiator once.
            responder.handle_record(&finish, now).unwrap();
            assert_eq!(policy.shown(), [i_b.identifier()], "{what}");

            // The first handshake's proof in its place is refused, unshown to the policy.
            let policy = Recording::new();
            let (mut responder, again) =
                responder_end(suite, &r_b, policy.clone(), &hello).unwrap();
            assert_eq!(again, response);
            assert_eq!(
                responder.handle_record(&replayed, now),
                Err(ChannelError::BadIdentityProof),
                "{what}"
            );
            assert_eq!(
                policy.shown(),
                [],
                "{what}: the policy saw an unverified identity"
            );
            assert!(responder.is_ended(), "{what}");
            let refusal = responder.poll_transmit().expect("an authenticated refusal");
            let to_initiator = replay.t.split().1;
            assert_eq!(
                reference::open_record(suite, &to_initiator, &refusal),
                Some(vec![0x02, 0x01]),
                "{what}: a close with reason 1, counter 0"
            );
            assert_eq!(refusal[1..9], [0; 8]);
        }
    }
}

/// Proofs that present the genuine peer's public key but whose signature is not its
/// signature of the specified bytes for this handshake.
fn forged_proofs(
    identity: &[u8; 32],
    role: u8,
    noise_static: &[u8; 32],
    h: &[u8; 32],
) -> Vec<(&'static str, Vec<u8>)> {
    let public = reference::ed25519_public(identity);
    let forger = key("forger");
    let other_role = if role == reference::RESPONDER {
        reference::INITIATOR
    } else {
        reference::RESPONDER
    };
    let with = |signature: Vec<u8>| [&public[..], &signature].concat();
    vec![
        (
            "signed by another identity",
            with(reference::sign(
                &forger,
                &reference::proof_input(role, noise_static, h),
            )),
        ),
        (
            "signed with the other role byte",
            with(reference::sign(
                identity,
                &reference::proof_input(other_role, noise_static, h),
            )),
        ),
        (
            "signed over another static key",
            with(reference::sign(
                identity,
                &reference::proof_input(role, &key("other static"), h),
            )),
        ),
        (
            "signed over another hash",
            with(reference::sign(
                identity,
                &reference::proof_input(role, noise_static, &key("other hash")),
            )),
        ),
        ("an all-zero signature", with(vec![0; 64])),
    ]
}

#[test]
fn a_forged_responder_proof_is_refused_before_the_initiator_consults_its_policy() {
    let now = Instant::now();
    for suite in CipherSuite::ALL {
        let (i, r) = (Side::named("forge i"), Side::named("forge r"));
        let (_, hello) = initiator_end(suite, &i, everyone());
        let scripted = reference::Responder::read_hello(suite, &hello);
        let h = scripted.t.h();

        // The control: a proof made the same way, but genuine, is accepted and shown to
        // the policy once.
        let genuine =
            reference::honest_proof(&r.identity, reference::RESPONDER, &r.static_public(), &h);
        let policy = Recording::new();
        let (mut end, _) = initiator_end(suite, &i, policy.clone());
        let response = scripted
            .clone()
            .respond(&r.ephemeral, &r.static_key, &genuine);
        end.handle_record(&response, now).unwrap();
        assert_eq!(policy.shown(), [r.identifier()]);

        for (case, forged) in
            forged_proofs(&r.identity, reference::RESPONDER, &r.static_public(), &h)
        {
            let what = format!("{suite}: {case}");
            let policy = Recording::new();
            let (mut end, _) = initiator_end(suite, &i, policy.clone());
            let response = scripted
                .clone()
                .respond(&r.ephemeral, &r.static_key, &forged);
            assert_eq!(
                end.handle_record(&response, now),
                Err(ChannelError::BadIdentityProof),
                "{what}"
            );
            assert_eq!(
                policy.shown(),
                [],
                "{what}: the policy saw an unverified identity"
            );
            assert!(end.is_ended(), "{what}");
            assert_eq!(end.poll_transmit(), None, "{what}");
        }
    }
}

#[test]
fn a_forged_initiator_proof_is_refused_before_the_responder_consults_its_policy() {
    let now = Instant::now();
    for suite in CipherSuite::ALL {
        let (i, r) = (Side::named("forge2 i"), Side::named("forge2 r"));
        let (mut scripted, hello) = reference::Initiator::hello(suite, i.ephemeral);
        let (_, response) = responder_end(suite, &r, everyone(), &hello).unwrap();
        scripted.read_response(&response).unwrap();
        let h = scripted.t.h();

        let genuine =
            reference::honest_proof(&i.identity, reference::INITIATOR, &i.static_public(), &h);
        let policy = Recording::new();
        let (mut end, _) = responder_end(suite, &r, policy.clone(), &hello).unwrap();
        let finish = scripted.clone().finish_with(&i.static_key, &genuine);
        end.handle_record(&finish, now).unwrap();
        assert!(end.is_established());
        assert_eq!(policy.shown(), [i.identifier()]);

        for (case, forged) in
            forged_proofs(&i.identity, reference::INITIATOR, &i.static_public(), &h)
        {
            let what = format!("{suite}: {case}");
            let policy = Recording::new();
            let (mut end, _) = responder_end(suite, &r, policy.clone(), &hello).unwrap();
            let mut writer = scripted.clone();
            let finish = writer.finish_with(&i.static_key, &forged);
            assert_eq!(
                end.handle_record(&finish, now),
                Err(ChannelError::BadIdentityProof),
                "{what}"
            );
            assert_eq!(
                policy.shown(),
                [],
                "{what}: the policy saw an unverified identity"
            );
            assert!(end.is_ended(), "{what}");
            let refusal = end.poll_transmit().expect("an authenticated refusal");
            assert_eq!(
                reference::open_record(suite, &writer.t.split().1, &refusal),
                Some(vec![0x02, 0x01]),
                "{what}"
            );
        }
    }
}

// ---- 4. key generations ahead ---------------------------------------------------------

/// An established pair whose initiator-to-responder direction the responder has
/// followed from generation `g - 1` into generation `g` (a real rekey at both ends),
/// with `held` genuine records of each generation kept back, undelivered.
fn pair_in_generation(g: u64, held: usize) -> (ChannelEnd, ChannelEnd, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let now = Instant::now();
    let suite = CipherSuite::default();
    let (i, r) = (Side::named("generations i"), Side::named("generations r"));
    let (mut ie, hello) = initiator_end(suite, &i, everyone());
    let (mut re, response) = responder_end(suite, &r, everyone(), &hello).unwrap();
    ie.handle_record(&response, now).unwrap();
    re.handle_record(&ie.poll_transmit().unwrap(), now).unwrap();
    ie.handle_record(&re.poll_transmit().unwrap(), now).unwrap();
    let start = g * GEN - held as u64 - 1;
    ie.jump_send_counter_for_tests(start);
    re.jump_receive_counter_for_tests(start);
    let mut send = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let counter = ie.next_send_counter().unwrap();
                ie.handle_send(&payload_message(counter), now).unwrap();
                ie.poll_transmit().unwrap()
            })
            .collect()
    };
    let mut older = send(held + 1);
    let mut current = send(held + 1);
    assert_eq!(counter_of(&current[0]), g * GEN);
    // Into generation g, and back for one record of g - 1 with the previous key.
    re.handle_record(&current.remove(0), now).unwrap();
    re.handle_record(&older.remove(0), now).unwrap();
    assert_eq!(received(&mut re).len(), 2);
    (ie, re, older, current)
}

fn payload_message(counter: u64) -> TransportMessage {
    TransportMessage::new(route!["sink"], route![], counter.to_be_bytes().to_vec())
}

fn counter_of(record: &[u8]) -> u64 {
    u64::from_be_bytes(record[1..9].try_into().unwrap())
}

fn with_counter(record: &[u8], counter: u64) -> Vec<u8> {
    let mut forged = record.to_vec();
    forged[1..9].copy_from_slice(&counter.to_be_bytes());
    forged
}

/// Opens `record` at `end` and checks it delivers the message sealed with its counter.
fn opens(end: &mut ChannelEnd, record: &[u8]) -> Result<(), ChannelError> {
    end.handle_record(record, Instant::now())?;
    assert_eq!(received(end), [payload_message(counter_of(record))]);
    Ok(())
}

#[test]
fn forged_records_one_to_four_generations_ahead_cannot_advance_the_keys() {
    let g = 3;
    let (mut ie, mut re, older, current) = pair_in_generation(g, MAX_GENERATIONS_AHEAD as usize);
    let now = Instant::now();
    for (k, (old, cur)) in (1..=MAX_GENERATIONS_AHEAD).zip(older.iter().zip(&current)) {
        // A genuine record relabelled k generations ahead: the receiver derives the keys
        // tentatively (so the error is `Forged`, not `TooFarAhead`) and the record fails
        // to authenticate.
        let counter = (g + k) * GEN + k;
        for template in [old, cur] {
            assert_eq!(
                re.handle_record(&with_counter(template, counter), now),
                Err(ChannelError::Forged { counter }),
                "{k} generations ahead"
            );
        }
        // Nothing moved: a record of the current generation and one of the previous
        // still open, which they would not if the receiver were now at g + 1 or beyond.
        opens(&mut re, cur).unwrap_or_else(|e| panic!("after a forgery {k} ahead: {e}"));
        opens(&mut re, old).unwrap_or_else(|e| panic!("after a forgery {k} ahead: {e}"));
    }
    let counter = (g + MAX_GENERATIONS_AHEAD + 1) * GEN;
    assert_eq!(
        re.handle_record(&with_counter(&current[0], counter), now),
        Err(ChannelError::TooFarAhead { counter })
    );

    // A genuine record of g + 1 opens, once; then the one before it, of g, with the
    // previous key.
    ie.jump_send_counter_for_tests((g + 1) * GEN - 1);
    let last_of_g = {
        ie.handle_send(&payload_message((g + 1) * GEN - 1), now)
            .unwrap();
        ie.poll_transmit().unwrap()
    };
    ie.handle_send(&payload_message((g + 1) * GEN), now)
        .unwrap();
    let first_of_next = ie.poll_transmit().unwrap();
    assert_eq!(counter_of(&first_of_next), (g + 1) * GEN);
    opens(&mut re, &first_of_next).unwrap();
    assert!(matches!(
        re.handle_record(&first_of_next, now),
        Err(ChannelError::Replay { .. })
    ));
    assert_eq!(received(&mut re), []);
    opens(&mut re, &last_of_g).unwrap();
}

#[test]
fn a_genuine_record_four_generations_ahead_opens_and_five_ahead_is_refused() {
    let now = Instant::now();
    let g = 1;
    for ahead in [MAX_GENERATIONS_AHEAD, MAX_GENERATIONS_AHEAD + 1] {
        let (mut ie, mut re, older, current) = pair_in_generation(g, 1);
        // The sender crosses `ahead` generation boundaries for real (rekeying each time)
        // while every record it sends on the way is lost.
        let mut last = Vec::new();
        for step in 1..=ahead {
            ie.jump_send_counter_for_tests((g + step) * GEN - 1);
            for counter in [(g + step) * GEN - 1, (g + step) * GEN] {
                ie.handle_send(&payload_message(counter), now).unwrap();
                last = ie.poll_transmit().unwrap();
            }
        }
        let counter = (g + ahead) * GEN;
        assert_eq!(counter_of(&last), counter);
        if ahead <= MAX_GENERATIONS_AHEAD {
            opens(&mut re, &last).unwrap_or_else(|e| panic!("{ahead} generations ahead: {e}"));
            // It became current: a record sealed by the sender next opens too.
            ie.handle_send(&payload_message(counter + 1), now).unwrap();
            opens(&mut re, &ie.poll_transmit().unwrap()).unwrap();
        } else {
            assert_eq!(
                re.handle_record(&last, now),
                Err(ChannelError::TooFarAhead { counter })
            );
            assert_eq!(received(&mut re), []);
            // And nothing changed.
            opens(&mut re, &current[0]).unwrap();
            opens(&mut re, &older[0]).unwrap();
        }
    }
}

// ---- 5. low-order X25519 keys -----------------------------------------------------------

/// X25519 public keys whose shared secret with any private key is all zeros: the points
/// of order 1, 2, 4 and 8 and the non-canonical encodings of some of them.
const LOW_ORDER: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn low_order_points() -> Vec<[u8; 32]> {
    let points: Vec<[u8; 32]> = LOW_ORDER.iter().map(|p| unhex32(p)).collect();
    for point in &points {
        assert_eq!(
            reference::dh(&key("any"), point),
            [0; 32],
            "{}",
            hex::encode(point)
        );
    }
    points
}

const LOW_ORDER_POINT: ChannelError = ChannelError::Handshake(NoiseError::LowOrderPoint);

/// Checks that `end` refused a low-order key for good: ended, nothing to send, the
/// policy never asked, and the genuine record it was waiting for now refused too.
fn ended_by_low_order_key(end: &mut ChannelEnd, policy: &Recording, genuine: &[u8], what: &str) {
    assert!(end.is_ended(), "{what}");
    assert_eq!(end.poll_transmit(), None, "{what}: nothing is sent back");
    assert_eq!(
        end.poll_event(),
        None,
        "{what}: reported once, as the returned error"
    );
    assert_eq!(policy.shown(), [], "{what}");
    assert_eq!(
        end.handle_record(genuine, Instant::now()),
        Err(ChannelError::Closed),
        "{what}"
    );
}

#[test]
fn a_low_order_ephemeral_key_in_the_hello_is_refused_by_the_responder() {
    for suite in CipherSuite::ALL {
        let r = Side::named("low-order r");
        for point in low_order_points() {
            let mut hello = vec![0x01, reference::suite_code(suite)];
            hello.extend_from_slice(&point);
            let what = format!("{suite}: e = {}", hex::encode(point));
            let policy = Recording::new();
            assert_eq!(
                responder_end(suite, &r, policy.clone(), &hello).map(|_| ()),
                Err(LOW_ORDER_POINT),
                "{what}"
            );
            assert_eq!(policy.shown(), [], "{what}");
        }
        // The control: a genuine ephemeral key in the same hello is answered.
        let (_, hello) = reference::Initiator::hello(suite, key("low-order i e"));
        responder_end(suite, &r, everyone(), &hello).unwrap();
    }
}

/// A response to `hello` from responder `r`, with the given ephemeral and static public
/// keys and the DH results the initiator computes with them, carrying a proof by `r`'s
/// identity over that static key, genuine in every other respect.
fn scripted_response(
    suite: CipherSuite,
    hello: &[u8],
    r: &Side,
    e: Option<[u8; 32]>,
    s: Option<[u8; 32]>,
) -> Vec<u8> {
    let mut scripted = reference::Responder::read_hello(suite, hello);
    let ie = scripted.initiator_e;
    let e_public = e.unwrap_or(reference::x25519_public(&r.ephemeral));
    let s_public = s.unwrap_or(r.static_public());
    // What X25519 gives the initiator: zeros with a low-order key.
    let ee = if e.is_some() {
        [0; 32]
    } else {
        reference::dh(&r.ephemeral, &ie)
    };
    let es = if s.is_some() {
        [0; 32]
    } else {
        reference::dh(&r.static_key, &ie)
    };
    let proof = reference::honest_proof(
        &r.identity,
        reference::RESPONDER,
        &s_public,
        &scripted.t.h(),
    );
    scripted.response(&e_public, &ee, &s_public, &es, &proof)
}

#[test]
fn low_order_keys_in_the_response_are_refused_by_the_initiator() {
    let now = Instant::now();
    for suite in CipherSuite::ALL {
        let (i, r) = (Side::named("low-order i"), Side::named("low-order r"));
        let (_, hello) = initiator_end(suite, &i, everyone());
        let (_, genuine) = responder_end(suite, &r, everyone(), &hello).unwrap();
        // The control: the scripted response with the genuine keys is onward's.
        assert_eq!(scripted_response(suite, &hello, &r, None, None), genuine);
        for point in low_order_points() {
            for (key_name, e, s) in [("e", Some(point), None), ("s", None, Some(point))] {
                let what = format!(
                    "{suite}: the responder's {key_name} = {}",
                    hex::encode(point)
                );
                let policy = Recording::new();
                let (mut end, _) = initiator_end(suite, &i, policy.clone());
                let response = scripted_response(suite, &hello, &r, e, s);
                assert_eq!(
                    end.handle_record(&response, now),
                    Err(LOW_ORDER_POINT),
                    "{what}"
                );
                ended_by_low_order_key(&mut end, &policy, &genuine, &what);
            }
        }
    }
}

#[test]
fn a_low_order_static_key_in_the_finish_is_refused_by_the_responder() {
    let now = Instant::now();
    for suite in CipherSuite::ALL {
        let (i, r) = (Side::named("low-order i"), Side::named("low-order r"));
        let (mut scripted, hello) = reference::Initiator::hello(suite, i.ephemeral);
        let (_, response) = responder_end(suite, &r, everyone(), &hello).unwrap();
        scripted.read_response(&response).unwrap();
        let h = scripted.t.h();
        // The control: the scripted finish with the genuine static key is accepted.
        let genuine = scripted.clone().finish_with(
            &i.static_key,
            &reference::honest_proof(&i.identity, reference::INITIATOR, &i.static_public(), &h),
        );
        let (mut end, _) = responder_end(suite, &r, everyone(), &hello).unwrap();
        end.handle_record(&genuine, now).unwrap();
        assert!(end.is_established());

        for point in low_order_points() {
            let what = format!("{suite}: the initiator's s = {}", hex::encode(point));
            let proof = reference::honest_proof(&i.identity, reference::INITIATOR, &point, &h);
            // The initiator's `se` with a low-order static key: zeros.
            let finish = scripted.clone().finish(&point, &[0; 32], &proof);
            let policy = Recording::new();
            let (mut end, _) = responder_end(suite, &r, policy.clone(), &hello).unwrap();
            assert_eq!(
                end.handle_record(&finish, now),
                Err(LOW_ORDER_POINT),
                "{what}"
            );
            ended_by_low_order_key(&mut end, &policy, &genuine, &what);
        }
    }
}
