//! Addresses and routes: layer 1 of the core.
//!
//! An [`Address`] is a transport type and a value; a [`Route`] is an ordered list of
//! addresses. Routing looks at the first address of a message's onward route: at each
//! hop the hop's own address is taken off the front of the onward route and an address
//! that leads back is put on the front of the return route.

mod address;
mod route;

pub use address::{tcp, Address, AddressError, TransportType, MAX_ADDRESS_LEN};
pub use route::{IntoIter, Route, MAX_ROUTE_LEN};
