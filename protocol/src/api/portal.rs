//! TCP portals on the async layer: an [`Inlet`] that carries each TCP connection it
//! accepts to an [`Outlet`], which connects to a target for each, over any route.
//!
//! The sessions are [`PortalSession`]s (the pure state machine in
//! [`crate::portal`]); this module binds them to sockets and to the node. Each session
//! has a fresh random address at each end; the inlet sends its open to the outlet's
//! address, the outlet answers from its session's address, and from then on each end
//! sends to the other's session address along the route the other's messages came by
//! (docs/PROTOCOL.md section 11).
//!
//! Who may open sessions is the outlet's [`Access`] rule, checked by the node core
//! before delivery; after the open, each end takes messages only from where the first
//! message of the other end came from (the same secure channel peer, or the same
//! connection), so a session cannot be spoken into from anywhere else.
//!
//! Memory is bounded per session by the windows: an end reads from its socket only
//! what the other end's window allows, and holds at most one window of the other's
//! bytes. The number of sessions is bounded by [`PortalOptions::max_sessions`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::channel::oneshot;
use futures::future::{self, Either};
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures::StreamExt;

use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::node::{Access, Origin};
use crate::portal::{
    PortalError, PortalMessage, PortalOutput, PortalSession, DEFAULT_PORTAL_WINDOW,
    MAX_PORTAL_CHUNK, PORTAL_KEEPALIVE,
};
use crate::routing::{Address, Route};

use super::context::Context;
use super::driver::Shared;
use super::runtime::{BoxFuture, Stream};
use super::signal::Signal;
use super::{Error, Node, Result};

/// How an inlet or an outlet runs its sessions.
#[derive(Debug, Clone)]
pub struct PortalOptions {
    /// The window each session end advertises: how many bytes the other end may send
    /// ahead of what this end has written to its socket. Memory per session is at
    /// most about two windows.
    pub window: u32,
    /// The most sessions at once. Past it an inlet closes the connections it accepts
    /// at once, and an outlet answers opens with a reset; both log a warning.
    pub max_sessions: usize,
    /// Who may reach the outlet and the sessions' addresses. The default takes only
    /// secure channels (and this node); a portal over plain transport connections
    /// needs [`Access::anyone`].
    pub access: Access,
    /// How long an outlet waits for its target to accept a connection.
    pub connect_timeout: Duration,
    /// After how long without sending an end sends a keepalive, so that an idle
    /// session whose other end is gone (its node crashed, the channel under it
    /// failed) ends by name rather than lingering. Zero: never.
    pub keepalive: Duration,
}

impl Default for PortalOptions {
    fn default() -> Self {
        Self {
            window: DEFAULT_PORTAL_WINDOW,
            max_sessions: 256,
            access: Access::secure_channels(),
            connect_timeout: Duration::from_secs(5),
            keepalive: PORTAL_KEEPALIVE,
        }
    }
}

/// What an inlet or an outlet has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortalStats {
    /// Sessions running now.
    pub active: usize,
    /// Sessions that ended with both streams carried to their end.
    pub completed: u64,
    /// Sessions that ended with an error (each logged as a warning).
    pub failed: u64,
    /// Connections or opens refused because [`PortalOptions::max_sessions`] were
    /// running.
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    active: AtomicUsize,
    completed: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

impl Counters {
    fn stats(&self) -> PortalStats {
        PortalStats {
            active: self.active.load(Ordering::Acquire),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Takes a session slot, if one is free.
    fn try_start(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_ok() {
            Some(Slot(self.clone()))
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A running session's place among [`Counters::active`]; given back on drop.
struct Slot(Arc<Counters>);

impl Slot {
    fn end(&self, result: &std::result::Result<(), PortalError>) {
        let counter = if result.is_ok() {
            &self.0.completed
        } else {
            &self.0.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An inlet: a TCP listener whose every connection is carried to an outlet. Made by
/// [`Node::create_inlet`]; dropping it (or [`stop`](Self::stop)) stops accepting, and
/// the sessions already open run on to their end.
#[must_use = "dropping an inlet stops it"]
pub struct Inlet {
    local_addr: SocketAddr,
    to: Route,
    stop: Signal,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Inlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inlet")
            .field("local_addr", &self.local_addr)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Inlet {
    /// Where it listens (with the port the system chose, if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The route to the outlet that sessions are opened along.
    pub fn route(&self) -> &Route {
        &self.to
    }

    /// What its sessions have done.
    pub fn stats(&self) -> PortalStats {
        self.counters.stats()
    }

    /// Stops accepting connections; sessions already open run on to their end.
    pub fn stop(&self) {
        self.stop.fire();
    }
}

impl Drop for Inlet {
    fn drop(&mut self) {
        self.stop.fire();
    }
}

/// An outlet: an address that opens a connection to its target for each session an
/// inlet opens to it. Made by [`Node::create_outlet`]; dropping it (or
/// [`stop`](Self::stop)) frees the address, and the sessions already open run on to
/// their end.
#[must_use = "dropping an outlet stops it"]
pub struct Outlet {
    address: Address,
    target: String,
    stop: Signal,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Outlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlet")
            .field("address", &self.address)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Outlet {
    /// Its address: inlets open sessions to a route that ends here.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The TCP address it connects to for each session.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What its sessions have done.
    pub fn stats(&self) -> PortalStats {
        self.counters.stats()
    }

    /// Stops taking opens and frees the address; sessions already open run on.
    pub fn stop(&self) {
        self.stop.fire();
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        self.stop.fire();
    }
}

impl Node {
    /// Creates an outlet at `address`: for each session opened to it (by an
    /// [`Inlet`], through any route that `options.access` admits), it connects to
    /// `target` (`host:port`) and carries the bytes both ways until both streams end.
    /// A target that cannot be reached within `options.connect_timeout` resets the
    /// session, and the inlet's log names the target and the reason.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] if the address is taken; [`Error::Stopped`].
    pub async fn create_outlet(
        &self,
        address: impl Into<Address>,
        target: &str,
        options: PortalOptions,
    ) -> Result<Outlet> {
        let address = address.into();
        // A context that never waits: a refusal to a congested route must not hold up
        // the opens behind it (a refusal that does not fit is dropped, and the inlet
        // times out).
        let mailbox = self
            .shared
            .open_mailbox(address.clone(), options.access.clone())?;
        let mut ctx = Context::new(address.clone(), self.shared.clone(), mailbox, false);
        let (stop, counters) = (Signal::default(), Arc::new(Counters::default()));
        let outlet = Outlet {
            address,
            target: target.to_owned(),
            stop: stop.clone(),
            counters: counters.clone(),
        };
        let (shared, target) = (self.shared.clone(), target.to_owned());
        self.shared.spawn(async move {
            loop {
                let ended = future::select(stop.wait(), shared.closing.wait());
                let delivery = match future::select(Box::pin(ctx.next_delivery(None)), ended).await
                {
                    Either::Left((Ok(delivery), _)) => delivery,
                    Either::Left((Err(Error::Stopped), _)) | Either::Right(_) => return,
                    // A failure of an answer this outlet sent: nothing waits for it.
                    Either::Left((Err(error), _)) => {
                        tracing::debug!(%error, "an outlet's answer was not delivered");
                        continue;
                    }
                };
                open_session(&shared, &ctx, delivery, &target, &options, &counters).await;
            }
        });
        Ok(outlet)
    }

    /// Creates an inlet listening on `listen` (`host:port`, port 0 for any): for each
    /// connection it accepts, it opens a session along `to`, a route that ends at an
    /// outlet's address (through a secure channel, typically:
    /// `route![channel.address(), "outlet"]`), and carries the bytes both ways until
    /// both streams end. An outlet that does not answer within
    /// [`OPEN_TIMEOUT`](crate::portal::OPEN_TIMEOUT), or that cannot reach its target,
    /// ends the session: the connection is closed and a warning names the reason.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the address cannot be bound; [`Error::Stopped`].
    pub async fn create_inlet(
        &self,
        listen: &str,
        to: impl Into<Route>,
        options: PortalOptions,
    ) -> Result<Inlet> {
        if self.shared.closing.is_fired() {
            return Err(Error::Stopped);
        }
        let to = to.into();
        let mut listener = self
            .shared
            .runtime
            .bind(listen.to_owned())
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {listen} for an inlet"),
                source: Arc::new(source),
            })?;
        let (stop, counters) = (Signal::default(), Arc::new(Counters::default()));
        let inlet = Inlet {
            local_addr: listener.local_addr(),
            to: to.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
        };
        let shared = self.shared.clone();
        self.shared.spawn(async move {
            loop {
                let ended = future::select(stop.wait(), shared.closing.wait());
                let stream = match future::select(listener.accept(), ended).await {
                    Either::Left((Ok(stream), _)) => stream,
                    Either::Left((Err(error), _)) => {
                        // Out of file descriptors, most likely: a pause, not a spin.
                        tracing::warn!(%error, "an inlet could not accept a connection");
                        shared.sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Either::Right(_) => return,
                };
                let Some(slot) = counters.try_start(options.max_sessions) else {
                    tracing::warn!(
                        client = %stream.peer, max = options.max_sessions,
                        "an inlet refused a connection: too many sessions"
                    );
                    continue;
                };
                let ctx = match shared.open_fresh_mailbox(options.access.clone()) {
                    Ok((address, mailbox)) => Context::new(address, shared.clone(), mailbox, true),
                    Err(Error::Stopped) => return,
                    Err(error) => {
                        tracing::warn!(%error, client = %stream.peer, "an inlet could not open a session");
                        continue;
                    }
                };
                let now = shared.runtime.now();
                let run = SessionRun {
                    shared: shared.clone(),
                    session: PortalSession::inlet(options.window, now),
                    ctx,
                    peer: to.clone(),
                    answered: false,
                    from: None,
                    what: format!("portal session from {} to {to}", stream.peer),
                    keepalive: options.keepalive,
                    last_sent: now,
                };
                shared.spawn(run.run(stream, slot));
            }
        });
        Ok(inlet)
    }
}

/// An open arrived at an outlet: start its session, or refuse it.
async fn open_session(
    shared: &Arc<Shared>,
    outlet: &Context,
    (message, origin): (TransportMessage, Origin),
    target: &str,
    options: &PortalOptions,
    counters: &Arc<Counters>,
) {
    if crate::report::is_report(&message) {
        return; // about an answer this outlet sent: nothing waits for it
    }
    let refuse = |reason: String| {
        let reset = PortalMessage::Reset { reason }.encode();
        let message = TransportMessage::new(
            message.return_route.clone(),
            Route::from(outlet.address().clone()),
            reset,
        );
        async move {
            if let Err(error) = outlet.forward(message).await {
                tracing::debug!(%error, "an outlet's refusal was not delivered");
            }
        }
    };
    let session = match PortalSession::outlet(&message.payload, options.window) {
        Ok(session) => session,
        // Not answered: a reset to a reset could bounce between two outlets whose
        // addresses a crafted return route joined, for ever. Inlets send an outlet
        // nothing but opens.
        Err(error) => {
            tracing::debug!(%error, from = %message.return_route, "an outlet ignored a message that is not an open");
            return;
        }
    };
    let Some(slot) = counters.try_start(options.max_sessions) else {
        tracing::warn!(
            max = options.max_sessions,
            target,
            "an outlet refused an open: too many sessions"
        );
        return refuse(format!(
            "the outlet has {} sessions open",
            options.max_sessions
        ))
        .await;
    };
    let ctx = match shared.open_fresh_mailbox(options.access.clone()) {
        Ok((address, mailbox)) => Context::new(address, shared.clone(), mailbox, true),
        Err(error) => return refuse(error.to_string()).await,
    };
    let what = format!("portal session from {} to {target}", message.return_route);
    let mut run = SessionRun {
        shared: shared.clone(),
        session,
        ctx,
        peer: message.return_route,
        answered: true,
        from: Some(Source::of(&origin)),
        what,
        keepalive: options.keepalive,
        last_sent: shared.runtime.now(),
    };
    let (shared, target, timeout) = (shared.clone(), target.to_owned(), options.connect_timeout);
    shared.clone().spawn(async move {
        let connect = shared.runtime.connect(target.clone());
        let stream = match future::select(connect, shared.sleep(timeout)).await {
            Either::Left((Ok(stream), _)) => stream,
            Either::Left((Err(error), _)) => {
                run.session
                    .handle_failed(&format!("cannot connect to {target}: {error}"));
                return run.finish_unconnected(slot).await;
            }
            Either::Right(_) => {
                run.session.handle_failed(&format!(
                    "cannot connect to {target}: no answer within {timeout:?}"
                ));
                return run.finish_unconnected(slot).await;
            }
        };
        run.session.handle_connected();
        run.run(stream, slot).await;
    });
}

/// Where the other end of a session speaks from: every message after the first must
/// come the same way. Outside a channel any connection will do: nothing proves more
/// there than the session's random address does, and after a reconnect the other
/// end's messages (and reports) come over a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Local,
    Channel(Identifier),
    Transport,
}

impl Source {
    fn of(origin: &Origin) -> Self {
        match origin {
            Origin::Channel { peer, .. } => Source::Channel(**peer),
            Origin::Transport { .. } => Source::Transport,
            _ => Source::Local,
        }
    }
}

/// What a session's writer task is asked to do.
enum Write {
    Bytes(Vec<u8>),
    Shutdown,
}

/// What waits to be written to a session's socket. One write at a time is with the
/// writer task; what the session gives meanwhile is gathered into one buffer, so that
/// many small pieces cost one allocation, not one each.
struct Outbox {
    writer: UnboundedSender<Write>,
    /// A write is with the writer task.
    busy: bool,
    pending: Vec<u8>,
    /// The write side is to be shut down once everything is written.
    shutdown: bool,
    shutdown_sent: bool,
}

impl Outbox {
    fn new(writer: UnboundedSender<Write>) -> Self {
        Self {
            writer,
            busy: false,
            pending: Vec::new(),
            shutdown: false,
            shutdown_sent: false,
        }
    }

    fn write(&mut self, bytes: Vec<u8>) {
        if !self.busy {
            self.busy = true;
            let _ = self.writer.unbounded_send(Write::Bytes(bytes));
        } else if self.pending.is_empty() {
            self.pending = bytes;
        } else {
            self.pending.extend_from_slice(&bytes);
        }
    }

    fn shutdown(&mut self) {
        self.shutdown = true;
        if !self.busy {
            self.next();
        }
    }

    /// The writer task finished a write.
    fn written(&mut self) {
        self.busy = false;
        self.next();
    }

    fn next(&mut self) {
        if !self.pending.is_empty() {
            self.busy = true;
            let bytes = std::mem::take(&mut self.pending);
            let _ = self.writer.unbounded_send(Write::Bytes(bytes));
        } else if self.shutdown && !self.shutdown_sent {
            self.busy = true;
            self.shutdown_sent = true;
            let _ = self.writer.unbounded_send(Write::Shutdown);
        }
    }
}

/// What a session's writer task reports.
enum Written {
    Bytes(usize),
    Failed(io::Error),
}

/// What woke a session.
// Messages travel by value, routes inline (no allocation per route); boxing the large
// variant would put an allocation back on every message.
#[allow(clippy::large_enum_variant)]
enum Event {
    Closing,
    Drained,
    Delivery(Result<(TransportMessage, Origin)>),
    Written(Option<Written>),
    Read(io::Result<usize>),
    Timeout,
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Closing => "closing",
            Event::Drained => "drained",
            Event::Delivery(_) => "delivery",
            Event::Written(_) => "written",
            Event::Read(_) => "read",
            Event::Timeout => "timeout",
        }
    }
}

/// One session at one end, with its socket and its address.
struct SessionRun {
    shared: Arc<Shared>,
    session: PortalSession,
    ctx: Context,
    /// Where portal messages go: at an inlet, the outlet until it answers, then the
    /// other end's session.
    peer: Route,
    /// Whether `peer` is the other end's session.
    answered: bool,
    /// Where the other end's messages come from, once known.
    from: Option<Source>,
    /// For logs.
    what: String,
    /// How long without a send before a keepalive.
    keepalive: Duration,
    /// When this end last sent.
    last_sent: Instant,
}

impl SessionRun {
    /// Carries out outputs until there are none; `Some` once the session closed.
    async fn carry_out(
        &mut self,
        outbox: &mut Outbox,
    ) -> Option<std::result::Result<(), PortalError>> {
        while let Some(output) = self.session.poll_output() {
            match output {
                PortalOutput::Send(message) => {
                    let message = TransportMessage::new(
                        self.peer.clone(),
                        Route::from(self.ctx.address().clone()),
                        message.encode(),
                    );
                    if let Err(error) = self.ctx.forward(message).await {
                        self.session
                            .handle_unreachable(&format!("sending to {}: {error}", self.peer));
                    }
                    self.last_sent = self.shared.runtime.now();
                }
                PortalOutput::Write(bytes) => outbox.write(bytes),
                PortalOutput::ShutdownWrite => outbox.shutdown(),
                PortalOutput::Opened => {
                    tracing::debug!(session = %self.what, "portal session open")
                }
                PortalOutput::Closed(result) => return Some(result),
            }
        }
        None
    }

    /// The outlet could not reach its target: the reset goes out, and that is all.
    async fn finish_unconnected(mut self, slot: Slot) {
        let mut outbox = Outbox::new(unbounded().0);
        if let Some(result) = self.carry_out(&mut outbox).await {
            self.log_end(&slot, &result);
        }
    }

    fn log_end(&self, slot: &Slot, result: &std::result::Result<(), PortalError>) {
        slot.end(result);
        match result {
            Ok(()) => tracing::debug!(session = %self.what, "portal session ended"),
            Err(error) => tracing::warn!(session = %self.what, %error, "portal session failed"),
        }
    }

    /// Runs the session over `stream` until it closes.
    async fn run(mut self, stream: Stream, slot: Slot) {
        let Stream {
            mut reader, writer, ..
        } = stream;
        let (writes, to_write) = unbounded();
        let mut outbox = Outbox::new(writes);
        let (report, mut written) = unbounded();
        let abort = Signal::default();
        self.shared
            .spawn(write_loop(writer, to_write, report, abort.clone()));
        let mut closing = self.shared.closing.wait();
        let mut buffer = vec![0; MAX_PORTAL_CHUNK];
        let mut read_open = true;
        let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
        // Set while the route's first hop is congested: reading waits for it to drain,
        // so sessions do not pile their data onto a slow hop.
        let mut drained: Option<oneshot::Receiver<()>> = None;
        let result = loop {
            if let Some(result) = self.carry_out(&mut outbox).await {
                break result;
            }
            let keepalive = if self.keepalive.is_zero() {
                None // zero: never
            } else {
                self.last_sent.checked_add(self.keepalive)
            };
            let deadline = match (self.session.poll_timeout(), keepalive) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // A timer is set anew only for an earlier deadline: one that fires early
            // (the keepalive moved on with a send) is set again then. So sends do not
            // each make a timer.
            let sooner = match (&timer, deadline) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((at, _)), Some(deadline)) => deadline < *at,
            };
            if sooner {
                timer = deadline.map(|at| {
                    let wait = at.saturating_duration_since(self.shared.runtime.now());
                    (at, self.shared.sleep(wait))
                });
            }
            let capacity = self.session.send_capacity().min(MAX_PORTAL_CHUNK);
            if read_open && capacity > 0 && drained.is_none() {
                drained = self.shared.congested(&self.peer);
            }
            let reading = read_open && capacity > 0 && drained.is_none();
            let event = future::poll_fn(|cx| {
                if Pin::new(&mut closing).poll(cx).is_ready() {
                    return Poll::Ready(Event::Closing);
                }
                if let Poll::Ready(delivery) = self.ctx.poll_delivery(cx) {
                    return Poll::Ready(Event::Delivery(delivery));
                }
                if let Poll::Ready(w) = written.poll_next_unpin(cx) {
                    return Poll::Ready(Event::Written(w));
                }
                if reading {
                    let into = buffer.get_mut(..capacity).unwrap_or_default();
                    if let Poll::Ready(read) = Pin::new(&mut reader).poll_read(cx, into) {
                        return Poll::Ready(Event::Read(read));
                    }
                }
                if let Some(rx) = drained.as_mut() {
                    if Pin::new(rx).poll(cx).is_ready() {
                        return Poll::Ready(Event::Drained);
                    }
                }
                if let Some((_, sleep)) = timer.as_mut() {
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Timeout);
                    }
                }
                Poll::Pending
            })
            .await;
            let now = self.shared.runtime.now();
            tracing::trace!(session = %self.what, event = event.name(), capacity, reading, "portal event");
            match event {
                Event::Closing => self.session.handle_failed("the node is stopping"),
                Event::Delivery(delivery) => self.on_delivery(delivery, now),
                Event::Written(Some(Written::Bytes(n))) => {
                    outbox.written();
                    self.session.handle_written(n);
                }
                Event::Drained => drained = None,
                Event::Written(Some(Written::Failed(error))) => {
                    self.session
                        .handle_failed(&format!("writing to the socket: {error}"));
                }
                Event::Written(None) => self.session.handle_failed("the socket writer ended"),
                Event::Read(Ok(0)) => {
                    read_open = false;
                    self.session.handle_read_closed();
                }
                Event::Read(Ok(n)) => {
                    let read = buffer.get(..n).unwrap_or_default();
                    if let Err(error) = self.session.handle_read(read) {
                        self.session.handle_failed(&error.to_string());
                    }
                }
                Event::Read(Err(error)) => {
                    read_open = false;
                    self.session
                        .handle_failed(&format!("reading from the socket: {error}"));
                }
                Event::Timeout => {
                    timer = None;
                    self.session.handle_timeout(now);
                    if keepalive.is_some_and(|at| now >= at) {
                        self.session.handle_keepalive();
                        // Sent (or failed) now, even if the session is not open yet.
                        self.last_sent = now;
                    }
                }
            }
        };
        if result.is_err() {
            // Whatever the writer still holds is for a session that failed.
            abort.fire();
        }
        self.log_end(&slot, &result);
    }

    fn on_delivery(&mut self, delivery: Result<(TransportMessage, Origin)>, now: Instant) {
        let (message, origin) = match delivery {
            Ok(delivery) => delivery,
            Err(Error::Stopped) => return self.session.handle_failed("the node is stopping"),
            Err(error) => return self.session.handle_unreachable(&error.to_string()),
        };
        // A report about what this end sent, from wherever on the route: only those
        // who saw the session's random address can send one here.
        if crate::report::is_report(&message) {
            let reason = match crate::report::Report::decode(&message.payload) {
                Ok(report) => report.to_string(),
                Err(error) => format!("an unreadable report: {error}"),
            };
            return self.session.handle_unreachable(&reason);
        }
        let from = Source::of(&origin);
        if self.from.as_ref().is_some_and(|expected| *expected != from) {
            tracing::debug!(session = %self.what, %origin, "a portal session ignored a message from elsewhere");
            return;
        }
        if !self.answered {
            // The outlet's answer, from its session's address: where everything goes.
            self.answered = true;
            self.peer = message.return_route.clone();
            self.from = Some(from);
        }
        self.session.handle_message(&message.payload, now);
    }
}

/// Writes what a session asks to its socket, reporting each write done; ends when
/// the session drops its end of the channel, or at once when `abort` fires.
async fn write_loop(
    mut writer: Box<dyn AsyncWrite + Send + Unpin>,
    mut to_write: UnboundedReceiver<Write>,
    report: UnboundedSender<Written>,
    abort: Signal,
) {
    let work = async {
        while let Some(write) = to_write.next().await {
            let result = match write {
                Write::Bytes(bytes) => writer.write_all(&bytes).await.map(|()| bytes.len()),
                Write::Shutdown => writer.close().await.map(|()| 0),
            };
            match result {
                Ok(n) => {
                    let _ = report.unbounded_send(Written::Bytes(n));
                }
                Err(error) => {
                    let _ = report.unbounded_send(Written::Failed(error));
                    return;
                }
            }
        }
    };
    let _ = future::select(Box::pin(work), abort.wait()).await;
}
