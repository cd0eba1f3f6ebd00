//! A channel end's settings and the protocol's limits on records and counters.

use std::time::Duration;

use crate::noise::{CipherSuite, MAX_MESSAGE_LEN, TAG_LEN};

#[cfg(doc)]
use super::ChannelError;

/// Records use a new key every 2^16 counters: the key for counter `c` is the initial
/// key after `c >> REKEY_SHIFT` Noise rekeys.
pub const REKEY_SHIFT: u32 = 16;

/// How many key generations ahead of its newest a receiver will derive keys for, so
/// that a long run of lost records does not stall the channel while a forged counter
/// costs at most this many rekeys.
pub const MAX_GENERATIONS_AHEAD: u64 = 4;

/// The largest counter an application message may use. The next one is kept for a
/// final close record, and 2^64-1 is never used (Noise reserves it).
pub const MAX_DATA_COUNTER: u64 = u64::MAX - 2;

/// The largest plaintext of one record: a Noise message (65535 bytes) less the tag.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_MESSAGE_LEN - TAG_LEN;

/// The largest encoded inner message one record carries (the plaintext less its type
/// byte).
pub const MAX_INNER_MESSAGE_LEN: usize = MAX_RECORD_PLAINTEXT - 1;

/// The default time a handshake may take.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default first delay before an initiator sends a handshake record again.
pub const DEFAULT_HANDSHAKE_RESEND: Duration = Duration::from_secs(1);

/// The default time an established end may send nothing before it sends a keepalive.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// The default time an established end may hear nothing authenticated from its peer
/// before it gives the peer up: three keepalive intervals, so two lost keepalives in a
/// row are not enough.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default time an end waits for the answer to a probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of a channel end.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// The suite an initiator asks for.
    pub suite: CipherSuite,
    /// The suites a responder accepts.
    pub accepted_suites: Vec<CipherSuite>,
    /// How long the handshake may take before the channel fails.
    pub handshake_timeout: Duration,
    /// How long an initiator waits for an answer before it sends its latest handshake
    /// record (the hello or the finish) again; the wait doubles after each time, until
    /// the handshake timeout. `None`: never sent again.
    pub handshake_resend: Option<Duration>,
    /// An established end that has sent nothing for this long sends a keepalive record.
    /// `None`: no keepalives (and the peer may then find this end idle).
    pub keepalive_interval: Option<Duration>,
    /// An established end that has heard no authenticated record from its peer for this
    /// long fails with [`ChannelError::Unresponsive`]. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How long an end waits for the answer to a probe, which it sends when a node on
    /// the route reports that it cannot reach the peer's end, before it fails with
    /// [`ChannelError::PeerLost`].
    pub probe_timeout: Duration,
    /// For a persistent channel (see
    /// [`NodeCore::create_persistent_channel`](crate::node::NodeCore::create_persistent_channel)):
    /// how long after it fails it is started again; the wait doubles after each
    /// failed start, up to a minute.
    pub reestablish_after: Duration,
}

impl ChannelConfig {
    /// These settings without the timers that recur for as long as a channel lives
    /// (keepalives and the idle deadline): for tests that run until nothing is left to
    /// do, and for channels whose liveness the application checks itself.
    pub fn without_keepalives(self) -> Self {
        Self {
            keepalive_interval: None,
            idle_timeout: None,
            ..self
        }
    }
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            suite: CipherSuite::default(),
            accepted_suites: CipherSuite::ALL.to_vec(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshake_resend: Some(DEFAULT_HANDSHAKE_RESEND),
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            reestablish_after: Duration::from_secs(1),
        }
    }
}
