//! Long-term identities: Ed25519 signing keys, their public halves and identifiers.
//!
//! An [`Identity`] is a node's long-term Ed25519 key pair. The secure channel signs
//! each handshake with it, so the peer learns, and verifies, which identity it is
//! talking to. A [`PublicIdentity`] is the 32-byte public key a peer presents; an
//! [`Identifier`] is the short, printable name derived from it, which is what trust
//! policies and applications compare.
//!
//! # Identifier
//!
//! `identifier = SHA-256(public_key)`, where `public_key` is the 32-byte Ed25519
//! public key as RFC 8032 encodes it. Its text form is the letter `I` followed by the
//! 64 lowercase hexadecimal digits of the digest, for example
//! `I21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9`. Parsing is
//! strict: uppercase hex digits are refused, so each identifier has exactly one text
//! form and comparing text compares identifiers.
//!
//! # Key files
//!
//! A key is stored as an unencrypted PKCS#8 v2 `OneAsymmetricKey` document (RFC 5958,
//! RFC 8410), in DER, holding both the 32-byte seed and the public key, byte for byte
//! as `ring` writes it. [`Identity::load`] and [`Identity::save`] are the only file
//! I/O in this crate: a convenience for applications, kept here so that every other
//! part of the core stays free of I/O.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use crate::random::{RandomError, RandomSource};

/// Length in bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length in bytes of an Ed25519 seed (the secret from which the key pair is derived).
pub const SEED_LEN: usize = 32;
/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length in bytes of an [`Identifier`].
pub const IDENTIFIER_LEN: usize = 32;
/// The character that starts an identifier's text form.
pub const IDENTIFIER_PREFIX: char = 'I';
/// Length in characters of an identifier's text form: the prefix and 64 hex digits.
pub const IDENTIFIER_TEXT_LEN: usize = 1 + 2 * IDENTIFIER_LEN;
/// Largest key file [`Identity::load`] reads; an Ed25519 PKCS#8 v2 document is 83
/// bytes, so anything much larger is not one of ours.
pub const MAX_KEY_FILE_LEN: u64 = 1024;

/// Length of the PKCS#8 v2 document this module writes.
const PKCS8_V2_LEN: usize = 83;
/// The bytes before the seed in a PKCS#8 v2 Ed25519 document (RFC 8410 section 7):
/// SEQUENCE (81 bytes) { INTEGER 1, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
/// OCTET STRING (32 bytes) ...
const PKCS8_V2_BEFORE_SEED: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The bytes between the seed and the public key: `[1] IMPLICIT BIT STRING` of 33
/// bytes with no unused bits.
const PKCS8_V2_BEFORE_PUBLIC_KEY: [u8; 3] = [0x81, 0x21, 0x00];

/// What went wrong with an identity, a key file, an identifier or a signature.
///
/// `Clone`, so that one failure can be handed to several waiters (the operating
/// system's error is shared).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The random source failed while generating a key.
    #[error("could not generate an identity: {0}")]
    Random(#[from] RandomError),
    /// The bytes are not an unencrypted PKCS#8 v2 Ed25519 private key.
    #[error("not an Ed25519 PKCS#8 v2 private key ({reason})")]
    InvalidKeyDocument {
        /// Why the document was rejected, as `ring` reports it (for example
        /// `InvalidEncoding`, `WrongAlgorithm`, `VersionNotSupported`,
        /// `InconsistentComponents`).
        reason: &'static str,
    },
    /// Reading or writing a key file failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::sync::Arc<std::io::Error>,
    },
    /// A key file is larger than any Ed25519 key document.
    #[error("key file {} is {len} bytes, larger than the {max} bytes an Ed25519 key file may have", path.display())]
    KeyFileTooLarge {
        /// The file concerned.
        path: PathBuf,
        /// Its length (at least; reading stops past the limit).
        len: u64,
        /// [`MAX_KEY_FILE_LEN`].
        max: u64,
    },
    /// A key file could not be parsed.
    #[error("key file {}: not an Ed25519 PKCS#8 v2 private key ({reason})", path.display())]
    InvalidKeyFile {
        /// The file concerned.
        path: PathBuf,
        /// Why the document was rejected (see [`IdentityError::InvalidKeyDocument`]).
        reason: &'static str,
    },
    /// A public key or identifier had the wrong number of bytes.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// The required length.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// An identifier's text form does not start with `I`.
    #[error("an identifier starts with 'I', this starts with {found:?}")]
    IdentifierPrefix {
        /// The first character found, if any.
        found: Option<char>,
    },
    /// An identifier's text form has the wrong length.
    #[error("an identifier is {expected} characters long ('I' and 64 hex digits), this is {actual} bytes")]
    IdentifierTextLength {
        /// [`IDENTIFIER_TEXT_LEN`].
        expected: usize,
        /// The length given, in bytes.
        actual: usize,
    },
    /// An identifier's text form has a character other than a lowercase hex digit.
    #[error(
        "identifier character {position} is {found:?}, expected a lowercase hex digit (0-9, a-f)"
    )]
    IdentifierCharacter {
        /// Byte offset of the offending character in the text.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// A signature did not verify against the public key and message.
    #[error("the signature does not verify for identity {identifier}")]
    BadSignature {
        /// Identifier of the key the signature was checked against.
        identifier: Identifier,
    },
}

/// A long-term identity: an Ed25519 signing key.
///
/// The secret is kept twice: inside `ring`'s key pair (used for signing) and as the
/// PKCS#8 document (used for [`Identity::to_pkcs8`] and [`Identity::save`]), which is
/// zeroized on drop. `Debug` prints only the identifier. Cloning is cheap: clones
/// share the key.
#[derive(Clone)]
pub struct Identity {
    key_pair: Arc<Ed25519KeyPair>,
    pkcs8: Arc<Zeroizing<Vec<u8>>>,
    public: PublicIdentity,
}

impl Identity {
    /// Generates a new identity from the operating system's secure random generator.
    ///
    /// # Errors
    ///
    /// [`IdentityError::Random`] if the generator fails.
    pub fn generate() -> Result<Self, IdentityError> {
        Self::generate_with(&mut crate::random::SystemRandom::new())
    }

    /// Generates a new identity from 32 random bytes drawn from `rng`.
    ///
    /// The Ed25519 secret key is a uniformly random 32-byte seed (RFC 8032 section
    /// 5.1.5), which is exactly what `ring` itself draws; drawing it from an injected
    /// [`RandomSource`] keeps the core free of ambient randomness and lets tests and
    /// simulations create reproducible identities. Pass
    /// [`SystemRandom`](crate::random::SystemRandom) for real keys.
    ///
    /// # Errors
    ///
    /// [`IdentityError::Random`] if `rng` fails.
    pub fn generate_with(rng: &mut dyn RandomSource) -> Result<Self, IdentityError> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rng.fill(seed.as_mut())?;
        Self::from_seed(&seed)
    }

    /// The identity whose Ed25519 seed (secret key, RFC 8032) is `seed`.
    ///
    /// # Errors
    ///
    /// [`IdentityError::InvalidKeyDocument`] only if `ring` rejects the document built
    /// around the seed, which does not happen for any 32-byte seed.
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Result<Self, IdentityError> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(rejected)?;
        let mut pkcs8 = Zeroizing::new(Vec::with_capacity(PKCS8_V2_LEN));
        pkcs8.extend_from_slice(&PKCS8_V2_BEFORE_SEED);
        pkcs8.extend_from_slice(seed);
        pkcs8.extend_from_slice(&PKCS8_V2_BEFORE_PUBLIC_KEY);
        pkcs8.extend_from_slice(key_pair.public_key().as_ref());
        // Parse the document back so that what `to_pkcs8` returns is known to load.
        Self::from_pkcs8_document(pkcs8)
    }

    /// Parses an unencrypted PKCS#8 v2 Ed25519 private key (DER), as written by
    /// [`Identity::to_pkcs8`] or by `ring`.
    ///
    /// PKCS#8 v1 documents (which lack the public key, as `openssl genpkey -algorithm
    /// ed25519` writes them) are refused: v2 lets the public key be checked against
    /// the secret, which catches corruption.
    ///
    /// # Errors
    ///
    /// [`IdentityError::InvalidKeyDocument`] if `pkcs8` is empty, truncated, corrupt,
    /// PKCS#8 v1, a key for another algorithm (RSA, ECDSA, X25519, ...), or its
    /// public key does not match its secret.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        Self::from_pkcs8_document(Zeroizing::new(pkcs8.to_vec()))
    }

    fn from_pkcs8_document(pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, IdentityError> {
        let key_pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(rejected)?;
        let public = PublicIdentity::from_slice(key_pair.public_key().as_ref())?;
        Ok(Self {
            key_pair: Arc::new(key_pair),
            pkcs8: Arc::new(pkcs8),
            public,
        })
    }

    /// The PKCS#8 v2 document holding this identity's secret, zeroized when dropped.
    ///
    /// For a generated identity this is byte for byte what `ring`'s
    /// `Ed25519KeyPair::generate_pkcs8` would produce for the same seed; for a parsed
    /// one it is the document it was parsed from.
    #[must_use]
    pub fn to_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.pkcs8.to_vec())
    }

    /// Loads an identity from a PKCS#8 v2 key file.
    ///
    /// # Errors
    ///
    /// [`IdentityError::Io`] if the file cannot be read,
    /// [`IdentityError::KeyFileTooLarge`] if it is longer than [`MAX_KEY_FILE_LEN`],
    /// [`IdentityError::InvalidKeyFile`] if it is not an Ed25519 PKCS#8 v2 key.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        use std::io::Read as _;
        let path = path.as_ref();
        let io_error = |source: std::io::Error| IdentityError::Io {
            path: path.to_path_buf(),
            source: std::sync::Arc::new(source),
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        // Sized for the largest file we accept so the buffer never reallocates,
        // which would leave unzeroized copies of the secret behind.
        let capacity = usize::try_from(MAX_KEY_FILE_LEN.saturating_add(1)).unwrap_or(1025);
        let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
        file.take(MAX_KEY_FILE_LEN.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > MAX_KEY_FILE_LEN {
            return Err(IdentityError::KeyFileTooLarge {
                path: path.to_path_buf(),
                len,
                max: MAX_KEY_FILE_LEN,
            });
        }
        Self::from_pkcs8_document(bytes).map_err(|e| match e {
            IdentityError::InvalidKeyDocument { reason } => IdentityError::InvalidKeyFile {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// Saves this identity as a PKCS#8 v2 key file, replacing any file at `path`.
    ///
    /// On Unix the file is created with mode `0600` and, if it already existed, its
    /// mode is set to `0600` before the secret is written, so no other user can read
    /// the key. The file is synced to disk before returning.
    ///
    /// # Errors
    ///
    /// [`IdentityError::Io`] if the file cannot be created, restricted, written or
    /// synced.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IdentityError> {
        let path = path.as_ref();
        let io_error = |source: std::io::Error| IdentityError::Io {
            path: path.to_path_buf(),
            source: std::sync::Arc::new(source),
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            options.mode(0o600);
            let file = options.open(path).map_err(io_error)?;
            // `mode` applies only when the file is created; restrict an existing one too.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_error)?;
            write_all_and_sync(file, &self.pkcs8).map_err(io_error)
        }
        #[cfg(not(unix))]
        {
            let file = options.open(path).map_err(io_error)?;
            write_all_and_sync(file, &self.pkcs8).map_err(io_error)
        }
    }

    /// This identity's identifier.
    #[must_use]
    pub fn identifier(&self) -> Identifier {
        self.public.identifier()
    }

    /// This identity's public half, which peers use to verify its signatures.
    #[must_use]
    pub fn public_identity(&self) -> PublicIdentity {
        self.public
    }

    /// This identity's 32-byte Ed25519 public key.
    #[must_use]
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public.0
    }

    /// Signs `message` (Ed25519, RFC 8032; deterministic).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let signature = self.key_pair.sign(message);
        let mut out = [0u8; SIGNATURE_LEN];
        // `ring` always returns 64 bytes for Ed25519; copy defensively regardless.
        for (dst, src) in out.iter_mut().zip(signature.as_ref()) {
            *dst = *src;
        }
        out
    }
}

/// Maps `ring`'s rejection to our error. `ring` only exposes its reason through
/// `Display`, so the known reasons are matched back to static strings.
fn rejected(error: ring::error::KeyRejected) -> IdentityError {
    const KNOWN: [&str; 10] = [
        "InconsistentComponents",
        "InvalidComponent",
        "InvalidEncoding",
        "PublicKeyIsMissing",
        "TooSmall",
        "TooLarge",
        "VersionNotSupported",
        "WrongAlgorithm",
        "PrivateModulusLenNotMultipleOf512Bits",
        "UnexpectedError",
    ];
    let text = error.to_string();
    let reason = KNOWN
        .into_iter()
        .find(|known| *known == text)
        .unwrap_or("rejected");
    IdentityError::InvalidKeyDocument { reason }
}

fn write_all_and_sync(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    file.write_all(bytes)?;
    file.sync_all()
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("identifier", &self.identifier())
            .finish_non_exhaustive()
    }
}

/// The public half of an identity: a 32-byte Ed25519 public key.
///
/// Any 32 bytes are accepted on construction; a key that is not a valid curve point
/// simply never verifies a signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicIdentity([u8; PUBLIC_KEY_LEN]);

impl PublicIdentity {
    /// The public identity with this 32-byte Ed25519 public key.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The public identity with this Ed25519 public key, given as a slice (for
    /// example straight from a decoded message).
    ///
    /// # Errors
    ///
    /// [`IdentityError::WrongLength`] unless `bytes` is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdentityError> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| IdentityError::WrongLength {
                expected: PUBLIC_KEY_LEN,
                actual: bytes.len(),
            })
    }

    /// The 32-byte Ed25519 public key.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The identifier of this public key: its SHA-256 digest.
    #[must_use]
    pub fn identifier(&self) -> Identifier {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        let mut id = [0u8; IDENTIFIER_LEN];
        for (dst, src) in id.iter_mut().zip(digest.as_ref()) {
            *dst = *src;
        }
        Identifier(id)
    }

    /// Checks that `signature` is this key's Ed25519 signature of `message`.
    ///
    /// # Errors
    ///
    /// [`IdentityError::BadSignature`] if it is not (including when `signature` is
    /// not 64 bytes long or this key is not a valid Ed25519 point).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| IdentityError::BadSignature {
                identifier: self.identifier(),
            })
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

impl serde::Serialize for PublicIdentity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PublicIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_bytes(Bytes32Visitor {
                what: "a 32-byte Ed25519 public key",
            })
            .map(Self)
    }
}

/// The name of an identity: the SHA-256 digest of its Ed25519 public key.
///
/// Printed (and parsed) as `I` and 64 lowercase hex digits. Serialized with serde as
/// a byte string of exactly 32 bytes in binary formats such as CBOR, and as its text
/// form in human-readable formats such as JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier([u8; IDENTIFIER_LEN]);

impl Identifier {
    /// The identifier with these 32 digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; IDENTIFIER_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; IDENTIFIER_LEN] {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{IDENTIFIER_PREFIX}")?;
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({self})")
    }
}

impl FromStr for Identifier {
    type Err = IdentityError;

    /// Parses `I` followed by exactly 64 lowercase hex digits; whitespace around
    /// them (a line read from a file, its newline included) is ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let Some(hex) = text.strip_prefix(IDENTIFIER_PREFIX) else {
            return Err(IdentityError::IdentifierPrefix {
                found: text.chars().next(),
            });
        };
        if text.len() != IDENTIFIER_TEXT_LEN {
            return Err(IdentityError::IdentifierTextLength {
                expected: IDENTIFIER_TEXT_LEN,
                actual: text.len(),
            });
        }
        let mut out = [0u8; IDENTIFIER_LEN];
        // Every character must be checked before indexing by bytes, since a
        // multi-byte character could otherwise hide inside the expected length.
        for (offset, c) in hex.char_indices() {
            if !matches!(c, '0'..='9' | 'a'..='f') {
                return Err(IdentityError::IdentifierCharacter {
                    position: offset.saturating_add(1),
                    found: c,
                });
            }
        }
        for (dst, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            if let [high, low] = pair {
                *dst = (hex_value(*high) << 4) | hex_value(*low);
            }
        }
        Ok(Self(out))
    }
}

/// The value of a lowercase hex digit already checked to be one.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => 0,
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

impl serde::Serialize for Identifier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Identifier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(IdentifierTextVisitor)
        } else {
            deserializer
                .deserialize_bytes(Bytes32Visitor {
                    what: "a 32-byte identifier",
                })
                .map(Self)
        }
    }
}

/// Accepts a byte string of exactly 32 bytes, and nothing else.
struct Bytes32Visitor {
    what: &'static str,
}

impl serde::de::Visitor<'_> for Bytes32Visitor {
    type Value = [u8; 32];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, as a byte string", self.what)
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        <[u8; 32]>::try_from(bytes).map_err(|_| E::invalid_length(bytes.len(), &self))
    }
}

/// Accepts an identifier's text form.
struct IdentifierTextVisitor;

impl serde::de::Visitor<'_> for IdentifierTextVisitor {
    type Value = Identifier;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an identifier: 'I' and 64 lowercase hex digits")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    // RFC 8032 section 7.1, test 1.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    // SHA-256 of RFC8032_PUBLIC, computed independently with `sha256sum`.
    const RFC8032_IDENTIFIER: &str =
        "I21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";

    // Foreign keys written by `openssl genpkey ... | openssl pkcs8 -topk8 -nocrypt`.
    const P256_PKCS8: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104205657f5118112e2d561d98531e7f1a1ae7fd67548885b9f70cdc80d6297aff6d1a14403420004d566ba2e6a5f1d1799fa4d1f84891d166ca258feeb27f80d2f471c63dcb150c6d622d3183e57009b0d2fa0107cb71c82aca75dbeea5dfc640ad883b7fdddaf74";
    const X25519_PKCS8: &str = "302e020100300506032b656e04220420e8cb90bda64af94d748452302d48fa3f809fafde28c6361c32d1fa7ec5a2124b";
    const ED25519_V1_PKCS8: &str = "302e020100300506032b65700422042046902dfdb928f787a55540e4f3acf70d8890492618fe02af70e8315b3c87c520";
    const RSA512_PKCS8: &str = "30820154020100300d06092a864886f70d01010105000482013e3082013a020100024100c0bb5b69d8475c28acbef21006e8a3b6f73deacf4871d7300fab547284cdc37e4ddf4f5203fbc820ec87bb8f923bdbc30605434dfca4e20e4a0c258dff022aeb020301000102407fd4c4d0f34e8165c90dece78c6d8908b5fc2f5dc4a31d2317817fc5652844dcbe611df8480d56a23c5f205583a67b15bd2dbe1a0eb5d31eea39b26a3b9ac6a1022100e5856aa32a8139b7fad920da915c8fd55fb011c1c3dcaa87a483a060a17636af022100d6f76baee27de2b9966373990461e23360e965fcf0a040a36d0fece0c494de85022079a4e245a40b6539db1b24cc726a2a591e23c4e57b1702d26d20cde928e9ec45022100cd8af663da1d1454efff57e0cfd7e839c84863445fb05b1de88279b4d142a72102207bc5568c47a292fafcdaf8104fe1f1334f6f63d36983c8ed7514726d4af4d07c";

    fn seed(hex_text: &str) -> [u8; 32] {
        hex::decode(hex_text).unwrap().try_into().unwrap()
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("onward-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn rfc8032_vector_and_identifier() {
        let id = Identity::from_seed(&seed(RFC8032_SEED)).unwrap();
        assert_eq!(hex::encode(id.public_key()), RFC8032_PUBLIC);
        assert_eq!(hex::encode(id.sign(b"")), RFC8032_SIGNATURE);
        assert_eq!(id.identifier().to_string(), RFC8032_IDENTIFIER);
        assert_eq!(id.public_identity().identifier(), id.identifier());
        id.public_identity().verify(b"", &id.sign(b"")).unwrap();
    }

    #[test]
    fn generation_is_driven_by_the_random_source() {
        let a = Identity::generate_with(&mut SeededRandom::new(1)).unwrap();
        let b = Identity::generate_with(&mut SeededRandom::new(1)).unwrap();
        let c = Identity::generate_with(&mut SeededRandom::new(2)).unwrap();
        assert_eq!(a.identifier(), b.identifier());
        assert_ne!(a.identifier(), c.identifier());
        let d = Identity::generate_with(&mut crate::random::SystemRandom::new()).unwrap();
        assert_ne!(a.identifier(), d.identifier());
    }

    #[test]
    fn random_failure_is_reported() {
        struct Broken;
        impl RandomSource for Broken {
            fn fill(&mut self, _: &mut [u8]) -> Result<(), RandomError> {
                Err(RandomError)
            }
        }
        assert!(matches!(
            Identity::generate_with(&mut Broken),
            Err(IdentityError::Random(_))
        ));
    }

    #[test]
    fn pkcs8_matches_ring_byte_for_byte() {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let doc = doc.as_ref();
        assert_eq!(doc.len(), PKCS8_V2_LEN);
        let seed: [u8; 32] = doc[16..48].try_into().unwrap();
        let ours = Identity::from_seed(&seed).unwrap();
        assert_eq!(ours.to_pkcs8().as_slice(), doc);
        let parsed = Identity::from_pkcs8(doc).unwrap();
        assert_eq!(parsed.identifier(), ours.identifier());
        assert_eq!(parsed.to_pkcs8().as_slice(), doc);
    }

    #[test]
    fn legacy_public_key_tagging_is_accepted() {
        // Early PKCS#8 v2 writers wrapped the public key as [1] CONSTRUCTED { BIT STRING }.
        let good = Identity::from_seed(&seed(RFC8032_SEED)).unwrap();
        let doc = good.to_pkcs8();
        let mut legacy = vec![0x30, 0x53];
        legacy.extend_from_slice(&doc[2..48]);
        legacy.extend_from_slice(&[0xa1, 0x23, 0x03, 0x21, 0x00]);
        legacy.extend_from_slice(&good.public_key());
        let parsed = Identity::from_pkcs8(&legacy).unwrap();
        assert_eq!(parsed.identifier(), good.identifier());
        assert_eq!(parsed.to_pkcs8().as_slice(), legacy.as_slice());
    }

    #[test]
    fn pkcs8_round_trip() {
        let id = Identity::generate_with(&mut SeededRandom::new(9)).unwrap();
        let back = Identity::from_pkcs8(&id.to_pkcs8()).unwrap();
        assert_eq!(back.identifier(), id.identifier());
        assert_eq!(back.sign(b"m"), id.sign(b"m"));
    }

    fn reason(result: Result<Identity, IdentityError>) -> &'static str {
        match result {
            Err(IdentityError::InvalidKeyDocument { reason }) => reason,
            other => panic!("expected InvalidKeyDocument, got {other:?}"),
        }
    }

    #[test]
    fn foreign_and_damaged_documents_are_rejected() {
        let good = Identity::from_seed(&seed(RFC8032_SEED)).unwrap().to_pkcs8();
        // Other algorithms, and PKCS#8 v1 (no public key: version 0).
        for (bad, why) in [
            (P256_PKCS8, "WrongAlgorithm"),
            (X25519_PKCS8, "WrongAlgorithm"),
            (RSA512_PKCS8, "WrongAlgorithm"),
            (ED25519_V1_PKCS8, "VersionNotSupported"),
        ] {
            let bytes = hex::decode(bad).unwrap();
            assert_eq!(reason(Identity::from_pkcs8(&bytes)), why, "{bad}");
        }
        // Every truncation (the empty document included) and an extension are not DER
        // of the expected shape.
        for len in 0..good.len() {
            assert_eq!(
                reason(Identity::from_pkcs8(&good[..len])),
                "InvalidEncoding",
                "cut at {len}"
            );
        }
        let mut longer = good.to_vec();
        longer.push(0);
        assert_eq!(reason(Identity::from_pkcs8(&longer)), "InvalidEncoding");
        // Every single-bit flip is refused, with the reason for the field it lands in.
        for i in 0..good.len() * 8 {
            let (at, bit) = (i / 8, i % 8);
            let mut flipped = good.to_vec();
            flipped[at] ^= 1 << bit;
            let why = match at {
                // The seed or the public key: the two no longer match.
                16..48 | 51..83 => "InconsistentComponents",
                // The version, 1, becomes another number (or, with the top bit, a
                // negative one, which is not a valid version encoding).
                4 if bit < 7 => "VersionNotSupported",
                // The AlgorithmIdentifier (length, OID tag, length, OID): it no longer
                // names Ed25519.
                6 if bit < 7 => "WrongAlgorithm",
                7..12 => "WrongAlgorithm",
                // Tags and lengths of the DER structure.
                _ => "InvalidEncoding",
            };
            assert_eq!(
                reason(Identity::from_pkcs8(&flipped)),
                why,
                "byte {at} bit {bit}"
            );
        }
    }

    #[test]
    fn random_bytes_are_rejected() {
        let mut rng = SeededRandom::new(3);
        for len in [1usize, 16, 48, 83, 200] {
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes).unwrap();
            assert_eq!(
                reason(Identity::from_pkcs8(&bytes)),
                "InvalidEncoding",
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn save_and_load() {
        let path = temp_path("save_and_load.key");
        let id = Identity::generate_with(&mut SeededRandom::new(4)).unwrap();
        id.save(&path).unwrap();
        let back = Identity::load(&path).unwrap();
        assert_eq!(back.identifier(), id.identifier());
        assert_eq!(std::fs::read(&path).unwrap(), id.to_pkcs8().as_slice());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn save_restricts_an_existing_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = temp_path("existing.key");
        std::fs::write(&path, b"previous contents, much longer than a key document ........................................").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let id = Identity::generate_with(&mut SeededRandom::new(5)).unwrap();
        id.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Identity::load(&path).unwrap().identifier(), id.identifier());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn load_errors_are_typed() {
        let missing = temp_path("missing.key");
        assert!(matches!(
            Identity::load(&missing),
            Err(IdentityError::Io { path, .. }) if path == missing
        ));
        let empty = temp_path("empty.key");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            Identity::load(&empty),
            Err(IdentityError::InvalidKeyFile { path, reason: "InvalidEncoding" }) if path == empty
        ));
        let p256 = temp_path("p256.key");
        std::fs::write(&p256, hex::decode(P256_PKCS8).unwrap()).unwrap();
        let err = Identity::load(&p256).unwrap_err();
        assert!(
            matches!(&err, IdentityError::InvalidKeyFile { path, reason: "WrongAlgorithm" } if *path == p256),
            "{err:?}"
        );
        assert!(err.to_string().contains("p256.key"), "{err}");
        let v1 = temp_path("v1.key");
        std::fs::write(&v1, hex::decode(ED25519_V1_PKCS8).unwrap()).unwrap();
        assert!(matches!(
            Identity::load(&v1),
            Err(IdentityError::InvalidKeyFile { path, reason: "VersionNotSupported" }) if path == v1
        ));
        let big = temp_path("big.key");
        std::fs::write(&big, vec![0u8; 5000]).unwrap();
        assert!(matches!(
            Identity::load(&big),
            Err(IdentityError::KeyFileTooLarge {
                path,
                len: 1025,
                max: 1024,
            }) if path == big
        ));
        // Exactly at the limit the file is read and judged by its content.
        let at_limit = temp_path("at-limit.key");
        std::fs::write(&at_limit, vec![0u8; 1024]).unwrap();
        assert!(matches!(
            Identity::load(&at_limit),
            Err(IdentityError::InvalidKeyFile { path, reason: "InvalidEncoding" }) if path == at_limit
        ));
        std::fs::remove_file(&at_limit).unwrap();
        let truncated = temp_path("truncated.key");
        let id = Identity::generate_with(&mut SeededRandom::new(6)).unwrap();
        std::fs::write(&truncated, &id.to_pkcs8()[..40]).unwrap();
        assert!(matches!(
            Identity::load(&truncated),
            Err(IdentityError::InvalidKeyFile { path, reason: "InvalidEncoding" }) if path == truncated
        ));
        for p in [empty, p256, v1, big, truncated] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let id = Identity::from_seed(&seed(RFC8032_SEED)).unwrap();
        let text = format!("{id:?} {id:#?}");
        assert!(!text.contains(RFC8032_SEED), "{text}");
        assert!(!text.contains(&RFC8032_SEED[..16]), "{text}");
        assert!(text.contains(RFC8032_IDENTIFIER), "{text}");
    }

    #[test]
    fn verify_rejects_wrong_message_key_and_signature() {
        let a = Identity::generate_with(&mut SeededRandom::new(10)).unwrap();
        let b = Identity::generate_with(&mut SeededRandom::new(11)).unwrap();
        let sig = a.sign(b"hello");
        let pa = a.public_identity();
        pa.verify(b"hello", &sig).unwrap();
        assert!(matches!(
            pa.verify(b"hellO", &sig),
            Err(IdentityError::BadSignature { identifier }) if identifier == a.identifier()
        ));
        // Each refusal names the key that did not verify.
        let refused_by = |key: PublicIdentity, message: &[u8], signature: &[u8]| match key
            .verify(message, signature)
        {
            Err(IdentityError::BadSignature { identifier }) => {
                assert_eq!(identifier, key.identifier());
            }
            other => panic!("expected BadSignature, got {other:?}"),
        };
        refused_by(b.public_identity(), b"hello", &sig);
        refused_by(pa, b"hello", &sig[..63]);
        refused_by(pa, b"hello", &[]);
        let mut bad = sig;
        bad[10] ^= 0x40;
        refused_by(pa, b"hello", &bad);
        // A public key that is not a curve point never verifies and never panics.
        refused_by(PublicIdentity::from_bytes([0xff; 32]), b"hello", &sig);
    }

    #[test]
    fn public_identity_from_slice() {
        let id = Identity::generate_with(&mut SeededRandom::new(12)).unwrap();
        let p = PublicIdentity::from_slice(&id.public_key()).unwrap();
        assert_eq!(p, id.public_identity());
        assert_eq!(p.as_bytes(), &id.public_key());
        assert!(matches!(
            PublicIdentity::from_slice(&[0; 31]),
            Err(IdentityError::WrongLength {
                expected: 32,
                actual: 31
            })
        ));
    }

    #[test]
    fn identifier_text_round_trip() {
        let id: Identifier = RFC8032_IDENTIFIER.parse().unwrap();
        assert_eq!(id.to_string(), RFC8032_IDENTIFIER);
        assert_eq!(hex::encode(id.as_bytes()), &RFC8032_IDENTIFIER[1..]);
        assert_eq!(Identifier::from_bytes(*id.as_bytes()), id);
        assert_eq!(
            format!("{id:?}"),
            format!("Identifier({RFC8032_IDENTIFIER})")
        );
    }

    #[test]
    fn identifier_parsing_is_strict() {
        let good = RFC8032_IDENTIFIER;
        let parse = |s: &str| s.parse::<Identifier>().unwrap_err();
        assert!(matches!(
            parse(""),
            IdentityError::IdentifierPrefix { found: None }
        ));
        assert!(matches!(
            parse(&good.replacen('I', "i", 1)),
            IdentityError::IdentifierPrefix { found: Some('i') }
        ));
        assert!(matches!(
            parse(&good[1..]),
            IdentityError::IdentifierPrefix { found: Some('2') }
        ));
        assert!(matches!(
            parse("I"),
            IdentityError::IdentifierTextLength {
                expected: 65,
                actual: 1
            }
        ));
        assert!(matches!(
            parse(&good[..64]),
            IdentityError::IdentifierTextLength { actual: 64, .. }
        ));
        assert!(matches!(
            parse(&format!("{good}0")),
            IdentityError::IdentifierTextLength { actual: 66, .. }
        ));
        // Whitespace around it is not part of it (a line read from a file); inside
        // it, it is an error.
        assert!(matches!(
            parse(&format!(" {}", &good[1..])),
            IdentityError::IdentifierPrefix { found: Some('2') }
        ));
        let id: Identifier = good.parse().unwrap();
        assert_eq!(format!("{good}\n").parse::<Identifier>().unwrap(), id);
        assert_eq!(format!("  {good}\r\n").parse::<Identifier>().unwrap(), id);
        assert!(format!("{} {}", &good[..30], &good[30..])
            .parse::<Identifier>()
            .is_err());
        let upper = format!("I{}", good[1..].to_uppercase());
        assert!(matches!(
            parse(&upper),
            IdentityError::IdentifierCharacter {
                position: 3,
                found: 'F'
            }
        ));
        let mut nonhex = good.to_string();
        nonhex.replace_range(64..65, "g");
        assert!(matches!(
            parse(&nonhex),
            IdentityError::IdentifierCharacter {
                position: 64,
                found: 'g'
            }
        ));
        // A two-byte character keeps the byte length at 65 but is still refused.
        let mut multibyte = good[..63].to_string();
        multibyte.push('é');
        assert_eq!(multibyte.len(), 65);
        assert!(matches!(
            parse(&multibyte),
            IdentityError::IdentifierCharacter {
                position: 63,
                found: 'é'
            }
        ));
        let err = parse(&upper).to_string();
        assert!(err.contains("lowercase hex"), "{err}");
    }

    #[test]
    fn identifier_serializes_as_a_cbor_byte_string() {
        let id: Identifier = RFC8032_IDENTIFIER.parse().unwrap();
        let mut cbor = Vec::new();
        ciborium::into_writer(&id, &mut cbor).unwrap();
        let mut expected = vec![0x58, 0x20];
        expected.extend_from_slice(id.as_bytes());
        assert_eq!(cbor, expected);
        let back: Identifier = ciborium::from_reader(cbor.as_slice()).unwrap();
        assert_eq!(back, id);
        // 31 and 33 bytes, an array of integers, a text string and an indefinite-length
        // byte string (of 32 bytes in all) are refused, each saying why.
        let refused = |cbor: &[u8], why: &str| match ciborium::from_reader::<Identifier, _>(cbor) {
            Err(ciborium::de::Error::Semantic(_, text)) => {
                assert!(text.starts_with(why), "{cbor:02x?}: {text}");
            }
            other => panic!("{cbor:02x?}: expected a refusal, got {other:?}"),
        };
        let short = [&[0x58u8, 0x1f][..], &[7u8; 31]].concat();
        refused(&short, "invalid length 31, expected a 32-byte identifier");
        let long = [&[0x58u8, 0x21][..], &[7u8; 33]].concat();
        refused(&long, "invalid length 33, expected a 32-byte identifier");
        let mut array = Vec::new();
        ciborium::into_writer(&[7u8; 32].to_vec(), &mut array).unwrap();
        refused(&array, "invalid type: sequence");
        let text = [&[0x78u8, 0x20][..], &[b'a'; 32]].concat();
        refused(&text, "invalid type: string");
        let indefinite = [&[0x5fu8, 0x50][..], &[7; 16], &[0x50], &[7; 16], &[0xff]].concat();
        refused(&indefinite, "invalid type: bytes");
    }

    #[test]
    fn identifier_serializes_as_text_in_json() {
        let id: Identifier = RFC8032_IDENTIFIER.parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{RFC8032_IDENTIFIER}\""));
        assert_eq!(serde_json::from_str::<Identifier>(&json).unwrap(), id);
        let err = serde_json::from_str::<Identifier>("\"Ixyz\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("an identifier is 65 characters long"),
            "{err}"
        );
        // Not text at all: the error says what was expected.
        let err = serde_json::from_str::<Identifier>("5").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an identifier: 'I' and 64 lowercase hex digits"),
            "{err}"
        );
    }

    #[test]
    fn public_identity_serializes_as_a_cbor_byte_string() {
        let p = Identity::from_seed(&seed(RFC8032_SEED))
            .unwrap()
            .public_identity();
        let mut cbor = Vec::new();
        ciborium::into_writer(&p, &mut cbor).unwrap();
        assert_eq!(&cbor[..2], &[0x58, 0x20]);
        assert_eq!(&cbor[2..], p.as_bytes());
        assert_eq!(
            ciborium::from_reader::<PublicIdentity, _>(cbor.as_slice()).unwrap(),
            p
        );
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let e = Identity::from_pkcs8(&hex::decode(X25519_PKCS8).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an Ed25519 PKCS#8 v2 private key (WrongAlgorithm)"
        );
    }
}
