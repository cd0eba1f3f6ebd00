//! onward-protocol: the sans-IO core of onward.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod noise;
pub mod random;
