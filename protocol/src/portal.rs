//! Portal sessions: one TCP connection of an unmodified application carried end to end
//! over a route (issue 20). An **inlet** accepts the application's connection and opens
//! a session to an **outlet**, which connects to the target; bytes then flow both ways
//! as portal messages, with half-close and close carried across.
//!
//! [`PortalSession`] is the pure state machine of one end: bytes read from its socket
//! and portal messages from the other end go in, portal messages to send and bytes to
//! write come out. It has no socket and no clock; the async layer binds it.
//!
//! # Flow control
//!
//! Each end advertises a window: how many bytes past what it has written to its socket
//! the other end may send. A [`PortalMessage::Credit`] moves the window on as bytes are
//! written; an end reads from its socket only as much as its [`send_capacity`]
//! allows. So a slow reader at one end slows the writer at the other, and an end holds
//! the other's bytes only within its window: those waiting to be written (at most a
//! window) and those held out of order (at most a window, counting
//! [`AHEAD_ENTRY_COST`] per piece). Memory per session is bounded by the windows.
//!
//! Messages may arrive out of order over some routes (a channel's replay window
//! accepts reordering): data carries its offset in the stream, and an end puts data
//! back in order within its window. A gap that stays open for [`GAP_TIMEOUT`] (data
//! lost on the way, before data that came, or before the end the other end
//! announced) resets the session: TCP's promise of every byte in order can no longer
//! be kept.
//!
//! [`send_capacity`]: PortalSession::send_capacity

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The largest data payload of one portal message: it fits one secure channel record
/// with room for routes.
pub const MAX_PORTAL_CHUNK: usize = 48 * 1024;

/// The window each end advertises unless configured otherwise.
pub const DEFAULT_PORTAL_WINDOW: u32 = 1024 * 1024;

/// The largest window an end may advertise.
pub const MAX_PORTAL_WINDOW: u32 = 64 * 1024 * 1024;

/// How long an inlet waits for the outlet's answer to an open.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What each piece of data held out of order counts against the window beyond its
/// bytes: many tiny pieces cost their bookkeeping too.
pub const AHEAD_ENTRY_COST: usize = 128;

/// How long a gap in the received data may stay open before the session is reset.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an end that has sent nothing waits before it sends a keepalive (a
/// [`PortalMessage::Credit`] it already gave), in onward's async layer: a send that
/// fails, or a report that comes back, then ends an idle session whose other end is
/// gone.
pub const PORTAL_KEEPALIVE: Duration = Duration::from_secs(15);

/// The longest reason a reset carries, in bytes.
pub const MAX_RESET_REASON: usize = 200;

/// A portal message: the payload of a transport message between the two ends of a
/// session. docs/PROTOCOL.md specifies the encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalMessage {
    /// Inlet to outlet: open a session; the inlet's window.
    Open {
        /// Bytes the outlet may send before the first credit.
        window: u32,
    },
    /// Outlet to inlet: the target is connected; the outlet's window.
    Opened {
        /// Bytes the inlet may send before the first credit.
        window: u32,
    },
    /// Bytes of the stream, starting at `offset`.
    Data {
        /// Where in the sender's stream the bytes start.
        offset: u64,
        /// The bytes (1 to [`MAX_PORTAL_CHUNK`]).
        bytes: Vec<u8>,
    },
    /// The sender of this has written to its socket everything before `written`:
    /// the receiver may send up to `written` plus the window.
    Credit {
        /// Offset up to which the bytes were written.
        written: u64,
    },
    /// The sender's stream ends at `end`: nothing follows (a half-close).
    Fin {
        /// The stream's length.
        end: u64,
    },
    /// The session is over, for the reason given.
    Reset {
        /// Why (at most [`MAX_RESET_REASON`] bytes of UTF-8).
        reason: String,
    },
}

/// Why a portal message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The message is empty, truncated, too long, or of an unknown kind.
    #[error("not a portal message: {0}")]
    Malformed(&'static str),
    /// The other end broke the session's rules (data past the window, credit for bytes
    /// never sent, data after the end, a message out of turn).
    #[error("the other end broke the portal protocol: {0}")]
    Violation(&'static str),
    /// The other end reset the session.
    #[error("reset by the other end: {0}")]
    Reset(String),
    /// The outlet did not answer the open in time.
    #[error("the outlet did not answer within {0:?}")]
    OpenTimeout(Duration),
    /// Data was lost on the way: a gap stayed open.
    #[error("data lost on the way: a gap at offset {offset} stayed open for {waited:?}")]
    Lost {
        /// Where the gap begins.
        offset: u64,
        /// How long it stayed open.
        waited: Duration,
    },
    /// This end's socket failed, or the target could not be reached.
    #[error("{0}")]
    Local(String),
    /// The other end could not be reached: a send failed, or a node on the route
    /// reported that it could not pass a message on.
    #[error("the other end cannot be reached: {0}")]
    Unreachable(String),
}

impl PortalMessage {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            PortalMessage::Open { window } => {
                out.push(0);
                out.extend_from_slice(&window.to_be_bytes());
            }
            PortalMessage::Opened { window } => {
                out.push(1);
                out.extend_from_slice(&window.to_be_bytes());
            }
            PortalMessage::Data { offset, bytes } => {
                out.reserve(9 + bytes.len());
                out.push(2);
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            PortalMessage::Credit { written } => {
                out.push(3);
                out.extend_from_slice(&written.to_be_bytes());
            }
            PortalMessage::Fin { end } => {
                out.push(4);
                out.extend_from_slice(&end.to_be_bytes());
            }
            PortalMessage::Reset { reason } => {
                out.push(5);
                out.extend_from_slice(truncate(reason, MAX_RESET_REASON).as_bytes());
            }
        }
        out
    }

    /// Reads a message: strict (exact lengths, known kinds, valid UTF-8 reasons).
    ///
    /// # Errors
    ///
    /// [`PortalError::Malformed`] for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, PortalError> {
        let (&kind, body) = bytes.split_first().ok_or(PortalError::Malformed("empty"))?;
        // A window of 0 would let the other end send nothing, ever: a session stuck
        // without an error.
        let u32_of = |body: &[u8]| -> Result<u32, PortalError> {
            match body.try_into().map(u32::from_be_bytes) {
                Ok(0) => Err(PortalError::Malformed("a window of 0")),
                Ok(window) => Ok(window),
                Err(_) => Err(PortalError::Malformed("a window is 4 bytes")),
            }
        };
        let u64_of = |body: &[u8]| -> Result<u64, PortalError> {
            body.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| PortalError::Malformed("an offset is 8 bytes"))
        };
        Ok(match kind {
            0 => PortalMessage::Open {
                window: u32_of(body)?,
            },
            1 => PortalMessage::Opened {
                window: u32_of(body)?,
            },
            2 => {
                let (offset, data) = body
                    .split_first_chunk::<8>()
                    .ok_or(PortalError::Malformed("data without its offset"))?;
                if data.is_empty() || data.len() > MAX_PORTAL_CHUNK {
                    return Err(PortalError::Malformed("data of 0 or too many bytes"));
                }
                PortalMessage::Data {
                    offset: u64::from_be_bytes(*offset),
                    bytes: data.to_vec(),
                }
            }
            3 => PortalMessage::Credit {
                written: u64_of(body)?,
            },
            4 => PortalMessage::Fin { end: u64_of(body)? },
            5 => {
                if body.len() > MAX_RESET_REASON {
                    return Err(PortalError::Malformed("a reset reason is too long"));
                }
                PortalMessage::Reset {
                    reason: String::from_utf8(body.to_vec())
                        .map_err(|_| PortalError::Malformed("a reset reason is not UTF-8"))?,
                }
            }
            _ => return Err(PortalError::Malformed("unknown kind")),
        })
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// What the caller of a [`PortalSession`] must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalOutput {
    /// Send this portal message to the other end.
    Send(PortalMessage),
    /// Write these bytes to the socket, in order; report them with
    /// [`PortalSession::handle_written`] once written.
    Write(Vec<u8>),
    /// The other end's stream ended: shut down the socket's write side once what was
    /// asked to be written is written.
    ShutdownWrite,
    /// The session is open (an inlet's outlet answered): reading may start.
    Opened,
    /// The session is over: close the socket. `Ok` when both streams ended cleanly.
    Closed(Result<(), PortalError>),
}

/// Which end of a session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Inlet,
    Outlet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inlet: the open was sent, no answer yet. Outlet: connecting to the target.
    Opening,
    Open,
    Closed,
}

/// One end of a portal session. See the [module documentation](self).
#[derive(Debug)]
pub struct PortalSession {
    role: Role,
    state: State,
    /// The window this end advertises.
    window: u32,
    /// The other end's window.
    peer_window: u32,
    /// Offset of the next byte this end sends.
    sent: u64,
    /// What the other end says it has written.
    peer_written: u64,
    /// Where this end's stream ended, once its socket's read side closed.
    fin_sent: Option<u64>,
    /// Offset of the next byte expected in order.
    received: u64,
    /// Data received ahead of a gap, by offset (within the window).
    ahead: BTreeMap<u64, Vec<u8>>,
    /// The bytes in `ahead`: with [`AHEAD_ENTRY_COST`] per piece, at most a window.
    ahead_bytes: usize,
    /// The furthest end of any data put in `ahead`.
    ahead_end: u64,
    /// Since when the first gap has been open.
    gap_since: Option<Instant>,
    /// Offset up to which bytes were written to the socket.
    written: u64,
    /// Offset up to which credit was given.
    credited: u64,
    /// Where the other end's stream ends, once it said.
    fin_at: Option<u64>,
    shutdown_asked: bool,
    /// When an inlet gives up waiting for the outlet.
    open_deadline: Option<Instant>,
    outputs: VecDeque<PortalOutput>,
}

impl PortalSession {
    /// The inlet end of a new session, advertising `window` (capped at
    /// [`MAX_PORTAL_WINDOW`]): its first output is the open to send.
    pub fn inlet(window: u32, now: Instant) -> Self {
        let mut session = Self::new(Role::Inlet, window);
        session.open_deadline = now.checked_add(OPEN_TIMEOUT);
        session.send(PortalMessage::Open {
            window: session.window,
        });
        session
    }

    /// The outlet end of a session, for an open received (its first message): the
    /// caller connects to the target, then reports [`handle_connected`](Self::handle_connected)
    /// or [`handle_failed`](Self::handle_failed).
    ///
    /// # Errors
    ///
    /// [`PortalError::Malformed`] or [`PortalError::Violation`] if `open` is not an
    /// open: nothing is to be answered.
    pub fn outlet(open: &[u8], window: u32) -> Result<Self, PortalError> {
        match PortalMessage::decode(open)? {
            PortalMessage::Open { window: peer } => {
                let mut session = Self::new(Role::Outlet, window);
                session.peer_window = peer.min(MAX_PORTAL_WINDOW);
                Ok(session)
            }
            _ => Err(PortalError::Violation("a session starts with an open")),
        }
    }

    fn new(role: Role, window: u32) -> Self {
        Self {
            role,
            state: State::Opening,
            window: window.clamp(1, MAX_PORTAL_WINDOW),
            peer_window: 0,
            sent: 0,
            peer_written: 0,
            fin_sent: None,
            received: 0,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            ahead_end: 0,
            gap_since: None,
            written: 0,
            credited: 0,
            fin_at: None,
            shutdown_asked: false,
            open_deadline: None,
            outputs: VecDeque::new(),
        }
    }

    fn send(&mut self, message: PortalMessage) {
        self.outputs.push_back(PortalOutput::Send(message));
    }

    /// The outlet connected to its target: the open is answered.
    pub fn handle_connected(&mut self) {
        if self.role == Role::Outlet && self.state == State::Opening {
            self.state = State::Open;
            self.send(PortalMessage::Opened {
                window: self.window,
            });
            self.outputs.push_back(PortalOutput::Opened);
        }
    }

    /// This end failed: the target could not be reached, or the socket failed. The
    /// other end is told, and the session closes.
    pub fn handle_failed(&mut self, reason: &str) {
        if self.state != State::Closed {
            self.send(PortalMessage::Reset {
                reason: truncate(reason, MAX_RESET_REASON).to_owned(),
            });
            self.close(Err(PortalError::Local(reason.to_owned())));
        }
    }

    /// The other end cannot be reached (a send failed, or a node on the route reported
    /// it could not pass a message on): the session closes without telling it.
    pub fn handle_unreachable(&mut self, reason: &str) {
        if self.state != State::Closed {
            self.close(Err(PortalError::Unreachable(reason.to_owned())));
        }
    }

    /// Nothing was sent for a while: an open session sends a keepalive, a credit it
    /// already gave (harmless to the other end), so that an other end that is gone
    /// shows up as a failed send or a report.
    pub fn handle_keepalive(&mut self) {
        if self.state == State::Open {
            self.send(PortalMessage::Credit {
                written: self.credited,
            });
        }
    }

    /// How many bytes this end may read from its socket and send now.
    pub fn send_capacity(&self) -> usize {
        if self.state != State::Open || self.fin_sent.is_some() {
            return 0;
        }
        let limit = self
            .peer_written
            .saturating_add(u64::from(self.peer_window));
        usize::try_from(limit.saturating_sub(self.sent)).unwrap_or(usize::MAX)
    }

    /// Bytes read from the socket: sent as data, in chunks. Bytes beyond
    /// [`send_capacity`](Self::send_capacity) are the caller's mistake and are refused
    /// whole.
    ///
    /// # Errors
    ///
    /// [`PortalError::Violation`] if `bytes` exceed the capacity; nothing is sent.
    pub fn handle_read(&mut self, bytes: &[u8]) -> Result<(), PortalError> {
        if bytes.len() > self.send_capacity() {
            return Err(PortalError::Violation("read past the window"));
        }
        for chunk in bytes.chunks(MAX_PORTAL_CHUNK) {
            let offset = self.sent;
            self.sent += chunk.len() as u64;
            self.send(PortalMessage::Data {
                offset,
                bytes: chunk.to_vec(),
            });
        }
        Ok(())
    }

    /// The socket's read side ended: the other end is told where the stream ends.
    pub fn handle_read_closed(&mut self) {
        if self.state == State::Open && self.fin_sent.is_none() {
            self.fin_sent = Some(self.sent);
            self.send(PortalMessage::Fin { end: self.sent });
            self.close_if_done();
        }
    }

    /// `n` more bytes asked to be written were written to the socket: credit goes
    /// back to the other end once half a window has been written (or the stream is
    /// complete).
    pub fn handle_written(&mut self, n: usize) {
        self.written = self.written.saturating_add(n as u64).min(self.received);
        let due = self.written - self.credited >= u64::from(self.window / 2).max(1)
            || (self.written == self.received && self.written > self.credited);
        if due && self.state == State::Open {
            self.credited = self.written;
            self.send(PortalMessage::Credit {
                written: self.written,
            });
        }
        self.close_if_done();
    }

    /// A portal message from the other end.
    pub fn handle_message(&mut self, bytes: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        let result = PortalMessage::decode(bytes).and_then(|m| self.on_message(m, now));
        if let Err(error) = result {
            if !matches!(error, PortalError::Reset(_)) {
                self.send(PortalMessage::Reset {
                    reason: error.to_string(),
                });
            }
            self.close(Err(error));
        }
    }

    fn on_message(&mut self, message: PortalMessage, now: Instant) -> Result<(), PortalError> {
        match (message, self.state) {
            (PortalMessage::Reset { reason }, _) => Err(PortalError::Reset(reason)),
            (PortalMessage::Opened { window }, State::Opening) if self.role == Role::Inlet => {
                self.peer_window = window.min(MAX_PORTAL_WINDOW);
                self.state = State::Open;
                self.open_deadline = None;
                self.outputs.push_back(PortalOutput::Opened);
                Ok(())
            }
            (PortalMessage::Data { offset, bytes }, State::Open) => {
                self.on_data(offset, bytes, now)
            }
            (PortalMessage::Credit { written }, State::Open) => {
                if written > self.sent {
                    return Err(PortalError::Violation("credit for bytes never sent"));
                }
                self.peer_written = self.peer_written.max(written);
                self.close_if_done();
                Ok(())
            }
            (PortalMessage::Fin { end }, State::Open) => {
                if end < self.received.max(self.ahead_end) || self.fin_at.is_some_and(|f| f != end)
                {
                    return Err(PortalError::Violation("an end before data already sent"));
                }
                self.fin_at = Some(end);
                // Data still missing before the end: lost, unless it comes in time.
                if end > self.received {
                    self.gap_since.get_or_insert(now);
                }
                self.finish_if_complete();
                Ok(())
            }
            _ => Err(PortalError::Violation("a message out of turn")),
        }
    }

    fn on_data(&mut self, offset: u64, bytes: Vec<u8>, now: Instant) -> Result<(), PortalError> {
        let end = offset.saturating_add(bytes.len() as u64);
        if end > self.written.saturating_add(u64::from(self.window)) {
            return Err(PortalError::Violation("data past the window"));
        }
        if self.fin_at.is_some_and(|fin| end > fin) {
            return Err(PortalError::Violation("data past the end of the stream"));
        }
        if end <= self.received {
            return Ok(()); // a copy of data already taken
        }
        if offset > self.received {
            // Each piece held costs its bytes and a share of bookkeeping, so that tiny
            // pieces cannot hold far more memory than the window says.
            let window = usize::try_from(self.window).unwrap_or(usize::MAX);
            let cost = (self.ahead.len() + 1)
                .saturating_mul(AHEAD_ENTRY_COST)
                .saturating_add(self.ahead_bytes)
                .saturating_add(bytes.len());
            if cost > window {
                return Err(PortalError::Violation("more than a window out of order"));
            }
            self.ahead_bytes += bytes.len();
            self.ahead_end = self.ahead_end.max(end);
            if let Some(old) = self.ahead.insert(offset, bytes) {
                self.ahead_bytes -= old.len();
            }
            self.gap_since.get_or_insert(now);
            return Ok(());
        }
        // In order (possibly overlapping what was taken): the new part is written.
        let skip = usize::try_from(self.received - offset).unwrap_or(0);
        self.take(bytes.get(skip..).unwrap_or_default().to_vec());
        // Then whatever waited ahead and now follows on.
        while let Some(entry) = self.ahead.first_entry() {
            let (offset, bytes) = (*entry.key(), entry.get().len() as u64);
            if offset > self.received {
                break;
            }
            let bytes_owned = entry.remove();
            self.ahead_bytes -= bytes_owned.len();
            if offset + bytes > self.received {
                let skip = usize::try_from(self.received - offset).unwrap_or(0);
                self.take(bytes_owned.get(skip..).unwrap_or_default().to_vec());
            }
        }
        // A gap remains while data waits ahead, or the end is not reached.
        let missing = !self.ahead.is_empty() || self.fin_at.is_some_and(|f| f > self.received);
        self.gap_since = missing.then_some(now);
        self.finish_if_complete();
        Ok(())
    }

    fn take(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.received += bytes.len() as u64;
            self.outputs.push_back(PortalOutput::Write(bytes));
        }
    }

    fn finish_if_complete(&mut self) {
        if self.fin_at == Some(self.received) && !self.shutdown_asked {
            self.shutdown_asked = true;
            self.outputs.push_back(PortalOutput::ShutdownWrite);
        }
        self.close_if_done();
    }

    /// Closed cleanly once both streams ended: this end's end was credited by the
    /// other (so it has everything), and the other's was written here.
    fn close_if_done(&mut self) {
        let ours_done = self.fin_sent.is_some_and(|end| self.peer_written >= end);
        let theirs_done = self.fin_at.is_some_and(|end| self.written >= end);
        if self.state == State::Open && ours_done && theirs_done {
            self.close(Ok(()));
        }
    }

    fn close(&mut self, result: Result<(), PortalError>) {
        self.state = State::Closed;
        self.ahead.clear();
        self.ahead_bytes = 0;
        self.outputs.push_back(PortalOutput::Closed(result));
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let gap = self
            .gap_since
            .and_then(|since| since.checked_add(GAP_TIMEOUT));
        match (self.open_deadline, gap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: an open unanswered, or a gap open, for too long, ends the session.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.open_deadline.is_some_and(|d| now >= d) {
            self.send(PortalMessage::Reset {
                reason: "no answer to the open".into(),
            });
            self.close(Err(PortalError::OpenTimeout(OPEN_TIMEOUT)));
            return;
        }
        if let Some(since) = self.gap_since {
            let waited = now.saturating_duration_since(since);
            if waited >= GAP_TIMEOUT {
                let error = PortalError::Lost {
                    offset: self.received,
                    waited,
                };
                self.send(PortalMessage::Reset {
                    reason: error.to_string(),
                });
                self.close(Err(error));
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<PortalOutput> {
        self.outputs.pop_front()
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes of the other end's data this end holds out of order (at most a window).
    pub fn buffered(&self) -> usize {
        self.ahead_bytes
    }
}

#[cfg(test)]
mod tests;
