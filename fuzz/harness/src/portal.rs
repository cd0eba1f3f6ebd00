//! The `portal` target: the portal message decoder, and a portal session fed
//! arbitrary messages, reads, writes and time.

use std::time::{Duration, Instant};

use onward_protocol::portal::{PortalMessage, PortalOutput, PortalSession, MAX_PORTAL_CHUNK};

use crate::input::Input;

/// The first byte chooses: decode the rest as one portal message (an accepted one
/// re-encodes to itself), or drive an open session with the rest. The session never
/// panics, holds at most its window out of order, writes at most what it received, and
/// once closed produces nothing more.
pub fn portal(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        if let Ok(message) = PortalMessage::decode(rest) {
            assert_eq!(
                message.encode(),
                rest,
                "an accepted input is not its encoding"
            );
        }
        return;
    }
    let window = 4096;
    let start = Instant::now();
    let mut now = start;
    let mut session = PortalSession::inlet(window, now);
    session.handle_message(&PortalMessage::Opened { window }.encode(), now);
    let mut input = Input::new(rest);
    let mut to_write = 0usize;
    let mut closed = false;
    for _ in 0..512 {
        if input.is_empty() {
            break;
        }
        match input.byte() % 6 {
            0 | 1 => {
                // A message from the other end: arbitrary bytes, or a data message at
                // an offset near the stream.
                let len = usize::from(input.byte());
                let bytes = input.bytes(len).to_vec();
                let message = if input.byte() % 2 == 0 {
                    bytes
                } else {
                    let offset = u64::from(input.u16());
                    let mut data = vec![2];
                    data.extend_from_slice(&offset.to_be_bytes());
                    data.extend_from_slice(&bytes[..bytes.len().min(MAX_PORTAL_CHUNK)]);
                    data
                };
                session.handle_message(&message, now);
            }
            2 => {
                let n = usize::from(input.u16()).min(session.send_capacity());
                session
                    .handle_read(&vec![7; n])
                    .expect("within the capacity");
            }
            3 => session.handle_read_closed(),
            4 => {
                let n = usize::from(input.u16()).min(to_write);
                to_write -= n;
                session.handle_written(n);
            }
            _ => {
                now += Duration::from_millis(u64::from(input.u16()) * 10);
                session.handle_timeout(now);
            }
        }
        assert!(
            session.buffered() <= window as usize,
            "more than a window held"
        );
        while let Some(output) = session.poll_output() {
            assert!(!closed, "output after the session closed: {output:?}");
            match output {
                PortalOutput::Write(bytes) => to_write += bytes.len(),
                PortalOutput::Closed(_) => closed = true,
                _ => {}
            }
        }
        if let Some(deadline) = session.poll_timeout() {
            assert!(deadline >= start);
        }
    }
}
