//! Smoke tests of the tokio adapter over real loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onward_tokio::{
    route, tcp, Context, Identity, Node, Result, Routed, TrustEveryone, TrustIdentifier, Worker,
};

struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

#[tokio::test]
async fn local_echo() {
    let node = Node::start().await.unwrap();
    node.start_worker("echoer", Echoer).await.unwrap();
    let mut ctx = node.context("app").await.unwrap();
    ctx.send(route!["echoer"], "Hello".to_string())
        .await
        .unwrap();
    let reply: Routed<String> = ctx.receive().await.unwrap();
    assert_eq!(reply.body(), "Hello");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_channel_over_two_tcp_hops() {
    let responder = Node::start().await.unwrap();
    let b = responder.listen("127.0.0.1:0").await.unwrap();
    let alice = Identity::generate().unwrap();
    responder
        .create_secure_channel_listener("secure", &alice, TrustEveryone)
        .await
        .unwrap();
    responder.start_worker("echoer", Echoer).await.unwrap();

    let middle = Node::start().await.unwrap();
    let m = middle.listen("127.0.0.1:0").await.unwrap();

    let initiator = Node::start().await.unwrap();
    let bob = Identity::generate().unwrap();
    let channel = initiator
        .create_secure_channel(
            route![tcp(m.to_string()), tcp(b.to_string()), "secure"],
            &bob,
            TrustIdentifier::new(alice.identifier()),
        )
        .await
        .unwrap();
    assert_eq!(channel.peer(), &alice.identifier());
    let mut ctx = initiator.context("app").await.unwrap();
    for i in 0..100 {
        ctx.send(route![channel.address(), "echoer"], format!("Hello {i}"))
            .await
            .unwrap();
    }
    for i in 0..100 {
        let reply: Routed<String> = ctx.receive().await.unwrap();
        assert_eq!(reply.body(), &format!("Hello {i}"));
    }
    initiator.stop().await.unwrap();
    middle.stop().await.unwrap();
    responder.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_sends_from_another_task_while_the_context_receives() {
    let node = Node::start().await.unwrap();
    node.start_worker("echoer", Echoer).await.unwrap();
    let mut ctx = node.context("app").await.unwrap();
    let sender = ctx.sender();
    assert_eq!(sender.address(), ctx.address());
    let sending = tokio::spawn(async move {
        for i in 0..1000 {
            sender.send(route!["echoer"], format!("{i}")).await.unwrap();
        }
    });
    for i in 0..1000 {
        let reply: Routed<String> = ctx.receive().await.unwrap();
        assert_eq!(reply.body(), &format!("{i}"));
    }
    sending.await.unwrap();
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_node() {
    use tokio::io::AsyncReadExt;
    let node = Node::start().await.unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    let second = node.clone();
    drop(node);
    // A handle remains: the node still serves, and sends its preamble.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut preamble = [0u8; 8];
    socket.read_exact(&mut preamble).await.unwrap();
    assert_eq!(&preamble, b"onward\x00\x01");
    drop(second);
    // Now it stops: the open connection ends within the stop grace period.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut rest),
    )
    .await;
    assert!(
        ended.is_ok(),
        "the connection did not end after the last handle was dropped"
    );
}
