//! Transport messages: layer 2 of the core.
//!
//! A [`TransportMessage`] is what travels between nodes and between workers: a version,
//! an onward route, a return route and payload bytes. On the wire it is canonical CBOR
//! (shortest forms, definite lengths); see docs/PROTOCOL.md for every byte.
//!
//! Decoding is strict and bounded. Only the one encoding an encoder writes is accepted.
//! Routes longer than [`MAX_ROUTE_LEN`], address values longer than [`MAX_ADDRESS_LEN`]
//! and payloads larger than [`MAX_PAYLOAD_LEN`] are typed errors, found from the
//! declared lengths before anything is read; a byte string is refused as truncated if
//! its declared length runs past the input. Nothing is allocated beyond what the input
//! holds.

use std::fmt;

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
        check_route_limits(&self.onward_route, &self.return_route)?;
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(MessageError::PayloadTooLarge {
                len: self.payload.len(),
            });
        }
        Ok(())
    }

    /// The exact length of this message's encoding.
    pub fn encoded_len(&self) -> usize {
        envelope_head_len(&self.onward_route, &self.return_route, self.payload.len())
            + self.payload.len()
    }

    /// Appends the encoding of this message to `out`.
    ///
    /// # Errors
    ///
    /// The [`MessageError`] naming the limit exceeded; `out` is then unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        self.check_limits()?;
        out.reserve(self.encoded_len());
        self.encode_unchecked(out);
        Ok(())
    }

    /// Writes the encoding without checking limits (tests use it to build oversized
    /// inputs for the decoder).
    fn encode_unchecked(&self, out: &mut Vec<u8>) {
        write_envelope_head(
            &self.onward_route,
            &self.return_route,
            self.payload.len(),
            out,
        );
        out.extend_from_slice(&self.payload);
    }

    /// Appends everything of the encoding of a message with these routes and a payload
    /// of `payload_len` bytes except the payload itself, which the caller appends: a
    /// payload made in place after its head is then never copied.
    ///
    /// # Errors
    ///
    /// The [`MessageError`] naming the limit exceeded; `out` is then unchanged.
    pub(crate) fn encode_head(
        onward_route: &Route,
        return_route: &Route,
        payload_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), MessageError> {
        check_route_limits(onward_route, return_route)?;
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(MessageError::PayloadTooLarge { len: payload_len });
        }
        write_envelope_head(onward_route, return_route, payload_len, out);
        Ok(())
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
    /// Only the encoding an encoder writes is accepted (docs/PROTOCOL.md §3), so every
    /// message has exactly one encoding.
    ///
    /// # Errors
    ///
    /// A [`MessageError`] saying what was wrong with the input.
    pub fn decode(input: &[u8]) -> Result<Self, MessageError> {
        MessageView::decode(input).map(|view| view.into_message(input))
    }
}

/// A decoded message whose payload still lies in the input, at `payload`: the node
/// core opens a channel record where it lies in the frame it arrived in.
pub(crate) struct MessageView {
    pub(crate) onward_route: Route,
    pub(crate) return_route: Route,
    pub(crate) payload: std::ops::Range<usize>,
}

impl MessageView {
    /// As [`TransportMessage::decode`], without copying the payload.
    pub(crate) fn decode(input: &[u8]) -> Result<Self, MessageError> {
        let mut reader = Reader { input, pos: 0 };
        let items = reader.array()?;
        if items == 0 {
            return Err(reader.malformed(0, "message array is empty"));
        }
        let version = reader.unsigned()?;
        if version != u64::from(MESSAGE_VERSION) {
            // The rest may be laid out differently: stop reading here.
            return Err(MessageError::UnknownVersion(version));
        }
        if items != 4 {
            return Err(reader.malformed(0, "message array does not have 4 items"));
        }
        let onward_route = reader.route("onward")?;
        let return_route = reader.route("return")?;
        let len = reader.bytes_len()?;
        if len > MAX_PAYLOAD_LEN {
            return Err(MessageError::PayloadTooLarge { len });
        }
        let start = reader.pos;
        reader.take(len)?;
        if reader.pos < input.len() {
            return Err(MessageError::TrailingBytes {
                extra: input.len() - reader.pos,
            });
        }
        Ok(MessageView {
            onward_route,
            return_route,
            payload: start..reader.pos,
        })
    }

    /// The message with its payload copied out of `input`, the bytes it was decoded from.
    pub(crate) fn into_message(self, input: &[u8]) -> TransportMessage {
        TransportMessage {
            onward_route: self.onward_route,
            return_route: self.return_route,
            payload: input.get(self.payload).unwrap_or_default().to_vec(),
        }
    }
}

/// Checks the route limits encoding enforces.
fn check_route_limits(onward_route: &Route, return_route: &Route) -> Result<(), MessageError> {
    for (which, route) in [("onward", onward_route), ("return", return_route)] {
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
    Ok(())
}

/// The length of what [`write_envelope_head`] writes.
pub(crate) fn envelope_head_len(
    onward_route: &Route,
    return_route: &Route,
    payload_len: usize,
) -> usize {
    let route_len = |route: &Route| {
        head_len(route.len() as u64)
            + route
                .iter()
                .map(|a| {
                    1 + head_len(a.transport().0.into())
                        + head_len(a.value().len() as u64)
                        + a.value().len()
                })
                .sum::<usize>()
    };
    1 + 1 + route_len(onward_route) + route_len(return_route) + head_len(payload_len as u64)
}

/// Writes the envelope up to and including the payload's head.
fn write_envelope_head(
    onward_route: &Route,
    return_route: &Route,
    payload_len: usize,
    out: &mut Vec<u8>,
) {
    write_head(out, MAJOR_ARRAY, 4);
    write_head(out, MAJOR_UNSIGNED, MESSAGE_VERSION.into());
    for route in [onward_route, return_route] {
        write_head(out, MAJOR_ARRAY, route.len() as u64);
        for address in route.iter() {
            write_head(out, MAJOR_ARRAY, 2);
            write_head(out, MAJOR_UNSIGNED, address.transport().0.into());
            write_head(out, MAJOR_BYTES, address.value().len() as u64);
            out.extend_from_slice(address.value());
        }
    }
    write_head(out, MAJOR_BYTES, payload_len as u64);
}

// ---- the CBOR subset of the envelope --------------------------------------------------
//
// The envelope uses three CBOR major types, each item a "head" (major type and a
// number, in its shortest form) perhaps followed by bytes. Coding them here rather than
// through serde costs one copy of the payload each way and a few hundred instructions
// per message, where the generic path cost two copies and thousands of instructions
// (docs/ARCHITECTURE.md, "The message envelope"). Tests check the output byte for byte
// against `ciborium` encoding the same structure through serde.

pub(crate) const MAJOR_UNSIGNED: u8 = 0;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;

/// Length of the shortest head carrying `value`.
fn head_len(value: u64) -> usize {
    match value {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Writes the shortest head of major type `major` carrying `value`.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    // Each arm's conversion cannot truncate: the range was matched.
    match value {
        0..=23 => out.push(m | value as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, value as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// Appends `bytes` as one canonical CBOR byte string (the encoding of [`Bytes`] bodies,
/// written without serde).
///
/// [`Bytes`]: crate::api::Bytes
#[cfg_attr(not(feature = "runtime"), allow(dead_code))]
pub(crate) fn write_byte_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(head_len(bytes.len() as u64) + bytes.len());
    write_head(out, MAJOR_BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The content of `input` if `input` is exactly one canonical CBOR byte string.
#[cfg_attr(not(feature = "runtime"), allow(dead_code))]
pub(crate) fn read_byte_string(input: &[u8]) -> Option<&[u8]> {
    let mut reader = Reader { input, pos: 0 };
    let len = reader.bytes_len().ok()?;
    let content = reader.take(len).ok()?;
    (reader.pos == input.len()).then_some(content)
}

/// Reads the envelope (and the other canonical CBOR the core codes by hand, such as
/// error reports) from a byte slice.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// `TrailingBytes` unless the whole input was read.
    pub(crate) fn finish(&self) -> Result<(), MessageError> {
        match self.input.len().saturating_sub(self.pos) {
            0 => Ok(()),
            extra => Err(MessageError::TrailingBytes { extra }),
        }
    }

    /// Reads a text string of at most `max` bytes.
    pub(crate) fn text(&mut self, max: usize) -> Result<&'a str, MessageError> {
        let at = self.pos;
        let len = usize::try_from(self.head(MAJOR_TEXT, "a text string")?).unwrap_or(usize::MAX);
        if len > max {
            return Err(self.malformed(at, "text string is too long"));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.malformed(at, "text string is not UTF-8"))
    }

    fn malformed(&self, offset: usize, reason: &str) -> MessageError {
        MessageError::Malformed {
            offset: Some(offset),
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        let end = self.pos.checked_add(n).ok_or(MessageError::Truncated)?;
        let bytes = self
            .input
            .get(self.pos..end)
            .ok_or(MessageError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    /// Reads a head of major type `major` and returns its number.
    fn head(&mut self, major: u8, what: &str) -> Result<u64, MessageError> {
        let at = self.pos;
        let initial = *self.take(1)?.first().ok_or(MessageError::Truncated)?;
        if initial >> 5 != major {
            return Err(self.malformed(at, &format!("expected {what}")));
        }
        let (value, least) = match initial & 0x1f {
            info @ 0..=23 => return Ok(info.into()),
            24 => (u64::from(self.be::<1>()?[0]), 24),
            25 => (u16::from_be_bytes(self.be()?).into(), 0x100),
            26 => (u32::from_be_bytes(self.be()?).into(), 0x1_0000),
            27 => (u64::from_be_bytes(self.be()?), 0x1_0000_0000),
            31 => return Err(self.malformed(at, "indefinite lengths are not allowed")),
            _ => return Err(self.malformed(at, "reserved additional information")),
        };
        if value < least {
            return Err(self.malformed(at, "integer or length not in its shortest form"));
        }
        Ok(value)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        self.take(N)?
            .try_into()
            .map_err(|_| MessageError::Truncated)
    }

    pub(crate) fn unsigned(&mut self) -> Result<u64, MessageError> {
        self.head(MAJOR_UNSIGNED, "an unsigned integer")
    }

    pub(crate) fn array(&mut self) -> Result<u64, MessageError> {
        self.head(MAJOR_ARRAY, "an array")
    }

    /// Reads the head of a byte string and returns the length it declares.
    fn bytes_len(&mut self) -> Result<usize, MessageError> {
        let len = self.head(MAJOR_BYTES, "a byte string")?;
        Ok(usize::try_from(len).unwrap_or(usize::MAX))
    }

    pub(crate) fn route(&mut self, which: &'static str) -> Result<Route, MessageError> {
        let len = self.array()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_ROUTE_LEN {
            return Err(MessageError::RouteTooLong { which, len });
        }
        // Straight into the route (inline up to its inline length, no list made on
        // the way); each address read takes input, so a false count fails at its end.
        (0..len).map(|_| self.address()).collect()
    }

    /// Reads one address: an array of its transport type and value.
    pub(crate) fn address(&mut self) -> Result<Address, MessageError> {
        let at = self.pos;
        if self.array()? != 2 {
            return Err(self.malformed(at, "address array does not have 2 items"));
        }
        let kind = self.unsigned()?;
        let kind = u8::try_from(kind).map_err(|_| MessageError::TransportTypeOutOfRange(kind))?;
        let len = self.bytes_len()?;
        if len > MAX_ADDRESS_LEN {
            return Err(MessageError::AddressTooLong { len });
        }
        let value = self.take(len)?;
        Ok(Address::from_checked_parts(TransportType(kind), value))
    }
}

// The serde CBOR helper below is for message bodies of the async API (`api`); the core
// itself codes the envelope by hand.

/// The most scratch space [`from_cbor`] keeps per thread.
#[cfg(feature = "runtime")]
const SCRATCH_MAX: usize = MAX_PAYLOAD_LEN;

#[cfg(feature = "runtime")]
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
#[cfg(feature = "runtime")]
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
        // Every prefix is well formed as far as it goes, so each ends early: `Truncated`.
        let bytes = sample().to_bytes().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(
                TransportMessage::decode(&bytes[..cut]),
                Err(MessageError::Truncated),
                "cut at {cut}"
            );
        }
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
        let mut out = vec![1, 2];
        assert_eq!(
            TransportMessage::encode_head(&route![], &route![], len, &mut out),
            Err(MessageError::PayloadTooLarge { len })
        );
        assert_eq!(out, [1, 2], "nothing written on error");
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
        // The bound is exact: this is the largest message there is.
        assert_eq!(bytes.len(), MAX_ENCODED_LEN);
        assert_eq!(m.encoded_len(), MAX_ENCODED_LEN);
        assert_eq!(TransportMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn heads_take_the_shortest_form_at_every_boundary() {
        // (value, the head of a byte string carrying it)
        let cases: [(u64, &[u8]); 9] = [
            (0, &[0x40]),
            (23, &[0x57]),
            (24, &[0x58, 24]),
            (255, &[0x58, 0xff]),
            (256, &[0x59, 0x01, 0x00]),
            (0xffff, &[0x59, 0xff, 0xff]),
            (0x1_0000, &[0x5a, 0x00, 0x01, 0x00, 0x00]),
            (0xffff_ffff, &[0x5a, 0xff, 0xff, 0xff, 0xff]),
            (0x1_0000_0000, &[0x5b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (value, head) in cases {
            let mut out = Vec::new();
            write_head(&mut out, MAJOR_BYTES, value);
            assert_eq!(out, head, "head of {value}");
            assert_eq!(head_len(value), head.len(), "length of the head of {value}");
        }
    }

    #[test]
    fn the_encoded_length_is_exact_for_every_payload_head() {
        for len in [
            0,
            23,
            24,
            255,
            256,
            0xffff,
            0x1_0000,
            100_000,
            MAX_PAYLOAD_LEN,
        ] {
            let m = TransportMessage::new(route!["a"], route!["b"], vec![1; len]);
            assert_eq!(
                m.encoded_len(),
                m.to_bytes().unwrap().len(),
                "payload {len}"
            );
        }
    }

    #[test]
    fn a_head_for_the_largest_payload_is_written_and_one_byte_more_is_refused() {
        let (onward, back) = (route!["a"], route!["b"]);
        let mut out = Vec::new();
        TransportMessage::encode_head(&onward, &back, MAX_PAYLOAD_LEN, &mut out).unwrap();
        out.extend_from_slice(&vec![0; MAX_PAYLOAD_LEN]);
        assert_eq!(
            TransportMessage::decode(&out).unwrap().payload.len(),
            MAX_PAYLOAD_LEN
        );
        let mut out = Vec::new();
        assert_eq!(
            TransportMessage::encode_head(&onward, &back, MAX_PAYLOAD_LEN + 1, &mut out),
            Err(MessageError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN + 1
            })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn an_indefinite_length_is_named_apart_from_a_reserved_head() {
        // A payload written as an indefinite-length byte string (0x5f), then one with
        // the reserved additional information 28 (0x5c).
        let reason = |head: u8| match TransportMessage::decode(&[0x84, 0x01, 0x80, 0x80, head]) {
            Err(MessageError::Malformed {
                offset: Some(4),
                reason,
            }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(0x5f), "indefinite lengths are not allowed");
        assert_eq!(reason(0x5c), "reserved additional information");
    }

    #[test]
    fn a_bytes_body_reads_back_and_only_when_canonical_and_whole() {
        for len in [0, 23, 24, 300, 70_000] {
            let body = vec![9u8; len];
            let mut out = Vec::new();
            write_byte_string(&mut out, &body);
            assert_eq!(read_byte_string(&out), Some(body.as_slice()), "{len} bytes");
            let mut longer = out.clone();
            longer.push(0);
            assert_eq!(read_byte_string(&longer), None, "trailing byte after {len}");
            assert_eq!(
                read_byte_string(&out[..out.len() - 1]),
                None,
                "truncated {len}"
            );
        }
        // Not in its shortest form, and not a byte string.
        assert_eq!(read_byte_string(&[0x58, 0x01, 0xaa]), None);
        assert_eq!(read_byte_string(&[0x61, b'a']), None);
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // A byte string that claims 2^63 bytes, and an array that claims 2^32 elements.
        let claims_huge_payload = [
            0x84, 0x01, 0x80, 0x80, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            TransportMessage::decode(&claims_huge_payload),
            Err(MessageError::PayloadTooLarge {
                len: (i64::MAX as u64) as usize
            })
        );
        // Within the limit but past the end of the input.
        let claims_more_than_given = [0x84, 0x01, 0x80, 0x80, 0x59, 0x01, 0x00, 0xaa];
        assert_eq!(
            TransportMessage::decode(&claims_more_than_given),
            Err(MessageError::Truncated)
        );
        let claims_huge_route = [0x84, 0x01, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            TransportMessage::decode(&claims_huge_route),
            Err(MessageError::RouteTooLong {
                which: "onward",
                len: 1 << 32
            })
        );
        // Declared lengths over the limits are refused before the bytes are looked for.
        let claims_huge_address = [0x84, 0x01, 0x81, 0x82, 0x00, 0x59, 0x01, 0x00];
        assert_eq!(
            TransportMessage::decode(&claims_huge_address),
            Err(MessageError::AddressTooLong { len: 256 })
        );
        let claims_large_payload = [0x84, 0x01, 0x80, 0x80, 0x5a, 0x00, 0x02, 0x00, 0x01];
        assert_eq!(
            TransportMessage::decode(&claims_large_payload),
            Err(MessageError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN + 1
            })
        );
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        // Each with the offset of the head that is wrong.
        for (bytes, offset) in [
            (&[0xa0][..], 0),                                             // a map
            (&[0x83, 0x01, 0x80, 0x80], 0),                               // three elements
            (&[0x85, 0x01, 0x80, 0x80, 0x40, 0x00], 0),                   // five elements
            (&[0x84, 0x01, 0x80, 0x80, 0x81, 0x00], 4), // payload as an array of integers
            (&[0x84, 0x01, 0x81, 0x82, 0x00, 0x81, 0x00, 0x80, 0x40], 5), // address value as an array
            (&[0x84, 0x01, 0x81, 0x83, 0x00, 0x40, 0x40, 0x80, 0x40], 3), // address of 3 items
            (&[0x84, 0x20, 0x80, 0x80, 0x40], 1),                         // negative version
            (&[0xff], 0),                                                 // a lone break
        ] {
            assert!(
                matches!(
                    TransportMessage::decode(bytes),
                    Err(MessageError::Malformed { offset: Some(o), .. }) if o == offset
                ),
                "{bytes:02x?} gave {:?}",
                TransportMessage::decode(bytes)
            );
        }
    }

    /// Encodes without the limit checks, to build oversized inputs for the decoder.
    fn encode_unchecked(m: &TransportMessage) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_unchecked(&mut out);
        out
    }

    /// The reference encoding: the same structure written by `ciborium` through serde.
    fn reference_encoding(m: &TransportMessage) -> Vec<u8> {
        use ciborium::Value;
        let route = |r: &Route| {
            Value::Array(
                r.iter()
                    .map(|a| {
                        Value::Array(vec![
                            Value::Integer(a.transport().0.into()),
                            Value::Bytes(a.value().to_vec()),
                        ])
                    })
                    .collect(),
            )
        };
        let value = Value::Array(vec![
            Value::Integer(MESSAGE_VERSION.into()),
            route(&m.onward_route),
            route(&m.return_route),
            Value::Bytes(m.payload.clone()),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out).unwrap();
        out
    }

    /// The reference decoding: `ciborium`'s generic CBOR reader, then the shape.
    fn reference_decoding(bytes: &[u8]) -> Option<TransportMessage> {
        use ciborium::Value;
        let mut reader = bytes;
        let value: Value = ciborium::from_reader(&mut reader).ok()?;
        if !reader.is_empty() {
            return None;
        }
        let route = |v: &Value| -> Option<Route> {
            v.as_array()?
                .iter()
                .map(|a| match a.as_array()?.as_slice() {
                    [t, v] => {
                        let t = u8::try_from(t.as_integer()?).ok()?;
                        Address::new(TransportType(t), v.as_bytes()?.clone()).ok()
                    }
                    _ => None,
                })
                .collect()
        };
        match value.as_array()?.as_slice() {
            [version, onward, back, payload] if *version == Value::Integer(1.into()) => Some(
                TransportMessage::new(route(onward)?, route(back)?, payload.as_bytes()?.clone()),
            ),
            _ => None,
        }
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        // Each is the message [1, [], [], h''] = 84 01 80 80 40 written another way
        // (or, for the last three, with a tag or a reserved code added).
        for (bytes, what, offset) in [
            (
                &[0x98, 0x04, 0x01, 0x80, 0x80, 0x40][..],
                "array length in 2 bytes",
                0,
            ),
            (
                &[0x84, 0x18, 0x01, 0x80, 0x80, 0x40],
                "version in 2 bytes",
                1,
            ),
            (
                &[0x84, 0x19, 0x00, 0x01, 0x80, 0x80, 0x40],
                "version in 3 bytes",
                1,
            ),
            (
                &[0x84, 0x01, 0x9f, 0xff, 0x80, 0x40],
                "indefinite-length route",
                2,
            ),
            (
                &[0x9f, 0x01, 0x80, 0x80, 0x40, 0xff],
                "indefinite-length message",
                0,
            ),
            (
                &[0x84, 0x01, 0x80, 0x80, 0x5f, 0xff],
                "indefinite-length payload",
                4,
            ),
            (
                &[0x84, 0x01, 0x80, 0x80, 0x58, 0x00],
                "payload length in 2 bytes",
                4,
            ),
            (
                &[0xd8, 0x18, 0x84, 0x01, 0x80, 0x80, 0x40],
                "tagged message",
                0,
            ),
            (&[0x84, 0x01, 0x80, 0x80, 0xc2, 0x40], "tagged payload", 4),
            (
                &[0x84, 0x1c, 0x80, 0x80, 0x40],
                "reserved additional information",
                1,
            ),
        ] {
            let plain_cbor = !what.contains("tag") && !what.contains("reserved");
            assert!(
                !plain_cbor || reference_decoding(bytes).is_some(),
                "{what}: the reference should accept it"
            );
            assert!(
                matches!(
                    TransportMessage::decode(bytes),
                    Err(MessageError::Malformed {
                        offset: Some(o),
                        ..
                    }) if o == offset
                ),
                "{what}: {:?}",
                TransportMessage::decode(bytes)
            );
        }
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
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(&bytes, &reference_encoding(&m));
            let mut head = Vec::new();
            TransportMessage::encode_head(&m.onward_route, &m.return_route, m.payload.len(), &mut head).unwrap();
            prop_assert_eq!(head.len(), envelope_head_len(&m.onward_route, &m.return_route, m.payload.len()));
            head.extend_from_slice(&m.payload);
            prop_assert_eq!(&head, &bytes, "head then payload is the encoding");
            prop_assert_eq!(TransportMessage::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn mutated_messages_are_refused_or_canonical(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = sample().to_bytes().unwrap();
            let i = index.index(bytes.len());
            bytes[i] = byte;
            match TransportMessage::decode(&bytes) {
                Ok(m) => {
                    prop_assert_eq!(reference_decoding(&bytes), Some(m.clone()));
                    prop_assert_eq!(m.to_bytes().unwrap(), bytes);
                }
                // A byte changed inside an address value or the payload still decodes;
                // anything else the decoder refuses, the reference may accept only if
                // the change made a non-canonical form.
                Err(_) => {
                    if let Some(m) = reference_decoding(&bytes) {
                        prop_assert_ne!(m.to_bytes().unwrap(), bytes);
                    }
                }
            }
        }
    }

    // ---- valid encodings of random messages, and their mutations --------------------
    //
    // Random bytes are nearly always refused at their first byte or first length, so
    // they say little about the decoder. These tests start from the valid encoding of
    // a random message (routes and payloads within and at their limits), spoil it in
    // known ways and check the verdict: the error the specification names where the
    // mutation determines one, and otherwise refusal or a canonical encoding.

    /// What a head of the envelope stands for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Role {
        Message,
        Version,
        Route(&'static str),
        Address,
        Transport,
        Value,
        Payload,
    }

    /// One head of an encoding: where it starts, how long it is, what it carries.
    #[derive(Debug, Clone, Copy)]
    struct Head {
        at: usize,
        len: usize,
        major: u8,
        value: u64,
        role: Role,
    }

    /// A message's encoding, written here without the encoder (and without its limit
    /// checks), with the place of every head and of every content byte.
    struct Layout {
        bytes: Vec<u8>,
        heads: Vec<Head>,
        /// Where the address values and the payload lie.
        content: Vec<std::ops::Range<usize>>,
    }

    /// The additional information of the shortest head carrying `value`.
    fn shortest_info(value: u64) -> u8 {
        match value {
            0..=23 => value as u8,
            24..=0xff => 24,
            0x100..=0xffff => 25,
            0x1_0000..=0xffff_ffff => 26,
            _ => 27,
        }
    }

    /// A head of major type `major` carrying `value` in the form `info` (23 or less
    /// for the value itself, 24 to 27 for 1, 2, 4 or 8 bytes after the initial byte),
    /// which must be wide enough.
    fn head_bytes(major: u8, value: u64, info: u8) -> Vec<u8> {
        let width = match info {
            0..=23 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            _ => 8,
        };
        let mut out = vec![(major << 5) | info];
        out.extend_from_slice(&value.to_be_bytes()[8 - width..]);
        out
    }

    impl Layout {
        fn of(m: &TransportMessage) -> Layout {
            let mut l = Layout {
                bytes: Vec::new(),
                heads: Vec::new(),
                content: Vec::new(),
            };
            l.head(MAJOR_ARRAY, 4, Role::Message);
            l.head(MAJOR_UNSIGNED, 1, Role::Version);
            for (which, route) in [("onward", &m.onward_route), ("return", &m.return_route)] {
                l.head(MAJOR_ARRAY, route.len() as u64, Role::Route(which));
                for a in route.iter() {
                    l.head(MAJOR_ARRAY, 2, Role::Address);
                    l.head(MAJOR_UNSIGNED, a.transport().0.into(), Role::Transport);
                    l.head(MAJOR_BYTES, a.value().len() as u64, Role::Value);
                    l.content(a.value());
                }
            }
            l.head(MAJOR_BYTES, m.payload.len() as u64, Role::Payload);
            l.content(&m.payload);
            l
        }

        fn head(&mut self, major: u8, value: u64, role: Role) {
            let bytes = head_bytes(major, value, shortest_info(value));
            self.heads.push(Head {
                at: self.bytes.len(),
                len: bytes.len(),
                major,
                value,
                role,
            });
            self.bytes.extend_from_slice(&bytes);
        }

        fn content(&mut self, bytes: &[u8]) {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(bytes);
            self.content.push(start..self.bytes.len());
        }

        /// The encoding with `head` replaced by `with`.
        fn replace(&self, head: &Head, with: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(self.bytes.len() + with.len());
            out.extend_from_slice(&self.bytes[..head.at]);
            out.extend_from_slice(with);
            out.extend_from_slice(&self.bytes[head.at + head.len..]);
            out
        }
    }

    /// What the decoder must make of a mutated encoding.
    #[derive(Debug)]
    #[allow(clippy::large_enum_variant)] // a test helper; messages hold routes inline
    enum Expect {
        /// Exactly this result.
        Exactly(Result<TransportMessage, MessageError>),
        /// `Malformed`, with the offset of the head at this position.
        MalformedAt(usize),
        /// Accepted (a change inside an address value or the payload).
        Accepted,
        /// Anything, as long as it is a refusal or canonical (below).
        RefusedOrCanonical,
    }

    /// How many mutated inputs the decoder accepted and refused.
    #[derive(Debug, Default, Clone, Copy)]
    struct Tally {
        accepted: u64,
        refused: u64,
    }

    impl Tally {
        fn add(&mut self, accepted: bool) {
            if accepted {
                self.accepted += 1;
            } else {
                self.refused += 1;
            }
        }
    }

    /// Counts over a run: every mutation, the bit flips, and those whose verdict the
    /// mutation does not settle in advance (bit flips outside the content and the major
    /// type).
    #[derive(Debug, Default, Clone, Copy)]
    struct Tallies {
        all: Tally,
        flips: Tally,
        open: Tally,
    }

    /// Decodes `bytes` and checks the verdict against `expect` and against what holds
    /// for every input: an accepted input is the canonical encoding of what it decodes
    /// to, read the same way by the reference decoder; a refused input is not the
    /// canonical encoding of any message within the limits (checked where `expect`
    /// does not name the error: the reference decoder is slow in a debug build).
    /// Returns whether the decoder accepted it.
    fn check(bytes: &[u8], expect: Expect, what: &dyn fmt::Debug) -> Result<bool, TestCaseError> {
        let got = TransportMessage::decode(bytes);
        let open = matches!(expect, Expect::Accepted | Expect::RefusedOrCanonical);
        match &got {
            Ok(m) => {
                // (Compared, not printed: the inputs can be 147 KB.)
                let again = m.to_bytes();
                prop_assert!(
                    again.as_deref() == Ok(bytes),
                    "{:?}: accepted as {:?}, which does not encode to the input",
                    what,
                    m
                );
                let reference = reference_decoding(bytes);
                prop_assert_eq!(
                    reference.as_ref(),
                    Some(m),
                    "{:?}: the reference reads it otherwise",
                    what
                );
            }
            Err(e) => {
                if let MessageError::Malformed {
                    offset: Some(o), ..
                } = e
                {
                    prop_assert!(
                        *o < bytes.len(),
                        "{:?}: offset {} is past the input",
                        what,
                        o
                    );
                }
                if let Some(r) = open.then(|| reference_decoding(bytes)).flatten() {
                    let canonical = r.to_bytes();
                    prop_assert!(
                        canonical.as_deref() != Ok(bytes),
                        "{:?}: refused ({:?}) the canonical encoding of {:?}",
                        what,
                        e,
                        r
                    );
                }
            }
        }
        match expect {
            Expect::Exactly(want) => prop_assert_eq!(&got, &want, "{:?}", what),
            Expect::MalformedAt(at) => prop_assert!(
                matches!(&got, Err(MessageError::Malformed { offset: Some(o), .. }) if *o == at),
                "{:?}: expected Malformed at byte {}, got {:?}",
                what,
                at,
                got
            ),
            Expect::Accepted => prop_assert!(got.is_ok(), "{:?}: refused with {:?}", what, got),
            Expect::RefusedOrCanonical => {}
        }
        Ok(got.is_ok())
    }

    /// The mutations of one valid encoding.
    #[derive(Debug)]
    #[allow(dead_code)] // The fields are read through `Debug`, in failure messages.
    enum Mutation {
        None,
        Truncate(usize),
        Trailing(Vec<u8>),
        /// A head written in a longer form than its shortest.
        Widen(Head, u8),
        /// A head's initial byte given another major type.
        Major(Head, u8),
        /// A head's initial byte given a reserved (28 to 30) or indefinite (31) form.
        Info(Head, u8),
        /// A head's number replaced (in its shortest form).
        Set(Head, u64),
        FlipBit(usize),
    }

    /// Checks the valid encoding of `m` and its mutations: truncated at every length
    /// (at a sample of them past the first 4096 bytes), extended, each head (or, past
    /// 64 heads, a sample) written longer, with another major type, in a reserved or
    /// indefinite form, and with its number set past its limit or otherwise wrong; and
    /// single bits flipped at the positions `picks` choose.
    fn check_mutations(
        m: &TransportMessage,
        picks: &[prop::sample::Index],
        trailing: &[u8],
        tallies: &mut Tallies,
    ) -> Result<(), TestCaseError> {
        let l = Layout::of(m);
        let n = l.bytes.len();
        prop_assert_eq!(
            &l.bytes,
            &m.to_bytes().unwrap(),
            "the layout is the encoding"
        );

        let mut run = |bytes: &[u8], expect: Expect, what: Mutation| -> Result<(), TestCaseError> {
            let open = matches!(expect, Expect::RefusedOrCanonical);
            let flip = matches!(what, Mutation::FlipBit(_));
            let accepted = check(bytes, expect, &what)?;
            tallies.all.add(accepted);
            if flip {
                tallies.flips.add(accepted);
            }
            if open {
                tallies.open.add(accepted);
            }
            Ok(())
        };

        run(&l.bytes, Expect::Exactly(Ok(m.clone())), Mutation::None)?;

        // Every prefix is well formed as far as it goes.
        let cuts: Vec<usize> = if n <= 4096 {
            (0..n).collect()
        } else {
            let payload_at = l.heads.last().map_or(0, |h| h.at + h.len);
            let mut cuts: Vec<usize> = (0..payload_at.min(4096)).collect();
            cuts.extend([payload_at, payload_at + 1, n - 1]);
            cuts.extend(picks.iter().map(|p| p.index(n)));
            // With an empty payload its head ends the message: a cut there, or one past
            // it, is no prefix.
            cuts.retain(|cut| *cut < n);
            cuts
        };
        for cut in cuts {
            run(
                &l.bytes[..cut],
                Expect::Exactly(Err(MessageError::Truncated)),
                Mutation::Truncate(cut),
            )?;
        }

        let mut longer = l.bytes.clone();
        longer.extend_from_slice(trailing);
        run(
            &longer,
            Expect::Exactly(Err(MessageError::TrailingBytes {
                extra: trailing.len(),
            })),
            Mutation::Trailing(trailing.to_vec()),
        )?;

        let heads: Vec<Head> = if l.heads.len() <= 64 {
            l.heads.clone()
        } else {
            picks.iter().map(|p| *p.get(&l.heads)).collect()
        };
        for head in heads {
            let at = head.at;
            // The decoder reads in order and everything before this head is intact,
            // so each of these is refused at the head itself.
            for info in shortest_info(head.value).max(23) + 1..=27 {
                let bytes = l.replace(&head, &head_bytes(head.major, head.value, info));
                run(&bytes, Expect::MalformedAt(at), Mutation::Widen(head, info))?;
            }
            for major in (0..8).filter(|m| *m != head.major) {
                let mut bytes = l.bytes.clone();
                bytes[at] = (major << 5) | (bytes[at] & 0x1f);
                run(
                    &bytes,
                    Expect::MalformedAt(at),
                    Mutation::Major(head, major),
                )?;
            }
            for info in 28..=31 {
                let mut bytes = l.bytes.clone();
                bytes[at] = (head.major << 5) | info;
                run(&bytes, Expect::MalformedAt(at), Mutation::Info(head, info))?;
            }
            let payload_len = m.payload.len();
            let settings: Vec<(u64, Expect)> = match head.role {
                Role::Message => [0, 3, 5, 24].map(|v| (v, Expect::MalformedAt(0))).into(),
                Role::Version => [0, 2, 24, u64::MAX]
                    .map(|v| (v, Expect::Exactly(Err(MessageError::UnknownVersion(v)))))
                    .into(),
                Role::Route(which) => vec![
                    (
                        MAX_ROUTE_LEN as u64 + 1,
                        Expect::Exactly(Err(MessageError::RouteTooLong {
                            which,
                            len: MAX_ROUTE_LEN + 1,
                        })),
                    ),
                    (
                        u64::MAX,
                        Expect::Exactly(Err(MessageError::RouteTooLong {
                            which,
                            len: usize::MAX,
                        })),
                    ),
                ],
                Role::Address => vec![(1, Expect::MalformedAt(at)), (3, Expect::MalformedAt(at))],
                Role::Transport => [256, u64::MAX]
                    .map(|v| {
                        (
                            v,
                            Expect::Exactly(Err(MessageError::TransportTypeOutOfRange(v))),
                        )
                    })
                    .into(),
                Role::Value => vec![(
                    MAX_ADDRESS_LEN as u64 + 1,
                    Expect::Exactly(Err(MessageError::AddressTooLong {
                        len: MAX_ADDRESS_LEN + 1,
                    })),
                )],
                Role::Payload => {
                    let mut settings = vec![(
                        MAX_PAYLOAD_LEN as u64 + 1,
                        Expect::Exactly(Err(MessageError::PayloadTooLarge {
                            len: MAX_PAYLOAD_LEN + 1,
                        })),
                    )];
                    if payload_len < MAX_PAYLOAD_LEN {
                        // Within the limit, but past the end of the input.
                        settings.push((
                            payload_len as u64 + 1,
                            Expect::Exactly(Err(MessageError::Truncated)),
                        ));
                    }
                    if payload_len > 0 {
                        settings.push((
                            payload_len as u64 - 1,
                            Expect::Exactly(Err(MessageError::TrailingBytes { extra: 1 })),
                        ));
                    }
                    settings
                }
            };
            for (value, expect) in settings {
                let bytes = l.replace(&head, &head_bytes(head.major, value, shortest_info(value)));
                run(&bytes, expect, Mutation::Set(head, value))?;
            }
        }

        // Bits anywhere (mostly in the content, then), and bits of initial bytes.
        let anywhere = picks.iter().map(|p| p.index(n * 8));
        let in_heads = picks.iter().map(|p| {
            let bit = p.index(l.heads.len() * 8);
            l.heads[bit / 8].at * 8 + bit % 8
        });
        for bit in anywhere.chain(in_heads) {
            let mut bytes = l.bytes.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let in_content = l.content.iter().any(|r| r.contains(&(bit / 8)));
            let head = l.heads.iter().find(|h| h.at == bit / 8);
            let expect = match head {
                _ if in_content => Expect::Accepted,
                // One of the three high bits of an initial byte: the major type.
                Some(h) if bit % 8 >= 5 => Expect::MalformedAt(h.at),
                _ => Expect::RefusedOrCanonical,
            };
            run(&bytes, expect, Mutation::FlipBit(bit))?;
        }
        Ok(())
    }

    /// A length up to `max`, often small, often where a head changes width or at `max`.
    fn arb_len(max: usize, small: usize) -> impl Strategy<Value = usize> {
        let edges: Vec<usize> = [0, 1, 23, 24, 255, 256, 65535, 65536]
            .into_iter()
            .filter(|e| *e < max)
            .chain([max, max])
            .collect();
        prop_oneof![
            4 => 0..=small.min(max),
            2 => prop::sample::select(edges),
            1 => 0..=max,
        ]
    }

    /// `len` bytes drawn from `seed`.
    fn filler(len: usize, seed: u64) -> Vec<u8> {
        use crate::random::RandomSource as _;
        let mut bytes = vec![0; len];
        crate::random::SeededRandom::new(seed)
            .fill(&mut bytes)
            .unwrap();
        bytes
    }

    fn arb_address_to_the_limit() -> impl Strategy<Value = Address> {
        (
            prop_oneof![any::<u8>(), prop::sample::select(vec![0u8, 1, 23, 24, 255])],
            arb_len(MAX_ADDRESS_LEN, 8),
            any::<u64>(),
        )
            .prop_map(|(t, len, seed)| Address::new(TransportType(t), filler(len, seed)).unwrap())
    }

    fn arb_route_to_the_limit() -> impl Strategy<Value = Route> {
        arb_len(MAX_ROUTE_LEN, 4).prop_flat_map(|len| {
            proptest::collection::vec(arb_address_to_the_limit(), len).prop_map(Route::from_iter)
        })
    }

    fn arb_message_to_the_limit() -> impl Strategy<Value = TransportMessage> {
        (
            arb_route_to_the_limit(),
            arb_route_to_the_limit(),
            arb_len(MAX_PAYLOAD_LEN, 64),
            any::<u64>(),
        )
            .prop_map(|(onward, back, len, seed)| {
                TransportMessage::new(onward, back, filler(len, seed))
            })
    }

    #[test]
    fn valid_encodings_decode_and_their_mutations_are_refused_or_canonical() {
        use proptest::strategy::ValueTree as _;
        use proptest::test_runner::{Config, TestRunner};
        use std::cell::Cell;

        let tallies = Cell::new(Tallies::default());
        let picks = proptest::collection::vec(any::<prop::sample::Index>(), 48);
        let trailing = proptest::collection::vec(any::<u8>(), 1..4);

        // The limits themselves, every time: the largest message there is, and the
        // smallest.
        let largest = {
            let address = Address::new(TransportType(255), vec![0xa5; MAX_ADDRESS_LEN]).unwrap();
            let full: Route = std::iter::repeat_n(address, MAX_ROUTE_LEN).collect();
            TransportMessage::new(full.clone(), full, filler(MAX_PAYLOAD_LEN, 7))
        };
        let mut runner = TestRunner::deterministic();
        for m in [largest, TransportMessage::default()] {
            let picks = picks.new_tree(&mut runner).unwrap().current();
            let mut t = tallies.get();
            check_mutations(&m, &picks, &[0], &mut t).unwrap();
            tallies.set(t);
        }

        let mut runner = TestRunner::new(Config {
            cases: 128,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &(arb_message_to_the_limit(), picks, trailing),
                |(m, picks, trailing)| {
                    let mut t = tallies.get();
                    let result = check_mutations(&m, &picks, &trailing, &mut t);
                    tallies.set(t);
                    result
                },
            )
            .unwrap();

        // Both verdicts were reached often, including where the mutation leaves the
        // verdict open.
        let t = tallies.get();
        for (what, tally) in [("bit flip", t.flips), ("open", t.open)] {
            let total = tally.accepted + tally.refused;
            assert!(
                tally.accepted * 20 >= total && tally.refused * 20 >= total,
                "{what} mutations: {tally:?}"
            );
        }
    }
}
