//! `SymmetricState`: the chaining key, the handshake hash and the handshake's cipher
//! state (Noise spec, section 5.2), with SHA-256 and Noise's HKDF over HMAC-SHA256.

use core::fmt;

use ring::{digest, hmac};
use zeroize::Zeroizing;

use super::{CipherState, CipherSuite, NoiseError, HASH_LEN};

/// The handshake's symmetric state: `ck`, `h` and a cipher state.
pub(crate) struct SymmetricState {
    suite: CipherSuite,
    cipher: CipherState,
    ck: Zeroizing<[u8; HASH_LEN]>,
    h: [u8; HASH_LEN],
}

impl SymmetricState {
    /// `InitializeSymmetric(protocol_name)`: `h` is the name zero-padded to 32 bytes, or
    /// its hash if longer; `ck = h`; no key.
    pub(crate) fn initialize(suite: CipherSuite) -> Self {
        let name = suite.protocol_name().as_bytes();
        let mut h = [0u8; HASH_LEN];
        match h.get_mut(..name.len()) {
            Some(start) => start.copy_from_slice(name),
            None => h = sha256(&[name]),
        }
        Self {
            suite,
            cipher: CipherState::empty(suite),
            ck: Zeroizing::new(h),
            h,
        }
    }

    /// `MixKey(ikm)`: `ck, k = HKDF(ck, ikm, 2)`, and the cipher state takes `k` with nonce 0.
    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cipher = CipherState::new(self.suite, *k);
    }

    /// `MixHash(data)`: `h = HASH(h || data)`.
    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.h = sha256(&[&self.h, data]);
    }

    /// `EncryptAndHash(plaintext)`: encrypts with `h` as associated data, writes the
    /// ciphertext to `out`, mixes it into `h`, and returns its length.
    pub(crate) fn encrypt_and_hash(
        &mut self,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        let len = self.cipher.encrypt_with_ad(&self.h, plaintext, out)?;
        let available = out.len();
        let ciphertext = out.get(..len).ok_or(NoiseError::BufferTooSmall {
            needed: len,
            available,
        })?;
        self.h = sha256(&[&self.h, ciphertext]);
        Ok(len)
    }

    /// `DecryptAndHash(ciphertext)`: decrypts with `h` as associated data into `out`,
    /// then mixes the ciphertext into `h`. On failure `h` is unchanged.
    pub(crate) fn decrypt_and_hash(
        &mut self,
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        let len = self.cipher.decrypt_with_ad(&self.h, ciphertext, out)?;
        self.mix_hash(ciphertext);
        Ok(len)
    }

    /// The length `EncryptAndHash` gives for a plaintext of `len` bytes.
    pub(crate) fn encrypted_len(&self, len: usize) -> usize {
        if self.cipher.has_key() {
            len + super::TAG_LEN
        } else {
            len
        }
    }

    /// `Split()`: the two transport cipher states, initiator-to-responder first.
    pub(crate) fn split(&self) -> (CipherState, CipherState) {
        let (k1, k2) = hkdf2(&self.ck, &[]);
        (
            CipherState::new(self.suite, *k1),
            CipherState::new(self.suite, *k2),
        )
    }

    /// The handshake hash `h`.
    pub(crate) fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.h
    }
}

impl fmt::Debug for SymmetricState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymmetricState")
            .field("suite", &self.suite)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of the concatenation of `parts`.
fn sha256(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; HASH_LEN]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Noise's `HKDF(chaining_key, input_key_material, 2)` (spec section 4.3), built from
/// HMAC-SHA256: `temp = HMAC(ck, ikm)`, `out1 = HMAC(temp, 0x01)`,
/// `out2 = HMAC(temp, out1 || 0x02)`.
fn hkdf2(
    chaining_key: &[u8; HASH_LEN],
    ikm: &[u8],
) -> (Zeroizing<[u8; HASH_LEN]>, Zeroizing<[u8; HASH_LEN]>) {
    let temp = hmac_sha256(chaining_key, &[ikm]);
    let out1 = hmac_sha256(temp.as_ref(), &[&[0x01]]);
    let out2 = hmac_sha256(temp.as_ref(), &[out1.as_ref(), &[0x02]]);
    (out1, out2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_protocol_names_are_zero_padded() {
        let s = SymmetricState::initialize(CipherSuite::Aes256GcmSha256);
        let name = b"Noise_XX_25519_AESGCM_SHA256";
        assert_eq!(&s.h[..name.len()], name);
        assert!(s.h[name.len()..].iter().all(|&b| b == 0));
        assert_eq!(*s.ck, s.h);
        // This name is exactly 32 bytes, so it is used as is.
        let s = SymmetricState::initialize(CipherSuite::ChaCha20Poly1305Sha256);
        assert_eq!(&s.h, b"Noise_XX_25519_ChaChaPoly_SHA256");
    }

    #[test]
    fn hkdf_matches_rfc5869_expand_of_extract() {
        // Noise's HKDF with an empty info is RFC 5869's extract-then-expand; check it
        // against ring's independent HKDF implementation.
        let ck = [3u8; 32];
        let ikm = b"input key material";
        let (a, b) = hkdf2(&ck, ikm);
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &ck).extract(ikm);
        struct Len64;
        impl ring::hkdf::KeyType for Len64 {
            fn len(&self) -> usize {
                64
            }
        }
        let mut both = [0u8; 64];
        prk.expand(&[], Len64).unwrap().fill(&mut both).unwrap();
        assert_eq!(&both[..32], a.as_ref());
        assert_eq!(&both[32..], b.as_ref());
    }

    #[test]
    fn failed_decrypt_leaves_hash_unchanged() {
        let mut s = SymmetricState::initialize(CipherSuite::Aes256GcmSha256);
        s.mix_key(b"key material");
        let before = s.handshake_hash();
        let mut out = [0u8; 64];
        assert_eq!(
            s.decrypt_and_hash(&[0u8; 20], &mut out),
            Err(NoiseError::DecryptFailed)
        );
        assert_eq!(s.handshake_hash(), before);
    }
}
