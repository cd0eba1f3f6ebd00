//! Trust policies: which peer identities a secure channel accepts.
//!
//! A secure channel learns its peer's [`Identifier`] during the handshake, from a
//! public key whose signature over the handshake it has verified. It then asks its
//! [`TrustPolicy`]; if the answer is no, the channel is closed and no application
//! message is ever delivered through it.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::identity::Identifier;

/// Decides whether a peer identity is accepted.
///
/// A secure channel calls [`is_trusted`](TrustPolicy::is_trusted) exactly once per
/// handshake, after the peer's signature binding its identity to the handshake has
/// been verified and before any application message is sent or delivered. A policy
/// only ever sees authenticated identifiers.
///
/// The node core calls it synchronously while handling an input, so it must be quick
/// and must not block. Closures `Fn(&Identifier) -> bool` are policies, and
/// `Arc<dyn TrustPolicy>` or `Box<dyn TrustPolicy>` forward to the policy they hold,
/// so one policy can be shared by several channels.
pub trait TrustPolicy: Send + Sync + 'static {
    /// Whether a channel with the peer identified by `peer` may be used.
    fn is_trusted(&self, peer: &Identifier) -> bool;
}

/// Accepts every peer. The channel is still authenticated: the application can read
/// the peer's identifier and decide for itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrustEveryone;

impl TrustPolicy for TrustEveryone {
    fn is_trusted(&self, _peer: &Identifier) -> bool {
        true
    }
}

/// Accepts exactly one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrustIdentifier(Identifier);

impl TrustIdentifier {
    /// A policy that accepts only `identifier`.
    #[must_use]
    pub const fn new(identifier: Identifier) -> Self {
        Self(identifier)
    }

    /// The one identifier this policy accepts.
    #[must_use]
    pub const fn identifier(&self) -> &Identifier {
        &self.0
    }
}

impl TrustPolicy for TrustIdentifier {
    fn is_trusted(&self, peer: &Identifier) -> bool {
        *peer == self.0
    }
}

/// Accepts any peer in a fixed set. An empty set accepts no one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnyOf(BTreeSet<Identifier>);

impl TrustAnyOf {
    /// A policy that accepts any of `identifiers` (duplicates are ignored).
    #[must_use]
    pub fn new(identifiers: impl IntoIterator<Item = Identifier>) -> Self {
        Self(identifiers.into_iter().collect())
    }

    /// The identifiers this policy accepts, in order.
    #[must_use]
    pub fn identifiers(&self) -> &BTreeSet<Identifier> {
        &self.0
    }

    /// A policy that accepts the identifiers listed in the text file at `path`: one
    /// per line; blank lines and lines starting with `#` are skipped, and whitespace
    /// around an identifier is ignored. At most 64 KiB is read.
    ///
    /// # Errors
    ///
    /// [`TrustFileError::Io`] if the file cannot be read, or
    /// [`TrustFileError::Line`] for the first line that is not an identifier.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, TrustFileError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source: std::io::Error| TrustFileError::Io {
            path: path.to_path_buf(),
            source: std::sync::Arc::new(source),
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(io)?;
        Self::parse(&text)
    }

    /// As [`load`](Self::load), from the text itself.
    ///
    /// # Errors
    ///
    /// [`TrustFileError::Line`] for the first line that is not an identifier.
    pub fn parse(text: &str) -> Result<Self, TrustFileError> {
        let mut identifiers = BTreeSet::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identifier = line.parse().map_err(|error| TrustFileError::Line {
                line: number + 1,
                error,
            })?;
            identifiers.insert(identifier);
        }
        Ok(Self(identifiers))
    }
}

/// Why a file of trusted identifiers could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TrustFileError {
    /// The file could not be read.
    #[error("trusted identifiers file {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// A line is not an identifier.
    #[error("line {line} is not an identifier: {error}")]
    Line {
        /// Its number, from 1.
        line: usize,
        /// Why.
        error: crate::identity::IdentityError,
    },
}

impl FromIterator<Identifier> for TrustAnyOf {
    fn from_iter<I: IntoIterator<Item = Identifier>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl From<Vec<Identifier>> for TrustAnyOf {
    fn from(identifiers: Vec<Identifier>) -> Self {
        Self::new(identifiers)
    }
}

impl TrustPolicy for TrustAnyOf {
    fn is_trusted(&self, peer: &Identifier) -> bool {
        self.0.contains(peer)
    }
}

impl<F> TrustPolicy for F
where
    F: Fn(&Identifier) -> bool + Send + Sync + 'static,
{
    fn is_trusted(&self, peer: &Identifier) -> bool {
        self(peer)
    }
}

impl TrustPolicy for Arc<dyn TrustPolicy> {
    fn is_trusted(&self, peer: &Identifier) -> bool {
        (**self).is_trusted(peer)
    }
}

impl TrustPolicy for Box<dyn TrustPolicy> {
    fn is_trusted(&self, peer: &Identifier) -> bool {
        (**self).is_trusted(peer)
    }
}

/// Policies that have panicked, over the whole process: their log lines thin out as it
/// grows.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Asks `policy` whether `peer` is trusted. A policy that panics answers no: the panic
/// fails the handshake or the message that asked, and goes no further. It is logged at
/// the 1st, 2nd, 4th, 8th, ... panic, so a peer that keeps triggering it cannot fill
/// the log. (The process's panic hook, which is the application's, still runs.)
pub(crate) fn ask(policy: &dyn TrustPolicy, peer: &Identifier) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| policy.is_trusted(peer))) {
        Ok(answer) => answer,
        Err(_) => {
            let count = PANICS.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_power_of_two() {
                tracing::error!(%peer, panics = count, "a trust policy panicked; the peer is refused");
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_of_trusted_identifiers_loads_with_comments_and_blank_lines() {
        let a = Identifier::from_bytes([1; 32]);
        let b = Identifier::from_bytes([2; 32]);
        let text = format!("# the clients\n\n{a}\n  {b}  \r\n{a}\n");
        let policy = TrustAnyOf::parse(&text).unwrap();
        assert_eq!(policy.identifiers().len(), 2);
        assert!(policy.is_trusted(&a) && policy.is_trusted(&b));
        let bad = format!("{a}\nnot one\n");
        assert!(matches!(
            TrustAnyOf::parse(&bad),
            Err(TrustFileError::Line { line: 2, .. })
        ));
        let path = std::env::temp_dir().join(format!("onward-trust-{}.txt", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            TrustAnyOf::load(&path).unwrap().identifiers(),
            policy.identifiers()
        );
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            TrustAnyOf::load(&path),
            Err(TrustFileError::Io { .. })
        ));
    }

    use super::*;

    fn id(byte: u8) -> Identifier {
        Identifier::from_bytes([byte; 32])
    }

    fn accepts(policy: &impl TrustPolicy, peer: u8) -> bool {
        policy.is_trusted(&id(peer))
    }

    #[test]
    fn trust_everyone_accepts_all() {
        assert!(accepts(&TrustEveryone, 0));
        assert!(accepts(&TrustEveryone, 255));
    }

    #[test]
    fn trust_identifier_accepts_only_its_identifier() {
        let policy = TrustIdentifier::new(id(1));
        assert!(accepts(&policy, 1));
        assert!(!accepts(&policy, 2));
        assert_eq!(policy.identifier(), &id(1));
        // Differing only in the last byte is still a different peer.
        let mut near = [1u8; 32];
        near[31] = 0;
        assert!(!policy.is_trusted(&Identifier::from_bytes(near)));
    }

    #[test]
    fn trust_any_of_accepts_members_only() {
        let policy = TrustAnyOf::new([id(1), id(3), id(3)]);
        assert_eq!(policy.identifiers().len(), 2);
        assert!(accepts(&policy, 1));
        assert!(accepts(&policy, 3));
        assert!(!accepts(&policy, 2));
        let from_vec = TrustAnyOf::from(vec![id(5)]);
        assert!(accepts(&from_vec, 5));
        let collected: TrustAnyOf = (7..9).map(id).collect();
        assert!(accepts(&collected, 8));
        assert!(!accepts(&collected, 9));
        assert!(!accepts(&TrustAnyOf::default(), 0));
    }

    #[test]
    fn closures_are_policies() {
        let policy = |peer: &Identifier| peer.as_bytes()[0] % 2 == 0;
        assert!(accepts(&policy, 4));
        assert!(!accepts(&policy, 5));
        let allowed = id(9);
        let owned = move |peer: &Identifier| *peer == allowed;
        assert!(accepts(&owned, 9));
        assert!(!accepts(&owned, 8));
    }

    #[test]
    fn shared_and_boxed_policies_forward() {
        let shared: Arc<dyn TrustPolicy> = Arc::new(TrustIdentifier::new(id(1)));
        let clone = Arc::clone(&shared);
        assert!(accepts(&shared, 1));
        assert!(!accepts(&clone, 2));
        let boxed: Box<dyn TrustPolicy> = Box::new(TrustAnyOf::new([id(2)]));
        assert!(accepts(&boxed, 2));
        assert!(!accepts(&boxed, 1));
        // A shared policy can itself be shared again, boxed, or taken by value.
        let nested: Box<dyn TrustPolicy> = Box::new(shared);
        assert!(accepts(&nested, 1));
        let closure: Arc<dyn TrustPolicy> = Arc::new(|_: &Identifier| false);
        assert!(!accepts(&closure, 1));
    }

    #[test]
    fn policies_are_object_safe_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
        let policies: Vec<Box<dyn TrustPolicy>> = vec![
            Box::new(TrustEveryone),
            Box::new(TrustIdentifier::new(id(1))),
            Box::new(TrustAnyOf::new([id(1)])),
            Box::new(|_: &Identifier| true),
        ];
        assert_send_sync(&policies);
        assert!(policies.iter().all(|p| p.is_trusted(&id(1))));
        let shared: Arc<dyn TrustPolicy> = Arc::new(TrustEveryone);
        let handle = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || shared.is_trusted(&id(3))
        });
        assert!(handle.join().unwrap());
    }

    #[test]
    fn a_policy_that_panics_answers_no() {
        let panicking = |_: &Identifier| -> bool { panic!("policy bug") };
        assert!(!ask(&panicking, &id(1)));
        assert!(ask(&TrustEveryone, &id(1)));
        assert!(!ask(&TrustIdentifier::new(id(2)), &id(1)));
    }
}
