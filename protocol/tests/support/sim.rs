//! A deterministic multi-node simulator over virtual time, for the scenario and fault
//! tests of the node core.
//!
//! [`Sim`] holds several [`NodeCore`]s, each with a name, an optional listen address
//! (a plain string such as `"m:3000"`: there are no sockets), and mailboxes whose
//! workers act automatically ([`Behaviour`]). An in-memory network carries the cores'
//! outputs: `Connect` finds the node listening on that string, `Transmit` carries bytes
//! to the other end after the link's latency, `Close` closes both ends. Nothing reads a
//! clock: a queue of scheduled actions, ordered by (virtual time, sequence number), is
//! run one at a time, jumping to the earliest of the next action and every core's
//! [`poll_timeout`](NodeCore::poll_timeout); after every input the node's outputs are
//! drained. The same seed gives the same run, byte for byte.
//!
//! # The fault model
//!
//! Faults are set per link, a link being an ordered pair of nodes ([`LinkFaults`]):
//! latency, loss, duplication, reordering (a random extra delay), bit corruption, and
//! partitions; a node can also be restarted (a fresh core with the same name, listen
//! address, mailboxes and channel listeners; its peers see their connections closed).
//!
//! A real TCP stream never loses, duplicates or reorders bytes. But a message on a
//! multi-hop route crosses several connections, any of which may close and be
//! reopened, and middle nodes may drop or misroute it: end to end, messages are lost,
//! duplicated and reordered, and an active attacker can alter them. That is what the
//! secure channel must survive, so the simulator applies loss, duplication and
//! reordering to **whole transmits**: the core emits one `Transmit` per preamble and
//! per whole frame, so every stream a core receives stays a well-formed sequence of
//! frames. Corruption flips one bit **after a frame's 4-byte length prefix**, so the
//! stream stays parseable and the core sees an altered message, never a desynchronised
//! stream. The preamble (the first transmit of each connection end) is exempt from all
//! faults: a stream without one is a refused connection, not a lossy route.
//!
//! A tamper hook per link ([`Sim::set_tamper`]) plays an active attacker that rewrites
//! whole frames in flight. Raw peers ([`Sim::raw_connect`]) are connections with no
//! core behind them, for feeding a listener arbitrary bytes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onward_protocol::channel::ChannelConfig;
use onward_protocol::framing::{FRAME_HEADER_LEN, PREAMBLE};
use onward_protocol::identity::Identity;
use onward_protocol::node::{
    Access, ChannelId, ChannelRules, ConnectionId, Hop, NodeConfig, NodeCore, NodeError, NodeEvent,
    Origin, Output,
};
use onward_protocol::random::{RandomSource, SeededRandom};
use onward_protocol::trust::TrustPolicy;
use onward_protocol::{Address, Route, TransportMessage};

/// A node's index in the simulation.
pub(crate) type NodeId = usize;

/// A raw peer's index in the simulation.
pub(crate) type RawId = usize;

/// Steps one `run_*` call may take before the simulator declares a livelock.
pub(crate) const DEFAULT_STEP_BUDGET: u64 = 2_000_000;

/// Outputs one drain may take before the simulator declares a livelock.
const OUTPUT_BUDGET: u64 = 1_000_000;

/// One-way latency between a raw peer and the node it is connected to.
pub(crate) const RAW_LATENCY: Duration = Duration::from_millis(1);

/// How long a connect to an address nobody listens on takes to fail.
pub(crate) const REFUSED_DELAY: Duration = Duration::from_millis(3);

/// How long a connect across a partition takes to fail (a connect timeout).
pub(crate) const PARTITION_CONNECT_DELAY: Duration = Duration::from_millis(500);

/// Rewrites the bytes of one transmit (a whole frame, never a preamble) in flight.
pub(crate) type Tamper = Box<dyn FnMut(&mut Vec<u8>)>;

/// What the worker behind a mailbox does with each message delivered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Forwards: takes its own address off the onward route, puts it on the front of
    /// the return route, and sends the message on.
    Hop,
    /// Replies to the return route with the same payload, from its own address.
    Echo,
    /// Takes every message at once and keeps it for the test.
    Sink,
    /// Keeps every message unconsumed until the test takes it ([`Sim::take`]).
    Hold,
}

/// A mailbox and what its worker saw.
#[derive(Debug)]
pub(crate) struct Mailbox {
    /// What the worker does.
    pub behaviour: Behaviour,
    /// Every message delivered, as delivered (routes included), in order.
    pub received: Vec<TransportMessage>,
    /// Where each message in `received` came from, as the core said.
    pub origins: Vec<Origin>,
    /// Who may deliver to it (kept across restarts).
    access: Access,
    held: VecDeque<TransportMessage>,
}

impl Mailbox {
    fn new(behaviour: Behaviour, access: Access) -> Self {
        Self {
            behaviour,
            received: Vec::new(),
            origins: Vec::new(),
            access,
            held: VecDeque::new(),
        }
    }

    /// The payloads received, in order.
    pub(crate) fn payloads(&self) -> Vec<Vec<u8>> {
        self.received.iter().map(|m| m.payload.clone()).collect()
    }
}

/// The faults of one direction of a link.
#[derive(Debug, Clone)]
pub(crate) struct LinkFaults {
    /// One-way delay of every transmit.
    pub latency: Duration,
    /// Probability that a transmit is lost.
    pub loss: f64,
    /// Probability that a transmit arrives twice.
    pub duplicate: f64,
    /// Probability that a transmit is delayed by a random extra time up to
    /// `reorder_spread`, letting later ones overtake it.
    pub reorder: f64,
    /// The largest extra delay of a reordered transmit.
    pub reorder_spread: Duration,
    /// Probability that one bit of a frame (after its length prefix) is flipped.
    pub corrupt: f64,
}

impl Default for LinkFaults {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(5),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_spread: Duration::from_millis(20),
            corrupt: 0.0,
        }
    }
}

impl LinkFaults {
    /// A link with every fault at the given probabilities and the default latency.
    pub(crate) fn lossy(loss: f64, duplicate: f64, reorder: f64, corrupt: f64) -> Self {
        Self {
            loss,
            duplicate,
            reorder,
            corrupt,
            ..Self::default()
        }
    }
}

struct ListenerSpec {
    address: Address,
    identity: Arc<Identity>,
    trust: Arc<dyn TrustPolicy>,
    config: ChannelConfig,
    rules: ChannelRules,
}

/// One simulated node.
pub(crate) struct SimNode {
    /// Its name, used in the peer strings it presents to listeners.
    pub name: String,
    /// The address it listens on, if any.
    pub listen: Option<String>,
    /// Its core; replaced by a fresh one on restart.
    pub core: NodeCore,
    config: NodeConfig,
    epoch: u64,
    /// Its mailboxes, by address.
    pub mailboxes: BTreeMap<Address, Mailbox>,
    listeners: Vec<ListenerSpec>,
    /// Every event its core reported, with the virtual time.
    pub events: Vec<(Duration, NodeEvent)>,
    /// Sends by automatic workers that the core refused at once.
    pub worker_errors: Vec<(Duration, Address, NodeError)>,
    /// Whether to record every byte this node transmits or receives.
    pub capture: bool,
    /// The recorded bytes, one entry per transmit or arrival.
    pub captured: Vec<Vec<u8>>,
    /// Connections its core has paused reading (`Output::PauseReading`) and not
    /// resumed. (The sim goes on handing them bytes: the core must cope.)
    pub paused: BTreeSet<ConnectionId>,
    /// Every `Output::Decongested` its core emitted, with the virtual time.
    pub decongested: Vec<(Duration, Hop)>,
    /// Whether its core may deliver to addresses the test did not register
    /// ([`Sim::allow_unregistered_deliveries`]).
    allow_unregistered: bool,
}

/// A raw peer: a connection to a listener with no core behind it.
#[derive(Debug, Default)]
pub(crate) struct RawPeer {
    /// Every byte the node sent it.
    pub received: Vec<u8>,
    /// Whether its connection has closed.
    pub closed: bool,
    pipe: Option<u64>,
    last_arrival: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Node {
        node: NodeId,
        epoch: u64,
        conn: ConnectionId,
    },
    Raw(RawId),
}

struct Pipe {
    ends: [End; 2],
    /// The latest in-order arrival time towards each end, so that transmits that are
    /// not reordered arrive in order even if the latency changes.
    last_arrival: [Duration; 2],
    /// Whether each end has sent its first transmit (the preamble).
    started: [bool; 2],
}

impl Pipe {
    fn side(&self, end: End) -> usize {
        usize::from(self.ends[1] == end)
    }
}

enum Action {
    Accept {
        dialer: NodeId,
        epoch: u64,
        conn: ConnectionId,
        listener: NodeId,
    },
    Connected {
        node: NodeId,
        epoch: u64,
        conn: ConnectionId,
    },
    ConnectFailed {
        node: NodeId,
        epoch: u64,
        conn: ConnectionId,
        reason: String,
    },
    Arrive {
        pipe: u64,
        to: End,
        bytes: Vec<u8>,
    },
    Written {
        pipe: u64,
        at: End,
        n: usize,
    },
    Closed {
        to: End,
        reason: String,
    },
}

/// The simulation. See the [module documentation](self).
pub(crate) struct Sim {
    base: Instant,
    now: Duration,
    seed: u64,
    rng: SeededRandom,
    nodes: Vec<SimNode>,
    raws: Vec<RawPeer>,
    queue: BTreeMap<(Duration, u64), Action>,
    next_seq: u64,
    pipes: BTreeMap<u64, Pipe>,
    pipe_of: BTreeMap<End, u64>,
    next_pipe: u64,
    default_link: LinkFaults,
    links: BTreeMap<(NodeId, NodeId), LinkFaults>,
    partitions: BTreeSet<(NodeId, NodeId)>,
    tampers: BTreeMap<(NodeId, NodeId), Tamper>,
    /// Steps one `run_*` call may take before it panics.
    pub step_budget: u64,
    steps: u64,
    /// Whether nodes added from now on send keepalives at their config's interval.
    /// Off unless a test turns it on: keepalives recur for ever, and
    /// [`run_until_idle`](Self::run_until_idle) waits for a quiet world.
    pub keepalives: bool,
    /// The settings of channel ends made from now on (see
    /// [`channel_config`](Self::channel_config)).
    pub channel: ChannelConfig,
}

impl Sim {
    /// An empty simulation whose every random choice follows `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            base: Instant::now(),
            now: Duration::ZERO,
            seed,
            rng: SeededRandom::new(seed),
            nodes: Vec::new(),
            raws: Vec::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            pipes: BTreeMap::new(),
            pipe_of: BTreeMap::new(),
            next_pipe: 0,
            default_link: LinkFaults::default(),
            links: BTreeMap::new(),
            partitions: BTreeSet::new(),
            tampers: BTreeMap::new(),
            step_budget: DEFAULT_STEP_BUDGET,
            steps: 0,
            keepalives: false,
            channel: ChannelConfig::default(),
        }
    }

    // ---- building ---------------------------------------------------------------------

    /// Adds a node with the default limits.
    pub(crate) fn add_node(&mut self, name: &str, listen: Option<&str>) -> NodeId {
        self.add_node_with(name, listen, NodeConfig::default())
    }

    /// Adds a node with the given limits.
    pub(crate) fn add_node_with(
        &mut self,
        name: &str,
        listen: Option<&str>,
        config: NodeConfig,
    ) -> NodeId {
        let id = self.nodes.len();
        if let Some(listen) = listen {
            assert!(
                self.nodes
                    .iter()
                    .all(|n| n.listen.as_deref() != Some(listen)),
                "sim: two nodes listen on {listen}"
            );
        }
        let config = if self.keepalives {
            config
        } else {
            NodeConfig {
                keepalive_interval: Duration::MAX,
                ..config
            }
        };
        let core = NodeCore::new(config.clone(), Box::new(self.core_rng(id, 0)));
        self.nodes.push(SimNode {
            name: name.to_owned(),
            listen: listen.map(str::to_owned),
            core,
            config,
            epoch: 0,
            mailboxes: BTreeMap::new(),
            listeners: Vec::new(),
            events: Vec::new(),
            worker_errors: Vec::new(),
            capture: false,
            captured: Vec::new(),
            paused: BTreeSet::new(),
            decongested: Vec::new(),
            allow_unregistered: false,
        });
        id
    }

    /// The settings of channel ends made from now on: the defaults, without keepalives
    /// and idle deadlines unless [`keepalives`](Self::keepalives) is on (they recur for
    /// as long as a channel lives).
    pub(crate) fn channel_config(&self) -> ChannelConfig {
        let config = self.channel.clone();
        if self.keepalives {
            config
        } else {
            config.without_keepalives()
        }
    }

    fn core_rng(&self, node: NodeId, epoch: u64) -> SeededRandom {
        let mix = (node as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch << 48);
        SeededRandom::new(self.seed ^ mix)
    }

    /// Lets `node`'s core deliver to addresses the test did not register with
    /// [`add_worker`](Self::add_worker): each gets a [`Behaviour::Hold`] mailbox at its
    /// first delivery. Without this, such a delivery fails the test (the core delivered
    /// where nothing was registered, or to a worker the test removed).
    pub(crate) fn allow_unregistered_deliveries(&mut self, node: NodeId) {
        self.nodes[node].allow_unregistered = true;
    }

    /// Registers a mailbox at `address` on `node`, worked as `behaviour`, that anyone
    /// may reach (plain messages over connections included).
    pub(crate) fn add_worker(&mut self, node: NodeId, address: &str, behaviour: Behaviour) {
        self.add_worker_with(node, address, behaviour, Access::anyone());
    }

    /// Registers a mailbox at `address` on `node`, worked as `behaviour`, taking what
    /// `access` admits.
    pub(crate) fn add_worker_with(
        &mut self,
        node: NodeId,
        address: &str,
        behaviour: Behaviour,
        access: Access,
    ) {
        let address = Address::local(address);
        let n = &mut self.nodes[node];
        n.core
            .register(address.clone(), access.clone(), self.base + self.now)
            .unwrap_or_else(|e| panic!("sim: register {address} on {}: {e}", n.name));
        n.mailboxes.insert(address, Mailbox::new(behaviour, access));
    }

    /// Creates a secure channel listener at `address` on `node` (recreated on restart).
    pub(crate) fn add_channel_listener(
        &mut self,
        node: NodeId,
        address: &str,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
    ) {
        self.add_channel_listener_with(node, address, identity, trust, ChannelRules::new());
    }

    /// As [`add_channel_listener`](Self::add_channel_listener), with `rules`.
    pub(crate) fn add_channel_listener_with(
        &mut self,
        node: NodeId,
        address: &str,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        rules: ChannelRules,
    ) {
        let spec = ListenerSpec {
            address: Address::local(address),
            identity,
            trust,
            config: self.channel_config(),
            rules,
        };
        let now = self.instant();
        let n = &mut self.nodes[node];
        n.core
            .create_channel_listener(
                spec.address.clone(),
                spec.identity.clone(),
                spec.trust.clone(),
                spec.config.clone(),
                spec.rules.clone(),
                now,
            )
            .unwrap_or_else(|e| panic!("sim: listener {address} on {}: {e}", n.name));
        n.listeners.push(spec);
    }

    // ---- getters ----------------------------------------------------------------------

    /// Virtual time since the start.
    pub(crate) fn now(&self) -> Duration {
        self.now
    }

    /// The virtual time as the cores see it.
    pub(crate) fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// A node.
    pub(crate) fn node(&self, node: NodeId) -> &SimNode {
        &self.nodes[node]
    }

    /// A node, mutably.
    pub(crate) fn node_mut(&mut self, node: NodeId) -> &mut SimNode {
        &mut self.nodes[node]
    }

    /// A node's core.
    pub(crate) fn core(&self, node: NodeId) -> &NodeCore {
        &self.nodes[node].core
    }

    /// A mailbox; panics if it does not exist.
    pub(crate) fn mailbox(&self, node: NodeId, address: &str) -> &Mailbox {
        self.nodes[node]
            .mailboxes
            .get(&Address::local(address))
            .unwrap_or_else(|| panic!("sim: no mailbox {address} on {}", self.nodes[node].name))
    }

    /// The events a node's core reported.
    pub(crate) fn events(&self, node: NodeId) -> impl Iterator<Item = &NodeEvent> {
        self.nodes[node].events.iter().map(|(_, e)| e)
    }

    /// The first event about channel `id` on `node` that ends its handshake or its life.
    pub(crate) fn channel_outcome(&self, node: NodeId, id: ChannelId) -> Option<&NodeEvent> {
        self.events(node).find(|e| match e {
            NodeEvent::ChannelEstablished { channel, .. }
            | NodeEvent::ChannelFailed { channel, .. }
            | NodeEvent::ChannelClosed { channel, .. } => *channel == id,
            _ => false,
        })
    }

    /// A raw peer.
    pub(crate) fn raw(&self, raw: RawId) -> &RawPeer {
        &self.raws[raw]
    }

    /// Connections (pipes) open between two nodes, in either direction.
    pub(crate) fn pipes_between(&self, a: NodeId, b: NodeId) -> usize {
        self.pipes
            .values()
            .filter(|p| {
                let nodes: Vec<NodeId> = p
                    .ends
                    .iter()
                    .filter_map(|e| match e {
                        End::Node { node, .. } => Some(*node),
                        End::Raw(_) => None,
                    })
                    .collect();
                nodes == [a, b] || nodes == [b, a]
            })
            .count()
    }

    /// The ids of `node`'s connections that the network carries (open pipes).
    pub(crate) fn connections_of(&self, node: NodeId) -> Vec<ConnectionId> {
        let epoch = self.nodes[node].epoch;
        self.pipe_of
            .keys()
            .filter_map(|end| match *end {
                End::Node {
                    node: n,
                    epoch: e,
                    conn,
                } if n == node && e == epoch => Some(conn),
                _ => None,
            })
            .collect()
    }

    /// Actions scheduled and not yet run.
    pub(crate) fn pending(&self) -> usize {
        self.queue.len()
    }

    // ---- faults -----------------------------------------------------------------------

    /// Sets the faults of both directions between `a` and `b`.
    pub(crate) fn set_link(&mut self, a: NodeId, b: NodeId, faults: LinkFaults) {
        self.links.insert((a, b), faults.clone());
        self.links.insert((b, a), faults);
    }

    /// Sets the faults of the direction from `from` to `to`.
    pub(crate) fn set_link_one_way(&mut self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.links.insert((from, to), faults);
    }

    /// Sets the faults of every link, present and future.
    pub(crate) fn set_all_links(&mut self, faults: LinkFaults) {
        self.links.clear();
        self.default_link = faults;
    }

    /// Passes every frame sent from `from` to `to` through `tamper` (an active
    /// attacker on the link), or stops doing so with `None`.
    pub(crate) fn set_tamper(&mut self, from: NodeId, to: NodeId, tamper: Option<Tamper>) {
        match tamper {
            Some(t) => {
                self.tampers.insert((from, to), t);
            }
            None => {
                self.tampers.remove(&(from, to));
            }
        }
    }

    fn link(&self, from: NodeId, to: NodeId) -> &LinkFaults {
        self.links.get(&(from, to)).unwrap_or(&self.default_link)
    }

    fn partitioned(&self, a: NodeId, b: NodeId) -> bool {
        self.partitions.contains(&(a.min(b), a.max(b)))
    }

    /// Cuts `a` from `b`: their connections close at both ends now, and new connects
    /// between them fail after [`PARTITION_CONNECT_DELAY`].
    pub(crate) fn partition(&mut self, a: NodeId, b: NodeId) {
        self.partitions.insert((a.min(b), a.max(b)));
        let cut: Vec<u64> = self
            .pipes
            .iter()
            .filter(|(_, p)| {
                let touches = |n: NodeId| {
                    p.ends
                        .iter()
                        .any(|e| matches!(e, End::Node { node, .. } if *node == n))
                };
                touches(a) && touches(b)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in cut {
            if let Some(pipe) = self.remove_pipe(id) {
                for end in pipe.ends {
                    self.schedule(
                        self.now,
                        Action::Closed {
                            to: end,
                            reason: "partitioned".into(),
                        },
                    );
                }
            }
        }
    }

    /// Ends the partition between `a` and `b`.
    pub(crate) fn heal(&mut self, a: NodeId, b: NodeId) {
        self.partitions.remove(&(a.min(b), a.max(b)));
    }

    /// Restarts `node`: a fresh core (new randomness, no connections, no channels)
    /// with the same name, listen address, mailboxes and channel listeners. Its peers
    /// see their connections closed after the link latency; everything in flight to or
    /// from it is lost.
    pub(crate) fn restart(&mut self, node: NodeId) {
        let owned: Vec<u64> = self
            .pipes
            .iter()
            .filter(|(_, p)| {
                p.ends
                    .iter()
                    .any(|e| matches!(e, End::Node { node: n, .. } if *n == node))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in owned {
            if let Some(pipe) = self.remove_pipe(id) {
                for end in pipe.ends {
                    let other_node = match end {
                        End::Node { node: n, .. } if n == node => continue,
                        End::Node { node: n, .. } => Some(n),
                        End::Raw(_) => None,
                    };
                    let at =
                        self.now + other_node.map_or(RAW_LATENCY, |n| self.link(node, n).latency);
                    self.schedule(
                        at,
                        Action::Closed {
                            to: end,
                            reason: "peer restarted".into(),
                        },
                    );
                }
            }
        }
        let epoch = self.nodes[node].epoch + 1;
        let rng = self.core_rng(node, epoch);
        let now = self.instant();
        let n = &mut self.nodes[node];
        n.epoch = epoch;
        n.paused.clear();
        n.core = NodeCore::new(n.config.clone(), Box::new(rng));
        for (address, mailbox) in &mut n.mailboxes {
            mailbox.held.clear();
            n.core
                .register(address.clone(), mailbox.access.clone(), now)
                .unwrap_or_else(|e| panic!("sim: re-register {address}: {e}"));
        }
        for spec in &n.listeners {
            n.core
                .create_channel_listener(
                    spec.address.clone(),
                    spec.identity.clone(),
                    spec.trust.clone(),
                    spec.config.clone(),
                    spec.rules.clone(),
                    now,
                )
                .unwrap_or_else(|e| panic!("sim: re-create listener {}: {e}", spec.address));
        }
    }

    // ---- inputs from the test ---------------------------------------------------------

    /// Sends `payload` from the local address `from` on `node` along `onward`, with
    /// `route![from]` as the return route. The outputs are drained.
    pub(crate) fn send(
        &mut self,
        node: NodeId,
        from: &str,
        onward: Route,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), NodeError> {
        let from = Address::local(from);
        let message = TransportMessage::new(onward, Route::from(from.clone()), payload);
        self.send_message(node, &from, message)
    }

    /// Sends a whole message from `from` on `node`. The outputs are drained.
    pub(crate) fn send_message(
        &mut self,
        node: NodeId,
        from: &Address,
        message: TransportMessage,
    ) -> Result<(), NodeError> {
        let now = self.instant();
        let result = self.nodes[node].core.handle_send(from, message, now);
        self.drain(node);
        result
    }

    /// Starts a secure channel from `node` to the listener at the end of `route`.
    pub(crate) fn create_channel(
        &mut self,
        node: NodeId,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
    ) -> Result<(ChannelId, Address), NodeError> {
        self.create_channel_with(node, route, identity, trust, ChannelRules::new())
    }

    /// As [`create_channel`](Self::create_channel), with `rules`.
    pub(crate) fn create_channel_with(
        &mut self,
        node: NodeId,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        rules: ChannelRules,
    ) -> Result<(ChannelId, Address), NodeError> {
        self.start_channel(node, route, identity, trust, rules, false)
    }

    fn start_channel(
        &mut self,
        node: NodeId,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
        rules: ChannelRules,
        persistent: bool,
    ) -> Result<(ChannelId, Address), NodeError> {
        let now = self.instant();
        let config = self.channel_config();
        let core = &mut self.nodes[node].core;
        let result = if persistent {
            core.create_persistent_channel(route, identity, trust, &config, rules, now)
        } else {
            core.create_channel(route, identity, trust, &config, rules, now)
        };
        self.drain(node);
        result
    }

    /// Starts a persistent secure channel from `node` to the listener at the end of
    /// `route` (see `NodeCore::create_persistent_channel`).
    pub(crate) fn create_persistent_channel(
        &mut self,
        node: NodeId,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
    ) -> Result<(ChannelId, Address), NodeError> {
        self.start_channel(node, route, identity, trust, ChannelRules::new(), true)
    }

    /// Starts a secure channel and runs until it is established (its encryptor address)
    /// or fails (the error), within a minute of virtual time.
    pub(crate) fn establish(
        &mut self,
        node: NodeId,
        route: Route,
        identity: Arc<Identity>,
        trust: Arc<dyn TrustPolicy>,
    ) -> Result<Address, NodeError> {
        let (id, _) = self.create_channel(node, route, identity, trust)?;
        let done = self.run_until(Duration::from_secs(60), |sim| {
            sim.channel_outcome(node, id).is_some()
        });
        assert!(
            done,
            "sim: channel {id:?} on {} neither established nor failed",
            self.nodes[node].name
        );
        match self.channel_outcome(node, id) {
            Some(NodeEvent::ChannelEstablished { address, .. }) => Ok(address.clone()),
            Some(NodeEvent::ChannelFailed { error, .. }) => Err(error.clone()),
            other => panic!("sim: unexpected channel outcome {other:?}"),
        }
    }

    /// Closes a channel end by its encryptor address. The outputs are drained.
    pub(crate) fn close_channel(&mut self, node: NodeId, address: &Address) {
        let now = self.instant();
        self.nodes[node].core.close_channel(address, now);
        self.drain(node);
    }

    /// Stops the worker at `address` on `node`: its mailbox is unregistered.
    pub(crate) fn remove_worker(&mut self, node: NodeId, address: &str) {
        let now = self.instant();
        let address = Address::local(address);
        self.nodes[node].mailboxes.remove(&address);
        self.nodes[node].core.unregister(&address, now);
        self.drain(node);
    }

    /// Takes the messages held in a [`Behaviour::Hold`] mailbox, reporting each one
    /// consumed.
    pub(crate) fn take(&mut self, node: NodeId, address: &str) -> Vec<TransportMessage> {
        let now = self.instant();
        let address = Address::local(address);
        let n = &mut self.nodes[node];
        let Some(mailbox) = n.mailboxes.get_mut(&address) else {
            return Vec::new();
        };
        let taken: Vec<TransportMessage> = mailbox.held.drain(..).collect();
        for _ in &taken {
            n.core.handle_consumed(&address, now);
        }
        self.drain(node);
        taken
    }

    /// Opens a raw connection to the node listening on `listen`, accepted now.
    pub(crate) fn raw_connect(&mut self, listen: &str) -> RawId {
        let listener = self
            .listener_of(listen)
            .unwrap_or_else(|| panic!("sim: nobody listens on {listen}"));
        let raw = self.raws.len();
        self.raws.push(RawPeer::default());
        let now = self.instant();
        let n = &mut self.nodes[listener];
        let conn = n.core.handle_incoming_connection(format!("raw:{raw}"), now);
        let end = End::Node {
            node: listener,
            epoch: n.epoch,
            conn,
        };
        let pipe = self.add_pipe([End::Raw(raw), end]);
        self.raws[raw].pipe = Some(pipe);
        self.drain(listener);
        raw
    }

    /// Sends bytes from a raw peer; they arrive after [`RAW_LATENCY`], in order. Bytes
    /// sent after the connection closed go nowhere.
    pub(crate) fn raw_send(&mut self, raw: RawId, bytes: &[u8]) {
        let Some(pipe_id) = self.raws[raw].pipe else {
            return;
        };
        let Some(pipe) = self.pipes.get(&pipe_id) else {
            return;
        };
        let to = pipe.ends[1];
        let at = (self.now + RAW_LATENCY).max(self.raws[raw].last_arrival);
        self.raws[raw].last_arrival = at;
        self.schedule(
            at,
            Action::Arrive {
                pipe: pipe_id,
                to,
                bytes: bytes.to_vec(),
            },
        );
    }

    /// Closes a raw peer's connection; the node sees it closed after [`RAW_LATENCY`].
    pub(crate) fn raw_close(&mut self, raw: RawId) {
        let Some(pipe_id) = self.raws[raw].pipe.take() else {
            return;
        };
        self.raws[raw].closed = true;
        if let Some(pipe) = self.remove_pipe(pipe_id) {
            self.schedule(
                self.now + RAW_LATENCY,
                Action::Closed {
                    to: pipe.ends[1],
                    reason: "raw peer closed".into(),
                },
            );
        }
    }

    // ---- running ----------------------------------------------------------------------

    fn next_timer(&self) -> Option<Duration> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.poll_timeout())
            .map(|t| t.saturating_duration_since(self.base))
            .min()
    }

    fn next_time(&self) -> Option<Duration> {
        let event = self.queue.keys().next().map(|k| k.0);
        match (event, self.next_timer()) {
            (Some(e), Some(t)) => Some(e.min(t)),
            (e, t) => e.or(t),
        }
    }

    /// Runs the earliest scheduled action or due timer. Returns false if there is
    /// nothing left to do.
    pub(crate) fn step(&mut self) -> bool {
        let event = self.queue.keys().next().copied();
        let timer = self.next_timer();
        match (event, timer) {
            (None, None) => false,
            (Some(key), t) if t.is_none_or(|t| key.0 <= t) => {
                let action = self.queue.remove(&key).expect("the key was just read");
                self.now = self.now.max(key.0);
                self.apply(action);
                true
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                let now = self.instant();
                for node in 0..self.nodes.len() {
                    if self.nodes[node]
                        .core
                        .poll_timeout()
                        .is_some_and(|d| d <= now)
                    {
                        self.nodes[node].core.handle_timeout(now);
                        self.drain(node);
                    }
                }
                true
            }
            (Some(_), None) => unreachable!("covered by the guard"),
        }
    }

    fn count_step(&mut self) {
        self.steps += 1;
        assert!(
            self.steps <= self.step_budget,
            "sim: step budget of {} exceeded at {:?} with {} actions pending: a livelock?",
            self.step_budget,
            self.now,
            self.queue.len()
        );
    }

    /// Runs until nothing is scheduled and no core has a timer. Returns the time.
    pub(crate) fn run_until_idle(&mut self) -> Duration {
        self.steps = 0;
        while self.next_time().is_some() {
            self.count_step();
            self.step();
        }
        self.now
    }

    /// Runs everything due within `duration`, then sets the clock to its end.
    pub(crate) fn run_for(&mut self, duration: Duration) {
        self.run_for_checked(duration, |_| {});
    }

    /// As [`run_for`](Self::run_for), calling `check` after every step.
    pub(crate) fn run_for_checked(&mut self, duration: Duration, mut check: impl FnMut(&Sim)) {
        self.steps = 0;
        let end = self.now + duration;
        while self.next_time().is_some_and(|t| t <= end) {
            self.count_step();
            self.step();
            check(self);
        }
        self.now = self.now.max(end);
    }

    /// Runs until `done` holds (true) or `limit` of virtual time has passed (false).
    pub(crate) fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> bool {
        self.steps = 0;
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.next_time().is_none_or(|t| t > end) {
                self.now = self.now.max(end);
                return done(self);
            }
            self.count_step();
            self.step();
        }
    }

    // ---- the network ------------------------------------------------------------------

    fn schedule(&mut self, at: Duration, action: Action) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.insert((at, seq), action);
    }

    fn listener_of(&self, listen: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.listen.as_deref() == Some(listen))
    }

    fn add_pipe(&mut self, ends: [End; 2]) -> u64 {
        let id = self.next_pipe;
        self.next_pipe += 1;
        for end in ends {
            self.pipe_of.insert(end, id);
        }
        self.pipes.insert(
            id,
            Pipe {
                ends,
                last_arrival: [Duration::ZERO; 2],
                started: [false; 2],
            },
        );
        id
    }

    fn remove_pipe(&mut self, id: u64) -> Option<Pipe> {
        let pipe = self.pipes.remove(&id)?;
        for end in pipe.ends {
            if self.pipe_of.get(&end) == Some(&id) {
                self.pipe_of.remove(&end);
            }
            if let End::Raw(raw) = end {
                self.raws[raw].pipe = None;
                self.raws[raw].closed = true;
            }
        }
        Some(pipe)
    }

    fn end_is_current(&self, end: End) -> bool {
        match end {
            End::Node { node, epoch, .. } => self.nodes[node].epoch == epoch,
            End::Raw(_) => true,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut b = [0u8; 8];
        self.rng.fill(&mut b).expect("seeded randomness");
        (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut b = [0u8; 8];
        self.rng.fill(&mut b).expect("seeded randomness");
        u64::from_le_bytes(b) % n.max(1)
    }

    fn apply(&mut self, action: Action) {
        let now = self.instant();
        match action {
            Action::Accept {
                dialer,
                epoch,
                conn,
                listener,
            } => {
                let d = &self.nodes[dialer];
                if d.epoch != epoch || d.core.connection_peer(conn).is_none() {
                    return; // the dialer restarted or gave up
                }
                if self.partitioned(dialer, listener) {
                    let at = self.now + PARTITION_CONNECT_DELAY;
                    self.schedule(
                        at,
                        Action::ConnectFailed {
                            node: dialer,
                            epoch,
                            conn,
                            reason: "connect timed out (partitioned)".into(),
                        },
                    );
                    return;
                }
                let peer = format!("{}:{}", self.nodes[dialer].name, 40_000 + self.next_pipe);
                let l = &mut self.nodes[listener];
                let lconn = l.core.handle_incoming_connection(peer, now);
                let lend = End::Node {
                    node: listener,
                    epoch: l.epoch,
                    conn: lconn,
                };
                let dend = End::Node {
                    node: dialer,
                    epoch,
                    conn,
                };
                self.add_pipe([dend, lend]);
                let at = self.now + self.link(listener, dialer).latency;
                self.schedule(
                    at,
                    Action::Connected {
                        node: dialer,
                        epoch,
                        conn,
                    },
                );
                self.drain(listener);
            }
            Action::Connected { node, epoch, conn } => {
                if self.nodes[node].epoch != epoch {
                    return;
                }
                let end = End::Node { node, epoch, conn };
                if !self.pipe_of.contains_key(&end) {
                    return; // closed before it was reported open; a Closed follows
                }
                self.nodes[node].core.handle_connected(conn, now);
                self.drain(node);
            }
            Action::ConnectFailed {
                node,
                epoch,
                conn,
                reason,
            } => {
                if self.nodes[node].epoch != epoch {
                    return;
                }
                self.nodes[node]
                    .core
                    .handle_connect_failed(conn, &reason, now);
                self.drain(node);
            }
            Action::Arrive { pipe, to, bytes } => {
                if !self.pipes.contains_key(&pipe) || !self.end_is_current(to) {
                    return;
                }
                match to {
                    End::Node { node, conn, .. } => {
                        let n = &mut self.nodes[node];
                        if n.capture {
                            n.captured.push(bytes.clone());
                        }
                        n.core.handle_received(conn, &bytes, now);
                        self.drain(node);
                    }
                    End::Raw(raw) => self.raws[raw].received.extend_from_slice(&bytes),
                }
            }
            Action::Written { pipe, at, n } => {
                if !self.pipes.contains_key(&pipe) || !self.end_is_current(at) {
                    return;
                }
                if let End::Node { node, conn, .. } = at {
                    self.nodes[node].core.handle_written(conn, n, now);
                    self.drain(node);
                }
            }
            Action::Closed { to, reason } => {
                if !self.end_is_current(to) {
                    return;
                }
                match to {
                    End::Node { node, conn, .. } => {
                        self.nodes[node]
                            .core
                            .handle_connection_closed(conn, Some(&reason), now);
                        self.drain(node);
                    }
                    End::Raw(raw) => {
                        self.raws[raw].closed = true;
                        self.raws[raw].pipe = None;
                    }
                }
            }
        }
    }

    /// Carries out every output of `node`'s core.
    fn drain(&mut self, node: NodeId) {
        let mut taken = 0u64;
        while let Some(output) = self.nodes[node].core.poll_output() {
            taken += 1;
            assert!(
                taken <= OUTPUT_BUDGET,
                "sim: {} produced more than {OUTPUT_BUDGET} outputs in one drain: a routing loop?",
                self.nodes[node].name
            );
            match output {
                Output::Deliver {
                    address,
                    message,
                    origin,
                } => self.deliver(node, address, message, origin),
                Output::Connect { connection, peer } => {
                    self.connect(node, connection, peer.value_str().unwrap_or_default())
                }
                Output::Transmit { connection, bytes } => {
                    let end = End::Node {
                        node,
                        epoch: self.nodes[node].epoch,
                        conn: connection,
                    };
                    self.transmit(end, bytes);
                }
                Output::Close { connection } => {
                    let end = End::Node {
                        node,
                        epoch: self.nodes[node].epoch,
                        conn: connection,
                    };
                    if let Some(id) = self.pipe_of.get(&end).copied() {
                        if let Some(pipe) = self.remove_pipe(id) {
                            let other = pipe.ends[1 - pipe.side(end)];
                            let at = self.now + self.latency(end, other);
                            self.schedule(
                                at,
                                Action::Closed {
                                    to: other,
                                    reason: "closed by peer".into(),
                                },
                            );
                        }
                    }
                }
                Output::PauseReading { connection } => {
                    let n = &mut self.nodes[node];
                    assert!(
                        n.paused.insert(connection),
                        "sim: {} paused {connection} twice",
                        n.name
                    );
                }
                Output::ResumeReading { connection } => {
                    let n = &mut self.nodes[node];
                    assert!(
                        n.paused.remove(&connection),
                        "sim: {} resumed {connection}, which was not paused",
                        n.name
                    );
                }
                Output::Decongested(hop) => {
                    let now = self.now;
                    self.nodes[node].decongested.push((now, hop));
                }
                Output::Event(event) => {
                    let now = self.now;
                    let n = &mut self.nodes[node];
                    if let NodeEvent::ConnectionClosed { connection, .. } = &event {
                        n.paused.remove(connection);
                    }
                    n.events.push((now, event));
                }
            }
        }
        // What the core said about reading matches what it does.
        let n = &self.nodes[node];
        for connection in &n.paused {
            assert!(
                n.core.is_reading_paused(*connection),
                "sim: {} told to pause {connection}, which is not stalled",
                n.name
            );
        }
    }

    fn deliver(
        &mut self,
        node: NodeId,
        address: Address,
        message: TransportMessage,
        origin: Origin,
    ) {
        let now = self.instant();
        let at = self.now;
        let n = &mut self.nodes[node];
        if n.allow_unregistered {
            n.mailboxes
                .entry(address.clone())
                .or_insert_with(|| Mailbox::new(Behaviour::Hold, Access::anyone()));
        }
        let Some(mailbox) = n.mailboxes.get_mut(&address) else {
            panic!(
                "sim: {} delivered to {address}, which the test did not register",
                n.name
            )
        };
        assert!(
            mailbox.access.admits(&origin),
            "sim: {} delivered to {address} a message from {origin}, which its rule ({}) refuses",
            n.name,
            mailbox.access
        );
        mailbox.received.push(message.clone());
        mailbox.origins.push(origin);
        let reply = match mailbox.behaviour {
            Behaviour::Hold => {
                mailbox.held.push_back(message);
                None
            }
            Behaviour::Sink => None,
            Behaviour::Hop => {
                let mut forward = message;
                let _ = forward.onward_route.step();
                forward.return_route.prepend(address.clone());
                Some(forward)
            }
            Behaviour::Echo => Some(TransportMessage::new(
                message.return_route,
                Route::from(address.clone()),
                message.payload,
            )),
        };
        if mailbox.behaviour != Behaviour::Hold {
            n.core.handle_consumed(&address, now);
        }
        if let Some(reply) = reply {
            if let Err(error) = n.core.handle_send(&address, reply, now) {
                n.worker_errors.push((at, address, error));
            }
        }
    }

    fn connect(&mut self, node: NodeId, conn: ConnectionId, peer: &str) {
        let epoch = self.nodes[node].epoch;
        match self.listener_of(peer) {
            Some(listener) => {
                if self.partitioned(node, listener) {
                    self.schedule(
                        self.now + PARTITION_CONNECT_DELAY,
                        Action::ConnectFailed {
                            node,
                            epoch,
                            conn,
                            reason: "connect timed out (partitioned)".into(),
                        },
                    );
                } else {
                    let at = self.now + self.link(node, listener).latency;
                    self.schedule(
                        at,
                        Action::Accept {
                            dialer: node,
                            epoch,
                            conn,
                            listener,
                        },
                    );
                }
            }
            None => self.schedule(
                self.now + REFUSED_DELAY,
                Action::ConnectFailed {
                    node,
                    epoch,
                    conn,
                    reason: format!("connection refused: nobody listens on {peer}"),
                },
            ),
        }
    }

    fn latency(&self, from: End, to: End) -> Duration {
        match (from, to) {
            (End::Node { node: a, .. }, End::Node { node: b, .. }) => self.link(a, b).latency,
            _ => RAW_LATENCY,
        }
    }

    fn transmit(&mut self, from: End, mut bytes: Vec<u8>) {
        let Some(pipe_id) = self.pipe_of.get(&from).copied() else {
            return; // the connection is gone; the core learns it from a Closed
        };
        if let End::Node { node, .. } = from {
            let n = &mut self.nodes[node];
            if n.capture {
                n.captured.push(bytes.clone());
            }
        }
        let (side, other, first) = {
            let pipe = self.pipes.get_mut(&pipe_id).expect("pipe_of is consistent");
            let side = pipe.side(from);
            let first = !pipe.started[side];
            pipe.started[side] = true;
            (side, pipe.ends[1 - side], first)
        };
        let faults = match (from, other) {
            (End::Node { node: a, .. }, End::Node { node: b, .. }) => self.link(a, b).clone(),
            _ => LinkFaults {
                latency: RAW_LATENCY,
                ..LinkFaults::default()
            },
        };
        let n = bytes.len();
        let exempt = first || bytes == PREAMBLE;
        let mut at = self.now + faults.latency;
        let reordered = !exempt && self.chance(faults.reorder);
        {
            let pipe = self.pipes.get_mut(&pipe_id).expect("pipe_of is consistent");
            if !reordered {
                at = at.max(pipe.last_arrival[1 - side]);
                pipe.last_arrival[1 - side] = at;
            }
        }
        if reordered {
            let spread = faults.reorder_spread.as_micros().max(1) as u64;
            at += Duration::from_micros(self.below(spread));
        }
        self.schedule(
            at,
            Action::Written {
                pipe: pipe_id,
                at: from,
                n,
            },
        );
        if !exempt && self.chance(faults.loss) {
            return;
        }
        if let (false, End::Node { node: a, .. }, End::Node { node: b, .. }) = (exempt, from, other)
        {
            if let Some(tamper) = self.tampers.get_mut(&(a, b)) {
                tamper(&mut bytes);
            }
        }
        if !exempt && bytes.len() > FRAME_HEADER_LEN && self.chance(faults.corrupt) {
            let body = (bytes.len() - FRAME_HEADER_LEN) as u64;
            let index = FRAME_HEADER_LEN + self.below(body) as usize;
            let bit = self.below(8) as u8;
            bytes[index] ^= 1 << bit;
        }
        if !exempt && self.chance(faults.duplicate) {
            let spread = faults.reorder_spread.as_micros().max(1) as u64;
            let later = at + Duration::from_micros(self.below(spread));
            self.schedule(
                later,
                Action::Arrive {
                    pipe: pipe_id,
                    to: other,
                    bytes: bytes.clone(),
                },
            );
        }
        self.schedule(
            at,
            Action::Arrive {
                pipe: pipe_id,
                to: other,
                bytes,
            },
        );
    }
}

// ---- helpers for the tests that use the simulator --------------------------------------

/// The identity made from a seed of 32 `seed` bytes.
pub(crate) fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]).unwrap())
}

/// A trust policy that accepts everyone.
pub(crate) fn everyone() -> Arc<dyn TrustPolicy> {
    Arc::new(onward_protocol::trust::TrustEveryone)
}

/// `message` as one frame: its length prefix, then its encoding.
pub(crate) fn frame(message: &TransportMessage) -> Vec<u8> {
    let mut out = Vec::new();
    onward_protocol::framing::encode_frame(
        &message.to_bytes().unwrap(),
        onward_protocol::framing::DEFAULT_MAX_FRAME_LEN,
        &mut out,
    )
    .unwrap();
    out
}

/// The messages of a stream a node wrote: its preamble, then frames.
pub(crate) fn messages_in(stream: &[u8]) -> Vec<TransportMessage> {
    let mut rest = stream
        .strip_prefix(&PREAMBLE[..])
        .expect("a preamble first");
    let mut messages = Vec::new();
    while let Some((len, body)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() {
        let len = u32::from_be_bytes(*len) as usize;
        let (frame, tail) = body.split_at(len);
        messages.push(TransportMessage::decode(frame).expect("a message"));
        rest = tail;
    }
    assert!(rest.is_empty(), "a partial frame at the end");
    messages
}
