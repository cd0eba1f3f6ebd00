//! The responder's side of the channel handshake.

use std::sync::Arc;

use crate::identity::{Identifier, Identity};
use crate::noise::{HandshakeState, StaticKeypair};
use crate::random::RandomSource;
use crate::trust::TrustPolicy;

use super::decryptor::Decryptor;
use super::encryptor::Encryptor;
use super::wire::{
    check_proof, handshake_body, make_proof, suite_from_code, ProofRole, FINISH_LEN, HELLO_LEN,
    KIND_FINISH, KIND_HELLO, KIND_RESPONSE, PROLOGUE, PROOF_LEN, RESPONSE_LEN,
};
use super::{ChannelConfig, ChannelError};

/// A responder that has answered a hello and waits for the initiator's finish.
pub(crate) struct Responder {
    noise: HandshakeState,
    trust: Arc<dyn TrustPolicy>,
}

/// The outcome of a finish record whose Noise message was genuine.
pub(crate) struct Finished {
    pub(crate) encryptor: Encryptor,
    pub(crate) decryptor: Decryptor,
    /// The initiator's verified identifier if it is trusted, or why it was refused.
    pub(crate) verdict: Result<Identifier, ChannelError>,
}

impl Responder {
    /// Answers a hello record; returns the responder and the response record.
    pub(crate) fn start(
        config: &ChannelConfig,
        identity: &Identity,
        trust: Arc<dyn TrustPolicy>,
        rng: &mut dyn RandomSource,
        hello: &[u8],
    ) -> Result<(Self, Vec<u8>), ChannelError> {
        Self::start_signed_by(config, identity, identity, trust, rng, hello)
    }

    /// As [`Responder::start`], with the proof presenting `identity` but signed by
    /// `signer`: the same identity, except in tests of forged proofs.
    pub(crate) fn start_signed_by(
        config: &ChannelConfig,
        identity: &Identity,
        signer: &Identity,
        trust: Arc<dyn TrustPolicy>,
        rng: &mut dyn RandomSource,
        hello: &[u8],
    ) -> Result<(Self, Vec<u8>), ChannelError> {
        let body = handshake_body(hello, KIND_HELLO, HELLO_LEN)?;
        let (&code, noise_message) = body
            .split_first()
            .ok_or(ChannelError::Malformed("empty hello"))?;
        let suite = suite_from_code(code)?;
        if !config.accepted_suites.contains(&suite) {
            return Err(ChannelError::UnsupportedSuite(code));
        }
        let keypair = StaticKeypair::generate(rng)?;
        let mut noise = HandshakeState::responder(suite, PROLOGUE, *keypair.private(), rng)?;
        let mut empty = [0u8; 0];
        let n = noise.read_message(noise_message, &mut empty)?;
        if n != 0 {
            return Err(ChannelError::Malformed("hello carries a payload"));
        }

        let hash_before = noise.handshake_hash();
        let proof = make_proof(
            identity,
            signer,
            ProofRole::Responder,
            &keypair.public(),
            &hash_before,
        );
        let mut response = vec![0u8; RESPONSE_LEN];
        response[0] = KIND_RESPONSE;
        let n = noise.write_message(&proof, &mut response[1..])?;
        response.truncate(1 + n);
        Ok((Self { noise, trust }, response))
    }

    /// Reads the initiator's finish record.
    ///
    /// An `Err` means the record was not a genuine finish of this handshake: nothing
    /// can be sent back. An `Ok` carries the transport halves and the verdict on the
    /// initiator's identity, so that a refusal can be sent authenticated.
    pub(crate) fn handle_finish(mut self, record: &[u8]) -> Result<Finished, ChannelError> {
        let body = handshake_body(record, KIND_FINISH, FINISH_LEN)?;
        let hash_before = self.noise.handshake_hash();
        let mut payload = [0u8; PROOF_LEN];
        let n = self.noise.read_message(body, &mut payload)?;
        let peer_static = self.noise.remote_static();
        let (send, recv) = self.noise.into_transport()?.into_cipher_states();
        let verdict = check_proof(
            payload.get(..n).unwrap_or_default(),
            ProofRole::Initiator,
            peer_static,
            &hash_before,
            &*self.trust,
        );
        Ok(Finished {
            encryptor: Encryptor::new(send),
            decryptor: Decryptor::new(recv),
            verdict,
        })
    }
}
