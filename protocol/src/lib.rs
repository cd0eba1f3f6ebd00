//! onward-protocol: the sans-IO core of onward.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod identity;
pub mod random;
pub mod trust;
