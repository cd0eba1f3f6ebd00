//! `CipherState`: a key, a nonce and the AEAD that uses them (Noise spec, section 5.1).

use core::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

use super::{CipherSuite, NoiseError, KEY_LEN, MAX_MESSAGE_LEN, TAG_LEN};

/// The nonce reserved for rekeying; it never protects a message.
const RESERVED_NONCE: u64 = u64::MAX;

/// An AEAD key and a message counter, as Noise's `CipherState`.
///
/// Two ways to use it:
///
/// - stateful, as the Noise specification defines it: [`encrypt_with_ad`] and
///   [`decrypt_with_ad`] use the internal nonce and advance it on success;
/// - explicit nonces, for channels whose messages can be lost or reordered:
///   [`encrypt_at`] and [`decrypt_at`] take the nonce from the caller and leave the
///   internal nonce alone. The caller must then never reuse a nonce with one key.
///
/// Nonce 2^64-1 is never used for a message. A failed decryption does not advance the
/// nonce. The key is zeroized on drop, and `Debug` never shows it. `ring`'s expansion
/// of the key is built for each message, or kept once
/// [`keep_expanded`](CipherState::keep_expanded) asks for it; `ring` does not clear its
/// key objects, so a kept one is overwritten where it lies on rekey and on drop.
///
/// [`encrypt_with_ad`]: CipherState::encrypt_with_ad
/// [`decrypt_with_ad`]: CipherState::decrypt_with_ad
/// [`encrypt_at`]: CipherState::encrypt_at
/// [`decrypt_at`]: CipherState::decrypt_at
pub struct CipherState {
    suite: CipherSuite,
    key: Option<Key>,
    nonce: u64,
}

/// A key and, once [`CipherState::keep_expanded`] asks for it, `ring`'s expansion of it
/// (AES round keys and GHASH table, or the ChaCha20 key) kept for reuse. Expanding
/// costs about 1,200 instructions, 8% of a 64-byte round trip, so a channel carrying
/// data keeps its keys expanded; but an expansion takes about 550 bytes, so a key used
/// only now and then (handshake messages, the confirm and close records of a channel,
/// the first few data records of a direction: see the channel's `KEEP_KEYS_AFTER`) is
/// expanded for each use and dropped at once.
///
/// `ring` offers no way to clear its key objects. A kept one lives in a `Box`, so moves
/// of the cipher state never copy it elsewhere, and is overwritten in place with the
/// expansion of the all-zero key when dropped or replaced; the write is passed through
/// [`std::hint::black_box`] so that it is not elided as a store before a free.
struct Key {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    kept: Option<Box<LessSafeKey>>,
}

impl Key {
    fn new(bytes: &[u8; KEY_LEN]) -> Self {
        Self {
            bytes: Zeroizing::new(*bytes),
            kept: None,
        }
    }

    /// Runs `f` with the expanded key: the kept one, or one expanded for this use.
    fn with<T>(
        &self,
        suite: CipherSuite,
        f: impl FnOnce(&LessSafeKey) -> Result<T, NoiseError>,
    ) -> Result<T, NoiseError> {
        match &self.kept {
            Some(kept) => f(kept),
            None => f(&ring_key(suite, &self.bytes)?),
        }
    }

    /// Keeps the expansion from now on.
    fn keep(&mut self, suite: CipherSuite) -> Result<(), NoiseError> {
        if self.kept.is_none() {
            self.kept = Some(Box::new(ring_key(suite, &self.bytes)?));
        }
        Ok(())
    }

    /// Replaces the key, overwriting a kept expansion where it lies.
    fn replace(&mut self, suite: CipherSuite, bytes: &[u8]) -> Result<(), NoiseError> {
        self.bytes.copy_from_slice(bytes);
        if let Some(kept) = self.kept.as_mut() {
            **kept = ring_key(suite, &self.bytes)?;
            std::hint::black_box(&**kept);
        }
        Ok(())
    }

    /// Lets a kept expansion go, overwritten before it is freed.
    fn forget(&mut self) {
        if let Some(mut kept) = self.kept.take() {
            let zero = UnboundKey::new(kept.algorithm(), &[0; KEY_LEN]).map(LessSafeKey::new);
            if let Ok(scrubbed) = zero {
                *kept = scrubbed;
                std::hint::black_box(&*kept);
            }
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.forget();
    }
}

impl Clone for CipherState {
    fn clone(&self) -> Self {
        Self {
            suite: self.suite,
            key: self.key.as_ref().map(|k| Key::new(&k.bytes)),
            nonce: self.nonce,
        }
    }
}

impl CipherState {
    /// A cipher state with key `key` and nonce 0, for the AEAD of `suite`.
    pub fn new(suite: CipherSuite, key: [u8; KEY_LEN]) -> Self {
        Self {
            suite,
            key: Some(Key::new(&Zeroizing::new(key))),
            nonce: 0,
        }
    }

    /// A cipher state without a key: encryption and decryption pass data through
    /// unchanged, as in the first handshake message.
    pub(crate) fn empty(suite: CipherSuite) -> Self {
        Self {
            suite,
            key: None,
            nonce: 0,
        }
    }

    /// The suite whose AEAD this cipher state uses.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Whether a key is set.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The nonce the next stateful encryption or decryption will use.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Sets the internal nonce. Only for tests that reach the end of the nonce space;
    /// moving a nonce backwards reuses nonces and breaks the encryption.
    ///
    /// Only with the `test-hooks` feature, which production builds never enable.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn set_nonce_for_tests(&mut self, nonce: u64) {
        self.nonce = nonce;
    }

    /// Encrypts `plaintext` with associated data `ad` under the internal nonce, writes
    /// the ciphertext and tag to `out` and returns their length; then advances the nonce.
    /// Without a key, copies `plaintext` to `out` unchanged.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::NonceExhausted`] if the nonce has reached 2^64-1;
    /// - [`NoiseError::MessageTooLarge`] if the ciphertext would exceed 65535 bytes;
    /// - [`NoiseError::BufferTooSmall`] if `out` cannot hold it.
    ///
    /// On error the nonce is not advanced.
    pub fn encrypt_with_ad(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        let Some(key) = &self.key else {
            return copy_through(plaintext, out);
        };
        if self.nonce == RESERVED_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let written = seal(self.suite, key, self.nonce, ad, plaintext, out)?;
        self.nonce += 1;
        Ok(written)
    }

    /// Decrypts and authenticates `ciphertext` (ciphertext then tag) with associated
    /// data `ad` under the internal nonce, writes the plaintext to `out` and returns its
    /// length; then advances the nonce. Without a key, copies `ciphertext` unchanged.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::NonceExhausted`] if the nonce has reached 2^64-1;
    /// - [`NoiseError::MessageTooLarge`] if `ciphertext` exceeds 65535 bytes;
    /// - [`NoiseError::MessageTooShort`] if it is shorter than a tag;
    /// - [`NoiseError::BufferTooSmall`] if `out` cannot hold the plaintext;
    /// - [`NoiseError::DecryptFailed`] if authentication fails.
    ///
    /// On error the nonce is not advanced and `out` holds no unauthenticated plaintext.
    pub fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        let Some(key) = &self.key else {
            return copy_through(ciphertext, out);
        };
        if self.nonce == RESERVED_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let written = open(self.suite, key, self.nonce, ad, ciphertext, out)?;
        self.nonce += 1;
        Ok(written)
    }

    /// Encrypts `plaintext` with associated data `ad` under the explicit `nonce`, writes
    /// ciphertext and tag to `out` and returns their length. The internal nonce is
    /// neither used nor changed. Never encrypt two messages with the same nonce.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::ReservedNonce`] if `nonce` is 2^64-1;
    /// - [`NoiseError::MissingKey`] if no key is set;
    /// - [`NoiseError::MessageTooLarge`] if the ciphertext would exceed 65535 bytes;
    /// - [`NoiseError::BufferTooSmall`] if `out` cannot hold it.
    pub fn encrypt_at(
        &self,
        nonce: u64,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        if nonce == RESERVED_NONCE {
            return Err(NoiseError::ReservedNonce);
        }
        let key = self.key.as_ref().ok_or(NoiseError::MissingKey)?;
        seal(self.suite, key, nonce, ad, plaintext, out)
    }

    /// Decrypts and authenticates `ciphertext` with associated data `ad` under the
    /// explicit `nonce`, writes the plaintext to `out` and returns its length. The
    /// internal nonce is neither used nor changed; replay protection is the caller's.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::ReservedNonce`] if `nonce` is 2^64-1;
    /// - [`NoiseError::MissingKey`] if no key is set;
    /// - [`NoiseError::MessageTooLarge`] if `ciphertext` exceeds 65535 bytes;
    /// - [`NoiseError::MessageTooShort`] if it is shorter than a tag;
    /// - [`NoiseError::BufferTooSmall`] if `out` cannot hold the plaintext;
    /// - [`NoiseError::DecryptFailed`] if authentication fails; `out` then holds no
    ///   unauthenticated plaintext.
    pub fn decrypt_at(
        &self,
        nonce: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        if nonce == RESERVED_NONCE {
            return Err(NoiseError::ReservedNonce);
        }
        let key = self.key.as_ref().ok_or(NoiseError::MissingKey)?;
        open(self.suite, key, nonce, ad, ciphertext, out)
    }

    /// Encrypts `in_out` in place with associated data `ad` under the explicit `nonce`
    /// and returns the tag, which the caller appends; as [`encrypt_at`](Self::encrypt_at)
    /// without a second buffer.
    ///
    /// # Errors
    ///
    /// As [`encrypt_at`](Self::encrypt_at); `in_out` is then unchanged.
    pub fn encrypt_in_place_at(
        &self,
        nonce: u64,
        ad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], NoiseError> {
        if nonce == RESERVED_NONCE {
            return Err(NoiseError::ReservedNonce);
        }
        let key = self.key.as_ref().ok_or(NoiseError::MissingKey)?;
        seal_in_place(self.suite, key, nonce, ad, in_out)
    }

    /// Decrypts and authenticates `in_out` (ciphertext then tag) in place under the
    /// explicit `nonce` and returns the plaintext length: the plaintext is then the
    /// first bytes of `in_out`. As [`decrypt_at`](Self::decrypt_at) without a second
    /// buffer.
    ///
    /// # Errors
    ///
    /// As [`decrypt_at`](Self::decrypt_at); after a failed authentication `in_out` holds
    /// no unauthenticated plaintext.
    pub fn decrypt_in_place_at(
        &self,
        nonce: u64,
        ad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        if nonce == RESERVED_NONCE {
            return Err(NoiseError::ReservedNonce);
        }
        let key = self.key.as_ref().ok_or(NoiseError::MissingKey)?;
        let body_len = plaintext_len(in_out.len())?;
        let (body, tag) = in_out.split_at_mut(body_len);
        open_in_place(self.suite, key, nonce, ad, body, tag)?;
        Ok(body_len)
    }

    /// Keeps `ring`'s expansion of the key from now on instead of expanding it for each
    /// message: for a key about to protect many messages (see the private `Key` type for the memory
    /// and the clearing).
    ///
    /// # Errors
    ///
    /// [`NoiseError::MissingKey`] if no key is set.
    pub fn keep_expanded(&mut self) -> Result<(), NoiseError> {
        let suite = self.suite;
        self.key.as_mut().ok_or(NoiseError::MissingKey)?.keep(suite)
    }

    /// Stops keeping `ring`'s expansion of the key (overwritten before it is freed): the
    /// key is quiet again, and is expanded for each use until
    /// [`keep_expanded`](Self::keep_expanded) asks again.
    pub fn forget_expansion(&mut self) {
        if let Some(key) = self.key.as_mut() {
            key.forget();
        }
    }

    /// Whether `ring`'s expansion of the key is kept.
    #[cfg(test)]
    pub(crate) fn keeps_expansion(&self) -> bool {
        self.key.as_ref().is_some_and(|key| key.kept.is_some())
    }

    /// Replaces the key with the first 32 bytes of `ENCRYPT(k, 2^64-1, "", 32 zero
    /// bytes)`, as the Noise specification's `REKEY` defines it. The nonce is not reset.
    ///
    /// # Errors
    ///
    /// [`NoiseError::MissingKey`] if no key is set.
    pub fn rekey(&mut self) -> Result<(), NoiseError> {
        let key = self.key.as_mut().ok_or(NoiseError::MissingKey)?;
        let zeros = [0u8; KEY_LEN];
        let mut out = Zeroizing::new([0u8; KEY_LEN + TAG_LEN]);
        seal(self.suite, key, RESERVED_NONCE, &[], &zeros, out.as_mut())?;
        let new_key = out.get(..KEY_LEN).ok_or(NoiseError::BufferTooSmall {
            needed: KEY_LEN,
            available: out.len(),
        })?;
        key.replace(self.suite, new_key)
    }
}

impl fmt::Debug for CipherState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CipherState")
            .field("suite", &self.suite)
            .field("has_key", &self.has_key())
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// The AEAD algorithm of a suite.
fn algorithm(suite: CipherSuite) -> &'static aead::Algorithm {
    match suite {
        CipherSuite::Aes256GcmSha256 => &aead::AES_256_GCM,
        CipherSuite::ChaCha20Poly1305Sha256 => &aead::CHACHA20_POLY1305,
    }
}

/// The 96-bit AEAD nonce for counter `n`: four zero bytes, then the counter big-endian
/// for AES-GCM and little-endian for ChaCha20-Poly1305, as the Noise spec defines.
fn encode_nonce(suite: CipherSuite, n: u64) -> Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    let counter = match suite {
        CipherSuite::Aes256GcmSha256 => n.to_be_bytes(),
        CipherSuite::ChaCha20Poly1305Sha256 => n.to_le_bytes(),
    };
    let (_, tail) = bytes.split_at_mut(aead::NONCE_LEN - counter.len());
    tail.copy_from_slice(&counter);
    Nonce::assume_unique_for_key(bytes)
}

fn ring_key(suite: CipherSuite, key: &[u8; KEY_LEN]) -> Result<LessSafeKey, NoiseError> {
    // Cannot fail: both algorithms take 32-byte keys.
    UnboundKey::new(algorithm(suite), key)
        .map(LessSafeKey::new)
        .map_err(|_| NoiseError::MissingKey)
}

fn check_message_len(len: usize) -> Result<(), NoiseError> {
    if len > MAX_MESSAGE_LEN {
        return Err(NoiseError::MessageTooLarge {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(())
}

/// The plaintext length of a ciphertext (with its tag) of `len` bytes.
fn plaintext_len(len: usize) -> Result<usize, NoiseError> {
    check_message_len(len)?;
    len.checked_sub(TAG_LEN)
        .ok_or(NoiseError::MessageTooShort { len, min: TAG_LEN })
}

/// Takes the first `needed` bytes of `out`, or reports the buffer as too small.
fn prefix(out: &mut [u8], needed: usize) -> Result<&mut [u8], NoiseError> {
    let available = out.len();
    out.get_mut(..needed)
        .ok_or(NoiseError::BufferTooSmall { needed, available })
}

fn copy_through(input: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
    check_message_len(input.len())?;
    prefix(out, input.len())?.copy_from_slice(input);
    Ok(input.len())
}

fn seal(
    suite: CipherSuite,
    key: &Key,
    nonce: u64,
    ad: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<usize, NoiseError> {
    let len = plaintext.len() + TAG_LEN;
    check_message_len(len)?;
    let (body, tag_out) = prefix(out, len)?.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    tag_out.copy_from_slice(&seal_in_place(suite, key, nonce, ad, body)?);
    Ok(len)
}

/// Encrypts `body` in place and returns the tag.
fn seal_in_place(
    suite: CipherSuite,
    key: &Key,
    nonce: u64,
    ad: &[u8],
    body: &mut [u8],
) -> Result<[u8; TAG_LEN], NoiseError> {
    let len = body.len() + TAG_LEN;
    check_message_len(len)?;
    let tag = key.with(suite, |aead| {
        aead.seal_in_place_separate_tag(encode_nonce(suite, nonce), Aad::from(ad), body)
            .map_err(|_| NoiseError::MessageTooLarge {
                len,
                max: MAX_MESSAGE_LEN,
            })
    })?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

fn open(
    suite: CipherSuite,
    key: &Key,
    nonce: u64,
    ad: &[u8],
    ciphertext: &[u8],
    out: &mut [u8],
) -> Result<usize, NoiseError> {
    let body_len = plaintext_len(ciphertext.len())?;
    let (body, tag) = ciphertext.split_at(body_len);
    let plaintext = prefix(out, body_len)?;
    plaintext.copy_from_slice(body);
    open_in_place(suite, key, nonce, ad, plaintext, tag)?;
    Ok(body_len)
}

/// Authenticates and decrypts `body` in place against `tag`. On failure `body` is
/// cleared, so no unauthenticated bytes can reach the caller whatever ring does.
fn open_in_place(
    suite: CipherSuite,
    key: &Key,
    nonce: u64,
    ad: &[u8],
    body: &mut [u8],
    tag: &[u8],
) -> Result<(), NoiseError> {
    let tag = Tag::try_from(tag).map_err(|_| NoiseError::DecryptFailed)?;
    let opened = key.with(suite, |aead| {
        aead.open_in_place_separate_tag(encode_nonce(suite, nonce), Aad::from(ad), tag, body, 0..)
            .map(|_| ())
            .map_err(|_| NoiseError::DecryptFailed)
    });
    if opened.is_err() {
        body.fill(0);
        return Err(NoiseError::DecryptFailed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    fn pair(suite: CipherSuite) -> (CipherState, CipherState) {
        (CipherState::new(suite, KEY), CipherState::new(suite, KEY))
    }

    #[test]
    fn stateful_round_trip_advances_both_nonces() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let mut ct = [0u8; 64];
            let mut pt = [0u8; 64];
            for i in 0..3u64 {
                assert_eq!(tx.nonce(), i);
                let n = tx.encrypt_with_ad(b"ad", b"hello", &mut ct).unwrap();
                assert_eq!(n, 5 + TAG_LEN);
                let m = rx.decrypt_with_ad(b"ad", &ct[..n], &mut pt).unwrap();
                assert_eq!(&pt[..m], b"hello");
                assert_eq!(rx.nonce(), i + 1);
            }
        }
    }

    #[test]
    fn nonce_encoding_differs_by_suite() {
        // Counter 1: AES-GCM puts it in the last byte, ChaCha20-Poly1305 in byte 4.
        let aes = encode_nonce(CipherSuite::Aes256GcmSha256, 1);
        let chacha = encode_nonce(CipherSuite::ChaCha20Poly1305Sha256, 1);
        assert_eq!(aes.as_ref(), &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(chacha.as_ref(), &[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn failed_decrypt_does_not_advance_nonce_and_clears_output() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let mut ct = [0u8; 64];
            let n = tx.encrypt_with_ad(b"", b"secret", &mut ct).unwrap();
            let mut bad = ct;
            bad[0] ^= 1;
            let mut pt = [0xAAu8; 64];
            assert_eq!(
                rx.decrypt_with_ad(b"", &bad[..n], &mut pt),
                Err(NoiseError::DecryptFailed)
            );
            assert_eq!(rx.nonce(), 0);
            assert!(pt[..n - TAG_LEN].iter().all(|&b| b == 0));
            // Wrong associated data fails the same way.
            assert_eq!(
                rx.decrypt_with_ad(b"x", &ct[..n], &mut pt),
                Err(NoiseError::DecryptFailed)
            );
            assert_eq!(rx.nonce(), 0);
            // The genuine message still decrypts afterwards.
            let m = rx.decrypt_with_ad(b"", &ct[..n], &mut pt).unwrap();
            assert_eq!(&pt[..m], b"secret");
            assert_eq!(rx.nonce(), 1);
        }
    }

    #[test]
    fn nonce_exhaustion_is_an_error_never_a_use_of_the_reserved_nonce() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            tx.set_nonce_for_tests(u64::MAX - 1);
            rx.set_nonce_for_tests(u64::MAX - 1);
            let mut ct = [0u8; 32];
            let mut pt = [0u8; 32];
            let n = tx.encrypt_with_ad(b"", b"last", &mut ct).unwrap();
            assert_eq!(tx.nonce(), u64::MAX);
            assert_eq!(
                tx.encrypt_with_ad(b"", b"one more", &mut ct),
                Err(NoiseError::NonceExhausted)
            );
            assert_eq!(tx.nonce(), u64::MAX);
            rx.decrypt_with_ad(b"", &ct[..n], &mut pt).unwrap();
            assert_eq!(
                rx.decrypt_with_ad(b"", &ct[..n], &mut pt),
                Err(NoiseError::NonceExhausted)
            );
        }
    }

    #[test]
    fn explicit_nonces_match_stateful_ones_and_refuse_the_reserved_nonce() {
        for suite in CipherSuite::ALL {
            let (mut tx, rx) = pair(suite);
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            tx.set_nonce_for_tests(41);
            let n = tx.encrypt_with_ad(b"ad", b"msg", &mut a).unwrap();
            let m = tx.encrypt_at(41, b"ad", b"msg", &mut b).unwrap();
            assert_eq!(a[..n], b[..m]);
            assert_eq!(tx.nonce(), 42);
            let mut pt = [0u8; 32];
            assert_eq!(rx.decrypt_at(41, b"ad", &a[..n], &mut pt).unwrap(), 3);
            assert_eq!(rx.nonce(), 0);
            assert_eq!(
                rx.decrypt_at(40, b"ad", &a[..n], &mut pt),
                Err(NoiseError::DecryptFailed)
            );
            assert_eq!(
                tx.encrypt_at(u64::MAX, b"", b"", &mut a),
                Err(NoiseError::ReservedNonce)
            );
            assert_eq!(
                rx.decrypt_at(u64::MAX, b"", &a[..TAG_LEN], &mut pt),
                Err(NoiseError::ReservedNonce)
            );
            let empty = CipherState::empty(suite);
            assert_eq!(
                empty.encrypt_at(0, b"", b"", &mut a),
                Err(NoiseError::MissingKey)
            );
        }
    }

    #[test]
    fn rekey_is_encrypt_at_max_nonce_and_keeps_the_nonce() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            tx.set_nonce_for_tests(5);
            rx.set_nonce_for_tests(5);
            tx.rekey().unwrap();
            rx.rekey().unwrap();
            assert_eq!(tx.nonce(), 5);

            // The new key is ENCRYPT(k, 2^64-1, "", zeros)[..32], computed with ring directly.
            let key = LessSafeKey::new(UnboundKey::new(algorithm(suite), &KEY).unwrap());
            let mut expected = [0u8; 32];
            let _tag = key
                .seal_in_place_separate_tag(
                    encode_nonce(suite, u64::MAX),
                    Aad::empty(),
                    &mut expected,
                )
                .unwrap();
            let reference = CipherState::new(suite, expected);
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            let n = tx.encrypt_with_ad(b"", b"after", &mut a).unwrap();
            reference.encrypt_at(5, b"", b"after", &mut b).unwrap();
            assert_eq!(a[..n], b[..n]);
            let mut pt = [0u8; 32];
            assert_eq!(rx.decrypt_with_ad(b"", &a[..n], &mut pt).unwrap(), 5);

            // An old-key ciphertext no longer decrypts.
            let old = CipherState::new(suite, KEY);
            let m = old.encrypt_at(6, b"", b"stale", &mut a).unwrap();
            assert_eq!(
                rx.decrypt_with_ad(b"", &a[..m], &mut pt),
                Err(NoiseError::DecryptFailed)
            );
            assert_eq!(
                CipherState::empty(suite).rekey(),
                Err(NoiseError::MissingKey)
            );
        }
    }

    #[test]
    fn size_limits_and_small_buffers_are_errors() {
        for suite in CipherSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let big = vec![0u8; MAX_MESSAGE_LEN - TAG_LEN + 1];
            let mut out = vec![0u8; MAX_MESSAGE_LEN + 100];
            assert_eq!(
                tx.encrypt_with_ad(b"", &big, &mut out),
                Err(NoiseError::MessageTooLarge {
                    len: MAX_MESSAGE_LEN + 1,
                    max: MAX_MESSAGE_LEN
                })
            );
            let n = tx.encrypt_with_ad(b"", &big[1..], &mut out).unwrap();
            assert_eq!(n, MAX_MESSAGE_LEN);
            let mut small = [0u8; 4];
            assert!(matches!(
                tx.encrypt_with_ad(b"", b"hello", &mut small),
                Err(NoiseError::BufferTooSmall {
                    needed: 21,
                    available: 4
                })
            ));
            assert_eq!(tx.nonce(), 1);
            assert_eq!(
                rx.decrypt_with_ad(b"", &out[..TAG_LEN - 1], &mut small),
                Err(NoiseError::MessageTooShort {
                    len: TAG_LEN - 1,
                    min: TAG_LEN
                })
            );
            assert_eq!(
                rx.decrypt_with_ad(b"", &out[..n], &mut small),
                Err(NoiseError::BufferTooSmall {
                    needed: n - TAG_LEN,
                    available: 4
                })
            );
            assert_eq!(
                rx.decrypt_with_ad(b"", &out[..MAX_MESSAGE_LEN + 1], &mut small),
                Err(NoiseError::MessageTooLarge {
                    len: MAX_MESSAGE_LEN + 1,
                    max: MAX_MESSAGE_LEN
                })
            );
            assert_eq!(rx.nonce(), 0);
        }
    }

    proptest::proptest! {
        #[test]
        fn explicit_nonce_round_trip(
            chacha in proptest::prelude::any::<bool>(),
            nonce in 0..u64::MAX,
            ad in proptest::collection::vec(0u8.., 0..64),
            plaintext in proptest::collection::vec(0u8.., 0..512),
        ) {
            let suite = CipherSuite::ALL[usize::from(chacha)];
            let cs = CipherState::new(suite, KEY);
            let mut ct = vec![0u8; plaintext.len() + TAG_LEN];
            let mut pt = vec![0u8; plaintext.len()];
            let n = cs.encrypt_at(nonce, &ad, &plaintext, &mut ct).unwrap();
            proptest::prop_assert_eq!(cs.decrypt_at(nonce, &ad, &ct[..n], &mut pt), Ok(plaintext.len()));
            proptest::prop_assert_eq!(&pt, &plaintext);
            let other = nonce.wrapping_add(1) % u64::MAX;
            proptest::prop_assert_eq!(cs.decrypt_at(other, &ad, &ct[..n], &mut pt), Err(NoiseError::DecryptFailed));

            // In place: the same bytes as with two buffers, both ways.
            let mut in_place = plaintext.clone();
            let tag = cs.encrypt_in_place_at(nonce, &ad, &mut in_place).unwrap();
            in_place.extend_from_slice(&tag);
            proptest::prop_assert_eq!(&in_place, &ct);
            let mut wrong = in_place.clone();
            proptest::prop_assert_eq!(cs.decrypt_in_place_at(other, &ad, &mut wrong), Err(NoiseError::DecryptFailed));
            proptest::prop_assert!(wrong[..plaintext.len()].iter().all(|&b| b == 0), "no unauthenticated plaintext left");
            proptest::prop_assert_eq!(cs.decrypt_in_place_at(nonce, &ad, &mut in_place), Ok(plaintext.len()));
            proptest::prop_assert_eq!(&in_place[..plaintext.len()], &plaintext[..]);
        }
    }

    #[test]
    fn a_kept_expansion_gives_the_same_bytes_through_rekeys_and_clones() {
        for suite in CipherSuite::ALL {
            let plain = CipherState::new(suite, KEY);
            let mut kept = CipherState::new(suite, KEY);
            kept.keep_expanded().unwrap();
            let mut rekeyed_plain = plain.clone();
            let mut rekeyed_kept = kept.clone();
            rekeyed_kept.keep_expanded().unwrap();
            rekeyed_plain.rekey().unwrap();
            rekeyed_kept.rekey().unwrap();
            for (a, b) in [(&plain, &kept), (&rekeyed_plain, &rekeyed_kept)] {
                let mut x = [0u8; 40];
                let mut y = [0u8; 40];
                a.encrypt_at(9, b"ad", b"twenty-four bytes of msg", &mut x)
                    .unwrap();
                b.encrypt_at(9, b"ad", b"twenty-four bytes of msg", &mut y)
                    .unwrap();
                assert_eq!(x, y, "{suite:?}");
                let mut out = [0u8; 24];
                assert_eq!(b.decrypt_at(9, b"ad", &x, &mut out), Ok(24));
            }
            let mut x = [0u8; 40];
            plain.encrypt_at(1, b"", &[7; 24], &mut x).unwrap();
            let mut y = [0u8; 40];
            rekeyed_kept.encrypt_at(1, b"", &[7; 24], &mut y).unwrap();
            assert_ne!(x, y, "the rekeyed key differs ({suite:?})");
            assert_eq!(
                CipherState::empty(suite).keep_expanded(),
                Err(NoiseError::MissingKey)
            );
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let cs = CipherState::new(CipherSuite::Aes256GcmSha256, [0xAB; 32]);
        let shown = format!("{cs:?}");
        assert!(!shown.to_lowercase().contains("abab"));
        assert!(!shown.contains("171"));
        assert!(shown.contains("has_key: true"));
    }
}
