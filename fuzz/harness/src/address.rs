//! The `address` target: address text and route operations.

use std::collections::VecDeque;

use onward_protocol::message::TransportMessage;
use onward_protocol::route;
use onward_protocol::routing::{
    Address, AddressError, Route, TransportType, MAX_ADDRESS_LEN, MAX_ROUTE_LEN,
};

use crate::input::Input;

/// Address text parsing on arbitrary text, then route building from the same bytes.
///
/// An address that parses prints as one line of printable ASCII that parses back to
/// itself. Then the bytes are read as operations (make an address and append or
/// prepend it, step, prepend or append part of the route, encode a message carrying
/// the route), checked against a `VecDeque` of addresses.
pub fn address(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(a) = text.parse::<Address>() {
            check_address_text(&a);
        }
    }
    route_operations(data);
}

fn check_address_text(a: &Address) {
    assert!(a.value().len() <= MAX_ADDRESS_LEN);
    let printed = a.to_string();
    assert!(
        printed.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "{printed:?} is not one line of printable ASCII"
    );
    assert_eq!(
        printed.parse::<Address>().as_ref(),
        Ok(a),
        "{printed:?} does not parse back"
    );
    assert_eq!(format!("{a:?}"), printed);
}

/// Largest route the route operations build, so that doubling stays cheap.
const FUZZ_ROUTE_CAP: usize = 64;

fn route_operations(data: &[u8]) {
    let mut input = Input::new(data);
    let mut route = Route::new();
    let mut model: VecDeque<Address> = VecDeque::new();
    while !input.is_empty() {
        match input.byte() % 7 {
            op @ (0 | 1) => {
                let transport = TransportType(input.byte());
                let len = usize::from(input.u16() % 300);
                let value = input.bytes(len);
                match Address::new(transport, value.to_vec()) {
                    Ok(a) => {
                        assert!(value.len() <= MAX_ADDRESS_LEN);
                        assert_eq!(a.transport(), transport);
                        assert_eq!(a.value(), value);
                        check_address_text(&a);
                        if model.len() < FUZZ_ROUTE_CAP {
                            if op == 0 {
                                route.append(a.clone());
                                model.push_back(a);
                            } else {
                                route.prepend(a.clone());
                                model.push_front(a);
                            }
                        }
                    }
                    Err(AddressError::TooLong { len }) => {
                        assert!(value.len() > MAX_ADDRESS_LEN && len == value.len());
                    }
                    Err(e) => panic!("Address::new failed with {e}"),
                }
            }
            2 => assert_eq!(route.step(), model.pop_front()),
            op @ (3 | 4) => {
                // A part of the route itself, prepended or appended.
                let k = usize::from(input.byte()) % (model.len() + 1);
                if model.len() + k <= FUZZ_ROUTE_CAP {
                    let part: Route = model.iter().take(k).cloned().collect();
                    if op == 3 {
                        route.prepend_route(part);
                        for a in model
                            .iter()
                            .take(k)
                            .cloned()
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                        {
                            model.push_front(a);
                        }
                    } else {
                        route.append_route(part);
                        model.extend(model.iter().take(k).cloned().collect::<Vec<_>>());
                    }
                }
            }
            5 => {
                // A local address from text, as `route!` makes it.
                let len = usize::from(input.byte());
                let name = String::from_utf8_lossy(input.bytes(len)).into_owned();
                let one = route![name.as_str()];
                assert_eq!(one.len(), 1);
                let a = one.next().cloned().expect("a route of one address");
                assert!(a.is_local());
                assert_eq!(a.value_str(), Some(name.as_str()));
                if model.len() < FUZZ_ROUTE_CAP {
                    route.append_route(one);
                    model.push_back(a);
                }
            }
            _ => {
                // A message carrying the route both ways.
                let len = usize::from(input.byte());
                let payload = input.bytes(len).to_vec();
                let back: Route = model.iter().rev().cloned().collect();
                let m = TransportMessage::new(route.clone(), back, payload);
                let too_long = model.len() > MAX_ROUTE_LEN
                    || model.iter().any(|a| a.value().len() > MAX_ADDRESS_LEN);
                match m.to_bytes() {
                    Ok(bytes) => {
                        assert!(!too_long, "a route over the limit was encoded");
                        assert_eq!(TransportMessage::decode(&bytes).as_ref(), Ok(&m));
                    }
                    Err(e) => assert!(too_long, "a route within the limits failed: {e}"),
                }
            }
        }
        assert_eq!(route.len(), model.len());
        assert!(route.iter().eq(model.iter()), "route and model differ");
        assert_eq!(route.next(), model.front());
        assert_eq!(route.last(), model.back());
        assert_eq!(route.is_empty(), model.is_empty());
        assert_eq!(route, model.iter().cloned().collect::<Route>());
    }
    let shown = route.to_string();
    assert!(shown.starts_with('[') && shown.ends_with(']'));
}
