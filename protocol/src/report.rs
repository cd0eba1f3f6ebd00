//! Error reports: what a node sends back along a message's return route when it cannot
//! deliver or forward the message (docs/PROTOCOL.md §3, "Error reports").
//!
//! A report is an ordinary transport message. Its onward route is the return route of
//! the message it is about; its return route is the single [`report_marker`] address
//! (transport type [`REPORT_TRANSPORT`], empty value), which no node routes to, so
//! nobody can reply to a report; its payload is the [`Report`]: a reason code, the
//! address the reporting node could not reach, and a short text.
//!
//! A report that crossed no secure channel is unauthenticated: anyone on the path may
//! forge one. Receivers treat it as a hint (a secure channel probes its peer before it
//! believes it); one that came back through a secure channel is authenticated by it.

use std::fmt;

use crate::message::{
    write_head, MessageError, Reader, TransportMessage, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_TEXT,
    MAJOR_UNSIGNED,
};
use crate::routing::{Address, Route, TransportType};

/// The transport type of the return address of every report. No node routes to it.
pub const REPORT_TRANSPORT: TransportType = TransportType(255);

/// The longest detail text a report carries, in bytes; an encoder cuts a longer one
/// at a character boundary, a decoder refuses one.
pub const MAX_REPORT_DETAIL: usize = 200;

/// The return address of every report: transport type [`REPORT_TRANSPORT`], empty value.
pub fn report_marker() -> Address {
    Address::new(REPORT_TRANSPORT, Vec::new()).unwrap_or_else(|_| Address::local(""))
}

/// Whether `message` is a report, or anything else that must never be answered with
/// one: its return route holds an address of transport type [`REPORT_TRANSPORT`].
pub fn is_report(message: &TransportMessage) -> bool {
    route_is_report(&message.return_route)
}

/// Whether a message with this return route is a report (see [`is_report`]).
pub(crate) fn route_is_report(return_route: &Route) -> bool {
    return_route
        .iter()
        .any(|a| a.transport() == REPORT_TRANSPORT)
}

/// Why a node could not deliver or forward a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportCode {
    /// Nothing has the address on the reporting node (code 1). For a secure channel's
    /// record: the reporting node does not know the channel (it restarted, or the
    /// channel ended there).
    UnknownAddress,
    /// An access rule of the address refused the message (code 2).
    Refused,
    /// The reporting node could not reach the next hop: a connection could not be
    /// opened or closed before the message was written, or the transport is not one
    /// it has (code 3).
    Unreachable,
    /// A limit stopped the message: a full mailbox or connection, the memory budget
    /// (code 4).
    Overloaded,
    /// Any other failure, such as a routing loop (code 5).
    Failed,
    /// A code this implementation does not know.
    Other(u8),
}

impl ReportCode {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            ReportCode::UnknownAddress => 1,
            ReportCode::Refused => 2,
            ReportCode::Unreachable => 3,
            ReportCode::Overloaded => 4,
            ReportCode::Failed => 5,
            ReportCode::Other(code) => code,
        }
    }

    /// The code of a wire value.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => ReportCode::UnknownAddress,
            2 => ReportCode::Refused,
            3 => ReportCode::Unreachable,
            4 => ReportCode::Overloaded,
            5 => ReportCode::Failed,
            other => ReportCode::Other(other),
        }
    }
}

impl fmt::Display for ReportCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportCode::UnknownAddress => f.write_str("unknown address"),
            ReportCode::Refused => f.write_str("refused"),
            ReportCode::Unreachable => f.write_str("unreachable"),
            ReportCode::Overloaded => f.write_str("overloaded"),
            ReportCode::Failed => f.write_str("failed"),
            ReportCode::Other(code) => write!(f, "error {code}"),
        }
    }
}

/// The payload of an error report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Why the message could not go on.
    pub code: ReportCode,
    /// The address the reporting node could not deliver or forward to: the message's
    /// next hop there.
    pub address: Address,
    /// What the reporting node said, for people (at most [`MAX_REPORT_DETAIL`] bytes).
    pub detail: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.address)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl Report {
    /// A report, its detail cut to [`MAX_REPORT_DETAIL`] bytes.
    pub fn new(code: ReportCode, address: Address, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if detail.len() > MAX_REPORT_DETAIL {
            let mut end = MAX_REPORT_DETAIL;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Self {
            code,
            address,
            detail,
        }
    }

    /// The payload: a CBOR array of the code (unsigned), the address (an array of its
    /// transport type and value, as in routes) and the detail (a text string).
    pub fn encode(&self) -> Vec<u8> {
        let detail = self.detail.as_bytes();
        let detail = detail.get(..MAX_REPORT_DETAIL).unwrap_or(detail);
        let value = self.address.value();
        let mut out = Vec::with_capacity(12 + value.len() + detail.len());
        write_head(&mut out, MAJOR_ARRAY, 3);
        write_head(&mut out, MAJOR_UNSIGNED, self.code.code().into());
        write_head(&mut out, MAJOR_ARRAY, 2);
        write_head(&mut out, MAJOR_UNSIGNED, self.address.transport().0.into());
        write_head(&mut out, MAJOR_BYTES, value.len() as u64);
        out.extend_from_slice(value);
        write_head(&mut out, MAJOR_TEXT, detail.len() as u64);
        out.extend_from_slice(detail);
        out
    }

    /// Decodes a report payload: canonical CBOR of exactly the shape
    /// [`encode`](Self::encode) writes, with nothing after it.
    ///
    /// # Errors
    ///
    /// A [`MessageError`] saying what was wrong.
    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let mut reader = Reader::new(payload);
        if reader.array()? != 3 {
            return Err(MessageError::Malformed {
                offset: Some(0),
                reason: "a report is an array of 3 items".into(),
            });
        }
        let code = reader.unsigned()?;
        let code = u8::try_from(code).map_err(|_| MessageError::Malformed {
            offset: None,
            reason: format!("report code {code} is out of range"),
        })?;
        let address = reader.address()?;
        let detail = reader.text(MAX_REPORT_DETAIL)?.to_owned();
        reader.finish()?;
        Ok(Self {
            code: ReportCode::from_code(code),
            address,
            detail,
        })
    }

    /// The report as a message to `to` (the return route of the message it is about).
    pub fn into_message(self, to: Route) -> TransportMessage {
        TransportMessage::new(to, Route::from(report_marker()), self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route;

    fn sample() -> Report {
        Report::new(
            ReportCode::Unreachable,
            Address::tcp("10.0.0.1:4000"),
            "connection refused",
        )
    }

    #[test]
    fn reports_round_trip_and_print() {
        let report = sample();
        let bytes = report.encode();
        assert_eq!(Report::decode(&bytes), Ok(report.clone()));
        assert_eq!(
            report.to_string(),
            "unreachable 1#10.0.0.1:4000 (connection refused)"
        );
        // The documented bytes: array(3), code 3, [1, h'...'], text.
        assert_eq!(&bytes[..4], &[0x83, 0x03, 0x82, 0x01]);
        for code in 0..=255u8 {
            assert_eq!(ReportCode::from_code(code).code(), code);
        }
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character_boundary() {
        let report = Report::new(ReportCode::Failed, Address::local("x"), "é".repeat(150));
        assert!(report.detail.len() <= MAX_REPORT_DETAIL);
        assert_eq!(report.detail.len(), MAX_REPORT_DETAIL);
        assert!(Report::decode(&report.encode()).is_ok());
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Report::decode(&bytes[..len]).is_err(), "truncated at {len}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            Report::decode(&extra),
            Err(MessageError::TrailingBytes { extra: 1 })
        );
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            // Any value or a typed error; never a panic.
            let _ = Report::decode(&flipped);
        }
        // A detail over the limit is refused, not cut.
        let mut long = vec![0x83, 0x01, 0x82, 0x00, 0x41, b'x', 0x78, 201];
        long.extend(std::iter::repeat_n(b'a', 201));
        assert!(Report::decode(&long).is_err());
        // Text that is not UTF-8.
        assert!(Report::decode(&[0x83, 0x01, 0x82, 0x00, 0x41, b'x', 0x61, 0xff]).is_err());
    }

    #[test]
    fn a_report_message_is_recognised_and_never_answerable() {
        let message = sample().into_message(route!["a", "b"]);
        assert!(is_report(&message));
        assert_eq!(message.return_route, Route::from(report_marker()));
        assert!(!is_report(&TransportMessage::new(
            route!["a"],
            route!["b"],
            vec![]
        )));
        // A report forwarded by a hop, which puts itself in front, is still one.
        let mut forwarded = message;
        forwarded.return_route.prepend(Address::local("hop"));
        assert!(is_report(&forwarded));
    }
}
