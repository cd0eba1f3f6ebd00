//! Seed inputs for every target, made from genuine encodings.

use onward_protocol::framing::{encode_frame, PREAMBLE};
use onward_protocol::message::TransportMessage;
use onward_protocol::routing::{Address, TransportType, MAX_ADDRESS_LEN, MAX_ROUTE_LEN};
use onward_protocol::{route, tcp};

/// Seed inputs for `target`, made from genuine encodings, with file names; empty for
/// an unknown target. `examples/write-seed-corpus.rs` of this package writes them
/// to `fuzz/corpus/<target>/`.
pub fn seeds(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    match target {
        "message" => message_seeds(),
        "address" => address_seeds(),
        "frames" => frame_seeds(),
        "report" => report_seeds(),
        "portal" => portal_seeds(),
        "noise_responder" => vec![
            ("genuine", vec![0x06, 0, 0]),
            ("genuine-chacha", vec![0x07, 0, 0]),
            (
                "genuine-with-payload",
                [&[0x06, 0, 5][..], b"hello"].concat(),
            ),
            ("altered-third", vec![0x06, 0, 0, 0, 40, 0x80]),
            ("raw-first", [&[0x00, 0, 32][..], &[9; 32]].concat()),
        ],
        "noise_initiator" => vec![
            ("genuine", vec![0x02, 0, 0]),
            ("genuine-chacha", vec![0x03, 0, 0]),
            ("altered-second", vec![0x02, 0, 0, 0, 33, 0x01]),
            ("truncated-second", vec![0x02, 0, 0, 16]),
            ("raw-second", [&[0x00, 0, 0][..], &[7; 96]].concat()),
        ],
        "channel" => vec![
            ("send-deliver", vec![0x00, 0, 3, 0, 0, 0, 3, 0, 0]),
            (
                "reordered",
                vec![0x02, 0, 0, 0, 3, 0, 1, 3, 0, 0, 3, 0, 2, 4, 0, 0],
            ),
            ("burst-too-old", vec![0x00, 2, 0xff, 3, 0, 0, 3, 0x07, 0xf7]),
            (
                "rekey-boundary",
                vec![0x04, 2, 8, 3, 0, 0, 3, 0, 60, 3, 0, 0],
            ),
            ("exhaustion", vec![0x0c, 2, 7, 3, 0, 0, 0, 3, 0, 0]),
            ("altered", vec![0x00, 0, 5, 0, 0, 0, 12, 0x40, 3, 0, 0]),
            (
                "forged-counter",
                [&[0x00, 0, 6, 41][..], &u64::MAX.to_be_bytes(), &[0; 40]].concat(),
            ),
            ("close", vec![0x01, 0, 7, 3, 0, 0, 3, 0, 1, 0]),
            ("exhaustion-toward-initiator", vec![0x0e, 2, 7, 3, 0, 0]),
        ],
        "channel_handshake" => vec![
            ("hello-genuine", vec![0x10, 0]),
            ("hello-genuine-chacha", vec![0x11, 0]),
            ("hello-suite-refused", vec![0x12, 0]),
            ("hello-raw", [&[0x00, 0, 0x01, 0x01][..], &[5; 32]].concat()),
            ("response-genuine", vec![0x14, 0]),
            ("response-genuine-chacha", vec![0x15, 0]),
            ("response-bit-flip", vec![0x14, 0, 0, 50, 0x02]),
            ("finish-genuine", vec![0x18, 0]),
            ("finish-truncated", vec![0x18, 0, 1]),
            ("confirm-genuine", vec![0x1c, 0]),
            ("confirm-altered", vec![0x1c, 0, 0, 12, 0x01]),
            ("timeout", vec![0x14, 100]),
            ("before-timeout", vec![0x1c, 99]),
        ],
        "node" => vec![
            (
                "echo-over-tcp",
                vec![0, 0, 3, b'h', b'i', b'!', 1, 1, 2, 7, 4, 7, 10],
            ),
            (
                "channel",
                vec![
                    7, 1, 1, 2, 7, 4, 7, 2, 7, 4, 7, 0, 4, 2, b'o', b'k', 2, 7, 4, 7, 10, 8, 0, 2,
                    7,
                ],
            ),
            (
                "garbage",
                [&[6u8, 20][..], &[9; 20], &[1, 6, 5], b"onwx!", &[0, 0]].concat(),
            ),
            ("timeouts", vec![7, 11, 0xff, 0xff, 1, 0, 11, 0xff, 0xff]),
            (
                "refused-and-reset",
                vec![0, 1, 0, 1, 0, 7, 1, 1, 9, 0, 2, 7],
            ),
        ],
        "replay_window" => {
            let abs = |op: u8, c: u64| [&[op][..], &c.to_be_bytes()].concat();
            let rel = |op: u8, back: u16| [&[op | 2][..], &back.to_be_bytes()].concat();
            vec![
                ("in-order", (0..40).flat_map(|c| abs(1, c)).collect()),
                (
                    "relative",
                    [
                        abs(1, 5000),
                        rel(1, 5),
                        rel(1, 5),
                        rel(0, 1983),
                        rel(0, 1984),
                        rel(1, 1984),
                        abs(1, 1 << 40),
                        rel(1, 2048),
                    ]
                    .concat(),
                ),
                (
                    "huge",
                    [
                        abs(1, u64::MAX),
                        abs(0, 0),
                        rel(1, 0),
                        abs(1, u64::MAX - 1984),
                    ]
                    .concat(),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

fn portal_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use onward_protocol::portal::PortalMessage;
    let decode = |message: PortalMessage| [vec![0], message.encode()].concat();
    vec![
        ("open", decode(PortalMessage::Open { window: 4096 })),
        (
            "data",
            decode(PortalMessage::Data {
                offset: 3,
                bytes: b"hello".to_vec(),
            }),
        ),
        (
            "reset",
            decode(PortalMessage::Reset {
                reason: "gone".into(),
            }),
        ),
        // A session: data in order at 0, a read, a write, a half-close, time.
        (
            "session",
            vec![
                1, 1, 5, 1, 0, 0, b'a', b'b', b'c', b'd', b'e', 2, 0, 100, 4, 0, 5, 3, 5, 0, 10,
            ],
        ),
    ]
}

fn report_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use onward_protocol::report::{Report, ReportCode, MAX_REPORT_DETAIL};
    let encode = |code, address, detail: &str| Report::new(code, address, detail).encode();
    vec![
        (
            "unknown-address",
            encode(
                ReportCode::UnknownAddress,
                Address::local("nobody"),
                "no such address on this node",
            ),
        ),
        (
            "unreachable",
            encode(
                ReportCode::Unreachable,
                tcp("10.0.0.1:4000"),
                "connection refused",
            ),
        ),
        (
            "longest-detail",
            encode(
                ReportCode::Other(200),
                Address::local("x".repeat(MAX_ADDRESS_LEN)),
                &"é".repeat(MAX_REPORT_DETAIL),
            ),
        ),
        (
            "empty-detail",
            encode(ReportCode::Failed, Address::local(""), ""),
        ),
    ]
}

fn message_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let encode = |m: TransportMessage| m.to_bytes().expect("a seed message encodes");
    let full_address =
        Address::new(TransportType(255), vec![b'x'; MAX_ADDRESS_LEN]).expect("within the limit");
    vec![
        ("empty", encode(TransportMessage::default())),
        (
            "documented",
            encode(TransportMessage::new(
                route!["ab"],
                route![tcp("x")],
                b"hi".to_vec(),
            )),
        ),
        (
            "three-hops",
            encode(TransportMessage::new(
                route!["h1", tcp("127.0.0.1:4000"), "echoer"],
                route!["app"],
                b"hello".to_vec(),
            )),
        ),
        (
            "long-address",
            encode(TransportMessage::new(
                route![full_address.clone(), "a"],
                route![full_address],
                vec![0; 300],
            )),
        ),
        (
            "full-route",
            encode(TransportMessage::new(
                (0..MAX_ROUTE_LEN)
                    .map(|i| Address::local(i.to_string()))
                    .collect(),
                route![],
                Vec::new(),
            )),
        ),
        // [1, [[0, h'']], [], h''] with indefinite-length arrays: refused.
        (
            "indefinite",
            vec![0x9f, 0x01, 0x9f, 0x82, 0x00, 0x40, 0xff, 0x80, 0x40, 0xff],
        ),
        ("unknown-version", vec![0x82, 0x07, 0xf6]),
        (
            "transport-type-too-big",
            vec![0x84, 0x01, 0x81, 0x82, 0x19, 0x01, 0x00, 0x40, 0x80, 0x40],
        ),
    ]
}

fn address_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("local", b"0#echoer".to_vec()),
        ("tcp", b"1#127.0.0.1:4000".to_vec()),
        ("escapes", b"7#%00%25a%ff%0a".to_vec()),
        ("custom", b"200#x#y".to_vec()),
        // append 0#ab, prepend 1#x, step, append a copy, encode.
        (
            "route-ops",
            vec![
                0, 0, 0, 2, b'a', b'b', 1, 1, 0, 1, b'x', 2, 4, 1, 5, 3, b'h', b'o', b'p', 6, 2,
                b'h', b'i',
            ],
        ),
    ]
}

fn frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut stream = PREAMBLE.to_vec();
    for frame in [&b"one"[..], b"", b"three"] {
        encode_frame(frame, 1000, &mut stream).expect("within the limit");
    }
    let whole = [&[0x00, 0x03, 0xe8, 0][..], &stream].concat();
    let chunked = [&[0x00, 0x03, 0xe8, 3, 1, 0, 5][..], &stream].concat();
    let after = [&[0x01, 0x03, 0xe8, 1, 2][..], &stream[PREAMBLE.len()..]].concat();
    let too_large = [&[0x03, 0x00, 0x04, 1, 3][..], &[0, 0, 0, 5, 1, 2, 3, 4, 5]].concat();
    let mut other_version = b"onward\x00\x02".to_vec();
    other_version.extend_from_slice(&[0, 0, 0, 0]);
    vec![
        ("whole", whole),
        ("chunked", chunked),
        ("after-preamble", after),
        ("too-large", too_large),
        (
            "other-version",
            [&[0x00, 0x00, 0x10, 1, 7][..], &other_version].concat(),
        ),
        (
            "not-onward",
            [&[0x00, 0x00, 0x10, 0][..], b"GET / HTTP/1.1\r\n"].concat(),
        ),
    ]
}
