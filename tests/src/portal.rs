//! The portal section of the suite, on every runtime: TCP connections of plain socket
//! applications (threads with `std::net`, as any program would) carried through an
//! inlet, a secure channel over two TCP hops, and an outlet. A download whose client
//! half-closes first, many sessions at once, backpressure from a client that does not
//! read, and each failure ending the client's connection by name within bounds.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onward_protocol::api::{Inlet, Outlet, PortalOptions, SecureChannel};
use onward_protocol::identity::Identity;
use onward_protocol::node::Access;
use onward_protocol::trust::{TrustEveryone, TrustIdentifier};
use onward_protocol::{route, tcp};

use crate::harness::{blocking, options, Harness};
use crate::suite::{identity, listen, start};

/// The bytes a target sends: `len` bytes of a pattern that a shifted or lost chunk
/// would break.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A target server on a thread: for each connection, reads the request up to its
/// end (the client's half-close), then writes `reply(request)` and closes. Counts the
/// bytes it has written, in total, into `written`. Returns its address.
pub fn target_server(
    reply: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    written: Arc<AtomicU64>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("target listens");
    let address = listener.local_addr().expect("address").to_string();
    let reply = Arc::new(reply);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (reply, written) = (reply.clone(), written.clone());
            std::thread::spawn(move || {
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).is_err() {
                    return;
                }
                for chunk in reply(&request).chunks(16 * 1024) {
                    if stream.write_all(chunk).is_err() {
                        return;
                    }
                    written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    address
}

/// A client as any program: connects to `address`, sends `request`, shuts down its
/// write side, and reads the reply to its end.
pub fn client(address: &str, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(reply)
}

/// B: an outlet at "outlet" to `target`, behind a channel listener "secure" that
/// trusts everyone, the outlet admitting only `allowed`'s channels. M: a middle node.
/// A: a channel to B through M as `a`, and an inlet on loopback to the outlet through
/// it. Returns the nodes, the channel, the outlet and the inlet.
async fn portal<H: Harness>(
    a: &Identity,
    allowed: &Identity,
    target: &str,
    portal_options: PortalOptions,
) -> ([H::Node; 3], SecureChannel, Outlet, Inlet) {
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    b.create_secure_channel_listener("secure", &identity(), TrustEveryone)
        .await
        .expect("listener");
    let outlet_options = PortalOptions {
        access: Access::secure_channels_from(TrustIdentifier::new(allowed.identifier())),
        ..portal_options.clone()
    };
    let outlet = b
        .create_outlet("outlet", target, outlet_options)
        .await
        .expect("outlet");
    let m = start::<H>(options()).await;
    let m_addr = listen::<H>(&m).await;
    let a_node = start::<H>(options()).await;
    let channel = a_node
        .create_secure_channel(
            route![tcp(m_addr.as_str()), tcp(b_addr.as_str()), "secure"],
            a,
            TrustEveryone,
        )
        .await
        .expect("channel through M");
    let inlet = a_node
        .create_inlet(
            "127.0.0.1:0",
            route![channel.address().clone(), "outlet"],
            portal_options,
        )
        .await
        .expect("inlet");
    ([a_node, m, b], channel, outlet, inlet)
}

/// Waits, in steps of 10 ms for at most 10 s, until `done` holds.
async fn eventually<H: Harness>(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        H::sleep(Duration::from_millis(10)).await;
    }
}

/// A download of 8 MiB through inlet, channel over two TCP hops, and outlet: the
/// client sends its request and half-closes, the target answers only once it has
/// read the request's end, the client reads the reply to its end, byte for byte.
/// Both ends count the session complete, and nothing stays open.
pub async fn a_download_crosses_a_secure_portal_through_a_middle_node<H: Harness>() {
    let a = identity();
    let body = Arc::new(pattern(8 << 20, 7));
    let served = body.clone();
    let target = target_server(
        move |request| {
            assert_eq!(request, b"GET /file HTTP/1.0\r\n\r\n");
            served.to_vec()
        },
        Arc::default(),
    );
    let (nodes, _channel, outlet, inlet) =
        portal::<H>(&a, &a, &target, PortalOptions::default()).await;
    let inlet_addr = inlet.local_addr().to_string();
    let reply = blocking(move || client(&inlet_addr, b"GET /file HTTP/1.0\r\n\r\n"))
        .await
        .expect("the download");
    assert_eq!(reply.len(), body.len());
    assert!(reply == *body, "the download arrived changed");
    eventually::<H>("both ends count the session complete", || {
        inlet.stats().completed == 1 && outlet.stats().completed == 1
    })
    .await;
    assert_eq!((inlet.stats().active, outlet.stats().active), (0, 0));
    assert_eq!((inlet.stats().failed, outlet.stats().failed), (0, 0));
    for node in &nodes {
        node.stop().await.expect("stop");
    }
}

/// 100 clients at once, each sending 64 KiB and getting them back reversed, through
/// one inlet and outlet: every reply intact, every session complete, and the nodes'
/// memory bounded meanwhile (the windows bound it, not the number of bytes).
pub async fn many_sessions_at_once_all_arrive_intact<H: Harness>() {
    let a = identity();
    let target = target_server(
        |request| request.iter().rev().copied().collect(),
        Arc::default(),
    );
    let (nodes, _channel, outlet, inlet) =
        portal::<H>(&a, &a, &target, PortalOptions::default()).await;
    let inlet_addr = inlet.local_addr().to_string();
    let clients = blocking(move || {
        let threads: Vec<_> = (0..100u64)
            .map(|i| {
                let inlet_addr = inlet_addr.clone();
                std::thread::spawn(move || {
                    let request = pattern(64 * 1024, i);
                    let reply = client(&inlet_addr, &request).expect("a session");
                    reply.iter().rev().eq(request.iter())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("client"))
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(clients.len(), 100);
    assert!(clients.iter().all(|ok| *ok), "a reply arrived changed");
    eventually::<H>("all 100 sessions complete at both ends", || {
        inlet.stats().completed == 100 && outlet.stats().completed == 100
    })
    .await;
    for node in &nodes {
        let (memory, _) = node.memory_in_use();
        assert!(memory < 1 << 20, "{memory} bytes still held by a node");
        node.stop().await.expect("stop");
    }
}

/// The target writes 64 MiB to a client that reads nothing: the target is slowed to
/// a halt (its writes block) well before it has written everything, and the nodes
/// hold at most about a window each, rather than the 64 MiB. (The sockets' kernel
/// buffers on the way hold some 20 MiB at most on Linux loopback.) Then the client reads
/// it all, intact.
pub async fn a_client_that_does_not_read_stops_the_target<H: Harness>() {
    let a = identity();
    let total = 64usize << 20;
    let body = Arc::new(pattern(total, 3));
    let served = body.clone();
    let written = Arc::new(AtomicU64::new(0));
    let target = target_server(move |_| served.to_vec(), written.clone());
    let window = 256 * 1024;
    let portal_options = PortalOptions {
        window,
        ..PortalOptions::default()
    };
    let (nodes, _channel, _outlet, inlet) = portal::<H>(&a, &a, &target, portal_options).await;
    let mut stream = TcpStream::connect(inlet.local_addr()).expect("connect");
    stream.shutdown(Shutdown::Write).expect("half-close");
    // Wait until the target's writes stop advancing: the pipeline is full.
    let mut last = u64::MAX;
    loop {
        H::sleep(Duration::from_millis(200)).await;
        let now = written.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    assert!(
        (last as usize) < total / 2,
        "the target wrote {last} bytes to a client that reads nothing"
    );
    for node in &nodes {
        let (memory, _) = node.memory_in_use();
        assert!(
            memory <= 4 * window as usize,
            "a node holds {memory} bytes for a stalled session of window {window}"
        );
    }
    let reply = blocking(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).map(|_| reply)
    })
    .await
    .expect("the rest");
    assert!(reply == *body, "the stalled download arrived changed");
    for node in &nodes {
        node.stop().await.expect("stop");
    }
}

/// Each failure ends the client's connection (no reply, closed) within a second or
/// two, never the open timeout, and the inlet counts it failed: a target that refuses
/// connections, an identity the outlet does not admit, an outlet address that does
/// not exist. Past `max_sessions` a connection is closed at once and counted.
pub async fn a_failed_session_closes_the_client_by_name<H: Harness>() {
    let a = identity();
    // A port with no listener: bind, then drop.
    let refused = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let (nodes, channel, _outlet, inlet) =
        portal::<H>(&a, &a, &refused, PortalOptions::default()).await;
    let closes = |address: String| async move {
        let started = Instant::now();
        let reply = blocking(move || client(&address, b"hello")).await;
        (reply, started.elapsed())
    };
    let (reply, took) = closes(inlet.local_addr().to_string()).await;
    assert!(
        reply.as_ref().map_or(true, Vec::is_empty),
        "a reply from nowhere: {reply:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "the refused target took {took:?}"
    );
    eventually::<H>("the inlet counts the session failed", || {
        inlet.stats().failed == 1
    })
    .await;

    // An outlet that does not exist: the report ends the session.
    let a_node = &nodes[0];
    let nowhere = a_node
        .create_inlet(
            "127.0.0.1:0",
            route![channel.address().clone(), "no-outlet"],
            PortalOptions::default(),
        )
        .await
        .expect("inlet");
    let (reply, took) = closes(nowhere.local_addr().to_string()).await;
    assert!(reply.as_ref().map_or(true, Vec::is_empty));
    assert!(
        took < Duration::from_secs(5),
        "the unknown outlet took {took:?}"
    );
    eventually::<H>("the inlet counts it failed", || nowhere.stats().failed == 1).await;

    // An identity the outlet does not admit: refused, by name, at once.
    let b_target = target_server(|r| r.to_vec(), Arc::default());
    let (others, _channel, _outlet, stranger) =
        portal::<H>(&identity(), &a, &b_target, PortalOptions::default()).await;
    let (reply, took) = closes(stranger.local_addr().to_string()).await;
    assert!(reply.as_ref().map_or(true, Vec::is_empty));
    assert!(
        took < Duration::from_secs(5),
        "the refused identity took {took:?}"
    );
    eventually::<H>("the stranger's inlet counts it failed", || {
        stranger.stats().failed == 1
    })
    .await;

    // Past the limit: the connection is closed at once, and counted.
    let small = a_node
        .create_inlet(
            "127.0.0.1:0",
            route![channel.address().clone(), "outlet"],
            PortalOptions {
                max_sessions: 0,
                ..PortalOptions::default()
            },
        )
        .await
        .expect("inlet");
    let (reply, _) = closes(small.local_addr().to_string()).await;
    assert!(reply.as_ref().map_or(true, Vec::is_empty));
    eventually::<H>("the full inlet counts the refusal", || {
        small.stats().refused == 1
    })
    .await;
    for node in nodes.iter().chain(others.iter()) {
        node.stop().await.expect("stop");
    }
}

/// An idle session whose channel goes away ends at both ends within its keepalive:
/// the client's connection is closed, and so is the target's, each counted failed,
/// rather than left open with nothing behind them.
pub async fn an_idle_session_ends_when_its_channel_goes<H: Harness>() {
    let a = identity();
    let target = target_server(|r| r.to_vec(), Arc::default());
    let portal_options = PortalOptions {
        keepalive: Duration::from_millis(300),
        ..PortalOptions::default()
    };
    let (nodes, channel, outlet, inlet) = portal::<H>(&a, &a, &target, portal_options).await;
    let mut stream = TcpStream::connect(inlet.local_addr()).expect("connect");
    stream
        .write_all(b"a request that never ends")
        .expect("write");
    eventually::<H>("the session is open at both ends", || {
        inlet.stats().active == 1 && outlet.stats().active == 1
    })
    .await;
    let started = Instant::now();
    nodes[0].close_secure_channel(&channel).await;
    let read = blocking(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).map(|_| rest)
    })
    .await;
    assert!(
        read.as_ref().map_or(true, Vec::is_empty),
        "the client got {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client's connection closed after {:?}",
        started.elapsed()
    );
    eventually::<H>("both ends count the session failed", || {
        inlet.stats().failed == 1 && outlet.stats().failed == 1
    })
    .await;
    for node in &nodes {
        node.stop().await.expect("stop");
    }
}

/// An outlet answers nothing but opens: a reset sent to one outlet with a return route
/// that names another is dropped, not answered (two outlets answering each other's
/// resets would bounce for ever). Opens are still answered meanwhile.
pub async fn an_outlet_answers_only_opens<H: Harness>() {
    use onward_protocol::api::Opaque;
    use onward_protocol::portal::PortalMessage;
    use onward_protocol::{Route, TransportMessage};

    let node = start::<H>(options()).await;
    let refused = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let mut outlets = Vec::new();
    for name in ["outlet-a", "outlet-b"] {
        let outlet = node
            .create_outlet(name, &refused, PortalOptions::default())
            .await
            .expect("outlet");
        outlets.push(outlet);
    }
    let mut ctx = node.new_context().await.expect("context");
    let reset = PortalMessage::Reset {
        reason: "bounce".into(),
    }
    .encode();
    ctx.forward(TransportMessage::new(
        route!["outlet-a"],
        Route::from(onward_protocol::Address::local("outlet-b")),
        reset,
    ))
    .await
    .expect("sent");
    // An open to each outlet is answered (a reset: the target refuses), after the
    // crafted reset was handled.
    let open = PortalMessage::Open { window: 1024 }.encode();
    let mut routed = Vec::new();
    for name in ["outlet-a", "outlet-b"] {
        let message = TransportMessage::new(
            route![name],
            Route::from(ctx.address().clone()),
            open.clone(),
        );
        ctx.forward(message).await.expect("open");
        let answer = ctx.receive::<Opaque>().await.expect("an answer");
        assert!(matches!(
            PortalMessage::decode(answer.payload()),
            Ok(PortalMessage::Reset { .. })
        ));
        routed.push(node.stats().messages_routed);
    }
    // Between the two answers: the open, the reset back, and nothing bouncing.
    assert!(
        routed[1] - routed[0] <= 4,
        "{} messages routed for one open",
        routed[1] - routed[0]
    );
    drop(outlets);
    node.stop().await.expect("stop");
}

/// A portal over plain TCP (both ends' rules admit transport connections): a download
/// through it arrives whole, and a restarted outlet node ends the idle session that
/// was open through it: the route back to the outlet's session began with the old
/// connection, so the inlet's next keepalive fails by name.
pub async fn a_portal_over_plain_tcp_and_a_restarted_outlet<H: Harness>() {
    let body = Arc::new(pattern(1 << 20, 11));
    let served = body.clone();
    let target = target_server(move |_| served.to_vec(), Arc::default());
    let plain = PortalOptions {
        access: Access::anyone(),
        keepalive: Duration::from_millis(300),
        ..PortalOptions::default()
    };
    let b = start::<H>(options()).await;
    let b_addr = listen::<H>(&b).await;
    let outlet = b
        .create_outlet("outlet", &target, plain.clone())
        .await
        .expect("outlet");
    let a = start::<H>(options()).await;
    let inlet = a
        .create_inlet(
            "127.0.0.1:0",
            route![tcp(b_addr.as_str()), "outlet"],
            plain.clone(),
        )
        .await
        .expect("inlet");
    let inlet_addr = inlet.local_addr().to_string();
    let reply = blocking(move || client(&inlet_addr, b"GET"))
        .await
        .expect("the download");
    assert!(reply == *body, "the download arrived changed");

    // An idle session, then B restarts on the same port without its outlet: the
    // inlet's next keepalive cannot follow the closed connection, and the session
    // ends.
    let mut stream = TcpStream::connect(inlet.local_addr()).expect("connect");
    stream.write_all(b"an open request").expect("write");
    eventually::<H>("the session is open", || outlet.stats().active == 1).await;
    drop(outlet);
    b.stop().await.expect("stop B");
    let b2 = start::<H>(options()).await;
    crate::liveness::listen_again::<H>(&b2, &b_addr).await;
    let read = blocking(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).map(|_| rest)
    })
    .await;
    assert!(read.as_ref().map_or(true, Vec::is_empty), "{read:?}");
    eventually::<H>("the inlet counts the session failed", || {
        inlet.stats().failed == 1 && inlet.stats().active == 0
    })
    .await;
    a.stop().await.expect("stop A");
    b2.stop().await.expect("stop B");
}
