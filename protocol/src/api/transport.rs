//! Transports an application plugs into a node: the traits, TCP as one of them, and
//! the tasks that carry a message transport's units.
//!
//! A node carries TCP from the start. [`Node::add_stream_transport`] and
//! [`Node::add_message_transport`] add others under a transport type of their own;
//! from then on the node routes addresses of that type over them, with the same
//! budgets, deadlines, access rules and liveness as TCP (the node core applies them,
//! whatever carries the bytes).
//!
//! [`Node::add_stream_transport`]: super::Node::add_stream_transport
//! [`Node::add_message_transport`]: super::Node::add_message_transport

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{self, Either};
use futures::StreamExt;

use crate::node::{ConnectionId, NodeError, TransportKind};
use crate::routing::{Address, TransportType};

use super::driver::{ConnectionHandle, Driver, FrameSink, Shared};
use super::queue::{queue, Receiver};
use super::runtime::{BoxFuture, Listener, Runtime, Stream};
use super::signal::{Gate, Signal};
use super::{Error, Node, Result};

/// A transport whose connections are byte streams (a Unix socket, TLS, a WebSocket):
/// onward writes its preamble and frames on them, as on TCP. Addresses of the
/// transport's type carry, as UTF-8 text, what [`connect`](Self::connect) and
/// [`listen`](Self::listen) take.
pub trait StreamTransport: Send + Sync + 'static {
    /// Connects to `peer`, the value of an address of this transport. The node gives
    /// up after [`NodeOptions::connect_timeout`](super::NodeOptions::connect_timeout).
    fn connect(&self, peer: &str) -> BoxFuture<'static, io::Result<Stream>>;

    /// Listens at `address` for peers to connect.
    fn listen(&self, address: &str) -> BoxFuture<'static, io::Result<Box<dyn StreamListener>>>;
}

/// A listener of a [`StreamTransport`].
pub trait StreamListener: Send + 'static {
    /// Where it listens, as an address value of its transport (with what the
    /// transport chose filled in, such as a port).
    fn local_address(&self) -> String;

    /// Waits for the next peer to connect.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Stream>>;
}

/// One unit received by a [`MessageTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The address value (of the transport's type) that the unit says it comes from:
    /// where replies go. Not proven: see [`NodeCore::handle_unit`](crate::node::NodeCore::handle_unit).
    pub from: String,
    /// The unit: exactly one frame.
    pub bytes: Vec<u8>,
}

/// A transport that carries each frame as one unit (a broker entry, a datagram) to
/// a peer's inbox, saying which inbox it came from. Each node reads its own inbox.
pub trait MessageTransport: Send + Sync + 'static {
    /// This node's inbox: the address value of the transport that peers send to and
    /// that every unit it sends names as its sender.
    fn inbox(&self) -> String;

    /// Sends `units` (one or more, each one frame), in order, to the inbox at `peer`,
    /// each naming this node's inbox as its sender: in one exchange where the
    /// transport can (the node hands over together what waits for a peer). The units
    /// are copied before this returns. The future completes once the transport has
    /// taken them all.
    ///
    /// An error of kind [`io::ErrorKind::WouldBlock`] means the peer's inbox has no
    /// room for all of `units` and nothing was sent: the node offers the first half of
    /// them at once, down to a single unit, so an inbox with room for some takes what
    /// fits; a single unit refused is offered again, with what follows it, after a
    /// pause (backpressure: meanwhile what waits for the peer grows, and senders are
    /// slowed as by a slow socket). It gives up after
    /// [`NodeOptions::connect_timeout`](super::NodeOptions::connect_timeout) with no
    /// unit taken.
    /// Any other error fails them all (those the transport took before it failed may
    /// still arrive: as for any unit, at least once), and their senders are told.
    fn send(&self, peer: &str, units: &[Vec<u8>]) -> BoxFuture<'static, io::Result<()>>;

    /// Waits for the next unit in this node's inbox. The node calls it again at once
    /// after a unit and after an error (after a short pause), and stops calling it
    /// while the node core has paused reading; a transport that needs units
    /// acknowledged does it here, once the unit is handed over.
    fn receive(&self) -> BoxFuture<'_, io::Result<Unit>>;
}

/// A transport plugged into a node.
#[derive(Clone)]
pub(super) enum Plugged {
    Stream(Arc<dyn StreamTransport>),
    Message(Arc<dyn MessageTransport>),
}

/// TCP, through the runtime: the stream transport every node has.
pub(super) struct Tcp(pub(super) Arc<dyn Runtime>);

impl StreamTransport for Tcp {
    fn connect(&self, peer: &str) -> BoxFuture<'static, io::Result<Stream>> {
        self.0.connect(peer.to_owned())
    }

    fn listen(&self, address: &str) -> BoxFuture<'static, io::Result<Box<dyn StreamListener>>> {
        let bind = self.0.bind(address.to_owned());
        Box::pin(async move {
            let listener: Box<dyn StreamListener> = Box::new(TcpListener(bind.await?));
            Ok(listener)
        })
    }
}

/// A TCP listener of the runtime, as a stream listener.
pub(super) struct TcpListener(pub(super) Box<dyn Listener>);

impl StreamListener for TcpListener {
    fn local_address(&self) -> String {
        self.0.local_addr().to_string()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<Stream>> {
        self.0.accept()
    }
}

impl Node {
    /// Adds `transport`, a stream transport, under transport type `transport_type`:
    /// from now on the node routes addresses of that type over it (connecting on
    /// demand, as for TCP), and [`listen_on`](Self::listen_on) listens with it.
    /// Budgets, deadlines, keepalives, access rules and liveness apply as on TCP.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::TransportExists`] if the type is taken (TCP
    /// is, from the start), or [`NodeError::TransportNotAvailable`] for type 0
    /// (local) or 255 (the report marker); [`Error::Stopped`].
    pub fn add_stream_transport(
        &self,
        transport_type: TransportType,
        transport: impl StreamTransport,
    ) -> Result<()> {
        self.add_transport(transport_type, Plugged::Stream(Arc::new(transport)))
            .map(|_| ())
    }

    /// Adds `transport`, a message transport, under transport type
    /// `transport_type`, and starts reading its inbox. Returns this node's address
    /// on it (the transport's [`inbox`](MessageTransport::inbox)): where other nodes
    /// send to reach this one. From now on the node routes addresses of that type over
    /// it, each frame one unit.
    ///
    /// # Errors
    ///
    /// As [`add_stream_transport`](Self::add_stream_transport).
    pub fn add_message_transport(
        &self,
        transport_type: TransportType,
        transport: impl MessageTransport,
    ) -> Result<Address> {
        let transport = Arc::new(transport);
        let inbox = self.add_transport(transport_type, Plugged::Message(transport.clone()))?;
        let inbox = inbox.ok_or(Error::Stopped)?;
        self.shared
            .spawn_inbox(transport_type, inbox, transport.clone());
        Address::new(transport_type, transport.inbox().into_bytes()).map_err(|error| Error::Io {
            context: format!("the inbox of transport {transport_type}"),
            source: Arc::new(io::Error::new(io::ErrorKind::InvalidInput, error)),
        })
    }

    /// Registers `plugged` in the core and the driver; for a message transport, opens
    /// its inbox in the core and returns its id.
    fn add_transport(
        &self,
        transport_type: TransportType,
        plugged: Plugged,
    ) -> Result<Option<ConnectionId>> {
        if self.shared.closing.is_fired() {
            return Err(Error::Stopped);
        }
        let kind = match plugged {
            Plugged::Stream(_) => TransportKind::Stream,
            Plugged::Message(_) => TransportKind::Message,
        };
        let inbox = self.shared.with_core(|core, now| {
            core.add_transport(transport_type, kind)?;
            match &plugged {
                Plugged::Stream(_) => Ok(None),
                Plugged::Message(m) => core.open_inbox(transport_type, m.inbox(), now).map(Some),
            }
        })?;
        self.shared
            .driver()
            .transports
            .insert(transport_type, plugged);
        Ok(inbox)
    }

    /// Sets who may send messages on over the transport of type `transport_type`
    /// (TCP included): see [`NodeCore::set_forwarding`](crate::node::NodeCore::set_forwarding).
    /// A stream transport forwards for anyone until told otherwise; a message
    /// transport only for senders on this node and secure channels, so that a node in
    /// the middle of a route (`tcp` in, a broker out) must be told
    /// [`Access::anyone`](crate::node::Access::anyone) to pass plain messages, such
    /// as hellos, into the broker.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::TransportNotAvailable`] if the node does not
    /// carry that transport; [`Error::Stopped`].
    pub fn set_forwarding(
        &self,
        transport_type: TransportType,
        access: crate::node::Access,
    ) -> Result<()> {
        if self.shared.closing.is_fired() {
            return Err(Error::Stopped);
        }
        self.shared
            .with_core(|core, _| core.set_forwarding(transport_type, access))?;
        Ok(())
    }

    /// Listens with the stream transport added under `transport_type` at `address`
    /// (a value of that transport) and returns where it listens.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] with [`NodeError::TransportNotAvailable`] if no stream
    /// transport of that type was added; [`Error::Io`] if the transport cannot
    /// listen there; [`Error::Stopped`].
    pub async fn listen_on(&self, transport_type: TransportType, address: &str) -> Result<String> {
        if self.shared.closing.is_fired() {
            return Err(Error::Stopped);
        }
        let transport = match self.shared.driver().transports.get(&transport_type) {
            Some(Plugged::Stream(transport)) => transport.clone(),
            _ => {
                return Err(Error::Node(NodeError::TransportNotAvailable {
                    transport: transport_type,
                    needed: "stream",
                }))
            }
        };
        let listener = transport
            .listen(address)
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {transport_type}#{address}"),
                source: Arc::new(source),
            })?;
        let bound = listener.local_address();
        tracing::debug!(%transport_type, %bound, "listening");
        let shared = self.shared.clone();
        self.shared
            .spawn(async move { shared.accept_loop(transport_type, listener).await });
        Ok(bound)
    }
}

/// The first and the longest pause before units are offered again to a peer whose
/// inbox is full.
const FULL_PAUSE_MIN: Duration = Duration::from_millis(5);
const FULL_PAUSE_MAX: Duration = Duration::from_millis(200);

/// How long the inbox task waits after a receive error before trying again.
const RECEIVE_RETRY: Duration = Duration::from_millis(100);

impl Shared {
    /// Starts the task that reads the inbox of message transport `transport`, opened
    /// in the core as `inbox`.
    pub(super) fn spawn_inbox(
        self: &Arc<Self>,
        transport: TransportType,
        inbox: ConnectionId,
        plugged: Arc<dyn MessageTransport>,
    ) {
        let reading = Gate::default();
        let close = Signal::default();
        let (writer, _) = queue();
        self.driver().connections.insert(
            inbox,
            ConnectionHandle {
                writer: FrameSink::Units(writer),
                close: close.clone(),
                reading: reading.clone(),
            },
        );
        let shared = self.clone();
        self.spawn(async move {
            // Failures in a row: the first is a warning (the node hears nothing from its
            // inbox while they last), the rest are debug lines until one succeeds.
            let mut failing = 0u64;
            loop {
                let stop = future::select(close.wait(), shared.stopping.wait());
                if let Either::Right(_) = future::select(reading.opened(), stop).await {
                    return;
                }
                let stop = future::select(close.wait(), shared.stopping.wait());
                let received = match future::select(plugged.receive(), stop).await {
                    Either::Left((received, _)) => received,
                    Either::Right(_) => return,
                };
                match received {
                    Ok(unit) => {
                        if failing > 0 {
                            tracing::warn!(%transport, failures = failing, "inbox readable again");
                            failing = 0;
                        }
                        let from = match Address::new(transport, unit.from.into_bytes()) {
                            Ok(from) => from,
                            Err(error) => {
                                tracing::debug!(%error, "unit dropped: its sender is no address");
                                continue;
                            }
                        };
                        // Reading may have been paused while the unit was on its way:
                        // it waits here, not lost, until the core takes units again.
                        let mut unit = Some((from, unit.bytes));
                        loop {
                            shared.with_core(|core, now| {
                                if !core.is_reading_paused(inbox) {
                                    if let Some((from, bytes)) = unit.take() {
                                        core.handle_unit(inbox, from, bytes, now);
                                    }
                                }
                            });
                            if unit.is_none() {
                                break;
                            }
                            let stop = future::select(close.wait(), shared.stopping.wait());
                            if let Either::Right(_) = future::select(reading.opened(), stop).await {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        if failing == 0 {
                            tracing::warn!(%transport, %error, "inbox receive failed; trying again every {RECEIVE_RETRY:?}");
                        } else {
                            tracing::debug!(%transport, %error, "inbox receive failed again");
                        }
                        failing += 1;
                        shared.runtime.sleep(RECEIVE_RETRY).await;
                    }
                }
            }
        });
    }

    /// Opens connection `connection` to `peer` over message transport `plugged`,
    /// from [`dispatch`](Shared::dispatch) (under the lock): it is open at once, and a
    /// task sends its transmits, one unit each, in order.
    pub(super) fn open_message_peer(
        self: &Arc<Self>,
        d: &mut Driver,
        connection: ConnectionId,
        peer: String,
        plugged: Arc<dyn MessageTransport>,
        now: Instant,
    ) {
        let (writer, rx) = queue();
        let close = Signal::default();
        d.connections.insert(
            connection,
            ConnectionHandle {
                writer: FrameSink::Units(writer),
                close: close.clone(),
                reading: Gate::default(),
            },
        );
        let shared = self.clone();
        self.spawn(async move {
            shared
                .send_units(connection, peer, plugged, rx, close)
                .await
        });
        d.core.handle_connected(connection, now);
    }

    async fn send_units(
        self: Arc<Self>,
        connection: ConnectionId,
        peer: String,
        plugged: Arc<dyn MessageTransport>,
        mut rx: Receiver<Vec<u8>>,
        close: Signal,
    ) {
        /// Units handed to the transport at once, at most.
        const BATCH: usize = 64;
        loop {
            let stop = future::select(close.wait(), self.halt.wait());
            let unit = match future::select(rx.next(), stop).await {
                Either::Left((Some(unit), _)) => unit,
                _ => return,
            };
            // What else waits for this peer goes with it.
            let mut units = vec![unit];
            while units.len() < BATCH {
                match rx.try_next() {
                    Ok(unit) => units.push(unit),
                    Err(_) => break,
                }
            }
            if !self
                .offer_units(connection, &peer, &*plugged, &units, &close)
                .await
            {
                return;
            }
        }
    }

    /// Offers `units` to `peer`'s inbox in order, telling the core of each part taken.
    /// An inbox with room for fewer than all of them refuses them all (the contract of
    /// [`MessageTransport::send`]), so a refused offer of several is made again at
    /// once with the first half of them, down to one; only a refused single unit waits
    /// a pause, after which all that is left is offered again. The inbox counts as full
    /// from the first refusal with no unit taken since, and after
    /// [`NodeOptions::connect_timeout`](super::NodeOptions::connect_timeout) of that the
    /// connection fails. Returns whether the sending task should go on.
    async fn offer_units(
        self: &Arc<Self>,
        connection: ConnectionId,
        peer: &str,
        plugged: &dyn MessageTransport,
        units: &[Vec<u8>],
        close: &Signal,
    ) -> bool {
        let mut offset = 0;
        let mut pause = FULL_PAUSE_MIN;
        let mut full_since = None;
        while offset < units.len() {
            let mut take = units.len() - offset;
            let sent = loop {
                let part = units.get(offset..offset + take).unwrap_or_default();
                let stop = future::select(close.wait(), self.halt.wait());
                let sent = match future::select(plugged.send(peer, part), stop).await {
                    Either::Left((sent, _)) => sent,
                    Either::Right(_) => return false,
                };
                match sent {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock && take > 1 => {
                        take /= 2;
                    }
                    sent => break sent,
                }
            };
            let failure = match sent {
                Ok(()) => {
                    let part = units.get(offset..offset + take).unwrap_or_default();
                    let len: usize = part.iter().map(Vec::len).sum();
                    self.with_core(|core, now| core.handle_written(connection, len, now));
                    offset += take;
                    pause = FULL_PAUSE_MIN;
                    full_since = None;
                    continue;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    let now = self.runtime.now();
                    let waited = now.saturating_duration_since(*full_since.get_or_insert(now));
                    if waited < self.options.connect_timeout {
                        let stop = future::select(close.wait(), self.halt.wait());
                        if let Either::Right(_) =
                            future::select(self.runtime.sleep(pause), stop).await
                        {
                            return false;
                        }
                        pause = (pause * 2).min(FULL_PAUSE_MAX);
                        continue;
                    }
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer's inbox stayed full for {waited:?} ({error})"),
                    )
                }
                Err(error) => error,
            };
            let reason = failure.to_string();
            self.with_core(|core, now| {
                core.handle_connection_closed(connection, Some(&reason), now)
            });
            close.fire();
            return false;
        }
        true
    }
}
