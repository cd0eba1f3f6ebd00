//! The node core fed arbitrary sequences of inputs, with its invariants checked after
//! every step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use onward_protocol::channel::ChannelConfig;
use onward_protocol::framing::PREAMBLE;
use onward_protocol::identity::Identity;
use onward_protocol::message::TransportMessage;
use onward_protocol::node::{
    Access, ChannelRules, ConnectionId, NodeConfig, NodeCore, NodeEvent, NodeStats, Output,
};
use onward_protocol::random::SeededRandom;
use onward_protocol::routing::{Address, Route};
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp};

use crate::input::Input;

/// Small limits, so that the input reaches them.
fn config() -> NodeConfig {
    NodeConfig {
        mailbox_capacity: 8,
        max_connection_backlog: 4096,
        max_queued_while_connecting: 4,
        max_outgoing_connections: 4,
        max_incoming_connections: 4,
        max_incoming_per_source: 3,
        first_frame_timeout: std::time::Duration::from_millis(200),
        frame_timeout: std::time::Duration::from_millis(300),
        unproven_idle_timeout: std::time::Duration::from_millis(500),
        keepalive_interval: std::time::Duration::from_millis(150),
        max_frame_len: 2048,
        max_channels: 6,
        max_half_open_per_listener: 2,
        max_local_hops: 16,
        max_stall: std::time::Duration::from_millis(50),
        memory_budget: 16 * 1024,
        max_mailbox_bytes: 4096,
        cookie_threshold: Some(4),
        cookie_hellos_per_source: 2,
        max_reports_per_second: 3,
        max_relay_names: 2,
    }
}

/// One side of the simulated world: a core and what it has asked for.
struct Side {
    core: NodeCore,
    /// Transmits not yet carried, per connection.
    pending: Vec<(ConnectionId, Vec<u8>)>,
    /// Deliveries not yet consumed.
    unread: Vec<Address>,
    /// Each mailbox's access rule: every delivery must be one it admits.
    rules: std::collections::BTreeMap<Address, Access>,
    /// Encryptor addresses of channels this side created or accepted.
    channels: Vec<Address>,
    connects: Vec<ConnectionId>,
    /// Connections the core told us to stop reading, and not yet to resume.
    paused: std::collections::BTreeSet<ConnectionId>,
    stats: NodeStats,
}

impl Side {
    fn new(seed: u64) -> Self {
        Self {
            core: NodeCore::new(config(), Box::new(SeededRandom::new(seed))),
            pending: Vec::new(),
            paused: std::collections::BTreeSet::new(),
            unread: Vec::new(),
            rules: std::collections::BTreeMap::new(),
            channels: Vec::new(),
            connects: Vec::new(),
            stats: NodeStats::default(),
        }
    }

    /// Drains the outputs (a bounded number: the core must not produce without end)
    /// and checks the invariants.
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(output) = self.core.poll_output() {
            n += 1;
            assert!(n < 100_000, "the core produced outputs without end");
            match output {
                Output::Deliver {
                    address, origin, ..
                } => {
                    let rule = self.rules.get(&address).expect("a registered mailbox");
                    assert!(
                        rule.admits(&origin),
                        "{address} got a message from {origin}, which {rule} refuses"
                    );
                    self.unread.push(address);
                }
                Output::Transmit { connection, bytes } => self.pending.push((connection, bytes)),
                Output::Connect { connection, .. } => self.connects.push(connection),
                Output::Close { connection } => {
                    self.pending.retain(|(c, _)| *c != connection);
                    self.paused.remove(&connection);
                }
                Output::PauseReading { connection } => {
                    assert!(self.paused.insert(connection), "paused twice");
                }
                Output::ResumeReading { connection } => {
                    assert!(self.paused.remove(&connection), "resumed unpaused");
                }
                Output::Decongested(_) => {}
                Output::Event(NodeEvent::ChannelEstablished { address, .. }) => {
                    self.channels.push(address);
                }
                Output::Event(NodeEvent::ConnectionClosed { connection, .. }) => {
                    self.paused.remove(&connection);
                }
                Output::Event(_) => {}
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let limits = config();
        for connection in &self.paused {
            assert!(
                self.core.is_reading_paused(*connection),
                "{connection} told paused but not stalled"
            );
        }
        assert!(
            self.core.channel_count() <= limits.max_channels,
            "too many channels"
        );
        assert!(
            // B's inbox is a connection of its own, outside both limits.
            self.core.connection_count()
                <= limits.max_outgoing_connections + limits.max_incoming_connections + 1,
            "too many connections"
        );
        for address in &self.unread {
            let unread = self.core.mailbox_unread(address).unwrap_or(0);
            assert!(
                unread <= limits.mailbox_capacity,
                "mailbox {address} over its capacity"
            );
        }
        let stats = self.core.stats();
        assert!(
            stats.records_rejected >= self.stats.records_rejected
                && stats.hellos_rejected >= self.stats.hellos_rejected
                && stats.delivery_failures >= self.stats.delivery_failures
                && stats.connections_refused >= self.stats.connections_refused
                && stats.messages_refused >= self.stats.messages_refused,
            "counters went backwards"
        );
        self.stats = stats;
    }
}

/// Two node cores, A and B, joined by connections the input opens, fed sends, channel
/// commands, transmits carried (or dropped, or altered), garbage bytes, connection
/// failures, consumed deliveries and time. After every step: no limit is exceeded, no
/// counter goes backwards, outputs are finite, nothing panics.
pub fn node(data: &[u8]) {
    let mut input = Input::new(data);
    let start = Instant::now();
    let mut now = start;
    let mut a = Side::new(1);
    let mut b = Side::new(2);
    let identity = Arc::new(Identity::from_seed(&[3; 32]).expect("a fixed seed"));
    b.core
        .create_channel_listener(
            Address::local("secure"),
            identity.clone(),
            Arc::new(TrustEveryone),
            ChannelConfig::default(),
            ChannelRules::new(),
            start,
        )
        .expect("a free address");
    // Mailboxes with every kind of rule: B's "guarded" takes secure channels only,
    // its "local" only its own senders.
    for (on_b, name, access) in [
        (false, "app", Access::secure_channels().with_transport()),
        (true, "echo", Access::anyone()),
        (true, "guarded", Access::secure_channels()),
        (true, "local", Access::local_only()),
    ] {
        let side = if on_b { &mut b } else { &mut a };
        side.core
            .register(Address::local(name), access.clone(), start)
            .expect("a free address");
        side.rules.insert(Address::local(name), access);
    }
    // B reads an inbox of a message transport (type 9), and runs a relay service.
    let broker = onward_protocol::TransportType(9);
    b.core
        .add_transport(broker, onward_protocol::node::TransportKind::Message)
        .expect("a free transport type");
    let inbox = b
        .core
        .open_inbox(broker, "b".into(), start)
        .expect("a message transport");
    b.core
        .create_relay(Address::local("relay"), Access::secure_channels(), start)
        .expect("a free address");
    // Connection pairs: (A's id, B's id).
    let mut links: Vec<(ConnectionId, ConnectionId)> = Vec::new();

    for _ in 0..256 {
        if input.is_empty() {
            break;
        }
        match input.byte() % 12 {
            0 => {
                let route = pick_route(&mut input, &a, &b);
                let len = usize::from(input.byte());
                let payload = input.bytes(len).to_vec();
                let message = TransportMessage::new(route, route!["app"], payload);
                let _ = a.core.handle_send(&Address::local("app"), message, now);
            }
            1 => {
                // A connection A asked for opens, and B accepts it.
                if let Some(id) = a.connects.pop() {
                    if input.byte() % 4 == 0 {
                        a.core.handle_connect_failed(id, "refused", now);
                    } else {
                        let theirs = b.core.handle_incoming_connection("a:1".into(), now);
                        a.core.handle_connected(id, now);
                        links.push((id, theirs));
                    }
                }
            }
            2 | 3 => {
                // Carry, drop or alter some of A's transmits.
                let k = usize::from(input.byte() % 8) + 1;
                carry(&mut a, &mut b, &links, k, &mut input, now, true);
            }
            4 | 5 => {
                let k = usize::from(input.byte() % 8) + 1;
                carry(&mut b, &mut a, &links, k, &mut input, now, false);
            }
            6 => {
                // Garbage on a connection into B, or a new connection with garbage.
                let len = usize::from(input.byte());
                let bytes = input.bytes(len).to_vec();
                let how = input.byte() % 3;
                if how == 2 {
                    // A unit in B's inbox, from a sender of the input's choosing,
                    // framed or not.
                    let from = Address::new(
                        onward_protocol::TransportType(input.byte() % 12),
                        input.bytes(4).to_vec(),
                    )
                    .expect("a short value");
                    let unit = if input.byte() % 2 == 0 {
                        let mut unit = u32::try_from(bytes.len())
                            .unwrap_or(0)
                            .to_be_bytes()
                            .to_vec();
                        unit.extend_from_slice(&bytes);
                        unit
                    } else {
                        bytes
                    };
                    b.core.handle_unit(inbox, from, unit, now);
                } else if how == 0 {
                    if let Some((_, theirs)) = links.first() {
                        b.core.handle_received(*theirs, &bytes, now);
                    }
                } else {
                    let id = b.core.handle_incoming_connection("evil:1".into(), now);
                    let mut stream = if input.byte() % 2 == 0 {
                        PREAMBLE.to_vec()
                    } else {
                        Vec::new()
                    };
                    stream.extend_from_slice(&bytes);
                    b.core.handle_received(id, &stream, now);
                }
            }
            7 => {
                // A channel, or a persistent one (started again when it fails).
                let route = route![tcp("b:4000"), "secure"];
                let config = ChannelConfig::default();
                let trust = Arc::new(TrustEveryone);
                let _ = if input.byte() % 2 == 0 {
                    a.core.create_channel(
                        route,
                        identity.clone(),
                        trust,
                        &config,
                        ChannelRules::new(),
                        now,
                    )
                } else {
                    a.core.create_persistent_channel(
                        route,
                        identity.clone(),
                        trust,
                        &config,
                        ChannelRules::new(),
                        now,
                    )
                };
            }
            8 => {
                if !a.channels.is_empty() {
                    let i = usize::from(input.byte()) % a.channels.len();
                    let address = a.channels.remove(i);
                    a.core.close_channel(&address, now);
                }
            }
            9 => {
                // A connection dies, or A ends its side of it (B's reads end: a
                // half-close; B writes what it has, then closes).
                if !links.is_empty() {
                    let i = usize::from(input.byte()) % links.len();
                    if input.byte() % 2 == 0 {
                        let (ours, theirs) = links.remove(i);
                        a.core.handle_connection_closed(ours, Some("reset"), now);
                        b.core.handle_connection_closed(theirs, None, now);
                    } else {
                        b.core.handle_read_closed(links[i].1, now);
                    }
                }
            }
            10 => {
                for side in [&mut a, &mut b] {
                    if let Some(address) = side.unread.pop() {
                        side.core.handle_consumed(&address, now);
                    }
                }
            }
            _ => {
                now += Duration::from_millis(u64::from(input.u16()) * 10);
                a.core.handle_timeout(now);
                b.core.handle_timeout(now);
            }
        }
        a.drain();
        b.drain();
        // Written reports keep backlogs honest.
        for side in [&mut a, &mut b] {
            if let Some(deadline) = side.core.poll_timeout() {
                assert!(deadline >= start, "a deadline before the start");
            }
        }
    }
}

fn pick_route(input: &mut Input<'_>, a: &Side, b: &Side) -> Route {
    let to_b = ["echo", "guarded", "local"][usize::from(input.byte() % 3)];
    match input.byte() % 8 {
        0 => route![tcp("b:4000"), to_b],
        1 => route![tcp("b:4000"), "secure"],
        2 => route!["nowhere"],
        3 => Route::new(),
        4 => match a.channels.first() {
            Some(channel) => route![channel.clone(), to_b],
            None => route![tcp("b:4000"), "missing"],
        },
        // Into B's end of a channel from outside: refused by its rule.
        5 => match b.channels.first() {
            Some(channel) => route![tcp("b:4000"), channel.clone(), "app"],
            None => route![tcp("b:4000"), "local"],
        },
        6 => match a.channels.first() {
            // Registrations (or garbage) for B's relay service, through a channel.
            Some(channel) => route![channel.clone(), "relay"],
            None => route![tcp("b:4000"), "relay/x"],
        },
        _ => route![tcp("c:5000"), "echo"],
    }
}

/// Carries up to `k` of `from`'s transmits to `to` over the matching connection,
/// dropping or altering some as the input says.
fn carry(
    from: &mut Side,
    to: &mut Side,
    links: &[(ConnectionId, ConnectionId)],
    k: usize,
    input: &mut Input<'_>,
    now: Instant,
    from_a: bool,
) {
    for _ in 0..k {
        if from.pending.is_empty() {
            return;
        }
        let (connection, mut bytes) = from.pending.remove(0);
        from.core.handle_written(connection, bytes.len(), now);
        let peer = links
            .iter()
            .find(|(a, b)| {
                if from_a {
                    *a == connection
                } else {
                    *b == connection
                }
            })
            .map(|(a, b)| if from_a { *b } else { *a });
        let Some(peer) = peer else { continue };
        match input.byte() % 8 {
            7 => continue, // lost
            6 if !bytes.is_empty() => {
                let i = usize::from(input.u16()) % bytes.len();
                bytes[i] ^= input.byte() | 1;
            }
            _ => {}
        }
        to.core.handle_received(peer, &bytes, now);
    }
}
