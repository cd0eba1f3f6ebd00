use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use crate::random::{RandomError, RandomSource};

/// The largest address value, in bytes, that encoders write and decoders accept.
pub const MAX_ADDRESS_LEN: usize = 255;

/// Number of random bytes in a generated local address (printed as twice as many hex
/// digits).
const RANDOM_ADDRESS_BYTES: usize = 16;

/// The transport an address belongs to.
///
/// Types 0 ([`TransportType::LOCAL`]) and 1 ([`TransportType::TCP`]) are defined by
/// onward; the others are free for custom transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransportType(pub u8);

impl TransportType {
    /// A worker or other endpoint inside the same node.
    pub const LOCAL: TransportType = TransportType(0);
    /// A TCP peer; the value is `host:port` text.
    pub const TCP: TransportType = TransportType(1);
}

impl fmt::Display for TransportType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a text address could not be parsed or an address could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text has no `#` separating the transport type from the value.
    #[error("address {0:?} has no '#' between transport type and value")]
    MissingSeparator(String),
    /// The transport type is not a decimal number from 0 to 255.
    #[error("address {0:?} has a transport type that is not a number from 0 to 255")]
    BadTransportType(String),
    /// A `%` escape in the value is not followed by two hex digits.
    #[error("address {0:?} has a '%' that is not followed by two hex digits")]
    BadEscape(String),
    /// The value is longer than [`MAX_ADDRESS_LEN`] bytes.
    #[error("address value is {len} bytes, the limit is {MAX_ADDRESS_LEN}")]
    TooLong {
        /// Length of the rejected value.
        len: usize,
    },
    /// A route's text is not a route: an empty hop, or more than
    /// [`MAX_ROUTE_LEN`](super::MAX_ROUTE_LEN) addresses.
    #[error("route {route:?}: {reason}")]
    BadRoute {
        /// The text.
        route: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The random source failed while generating an address.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A transport type and a value: where a message goes next.
///
/// The value is bytes on the wire. In text an address reads `TYPE#VALUE`, for example
/// `0#echoer` or `1#127.0.0.1:4000`; bytes of the value that are not printable ASCII,
/// and `%` itself, are written as `%XX`, so every address prints as one line and parses
/// back to itself.
///
/// Values of up to 32 bytes (a generated local address, a TCP `host:port`, most names)
/// are held inside the address itself, so making, decoding and cloning one allocates
/// nothing; longer values are shared, so a clone only counts a reference.
#[derive(Clone)]
pub struct Address {
    transport: TransportType,
    value: Value,
}

/// Bytes of a value held inline.
const INLINE: usize = 32;

/// An address value: inline when short, shared when long.
#[derive(Clone)]
enum Value {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl Value {
    fn new(value: &[u8]) -> Self {
        match u8::try_from(value.len()) {
            Ok(len) if value.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..value.len()].copy_from_slice(value);
                Value::Inline { len, bytes }
            }
            _ => Value::Shared(value.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Value::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Value::Shared(bytes) => bytes,
        }
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.transport == other.transport && self.value() == other.value()
    }
}

impl Eq for Address {}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.transport, self.value()).cmp(&(other.transport, other.value()))
    }
}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.transport.hash(state);
        self.value().hash(state);
    }
}

impl Address {
    /// An address of any transport type.
    ///
    /// # Errors
    ///
    /// [`AddressError::TooLong`] if `value` is longer than [`MAX_ADDRESS_LEN`].
    pub fn new(transport: TransportType, value: impl Into<Vec<u8>>) -> Result<Self, AddressError> {
        let value = value.into();
        if value.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong { len: value.len() });
        }
        Ok(Self {
            transport,
            value: Value::new(&value),
        })
    }

    /// Builds an address from decoded parts whose length the caller has checked.
    pub(crate) fn from_checked_parts(transport: TransportType, value: &[u8]) -> Self {
        debug_assert!(value.len() <= MAX_ADDRESS_LEN);
        Self {
            transport,
            value: Value::new(value),
        }
    }

    /// A local address named by the user.
    ///
    /// Names longer than [`MAX_ADDRESS_LEN`] bytes are accepted here but refused when a
    /// message carrying them is encoded; use [`Address::new`] to check up front.
    pub fn local(name: impl AsRef<str>) -> Self {
        Self {
            transport: TransportType::LOCAL,
            value: Value::new(name.as_ref().as_bytes()),
        }
    }

    /// A fresh local address of 32 random hex digits, for workers and channel endpoints
    /// that need an address nobody chose.
    ///
    /// # Errors
    ///
    /// [`AddressError::Random`] if the random source fails.
    pub fn random_local(rng: &mut dyn RandomSource) -> Result<Self, AddressError> {
        let mut bytes = [0u8; RANDOM_ADDRESS_BYTES];
        rng.fill(&mut bytes)?;
        let mut name = String::with_capacity(2 * RANDOM_ADDRESS_BYTES);
        for b in bytes {
            name.push(hex_digit(b >> 4));
            name.push(hex_digit(b & 0x0f));
        }
        Ok(Self::local(name))
    }

    /// A TCP address: `host:port` text, such as `127.0.0.1:4000`.
    pub fn tcp(peer: impl AsRef<str>) -> Self {
        Self {
            transport: TransportType::TCP,
            value: Value::new(peer.as_ref().as_bytes()),
        }
    }

    /// The transport type.
    pub fn transport(&self) -> TransportType {
        self.transport
    }

    /// The value, as the bytes carried on the wire.
    pub fn value(&self) -> &[u8] {
        self.value.as_slice()
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value()).ok()
    }

    /// Whether this is a local address.
    pub fn is_local(&self) -> bool {
        self.transport == TransportType::LOCAL
    }
}

/// A TCP address, for use in [`route!`](crate::route): `tcp("127.0.0.1:4000")`, or
/// `tcp(bound)` with the `SocketAddr` a listener was bound to.
pub fn tcp(peer: impl fmt::Display) -> Address {
    Address::tcp(peer.to_string())
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#", self.transport)?;
        for &b in self.value() {
            if b.is_ascii_graphic() && b != b'%' || b == b' ' {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "%{}{}", hex_digit(b >> 4), hex_digit(b & 0x0f))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Parses `TYPE#VALUE`, the form [`Display`](fmt::Display) prints.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s
            .split_once('#')
            .ok_or_else(|| AddressError::MissingSeparator(s.to_owned()))?;
        if kind.is_empty() || kind.len() > 3 || !kind.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::BadTransportType(s.to_owned()));
        }
        let transport = kind
            .parse::<u8>()
            .map_err(|_| AddressError::BadTransportType(s.to_owned()))?;
        let raw = value.as_bytes();
        let mut bytes = Vec::with_capacity(raw.len().min(MAX_ADDRESS_LEN));
        let mut i = 0;
        while let Some(&b) = raw.get(i) {
            if b == b'%' {
                let hi = raw.get(i + 1).copied().and_then(hex_value);
                let lo = raw.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => bytes.push(hi << 4 | lo),
                    _ => return Err(AddressError::BadEscape(s.to_owned())),
                }
                i += 3;
            } else {
                bytes.push(b);
                i += 1;
            }
            if bytes.len() > MAX_ADDRESS_LEN {
                return Err(AddressError::TooLong { len: bytes.len() });
            }
        }
        Address::new(TransportType(transport), bytes)
    }
}

impl From<&str> for Address {
    /// A plain string is a local address.
    fn from(name: &str) -> Self {
        Address::local(name)
    }
}

impl From<String> for Address {
    /// A plain string is a local address.
    fn from(name: String) -> Self {
        Address::local(name)
    }
}

impl From<&Address> for Address {
    fn from(address: &Address) -> Self {
        address.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;
    use proptest::prelude::*;

    #[test]
    fn values_inline_and_shared_behave_alike() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |a: &Address| {
            let mut h = DefaultHasher::new();
            a.hash(&mut h);
            h.finish()
        };
        // Either side of the inline limit, and the longest value.
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, MAX_ADDRESS_LEN] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let a = Address::new(TransportType(9), value.clone()).unwrap();
            let decoded = Address::from_checked_parts(TransportType(9), &value);
            assert_eq!(a.value(), &value[..], "len {len}");
            assert_eq!(a, decoded);
            assert_eq!(a.clone(), a);
            assert_eq!(hash(&a), hash(&decoded));
            // Another transport type, or one byte more, is another address.
            assert_ne!(a, Address::from_checked_parts(TransportType(8), &value));
            if len < MAX_ADDRESS_LEN {
                let mut more = value.clone();
                more.push(0);
                let longer = Address::from_checked_parts(TransportType(9), &more);
                assert_ne!(a, longer);
                // Ordered by transport type, then by value as bytes (a prefix first).
                assert!(a < longer, "len {len}");
                assert!(Address::from_checked_parts(TransportType(8), &more) < a);
            }
        }
        assert!(Address::new(TransportType(1), vec![0; MAX_ADDRESS_LEN + 1]).is_err());
        // Names longer than the limit are held whole (refused when encoded).
        let long = "n".repeat(MAX_ADDRESS_LEN + 10);
        assert_eq!(Address::local(&long).value(), long.as_bytes());
    }

    #[test]
    fn tcp_takes_text_or_a_socket_address() {
        let bound: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(tcp(bound), tcp("127.0.0.1:4000"));
        assert_eq!(tcp(String::from("h:1")), Address::tcp("h:1"));
    }

    #[test]
    fn prints_and_parses_the_documented_forms() {
        let a: Address = "0#echoer".parse().unwrap();
        assert_eq!(a, Address::local("echoer"));
        assert_eq!(a.to_string(), "0#echoer");
        let t: Address = "1#127.0.0.1:4000".parse().unwrap();
        assert_eq!(t, tcp("127.0.0.1:4000"));
        assert_eq!(t.transport(), TransportType::TCP);
        assert_eq!(t.value_str(), Some("127.0.0.1:4000"));
        let custom: Address = "200#x#y".parse().unwrap();
        assert_eq!(custom.transport(), TransportType(200));
        assert_eq!(custom.value(), b"x#y");
    }

    #[test]
    fn escapes_unprintable_bytes() {
        let a = Address::new(TransportType(7), vec![0, b'%', b'a', 0xff, b'\n']).unwrap();
        assert_eq!(a.to_string(), "7#%00%25a%ff%0a");
        assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(
            "echoer".parse::<Address>(),
            Err(AddressError::MissingSeparator(_))
        ));
        assert!(matches!(
            "#x".parse::<Address>(),
            Err(AddressError::BadTransportType(_))
        ));
        assert!(matches!(
            "256#x".parse::<Address>(),
            Err(AddressError::BadTransportType(_))
        ));
        assert!(matches!(
            "-1#x".parse::<Address>(),
            Err(AddressError::BadTransportType(_))
        ));
        assert!(matches!(
            "0001#x".parse::<Address>(),
            Err(AddressError::BadTransportType(_))
        ));
        assert!(matches!(
            "0#%g0".parse::<Address>(),
            Err(AddressError::BadEscape(_))
        ));
        assert!(matches!(
            "0#%0".parse::<Address>(),
            Err(AddressError::BadEscape(_))
        ));
        let long = format!("0#{}", "a".repeat(MAX_ADDRESS_LEN + 1));
        assert_eq!(
            long.parse::<Address>(),
            Err(AddressError::TooLong {
                len: MAX_ADDRESS_LEN + 1
            })
        );
        let max = format!("0#{}", "a".repeat(MAX_ADDRESS_LEN));
        assert!(max.parse::<Address>().is_ok());
        assert_eq!(
            Address::new(TransportType::LOCAL, vec![0; MAX_ADDRESS_LEN + 1]),
            Err(AddressError::TooLong {
                len: MAX_ADDRESS_LEN + 1
            })
        );
    }

    #[test]
    fn random_local_addresses_differ() {
        let mut rng = SeededRandom::new(1);
        let a = Address::random_local(&mut rng).unwrap();
        let b = Address::random_local(&mut rng).unwrap();
        assert_ne!(a, b);
        assert!(a.is_local());
        assert_eq!(a.value().len(), 32);
        assert!(a.value().iter().all(|b| b.is_ascii_hexdigit()));
    }

    proptest! {
        #[test]
        fn text_form_round_trips(t in any::<u8>(), v in proptest::collection::vec(any::<u8>(), 0..=MAX_ADDRESS_LEN)) {
            let a = Address::new(TransportType(t), v).unwrap();
            let text = a.to_string();
            prop_assert!(!text.contains('\n'));
            prop_assert_eq!(text.parse::<Address>().unwrap(), a);
        }

        #[test]
        fn parsing_any_text_never_panics(s in ".{0,300}") {
            let _ = s.parse::<Address>();
        }
    }
}
