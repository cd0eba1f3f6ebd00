//! Access rules: which messages may reach a local address, and which may enter a
//! secure channel.
//!
//! A secure channel authenticates the peer *node*: its identity signed the handshake.
//! It says nothing of which sender on that node wrote a message, nor of messages that
//! never crossed a channel. The node core therefore tags every message it routes with
//! its [`Origin`] (a sender on this node, a secure channel end with its verified peer,
//! or a transport connection) and checks it against the [`Access`] rule of the address
//! it is about to reach: a mailbox, a channel's encryptor, a channel listener. A
//! message that a rule refuses is counted ([`NodeStats::messages_refused`]), logged at
//! a bounded rate, and reported to a local sender as [`NodeError::Refused`].
//!
//! [`NodeStats::messages_refused`]: super::NodeStats::messages_refused
//! [`NodeError::Refused`]: super::NodeError::Refused

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::identity::Identifier;
use crate::routing::Address;
use crate::trust::TrustPolicy;

use super::{ChannelId, ConnectionId};

/// Where a message came from, as the node that routes it knows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// A sender on this node: a worker, a context, or a channel end sending its own
    /// records. (A worker that passes on a message it received makes it its own.)
    Local,
    /// Decrypted by a secure channel end on this node.
    Channel {
        /// The channel end.
        channel: ChannelId,
        /// The peer's identifier, verified in the channel's handshake. (Shared with the
        /// channel end, so that an origin stays small and costs no allocation.)
        peer: Arc<Identifier>,
    },
    /// Read from a transport connection, outside any secure channel: anyone who can
    /// reach the node's listener, or any node that forwards to it, could have sent it.
    Transport {
        /// The connection.
        connection: ConnectionId,
    },
}

impl Origin {
    /// The verified peer of the secure channel the message came through, if it came
    /// through one.
    pub fn channel_peer(&self) -> Option<&Identifier> {
        match self {
            Origin::Channel { peer, .. } => Some(peer.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Local => f.write_str("a sender on this node"),
            Origin::Channel { channel, peer } => {
                write!(f, "secure channel {} from {peer}", channel.0)
            }
            Origin::Transport { connection } => write!(f, "{connection} (no secure channel)"),
        }
    }
}

/// Which secure channels a rule admits.
#[derive(Clone)]
enum Channels {
    None,
    Any,
    Trusted(Arc<dyn TrustPolicy>),
}

/// Who may deliver to a local address: senders on this node, messages that came
/// through a secure channel (optionally only from peers a trust policy accepts), and
/// messages read from a transport connection outside any channel.
///
/// ```
/// use onward_protocol::node::{Access, Origin};
/// use onward_protocol::trust::TrustIdentifier;
/// # let peer = onward_protocol::identity::Identity::generate()?.identifier();
///
/// // Only through secure channels from one identity (and from this node).
/// let access = Access::secure_channels_from(TrustIdentifier::new(peer));
/// assert!(access.admits(&Origin::Local));
/// assert!(!access.admits(&Origin::Transport { connection: onward_protocol::node::ConnectionId(1) }));
/// # Ok::<(), onward_protocol::identity::IdentityError>(())
/// ```
#[derive(Clone)]
pub struct Access {
    local: bool,
    channels: Channels,
    transport: bool,
}

impl Access {
    /// Only senders on this node.
    #[must_use]
    pub fn local_only() -> Self {
        Self {
            local: true,
            channels: Channels::None,
            transport: false,
        }
    }

    /// Senders on this node, and messages that came through any secure channel. Each
    /// channel's peer was accepted by that channel's own trust policy, so this admits
    /// exactly as much as the most open of this node's listeners (one that trusts
    /// everyone admits anyone who generates an identity) and whatever responders this
    /// node opened channels to. The default for workers and contexts. To name who,
    /// use [`secure_channels_from`](Self::secure_channels_from).
    #[must_use]
    pub fn secure_channels() -> Self {
        Self {
            local: true,
            channels: Channels::Any,
            transport: false,
        }
    }

    /// Senders on this node, and messages that came through a secure channel whose
    /// verified peer `trust` accepts. The policy is asked for every message, so it
    /// must be quick; one that panics refuses the message.
    #[must_use]
    pub fn secure_channels_from(trust: impl TrustPolicy) -> Self {
        Self {
            local: true,
            channels: Channels::Trusted(Arc::new(trust)),
            transport: false,
        }
    }

    /// Everyone: senders on this node, secure channels, and plain messages read from
    /// any transport connection, which anyone able to connect could have sent.
    #[must_use]
    pub fn anyone() -> Self {
        Self {
            local: true,
            channels: Channels::Any,
            transport: true,
        }
    }

    /// No one: every message is refused. (For a mailbox kept only to hold an address,
    /// or, as a channel's ingress, for a channel nothing on this node may send into.)
    #[must_use]
    pub fn no_one() -> Self {
        Self {
            local: false,
            channels: Channels::None,
            transport: false,
        }
    }

    /// The same rule, and also plain messages from transport connections.
    #[must_use]
    pub fn with_transport(mut self) -> Self {
        self.transport = true;
        self
    }

    /// The same rule, without senders on this node.
    #[must_use]
    pub fn without_local(mut self) -> Self {
        self.local = false;
        self
    }

    /// Whether a message from `origin` may pass.
    pub fn admits(&self, origin: &Origin) -> bool {
        match origin {
            Origin::Local => self.local,
            Origin::Transport { .. } => self.transport,
            Origin::Channel { peer, .. } => match &self.channels {
                Channels::None => false,
                Channels::Any => true,
                Channels::Trusted(trust) => crate::trust::ask(&**trust, peer),
            },
        }
    }
}

impl Default for Access {
    /// [`Access::secure_channels`].
    fn default() -> Self {
        Self::secure_channels()
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.local {
            parts.push("senders on this node");
        }
        match self.channels {
            Channels::None => {}
            Channels::Any => parts.push("secure channels"),
            Channels::Trusted(_) => parts.push("secure channels from peers its policy trusts"),
        }
        if self.transport {
            parts.push("plain transport connections");
        }
        if parts.is_empty() {
            f.write_str("no one")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Access({self})")
    }
}

/// The rules of a secure channel end: who may put messages into it, where the messages
/// it decrypts may go, and, for a listener, who may send it hellos.
///
/// By default only senders on this node may send into a channel: a message that
/// arrives from a connection, or out of another channel, addressed to an encryptor is
/// refused. Without this rule anyone who learned an encryptor's address (it travels in
/// return routes) could speak into the channel with this node's identity.
#[derive(Clone, Debug)]
pub struct ChannelRules {
    pub(super) ingress: Access,
    pub(super) deliver_to: Option<Arc<BTreeSet<Address>>>,
    pub(super) hellos: Access,
}

impl Default for ChannelRules {
    fn default() -> Self {
        Self {
            ingress: Access::local_only(),
            deliver_to: None,
            hellos: Access::anyone(),
        }
    }
}

impl ChannelRules {
    /// The defaults: only senders on this node send into the channel, decrypted
    /// messages go to any address, and a listener takes hellos from anyone.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Who may send into the channel through its encryptor (default
    /// [`Access::local_only`]). Widening it makes this node a gateway: say so only for
    /// a relay whose senders are checked some other way.
    ///
    /// The default has a cost to know. A message that leaves this channel here and goes
    /// on over a connection (`[channel, tcp(D), "service"]`) reaches D with this end's
    /// encryptor on its return route; D's reply comes back over that connection to the
    /// encryptor and is refused, because it cannot be told apart from anyone else who
    /// learned the address. The same holds for a channel nested inside this one whose
    /// far end is beyond this node. D should answer through a channel of its own, or
    /// this channel must be opened with a wider ingress, on purpose.
    #[must_use]
    pub fn ingress(mut self, access: Access) -> Self {
        self.ingress = access;
        self
    }

    /// Messages the channel decrypts may go only to these first hops (local addresses
    /// or transport addresses); any other is refused. Default: any address.
    #[must_use]
    pub fn deliver_only_to<A: Into<Address>>(
        mut self,
        addresses: impl IntoIterator<Item = A>,
    ) -> Self {
        self.deliver_to = Some(Arc::new(addresses.into_iter().map(Into::into).collect()));
        self
    }

    /// For a channel listener: who may send it hellos (default [`Access::anyone`]: a
    /// listener is there to be reached, and each channel still authenticates its
    /// peer).
    #[must_use]
    pub fn hellos(mut self, access: Access) -> Self {
        self.hellos = access;
        self
    }

    /// Whether these are the defaults (so a channel end need not keep a copy).
    pub(super) fn is_default(&self) -> bool {
        let local_only =
            |a: &Access| a.local && !a.transport && matches!(a.channels, Channels::None);
        let anyone = |a: &Access| a.local && a.transport && matches!(a.channels, Channels::Any);
        self.deliver_to.is_none() && local_only(&self.ingress) && anyone(&self.hellos)
    }

    /// The defaults, shared by every channel end that keeps them.
    pub(super) fn shared_default() -> &'static ChannelRules {
        static DEFAULT: std::sync::OnceLock<ChannelRules> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(ChannelRules::default)
    }

    /// Whether a decrypted message may go to `first` hop.
    pub(super) fn may_deliver_to(&self, first: &Address) -> bool {
        self.deliver_to
            .as_ref()
            .is_none_or(|allowed| allowed.contains(first))
    }

    /// The delivery restriction, described for an error.
    pub(super) fn describe_deliver_to(&self) -> String {
        match &self.deliver_to {
            None => "any address".to_owned(),
            Some(allowed) => {
                let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                names.join(", ")
            }
        }
    }
}

/// How often one origin's refusals are logged, at most, and the length of the window
/// in which at most [`REFUSAL_LOG_LINES`] lines are written.
pub(super) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How many refusal lines are logged per window, over all origins.
pub(super) const REFUSAL_LOG_LINES: u32 = 32;

/// Decides which refusals of remote messages are logged: each origin once per
/// [`REFUSAL_LOG_INTERVAL`], and at most [`REFUSAL_LOG_LINES`] lines per window of that
/// length in all (so at most twice that in a minute that straddles two windows), so
/// that a hostile peer cannot turn its messages into log lines. It remembers only the
/// origins it logged within the last interval: at most twice [`REFUSAL_LOG_LINES`].
#[derive(Default)]
pub(super) struct RefusalLog {
    last: BTreeMap<Origin, Instant>,
    window_start: Option<Instant>,
    lines: u32,
    /// Refusals not logged since the last line.
    unlogged: u64,
}

impl RefusalLog {
    /// Whether to log a refusal of a message from `origin` at `now`; if so, also how
    /// many refusals went unlogged before it.
    pub(super) fn should_log(&mut self, origin: &Origin, now: Instant) -> Option<u64> {
        let window_over = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= REFUSAL_LOG_INTERVAL);
        if window_over {
            self.window_start = Some(now);
            self.lines = 0;
        }
        let recent = self
            .last
            .get(origin)
            .is_some_and(|t| now.saturating_duration_since(*t) < REFUSAL_LOG_INTERVAL);
        if recent || self.lines >= REFUSAL_LOG_LINES {
            self.unlogged += 1;
            return None;
        }
        // Origins logged longer ago than the interval need not be remembered: at most
        // two windows' worth of lines are recent.
        if self.last.len() >= 2 * REFUSAL_LOG_LINES as usize {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < REFUSAL_LOG_INTERVAL);
        }
        self.last.insert(origin.clone(), now);
        self.lines += 1;
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Origins remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::TrustIdentifier;

    fn peer(byte: u8) -> Identifier {
        Identifier::from_bytes([byte; crate::identity::IDENTIFIER_LEN])
    }

    fn channel(byte: u8) -> Origin {
        Origin::Channel {
            channel: ChannelId(u64::from(byte)),
            peer: Arc::new(peer(byte)),
        }
    }

    const PLAIN: Origin = Origin::Transport {
        connection: ConnectionId(7),
    };

    #[test]
    fn each_rule_admits_what_it_says() {
        let cases: [(Access, [bool; 4]); 6] = [
            (Access::local_only(), [true, false, false, false]),
            (Access::secure_channels(), [true, true, true, false]),
            (
                Access::secure_channels_from(TrustIdentifier::new(peer(1))),
                [true, true, false, false],
            ),
            (Access::anyone(), [true, true, true, true]),
            (Access::no_one(), [false, false, false, false]),
            (
                Access::local_only().with_transport().without_local(),
                [false, false, false, true],
            ),
        ];
        for (access, [local, ch1, ch2, plain]) in cases {
            assert_eq!(access.admits(&Origin::Local), local, "{access}: local");
            assert_eq!(access.admits(&channel(1)), ch1, "{access}: channel from 1");
            assert_eq!(access.admits(&channel(2)), ch2, "{access}: channel from 2");
            assert_eq!(access.admits(&PLAIN), plain, "{access}: transport");
        }
        assert_eq!(
            Access::default().to_string(),
            Access::secure_channels().to_string()
        );
    }

    #[test]
    fn a_rule_whose_policy_panics_refuses() {
        let access = Access::secure_channels_from(|_: &Identifier| -> bool { panic!("bug") });
        assert!(!access.admits(&channel(1)));
        assert!(
            access.admits(&Origin::Local),
            "the policy is not asked for local senders"
        );
    }

    #[test]
    fn rules_describe_themselves() {
        assert_eq!(Access::local_only().to_string(), "senders on this node");
        assert_eq!(
            Access::anyone().to_string(),
            "senders on this node, secure channels, plain transport connections"
        );
        assert_eq!(
            Access::secure_channels_from(|_: &Identifier| true).to_string(),
            "senders on this node, secure channels from peers its policy trusts"
        );
        assert_eq!(Access::no_one().to_string(), "no one");
        assert_eq!(PLAIN.to_string(), "connection 7 (no secure channel)");
        assert_eq!(channel(1).channel_peer(), Some(&peer(1)));
        assert_eq!(PLAIN.channel_peer(), None);
    }

    #[test]
    fn channel_rules_default_to_local_ingress() {
        let rules = ChannelRules::new();
        assert!(rules.is_default() && ChannelRules::shared_default().is_default());
        for changed in [
            ChannelRules::new().ingress(Access::anyone()),
            ChannelRules::new().ingress(Access::secure_channels()),
            ChannelRules::new().ingress(Access::no_one()),
            ChannelRules::new().hellos(Access::local_only()),
            ChannelRules::new().hellos(Access::secure_channels()),
            ChannelRules::new().hellos(Access::anyone().without_local()),
            ChannelRules::new().deliver_only_to(["x"]),
        ] {
            assert!(!changed.is_default(), "{changed:?}");
        }
        assert!(rules.ingress.admits(&Origin::Local));
        assert!(!rules.ingress.admits(&PLAIN));
        assert!(!rules.ingress.admits(&channel(1)));
        assert!(rules.hellos.admits(&PLAIN));
        assert!(rules.may_deliver_to(&Address::local("anything")));
        let only = rules.deliver_only_to(["echoer"]);
        assert!(only.may_deliver_to(&Address::local("echoer")));
        assert!(!only.may_deliver_to(&Address::local("admin")));
        assert_eq!(only.describe_deliver_to(), "0#echoer");
    }

    #[test]
    fn refusals_are_logged_once_per_origin_per_interval() {
        let start = Instant::now();
        let mut log = RefusalLog::default();
        assert_eq!(log.should_log(&PLAIN, start), Some(0));
        for i in 1..100 {
            assert_eq!(
                log.should_log(&PLAIN, start + Duration::from_millis(i)),
                None
            );
        }
        // Another origin is logged at once.
        assert_eq!(log.should_log(&channel(1), start), Some(99));
        // The first again once the interval has passed, with nothing unlogged since.
        assert_eq!(
            log.should_log(&PLAIN, start + REFUSAL_LOG_INTERVAL),
            Some(0)
        );
    }

    /// Forgetting old origins never forgets one logged within the interval: 64
    /// origins over two windows, then, in a third, one logged 21 s before is still
    /// not logged again while a new one is.
    #[test]
    fn pruning_keeps_the_origins_logged_within_the_interval() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let origin = |c: u64| Origin::Transport {
            connection: ConnectionId(c),
        };
        let mut log = RefusalLog::default();
        for c in 0..32 {
            assert!(log.should_log(&origin(c), at(c)).is_some());
        }
        // The second window opens at 61 s; its last origin is logged at 100 s.
        for c in 32..63 {
            assert!(log.should_log(&origin(c), at(61_000 + c)).is_some());
        }
        assert!(log.should_log(&origin(63), at(100_000)).is_some());
        assert_eq!(log.len(), 64);
        // A third window: a new origin is logged (and the table pruned)...
        let third = 121_100;
        assert!(log.should_log(&origin(100), at(third)).is_some());
        // ...and the origins of the second window, logged under 60 s ago, are not.
        assert_eq!(log.should_log(&origin(63), at(third + 1)), None);
        assert!(
            log.len() <= 33,
            "the first window's origins are forgotten: {}",
            log.len()
        );
    }

    #[test]
    fn refusal_lines_and_origins_are_bounded() {
        let start = Instant::now();
        let mut log = RefusalLog::default();
        let mut logged = 0;
        for c in 0..10_000u64 {
            let origin = Origin::Transport {
                connection: ConnectionId(c),
            };
            if log.should_log(&origin, start).is_some() {
                logged += 1;
            }
        }
        assert_eq!(logged, REFUSAL_LOG_LINES);
        // A new interval logs again, and the table of origins stays bounded.
        let later = start + REFUSAL_LOG_INTERVAL;
        let mut logged = 0;
        for c in 0..10_000u64 {
            let origin = Origin::Transport {
                connection: ConnectionId(c),
            };
            if log
                .should_log(&origin, later + Duration::from_secs(c * 60))
                .is_some()
            {
                logged += 1;
            }
        }
        assert!(logged > 1000, "each new interval logs: {logged}");
        assert!(log.len() <= 2 * REFUSAL_LOG_LINES as usize);
        // Many origins, a few windows: the table stays bounded too.
        let mut log = RefusalLog::default();
        for c in 0..10_000u64 {
            let origin = Origin::Transport {
                connection: ConnectionId(c),
            };
            let _ = log.should_log(&origin, start + Duration::from_millis(c * 100));
            assert!(log.len() <= 2 * REFUSAL_LOG_LINES as usize + 1);
        }
    }
}
