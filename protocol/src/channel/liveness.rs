//! A channel end's timers: handshake records sent again, keepalives, the idle
//! deadline, and probes (docs/PROTOCOL.md §8, "Liveness").
//!
//! Routes lose messages, so the initiator sends its latest handshake record again
//! (after 1 s, then 2 s, 4 s, ... by default) until the handshake ends or times out;
//! a responder answers a duplicate with what it sent before instead of starting over.
//! Once established, an end that has sent nothing for the keepalive interval sends an
//! empty authenticated record, so each end hears its peer at least that often, and an
//! end that has heard nothing authenticated for the idle timeout gives the peer up.
//! When a node on the route reports that it cannot reach the peer's end (which an
//! attacker on the path could forge), the end probes: a record the peer must answer at
//! once. No answer within the probe timeout, and the end fails.

use std::time::{Duration, Instant};

use crate::report::Report;

use super::wire::{PLAIN_CLOSE, PLAIN_CONFIRM, PLAIN_KEEPALIVE, PROBE};
use super::{
    ChannelConfig, ChannelEnd, ChannelError, ChannelEvent, CloseReason, HandshakeStage, State,
};

/// How often a responder answers a duplicate of the record it took last (a hello or a
/// finish) with its own again: the initiator sends its records again at most about
/// this often within a handshake timeout, and a replay may not make it answer more.
pub(super) const MAX_DUPLICATE_ANSWERS: u8 = 4;

/// A handshake record kept to be sent again.
pub(super) struct Resend {
    /// The record.
    pub(super) record: Vec<u8>,
    /// When the initiator sends it again (`None` for a responder, which sends its
    /// record again only in answer to a duplicate).
    pub(super) due: Option<Instant>,
    /// The delay after that.
    delay: Duration,
}

/// The timers of one channel end.
pub(super) struct Liveness {
    resend_after: Option<Duration>,
    keepalive: Option<Duration>,
    idle: Option<Duration>,
    probe_timeout: Duration,
    /// During the handshake: the record to send again.
    pub(super) resend: Option<Resend>,
    /// For a responder, once established: the finish it took, whose duplicates it
    /// answers with a confirm, and how many more it answers.
    pub(super) finish: Option<(Box<[u8]>, u8)>,
    /// Duplicates of the hello a responder answers still.
    pub(super) duplicate_answers: u8,
    last_sent: Instant,
    last_heard: Instant,
    /// When to check whether a keepalive is due, and whether the peer has been silent
    /// too long. These move only when they come, not with every record sent or heard:
    /// a busy channel's timer stays put, and its driver need not re-arm one per
    /// message.
    keepalive_at: Option<Instant>,
    idle_at: Option<Instant>,
    /// A probe waits for its answer until then; the report that prompted it.
    probe: Option<(Instant, Box<Report>)>,
}

/// What is due at a given time.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing.
    Nothing,
    /// The handshake record goes again.
    Resend,
    /// A keepalive goes.
    Keepalive,
    /// The peer has been silent for the idle timeout.
    Silent(Duration),
    /// A probe went unanswered.
    ProbeUnanswered(Box<Report>, Duration),
}

impl Liveness {
    pub(super) fn new(config: &ChannelConfig, now: Instant) -> Self {
        Self {
            resend_after: config.handshake_resend,
            keepalive: config.keepalive_interval,
            idle: config.idle_timeout,
            probe_timeout: config.probe_timeout,
            resend: None,
            finish: None,
            duplicate_answers: MAX_DUPLICATE_ANSWERS,
            last_sent: now,
            last_heard: now,
            keepalive_at: None,
            idle_at: None,
            probe: None,
        }
    }

    /// Keeps an initiator's handshake record to send again on a timer.
    pub(super) fn resend_on_timer(&mut self, record: Vec<u8>, now: Instant) {
        self.resend = self.resend_after.map(|delay| Resend {
            record,
            due: now.checked_add(delay),
            delay,
        });
    }

    /// Keeps a responder's handshake record to send again when a duplicate comes.
    pub(super) fn resend_on_duplicate(&mut self, record: Vec<u8>) {
        self.resend = Some(Resend {
            record,
            due: None,
            delay: Duration::ZERO,
        });
    }

    /// The handshake is over: nothing is sent again.
    pub(super) fn established(&mut self, now: Instant) {
        self.resend = None;
        self.last_heard = now;
        self.last_sent = now;
        self.keepalive_at = self.keepalive.and_then(|k| now.checked_add(k));
        self.idle_at = self.idle.and_then(|i| now.checked_add(i));
    }

    /// A record went to the peer.
    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// An authenticated record came from the peer: it is alive.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
        self.probe = None;
    }

    /// Starts a probe prompted by `report`, unless one is under way. Returns whether
    /// one started.
    pub(super) fn start_probe(&mut self, report: Report, now: Instant) -> bool {
        if self.probe.is_some() {
            return false;
        }
        let deadline = now.checked_add(self.probe_timeout).unwrap_or(now);
        self.probe = Some((deadline, Box::new(report)));
        true
    }

    /// When something is next due, once established.
    pub(super) fn next_established(&self) -> Option<Instant> {
        let probe = self.probe.as_ref().map(|(deadline, _)| *deadline);
        [self.keepalive_at, self.idle_at, probe]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the handshake record is next sent again.
    pub(super) fn next_resend(&self) -> Option<Instant> {
        self.resend.as_ref().and_then(|r| r.due)
    }

    /// What is due at `now` during the handshake; the resend timer moves on (its delay
    /// doubles).
    pub(super) fn due_in_handshake(&mut self, now: Instant) -> Due {
        match &mut self.resend {
            Some(resend) if resend.due.is_some_and(|due| due <= now) => {
                resend.delay = resend.delay.saturating_mul(2);
                resend.due = now.checked_add(resend.delay);
                Due::Resend
            }
            _ => Due::Nothing,
        }
    }

    /// What is due at `now` once established, the most serious first.
    pub(super) fn due_established(&mut self, now: Instant) -> Due {
        if let Some((deadline, _)) = &self.probe {
            if *deadline <= now {
                let waited = self.probe_timeout;
                let report = self.probe.take().map(|(_, r)| r);
                if let Some(report) = report {
                    return Due::ProbeUnanswered(report, waited);
                }
            }
        }
        if let (Some(idle), Some(at)) = (self.idle, self.idle_at) {
            if at <= now {
                let silent = now.saturating_duration_since(self.last_heard);
                if silent >= idle {
                    return Due::Silent(silent);
                }
                // Heard since: the deadline moves on from the last record heard.
                self.idle_at = self.last_heard.checked_add(idle);
            }
        }
        if let (Some(keepalive), Some(at)) = (self.keepalive, self.keepalive_at) {
            if at <= now {
                if now.saturating_duration_since(self.last_sent) >= keepalive {
                    // The caller sends one now.
                    self.keepalive_at = now.checked_add(keepalive);
                    return Due::Keepalive;
                }
                self.keepalive_at = self.last_sent.checked_add(keepalive);
            }
        }
        Due::Nothing
    }
}

// ---- the channel end's side ------------------------------------------------------------

/// What a [`ChannelEnd`] does with its timers, duplicates and reports.
impl ChannelEnd {
    /// A finish record once established: a duplicate of the one taken (the confirm
    /// was lost, and the initiator sent its finish again) is answered with a new
    /// confirm, a few times at most; anything else is dropped.
    pub(super) fn answer_duplicate_finish(
        &mut self,
        record: &[u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        let Some((taken, left)) = &mut self.liveness.finish else {
            return Err(ChannelError::Malformed("unexpected record kind"));
        };
        if **taken != *record || *left == 0 {
            return Err(ChannelError::Malformed("unexpected finish record"));
        }
        *left -= 1;
        tracing::debug!("duplicate finish: confirm sent again");
        self.seal_control(&[PLAIN_CONFIRM], now);
        Ok(())
    }

    /// For a responder still in its handshake: a duplicate of the hello it answered
    /// came (the response was lost, and the initiator sent its hello again). Queues
    /// the response again, a few times at most; returns whether it did.
    pub fn answer_duplicate_hello(&mut self, now: Instant) -> bool {
        if !matches!(self.state, State::Responding(_)) || self.liveness.duplicate_answers == 0 {
            return false;
        }
        let Some(resend) = &self.liveness.resend else {
            return false;
        };
        self.liveness.duplicate_answers -= 1;
        tracing::debug!("duplicate hello: response sent again");
        self.transmits.push_back(resend.record.clone());
        self.liveness.sent(now);
        true
    }

    /// A node on the route reported that it could not deliver or forward a record of
    /// this end's (an unauthenticated hint, unless it came through another channel).
    /// During the handshake the channel fails at once, with the report as its reason:
    /// whoever could forge it could as well drop the handshake. Once established the
    /// end probes its peer instead, and fails only if no answer comes within
    /// [`ChannelConfig::probe_timeout`].
    ///
    /// # Errors
    ///
    /// [`ChannelError::RouteFailed`] if the report ended the handshake.
    pub fn handle_report(&mut self, report: Report, now: Instant) -> Result<(), ChannelError> {
        match self.state {
            State::Initiating(_) | State::Responding(_) | State::Confirming { .. } => {
                self.fail(ChannelError::RouteFailed {
                    report: Box::new(report),
                })
            }
            State::Established { .. } => {
                if self.liveness.start_probe(report, now) {
                    tracing::debug!(role = ?self.role, "a node on the route reported a failure: probing the peer");
                    self.seal_control(&[PLAIN_KEEPALIVE, PROBE], now);
                }
                Ok(())
            }
            State::Ended | State::Taken => Ok(()),
        }
    }

    /// Handles the passing of time: during the handshake, sends the latest handshake
    /// record again when it is due and fails the channel at the handshake deadline;
    /// once established, sends a keepalive when nothing was sent for the keepalive
    /// interval, and fails the channel when nothing was heard for the idle timeout or
    /// a probe went unanswered. A failure is reported as [`ChannelEvent::Failed`] (no
    /// call returns it).
    pub fn handle_timeout(&mut self, now: Instant) {
        let stage = match self.state {
            State::Initiating(_) => HandshakeStage::HelloSent,
            State::Responding(_) => HandshakeStage::ResponseSent,
            State::Confirming { .. } => HandshakeStage::FinishSent,
            State::Established { .. } => return self.established_timeout(now),
            State::Ended | State::Taken => return,
        };
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            let error = ChannelError::HandshakeTimeout {
                after: self.handshake_timeout,
                stage,
            };
            tracing::debug!(%error, role = ?self.role, "secure channel failed");
            self.end(ChannelEvent::Failed(error));
            return;
        }
        if self.liveness.due_in_handshake(now) == Due::Resend {
            if let Some(resend) = &self.liveness.resend {
                tracing::debug!(?stage, "no answer yet: handshake record sent again");
                self.transmits.push_back(resend.record.clone());
            }
        }
    }

    fn established_timeout(&mut self, now: Instant) {
        let error = match self.liveness.due_established(now) {
            Due::Nothing | Due::Resend => return,
            Due::Keepalive => {
                tracing::trace!(role = ?self.role, "keepalive");
                // Nothing sent for a keepalive interval: this direction is quiet.
                if let State::Established { encryptor, .. } = &mut self.state {
                    encryptor.quiet();
                }
                self.seal_control(&[PLAIN_KEEPALIVE, 0], now);
                return;
            }
            Due::Silent(silent_for) => ChannelError::Unresponsive { silent_for },
            Due::ProbeUnanswered(report, waited) => ChannelError::PeerLost { report, waited },
        };
        // A peer that is alive after all (only its records were lost) learns it.
        self.seal_control(&[PLAIN_CLOSE, CloseReason::Unresponsive.code()], now);
        tracing::debug!(%error, role = ?self.role, "secure channel failed");
        self.end(ChannelEvent::Failed(error));
    }

    /// Seals a control plaintext (a keepalive, a probe, a confirm, a close) and queues
    /// the record; a channel whose counter is exhausted sends nothing.
    pub(super) fn seal_control(&mut self, plaintext: &[u8], now: Instant) {
        let last = plaintext.first() == Some(&PLAIN_CLOSE);
        if let State::Established { encryptor, .. } | State::Confirming { encryptor, .. } =
            &mut self.state
        {
            if let Ok(record) = encryptor.seal(plaintext, last) {
                self.transmits.push_back(record);
                self.liveness.sent(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ReportCode;
    use crate::routing::Address;

    fn config() -> ChannelConfig {
        ChannelConfig {
            handshake_resend: Some(Duration::from_secs(1)),
            keepalive_interval: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(30)),
            probe_timeout: Duration::from_secs(1),
            ..ChannelConfig::default()
        }
    }

    #[test]
    fn resends_back_off_by_doubling() {
        let t0 = Instant::now();
        let mut l = Liveness::new(&config(), t0);
        l.resend_on_timer(vec![1], t0);
        let mut sent_at = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            now = l.next_resend().expect("a resend timer");
            assert_eq!(l.due_in_handshake(now), Due::Resend);
            assert_eq!(l.due_in_handshake(now), Due::Nothing, "once per deadline");
            sent_at.push(now.duration_since(t0).as_secs());
        }
        assert_eq!(sent_at, [1, 3, 7, 15]);
        l.established(now);
        assert_eq!(l.next_resend(), None);
    }

    #[test]
    fn keepalive_idle_and_probe_deadlines() {
        let t0 = Instant::now();
        let mut l = Liveness::new(&config(), t0);
        l.established(t0);
        assert_eq!(l.next_established(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(l.due_established(t0 + Duration::from_secs(9)), Due::Nothing);
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(10)),
            Due::Keepalive
        );
        l.sent(t0 + Duration::from_secs(10));
        assert_eq!(l.next_established(), Some(t0 + Duration::from_secs(20)));
        // Records sent and heard move no deadline until it comes.
        l.sent(t0 + Duration::from_secs(15));
        l.heard(t0 + Duration::from_secs(5));
        assert_eq!(l.next_established(), Some(t0 + Duration::from_secs(20)));
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(20)),
            Due::Nothing
        );
        assert_eq!(l.next_established(), Some(t0 + Duration::from_secs(25)));
        l.sent(t0 + Duration::from_secs(30));
        // Heard at 5 s: the idle deadline at 30 s moved to 35 s, and comes then.
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(30)),
            Due::Nothing
        );
        assert_eq!(l.next_established(), Some(t0 + Duration::from_secs(35)));
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(35)),
            Due::Silent(Duration::from_secs(30))
        );
        l.heard(t0 + Duration::from_secs(30));
        let report = Report::new(ReportCode::UnknownAddress, Address::local("d"), "");
        assert!(l.start_probe(report.clone(), t0 + Duration::from_secs(31)));
        assert!(!l.start_probe(report.clone(), t0 + Duration::from_secs(31)));
        assert_eq!(l.next_established(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(32)),
            Due::ProbeUnanswered(Box::new(report.clone()), Duration::from_secs(1))
        );
        // An answer ends a probe.
        assert!(l.start_probe(report, t0 + Duration::from_secs(33)));
        l.heard(t0 + Duration::from_secs(33));
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(35)),
            Due::Nothing
        );
    }

    #[test]
    fn none_turns_each_timer_off() {
        let t0 = Instant::now();
        let config = ChannelConfig {
            handshake_resend: None,
            keepalive_interval: None,
            idle_timeout: None,
            ..config()
        };
        let mut l = Liveness::new(&config, t0);
        l.resend_on_timer(vec![1], t0);
        assert_eq!(l.next_resend(), None);
        l.established(t0);
        assert_eq!(l.next_established(), None);
        assert_eq!(
            l.due_established(t0 + Duration::from_secs(86_400)),
            Due::Nothing
        );
    }
}
