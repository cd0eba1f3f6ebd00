//! The async node API, written once over a small [`Runtime`] trait: layer 8.
//!
//! [`Node`], [`Context`], [`Worker`] and [`Routed`] are what applications use; the
//! runtime crates (`onward-tokio`, `onward-async-std`, `onward-smol`) implement
//! [`Runtime`] and re-export this module, so code differs between runtimes only in
//! the crate name. This module is behind the `runtime` feature, off by default and
//! turned on by the runtime crates: a custom stack that depends on the core alone gets
//! no async code, and drives [`NodeCore`](crate::node::NodeCore) itself.
//!
//! # How it avoids deadlock
//!
//! The node core sits behind a mutex, and whichever task has input for it (a context
//! sending, a connection reading, the timer) runs the core and carries out its outputs
//! while holding the lock. Carrying out an output never waits: a delivery goes into a
//! worker's mailbox queue and a write into a connection's queue (`queue.rs`: a ring
//! buffer each, no allocation per item), both unbounded as types but bounded by the core's accounting (unread messages per mailbox, unsent
//! bytes per connection), which refuses and reports at its limits. So no task ever
//! waits on a queue while the router waits on it: there is no cycle of bounded queues,
//! and pipelined traffic flows at any depth.

mod bytes;
mod connection;
mod context;
mod driver;
mod error;
mod node;
mod outbox;
mod portal;
mod queue;
mod relay;
mod runtime;
mod signal;
mod transport;
mod worker;

pub use crate::node::{Access, ChannelRules, Origin};
pub use bytes::Bytes;
pub use context::{Context, SendId, Sender};
pub use error::{Error, Result};
pub use node::{Node, NodeOptions, SecureChannel};
pub use portal::{Inlet, Outlet, PortalOptions, PortalStats};
pub use relay::{RelayRegistration, RELAY_ANSWER_TIMEOUT, RELAY_REFRESH, RELAY_RETRY};
pub use runtime::{BoxFuture, Listener, Runtime, Stream};
pub use transport::{MessageTransport, StreamListener, StreamTransport, Unit};
pub use worker::{Message, Opaque, Routed, Worker};
