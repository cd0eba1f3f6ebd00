//! Workers and the messages they exchange.

use std::fmt;
use std::future::Future;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::node::Origin;
use crate::routing::{Address, Route};

use super::{Bytes, Context, Error, Result};

/// A type that can travel as a message body: any `serde` type, encoded as CBOR.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// A message body of any type, for workers that pass messages on without reading
/// them (hops, relays). A worker of `Opaque` takes every payload as it is, CBOR or not
/// (secure channel records, for one, are not CBOR); the bytes stay available through
/// [`Routed::payload`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opaque;

impl Serialize for Opaque {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Opaque {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Opaque)
    }
}

/// Encodes a body as CBOR. [`Bytes`] bodies, the bulk case, are written directly as
/// one byte string; every other type goes through serde and ciborium. The bytes are
/// the same either way.
pub(crate) fn encode_body<M: Message>(body: &M) -> Result<Vec<u8>> {
    if let Some(bytes) = (body as &dyn std::any::Any).downcast_ref::<Bytes>() {
        let mut payload = Vec::new();
        crate::message::write_byte_string(&mut payload, bytes);
        return Ok(payload);
    }
    let mut payload = Vec::new();
    ciborium::into_writer(body, &mut payload).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(payload)
}

/// Decodes a body, which must fill the payload. A [`Bytes`] body in canonical form is
/// copied out once, directly; anything else (and any other encoding of bytes) goes
/// through serde and ciborium, whose byte-string path copies twice.
fn decode_body<M: Message>(
    payload: &[u8],
) -> std::result::Result<M, ciborium::de::Error<std::io::Error>> {
    if std::any::TypeId::of::<M>() == std::any::TypeId::of::<Bytes>() {
        if let Some(content) = crate::message::read_byte_string(payload) {
            let body: Box<dyn std::any::Any> = Box::new(Bytes(content.to_vec()));
            if let Ok(body) = body.downcast::<M>() {
                return Ok(*body);
            }
        }
    }
    let mut rest = payload;
    let body = crate::message::from_cbor::<M>(&mut rest)?;
    if !rest.is_empty() {
        // One body per message: bytes after it are an error, not ignored.
        return Err(ciborium::de::Error::Semantic(
            Some(payload.len() - rest.len()),
            format!("{} bytes follow the message body", rest.len()),
        ));
    }
    Ok(body)
}

/// The error a report stands for.
fn remote_error(message: TransportMessage, origin: Origin) -> Error {
    match crate::report::Report::decode(&message.payload) {
        Ok(report) => Error::Remote { report, origin },
        Err(e) => Error::Decode {
            sender: format!("a report over {origin}"),
            reason: e.to_string(),
        },
    }
}

/// A message with its routes, as a worker receives it.
pub struct Routed<M> {
    body: M,
    message: TransportMessage,
    origin: Origin,
}

impl<M: fmt::Debug> fmt::Debug for Routed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routed")
            .field("body", &self.body)
            .field("onward_route", &self.message.onward_route)
            .field("return_route", &self.message.return_route)
            .field("origin", &self.origin)
            .finish()
    }
}

impl<M: Message> Routed<M> {
    /// Decodes the body of `message`, which came from `origin`.
    pub(crate) fn decode(message: TransportMessage, origin: Origin) -> Result<Self> {
        // A worker of `Opaque` forwards payloads it does not read, so nothing is parsed.
        if let Ok(body) = (Box::new(Opaque) as Box<dyn std::any::Any>).downcast::<M>() {
            return Ok(Self {
                body: *body,
                message,
                origin,
            });
        }
        if crate::report::is_report(&message) {
            return Err(remote_error(message, origin));
        }
        match decode_body::<M>(&message.payload) {
            Ok(body) => Ok(Self {
                body,
                message,
                origin,
            }),
            Err(e) => Err(Error::Decode {
                sender: message
                    .return_route
                    .next()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                reason: e.to_string(),
            }),
        }
    }
}

impl<M> Routed<M> {
    /// The body.
    pub fn body(&self) -> &M {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> M {
        self.body
    }

    /// The onward route as received: it starts with the receiving worker's address.
    pub fn onward_route(&self) -> &Route {
        &self.message.onward_route
    }

    /// The route back to the sender: send a reply there.
    pub fn return_route(&self) -> Route {
        self.message.return_route.clone()
    }

    /// The address that sent the message (the first of the return route).
    pub fn sender(&self) -> Option<&Address> {
        self.message.return_route.next()
    }

    /// Where the message came from, as this node knows it: a sender on this node, a
    /// secure channel (with its peer's verified identifier), or a plain transport
    /// connection. The receiver's access rule admitted it.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The verified identifier of the peer whose secure channel the message came
    /// through, if it came through one.
    pub fn channel_peer(&self) -> Option<&Identifier> {
        self.origin.channel_peer()
    }

    /// The encoded body, as it travelled.
    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// The whole message, routes and encoded body, to forward it unchanged.
    pub fn into_transport_message(self) -> TransportMessage {
        self.message
    }
}

impl Routed<Opaque> {
    /// The body decoded as an `M`, leaving the message as it is: a receiver that takes
    /// [`Opaque`] messages can try one type after another.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the body is not an `M`; [`Error::Remote`] if the message
    /// is an error report.
    pub fn body_as<M: Message>(&self) -> Result<M> {
        if crate::report::is_report(&self.message) {
            return Err(remote_error(self.message.clone(), self.origin.clone()));
        }
        decode_body::<M>(&self.message.payload).map_err(|e| Error::Decode {
            sender: self
                .message
                .return_route
                .next()
                .map(ToString::to_string)
                .unwrap_or_default(),
            reason: e.to_string(),
        })
    }

    /// The message with its body decoded as an `M`; if it is not one, the error and
    /// the message back, untouched, to try another type.
    ///
    /// # Errors
    ///
    /// As [`body_as`](Self::body_as), with the message.
    #[allow(clippy::result_large_err, reason = "the message is handed back whole")]
    pub fn into_typed<M: Message>(self) -> std::result::Result<Routed<M>, (Error, Self)> {
        match self.body_as::<M>() {
            Ok(body) => Ok(Routed {
                body,
                message: self.message,
                origin: self.origin,
            }),
            Err(error) => Err((error, self)),
        }
    }
}

/// Code that runs at an address and handles the messages sent there.
///
/// Write the methods as plain `async fn`; their futures must be `Send`, so a worker
/// runs on any executor.
///
/// ```
/// use onward_protocol::api::{Context, Result, Routed, Worker};
///
/// struct Echoer;
///
/// impl Worker for Echoer {
///     type Message = String;
///
///     async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
///         ctx.send(msg.return_route(), msg.into_body()).await
///     }
/// }
/// ```
pub trait Worker: Send + 'static {
    /// The type of message bodies this worker handles; use [`Opaque`] to take any.
    type Message: Message;

    /// Called once, before the first message.
    fn initialize(&mut self, ctx: &mut Context) -> impl Future<Output = Result<()>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message. An error is logged; the worker goes on with the next.
    fn handle_message(
        &mut self,
        ctx: &mut Context,
        msg: Routed<Self::Message>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Called once, after the last message, when the worker is stopped.
    fn shutdown(&mut self, ctx: &mut Context) -> impl Future<Output = Result<()>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_takes_payloads_that_are_not_cbor() {
        // 0xff is a CBOR "break" with nothing to end: not a well-formed item.
        let message = TransportMessage::new(
            Route::from(Address::local("hop")),
            Route::new(),
            [0xff, 0x00],
        );
        let routed = Routed::<Opaque>::decode(message, Origin::Local).map_err(|e| e.to_string());
        assert_eq!(routed.map(|r| r.payload().to_vec()), Ok(vec![0xff, 0x00]));
    }

    fn reference_encoding<M: Message>(body: &M) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(body, &mut out).unwrap();
        out
    }

    #[test]
    fn bytes_bodies_take_the_direct_path_with_the_same_bytes() {
        for len in [0, 1, 23, 24, 255, 256, 65_535, 65_536, 100_000] {
            let body = Bytes((0..len).map(|i| i as u8).collect());
            let encoded = encode_body(&body).unwrap();
            assert_eq!(encoded, reference_encoding(&body), "{len} bytes");
            assert_eq!(decode_body::<Bytes>(&encoded).unwrap(), body);
        }
        // Other types are untouched by the direct path.
        let text = "hello".to_string();
        assert_eq!(encode_body(&text).unwrap(), reference_encoding(&text));
        assert_eq!(
            decode_body::<String>(&reference_encoding(&text)).unwrap(),
            text
        );
    }

    #[test]
    fn bytes_in_other_encodings_still_decode_and_garbage_is_refused() {
        // h'0102' with a two-byte length, and as an indefinite-length string of chunks.
        for payload in [&[0x58, 0x02, 1, 2][..], &[0x5f, 0x41, 1, 0x41, 2, 0xff]] {
            assert_eq!(decode_body::<Bytes>(payload).unwrap(), Bytes(vec![1, 2]));
        }
        for bad in [&[0x43, 1, 2][..], &[0x82, 1, 2], &[], &[0x42, 1, 2, 3]] {
            assert!(decode_body::<Bytes>(bad).is_err(), "{bad:02x?}");
        }
        // Trailing bytes after any body are refused, not ignored.
        let mut text = reference_encoding(&"hi".to_string());
        text.push(0);
        assert!(decode_body::<String>(&text).is_err());
    }

    #[test]
    fn an_opaque_message_is_tried_as_one_type_then_another() {
        let payload = encode_body(&42u32).unwrap();
        let message =
            TransportMessage::new(Route::from(Address::local("w")), Route::new(), payload);
        let routed = Routed::<Opaque>::decode(message, Origin::Local).unwrap();
        assert!(matches!(
            routed.body_as::<String>(),
            Err(Error::Decode { .. })
        ));
        let (error, routed) = routed.into_typed::<String>().unwrap_err();
        assert!(matches!(error, Error::Decode { .. }));
        let typed = routed.into_typed::<u32>().expect("it is a number");
        assert_eq!(*typed.body(), 42);
        // A report is the error it stands for, whatever type is asked for.
        let report =
            crate::report::Report::new(crate::report::ReportCode::Refused, Address::local("w"), "")
                .into_message(Route::from(Address::local("app")));
        let routed = Routed::<Opaque>::decode(report, Origin::Local).unwrap();
        assert!(matches!(routed.body_as::<u32>(), Err(Error::Remote { .. })));
    }

    #[test]
    fn typed_bodies_still_need_cbor() {
        let message = TransportMessage::new(Route::from(Address::local("w")), Route::new(), [0xff]);
        assert!(matches!(
            Routed::<String>::decode(message, Origin::Local),
            Err(Error::Decode { .. })
        ));
    }
}
