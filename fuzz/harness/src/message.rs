//! The `message` target: the transport message decoder.

use onward_protocol::message::{TransportMessage, MAX_ENCODED_LEN};

/// `TransportMessage::decode` on arbitrary bytes. A decoded message is within every
/// limit, and re-encodes to exactly the accepted input (only canonical encodings are
/// accepted, so each message has one), within [`MAX_ENCODED_LEN`].
pub fn message(data: &[u8]) {
    let Ok(decoded) = TransportMessage::decode(data) else {
        return;
    };
    decoded
        .check_limits()
        .expect("a decoded message is within every limit");
    let encoded = decoded.to_bytes().expect("a decoded message encodes");
    assert_eq!(
        encoded, data,
        "an accepted input is not the message's encoding"
    );
    assert_eq!(encoded.len(), decoded.encoded_len());
    assert!(
        encoded.len() <= MAX_ENCODED_LEN,
        "encoding of {} bytes exceeds MAX_ENCODED_LEN",
        encoded.len()
    );
    let _ = format!("{decoded:?}");
}
