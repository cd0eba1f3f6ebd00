//! Transport messages: layer 2 of the core.
//!
//! A [`TransportMessage`] is what travels between nodes and between workers: a version,
//! an onward route, a return route and payload bytes. On the wire it is CBOR (written
//! with `serde` and `ciborium`); see docs/PROTOCOL.md for every byte.
//!
//! Decoding is strict and bounded. Routes longer than [`MAX_ROUTE_LEN`], address values
//! longer than [`MAX_ADDRESS_LEN`] and payloads larger than [`MAX_PAYLOAD_LEN`] are
//! typed errors. A route stops collecting addresses at its limit and skips the rest;
//! a byte string is read in full (it is within the input, so within the frame) and
//! then refused if too long. No allocation is larger than the input itself.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::routing::{Address, Route, TransportType, MAX_ADDRESS_LEN, MAX_ROUTE_LEN};

/// The transport message version this implementation writes and reads.
pub const MESSAGE_VERSION: u8 = 1;

/// The largest payload, in bytes, that encoders write and decoders accept.
pub const MAX_PAYLOAD_LEN: usize = 128 * 1024;

/// The largest encoding of a message that respects every limit: the version, two
/// routes of [`MAX_ROUTE_LEN`] addresses with transport types above 23 and values of
/// [`MAX_ADDRESS_LEN`] bytes, and a payload of [`MAX_PAYLOAD_LEN`] bytes.
pub const MAX_ENCODED_LEN: usize =
    1 + 1 + 2 * (2 + MAX_ROUTE_LEN * (1 + 2 + 2 + MAX_ADDRESS_LEN)) + 5 + MAX_PAYLOAD_LEN;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The input ended before the message did.
    #[error("message is truncated")]
    Truncated,
    /// Bytes follow the end of the message.
    #[error("{extra} bytes follow the end of the message")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The message has a version this implementation does not speak.
    #[error("message version {0} is not supported (this implementation speaks {MESSAGE_VERSION})")]
    UnknownVersion(u64),
    /// A route has more than [`MAX_ROUTE_LEN`] addresses.
    #[error("{which} route has {len} addresses, the limit is {MAX_ROUTE_LEN}")]
    RouteTooLong {
        /// `"onward"` or `"return"`.
        which: &'static str,
        /// How many addresses it has.
        len: usize,
    },
    /// An address value is longer than [`MAX_ADDRESS_LEN`] bytes.
    #[error("an address value is {len} bytes, the limit is {MAX_ADDRESS_LEN}")]
    AddressTooLong {
        /// Length of the value.
        len: usize,
    },
    /// A transport type does not fit in one byte.
    #[error("transport type {0} is out of range 0..=255")]
    TransportTypeOutOfRange(u64),
    /// The payload is larger than [`MAX_PAYLOAD_LEN`] bytes.
    #[error("payload is {len} bytes, the limit is {MAX_PAYLOAD_LEN}")]
    PayloadTooLarge {
        /// Length of the payload.
        len: usize,
    },
    /// The bytes are not CBOR of the expected shape.
    #[error("malformed message{}: {reason}", offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Malformed {
        /// Where in the input the problem was found, when known.
        offset: Option<usize>,
        /// What was wrong.
        reason: String,
    },
}

/// A message as it travels between workers and nodes.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TransportMessage {
    /// Where the message goes: the first address is the next hop.
    pub onward_route: Route,
    /// How a reply gets back: the first address is the way back from here.
    pub return_route: Route,
    /// The application's bytes, opaque to routing.
    pub payload: Vec<u8>,
}

impl fmt::Debug for TransportMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportMessage")
            .field("onward_route", &self.onward_route)
            .field("return_route", &self.return_route)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl TransportMessage {
    /// A message with the given routes and payload.
    pub fn new(onward_route: Route, return_route: Route, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            onward_route,
            return_route,
            payload: payload.into(),
        }
    }

    /// Checks every limit that encoding enforces.
    ///
    /// # Errors
    ///
    /// The [`MessageError`] naming the first limit exceeded.
    pub fn check_limits(&self) -> Result<(), MessageError> {
        for (which, route) in [
            ("onward", &self.onward_route),
            ("return", &self.return_route),
        ] {
            if route.len() > MAX_ROUTE_LEN {
                return Err(MessageError::RouteTooLong {
                    which,
                    len: route.len(),
                });
            }
            if let Some(a) = route.iter().find(|a| a.value().len() > MAX_ADDRESS_LEN) {
                return Err(MessageError::AddressTooLong {
                    len: a.value().len(),
                });
            }
        }
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(MessageError::PayloadTooLarge {
                len: self.payload.len(),
            });
        }
        Ok(())
    }

    /// Appends the encoding of this message to `out`.
    ///
    /// # Errors
    ///
    /// The [`MessageError`] naming the limit exceeded; `out` is then unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        self.check_limits()?;
        let start = out.len();
        ciborium::into_writer(&WireMessage(self), &mut *out).map_err(|e| {
            out.truncate(start);
            MessageError::Malformed {
                offset: None,
                reason: e.to_string(),
            }
        })
    }

    /// The encoding of this message in a new buffer.
    ///
    /// # Errors
    ///
    /// As [`TransportMessage::encode`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes one message that fills `input` exactly.
    ///
    /// # Errors
    ///
    /// A [`MessageError`] saying what was wrong with the input.
    pub fn decode(input: &[u8]) -> Result<Self, MessageError> {
        let mut reader = input;
        let raw: RawMessage = from_cbor(&mut reader).map_err(map_cbor_error)?;
        let message = raw.into_message()?;
        if !reader.is_empty() {
            return Err(MessageError::TrailingBytes {
                extra: reader.len(),
            });
        }
        Ok(message)
    }
}

/// The most scratch space [`from_cbor`] keeps per thread.
const SCRATCH_MAX: usize = MAX_PAYLOAD_LEN;

thread_local! {
    /// Scratch space for [`from_cbor`], kept between calls so it is zeroed once.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Deserializes one CBOR value from the front of `input`, advancing it.
///
/// ciborium reads a byte string through a scratch buffer one chunk at a time and grows
/// the output by appending, so with its default 4 KiB scratch a 64 KiB payload costs a
/// dozen reallocations, each copying what was read so far. A scratch as large as the
/// input (up to [`SCRATCH_MAX`]) reads it in one chunk into one exact allocation.
/// The output is the same either way; no allocation exceeds what the input justifies.
pub(crate) fn from_cbor<T: serde::de::DeserializeOwned>(
    input: &mut &[u8],
) -> Result<T, ciborium::de::Error<std::io::Error>> {
    let wanted = input.len().clamp(4096, SCRATCH_MAX);
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            if scratch.len() < wanted {
                scratch.resize(wanted, 0);
            }
            ciborium::de::from_reader_with_buffer(&mut *input, &mut scratch[..wanted])
        }
        // Only a decode nested inside another on this thread gets here.
        Err(_) => ciborium::from_reader(&mut *input),
    })
}

fn map_cbor_error(e: ciborium::de::Error<std::io::Error>) -> MessageError {
    use ciborium::de::Error;
    match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => MessageError::Truncated,
        Error::Io(io) => MessageError::Malformed {
            offset: None,
            reason: io.to_string(),
        },
        Error::Syntax(offset) => MessageError::Malformed {
            offset: Some(offset),
            reason: "invalid CBOR".into(),
        },
        Error::Semantic(offset, reason) => MessageError::Malformed { offset, reason },
        Error::RecursionLimitExceeded => MessageError::Malformed {
            offset: None,
            reason: "nested too deeply".into(),
        },
    }
}

// ---- encoding -------------------------------------------------------------------

struct WireMessage<'a>(&'a TransportMessage);
struct WireRoute<'a>(&'a Route);
struct WireAddress<'a>(&'a Address);
struct WireBytes<'a>(&'a [u8]);

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&MESSAGE_VERSION)?;
        t.serialize_element(&WireRoute(&self.0.onward_route))?;
        t.serialize_element(&WireRoute(&self.0.return_route))?;
        t.serialize_element(&WireBytes(&self.0.payload))?;
        t.end()
    }
}

impl Serialize for WireRoute<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for address in self.0.iter() {
            seq.serialize_element(&WireAddress(address))?;
        }
        seq.end()
    }
}

impl Serialize for WireAddress<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.0.transport().0)?;
        t.serialize_element(&WireBytes(self.0.value()))?;
        t.end()
    }
}

impl Serialize for WireBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

// ---- decoding -------------------------------------------------------------------
//
// The visitors never fail on an exceeded limit: they record it as data and skip the
// rest of the item, so the caller gets a typed error rather than serde's string, and
// nothing past a limit is stored.

enum RawMessage {
    UnknownVersion(u64),
    Known {
        onward: RawRoute,
        back: RawRoute,
        payload: RawBytes,
    },
}

impl RawMessage {
    fn into_message(self) -> Result<TransportMessage, MessageError> {
        match self {
            RawMessage::UnknownVersion(v) => Err(MessageError::UnknownVersion(v)),
            RawMessage::Known {
                onward,
                back,
                payload,
            } => {
                let onward_route = onward.into_route("onward")?;
                let return_route = back.into_route("return")?;
                let RawBytes(payload) = payload;
                if payload.len() > MAX_PAYLOAD_LEN {
                    return Err(MessageError::PayloadTooLarge { len: payload.len() });
                }
                Ok(TransportMessage {
                    onward_route,
                    return_route,
                    payload,
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(4, MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = RawMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of version, onward route, return route and payload")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawMessage, A::Error> {
        let version: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing version"))?;
        if version != u64::from(MESSAGE_VERSION) {
            // The rest may be laid out differently: stop reading here.
            return Ok(RawMessage::UnknownVersion(version));
        }
        let onward = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing onward route"))?;
        let back = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing return route"))?;
        let payload = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing payload"))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("message array has more than 4 elements"));
        }
        Ok(RawMessage::Known {
            onward,
            back,
            payload,
        })
    }
}

enum RawRoute {
    Ok(Vec<RawAddress>),
    TooLong(usize),
}

impl RawRoute {
    fn into_route(self, which: &'static str) -> Result<Route, MessageError> {
        match self {
            RawRoute::TooLong(len) => Err(MessageError::RouteTooLong { which, len }),
            RawRoute::Ok(addresses) => addresses
                .into_iter()
                .map(RawAddress::into_address)
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(RouteVisitor)
    }
}

struct RouteVisitor;

impl<'de> Visitor<'de> for RouteVisitor {
    type Value = RawRoute;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of addresses")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawRoute, A::Error> {
        let mut addresses = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_ROUTE_LEN));
        while let Some(address) = seq.next_element::<RawAddress>()? {
            addresses.push(address);
            if addresses.len() > MAX_ROUTE_LEN {
                let mut len = addresses.len();
                drop(addresses);
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    len = len.saturating_add(1);
                }
                return Ok(RawRoute::TooLong(len));
            }
        }
        Ok(RawRoute::Ok(addresses))
    }
}

enum RawAddress {
    Ok(Address),
    BadType(u64),
    TooLong(usize),
}

impl RawAddress {
    fn into_address(self) -> Result<Address, MessageError> {
        match self {
            RawAddress::Ok(a) => Ok(a),
            RawAddress::BadType(t) => Err(MessageError::TransportTypeOutOfRange(t)),
            RawAddress::TooLong(len) => Err(MessageError::AddressTooLong { len }),
        }
    }
}

impl<'de> Deserialize<'de> for RawAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(2, AddressVisitor)
    }
}

struct AddressVisitor;

impl<'de> Visitor<'de> for AddressVisitor {
    type Value = RawAddress;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of transport type and value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawAddress, A::Error> {
        let kind: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing transport type"))?;
        let value: RawBytes = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing address value"))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("address array has more than 2 elements"));
        }
        let RawBytes(value) = value;
        let Ok(kind) = u8::try_from(kind) else {
            return Ok(RawAddress::BadType(kind));
        };
        if value.len() > MAX_ADDRESS_LEN {
            return Ok(RawAddress::TooLong(value.len()));
        }
        Ok(RawAddress::Ok(Address::from_checked_parts(
            TransportType(kind),
            value,
        )))
    }
}

/// A CBOR byte string. The decoder has already read it from the input, so its size is
/// bounded by the input's.
struct RawBytes(Vec<u8>);

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = RawBytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawBytes, E> {
        Ok(RawBytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<RawBytes, E> {
        Ok(RawBytes(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{route, tcp};
    use proptest::prelude::*;

    fn sample() -> TransportMessage {
        TransportMessage::new(
            route!["h1", tcp("127.0.0.1:4000"), "echoer"],
            route!["app"],
            b"hello".to_vec(),
        )
    }

    #[test]
    fn encodes_to_the_documented_bytes() {
        let m = TransportMessage::new(route!["ab"], route![tcp("x")], b"hi".to_vec());
        let bytes = m.to_bytes().unwrap();
        // [1, [[0, h'6162']], [[1, h'78']], h'6869']
        let expected = [
            0x84, 0x01, 0x81, 0x82, 0x00, 0x42, b'a', b'b', 0x81, 0x82, 0x01, 0x41, b'x', 0x42,
            b'h', b'i',
        ];
        assert_eq!(bytes, expected);
        assert_eq!(TransportMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(TransportMessage::decode(&m.to_bytes().unwrap()).unwrap(), m);
        let empty = TransportMessage::default();
        assert_eq!(
            TransportMessage::decode(&empty.to_bytes().unwrap()).unwrap(),
            empty
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().to_bytes().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                TransportMessage::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(
            TransportMessage::decode(&bytes[..bytes.len() - 1]),
            Err(MessageError::Truncated)
        );
        assert_eq!(TransportMessage::decode(&[]), Err(MessageError::Truncated));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = sample().to_bytes().unwrap();
        bytes.push(0);
        assert_eq!(
            TransportMessage::decode(&bytes),
            Err(MessageError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn unknown_version_is_typed() {
        let mut bytes = sample().to_bytes().unwrap();
        bytes[1] = 0x02;
        assert_eq!(
            TransportMessage::decode(&bytes),
            Err(MessageError::UnknownVersion(2))
        );
        // A future version may lay out the rest differently.
        assert_eq!(
            TransportMessage::decode(&[0x82, 0x07, 0xf6]),
            Err(MessageError::UnknownVersion(7))
        );
    }

    #[test]
    fn limits_are_enforced_on_both_sides() {
        let long_route: Route = (0..=MAX_ROUTE_LEN)
            .map(|i| Address::local(i.to_string()))
            .collect();
        let m = TransportMessage::new(long_route, route![], vec![]);
        assert_eq!(
            m.to_bytes(),
            Err(MessageError::RouteTooLong {
                which: "onward",
                len: 33
            })
        );
        let bytes = encode_unchecked(&m);
        assert_eq!(
            TransportMessage::decode(&bytes),
            Err(MessageError::RouteTooLong {
                which: "onward",
                len: 33
            })
        );

        let m = TransportMessage::new(route![], route![Address::local("a".repeat(256))], vec![]);
        assert_eq!(m.to_bytes(), Err(MessageError::AddressTooLong { len: 256 }));
        assert_eq!(
            TransportMessage::decode(&encode_unchecked(&m)),
            Err(MessageError::AddressTooLong { len: 256 })
        );

        let m = TransportMessage::new(route![], route![], vec![0; MAX_PAYLOAD_LEN + 1]);
        let len = MAX_PAYLOAD_LEN + 1;
        assert_eq!(m.to_bytes(), Err(MessageError::PayloadTooLarge { len }));
        assert_eq!(
            TransportMessage::decode(&encode_unchecked(&m)),
            Err(MessageError::PayloadTooLarge { len })
        );

        // A transport type that does not fit in a byte: [1, [[256, h'']], [], h'']
        let bytes = [0x84, 0x01, 0x81, 0x82, 0x19, 0x01, 0x00, 0x40, 0x80, 0x40];
        assert_eq!(
            TransportMessage::decode(&bytes),
            Err(MessageError::TransportTypeOutOfRange(256))
        );
    }

    #[test]
    fn the_largest_message_fits_the_documented_bound() {
        let address = Address::new(TransportType(255), vec![b'x'; MAX_ADDRESS_LEN]).unwrap();
        let full: Route = std::iter::repeat_n(address, MAX_ROUTE_LEN).collect();
        let m = TransportMessage::new(full.clone(), full, vec![7; MAX_PAYLOAD_LEN]);
        let bytes = m.to_bytes().unwrap();
        assert!(
            bytes.len() <= MAX_ENCODED_LEN,
            "{} > {MAX_ENCODED_LEN}",
            bytes.len()
        );
        assert_eq!(TransportMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // A byte string that claims 2^63 bytes, and an array that claims 2^32 elements.
        let claims_huge_payload = [
            0x84, 0x01, 0x80, 0x80, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            TransportMessage::decode(&claims_huge_payload),
            Err(MessageError::Truncated)
        );
        let claims_huge_route = [0x84, 0x01, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            TransportMessage::decode(&claims_huge_route),
            Err(MessageError::Truncated)
        );
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        for bytes in [
            &[0xa0][..],                                             // a map
            &[0x83, 0x01, 0x80, 0x80],                               // three elements
            &[0x85, 0x01, 0x80, 0x80, 0x40, 0x00],                   // five elements
            &[0x84, 0x01, 0x80, 0x80, 0x81, 0x00], // payload as an array of integers
            &[0x84, 0x01, 0x81, 0x82, 0x00, 0x81, 0x00, 0x80, 0x40], // address value as an array
            &[0x84, 0x20, 0x80, 0x80, 0x40],       // negative version
            &[0xff],                               // a lone break
        ] {
            assert!(
                matches!(
                    TransportMessage::decode(bytes),
                    Err(MessageError::Malformed { .. })
                ),
                "{bytes:02x?} gave {:?}",
                TransportMessage::decode(bytes)
            );
        }
    }

    /// Encodes without the limit checks, to build oversized inputs for the decoder.
    fn encode_unchecked(m: &TransportMessage) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&WireMessage(m), &mut out).unwrap();
        out
    }

    pub(crate) fn arb_address() -> impl Strategy<Value = Address> {
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(t, v)| Address::new(TransportType(t), v).unwrap())
    }

    fn arb_route() -> impl Strategy<Value = Route> {
        proptest::collection::vec(arb_address(), 0..=MAX_ROUTE_LEN).prop_map(Route::from_iter)
    }

    proptest! {
        #[test]
        fn arbitrary_messages_round_trip(
            onward in arb_route(),
            back in arb_route(),
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let m = TransportMessage::new(onward, back, payload);
            let bytes = m.to_bytes().unwrap();
            prop_assert!(bytes.len() <= MAX_ENCODED_LEN);
            prop_assert_eq!(TransportMessage::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = TransportMessage::decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = sample().to_bytes().unwrap();
            let i = index.index(bytes.len());
            bytes[i] = byte;
            let _ = TransportMessage::decode(&bytes);
        }
    }
}
