//! Unit tests of the node core as a whole, with the helpers they share: its refusals
//! (`errors`: every [`NodeError`] variant a command or a send can return, with its
//! fields, and the core left as it was), its access rules (`access`), and its flow:
//! connection budgets and deadlines, congestion, stalls and counters (`flow`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::channel::ChannelConfig;
use crate::framing::{FramingError, PREAMBLE};
use crate::message::{MessageError, MAX_PAYLOAD_LEN};
use crate::random::{RandomError, SeededRandom};
use crate::routing::MAX_ROUTE_LEN;
use crate::trust::TrustEveryone;
use crate::{route, tcp};

fn core(config: NodeConfig) -> NodeCore {
    NodeCore::new(config, Box::new(SeededRandom::new(7)))
}

fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]).unwrap())
}

fn everyone() -> Arc<dyn TrustPolicy> {
    Arc::new(TrustEveryone)
}

fn app() -> Address {
    Address::local("app")
}

fn drain(core: &mut NodeCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// A core with a mailbox "app", a channel listener "secure", and a channel from the
/// same node to it, established (a local handshake completes inside
/// `create_channel`). Returns the core and the initiator's encryptor address. The
/// initiator takes messages out of secure channels as well as local ones, so that a
/// route may pass through it more than once.
fn local_channel(config: NodeConfig) -> (NodeCore, Address) {
    local_channel_with(
        config,
        ChannelRules::new(),
        ChannelRules::new().ingress(Access::secure_channels()),
    )
}

/// As [`local_channel`], with the listener's and the initiator's rules given.
fn local_channel_with(
    config: NodeConfig,
    listener: ChannelRules,
    initiator: ChannelRules,
) -> (NodeCore, Address) {
    let now = Instant::now();
    let mut core = core(config);
    core.register(app(), Access::anyone(), now).unwrap();
    listen(&mut core, listener, now).unwrap();
    let (_, encryptor) = open_channel(&mut core, route!["secure"], initiator, now).unwrap();
    let established = drain(&mut core).into_iter().any(|o| {
        matches!(o, Output::Event(NodeEvent::ChannelEstablished { address, initiator: true, .. })
            if address == encryptor)
    });
    assert!(established, "the local handshake completes at once");
    assert_eq!(core.channel_count(), 2, "both ends live in this node");
    (core, encryptor)
}

/// Creates the listener "secure" as identity 2, trusting everyone, with `rules`.
fn listen(core: &mut NodeCore, rules: ChannelRules, now: Instant) -> Result<(), NodeError> {
    core.create_channel_listener(
        Address::local("secure"),
        identity(2),
        everyone(),
        ChannelConfig::default(),
        rules,
        now,
    )
}

/// Starts a channel along `route` as identity 1, trusting everyone, with `rules`.
fn open_channel(
    core: &mut NodeCore,
    route: Route,
    rules: ChannelRules,
    now: Instant,
) -> Result<(ChannelId, Address), NodeError> {
    core.create_channel(
        route,
        identity(1),
        everyone(),
        &ChannelConfig::default(),
        rules,
        now,
    )
}

/// A random source that gives `left` fills, then fails for ever.
struct FailAfter {
    left: usize,
    inner: SeededRandom,
}

impl RandomSource for FailAfter {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        if self.left == 0 {
            return Err(RandomError);
        }
        self.left -= 1;
        self.inner.fill(dest)
    }
}

fn failing_after(left: usize) -> NodeCore {
    NodeCore::new(
        NodeConfig::default(),
        Box::new(FailAfter {
            left,
            inner: SeededRandom::new(3),
        }),
    )
}

/// The preamble and one frame per message, as a peer's connection carries them.
fn frames(messages: &[TransportMessage]) -> Vec<u8> {
    let mut bytes = crate::framing::PREAMBLE.to_vec();
    for m in messages {
        let encoded = m.to_bytes().unwrap();
        bytes.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&encoded);
    }
    bytes
}

/// The error reports among `outputs` (transmits of whole frames; the preamble and
/// other messages are skipped), each with the onward route it was sent along.
fn reports_in(outputs: &[Output]) -> Vec<(Route, crate::report::Report)> {
    outputs
        .iter()
        .filter_map(|out| match out {
            Output::Transmit { bytes, .. } => bytes.get(crate::framing::FRAME_HEADER_LEN..),
            _ => None,
        })
        .filter_map(|frame| TransportMessage::decode(frame).ok())
        .filter(crate::report::is_report)
        .map(|m| {
            let report = crate::report::Report::decode(&m.payload).expect("a report payload");
            (m.onward_route, report)
        })
        .collect()
}

/// A local message to `to` from "app".
fn local_to(to: Route) -> TransportMessage {
    TransportMessage::new(to, route!["app"], vec![1])
}

mod access;
mod budget;
mod cookies;
mod errors;
mod flow;
mod liveness;
mod relay;
mod transports;
