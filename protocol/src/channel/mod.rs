//! Secure channels: layer 6 of the core.
//!
//! A [`ChannelEnd`] is one end of an end-to-end encrypted, mutually authenticated
//! channel between two [`Identity`]s, carried over routes that may lose, duplicate or
//! reorder messages. It runs the Noise XX handshake with an identity proof in messages
//! 2 and 3, applies each side's [`TrustPolicy`], and then encrypts and decrypts
//! [`TransportMessage`]s, whose inner routes carry them on to their destination on the
//! far node.
//!
//! # The contract
//!
//! A `ChannelEnd` does no I/O and reads no clock. Feed it with
//! [`handle_record`](ChannelEnd::handle_record) (a record the peer sent),
//! [`handle_send`](ChannelEnd::handle_send) (a message to encrypt),
//! [`handle_timeout`](ChannelEnd::handle_timeout) and
//! [`close`](ChannelEnd::close), each with the current time; after every call,
//! drain [`poll_transmit`](ChannelEnd::poll_transmit) (records to carry to the
//! peer) and [`poll_event`](ChannelEnd::poll_event), and arm a timer for
//! [`poll_timeout`](ChannelEnd::poll_timeout).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use onward_protocol::channel::{ChannelConfig, ChannelEvent, ChannelEnd};
//! use onward_protocol::identity::Identity;
//! use onward_protocol::random::SystemRandom;
//! use onward_protocol::trust::TrustEveryone;
//! use onward_protocol::{route, TransportMessage};
//!
//! let mut rng = SystemRandom::new();
//! let (alice, bob) = (Arc::new(Identity::generate_with(&mut rng)?), Arc::new(Identity::generate_with(&mut rng)?));
//! let now = Instant::now();
//! let config = ChannelConfig::default();
//!
//! let mut initiator = ChannelEnd::initiator(&config, bob.clone(), Arc::new(TrustEveryone), &mut rng, now)?;
//! let hello = initiator.poll_transmit().expect("the hello");
//! let mut responder = ChannelEnd::responder(&config, &alice, Arc::new(TrustEveryone), &mut rng, &hello, now)?;
//! // Carry records across until both are established.
//! while let Some(r) = responder.poll_transmit() { initiator.handle_record(&r, now)?; }
//! while let Some(r) = initiator.poll_transmit() { responder.handle_record(&r, now)?; }
//! while let Some(r) = responder.poll_transmit() { initiator.handle_record(&r, now)?; }
//! assert_eq!(initiator.peer(), Some(&alice.identifier()));
//! assert_eq!(responder.peer(), Some(&bob.identifier()));
//!
//! initiator.handle_send(&TransportMessage::new(route!["echoer"], route!["app"], b"hi".to_vec()), now)?;
//! responder.handle_record(&initiator.poll_transmit().expect("a record"), now)?;
//! let received = std::iter::from_fn(|| responder.poll_event())
//!     .find_map(|e| match e { ChannelEvent::Received(m) => Some(m), _ => None })
//!     .expect("the message");
//! assert_eq!(received.payload, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod busy;
mod config;
pub mod cookie;
mod decryptor;
mod encryptor;
mod error;
mod event;
#[cfg(any(test, feature = "test-hooks"))]
mod hooks;
mod initiator;
mod liveness;
// The replay window is the channel's own business; the `test-hooks` feature makes the
// module public so that the fuzz harness can check it against a model.
#[cfg(feature = "test-hooks")]
pub mod replay;
#[cfg(not(feature = "test-hooks"))]
#[allow(unreachable_pub)] // its items are public only with the feature
pub(crate) mod replay;
mod responder;
mod wire;

#[cfg(test)]
use busy::KEEP_KEYS_AFTER;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::identity::{Identifier, Identity};
use crate::message::TransportMessage;
use crate::noise::TAG_LEN;
use crate::random::RandomSource;
use crate::trust::TrustPolicy;

pub use config::{
    ChannelConfig, DEFAULT_HANDSHAKE_RESEND, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_PROBE_TIMEOUT, MAX_DATA_COUNTER, MAX_GENERATIONS_AHEAD,
    MAX_INNER_MESSAGE_LEN, MAX_RECORD_PLAINTEXT, REKEY_SHIFT,
};
use decryptor::Decryptor;
use encryptor::Encryptor;
pub use error::ChannelError;
pub use event::{ChannelEvent, ChannelRole, CloseReason, HandshakeStage};
use initiator::Initiator;
use liveness::Liveness;
pub use replay::ReplayError;
use responder::Responder;
use wire::{
    KIND_FINISH, PLAIN_CLOSE, PLAIN_CONFIRM, PLAIN_KEEPALIVE, PLAIN_MESSAGE, PROBE,
    TRANSPORT_HEADER_LEN,
};

enum State {
    /// The initiator waits for the response.
    Initiating(Initiator),
    /// The responder waits for the finish.
    Responding(Responder),
    /// The initiator has sent its finish and waits for the responder's verdict.
    Confirming {
        encryptor: Encryptor,
        decryptor: Decryptor,
        peer: Identifier,
    },
    /// Messages flow.
    Established {
        encryptor: Encryptor,
        decryptor: Decryptor,
        peer: Identifier,
    },
    /// Closed or failed.
    Ended,
    /// Only while a transition is under way.
    Taken,
}

/// One end of a secure channel. See the [module documentation](self) for the
/// contract and an example.
pub struct ChannelEnd {
    role: ChannelRole,
    state: State,
    deadline: Option<Instant>,
    handshake_timeout: Duration,
    liveness: Liveness,
    peer: Option<Identifier>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ChannelEvent>,
}

impl fmt::Debug for ChannelEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelEnd")
            .field("role", &self.role)
            .field("state", &self.state_name())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl ChannelEnd {
    // ---- construction -------------------------------------------------------------

    /// Starts a channel as initiator. The hello record is ready in
    /// [`poll_transmit`](Self::poll_transmit), to be sent to the responder's listener.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Random`] if the random source fails.
    pub fn initiator(
        config: &ChannelConfig,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        rng: &mut dyn RandomSource,
        now: Instant,
    ) -> Result<Self, ChannelError> {
        let (initiator, hello) = Initiator::start(config, identity, trust, rng)?;
        tracing::debug!("secure channel initiator started");
        let mut liveness = Liveness::new(config, now);
        liveness.resend_on_timer(hello.clone(), now);
        Ok(Self {
            role: ChannelRole::Initiator,
            state: State::Initiating(initiator),
            deadline: now.checked_add(config.handshake_timeout),
            handshake_timeout: config.handshake_timeout,
            liveness,
            peer: None,
            transmits: VecDeque::from([hello]),
            events: VecDeque::new(),
        })
    }

    /// Starts a channel as responder to a hello record that arrived at a listener. The
    /// response is ready in [`poll_transmit`](Self::poll_transmit), to be sent back
    /// along the hello's return route.
    ///
    /// # Errors
    ///
    /// The hello is malformed, asks for a suite not in
    /// [`ChannelConfig::accepted_suites`], or is not a valid Noise message; or the
    /// random source fails. No channel exists then and nothing is to be sent.
    pub fn responder(
        config: &ChannelConfig,
        identity: &Identity,
        trust: Arc<dyn TrustPolicy>,
        rng: &mut dyn RandomSource,
        hello: &[u8],
        now: Instant,
    ) -> Result<Self, ChannelError> {
        // A cookie, if the hello carries one, is the listener's to check.
        let hello = cookie::split_hello(hello).map_or(hello, |(hello, _)| hello);
        let (responder, response) = Responder::start(config, identity, trust, rng, hello)?;
        tracing::debug!("secure channel responder started");
        let mut liveness = Liveness::new(config, now);
        liveness.resend_on_duplicate(response.clone());
        Ok(Self {
            role: ChannelRole::Responder,
            state: State::Responding(responder),
            deadline: now.checked_add(config.handshake_timeout),
            handshake_timeout: config.handshake_timeout,
            liveness,
            peer: None,
            transmits: VecDeque::from([response]),
            events: VecDeque::new(),
        })
    }

    // ---- getters --------------------------------------------------------------------

    /// Which end this is.
    pub fn role(&self) -> ChannelRole {
        self.role
    }

    /// The peer's verified identifier, once the channel is established.
    pub fn peer(&self) -> Option<&Identifier> {
        match self.state {
            State::Established { .. } => self.peer.as_ref(),
            _ => None,
        }
    }

    /// Whether application messages can be sent.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// Whether the channel has closed or failed.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended | State::Taken)
    }

    /// Whether a record is a hello, the only record a listener accepts.
    pub fn is_hello(record: &[u8]) -> bool {
        wire::kind(record) == Some(wire::KIND_HELLO)
    }

    /// Whether a record is a listener's cookie reply. It authenticates nothing: an
    /// initiator that takes one sends its hello again with the cookie, and learns
    /// nothing else from it (in particular, not where the responder's end is).
    pub fn is_cookie_reply(record: &[u8]) -> bool {
        wire::kind(record) == Some(wire::KIND_COOKIE)
    }

    // ---- inputs ---------------------------------------------------------------------

    /// Takes a record the peer sent.
    ///
    /// # Errors
    ///
    /// Why the record was rejected. A rejected transport record changes nothing; a
    /// rejected handshake record ends the channel ([`ChannelError::is_fatal`]). Each
    /// error is reported once: here, not also as a [`ChannelEvent::Failed`].
    pub fn handle_record(&mut self, record: &[u8], now: Instant) -> Result<(), ChannelError> {
        self.handle_record_in_place(&mut record.to_vec(), now)
    }

    /// As [`handle_record`](Self::handle_record), decrypting a transport record where
    /// it lies instead of in a copy: for a caller that owns the record's bytes and no
    /// longer needs them. `record` is overwritten with the plaintext (or, after a
    /// failed authentication, with bytes that are not plaintext).
    ///
    /// # Errors
    ///
    /// As [`handle_record`](Self::handle_record).
    pub fn handle_record_in_place(
        &mut self,
        record: &mut [u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        if self.is_established() && wire::kind(record) == Some(KIND_FINISH) {
            return self.answer_duplicate_finish(record, now);
        }
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Initiating(mut initiator) if Self::is_cookie_reply(record) => {
                let result = initiator.handle_cookie(record);
                self.state = State::Initiating(initiator);
                let hello = result?;
                tracing::debug!("cookie reply taken: hello sent again with the cookie");
                self.liveness.resend_on_timer(hello.clone(), now);
                self.transmits.push_back(hello);
                Ok(())
            }
            State::Initiating(initiator) => self.handle_response(initiator, record, now),
            State::Responding(responder) => self.handle_finish(responder, record, now),
            State::Confirming {
                encryptor,
                decryptor,
                peer,
            } => self.handle_verdict(encryptor, decryptor, peer, record, now),
            State::Established {
                encryptor,
                decryptor,
                peer,
            } => self.handle_transport(encryptor, decryptor, peer, record, now),
            State::Ended | State::Taken => {
                self.state = State::Ended;
                Err(ChannelError::Closed)
            }
        }
    }

    /// The initiator's response record (message 2): on success the finish (message 3)
    /// is queued and the initiator waits for the responder's verdict.
    fn handle_response(
        &mut self,
        initiator: Initiator,
        record: &mut [u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        match initiator.handle_response(record) {
            Ok(finished) => {
                self.liveness.resend_on_timer(finished.finish.clone(), now);
                self.transmits.push_back(finished.finish);
                self.state = State::Confirming {
                    encryptor: finished.encryptor,
                    decryptor: finished.decryptor,
                    peer: finished.peer,
                };
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    /// The responder's finish record (message 3): the responder judges the initiator
    /// and answers with an authenticated confirm, or a close saying it was refused.
    fn handle_finish(
        &mut self,
        responder: Responder,
        record: &mut [u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        // Kept to recognise a duplicate (the initiator sends it again until it hears
        // the confirm).
        let taken: Box<[u8]> = record.into();
        let finished = match responder.handle_finish(record) {
            Ok(finished) => finished,
            Err(e) => return self.fail(e),
        };
        let mut encryptor = finished.encryptor;
        match finished.verdict {
            Ok(peer) => match encryptor.seal(&[PLAIN_CONFIRM], false) {
                Ok(confirm) => {
                    self.transmits.push_back(confirm);
                    self.establish(encryptor, finished.decryptor, peer, now);
                    self.liveness.finish = Some((taken, liveness::MAX_DUPLICATE_ANSWERS));
                    Ok(())
                }
                // Counter 0 cannot be exhausted, but a failure must still end the
                // channel rather than leave it half-made.
                Err(e) => self.fail(e),
            },
            Err(e) => {
                // Tell the initiator, authenticated, that it was refused.
                if let Ok(close) =
                    encryptor.seal(&[PLAIN_CLOSE, CloseReason::Refused.code()], false)
                {
                    self.transmits.push_back(close);
                }
                self.fail(e)
            }
        }
    }

    /// A record while the initiator waits for the verdict: a close refusing it ends the
    /// channel; any other authenticated record means the responder accepted it.
    fn handle_verdict(
        &mut self,
        encryptor: Encryptor,
        mut decryptor: Decryptor,
        peer: Identifier,
        record: &mut [u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        match decryptor.open_in_place(record) {
            Ok((counter, plaintext)) => {
                // Exactly a close with its reason; any other body falls through and is
                // judged as a plaintext once established (a bad one is dropped).
                if let [PLAIN_CLOSE, code] = plaintext {
                    let reason = CloseReason::from_code(*code);
                    return if reason == CloseReason::Refused {
                        self.fail(ChannelError::RefusedByPeer)
                    } else {
                        self.end(ChannelEvent::Closed {
                            reason,
                            by_peer: true,
                        });
                        Ok(())
                    };
                }
                self.establish(encryptor, decryptor, peer, now);
                self.deliver(counter, plaintext, now)
            }
            Err(e) => {
                // A forged or replayed record changes nothing.
                self.state = State::Confirming {
                    encryptor,
                    decryptor,
                    peer,
                };
                Err(e)
            }
        }
    }

    /// A transport record on an established channel.
    fn handle_transport(
        &mut self,
        encryptor: Encryptor,
        mut decryptor: Decryptor,
        peer: Identifier,
        record: &mut [u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        let opened = decryptor.open_in_place(record);
        match opened {
            // Data, not a confirm or close: counted towards keeping the key expanded.
            Ok((_, [PLAIN_MESSAGE, ..])) => {
                let _ = decryptor.carries_data();
            }
            // The peer sent nothing for a keepalive interval (or answers a probe): its
            // direction is quiet, and need not keep its key expanded.
            Ok((_, [PLAIN_KEEPALIVE, ..])) => decryptor.quiet(),
            _ => {}
        }
        self.state = State::Established {
            encryptor,
            decryptor,
            peer,
        };
        let (counter, plaintext) = opened?;
        self.liveness.heard(now);
        // The initiator is established: no duplicate finish is to be answered now.
        self.liveness.finish = None;
        self.deliver(counter, plaintext, now)
    }

    /// Encrypts a message for the peer; the record is then in
    /// [`poll_transmit`](Self::poll_transmit). The message's onward route is where it
    /// goes on the far node.
    ///
    /// # Errors
    ///
    /// - [`ChannelError::NotEstablished`] before the channel is established;
    /// - [`ChannelError::Closed`] after it ended;
    /// - [`ChannelError::Message`] or [`ChannelError::PlaintextTooLarge`] if the message
    ///   does not fit in a record (nothing is sent; the channel goes on);
    /// - [`ChannelError::CounterExhausted`] if the channel has used every counter: it
    ///   then closes, sending a close record.
    pub fn handle_send(
        &mut self,
        message: &TransportMessage,
        now: Instant,
    ) -> Result<(), ChannelError> {
        let mut record = Vec::with_capacity(Self::record_len(message));
        self.handle_send_into(message, &mut record, now)?;
        tracing::trace!(len = record.len(), "record sealed");
        self.transmits.push_back(record);
        Ok(())
    }

    /// The length of the record that carries `message`.
    pub(crate) fn record_len(message: &TransportMessage) -> usize {
        TRANSPORT_HEADER_LEN + 1 + message.encoded_len() + TAG_LEN
    }

    /// Whether `message` fits in one record.
    pub(crate) fn fits_in_one_record(message: &TransportMessage) -> bool {
        message.encoded_len() < MAX_RECORD_PLAINTEXT
    }

    /// As [`handle_send`](Self::handle_send), but appends the record to `out` instead
    /// of queueing it for [`poll_transmit`](Self::poll_transmit): the inner message is
    /// encoded straight into `out` and encrypted there, so a caller that has already
    /// written what goes before the record (a frame's length prefix, a message head)
    /// gets the whole frame in one buffer, with no copy. It appends the record's 9-byte
    /// header, a type byte, the encoded message
    /// ([`encoded_len`](TransportMessage::encoded_len) bytes) and a
    /// [`TAG_LEN`]-byte tag.
    ///
    /// # Errors
    ///
    /// As [`handle_send`](Self::handle_send); `out` is then as it was. A close record
    /// (after [`ChannelError::CounterExhausted`]) goes to
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn handle_send_into(
        &mut self,
        message: &TransportMessage,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), ChannelError> {
        let State::Established { encryptor, .. } = &mut self.state else {
            return Err(if self.is_ended() {
                ChannelError::Closed
            } else {
                ChannelError::NotEstablished
            });
        };
        let inner_len = message.encoded_len();
        if 1 + inner_len > MAX_RECORD_PLAINTEXT {
            message.check_limits()?;
            return Err(ChannelError::PlaintextTooLarge {
                len: inner_len,
                max: MAX_INNER_MESSAGE_LEN,
            });
        }
        // Counted towards keeping the key expanded (see `KEEP_KEYS_AFTER`).
        encryptor.carries_data()?;
        let start = out.len();
        out.reserve(TRANSPORT_HEADER_LEN + 1 + inner_len + TAG_LEN);
        out.resize(start + TRANSPORT_HEADER_LEN, 0);
        out.push(PLAIN_MESSAGE);
        let sealed = match message.encode(out) {
            Ok(()) => encryptor.seal_in(out, start, false),
            Err(e) => Err(e.into()),
        };
        match sealed {
            Ok(()) => {
                self.liveness.sent(now);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                if e != ChannelError::CounterExhausted {
                    return Err(e);
                }
                if let Ok(close) =
                    encryptor.seal(&[PLAIN_CLOSE, CloseReason::CounterExhausted.code()], true)
                {
                    self.transmits.push_back(close);
                }
                self.fail(ChannelError::CounterExhausted)
            }
        }
    }

    /// Closes the channel. Once established (or while confirming) an authenticated
    /// close record is queued for the peer; a channel still in its handshake just ends.
    pub fn close(&mut self, now: Instant) {
        self.liveness.sent(now);
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Established { mut encryptor, .. } | State::Confirming { mut encryptor, .. } => {
                if let Ok(close) = encryptor.seal(&[PLAIN_CLOSE, CloseReason::Normal.code()], true)
                {
                    self.transmits.push_back(close);
                }
                self.end(ChannelEvent::Closed {
                    reason: CloseReason::Normal,
                    by_peer: false,
                });
            }
            State::Initiating(_) | State::Responding(_) => self.end(ChannelEvent::Closed {
                reason: CloseReason::Normal,
                by_peer: false,
            }),
            State::Ended | State::Taken => {}
        }
    }

    // ---- outputs --------------------------------------------------------------------

    /// The next record to carry to the peer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let next = self.transmits.pop_front();
        if next.is_none() {
            // An idle channel keeps no queue storage: thousands of them add up.
            self.transmits = VecDeque::new();
        }
        next
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ChannelEvent> {
        let next = self.events.pop_front();
        // An idle channel keeps no queue storage: thousands of them add up. A busy one
        // (its peer's direction, as for keeping keys: `KEEP_KEYS_AFTER`) keeps room
        // for one event, so that each message does not allocate it again.
        let busy = match &self.state {
            State::Established { decryptor, .. } => decryptor.is_busy(),
            _ => false,
        };
        if next.is_none() && !(busy && self.events.capacity() <= 1) {
            self.events = VecDeque::new();
        }
        next
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if at all.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Initiating(_) | State::Responding(_) | State::Confirming { .. } => {
                [self.deadline, self.liveness.next_resend()]
                    .into_iter()
                    .flatten()
                    .min()
            }
            State::Established { .. } => self.liveness.next_established(),
            State::Ended | State::Taken => None,
        }
    }

    // ---- internals ------------------------------------------------------------------

    fn establish(
        &mut self,
        encryptor: Encryptor,
        decryptor: Decryptor,
        peer: Identifier,
        now: Instant,
    ) {
        tracing::debug!(%peer, role = ?self.role, "secure channel established");
        self.peer = Some(peer);
        self.deadline = None;
        self.liveness.established(now);
        self.events.push_back(ChannelEvent::Established { peer });
        self.state = State::Established {
            encryptor,
            decryptor,
            peer,
        };
    }

    /// Handles an authenticated plaintext.
    fn deliver(
        &mut self,
        counter: u64,
        plaintext: &[u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        match plaintext.split_first() {
            Some((&PLAIN_MESSAGE, body)) => match TransportMessage::decode(body) {
                Ok(message) => {
                    tracing::trace!(counter, "record opened");
                    if self.events.capacity() == 0 {
                        // Room for one: a busy channel keeps it (see `poll_event`).
                        self.events.reserve_exact(1);
                    }
                    self.events.push_back(ChannelEvent::Received(message));
                    Ok(())
                }
                Err(e) => Err(ChannelError::BadPlaintext {
                    counter,
                    reason: e.to_string(),
                }),
            },
            Some((&PLAIN_CONFIRM, [])) => Ok(()),
            Some((&PLAIN_KEEPALIVE, [flag])) => {
                if *flag == PROBE {
                    // Answered at once: the peer is waiting to know this end is alive.
                    tracing::debug!(counter, "probe answered");
                    self.seal_control(&[PLAIN_KEEPALIVE, 0], now);
                } else {
                    tracing::trace!(counter, "keepalive");
                }
                Ok(())
            }
            Some((&PLAIN_CLOSE, [code])) => {
                let reason = CloseReason::from_code(*code);
                tracing::debug!(?reason, "secure channel closed by peer");
                self.end(ChannelEvent::Closed {
                    reason,
                    by_peer: true,
                });
                Ok(())
            }
            _ => Err(ChannelError::BadPlaintext {
                counter,
                reason: "unknown plaintext type or length".into(),
            }),
        }
    }

    /// Ends the channel because of `error`, which the call that caused it returns: it
    /// is reported there only, not also as an event.
    fn fail(&mut self, error: ChannelError) -> Result<(), ChannelError> {
        tracing::debug!(%error, role = ?self.role, "secure channel failed");
        self.state = State::Ended;
        self.deadline = None;
        Err(error)
    }

    fn end(&mut self, event: ChannelEvent) {
        self.state = State::Ended;
        self.deadline = None;
        self.events.push_back(event);
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Initiating(_) => "initiating",
            State::Responding(_) => "responding",
            State::Confirming { .. } => "confirming",
            State::Established { .. } => "established",
            State::Ended => "ended",
            State::Taken => "taken",
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
