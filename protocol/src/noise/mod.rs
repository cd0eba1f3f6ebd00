//! The Noise XX handshake and the transport encryption it sets up.
//!
//! This module implements the Noise Protocol Framework (revision 34) for one
//! handshake pattern, XX, with two suites:
//!
//! - `Noise_XX_25519_AESGCM_SHA256` ([`CipherSuite::Aes256GcmSha256`], the default),
//! - `Noise_XX_25519_ChaChaPoly_SHA256` ([`CipherSuite::ChaCha20Poly1305Sha256`]).
//!
//! The files mirror the specification's objects: [`CipherState`] (`cipher.rs`),
//! `SymmetricState` (`symmetric.rs`, internal), [`HandshakeState`] (`handshake.rs`) and
//! [`TransportState`] (`transport.rs`, the pair of cipher states after `Split()`).
//!
//! Everything is sans-IO: messages are written into and read from caller-owned
//! buffers, and randomness comes from an injected [`RandomSource`].
//!
//! # Rules this module enforces
//!
//! - Every Noise message, handshake or transport, is at most [`MAX_MESSAGE_LEN`]
//!   (65535) bytes; a payload that would exceed it is refused before anything is written.
//! - Nonce 2^64-1 never protects a message: a cipher state that reaches it returns
//!   [`NoiseError::NonceExhausted`], and an explicit nonce of that value returns
//!   [`NoiseError::ReservedNonce`].
//! - A failed decryption leaves the nonce where it was.
//! - Rekey replaces the key with the first 32 bytes of `ENCRYPT(k, 2^64-1, "", 32 zero
//!   bytes)` and does not reset the nonce.
//! - After any error, a [`HandshakeState`] is poisoned and refuses every later call.
//! - Peer X25519 keys that give an all-zero shared secret are refused
//!   ([`NoiseError::LowOrderPoint`]).
//! - Keys, chaining keys and private keys are zeroized on drop, and no `Debug` output
//!   contains them.
//!
//! # Example
//!
//! ```
//! use onward_protocol::noise::{CipherSuite, HandshakeState, StaticKeypair, MAX_MESSAGE_LEN};
//! use onward_protocol::random::SystemRandom;
//!
//! # fn main() -> Result<(), onward_protocol::noise::NoiseError> {
//! let mut rng = SystemRandom::new();
//! let suite = CipherSuite::from_protocol_name("Noise_XX_25519_AESGCM_SHA256")?;
//! let alice = StaticKeypair::generate(&mut rng)?;
//! let bob = StaticKeypair::generate(&mut rng)?;
//!
//! let mut initiator = HandshakeState::initiator(suite, b"my app v1", *alice.private(), &mut rng)?;
//! let mut responder = HandshakeState::responder(suite, b"my app v1", *bob.private(), &mut rng)?;
//!
//! let (mut msg, mut payload) = (vec![0u8; MAX_MESSAGE_LEN], vec![0u8; MAX_MESSAGE_LEN]);
//! // -> e
//! let n = initiator.write_message(b"", &mut msg)?;
//! responder.read_message(&msg[..n], &mut payload)?;
//! // <- e, ee, s, es
//! let n = responder.write_message(b"", &mut msg)?;
//! initiator.read_message(&msg[..n], &mut payload)?;
//! // -> s, se
//! let n = initiator.write_message(b"hello", &mut msg)?;
//! let len = responder.read_message(&msg[..n], &mut payload)?;
//! assert_eq!(&payload[..len], b"hello");
//!
//! assert_eq!(initiator.remote_static(), Some(bob.public()));
//! assert_eq!(responder.remote_static(), Some(alice.public()));
//! assert_eq!(initiator.handshake_hash(), responder.handshake_hash());
//!
//! let mut a = initiator.into_transport()?;
//! let mut b = responder.into_transport()?;
//! let n = a.write_message(b"over the channel", &mut msg)?;
//! let len = b.read_message(&msg[..n], &mut payload)?;
//! assert_eq!(&payload[..len], b"over the channel");
//! # Ok(())
//! # }
//! ```

mod cipher;
mod error;
mod handshake;
mod symmetric;
mod transport;

use core::fmt;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

pub use cipher::CipherState;
pub use error::NoiseError;
pub use handshake::{HandshakeState, Role};
pub use transport::TransportState;

use crate::random::RandomSource;

/// The largest Noise message, handshake or transport, in bytes.
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Length of an AEAD authentication tag in bytes.
pub const TAG_LEN: usize = 16;

/// Length of an X25519 public key, private key or shared secret in bytes.
pub const DH_LEN: usize = 32;

/// Length of a SHA-256 output, and so of the handshake hash, in bytes.
pub const HASH_LEN: usize = 32;

/// Length of a cipher key in bytes.
pub const KEY_LEN: usize = 32;

/// The Noise protocols this crate speaks: XX with X25519 and SHA-256, and one of two
/// AEAD ciphers, both from `ring`.
///
/// Both peers must choose the same suite; a mismatch makes the handshake fail at the
/// first authenticated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CipherSuite {
    /// `Noise_XX_25519_AESGCM_SHA256`: the default, fastest where AES instructions exist.
    #[default]
    Aes256GcmSha256,
    /// `Noise_XX_25519_ChaChaPoly_SHA256`: for machines without AES instructions.
    ChaCha20Poly1305Sha256,
}

impl CipherSuite {
    /// Every suite, default first.
    pub const ALL: [CipherSuite; 2] = [
        CipherSuite::Aes256GcmSha256,
        CipherSuite::ChaCha20Poly1305Sha256,
    ];

    /// The suite with this exact Noise protocol name.
    ///
    /// # Errors
    ///
    /// [`NoiseError::UnsupportedProtocol`] for any other name.
    pub fn from_protocol_name(name: &str) -> Result<Self, NoiseError> {
        Self::ALL
            .into_iter()
            .find(|suite| suite.protocol_name() == name)
            .ok_or_else(|| NoiseError::UnsupportedProtocol {
                name: name.to_owned(),
            })
    }

    /// The full Noise protocol name, as hashed into the handshake.
    pub fn protocol_name(self) -> &'static str {
        match self {
            CipherSuite::Aes256GcmSha256 => "Noise_XX_25519_AESGCM_SHA256",
            CipherSuite::ChaCha20Poly1305Sha256 => "Noise_XX_25519_ChaChaPoly_SHA256",
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol_name())
    }
}

impl core::str::FromStr for CipherSuite {
    type Err = NoiseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_protocol_name(s)
    }
}

/// The X25519 public key of a private key (the private key is clamped as X25519 requires).
pub fn x25519_public(private: &[u8; DH_LEN]) -> [u8; DH_LEN] {
    let secret = StaticSecret::from(*private);
    PublicKey::from(&secret).to_bytes()
}

/// A long-term X25519 key pair for the `s` role in a handshake.
///
/// The private key is zeroized on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct StaticKeypair {
    private: Zeroizing<[u8; DH_LEN]>,
    public: [u8; DH_LEN],
}

impl StaticKeypair {
    /// A fresh key pair from `rng`.
    ///
    /// # Errors
    ///
    /// [`NoiseError::Random`] if the random source fails.
    pub fn generate(rng: &mut dyn RandomSource) -> Result<Self, NoiseError> {
        let mut private = Zeroizing::new([0u8; DH_LEN]);
        rng.fill(private.as_mut())?;
        Ok(Self::from_private(*private))
    }

    /// The key pair of an existing private key.
    pub fn from_private(private: [u8; DH_LEN]) -> Self {
        let private = Zeroizing::new(private);
        let public = x25519_public(&private);
        Self { private, public }
    }

    /// The public key, to give to peers.
    pub fn public(&self) -> [u8; DH_LEN] {
        self.public
    }

    /// The private key, to pass to [`HandshakeState::initiator`] or
    /// [`HandshakeState::responder`] or to store. Keep it secret.
    pub fn private(&self) -> &[u8; DH_LEN] {
        &self.private
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &Hex(&self.public))
            .finish_non_exhaustive()
    }
}

/// Formats public bytes as lowercase hex in `Debug` output.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn protocol_names_round_trip() {
        for suite in CipherSuite::ALL {
            assert_eq!(
                CipherSuite::from_protocol_name(suite.protocol_name()).unwrap(),
                suite
            );
            assert_eq!(suite.to_string().parse::<CipherSuite>().unwrap(), suite);
        }
        assert!(matches!(
            CipherSuite::from_protocol_name("Noise_XX_25519_AESGCM_BLAKE2s"),
            Err(NoiseError::UnsupportedProtocol { .. })
        ));
        assert_eq!(
            CipherSuite::from_protocol_name(""),
            Err(NoiseError::UnsupportedProtocol {
                name: String::new()
            })
        );
        assert_eq!(CipherSuite::default(), CipherSuite::Aes256GcmSha256);
    }

    #[test]
    fn keypair_debug_hides_private_key() {
        let pair = StaticKeypair::generate(&mut SeededRandom::new(1)).unwrap();
        let shown = format!("{pair:?}");
        let private_hex: String = pair.private().iter().map(|b| format!("{b:02x}")).collect();
        let public_hex: String = pair.public().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&private_hex));
        assert!(shown.contains(&public_hex));
        assert_eq!(pair.public(), x25519_public(pair.private()));
    }

    #[test]
    fn secret_holders_zeroize_on_drop() {
        // Compile-time check that the types we keep secrets in wipe themselves. The
        // x25519-dalek types implement `Zeroize`, and wipe on drop, only with its
        // `zeroize` feature; this fails to build if that feature is ever dropped.
        fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        fn dalek_zeroize_feature_enabled<T: zeroize::Zeroize>() {}
        dalek_zeroize_feature_enabled::<StaticSecret>();
        dalek_zeroize_feature_enabled::<x25519_dalek::SharedSecret>();
        zeroizes_on_drop::<Zeroizing<[u8; 32]>>();
    }

    #[test]
    fn x25519_public_matches_rfc7748() {
        // RFC 7748, section 6.1: Alice's key pair.
        let private: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        let public: [u8; 32] =
            hex::decode("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(x25519_public(&private), public);
    }
}
