//! The initiator's side of the channel handshake.

use std::sync::Arc;

use crate::identity::{Identifier, Identity};
use crate::noise::{HandshakeState, StaticKeypair};
use crate::random::RandomSource;
use crate::trust::TrustPolicy;

use super::cookie::{parse_reply, ECHO_LEN, HELLO_WITH_COOKIE_LEN};
use super::decryptor::Decryptor;
use super::encryptor::Encryptor;
use super::wire::{
    check_proof, handshake_body, make_proof, suite_code, ProofRole, FINISH_LEN, KIND_FINISH,
    KIND_HELLO, PROLOGUE, PROOF_LEN, RESPONSE_LEN,
};
use super::{ChannelConfig, ChannelError};

/// An initiator that has sent its hello and waits for the responder's answer.
pub(crate) struct Initiator {
    noise: HandshakeState,
    /// The identity presented in the proof.
    identity: Arc<Identity>,
    /// The identity that signs the proof: the same one, except in tests of forged
    /// proofs.
    signer: Arc<Identity>,
    trust: Arc<dyn TrustPolicy>,
    /// The hello as first sent, to send again with a cookie.
    hello: Vec<u8>,
    /// Cookie replies taken so far.
    cookie_rounds: u8,
}

/// Cookie replies an initiator answers in one handshake; later ones are dropped, so
/// that replies cannot keep it sending hellos.
pub(crate) const MAX_COOKIE_ROUNDS: u8 = 3;

/// What the initiator has once the responder's answer checks out.
pub(crate) struct Finished {
    /// The record that completes the handshake, for the responder.
    pub(crate) finish: Vec<u8>,
    pub(crate) encryptor: Encryptor,
    pub(crate) decryptor: Decryptor,
    /// The responder's verified, trusted identifier.
    pub(crate) peer: Identifier,
}

impl Initiator {
    /// Starts a handshake and returns the hello record to send to the listener.
    pub(crate) fn start(
        config: &ChannelConfig,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        rng: &mut dyn RandomSource,
    ) -> Result<(Self, Vec<u8>), ChannelError> {
        // A fresh Noise static key per channel: the long-term identity is the Ed25519
        // key, bound to this key by the identity proof.
        let keypair = StaticKeypair::generate(rng)?;
        let mut noise = HandshakeState::initiator(config.suite, PROLOGUE, *keypair.private(), rng)?;
        let mut hello = vec![0u8; super::wire::HELLO_LEN];
        hello[0] = KIND_HELLO;
        hello[1] = suite_code(config.suite);
        let n = noise.write_message(&[], &mut hello[2..])?;
        hello.truncate(2 + n);
        let signer = identity.clone();
        Ok((
            Self {
                noise,
                identity,
                signer,
                trust,
                hello: hello.clone(),
                cookie_rounds: 0,
            },
            hello,
        ))
    }

    /// Makes the proof be signed by `signer` while presenting the original identity.
    #[cfg(test)]
    pub(crate) fn forge_proof_with(&mut self, signer: Arc<Identity>) {
        self.signer = signer;
    }

    /// Reads a listener's cookie reply: if it answers this initiator's hello, returns
    /// the hello again with the cookie appended, to send along the same route.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Malformed`] (the handshake goes on) if it is not a cookie reply,
    /// echoes another hello, or is one too many.
    pub(crate) fn handle_cookie(&mut self, record: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let (echo, cookie) =
            parse_reply(record).ok_or(ChannelError::Malformed("malformed cookie reply"))?;
        if self.hello.get(2..2 + ECHO_LEN) != Some(echo) {
            return Err(ChannelError::Malformed("cookie reply for another hello"));
        }
        if self.cookie_rounds >= MAX_COOKIE_ROUNDS {
            return Err(ChannelError::Malformed("too many cookie replies"));
        }
        self.cookie_rounds += 1;
        let mut hello = Vec::with_capacity(HELLO_WITH_COOKIE_LEN);
        hello.extend_from_slice(&self.hello);
        hello.extend_from_slice(cookie);
        Ok(hello)
    }

    /// Reads the responder's answer: checks its identity proof and trust, and returns
    /// the finishing record and the transport halves.
    pub(crate) fn handle_response(mut self, record: &[u8]) -> Result<Finished, ChannelError> {
        let body = handshake_body(record, super::wire::KIND_RESPONSE, RESPONSE_LEN)?;
        // The responder signed the transcript as it stood before its message.
        let hash_before = self.noise.handshake_hash();
        let mut payload = [0u8; PROOF_LEN];
        let n = self.noise.read_message(body, &mut payload)?;
        let peer = check_proof(
            payload.get(..n).unwrap_or_default(),
            ProofRole::Responder,
            self.noise.remote_static(),
            &hash_before,
            &*self.trust,
        )?;

        let hash_before = self.noise.handshake_hash();
        let own_static = self.noise.local_static_public();
        let proof = make_proof(
            &self.identity,
            &self.signer,
            ProofRole::Initiator,
            &own_static,
            &hash_before,
        );
        let mut finish = vec![0u8; FINISH_LEN];
        finish[0] = KIND_FINISH;
        let n = self.noise.write_message(&proof, &mut finish[1..])?;
        finish.truncate(1 + n);

        let (send, recv) = self.noise.into_transport()?.into_cipher_states();
        Ok(Finished {
            finish,
            encryptor: Encryptor::new(send),
            decryptor: Decryptor::new(recv),
            peer,
        })
    }
}
