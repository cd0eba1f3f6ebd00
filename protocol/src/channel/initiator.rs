//! The initiator's side of the channel handshake.

use std::sync::Arc;

use crate::identity::{Identifier, Identity};
use crate::noise::{HandshakeState, StaticKeypair};
use crate::random::RandomSource;
use crate::trust::TrustPolicy;

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
}

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
            },
            hello,
        ))
    }

    /// Makes the proof be signed by `signer` while presenting the original identity.
    #[cfg(test)]
    pub(crate) fn forge_proof_with(&mut self, signer: Arc<Identity>) {
        self.signer = signer;
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
