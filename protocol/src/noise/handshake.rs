//! `HandshakeState` for the XX pattern (Noise spec, sections 5.3 and 7.5).
//!
//! ```text
//! XX:
//!   -> e
//!   <- e, ee, s, es
//!   -> s, se
//! ```

use core::fmt;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::symmetric::SymmetricState;
use super::{
    CipherSuite, Hex, NoiseError, TransportState, DH_LEN, HASH_LEN, MAX_MESSAGE_LEN, TAG_LEN,
};
use crate::random::RandomSource;

/// Which side of the handshake this state plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends the first handshake message.
    Initiator,
    /// Receives the first handshake message.
    Responder,
}

/// One token of a message pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    E,
    S,
    Ee,
    Es,
    Se,
}

/// The XX message patterns, in order; even-numbered messages are the initiator's.
const XX: [&[Token]; 3] = [
    &[Token::E],
    &[Token::E, Token::Ee, Token::S, Token::Es],
    &[Token::S, Token::Se],
];

/// The state of one side of a Noise XX handshake.
///
/// Call order: the initiator calls [`write_message`], then [`read_message`], then
/// [`write_message`]; the responder [`read_message`], [`write_message`],
/// [`read_message`]. [`is_my_turn`] says which comes next. Every message carries a
/// payload, which may be empty; the first message's payload is not encrypted, the
/// second's is encrypted but its sender (the responder) is not yet sure of who will
/// read it, and the third's is fully protected. When [`is_finished`], call
/// [`into_transport`].
///
/// Any error poisons the state: every later call returns [`NoiseError::Poisoned`]
/// (and `into_transport` fails), so a handshake cannot be resumed after a forged or
/// malformed message, or after misuse. Size `out` buffers with [`next_message_len`]
/// or [`MAX_MESSAGE_LEN`].
///
/// Private keys (static and ephemeral) and the chaining key are zeroized on drop;
/// `Debug` shows only public values.
///
/// [`write_message`]: HandshakeState::write_message
/// [`read_message`]: HandshakeState::read_message
/// [`is_my_turn`]: HandshakeState::is_my_turn
/// [`is_finished`]: HandshakeState::is_finished
/// [`into_transport`]: HandshakeState::into_transport
/// [`next_message_len`]: HandshakeState::next_message_len
pub struct HandshakeState {
    role: Role,
    suite: CipherSuite,
    symmetric: SymmetricState,
    s: StaticSecret,
    s_pub: [u8; DH_LEN],
    e: StaticSecret,
    e_pub: [u8; DH_LEN],
    re: Option<[u8; DH_LEN]>,
    rs: Option<[u8; DH_LEN]>,
    /// Index of the next message in [`XX`]; 3 when finished.
    next: usize,
    poisoned: bool,
}

impl HandshakeState {
    /// The initiator's state, with an ephemeral key drawn from `rng`.
    ///
    /// `prologue` is mixed into the handshake hash; both peers must give the same bytes
    /// or the handshake fails.
    ///
    /// # Errors
    ///
    /// [`NoiseError::Random`] if `rng` fails.
    pub fn initiator(
        suite: CipherSuite,
        prologue: &[u8],
        local_static_private: [u8; DH_LEN],
        rng: &mut dyn RandomSource,
    ) -> Result<Self, NoiseError> {
        Self::with_random_ephemeral(Role::Initiator, suite, prologue, local_static_private, rng)
    }

    /// The responder's state, with an ephemeral key drawn from `rng`.
    ///
    /// `prologue` is mixed into the handshake hash; both peers must give the same bytes
    /// or the handshake fails.
    ///
    /// # Errors
    ///
    /// [`NoiseError::Random`] if `rng` fails.
    pub fn responder(
        suite: CipherSuite,
        prologue: &[u8],
        local_static_private: [u8; DH_LEN],
        rng: &mut dyn RandomSource,
    ) -> Result<Self, NoiseError> {
        Self::with_random_ephemeral(Role::Responder, suite, prologue, local_static_private, rng)
    }

    /// A state whose ephemeral private key is `ephemeral_private` instead of a random one.
    ///
    /// **For test vectors only.** Reusing an ephemeral key across handshakes destroys
    /// forward secrecy and can reveal keys; real handshakes use [`initiator`] or
    /// [`responder`]. Only with the `test-hooks` feature, which production builds
    /// never enable.
    ///
    /// [`initiator`]: HandshakeState::initiator
    /// [`responder`]: HandshakeState::responder
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn with_fixed_ephemeral(
        role: Role,
        suite: CipherSuite,
        prologue: &[u8],
        local_static_private: [u8; DH_LEN],
        ephemeral_private: [u8; DH_LEN],
    ) -> Self {
        Self::with_ephemeral(
            role,
            suite,
            prologue,
            local_static_private,
            ephemeral_private,
        )
    }

    /// The state of `role` with the given static and ephemeral private keys: what
    /// every constructor comes to.
    pub(crate) fn with_ephemeral(
        role: Role,
        suite: CipherSuite,
        prologue: &[u8],
        local_static_private: [u8; DH_LEN],
        ephemeral_private: [u8; DH_LEN],
    ) -> Self {
        let s = StaticSecret::from(local_static_private);
        let e = StaticSecret::from(ephemeral_private);
        let mut symmetric = SymmetricState::initialize(suite);
        symmetric.mix_hash(prologue);
        Self {
            role,
            suite,
            symmetric,
            s_pub: PublicKey::from(&s).to_bytes(),
            s,
            e_pub: PublicKey::from(&e).to_bytes(),
            e,
            re: None,
            rs: None,
            next: 0,
            poisoned: false,
        }
    }

    fn with_random_ephemeral(
        role: Role,
        suite: CipherSuite,
        prologue: &[u8],
        local_static_private: [u8; DH_LEN],
        rng: &mut dyn RandomSource,
    ) -> Result<Self, NoiseError> {
        let local_static_private = Zeroizing::new(local_static_private);
        let mut ephemeral = Zeroizing::new([0u8; DH_LEN]);
        rng.fill(ephemeral.as_mut())?;
        Ok(Self::with_ephemeral(
            role,
            suite,
            prologue,
            *local_static_private,
            *ephemeral,
        ))
    }

    // ----- getters -----

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The suite this handshake uses.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// This side's static public key, which the handshake sends to the peer.
    pub fn local_static_public(&self) -> [u8; DH_LEN] {
        self.s_pub
    }

    /// The peer's static public key, once its handshake message carrying it has been
    /// read and authenticated (message 2 for the initiator, message 3 for the responder).
    ///
    /// The handshake authenticates that the peer holds the matching private key, not who
    /// the peer is: deciding whether to trust this key is the caller's job. `None` once
    /// the state is poisoned, since a failed handshake vouches for nothing.
    pub fn remote_static(&self) -> Option<[u8; DH_LEN]> {
        if self.poisoned {
            return None;
        }
        self.rs
    }

    /// The handshake hash `h` so far. Once [`is_finished`](Self::is_finished), both
    /// peers hold the same value, unique to this handshake: use it for channel binding
    /// (for example, sign it with a long-term identity key).
    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.symmetric.handshake_hash()
    }

    /// Whether the next call should be [`write_message`](Self::write_message). False
    /// when finished or poisoned.
    pub fn is_my_turn(&self) -> bool {
        !self.poisoned && self.next < XX.len() && self.writes(self.next)
    }

    /// Whether all three messages have been processed without error.
    pub fn is_finished(&self) -> bool {
        !self.poisoned && self.next == XX.len()
    }

    /// Whether an earlier error has made this state unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// How many handshake messages have been written or read so far.
    pub fn messages_processed(&self) -> usize {
        self.next
    }

    /// The length of the message [`write_message`](Self::write_message) would write for a
    /// payload of `payload_len` bytes, or `None` if it is not this side's turn to write.
    /// The length may exceed [`MAX_MESSAGE_LEN`], in which case writing fails.
    pub fn next_message_len(&self, payload_len: usize) -> Option<usize> {
        if !self.is_my_turn() {
            return None;
        }
        let tokens = XX.get(self.next)?;
        Some(self.message_len(tokens, payload_len))
    }

    // ----- handshake steps -----

    /// Writes the next handshake message, carrying `payload`, into `out` and returns its
    /// length.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::Poisoned`] after an earlier error;
    /// - [`NoiseError::HandshakeFinished`] after the third message;
    /// - [`NoiseError::WriteOutOfTurn`] when the peer is to send next;
    /// - [`NoiseError::MessageTooLarge`] if the message would exceed 65535 bytes;
    /// - [`NoiseError::BufferTooSmall`] if `out` cannot hold it.
    ///
    /// Every error poisons the state.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        self.check_usable()?;
        let result = if self.writes(self.next) {
            self.write_tokens(payload, out)
        } else {
            Err(NoiseError::WriteOutOfTurn)
        };
        self.finish_step(result, "wrote")
    }

    /// Reads the next handshake message from `message`, writes its payload to
    /// `payload_out` and returns the payload's length.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::Poisoned`] after an earlier error;
    /// - [`NoiseError::HandshakeFinished`] after the third message;
    /// - [`NoiseError::ReadOutOfTurn`] when this side is to send next;
    /// - [`NoiseError::MessageTooLarge`] or [`NoiseError::MessageTooShort`] for a
    ///   message of impossible length;
    /// - [`NoiseError::BufferTooSmall`] if `payload_out` cannot hold the payload;
    /// - [`NoiseError::DecryptFailed`] if the message was altered or the peers differ in
    ///   prologue, suite or keys;
    /// - [`NoiseError::LowOrderPoint`] if the peer's public key is a low-order point.
    ///
    /// Every error poisons the state.
    pub fn read_message(
        &mut self,
        message: &[u8],
        payload_out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        self.check_usable()?;
        let result = if self.writes(self.next) {
            Err(NoiseError::ReadOutOfTurn)
        } else {
            self.read_tokens(message, payload_out)
        };
        self.finish_step(result, "read")
    }

    /// Ends the handshake: `Split()` into the transport state.
    ///
    /// # Errors
    ///
    /// - [`NoiseError::Poisoned`] after an earlier error;
    /// - [`NoiseError::HandshakeNotFinished`] before all three messages are processed.
    pub fn into_transport(self) -> Result<TransportState, NoiseError> {
        if self.poisoned {
            return Err(NoiseError::Poisoned);
        }
        let not_finished = NoiseError::HandshakeNotFinished {
            processed: self.next,
        };
        if self.next != XX.len() {
            return Err(not_finished);
        }
        let remote_static = self.rs.ok_or(not_finished)?;
        let (initiator_to_responder, responder_to_initiator) = self.symmetric.split();
        let (send, recv) = match self.role {
            Role::Initiator => (initiator_to_responder, responder_to_initiator),
            Role::Responder => (responder_to_initiator, initiator_to_responder),
        };
        tracing::debug!(role = ?self.role, suite = %self.suite, "Noise handshake finished");
        Ok(TransportState::new(
            self.role,
            send,
            recv,
            self.symmetric.handshake_hash(),
            remote_static,
        ))
    }

    // ----- internals -----

    /// Whether this side writes message `index`.
    fn writes(&self, index: usize) -> bool {
        (index % 2 == 0) == (self.role == Role::Initiator)
    }

    fn check_usable(&mut self) -> Result<(), NoiseError> {
        if self.poisoned {
            return Err(NoiseError::Poisoned);
        }
        if self.next >= XX.len() {
            self.poison();
            return Err(NoiseError::HandshakeFinished);
        }
        Ok(())
    }

    fn finish_step(
        &mut self,
        result: Result<usize, NoiseError>,
        verb: &'static str,
    ) -> Result<usize, NoiseError> {
        match &result {
            Ok(len) => {
                tracing::trace!(role = ?self.role, message = self.next, len, "{verb} Noise handshake message");
                self.next += 1;
            }
            Err(error) => {
                tracing::debug!(role = ?self.role, message = self.next, %error, "Noise handshake failed");
                self.poison();
            }
        }
        result
    }

    fn poison(&mut self) {
        self.poisoned = true;
        // Nothing more may be derived from this handshake: replace the ephemeral key so
        // it does not outlive the failure.
        self.e = StaticSecret::from([0u8; DH_LEN]);
    }

    fn current_tokens(&self) -> Result<&'static [Token], NoiseError> {
        XX.get(self.next)
            .copied()
            .ok_or(NoiseError::HandshakeFinished)
    }

    /// Length of a message made of `tokens` and a `payload_len`-byte payload, given
    /// whether a key is set when it starts.
    fn message_len(&self, tokens: &[Token], payload_len: usize) -> usize {
        let mut keyed = self.symmetric.encrypted_len(0) > 0;
        let mut len = 0usize;
        for token in tokens {
            match token {
                Token::E => len += DH_LEN,
                Token::S => len += DH_LEN + if keyed { TAG_LEN } else { 0 },
                Token::Ee | Token::Es | Token::Se => keyed = true,
            }
        }
        len.saturating_add(payload_len)
            .saturating_add(if keyed { TAG_LEN } else { 0 })
    }

    fn write_tokens(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        let tokens = self.current_tokens()?;
        let len = self.message_len(tokens, payload.len());
        if len > MAX_MESSAGE_LEN {
            return Err(NoiseError::MessageTooLarge {
                len,
                max: MAX_MESSAGE_LEN,
            });
        }
        let available = out.len();
        let mut rest = out.get_mut(..len).ok_or(NoiseError::BufferTooSmall {
            needed: len,
            available,
        })?;
        for token in tokens {
            match token {
                Token::E => {
                    let (field, tail) = split_mut(core::mem::take(&mut rest), DH_LEN)?;
                    field.copy_from_slice(&self.e_pub);
                    self.symmetric.mix_hash(&self.e_pub);
                    rest = tail;
                }
                Token::S => {
                    let written = self.symmetric.encrypt_and_hash(&self.s_pub, rest)?;
                    rest = core::mem::take(&mut rest).get_mut(written..).ok_or(
                        NoiseError::BufferTooSmall {
                            needed: len,
                            available,
                        },
                    )?;
                }
                dh => self.mix_dh(*dh)?,
            }
        }
        self.symmetric.encrypt_and_hash(payload, rest)?;
        Ok(len)
    }

    fn read_tokens(&mut self, message: &[u8], payload_out: &mut [u8]) -> Result<usize, NoiseError> {
        let tokens = self.current_tokens()?;
        if message.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::MessageTooLarge {
                len: message.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let min = self.message_len(tokens, 0);
        if message.len() < min {
            return Err(NoiseError::MessageTooShort {
                len: message.len(),
                min,
            });
        }
        let mut rest = message;
        for token in tokens {
            match token {
                Token::E => {
                    let (field, tail) = split(rest, DH_LEN)?;
                    let mut re = [0u8; DH_LEN];
                    re.copy_from_slice(field);
                    self.symmetric.mix_hash(&re);
                    self.re = Some(re);
                    rest = tail;
                }
                Token::S => {
                    let (field, tail) = split(rest, self.symmetric.encrypted_len(DH_LEN))?;
                    let mut rs = [0u8; DH_LEN];
                    self.symmetric.decrypt_and_hash(field, &mut rs)?;
                    self.rs = Some(rs);
                    rest = tail;
                }
                dh => self.mix_dh(*dh)?,
            }
        }
        self.symmetric.decrypt_and_hash(rest, payload_out)
    }

    /// Performs the DH of token `token` for this side's role and mixes it into the key.
    fn mix_dh(&mut self, token: Token) -> Result<(), NoiseError> {
        let initiator = self.role == Role::Initiator;
        let (local, remote) = match token {
            Token::Ee => (&self.e, self.re),
            Token::Es if initiator => (&self.e, self.rs),
            Token::Es => (&self.s, self.re),
            Token::Se if initiator => (&self.s, self.re),
            Token::Se => (&self.e, self.rs),
            // Not DH tokens; the callers handle them.
            Token::E | Token::S => return Ok(()),
        };
        // The pattern guarantees the remote key is known by now.
        let remote = remote.ok_or(NoiseError::ReadOutOfTurn)?;
        let shared = local.diffie_hellman(&PublicKey::from(remote));
        if !shared.was_contributory() {
            return Err(NoiseError::LowOrderPoint);
        }
        self.symmetric.mix_key(shared.as_bytes());
        Ok(())
    }
}

impl fmt::Debug for HandshakeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeState")
            .field("role", &self.role)
            .field("suite", &self.suite)
            .field("messages_processed", &self.next)
            .field("poisoned", &self.poisoned)
            .field("local_static_public", &Hex(&self.s_pub))
            .field("remote_static", &self.rs.as_ref().map(|k| Hex(k)))
            .finish_non_exhaustive()
    }
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), NoiseError> {
    if bytes.len() < at {
        return Err(NoiseError::MessageTooShort {
            len: bytes.len(),
            min: at,
        });
    }
    Ok(bytes.split_at(at))
}

fn split_mut(bytes: &mut [u8], at: usize) -> Result<(&mut [u8], &mut [u8]), NoiseError> {
    if bytes.len() < at {
        return Err(NoiseError::BufferTooSmall {
            needed: at,
            available: bytes.len(),
        });
    }
    Ok(bytes.split_at_mut(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    fn pair(suite: CipherSuite, seed: u64) -> (HandshakeState, HandshakeState) {
        let mut rng = SeededRandom::new(seed);
        let mut key = || {
            let mut k = [0u8; 32];
            rng.fill(&mut k).unwrap();
            k
        };
        let (a, b, ea, eb) = (key(), key(), key(), key());
        (
            HandshakeState::with_fixed_ephemeral(Role::Initiator, suite, b"p", a, ea),
            HandshakeState::with_fixed_ephemeral(Role::Responder, suite, b"p", b, eb),
        )
    }

    #[test]
    fn message_lengths_follow_the_pattern() {
        for suite in CipherSuite::ALL {
            let (mut i, mut r) = pair(suite, 1);
            let mut buf = [0u8; 256];
            let mut payload = [0u8; 256];
            assert_eq!(i.next_message_len(5), Some(32 + 5));
            assert_eq!(r.next_message_len(5), None);
            let n = i.write_message(b"hello", &mut buf).unwrap();
            assert_eq!(n, 37);
            r.read_message(&buf[..n], &mut payload).unwrap();
            assert_eq!(r.next_message_len(5), Some(32 + 48 + 5 + 16));
            let n = r.write_message(b"hello", &mut buf).unwrap();
            assert_eq!(n, 32 + 48 + 5 + 16);
            i.read_message(&buf[..n], &mut payload).unwrap();
            assert_eq!(i.next_message_len(0), Some(48 + 16));
            let n = i.write_message(b"", &mut buf).unwrap();
            assert_eq!(n, 64);
            assert_eq!(r.read_message(&buf[..n], &mut payload).unwrap(), 0);
            assert!(i.is_finished() && r.is_finished());
            assert_eq!(i.handshake_hash(), r.handshake_hash());
        }
    }

    #[test]
    fn turns_counts_and_the_suite_are_reported_as_the_handshake_goes() {
        for suite in CipherSuite::ALL {
            let (mut i, mut r) = pair(suite, 3);
            assert_eq!((i.suite(), r.suite()), (suite, suite));
            assert_eq!(
                crate::noise::CipherState::new(suite, [1; 32]).suite(),
                suite
            );
            let mut buf = [0u8; 256];
            let mut payload = [0u8; 256];
            for step in 0..3 {
                let (writer, reader) = if step % 2 == 0 {
                    (&mut i, &mut r)
                } else {
                    (&mut r, &mut i)
                };
                assert!(writer.is_my_turn() && !reader.is_my_turn(), "step {step}");
                assert_eq!(writer.messages_processed(), step);
                let n = writer.write_message(b"", &mut buf).unwrap();
                reader.read_message(&buf[..n], &mut payload).unwrap();
                assert_eq!(reader.messages_processed(), step + 1);
            }
            // Finished: nobody's turn, nothing poisoned.
            assert!(!i.is_my_turn() && !r.is_my_turn());
            assert!(!i.is_poisoned() && !r.is_poisoned());
            let (mut ti, mut tr) = (i.into_transport().unwrap(), r.into_transport().unwrap());
            assert_eq!(tr.receiving_nonce(), 0);
            for n in 0..3 {
                let len = ti.write_message(b"x", &mut buf).unwrap();
                tr.read_message(&buf[..len], &mut payload).unwrap();
                assert_eq!(tr.receiving_nonce(), n + 1);
            }
        }
    }

    #[test]
    fn an_error_poisons_the_state_and_says_so() {
        let (mut i, mut r) = pair(CipherSuite::ChaCha20Poly1305Sha256, 4);
        let mut buf = [0u8; 256];
        let mut payload = [0u8; 256];
        let n = i.write_message(b"", &mut buf).unwrap();
        r.read_message(&buf[..n], &mut payload).unwrap();
        let n = r.write_message(b"", &mut buf).unwrap();
        buf[n - 1] ^= 1;
        assert!(!i.is_poisoned());
        assert!(i.read_message(&buf[..n], &mut payload).is_err());
        assert!(i.is_poisoned() && !i.is_my_turn());
        assert_eq!(
            i.messages_processed(),
            1,
            "the refused message is not counted"
        );
    }

    #[test]
    fn low_order_ephemeral_is_refused() {
        let (mut i, mut r) = pair(CipherSuite::Aes256GcmSha256, 2);
        let mut buf = [0u8; 256];
        let mut payload = [0u8; 256];
        // The all-zero point has order 1: every DH with it is zero.
        let n = i.write_message(b"", &mut buf).unwrap();
        buf[..32].fill(0);
        r.read_message(&buf[..n], &mut payload).unwrap();
        assert_eq!(
            r.write_message(b"", &mut buf),
            Err(NoiseError::LowOrderPoint)
        );
        assert!(r.is_poisoned());
    }

    #[test]
    fn debug_shows_no_private_keys() {
        let s = [0x11u8; 32];
        let e = [0x22u8; 32];
        let hs = HandshakeState::with_fixed_ephemeral(
            Role::Initiator,
            CipherSuite::Aes256GcmSha256,
            b"",
            s,
            e,
        );
        let shown = format!("{hs:?}");
        assert!(!shown.contains("1111"));
        assert!(!shown.contains("2222"));
        assert!(!shown.contains("17, 17"));
        assert!(shown.contains("local_static_public"));
    }
}
