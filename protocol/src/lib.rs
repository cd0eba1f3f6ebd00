//! onward-protocol: the sans-IO core of onward.
//!
//! onward gives applications mutually authenticated, end-to-end encrypted messaging
//! over routes of many hops and transports. This crate is its core: pure state
//! machines that take bytes, events and the current time in, and give bytes and events
//! out. It opens no socket, spawns no task, reads no clock and draws no randomness it
//! was not given, so it runs the same under any runtime, in a custom network stack, or
//! in a simulator.
//!
//! # Example: two node cores driven by hand
//!
//! A node core on A sends a message to a worker on B over a (simulated) TCP
//! connection; the caller carries bytes between the two.
//!
//! ```
//! use onward_protocol::node::{Access, NodeConfig, NodeCore, Origin, Output};
//! use onward_protocol::random::SeededRandom;
//! use onward_protocol::{route, tcp, Address, TransportMessage};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut a = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(1)));
//! let mut b = NodeCore::new(NodeConfig::default(), Box::new(SeededRandom::new(2)));
//! a.register(Address::local("app"), Access::local_only(), now)?;
//! // Plain messages over TCP, which anyone able to connect could send: said outright.
//! b.register(Address::local("echoer"), Access::anyone(), now)?;
//!
//! // "app" on A sends to "echoer" on B, which listens at "b:4000".
//! let hello = TransportMessage::new(route![tcp("b:4000"), "echoer"], route!["app"], b"hi".to_vec());
//! a.handle_send(&Address::local("app"), hello, now)?;
//! let Some(Output::Connect { connection: a_conn, .. }) = a.poll_output() else { unreachable!() };
//! let b_conn = b.handle_incoming_connection("a:5555".into(), now);
//! a.handle_connected(a_conn, now);
//!
//! // Carry transmits across until nothing moves; collect what B delivers.
//! let mut delivered = Vec::new();
//! loop {
//!     let mut moved = false;
//!     while let Some(out) = a.poll_output() {
//!         if let Output::Transmit { bytes, .. } = out {
//!             b.handle_received(b_conn, &bytes, now);
//!             moved = true;
//!         }
//!     }
//!     while let Some(out) = b.poll_output() {
//!         match out {
//!             Output::Transmit { bytes, .. } => {
//!                 a.handle_received(a_conn, &bytes, now);
//!                 moved = true;
//!             }
//!             Output::Deliver { message, .. } => delivered.push(message),
//!             _ => {}
//!         }
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//! assert_eq!(delivered[0].payload, b"hi");
//! // The return route leads back over the connection, then to "app".
//! assert_eq!(delivered[0].return_route.len(), 2);
//! # Ok::<(), onward_protocol::node::NodeError>(())
//! ```
//!
//! # Layers
//!
//! | module | what |
//! |---|---|
//! | [`routing`] | addresses, routes, [`route!`] and [`tcp()`] |
//! | [`message`] | transport messages and their strict, bounded CBOR codec |
//! | [`report`] | error reports sent back along a return route |
//! | [`framing`] | the stream preamble and length-prefixed frames |
//! | [`noise`] | the Noise XX handshake, exact to the specification |
//! | [`identity`], [`trust`] | long-term Ed25519 identities and trust policies |
//! | [`channel`] | secure channel state machines over lossy, reordering routes |
//! | [`node`] | the node core: one router state machine per node |
//! | `api` | the async node API over a small `Runtime` trait (feature `runtime`) |
//! | [`random`] | injected randomness |
//!
//! The wire format is specified byte for byte in `docs/PROTOCOL.md`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `runtime` | off | the async node API, `api`; the runtime crates (`onward-tokio`, `onward-smol`, `onward-async-std`) enable it |
//! | `test-hooks` | off | for tests and fuzzing only; lets a caller set nonces/counters and fix ephemeral keys; never enable in production |
//!
//! With no features the crate is the sans-IO core alone: a custom stack that drives
//! the node core itself compiles no async code. Without `test-hooks` nothing in this
//! crate lets a caller set a nonce or a counter or choose an ephemeral key.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "runtime")]
pub mod api;
pub mod channel;
pub mod framing;
pub mod identity;
pub mod message;
pub mod node;
pub mod noise;
pub mod portal;
pub mod random;
pub mod report;
pub mod routing;
pub mod trust;

pub use message::{MessageError, TransportMessage};
pub use routing::{tcp, Address, AddressError, Route, TransportType};
