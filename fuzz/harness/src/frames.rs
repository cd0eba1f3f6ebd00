//! The `frames` target: the incremental stream frame decoder against a whole-stream
//! reference.

use onward_protocol::framing::{
    encode_frame, FrameDecoder, FramingError, PREAMBLE, PREAMBLE_MAGIC,
};

use crate::input::Input;

/// The stream frame decoder fed in chunks chosen by the input, against a reference
/// decoder that sees the whole stream at once.
///
/// Layout: a flags byte (bit 0: start after the preamble; bit 1: put a genuine
/// preamble in front of the stream), a big-endian `u16` maximum frame length, a count
/// `n` (up to 15) and `n` chunk sizes (used in a cycle; 0 is an empty call), then the
/// stream. The decoder must yield exactly the reference's frames, fail with the same
/// error at the same point (and repeat it), and hold no more than the partial frame.
pub fn frames(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let after_preamble = flags & 1 != 0;
    let max = u32::from(input.u16());
    let n = usize::from(input.byte() % 16);
    let sizes: Vec<usize> = input.bytes(n).iter().map(|&b| usize::from(b)).collect();
    let mut stream = Vec::new();
    if flags & 2 != 0 {
        stream.extend_from_slice(&PREAMBLE);
    }
    stream.extend_from_slice(input.rest());

    let expected = reference_frames(&stream, !after_preamble, max);

    let mut decoder = if after_preamble {
        FrameDecoder::after_preamble(max)
    } else {
        FrameDecoder::new(max)
    };
    assert_eq!(decoder.max_frame_len(), max);
    let mut got = Vec::new();
    let mut error: Option<FramingError> = None;
    let mut fed = 0;
    let mut rest = &stream[..];
    let mut calls = 0usize;
    // Chunk sizes cycle; with no size, or only zeros, the rest goes in one call.
    let usable = sizes.iter().any(|&s| s > 0);
    loop {
        let size = if usable {
            sizes[calls % sizes.len()]
        } else {
            rest.len()
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let result = decoder.handle_bytes(chunk);
        fed += chunk.len();
        rest = tail;
        calls += 1;
        got.extend(std::iter::from_fn(|| decoder.poll_frame()));
        match (&error, result) {
            (None, Ok(())) => {}
            (None, Err(e)) => error = Some(e),
            (Some(first), later) => assert_eq!(
                later.as_ref(),
                Err(first),
                "a failed decoder must repeat its error"
            ),
        }
        assert!(decoder.buffered_len() <= fed);
        if rest.is_empty() && (calls >= sizes.len() || !usable) {
            break;
        }
    }

    assert_eq!(
        got, expected.frames,
        "chunked decoding yielded other frames than the reference"
    );
    assert_eq!(
        error, expected.error,
        "chunked decoding ended otherwise than the reference"
    );
    match &error {
        Some(_) => assert!(!decoder.preamble_received()),
        None => {
            assert_eq!(decoder.preamble_received(), expected.preamble_done);
            assert_eq!(decoder.buffered_len(), expected.partial);
        }
    }
    // Frames encode back to the bytes they came from.
    let mut encoded = Vec::new();
    if !after_preamble && expected.preamble_done {
        encoded.extend_from_slice(&PREAMBLE);
    }
    for frame in &got {
        encode_frame(frame, max, &mut encoded).expect("a decoded frame is within the limit");
    }
    assert!(stream.starts_with(&encoded));
}

/// What the reference decoder finds in a whole stream.
struct ReferenceFrames {
    frames: Vec<Vec<u8>>,
    error: Option<FramingError>,
    preamble_done: bool,
    /// Body bytes of the incomplete last frame.
    partial: usize,
}

/// Decodes a whole stream by the rules of docs/PROTOCOL.md section 4.
fn reference_frames(stream: &[u8], expect_preamble: bool, max: u32) -> ReferenceFrames {
    let mut out = ReferenceFrames {
        frames: Vec::new(),
        error: None,
        preamble_done: false,
        partial: 0,
    };
    let mut rest = stream;
    if expect_preamble {
        // The magic is checked byte by byte.
        for (offset, &expected) in PREAMBLE_MAGIC.iter().enumerate() {
            match stream.get(offset) {
                None => return out,
                Some(&byte) if byte != expected => {
                    out.error = Some(FramingError::NotOnward {
                        offset,
                        byte,
                        expected,
                    });
                    return out;
                }
                Some(_) => {}
            }
        }
        // The version is checked as a whole, once both bytes are in.
        let m = PREAMBLE_MAGIC.len();
        let (Some(&hi), Some(&lo)) = (stream.get(m), stream.get(m + 1)) else {
            return out;
        };
        let version = u16::from_be_bytes([hi, lo]);
        if [hi, lo] != PREAMBLE[m..] {
            out.error = Some(FramingError::UnsupportedVersion(version));
            return out;
        }
        rest = &stream[PREAMBLE.len()..];
    }
    out.preamble_done = true;
    while let Some(header) = rest.get(..4) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if len > max {
            out.error = Some(FramingError::FrameTooLarge {
                len: len.into(),
                max,
            });
            return out;
        }
        let body = &rest[4..];
        let len = len as usize;
        if body.len() < len {
            out.partial = body.len();
            return out;
        }
        out.frames.push(body[..len].to_vec());
        rest = &body[len..];
    }
    out
}
