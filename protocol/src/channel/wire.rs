//! Byte layouts of the channel records (docs/PROTOCOL.md, "Secure channels").

use crate::identity::{Identifier, Identity, PublicIdentity, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use crate::noise::{CipherSuite, DH_LEN, HASH_LEN, TAG_LEN};
use crate::trust::TrustPolicy;

use super::ChannelError;

/// Record kind: the initiator's first handshake message.
pub(crate) const KIND_HELLO: u8 = 0x01;
/// Record kind: the responder's handshake message (Noise message 2).
pub(crate) const KIND_RESPONSE: u8 = 0x02;
/// Record kind: the initiator's final handshake message (Noise message 3).
pub(crate) const KIND_FINISH: u8 = 0x03;
/// Record kind: an encrypted transport record.
pub(crate) const KIND_TRANSPORT: u8 = 0x04;
/// Record kind: a listener's cookie reply to a hello, under load.
pub(crate) const KIND_COOKIE: u8 = 0x05;

/// Plaintext type: an inner transport message.
pub(crate) const PLAIN_MESSAGE: u8 = 0x00;
/// Plaintext type: the responder accepts the initiator.
pub(crate) const PLAIN_CONFIRM: u8 = 0x01;
/// Plaintext type: the sender closes the channel.
pub(crate) const PLAIN_CLOSE: u8 = 0x02;
/// Plaintext type: a keepalive, or with [`PROBE`] a probe the receiver answers at once
/// with a keepalive.
pub(crate) const PLAIN_KEEPALIVE: u8 = 0x03;
/// The keepalive flag of a probe.
pub(crate) const PROBE: u8 = 0x01;

/// The Noise prologue of every onward channel handshake.
pub(crate) const PROLOGUE: &[u8] = b"onward/secure-channel/v1";

/// Domain separation for identity proofs.
pub(crate) const PROOF_DOMAIN: &[u8] = b"onward/secure-channel/v1/identity-proof";

/// An identity proof: the Ed25519 public key, then the signature.
pub(crate) const PROOF_LEN: usize = PUBLIC_KEY_LEN + SIGNATURE_LEN;

/// Record lengths, fixed by the XX pattern and the proof size.
pub(crate) const HELLO_LEN: usize = 2 + DH_LEN;
pub(crate) const RESPONSE_LEN: usize = 1 + DH_LEN + (DH_LEN + TAG_LEN) + (PROOF_LEN + TAG_LEN);
pub(crate) const FINISH_LEN: usize = 1 + (DH_LEN + TAG_LEN) + (PROOF_LEN + TAG_LEN);

/// Transport record header: kind and 8-byte counter, also the AEAD's associated data.
pub(crate) const TRANSPORT_HEADER_LEN: usize = 9;

/// The wire code of a cipher suite in the hello record.
pub(crate) fn suite_code(suite: CipherSuite) -> u8 {
    match suite {
        CipherSuite::ChaCha20Poly1305Sha256 => 0x02,
        _ => 0x01,
    }
}

/// The cipher suite of a wire code.
pub(crate) fn suite_from_code(code: u8) -> Result<CipherSuite, ChannelError> {
    match code {
        0x01 => Ok(CipherSuite::Aes256GcmSha256),
        0x02 => Ok(CipherSuite::ChaCha20Poly1305Sha256),
        other => Err(ChannelError::UnsupportedSuite(other)),
    }
}

/// Which side signs a proof; part of the signed bytes so that one side's proof can
/// never stand for the other's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProofRole {
    Responder,
    Initiator,
}

/// The bytes an identity signs to bind itself to one handshake.
pub(crate) fn proof_input(
    role: ProofRole,
    noise_static: &[u8; DH_LEN],
    handshake_hash: &[u8; HASH_LEN],
) -> Vec<u8> {
    let mut input = Vec::with_capacity(PROOF_DOMAIN.len() + 1 + DH_LEN + HASH_LEN);
    input.extend_from_slice(PROOF_DOMAIN);
    input.push(match role {
        ProofRole::Responder => b'R',
        ProofRole::Initiator => b'I',
    });
    input.extend_from_slice(noise_static);
    input.extend_from_slice(handshake_hash);
    input
}

/// The proof a side sends: `presented`'s public key and, by `signer` (the same
/// identity except in tests of forged proofs), a signature binding it to this
/// handshake.
pub(crate) fn make_proof(
    presented: &Identity,
    signer: &Identity,
    role: ProofRole,
    noise_static: &[u8; DH_LEN],
    handshake_hash: &[u8; HASH_LEN],
) -> [u8; PROOF_LEN] {
    let signature = signer.sign(&proof_input(role, noise_static, handshake_hash));
    let mut proof = [0u8; PROOF_LEN];
    let (key, sig) = proof.split_at_mut(PUBLIC_KEY_LEN);
    key.copy_from_slice(&presented.public_key());
    sig.copy_from_slice(&signature);
    proof
}

/// Checks the peer's proof against its authenticated Noise static key and the
/// transcript before its message, then asks the trust policy.
pub(crate) fn check_proof(
    payload: &[u8],
    role: ProofRole,
    peer_static: Option<[u8; DH_LEN]>,
    handshake_hash: &[u8; HASH_LEN],
    trust: &dyn TrustPolicy,
) -> Result<Identifier, ChannelError> {
    if payload.len() != PROOF_LEN {
        return Err(ChannelError::Malformed(
            "identity proof has the wrong length",
        ));
    }
    let (key, signature) = payload.split_at(PUBLIC_KEY_LEN);
    let identity = PublicIdentity::from_slice(key).map_err(|_| ChannelError::BadIdentityProof)?;
    let peer_static = peer_static.ok_or(ChannelError::BadIdentityProof)?;
    identity
        .verify(&proof_input(role, &peer_static, handshake_hash), signature)
        .map_err(|_| ChannelError::BadIdentityProof)?;
    let peer = identity.identifier();
    if crate::trust::ask(trust, &peer) {
        Ok(peer)
    } else {
        Err(ChannelError::Untrusted { peer })
    }
}

/// Checks a handshake record's kind and exact length, and returns the Noise message.
pub(crate) fn handshake_body(record: &[u8], kind: u8, len: usize) -> Result<&[u8], ChannelError> {
    match record.split_first() {
        Some((&k, _)) if k != kind => Err(ChannelError::Malformed("unexpected record kind")),
        Some((_, body)) if record.len() == len => Ok(body),
        Some(_) => Err(ChannelError::Malformed(
            "handshake record has the wrong length",
        )),
        None => Err(ChannelError::Malformed("empty record")),
    }
}

/// Splits a transport record into its header (the associated data), counter and
/// ciphertext.
pub(crate) fn parse_transport(record: &[u8]) -> Result<(&[u8], u64, &[u8]), ChannelError> {
    if record.first() != Some(&KIND_TRANSPORT) {
        return Err(ChannelError::Malformed("unexpected record kind"));
    }
    if record.len() < TRANSPORT_HEADER_LEN + TAG_LEN {
        return Err(ChannelError::Malformed("transport record is too short"));
    }
    let (header, ciphertext) = record.split_at(TRANSPORT_HEADER_LEN);
    let counter: [u8; 8] = header
        .get(1..TRANSPORT_HEADER_LEN)
        .and_then(|c| c.try_into().ok())
        .ok_or(ChannelError::Malformed("transport record is too short"))?;
    Ok((header, u64::from_be_bytes(counter), ciphertext))
}

/// The kind byte of a record, if any.
pub(crate) fn kind(record: &[u8]) -> Option<u8> {
    record.first().copied()
}
