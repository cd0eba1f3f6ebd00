//! Listeners under load: when they are, cookie replies, the per-source share of
//! answered hellos, deferral and its bounds.

use super::*;
use crate::channel::cookie::COOKIE_REPLY_LEN;

/// A core with the listener "secure" and `config`.
fn listening(config: NodeConfig) -> NodeCore {
    let mut core = core(NodeConfig {
        max_incoming_connections: 8192,
        max_incoming_per_source: 8192,
        max_channels: 100_000,
        ..config
    });
    listen(&mut core, ChannelRules::new(), Instant::now()).unwrap();
    core
}

/// A hello with ephemeral key bytes made from `n`, and `cookie` if given.
fn hello(n: u64, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut record = vec![0x01, 0x01];
    for i in 0..4u64 {
        record.extend_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i + 1)).to_be_bytes());
    }
    record.extend_from_slice(cookie.unwrap_or_default());
    record
}

/// The frame of a hello to "secure", after the preamble if `first`.
fn hello_bytes(record: Vec<u8>, first: bool) -> Vec<u8> {
    let all = frames(&[TransportMessage::new(route!["secure"], route!["x"], record)]);
    if first {
        all
    } else {
        all[PREAMBLE.len()..].to_vec()
    }
}

/// The cookies of the cookie replies in `outputs`.
fn cookies(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { bytes, .. } if bytes.len() > 4 => {
                let message = TransportMessage::decode(&bytes[4..]).ok()?;
                (message.payload.len() == COOKIE_REPLY_LEN && message.payload[0] == 0x05)
                    .then(|| message.payload[17..].to_vec())
            }
            _ => None,
        })
        .collect()
}

/// Sends hello `n` on `conn`, takes the cookie reply, and sends the hello again with
/// the cookie. Panics if no cookie came back.
fn cookied_hello(core: &mut NodeCore, conn: ConnectionId, n: u64, first: bool, now: Instant) {
    core.handle_received(conn, &hello_bytes(hello(n, None), first), now);
    let cookie = cookies(&drain(core)).pop().expect("a cookie reply");
    core.handle_received(conn, &hello_bytes(hello(n, Some(&cookie)), false), now);
}

/// The listener is under load at `cookie_threshold` hellos in a one-second window, and
/// stays so through the next window; two windows later it is not.
#[test]
fn load_is_the_hello_rate_of_this_window_or_the_last() {
    let t0 = Instant::now();
    let mut core = listening(NodeConfig {
        cookie_threshold: Some(10),
        max_half_open_per_listener: 1000,
        ..NodeConfig::default()
    });
    let conn = core.handle_incoming_connection("10.0.0.1:1".into(), t0);
    let mut first = true;
    let mut send = |core: &mut NodeCore, n: u64, at: Instant| {
        core.handle_received(conn, &hello_bytes(hello(n, None), first), at);
        first = false;
        cookies(&drain(core)).len()
    };
    for n in 0..9 {
        assert_eq!(send(&mut core, n, t0), 0, "hello {n} is answered");
    }
    assert_eq!(
        send(&mut core, 9, t0),
        1,
        "the tenth in a second gets a cookie"
    );
    let later = t0 + Duration::from_millis(1500);
    assert_eq!(send(&mut core, 10, later), 1, "the last window had ten");
    assert_eq!(send(&mut core, 11, later + Duration::from_secs(2)), 0);
    let stats = core.stats();
    assert_eq!((stats.handshakes_answered, stats.cookies_sent), (10, 2));
}

/// Under load one source gets its share of answered hellos a second; the next 256
/// wait and the one after is dropped. A wait ends at the next second (even for a
/// timer that comes late), with the share answered again, the rest still waiting;
/// hellos whose connection closed meanwhile are not answered at all.
#[test]
fn past_its_share_a_source_waits_then_is_dropped() {
    let t0 = Instant::now();
    let mut core = listening(NodeConfig {
        cookie_threshold: Some(0),
        cookie_hellos_per_source: 2,
        ..NodeConfig::default()
    });
    let conn = core.handle_incoming_connection("10.0.0.1:1".into(), t0);
    let total = 2 + 256 + 1;
    for n in 0..total {
        cookied_hello(&mut core, conn, n, n == 0, t0);
    }
    let _ = drain(&mut core);
    let stats = core.stats();
    assert_eq!(stats.cookies_sent, total);
    assert_eq!(stats.handshakes_answered, 2);
    assert_eq!(stats.hellos_deferred, 256);
    assert_eq!(stats.hellos_rate_limited, 1);
    let due = core.poll_timeout().expect("the deferred hellos' second");
    assert_eq!(due, t0 + Duration::from_secs(1));

    // A timer a little late: two more answered, the rest wait again.
    core.handle_timeout(due + Duration::from_millis(300));
    let stats = core.stats();
    assert_eq!(stats.handshakes_answered, 4);
    assert_eq!(stats.hellos_deferred, 256 + 254);

    // Another source is not held up by this one's queue.
    let other = core.handle_incoming_connection("10.0.0.2:1".into(), t0);
    cookied_hello(
        &mut core,
        other,
        10_000,
        true,
        due + Duration::from_millis(300),
    );
    assert_eq!(core.stats().handshakes_answered, 5);

    // The first source's connection closes: what it left waiting costs nothing.
    core.handle_connection_closed(conn, None, due);
    let next = core.poll_timeout().expect("still waiting");
    core.handle_timeout(next + Duration::from_secs(1));
    assert_eq!(core.stats().handshakes_answered, 5);
    assert_eq!(
        core.stats().hellos_rate_limited,
        1,
        "not tried, so not dropped either"
    );
    assert_eq!(
        core.poll_timeout()
            .filter(|t| *t <= next + Duration::from_secs(1)),
        None
    );
}

/// The node tracks at most 4096 sources in a second; a hello from one more is dropped,
/// and once a second has passed, room is made.
#[test]
fn at_most_4096_sources_are_tracked_at_once() {
    let t0 = Instant::now();
    let mut core = listening(NodeConfig {
        cookie_threshold: Some(0),
        max_half_open_per_listener: 8,
        ..NodeConfig::default()
    });
    for i in 0..4097u64 {
        let conn = core.handle_incoming_connection(format!("10.{}.{}.1:1", i / 256, i % 256), t0);
        cookied_hello(&mut core, conn, i, true, t0);
    }
    let stats = core.stats();
    assert_eq!(stats.handshakes_answered, 4096);
    assert_eq!(stats.hellos_rate_limited, 1, "the 4097th source");
    let later = t0 + Duration::from_secs(1);
    let conn = core.handle_incoming_connection("10.99.0.1:1".into(), later);
    cookied_hello(&mut core, conn, 99_999, true, later);
    assert_eq!(core.stats().handshakes_answered, 4097, "room again");
}

/// A listener that cannot draw a cookie secret (its random source failed) drops the
/// hello and counts it, and sends nothing.
#[test]
fn no_cookie_without_randomness() {
    let now = Instant::now();
    // One fill for the connection's alias, then none.
    let mut core = NodeCore::new(
        NodeConfig {
            cookie_threshold: Some(0),
            ..NodeConfig::default()
        },
        Box::new(FailAfter {
            left: 1,
            inner: SeededRandom::new(5),
        }),
    );
    listen(&mut core, ChannelRules::new(), now).unwrap();
    let conn = core.handle_incoming_connection("10.0.0.1:1".into(), now);
    let _ = drain(&mut core);
    core.handle_received(conn, &hello_bytes(hello(1, None), true), now);
    assert!(cookies(&drain(&mut core)).is_empty());
    let stats = core.stats();
    assert_eq!((stats.hellos_rejected, stats.cookies_sent), (1, 0));
}
