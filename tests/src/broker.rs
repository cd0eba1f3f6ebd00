//! The broker section of the suite: a secure channel across a real Redis server
//! ([`onward_redis`]), on every runtime. Each test starts its own `redis-server`
//! ([`RedisServer`]); where none is installed they do not run, and say so.

use std::time::{Duration, Instant};

use onward_protocol::api::{Error, NodeOptions, SecureChannel};
use onward_protocol::identity::Identifier;
use onward_protocol::node::Access;
use onward_protocol::trust::{TrustEveryone, TrustIdentifier};
use onward_protocol::{route, tcp, Route};
use onward_redis::{redis, RedisOptions, RedisTransport, REDIS};
use redis::streams::StreamRangeReply;
use redis::Value;

use crate::harness::{options, within, Harness};
use crate::redis_server::RedisServer;
use crate::suite::{ask, identity, listen, start, STEP};
use crate::workers::Echoer;

/// Starts a node with the Redis transport, its inbox `inbox`.
async fn redis_node<H: Harness>(
    server: &RedisServer,
    inbox: &str,
    redis_options: RedisOptions,
    node_options: NodeOptions,
) -> H::Node {
    let node = start::<H>(node_options).await;
    let transport = RedisTransport::connect_with(&server.url(), inbox, redis_options)
        .await
        .expect("redis transport");
    let address = node
        .add_message_transport(REDIS, transport)
        .expect("transport added");
    assert_eq!(address, redis(inbox));
    node
}

/// Makes `node` a responder: an echoer, and a channel listener "secure" as a fresh
/// identity trusting everyone; returns that identity's identifier.
async fn serve<H: Harness>(node: &H::Node) -> Identifier {
    let identity = identity();
    node.start_worker("echoer", Echoer).await.expect("echoer");
    node.create_secure_channel_listener("secure", &identity, TrustEveryone)
        .await
        .expect("listener");
    identity.identifier()
}

/// A secure channel from `node` along `to`, as a fresh identity, to the responder
/// `peer` (which is checked).
async fn channel_to(
    node: &onward_protocol::api::Node,
    to: Route,
    peer: Identifier,
) -> Result<SecureChannel, Error> {
    node.create_secure_channel(to, &identity(), TrustIdentifier::new(peer))
        .await
}

/// Every entry of `stream`, as (from, frame).
fn entries(server: &RedisServer, stream: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut server.client())
        .expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|entry| {
            assert_eq!(entry.map.len(), 2, "an entry has two fields: {entry:?}");
            match (entry.map.get("from"), entry.map.get("frame")) {
                (Some(Value::BulkString(from)), Some(Value::BulkString(frame))) => {
                    (from.clone(), frame.clone())
                }
                other => panic!("not an onward entry: {other:?}"),
            }
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A secure channel A → Redis → B. Redis holds routes and channel records only: every
/// entry of both inboxes is read back from Redis and none holds a message in clear.
/// Then every entry A put in B's inbox is added again, as a broker that delivers at
/// least once may: no copy reaches the echoer (the replay window rejects them), and a
/// fresh message after the copies is the next one echoed.
pub async fn a_secure_channel_crosses_redis_holding_no_plaintext<H: Harness>() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut kept = RedisOptions::default();
    kept.keep_consumed = true;
    let b = redis_node::<H>(&server, "onward:b", kept.clone(), options()).await;
    let alice = serve::<H>(&b).await;
    let a = redis_node::<H>(&server, "onward:a", kept, options()).await;
    let channel = channel_to(&a, route![redis("onward:b"), "secure"], alice)
        .await
        .expect("channel through redis");
    let mut ctx = a.context("app").await.expect("context");
    for i in 0..10 {
        let text = format!("Hello through Redis {i}");
        let reply = ask(&mut ctx, route![channel.address(), "echoer"], &text).await;
        assert_eq!(reply.body(), &text);
        assert_eq!(reply.return_route().next(), Some(channel.address()));
    }

    let to_b = entries(&server, "onward:b");
    let to_a = entries(&server, "onward:a");
    assert!(
        to_b.len() >= 12,
        "hello, finish and ten messages: {}",
        to_b.len()
    );
    assert!(to_a.len() >= 11, "response and ten replies: {}", to_a.len());
    for (from, frame) in &to_b {
        assert_eq!(from, b"onward:a");
        assert!(!contains(frame, b"Hello"), "Redis holds a message in clear");
    }
    for (from, frame) in &to_a {
        assert_eq!(from, b"onward:b");
        assert!(!contains(frame, b"Hello"), "Redis holds a reply in clear");
    }

    let rejected = b.stats().records_rejected;
    let mut client = server.client();
    for (from, frame) in &to_b {
        let _: String = redis::cmd("XADD")
            .arg("onward:b")
            .arg("*")
            .arg("from")
            .arg(from.as_slice())
            .arg("frame")
            .arg(frame.as_slice())
            .query(&mut client)
            .expect("xadd");
    }
    let reply = ask(
        &mut ctx,
        route![channel.address(), "echoer"],
        "after the copies",
    )
    .await;
    assert_eq!(reply.body(), "after the copies", "no copy was echoed");
    assert!(
        b.stats().records_rejected >= rejected + 10,
        "the ten message records came again and were rejected ({} -> {})",
        rejected,
        b.stats().records_rejected
    );
    for node in [a, b] {
        node.stop().await.expect("stop");
    }
}

/// A → TCP → M → Redis → B: M listens on TCP and has the Redis transport, B has only
/// Redis, A only TCP. M passes plain messages from its connections (A's hello) into
/// Redis only once its forwarding rule says so: before, A's handshake is refused by
/// name. With the default options consumed entries are deleted: both inboxes are
/// empty once the traffic is through.
pub async fn a_route_through_tcp_then_redis<H: Harness>() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let b = redis_node::<H>(&server, "onward:b", RedisOptions::default(), options()).await;
    let alice = serve::<H>(&b).await;
    let m = redis_node::<H>(&server, "onward:m", RedisOptions::default(), options()).await;
    let m_addr = listen::<H>(&m).await;
    let a = start::<H>(options()).await;
    let refused = channel_to(
        &a,
        route![tcp(m_addr.as_str()), redis("onward:b"), "secure"],
        alice,
    )
    .await
    .expect_err("M does not forward plain messages into Redis by default");
    assert!(refused.to_string().contains("refused"), "{refused}");
    m.set_forwarding(REDIS, Access::anyone()).expect("rule");
    let channel = channel_to(
        &a,
        route![tcp(m_addr.as_str()), redis("onward:b"), "secure"],
        alice,
    )
    .await
    .expect("channel through tcp and redis");
    let mut ctx = a.context("app").await.expect("context");
    for i in 0..10 {
        let text = format!("Hello {i}");
        let reply = ask(&mut ctx, route![channel.address(), "echoer"], &text).await;
        assert_eq!(reply.body(), &text);
    }
    // Each inbox's last entry is acknowledged and deleted when its node asks for the
    // next: wait for that, within a bound.
    let deadline = Instant::now() + STEP;
    let mut client = server.client();
    loop {
        let lengths: Vec<u64> = ["onward:b", "onward:m"]
            .iter()
            .map(|s| redis::cmd("XLEN").arg(*s).query(&mut client).expect("xlen"))
            .collect();
        if lengths == [0, 0] {
            break;
        }
        assert!(Instant::now() < deadline, "inboxes still hold {lengths:?}");
        H::sleep(Duration::from_millis(10)).await;
    }
    for node in [a, m, b] {
        node.stop().await.expect("stop");
    }
}

/// When Redis goes away, a message for it fails by name at its sender, at once: the
/// write to Redis fails, and the tracked send comes back as undelivered.
pub async fn a_send_through_a_redis_that_is_gone_fails_by_name<H: Harness>() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = redis_node::<H>(&server, "onward:a", RedisOptions::default(), options()).await;
    let mut ctx = a.context("app").await.expect("context");
    server.kill();
    let to: Route = route![redis("onward:b"), "echoer"];
    let started = Instant::now();
    let send = ctx
        .send_tracked(to, "into the void".to_string())
        .await
        .expect("handed to the node");
    match ctx.receive::<String>().await {
        Err(Error::Undelivered {
            send: failed,
            error,
        }) => {
            assert_eq!(failed, send);
            let text = error.to_string();
            assert!(text.contains("2#onward:b"), "{text}");
        }
        other => panic!("expected the send to fail by name, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    a.stop().await.expect("stop");
}

/// A reader that falls behind slows its senders, and nothing is lost: B's mailbox
/// holds 10 messages, so B stops reading its inbox while it is full; A may fill B's
/// inbox to 20 entries (its `max_len`), then waits and offers them again. The inbox
/// stays within that bound (and a batch) while B does not read, and then every one of
/// 600 messages arrives, in order. The test reads once the inbox holds anything (how
/// full it gets depends on how A's batches meet what B left unread; see
/// docs/TESTING.md), and gives B a stall limit longer than the test, so that waiting
/// never turns into dropping.
pub async fn a_full_inbox_slows_its_senders_and_loses_nothing<H: Harness>() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut small_mailboxes = options();
    small_mailboxes.core.mailbox_capacity = 10;
    small_mailboxes.core.max_stall = Duration::from_secs(60);
    let b = redis_node::<H>(
        &server,
        "onward:b",
        RedisOptions::default(),
        small_mailboxes,
    )
    .await;
    let alice = serve::<H>(&b).await;
    let mut reader = b.context("reader").await.expect("context");
    let mut limited = RedisOptions::default();
    limited.max_len = 20;
    let a = redis_node::<H>(&server, "onward:a", limited, options()).await;
    let channel = channel_to(&a, route![redis("onward:b"), "secure"], alice)
        .await
        .expect("channel through redis");
    const COUNT: u32 = 600;
    let ctx = a.context("app").await.expect("context");
    let to = route![channel.address(), "reader"];
    a.spawn(async move {
        for i in 0..COUNT {
            ctx.send(to.clone(), i).await.expect("send");
        }
    });
    let mut client = server.client();
    let len = |client: &mut redis::Connection| -> u64 {
        redis::cmd("XLEN")
            .arg("onward:b")
            .query(client)
            .expect("xlen")
    };
    within::<H, _>(STEP, "B's inbox filling up", async {
        while len(&mut client) == 0 {
            H::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for _ in 0..20 {
        let now = len(&mut client);
        assert!(now <= 20 + 64, "B's inbox holds {now} entries");
        H::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..COUNT {
        let got: onward_protocol::api::Routed<u32> = reader.receive().await.expect("message");
        assert_eq!(*got.body(), i, "in order, none lost");
    }
    for node in [a, b] {
        node.stop().await.expect("stop");
    }
}
