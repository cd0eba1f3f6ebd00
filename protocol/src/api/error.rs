//! The async layer's error type.

use std::io;
use std::time::Duration;

use crate::channel::ChannelError;
use crate::identity::IdentityError;
use crate::node::{NodeError, Origin};
use crate::report::{Report, ReportCode};

/// Everything the async node API can report.
///
/// `Clone`, so that one failure can be handed to every task that waits on it (the
/// operating system's error is shared).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node core refused or could not deliver a message, or a channel failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the address concerned.
        context: String,
        /// The operating system's error.
        source: std::sync::Arc<io::Error>,
    },
    /// A message could not be encoded as CBOR.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A received payload is not CBOR of the expected type.
    #[error("cannot decode message from {sender}: {reason}")]
    Decode {
        /// The first address of the message's return route.
        sender: String,
        /// What was wrong.
        reason: String,
    },
    /// A node on the route could not deliver or pass on a message this context or
    /// worker sent, and sent back a report (docs/PROTOCOL.md §3, "Error reports").
    /// One that came through a secure channel (`origin` is a channel) is
    /// authenticated by it; any other could have been forged by whoever is on the
    /// path.
    #[error(
        "a node on the route could not pass the message on: {report} (reported over {origin})"
    )]
    Remote {
        /// What the node reported.
        report: Report,
        /// Where the report came from, as for a message.
        origin: Origin,
    },
    /// A message sent with [`Context::send_tracked`](super::Context::send_tracked) was
    /// found undeliverable after the send returned: `send` says which.
    #[error("{send} failed: {error}")]
    Undelivered {
        /// The send it was.
        send: super::SendId,
        /// Why.
        error: NodeError,
    },
    /// A relay service did not register a name ([`Node::register_with_relay`](super::Node::register_with_relay)).
    #[error("the relay did not register {name:?}: {status:?}, {detail}")]
    RelayRefused {
        /// The name asked for.
        name: String,
        /// What the relay answered.
        status: crate::node::RelayStatus,
        /// Why, in the relay's words (or this node's, for an answer that is none).
        detail: String,
    },
    /// Nothing arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The node has stopped, or the mailbox was closed.
    #[error("the node has stopped")]
    Stopped,
    /// An identity could not be made or loaded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// `Result` with the async layer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Io { source, .. } => source.kind(),
            Error::Timeout(_) => io::ErrorKind::TimedOut,
            Error::Stopped => io::ErrorKind::NotConnected,
            Error::Encode(_) | Error::Decode { .. } => io::ErrorKind::InvalidData,
            Error::Node(NodeError::ConnectFailed { .. })
            | Error::Undelivered {
                error: NodeError::ConnectFailed { .. },
                ..
            } => io::ErrorKind::ConnectionRefused,
            Error::Node(NodeError::ConnectionClosed { .. }) => io::ErrorKind::ConnectionReset,
            Error::Node(NodeError::UnknownAddress(_)) => io::ErrorKind::NotFound,
            Error::Node(NodeError::AddressInUse(_)) => io::ErrorKind::AddrInUse,
            Error::Node(
                NodeError::MailboxFull { .. } | NodeError::ConnectionBacklogFull { .. },
            ) => io::ErrorKind::WouldBlock,
            Error::Node(NodeError::Channel { error, .. }) => match error {
                ChannelError::HandshakeTimeout { .. } | ChannelError::Unresponsive { .. } => {
                    io::ErrorKind::TimedOut
                }
                ChannelError::PeerLost { .. } => io::ErrorKind::ConnectionAborted,
                ChannelError::RouteFailed { .. } => io::ErrorKind::HostUnreachable,
                ChannelError::Closed => io::ErrorKind::NotConnected,
                _ => io::ErrorKind::PermissionDenied,
            },
            Error::Remote { report, .. } => match report.code {
                ReportCode::UnknownAddress => io::ErrorKind::NotFound,
                ReportCode::Refused => io::ErrorKind::PermissionDenied,
                ReportCode::Unreachable => io::ErrorKind::HostUnreachable,
                ReportCode::Overloaded => io::ErrorKind::WouldBlock,
                _ => io::ErrorKind::Other,
            },
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_clones_and_keeps_its_kind() {
        let error = Error::Io {
            context: "cannot listen on 127.0.0.1:1".into(),
            source: std::sync::Arc::new(io::Error::from(io::ErrorKind::AddrInUse)),
        };
        let copy = error.clone();
        assert_eq!(copy.to_string(), error.to_string());
        assert_eq!(io::Error::from(copy).kind(), io::ErrorKind::AddrInUse);
    }
}
