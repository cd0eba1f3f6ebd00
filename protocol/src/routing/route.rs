use std::collections::VecDeque;
use std::fmt;

use super::Address;

/// The largest number of addresses in a route that encoders write and decoders accept.
pub const MAX_ROUTE_LEN: usize = 32;

/// An ordered list of addresses.
///
/// A message's onward route says where it goes, first address next; its return route
/// says how a reply gets back. Build one with [`route!`](crate::route). A route in
/// memory may be longer than [`MAX_ROUTE_LEN`]; the limit is enforced when a message is
/// encoded and decoded.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Route {
    addresses: VecDeque<Address>,
}

impl Route {
    /// The empty route.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next hop: the first address, without removing it.
    pub fn next(&self) -> Option<&Address> {
        self.addresses.front()
    }

    /// Takes the next hop off the front.
    pub fn step(&mut self) -> Option<Address> {
        self.addresses.pop_front()
    }

    /// Puts `address` in front of the route, to be visited first.
    pub fn prepend(&mut self, address: impl Into<Address>) {
        self.addresses.push_front(address.into());
    }

    /// Puts `address` at the end of the route, to be visited last.
    pub fn append(&mut self, address: impl Into<Address>) {
        self.addresses.push_back(address.into());
    }

    /// Puts all of `other` in front of this route, keeping its order.
    pub fn prepend_route(&mut self, other: Route) {
        for address in other.addresses.into_iter().rev() {
            self.addresses.push_front(address);
        }
    }

    /// Puts all of `other` after this route.
    pub fn append_route(&mut self, other: Route) {
        self.addresses.extend(other.addresses);
    }

    /// The number of addresses.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether the route has no address.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// The addresses, first hop first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Address> + ExactSizeIterator {
        self.addresses.iter()
    }

    /// Takes the last address off the end.
    pub fn pop_back(&mut self) -> Option<Address> {
        self.addresses.pop_back()
    }

    /// The last address, the final destination.
    pub fn last(&self) -> Option<&Address> {
        self.addresses.back()
    }
}

impl FromIterator<Address> for Route {
    fn from_iter<I: IntoIterator<Item = Address>>(iter: I) -> Self {
        Self {
            addresses: iter.into_iter().collect(),
        }
    }
}

impl IntoIterator for Route {
    type Item = Address;
    type IntoIter = std::collections::vec_deque::IntoIter<Address>;

    fn into_iter(self) -> Self::IntoIter {
        self.addresses.into_iter()
    }
}

impl From<&Route> for Route {
    /// A copy of `route`: `ctx.send(&route, ..)` keeps the caller's route.
    fn from(route: &Route) -> Self {
        route.clone()
    }
}

impl From<Address> for Route {
    fn from(address: Address) -> Self {
        std::iter::once(address).collect()
    }
}

impl From<&str> for Route {
    /// A route of one local address.
    fn from(name: &str) -> Self {
        Address::local(name).into()
    }
}

impl fmt::Display for Route {
    /// Addresses separated by ` => `, first hop first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, address) in self.addresses.iter().enumerate() {
            if i > 0 {
                write!(f, " => ")?;
            }
            write!(f, "{address}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Builds a [`Route`]: plain strings are local addresses, anything else converts into
/// an [`Address`](crate::Address).
///
/// ```
/// use onward_protocol::{route, tcp, Address};
/// let r = route!["h1", tcp("127.0.0.1:4000"), "echoer"];
/// assert_eq!(r.len(), 3);
/// assert_eq!(r.next(), Some(&Address::local("h1")));
/// assert_eq!(r.to_string(), "[0#h1 => 1#127.0.0.1:4000 => 0#echoer]");
/// ```
#[macro_export]
macro_rules! route {
    ($($address:expr),* $(,)?) => {
        <$crate::Route as ::core::iter::FromIterator<$crate::Address>>::from_iter(
            [$(<$crate::Address as ::core::convert::From<_>>::from($address)),*]
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp;

    #[test]
    fn routing_operations() {
        let mut r = route!["h1", tcp("127.0.0.1:4000"), String::from("echoer")];
        assert_eq!(r.len(), 3);
        assert_eq!(r.next(), Some(&Address::local("h1")));
        assert_eq!(r.step(), Some(Address::local("h1")));
        assert_eq!(r.next(), Some(&tcp("127.0.0.1:4000")));
        r.prepend("h0");
        r.append("tail");
        let names: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["0#h0", "1#127.0.0.1:4000", "0#echoer", "0#tail"]);
        assert_eq!(r.last(), Some(&Address::local("tail")));
        let mut front = route!["a", "b"];
        front.append_route(route!["c"]);
        front.prepend_route(route!["x", "y"]);
        assert_eq!(front, route!["x", "y", "a", "b", "c"]);
    }

    #[test]
    fn empty_route() {
        let mut r = route![];
        assert!(r.is_empty());
        assert_eq!(r.next(), None);
        assert_eq!(r.step(), None);
        assert_eq!(r.to_string(), "[]");
    }
}
