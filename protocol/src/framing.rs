//! Stream framing: layer 3 of the core.
//!
//! A stream transport (TCP) carries, in each direction, the [`PREAMBLE`] once and then
//! frames: a 4-byte big-endian length followed by that many bytes. [`FrameDecoder`]
//! takes the received stream in any chunking and yields whole frames; it checks the
//! preamble's magic byte by byte, so a peer that does not speak onward is refused at
//! its first wrong byte, judges the version once both of its bytes are in, and checks
//! each length prefix against the maximum frame size before any buffer grows.

use std::collections::VecDeque;

/// The first six bytes each side sends: ASCII `onward`.
pub const PREAMBLE_MAGIC: [u8; 6] = *b"onward";

/// The stream protocol version carried in the preamble.
pub const STREAM_VERSION: u16 = 1;

/// What each side sends first on a new stream: [`PREAMBLE_MAGIC`] then
/// [`STREAM_VERSION`] as two big-endian bytes.
pub const PREAMBLE: [u8; 8] = {
    let v = STREAM_VERSION.to_be_bytes();
    let m = PREAMBLE_MAGIC;
    [m[0], m[1], m[2], m[3], m[4], m[5], v[0], v[1]]
};

/// Length of the big-endian length prefix of each frame.
pub const FRAME_HEADER_LEN: usize = 4;

/// The default maximum frame length, in bytes (256 KiB). It is larger than the largest
/// transport message ([`MAX_ENCODED_LEN`](crate::message::MAX_ENCODED_LEN)).
pub const DEFAULT_MAX_FRAME_LEN: u32 = 256 * 1024;

/// Why a stream was refused. After any of these the stream must be closed: the
/// decoder refuses further input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The peer's first bytes are not the onward magic.
    #[error("peer does not speak onward: preamble byte {offset} is {byte:#04x}, expected {expected:#04x}")]
    NotOnward {
        /// Position in the preamble of the first wrong byte.
        offset: usize,
        /// The byte received.
        byte: u8,
        /// The byte expected.
        expected: u8,
    },
    /// The peer speaks another version of the stream protocol.
    #[error(
        "peer speaks stream protocol version {0}, this implementation speaks {STREAM_VERSION}"
    )]
    UnsupportedVersion(u16),
    /// A frame is longer than the maximum frame length.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length the frame declares (or has, when encoding).
        len: u64,
        /// The maximum in force.
        max: u32,
    },
    /// A unit of a message transport is not exactly one frame: its length prefix
    /// declares another length than the unit carries, or it is shorter than a prefix.
    #[error(
        "a unit of {len} bytes is not one frame: its prefix declares {declared} bytes after it"
    )]
    NotOneFrame {
        /// The unit's length.
        len: usize,
        /// What its prefix declares (0 when it is too short to have one).
        declared: u64,
    },
}

/// Appends one frame carrying `payload` to `out`.
///
/// # Errors
///
/// [`FramingError::FrameTooLarge`] if `payload` is longer than `max_frame_len`;
/// `out` is then unchanged.
pub fn encode_frame(
    payload: &[u8],
    max_frame_len: u32,
    out: &mut Vec<u8>,
) -> Result<(), FramingError> {
    let header = frame_header(payload.len(), max_frame_len)?;
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// The length prefix of a frame of `len` bytes, for a caller that writes the payload
/// in place after [`FRAME_HEADER_LEN`] bytes of room rather than copying it in.
///
/// # Errors
///
/// [`FramingError::FrameTooLarge`] if `len` exceeds `max_frame_len`.
pub(crate) fn frame_header(
    len: usize,
    max_frame_len: u32,
) -> Result<[u8; FRAME_HEADER_LEN], FramingError> {
    match u32::try_from(len) {
        Ok(len) if len <= max_frame_len => Ok(len.to_be_bytes()),
        _ => Err(FramingError::FrameTooLarge {
            len: len as u64,
            max: max_frame_len,
        }),
    }
}

/// Checks that `unit`, one unit of a message transport (a broker entry, a datagram),
/// is exactly one frame: a length prefix, then that many bytes. Returns the length of
/// the payload after the prefix.
///
/// # Errors
///
/// [`FramingError::NotOneFrame`] if the prefix is missing or declares another length;
/// [`FramingError::FrameTooLarge`] if the payload is longer than `max_frame_len`.
pub fn check_unit(unit: &[u8], max_frame_len: u32) -> Result<usize, FramingError> {
    let Some((header, payload)) = unit.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(FramingError::NotOneFrame {
            len: unit.len(),
            declared: 0,
        });
    };
    let declared = u32::from_be_bytes(*header);
    if declared > max_frame_len {
        return Err(FramingError::FrameTooLarge {
            len: u64::from(declared),
            max: max_frame_len,
        });
    }
    if u64::from(declared) != payload.len() as u64 {
        return Err(FramingError::NotOneFrame {
            len: unit.len(),
            declared: u64::from(declared),
        });
    }
    Ok(payload.len())
}

#[derive(Debug)]
enum State {
    /// This many bytes of the preamble's magic have been received and checked.
    Preamble { seen: usize },
    /// The magic is complete and the first version byte is `hi`: the version is judged
    /// once its second byte arrives, so that the error names the peer's version
    /// whatever the chunking.
    Version { hi: u8 },
    /// Receiving a length prefix.
    Header {
        bytes: [u8; FRAME_HEADER_LEN],
        seen: usize,
    },
    /// Receiving a frame body of `len` bytes.
    Body { len: usize, buf: Vec<u8> },
    /// The stream was refused; the error repeats.
    Failed(FramingError),
}

/// Incremental decoder for one direction of a stream.
///
/// Call [`handle_bytes`](Self::handle_bytes) with whatever the transport delivered,
/// then drain [`poll_frame`](Self::poll_frame) until it returns `None`. Frames held in
/// the decoder never exceed the bytes handed to it, and a partial frame grows only as
/// its bytes arrive, whatever its length prefix claims.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_len: u32,
    state: State,
    frames: VecDeque<Vec<u8>>,
    /// The bytes of `frames`, kept as they change so that asking costs nothing.
    queued: usize,
    /// A small frame's buffer given back by [`recycle`](Self::recycle), empty, for
    /// the next frame: at most [`SPARE_MAX`] bytes of room.
    spare: Vec<u8>,
}

/// The most room a [`FrameDecoder`] keeps in a spare buffer for the next frame: small
/// frames (requests, replies, keepalive-sized records) then cost no allocation each,
/// and an idle connection holds at most this much unused.
pub const SPARE_MAX: usize = 1024;

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder for a new stream: it expects the [`PREAMBLE`] first.
    pub fn new(max_frame_len: u32) -> Self {
        Self {
            max_frame_len,
            state: State::Preamble { seen: 0 },
            frames: VecDeque::new(),
            queued: 0,
            spare: Vec::new(),
        }
    }

    /// A decoder for a stream whose preamble was already checked elsewhere.
    ///
    /// Nothing in the crate needs one yet: only with the `test-hooks` feature, for the
    /// fuzz harness's `frames` target.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn after_preamble(max_frame_len: u32) -> Self {
        Self {
            max_frame_len,
            state: State::Header {
                bytes: [0; FRAME_HEADER_LEN],
                seen: 0,
            },
            frames: VecDeque::new(),
            queued: 0,
            spare: Vec::new(),
        }
    }

    /// The maximum frame length in force.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Whether the whole preamble has been received and accepted.
    pub fn preamble_received(&self) -> bool {
        !matches!(
            self.state,
            State::Preamble { .. } | State::Version { .. } | State::Failed(_)
        )
    }

    /// Takes bytes received from the stream.
    ///
    /// Frames completed by these bytes become available from
    /// [`poll_frame`](Self::poll_frame), including those completed before an error.
    ///
    /// # Errors
    ///
    /// A [`FramingError`] if the stream breaks the protocol; the stream must then be
    /// closed, and every later call returns the same error.
    pub fn handle_bytes(&mut self, mut input: &[u8]) -> Result<(), FramingError> {
        while !input.is_empty() {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Preamble { seen } => {
                    let (&byte, rest) = match input.split_first() {
                        Some(split) => split,
                        None => break,
                    };
                    input = rest;
                    match PREAMBLE_MAGIC.get(*seen).copied() {
                        Some(expected) if byte != expected => {
                            let error = FramingError::NotOnward {
                                offset: *seen,
                                byte,
                                expected,
                            };
                            return Err(self.fail(error));
                        }
                        Some(_) => *seen += 1,
                        // The magic is complete: this is the first version byte.
                        None => self.state = State::Version { hi: byte },
                    }
                }
                State::Version { hi } => {
                    let (&lo, rest) = match input.split_first() {
                        Some(split) => split,
                        None => break,
                    };
                    input = rest;
                    let version = u16::from_be_bytes([*hi, lo]);
                    if version != STREAM_VERSION {
                        return Err(self.fail(FramingError::UnsupportedVersion(version)));
                    }
                    self.state = State::Header {
                        bytes: [0; FRAME_HEADER_LEN],
                        seen: 0,
                    };
                }
                State::Header { bytes, seen } => {
                    let take = (FRAME_HEADER_LEN - *seen).min(input.len());
                    let (head, rest) = input.split_at(take);
                    bytes[*seen..*seen + take].copy_from_slice(head);
                    *seen += take;
                    input = rest;
                    if *seen == FRAME_HEADER_LEN {
                        let len = u32::from_be_bytes(*bytes);
                        if len > self.max_frame_len {
                            let max = self.max_frame_len;
                            return Err(self.fail(FramingError::FrameTooLarge {
                                len: len.into(),
                                max,
                            }));
                        }
                        let len = len as usize;
                        if len == 0 {
                            self.frames.push_back(Vec::new());
                            *seen = 0;
                        } else {
                            // Grow with the bytes that arrive, not with the claim.
                            let first = len.min(input.len());
                            let buf = if self.spare.capacity() >= first {
                                std::mem::take(&mut self.spare)
                            } else {
                                Vec::with_capacity(first)
                            };
                            self.state = State::Body { len, buf };
                        }
                    }
                }
                State::Body { len, buf } => {
                    let take = (*len - buf.len()).min(input.len());
                    let (body, rest) = input.split_at(take);
                    buf.extend_from_slice(body);
                    input = rest;
                    if buf.len() == *len {
                        let frame = std::mem::take(buf);
                        self.queued += frame.len();
                        self.frames.push_back(frame);
                        self.state = State::Header {
                            bytes: [0; FRAME_HEADER_LEN],
                            seen: 0,
                        };
                    }
                }
            }
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// The next whole frame, in the order received.
    #[must_use]
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        let frame = self.frames.pop_front()?;
        self.queued -= frame.len();
        Some(frame)
    }

    /// Gives back a frame from [`poll_frame`](Self::poll_frame) once it has been
    /// handled, so that its buffer may take the next frame. Kept only if it has room
    /// for at most [`SPARE_MAX`] bytes (and more than the spare already kept).
    pub fn recycle(&mut self, mut frame: Vec<u8>) {
        if frame.capacity() <= SPARE_MAX && frame.capacity() > self.spare.capacity() {
            frame.clear();
            self.spare = frame;
        }
    }

    /// Whether the decoder is part way through the preamble or a frame: some of its
    /// bytes have arrived, not all.
    pub fn in_frame(&self) -> bool {
        match &self.state {
            State::Preamble { seen } => *seen > 0,
            State::Version { .. } | State::Body { .. } => true,
            State::Header { seen, .. } => *seen > 0,
            State::Failed(_) => false,
        }
    }

    /// Bytes held by the decoder: whole frames not yet polled and the partial frame.
    pub fn buffered_len(&self) -> usize {
        let partial = match &self.state {
            State::Body { buf, .. } => buf.len(),
            _ => 0,
        };
        self.queued + partial
    }

    fn fail(&mut self, error: FramingError) -> FramingError {
        tracing::debug!(%error, "stream refused");
        self.state = State::Failed(error.clone());
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_frame_tells_a_partial_preamble_or_frame() {
        let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        assert!(!d.in_frame());
        d.handle_bytes(&PREAMBLE[..3]).unwrap();
        assert!(d.in_frame());
        d.handle_bytes(&PREAMBLE[3..]).unwrap();
        assert!(!d.in_frame(), "between frames");
        d.handle_bytes(&[0, 0]).unwrap();
        assert!(d.in_frame(), "half a length prefix");
        d.handle_bytes(&[0, 2, 7]).unwrap();
        assert!(d.in_frame(), "half a body");
        d.handle_bytes(&[8]).unwrap();
        assert!(!d.in_frame());
        assert_eq!(d.poll_frame(), Some(vec![7, 8]));
        d.handle_bytes(&[0, 0, 0, 0]).unwrap();
        assert!(!d.in_frame(), "a keepalive is whole");
    }

    fn stream(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = PREAMBLE.to_vec();
        for f in frames {
            encode_frame(f, DEFAULT_MAX_FRAME_LEN, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn a_recycled_small_buffer_takes_the_next_frame_and_a_large_one_is_let_go() {
        let mut d = FrameDecoder::default();
        d.handle_bytes(&stream(&[b"first frame"])).unwrap();
        let first = d.poll_frame().unwrap();
        let (at, room) = (first.as_ptr(), first.capacity());
        d.recycle(first);
        // The next frame lands in the same buffer, holding only its own bytes.
        let mut next = Vec::new();
        encode_frame(b"second", DEFAULT_MAX_FRAME_LEN, &mut next).unwrap();
        d.handle_bytes(&next).unwrap();
        let second = d.poll_frame().unwrap();
        assert_eq!(second, b"second");
        assert_eq!((second.as_ptr(), second.capacity()), (at, room));
        // A buffer with more room than the spare may keep is dropped.
        d.recycle(Vec::with_capacity(SPARE_MAX + 1));
        assert_eq!(d.spare.capacity(), 0);
        d.recycle(second);
        assert_eq!(d.spare.capacity(), room);
        // A frame whose first bytes do not fit in the spare gets a buffer of its own.
        let long = vec![7u8; 5000];
        let mut bytes = Vec::new();
        encode_frame(&long, DEFAULT_MAX_FRAME_LEN, &mut bytes).unwrap();
        for chunk in bytes.chunks(700) {
            d.handle_bytes(chunk).unwrap();
        }
        assert_eq!(d.poll_frame().unwrap(), long);
        assert_eq!(d.spare.capacity(), room, "the spare is still there");
        // One whose first bytes fit takes it and grows it as the rest arrives.
        for chunk in bytes.chunks(8) {
            d.handle_bytes(chunk).unwrap();
        }
        assert_eq!(d.poll_frame().unwrap(), long);
        assert_eq!(d.spare.capacity(), 0, "the spare went to that frame");
    }

    #[test]
    fn a_failed_decoder_refuses_even_empty_input() {
        let mut d = FrameDecoder::default();
        let error = d.handle_bytes(b"x").unwrap_err();
        assert_eq!(d.handle_bytes(&[]), Err(error.clone()));
        assert_eq!(d.handle_bytes(&PREAMBLE), Err(error));
        // A healthy decoder takes empty input as nothing.
        assert_eq!(FrameDecoder::default().handle_bytes(&[]), Ok(()));
    }

    #[test]
    fn the_default_limit_is_the_specified_256_kib_exactly() {
        // docs/PROTOCOL.md §4: frames up to 262,144 bytes are accepted by default.
        assert_eq!(DEFAULT_MAX_FRAME_LEN, 262_144);
        let mut d = FrameDecoder::default();
        assert_eq!(d.max_frame_len(), 262_144);
        let at_limit = vec![7u8; 262_144];
        d.handle_bytes(&stream(&[&at_limit])).unwrap();
        assert_eq!(drain(&mut d), vec![at_limit]);
        let mut past = PREAMBLE.to_vec();
        past.extend_from_slice(&262_145u32.to_be_bytes());
        assert_eq!(
            FrameDecoder::default().handle_bytes(&past),
            Err(FramingError::FrameTooLarge {
                len: 262_145,
                max: 262_144
            })
        );
        assert_eq!(FrameDecoder::new(9).max_frame_len(), 9);
    }

    fn drain(d: &mut FrameDecoder) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| d.poll_frame()).collect()
    }

    #[test]
    fn preamble_is_the_documented_bytes() {
        assert_eq!(PREAMBLE, [b'o', b'n', b'w', b'a', b'r', b'd', 0x00, 0x01]);
    }

    #[test]
    fn decodes_frames_in_one_piece_and_byte_by_byte() {
        let bytes = stream(&[b"one", b"", b"three"]);
        let mut d = FrameDecoder::default();
        d.handle_bytes(&bytes).unwrap();
        assert_eq!(drain(&mut d), [b"one".to_vec(), vec![], b"three".to_vec()]);

        // Byte by byte, nothing polled until the end: after each byte the decoder holds
        // exactly the frames completed so far and the body bytes of the one in progress.
        let mut d = FrameDecoder::default();
        for (i, b) in bytes.iter().enumerate() {
            d.handle_bytes(std::slice::from_ref(b)).unwrap();
            let so_far = reference(&bytes[..=i], DEFAULT_MAX_FRAME_LEN);
            let held: usize = so_far.frames.iter().map(|f| f.len()).sum();
            assert_eq!(d.buffered_len(), held + so_far.partial, "after byte {i}");
            assert_eq!(
                d.preamble_received(),
                i + 1 >= PREAMBLE.len(),
                "after byte {i}"
            );
        }
        assert_eq!(drain(&mut d), [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(d.buffered_len(), 0);
    }

    #[test]
    fn a_non_onward_peer_is_refused_at_its_first_byte() {
        let mut d = FrameDecoder::default();
        let e = d.handle_bytes(b"G").unwrap_err();
        assert_eq!(
            e,
            FramingError::NotOnward {
                offset: 0,
                byte: b'G',
                expected: b'o'
            }
        );
        // And stays refused.
        assert_eq!(d.handle_bytes(&PREAMBLE), Err(e));
        let mut d = FrameDecoder::default();
        assert!(matches!(
            d.handle_bytes(b"onwarx"),
            Err(FramingError::NotOnward { offset: 5, .. })
        ));
    }

    #[test]
    fn another_version_is_named() {
        let mut d = FrameDecoder::default();
        assert_eq!(
            d.handle_bytes(b"onward\x00\x02"),
            Err(FramingError::UnsupportedVersion(2))
        );
        let mut d = FrameDecoder::default();
        assert_eq!(
            d.handle_bytes(b"onward\x01\x01"),
            Err(FramingError::UnsupportedVersion(0x0101))
        );
        let mut d = FrameDecoder::default();
        d.handle_bytes(b"onward").unwrap();
        // The version is judged once both of its bytes are in.
        d.handle_bytes(b"\x03").unwrap();
        assert!(!d.preamble_received());
        assert_eq!(
            d.handle_bytes(b"\x07"),
            Err(FramingError::UnsupportedVersion(0x0307))
        );
    }

    #[test]
    fn the_version_reported_is_the_peers_whatever_the_chunking() {
        // A regression found by the `frames` fuzz target: with the stream cut after
        // the first version byte, the decoder used to report version 0xb000.
        let stream = b"onward\xb0\x02";
        for cut in 0..=stream.len() {
            let mut d = FrameDecoder::default();
            let first = d.handle_bytes(&stream[..cut]);
            let second = d.handle_bytes(&stream[cut..]);
            assert_eq!(
                first.and(second),
                Err(FramingError::UnsupportedVersion(0xb002)),
                "cut at {cut}"
            );
        }
        let mut d = FrameDecoder::default();
        for b in &stream[..stream.len() - 1] {
            d.handle_bytes(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(
            d.handle_bytes(b"\x02"),
            Err(FramingError::UnsupportedVersion(0xb002))
        );
    }

    #[test]
    fn a_huge_length_is_refused_before_allocating() {
        let mut d = FrameDecoder::default();
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        let e = d.handle_bytes(&bytes).unwrap_err();
        assert_eq!(
            e,
            FramingError::FrameTooLarge {
                len: u64::from(u32::MAX),
                max: DEFAULT_MAX_FRAME_LEN
            }
        );
        assert_eq!(d.buffered_len(), 0);
    }

    #[test]
    fn a_length_at_the_limit_is_accepted_and_grows_only_with_input() {
        let mut d = FrameDecoder::new(1000);
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(&1000u32.to_be_bytes());
        bytes.extend_from_slice(&[9; 10]);
        d.handle_bytes(&bytes).unwrap();
        assert_eq!(d.buffered_len(), 10);
        assert_eq!(d.poll_frame(), None);
        d.handle_bytes(&[9; 990]).unwrap();
        assert_eq!(d.poll_frame(), Some(vec![9; 1000]));
        let mut d = FrameDecoder::after_preamble(1000);
        assert!(matches!(
            d.handle_bytes(&1001u32.to_be_bytes()),
            Err(FramingError::FrameTooLarge {
                len: 1001,
                max: 1000
            })
        ));
    }

    #[test]
    fn frames_before_an_error_are_kept() {
        let mut bytes = stream(&[b"kept"]);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut d = FrameDecoder::default();
        assert_eq!(
            d.handle_bytes(&bytes),
            Err(FramingError::FrameTooLarge {
                len: u64::from(u32::MAX),
                max: DEFAULT_MAX_FRAME_LEN
            })
        );
        assert_eq!(d.poll_frame(), Some(b"kept".to_vec()));
        assert_eq!(d.poll_frame(), None);
    }

    #[test]
    fn the_encoder_refuses_oversized_frames() {
        let mut out = vec![1];
        assert_eq!(
            encode_frame(&[0; 11], 10, &mut out),
            Err(FramingError::FrameTooLarge { len: 11, max: 10 })
        );
        assert_eq!(out, [1]);
        encode_frame(&[0; 10], 10, &mut out).unwrap();
        assert_eq!(out.len(), 1 + 4 + 10);
    }

    #[test]
    fn truncated_streams_yield_no_partial_frame() {
        let bytes = stream(&[b"abcdef"]);
        for cut in 0..bytes.len() {
            let mut d = FrameDecoder::default();
            d.handle_bytes(&bytes[..cut]).unwrap();
            assert_eq!(d.poll_frame(), None, "cut at {cut}");
        }
    }

    /// What the reference decoder makes of a whole stream.
    #[derive(Debug, PartialEq, Eq)]
    struct Verdict<'a> {
        /// The frames completed, in order (those before an error included).
        frames: Vec<&'a [u8]>,
        /// How the stream breaks the protocol, if it does.
        error: Option<FramingError>,
        /// Body bytes received of the frame in progress, if no error.
        partial: usize,
        /// Whether the whole preamble was received and accepted (and nothing failed).
        preamble_received: bool,
    }

    /// A reference decoder, straight from docs/PROTOCOL.md §4: the whole stream at
    /// once, no state kept between calls.
    fn reference(stream: &[u8], max: u32) -> Verdict<'_> {
        let mut verdict = Verdict {
            frames: Vec::new(),
            error: None,
            partial: 0,
            preamble_received: false,
        };
        for (offset, (&byte, &expected)) in stream.iter().zip(&PREAMBLE_MAGIC).enumerate() {
            if byte != expected {
                verdict.error = Some(FramingError::NotOnward {
                    offset,
                    byte,
                    expected,
                });
                return verdict;
            }
        }
        let Some(&[hi, lo]) = stream.get(6..8) else {
            return verdict;
        };
        let version = u16::from_be_bytes([hi, lo]);
        if version != STREAM_VERSION {
            verdict.error = Some(FramingError::UnsupportedVersion(version));
            return verdict;
        }
        let mut rest = &stream[8..];
        while let Some(&[a, b, c, d]) = rest.get(..4) {
            let len = u32::from_be_bytes([a, b, c, d]);
            if len > max {
                verdict.error = Some(FramingError::FrameTooLarge {
                    len: len.into(),
                    max,
                });
                return verdict;
            }
            let body = &rest[4..];
            let Some(frame) = body.get(..len as usize) else {
                verdict.partial = body.len();
                break;
            };
            verdict.frames.push(frame);
            rest = &body[len as usize..];
        }
        verdict.preamble_received = true;
        verdict
    }

    /// How a valid stream is spoiled before it is fed to the decoder.
    #[derive(Debug, Clone)]
    enum Corruption {
        None,
        /// A preamble byte changed (`xor` is never 0).
        PreambleByte {
            at: usize,
            xor: u8,
        },
        /// The length prefix of frame `frame` (or, if there is no such frame, one
        /// appended) set to `len`, which exceeds the maximum.
        Oversized {
            frame: prop::sample::Index,
            len: u32,
        },
        /// One bit flipped anywhere.
        FlipBit(prop::sample::Index),
        /// Bytes appended.
        Garbage(Vec<u8>),
    }

    /// A valid stream: the preamble then `lengths.len()` frames of those lengths (each
    /// at most `max`), with the offset of each frame's length prefix.
    fn valid_stream(lengths: &[usize], max: u32, seed: u64) -> (Vec<u8>, Vec<Vec<u8>>, Vec<usize>) {
        use crate::random::RandomSource as _;
        let mut rng = crate::random::SeededRandom::new(seed);
        let mut stream = PREAMBLE.to_vec();
        let mut frames = Vec::new();
        let mut prefixes = Vec::new();
        for &len in lengths {
            let mut frame = vec![0; len];
            rng.fill(&mut frame).unwrap();
            prefixes.push(stream.len());
            encode_frame(&frame, max, &mut stream).unwrap();
            frames.push(frame);
        }
        (stream, frames, prefixes)
    }

    fn arb_max_and_lengths() -> impl Strategy<Value = (u32, Vec<usize>)> {
        prop_oneof![
            Just(0u32),
            1u32..=64,
            prop::sample::select(vec![255u32, 256, 4096, DEFAULT_MAX_FRAME_LEN]),
        ]
        .prop_flat_map(|max| {
            let m = max as usize;
            let len = prop_oneof![
                4 => 0..=m.min(64),
                1 => Just(m),
                1 => 0..=m.min(8192),
            ];
            (Just(max), proptest::collection::vec(len, 0..8))
        })
    }

    fn arb_corruption(max: u32) -> impl Strategy<Value = Corruption> {
        prop_oneof![
            2 => Just(Corruption::None),
            1 => (0..PREAMBLE.len(), 1u8..=255).prop_map(|(at, xor)| Corruption::PreambleByte { at, xor }),
            1 => (any::<prop::sample::Index>(), max.saturating_add(1)..=u32::MAX)
                .prop_map(|(frame, len)| Corruption::Oversized { frame, len }),
            1 => any::<prop::sample::Index>().prop_map(Corruption::FlipBit),
            1 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(Corruption::Garbage),
        ]
    }

    /// Counts over a run of what the streams exercised.
    #[derive(Debug, Default, Clone, Copy)]
    struct Reached {
        not_onward: u64,
        unsupported_version: u64,
        too_large: u64,
        clean: u64,
        frames: u64,
        /// Streams that ended inside a frame body.
        partial: u64,
        /// Chunk boundaries that fell inside a frame body.
        cut_in_body: u64,
    }

    /// Feeds `stream` to a decoder in the pieces `cuts` make, polling every frame after
    /// each piece, and checks it against the reference at every boundary: the same
    /// error (from the piece that completes the offending bytes, then from every later
    /// call), the same frames, the same body bytes held, the same preamble state.
    fn check_against_reference(
        stream: &[u8],
        max: u32,
        cuts: &[prop::sample::Index],
        reached: &mut Reached,
    ) -> Result<(), TestCaseError> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.extend([0, stream.len()]);
        points.sort_unstable();
        let mut d = FrameDecoder::new(max);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut failed: Option<FramingError> = None;
        for w in points.windows(2) {
            let result = d.handle_bytes(&stream[w[0]..w[1]]);
            got.extend(drain(&mut d));
            let want = reference(&stream[..w[1]], max);
            match &failed {
                // Refused once, refused for good: the same error, nothing more.
                Some(e) if w[0] < w[1] => prop_assert_eq!(&result, &Err(e.clone())),
                Some(_) => {}
                None => {
                    prop_assert_eq!(
                        &result,
                        &want.error.clone().map_or(Ok(()), Err),
                        "bytes ..{}",
                        w[1]
                    );
                    failed = want.error.clone();
                }
            }
            prop_assert_eq!(&got, &want.frames, "frames after bytes ..{}", w[1]);
            prop_assert_eq!(
                d.buffered_len(),
                want.partial,
                "held after bytes ..{}",
                w[1]
            );
            prop_assert_eq!(d.preamble_received(), want.preamble_received);
            if want.partial > 0 && w[1] < stream.len() {
                reached.cut_in_body += 1;
            }
        }
        let whole = reference(stream, max);
        match &whole.error {
            Some(FramingError::NotOnward { .. }) => reached.not_onward += 1,
            Some(FramingError::UnsupportedVersion(_)) => reached.unsupported_version += 1,
            Some(FramingError::NotOneFrame { .. }) => unreachable!("streams have no units"),
            Some(FramingError::FrameTooLarge { .. }) => reached.too_large += 1,
            None => reached.clean += 1,
        }
        reached.frames += whole.frames.len() as u64;
        reached.partial += u64::from(whole.partial > 0);
        Ok(())
    }

    #[test]
    fn streams_of_frames_spoiled_and_chunked_match_the_reference() {
        use proptest::test_runner::{Config, TestRunner};
        use std::cell::Cell;

        let reached = Cell::new(Reached::default());
        let strategy =
            (arb_max_and_lengths(), any::<u64>()).prop_flat_map(|((max, lengths), seed)| {
                (
                    Just((max, lengths, seed)),
                    arb_corruption(max),
                    proptest::option::of(any::<prop::sample::Index>()),
                    proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
                )
            });
        let mut runner = TestRunner::new(Config {
            cases: 512,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &strategy,
                |((max, lengths, seed), corruption, truncate, cuts)| {
                    let (mut stream, frames, prefixes) = valid_stream(&lengths, max, seed);
                    // The reference reads a valid stream as what was written.
                    let clean = reference(&stream, max);
                    prop_assert_eq!(&clean.frames, &frames);
                    prop_assert_eq!((clean.error, clean.partial), (None, 0));
                    match &corruption {
                        Corruption::None => {}
                        Corruption::PreambleByte { at, xor } => stream[*at] ^= xor,
                        Corruption::Oversized { frame, len } => {
                            let header = len.to_be_bytes();
                            match prefixes.get(frame.index(prefixes.len() + 1)) {
                                Some(&at) => stream[at..at + 4].copy_from_slice(&header),
                                None => stream.extend_from_slice(&header),
                            }
                        }
                        Corruption::FlipBit(bit) => {
                            let bit = bit.index(stream.len() * 8);
                            stream[bit / 8] ^= 1 << (bit % 8);
                        }
                        Corruption::Garbage(bytes) => stream.extend_from_slice(bytes),
                    }
                    if let Some(at) = truncate {
                        stream.truncate(at.index(stream.len() + 1));
                    }
                    let mut r = reached.get();
                    let result = check_against_reference(&stream, max, &cuts, &mut r);
                    reached.set(r);
                    result
                },
            )
            .unwrap();

        // Every outcome was reached, and chunks often ended inside a frame.
        let r = reached.get();
        assert!(
            r.not_onward > 0
                && r.unsupported_version > 0
                && r.too_large > 0
                && r.clean > 100
                && r.frames > 500
                && r.partial > 20
                && r.cut_in_body > 100,
            "{r:?}"
        );
    }

    proptest! {
        #[test]
        fn any_chunking_yields_exactly_the_frames_written(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let bytes = stream(&refs);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            for w in points.windows(2) {
                d.handle_bytes(&bytes[w[0]..w[1]]).unwrap();
                got.extend(drain(&mut d));
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(d.buffered_len(), 0);
        }
    }
}
