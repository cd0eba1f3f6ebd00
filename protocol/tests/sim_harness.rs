//! The simulator's own checks: what it does not let a core get away with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/sim.rs"]
mod sim;

use onward_protocol::{route, Address};

use sim::Sim;

/// A node whose core also has a mailbox at `0#stray` that the test never registered
/// with the simulator, as a core that delivers where it should not would behave.
fn node_with_a_stray_mailbox() -> (Sim, sim::NodeId) {
    let mut sim = Sim::new(1);
    let n = sim.add_node("n", None);
    let now = sim.instant();
    sim.node_mut(n)
        .core
        .register(
            Address::local("stray"),
            onward_protocol::node::Access::anyone(),
            now,
        )
        .unwrap();
    (sim, n)
}

#[test]
#[should_panic(expected = "n delivered to 0#stray, which the test did not register")]
fn a_delivery_to_an_unregistered_address_fails_the_test() {
    let (mut sim, n) = node_with_a_stray_mailbox();
    let _ = sim.send(n, "app", route!["stray"], b"lost".to_vec());
}

#[test]
fn a_delivery_to_an_unregistered_address_is_held_when_the_test_allows_it() {
    let (mut sim, n) = node_with_a_stray_mailbox();
    sim.allow_unregistered_deliveries(n);
    sim.send(n, "app", route!["stray"], b"kept".to_vec())
        .unwrap();
    assert_eq!(sim.mailbox(n, "stray").payloads(), [b"kept".to_vec()]);
    assert_eq!(sim.take(n, "stray").len(), 1, "held until taken");
}
