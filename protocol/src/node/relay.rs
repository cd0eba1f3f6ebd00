//! The relay service: it makes a node that has no listener reachable. The hidden node
//! connects to the relay's node, opens a secure channel to it, and registers a name
//! with the relay service through the channel; the relay then forwards whatever is
//! sent to the name's address (`<service>/<name>`) over the connection the
//! registration came on. It sees only routes and what they carry (channel records,
//! for a channel to the hidden node).
//!
//! A name belongs to the identity that registered it first: only that identity may
//! register it again (after a reconnection, on another connection). Who may register
//! at all is the service's access rule. While the owner's node is not connected, a
//! message for the name fails with [`NodeError::RelayNotConnected`], reported back
//! along its return route. The names are kept, with their owners, up to
//! [`NodeConfig::max_relay_names`](super::NodeConfig::max_relay_names).
//!
//! The wire format of a registration and its answer is in docs/PROTOCOL.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::routing::{Address, Route};

use super::routing::{Routed, Source, Work};
use super::{Access, ConnectionId, NodeCore, NodeError, Origin, Target};

/// The request code of a registration: `[1, name]`.
pub const REGISTER: u8 = 1;

/// The longest name, in bytes.
pub const MAX_RELAY_NAME_LEN: usize = 64;

/// How a relay service answered a registration: the first item of its answer
/// `[status, detail]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RelayStatus {
    /// Registered: the detail is the name's address on the relay node, as text.
    Registered,
    /// Another identity owns the name, or the relay's node uses the address itself.
    Taken,
    /// Not a registration, or the name is not 1 to 64 letters, digits, `.`, `-`, `_`.
    Invalid,
    /// The registration must come through a secure channel from a directly connected
    /// node (the relay forwards over that connection).
    NotDirect,
    /// The relay holds as many names as it may.
    Full,
}

impl RelayStatus {
    /// Its code on the wire.
    pub fn code(self) -> u8 {
        match self {
            RelayStatus::Registered => 0,
            RelayStatus::Taken => 1,
            RelayStatus::Invalid => 2,
            RelayStatus::NotDirect => 3,
            RelayStatus::Full => 4,
        }
    }

    /// The status of a code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => RelayStatus::Registered,
            1 => RelayStatus::Taken,
            2 => RelayStatus::Invalid,
            3 => RelayStatus::NotDirect,
            4 => RelayStatus::Full,
            _ => return None,
        })
    }
}

/// Whether `name` may be registered: 1 to [`MAX_RELAY_NAME_LEN`] ASCII letters,
/// digits, `.`, `-` and `_`.
pub fn is_valid_relay_name(name: &str) -> bool {
    (1..=MAX_RELAY_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The address on the relay node of `name` registered with the service at `service`.
pub fn relay_address(service: &Address, name: &str) -> Address {
    let mut value = service.value().to_vec();
    value.push(b'/');
    value.extend_from_slice(name.as_bytes());
    Address::new(service.transport(), value).unwrap_or_else(|_| service.clone())
}

/// The answer `[status, detail]` as CBOR: an array of two, an unsigned integer and a
/// text string (written here: the encoding cannot fail).
fn encode_answer(status: RelayStatus, detail: &str) -> Vec<u8> {
    let mut out = vec![0x82, status.code()];
    let len = detail.len();
    match u8::try_from(len) {
        Ok(len @ 0..=23) => out.push(0x60 | len),
        Ok(len) => out.extend_from_slice(&[0x78, len]),
        Err(_) => {
            // Details are short; a longer one is cut at a character boundary.
            let cut = (0..=0xffff.min(len))
                .rev()
                .find(|i| detail.is_char_boundary(*i))
                .unwrap_or(0);
            out.push(0x79);
            out.extend_from_slice(&u16::try_from(cut).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(detail.get(..cut).unwrap_or_default().as_bytes());
            return out;
        }
    }
    out.extend_from_slice(detail.as_bytes());
    out
}

/// A registered name.
struct Name {
    owner: Identifier,
    /// The connection to the owner's node, while there is one.
    connection: Option<ConnectionId>,
}

/// The names registered with this node's relay services, by their addresses.
#[derive(Default)]
pub(super) struct Relays {
    names: BTreeMap<Address, Name>,
}

impl Relays {
    /// The connection that leads to the node registered at `address`.
    pub(super) fn connection(&self, address: &Address) -> Option<ConnectionId> {
        self.names.get(address).and_then(|n| n.connection)
    }

    /// Connection `id` is gone: the names registered over it wait for their owners.
    pub(super) fn disconnected(&mut self, id: ConnectionId) {
        for name in self.names.values_mut() {
            if name.connection == Some(id) {
                name.connection = None;
            }
        }
    }
}

impl NodeCore {
    /// Creates a relay service at `address`: nodes register names with it through
    /// secure channels that `access` admits, and it forwards what is sent to
    /// `<address>/<name>` over the connection of the name's owner. A name belongs to
    /// the identity that registered it first; while its node is not connected, a
    /// message for it fails with [`NodeError::RelayNotConnected`], reported back. The
    /// registration's wire format is in docs/PROTOCOL.md, §10.
    ///
    /// # Errors
    ///
    /// [`NodeError::AddressInUse`] or [`NodeError::UnsupportedTransport`] (not local).
    pub fn create_relay(
        &mut self,
        address: Address,
        access: Access,
        now: std::time::Instant,
    ) -> Result<(), NodeError> {
        let _ = now;
        self.claim(&address)?;
        self.targets
            .insert(address, Target::Relay(Arc::new(access)));
        Ok(())
    }

    /// The names registered with this node's relay services, each with its owner and
    /// whether its node is connected.
    pub fn relay_names(&self) -> Vec<(Address, Identifier, bool)> {
        self.relays
            .names
            .iter()
            .map(|(a, n)| (a.clone(), n.owner, n.connection.is_some()))
            .collect()
    }

    /// A registration for the service at `service`, which its access rule admitted:
    /// handled, and answered along its return route.
    pub(super) fn relay_request(
        &mut self,
        service: &Address,
        message: &mut TransportMessage,
        origin: &Origin,
        source: Source<'_>,
        work: &mut Work,
    ) -> Result<Routed, NodeError> {
        let (status, detail) = match self.register_name(service, &message.payload, origin, source) {
            Ok(address) => (RelayStatus::Registered, address.to_string()),
            Err((status, detail)) => (status, detail.to_owned()),
        };
        tracing::debug!(%service, ?status, %detail, "relay registration");
        let answer = encode_answer(status, &detail);
        let back = std::mem::take(&mut message.return_route);
        if !back.is_empty() {
            let reply = TransportMessage::new(back, Route::from(service.clone()), answer);
            work.push_back((reply, Origin::Local));
        }
        Ok(Routed::Done)
    }

    fn register_name(
        &mut self,
        service: &Address,
        payload: &[u8],
        origin: &Origin,
        source: Source<'_>,
    ) -> Result<Address, (RelayStatus, &'static str)> {
        let Origin::Channel { channel, peer } = origin else {
            return Err((RelayStatus::NotDirect, "register through a secure channel"));
        };
        let name = match ciborium::from_reader::<(u8, String), _>(payload) {
            Ok((REGISTER, name)) if is_valid_relay_name(&name) => name,
            Ok((REGISTER, _)) => {
                return Err((
                    RelayStatus::Invalid,
                    "a name is 1 to 64 letters, digits, '.', '-' and '_'",
                ))
            }
            _ => return Err((RelayStatus::Invalid, "not a registration")),
        };
        // The channel's peer must be the node at the other end of the connection the
        // registration came on: its route back is that connection, then its end.
        let direct = self.channels.get(channel).is_some_and(|end| {
            end.remote.len() == 2
                && matches!(
                    end.remote.next().and_then(|first| self.targets.get(first)),
                    Some(Target::Connection(_))
                )
        });
        let (Source::Connection(connection), true) = (source, direct) else {
            return Err((
                RelayStatus::NotDirect,
                "register from a node connected to the relay's node",
            ));
        };
        let address = relay_address(service, &name);
        match self.relays.names.get_mut(&address) {
            Some(existing) if existing.owner != **peer => {
                return Err((
                    RelayStatus::Taken,
                    "the name is registered by another identity",
                ))
            }
            Some(existing) => existing.connection = Some(connection),
            None => {
                if self.targets.contains_key(&address) {
                    return Err((RelayStatus::Taken, "the relay's node uses that address"));
                }
                if self.relays.names.len() >= self.config.max_relay_names {
                    return Err((RelayStatus::Full, "the relay holds as many names as it may"));
                }
                self.relays.names.insert(
                    address.clone(),
                    Name {
                        owner: **peer,
                        connection: Some(connection),
                    },
                );
                self.targets.insert(address.clone(), Target::Relayed);
            }
        }
        Ok(address)
    }

    /// Forwards `message`, sent to the registered name at `next`, over its owner's
    /// connection.
    pub(super) fn relay_forward(
        &mut self,
        next: Address,
        message: &mut TransportMessage,
        sender: Option<&Address>,
        now: std::time::Instant,
    ) -> Result<Routed, NodeError> {
        let Some(connection) = self.relays.connection(&next) else {
            return Err(NodeError::RelayNotConnected(next));
        };
        let _ = message.onward_route.step();
        let frame = self.frame(message)?;
        self.send_frame(connection, frame, sender, None, now)?;
        Ok(Routed::Done)
    }
}
