//! The relay section of the suite, on every runtime: a node with no listener reached
//! through a relay; names owned by their first identity; a named error while the
//! hidden node is gone; the registration back by itself after the relay restarts.

use std::time::{Duration, Instant};

use onward_protocol::api::{Error, NodeOptions, RelayRegistration};
use onward_protocol::identity::Identity;
use onward_protocol::node::{Access, RelayStatus};
use onward_protocol::trust::{TrustEveryone, TrustIdentifier};
use onward_protocol::{route, tcp, Address};

use crate::harness::{options, within, Harness};
use crate::liveness::listen_again;
use crate::suite::{ask, identity, listen, start, STEP};
use crate::workers::Echoer;

/// A relay node listening on `address` (port 0: any) as `relay`: its channel
/// listener "secure" trusts everyone, and its relay service "relay" takes
/// registrations through any secure channel. Returns it and where it listens.
async fn relay_node<H: Harness>(
    relay: &Identity,
    address: Option<&str>,
    options: NodeOptions,
) -> (H::Node, String) {
    let r = start::<H>(options).await;
    let bound = match address {
        Some(address) => {
            listen_again::<H>(&r, address).await;
            address.to_owned()
        }
        None => listen::<H>(&r).await,
    };
    r.create_secure_channel_listener("secure", relay, TrustEveryone)
        .await
        .expect("relay's listener");
    r.create_relay("relay", Access::secure_channels())
        .await
        .expect("relay service");
    (r, bound)
}

/// A node with no listener, an echoer and a channel listener "secure" as `hidden`,
/// registered as `name` with the relay at `relay_addr` (whose identity is `relay`).
async fn hidden_node<H: Harness>(
    hidden: &Identity,
    relay: &Identity,
    relay_addr: &str,
    name: &str,
) -> (H::Node, RelayRegistration) {
    let h = start::<H>(options()).await;
    h.start_worker("echoer", Echoer).await.expect("echoer");
    h.create_secure_channel_listener("secure", hidden, TrustEveryone)
        .await
        .expect("hidden listener");
    let registration = h
        .register_with_relay(
            route![tcp(relay_addr), "secure"],
            "relay",
            name,
            hidden,
            TrustIdentifier::new(relay.identifier()),
        )
        .await
        .expect("registered");
    (h, registration)
}

/// A reaches H, which has no listener, through R: a channel to H's listener along
/// `route![tcp(R), "relay/alice", "secure"]`, H verified, echoes through it. The name
/// belongs to H's identity: another identity cannot take it, bad names are refused,
/// and past the relay's limit of names a new one is refused. Once H is gone, R says
/// so, and a new channel to it fails by name at once.
pub async fn a_node_without_a_listener_is_reached_through_a_relay<H: Harness>() {
    let relay = identity();
    let mut relay_options = options();
    relay_options.core.max_relay_names = 1;
    let (r, r_addr) = relay_node::<H>(&relay, None, relay_options).await;
    let hidden = identity();
    let (h, registration) = hidden_node::<H>(&hidden, &relay, &r_addr, "alice").await;
    assert_eq!(registration.address(), &Address::local("relay/alice"));
    assert_eq!(
        r.relay_names(),
        vec![(Address::local("relay/alice"), hidden.identifier(), true)]
    );

    let a = start::<H>(options()).await;
    let to_h = || route![tcp(r_addr.as_str()), "relay/alice", "secure"];
    let channel = a
        .create_secure_channel(
            to_h(),
            &identity(),
            TrustIdentifier::new(hidden.identifier()),
        )
        .await
        .expect("channel to the hidden node");
    assert_eq!(channel.peer(), &hidden.identifier());
    let mut ctx = a.context("app").await.expect("context");
    for i in 0..10 {
        let text = format!("Hello hidden {i}");
        let reply = ask(&mut ctx, route![channel.address(), "echoer"], &text).await;
        assert_eq!(reply.body(), &text);
    }

    // Another identity cannot take the name; nor may anyone register a bad name, or
    // a new name past the relay's limit.
    let squatter = start::<H>(options()).await;
    let squat = |name: &'static str, who: Identity| {
        let squatter = squatter.clone();
        let r_addr = r_addr.clone();
        async move {
            squatter
                .register_with_relay(
                    route![tcp(r_addr.as_str()), "secure"],
                    "relay",
                    name,
                    &who,
                    TrustEveryone,
                )
                .await
        }
    };
    for (name, who, status) in [
        ("alice", identity(), RelayStatus::Taken),
        ("al/ice", identity(), RelayStatus::Invalid),
        ("bob", identity(), RelayStatus::Full),
    ] {
        match squat(name, who).await {
            Err(Error::RelayRefused { status: got, .. }) => assert_eq!(got, status, "{name}"),
            other => panic!("{name}: expected {status:?}, got {other:?}"),
        }
    }
    // The owner may register it again (here from another node of its own).
    let again = squat("alice", hidden.clone())
        .await
        .expect("the owner again");
    assert_eq!(again.address(), registration.address());
    drop(again);
    squatter.stop().await.expect("stop");

    // H goes: once R has seen its connection close, a channel to it fails at once,
    // with the relay's report.
    h.stop().await.expect("stop");
    drop(registration);
    within::<H, _>(STEP, "the relay seeing the hidden node go", async {
        while r.relay_names().iter().any(|(_, _, connected)| *connected) {
            H::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let started = Instant::now();
    let error = a
        .create_secure_channel(to_h(), &identity(), TrustEveryone)
        .await
        .expect_err("no channel to a node that is gone");
    assert!(
        error.to_string().contains("relay/alice"),
        "the error names the relay name: {error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    for node in [a, r] {
        node.stop().await.expect("stop");
    }
}

/// The relay restarts (a new node, same identity, same port): the hidden node's
/// channel to it fails, comes back, and registers again by itself; a new channel
/// from A reaches it again, within a bound.
pub async fn a_registration_comes_back_after_the_relay_restarts<H: Harness>() {
    let relay = identity();
    let (r, r_addr) = relay_node::<H>(&relay, None, options()).await;
    let hidden = identity();
    let (h, _registration) = hidden_node::<H>(&hidden, &relay, &r_addr, "alice").await;
    let a = start::<H>(options()).await;
    let to_h = || route![tcp(r_addr.as_str()), "relay/alice", "secure"];
    a.create_secure_channel(to_h(), &identity(), TrustEveryone)
        .await
        .expect("channel before the restart");

    r.stop().await.expect("stop");
    let (r, _) = relay_node::<H>(&relay, Some(&r_addr), options()).await;
    let started = Instant::now();
    let channel = within::<H, _>(
        Duration::from_secs(30),
        "reaching the hidden node again",
        async {
            loop {
                match a
                    .create_secure_channel(to_h(), &identity(), TrustEveryone)
                    .await
                {
                    Ok(channel) => break channel,
                    Err(_) => H::sleep(Duration::from_millis(100)).await,
                }
            }
        },
    )
    .await;
    assert_eq!(channel.peer(), &hidden.identifier());
    let mut ctx = a.context("app").await.expect("context");
    let reply = ask(&mut ctx, route![channel.address(), "echoer"], "back").await;
    assert_eq!(reply.body(), "back");
    eprintln!("registered again after {:?}", started.elapsed());
    for node in [a, h, r] {
        node.stop().await.expect("stop");
    }
}

/// What the relay reads, both ways, holds no message in clear: the relay node's
/// transport (a Unix socket transport that records every byte its streams read)
/// carries the hidden node's registration channel and A's channel to it.
pub async fn the_relay_reads_only_routes_and_ciphertext<H: Harness>() {
    use crate::unix::{UnixTransport, UNIX};
    let dir = std::env::temp_dir().join(format!(
        "onward-relay-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("socket directory");
    let socket = dir.join("r.sock").to_string_lossy().into_owned();
    let at_r = Address::new(UNIX, socket.as_bytes().to_vec()).expect("address");

    let relay = identity();
    let r = start::<H>(options()).await;
    let tap = UnixTransport::default();
    r.add_stream_transport(UNIX, tap.clone())
        .expect("transport");
    r.listen_on(UNIX, &socket).await.expect("listens");
    r.create_secure_channel_listener("secure", &relay, TrustEveryone)
        .await
        .expect("listener");
    r.create_relay("relay", Access::secure_channels())
        .await
        .expect("relay");

    let hidden = identity();
    let h = start::<H>(options()).await;
    h.add_stream_transport(UNIX, UnixTransport::default())
        .expect("transport");
    h.start_worker("echoer", Echoer).await.expect("echoer");
    h.create_secure_channel_listener("secure", &hidden, TrustEveryone)
        .await
        .expect("listener");
    let registration = h
        .register_with_relay(
            route![at_r.clone(), "secure"],
            "relay",
            "alice",
            &hidden,
            TrustIdentifier::new(relay.identifier()),
        )
        .await
        .expect("registered");

    let a = start::<H>(options()).await;
    a.add_stream_transport(UNIX, UnixTransport::default())
        .expect("transport");
    let channel = a
        .create_secure_channel(
            route![at_r, registration.address().clone(), "secure"],
            &identity(),
            TrustIdentifier::new(hidden.identifier()),
        )
        .await
        .expect("channel through the relay");
    let mut ctx = a.context("app").await.expect("context");
    for i in 0..5 {
        let text = format!("Hello hidden {i}");
        assert_eq!(
            ask(&mut ctx, route![channel.address(), "echoer"], &text)
                .await
                .body(),
            &text
        );
    }
    let seen = tap.seen.lock().expect("tap").clone();
    assert!(seen.starts_with(b"onward"), "the relay read onward streams");
    assert!(
        seen.windows(11).any(|w| w == b"relay/alice"),
        "the relay reads routes"
    );
    assert!(
        !seen.windows(5).any(|w| w == b"Hello"),
        "the relay read a message in clear"
    );
    drop(registration);
    for node in [a, h, r] {
        node.stop().await.expect("stop");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
