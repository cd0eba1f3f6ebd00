//! onward-protocol: the sans-IO core of onward.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod message;
pub mod noise;
pub mod random;
pub mod routing;
pub mod trust;

pub use message::{MessageError, TransportMessage};
pub use routing::{tcp, Address, AddressError, Route, TransportType};
