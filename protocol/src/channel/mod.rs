//! Secure channels: the state machines that run the handshake over routed messages,
//! authenticate each side's identity, and then encrypt and decrypt routed messages.
//!
//! Messages over multi-hop routes can be lost or reordered, so each carries an
//! explicit counter (the AEAD nonce); the receiving side keeps a [`replay`] window
//! that accepts each counter at most once.

pub mod replay;
