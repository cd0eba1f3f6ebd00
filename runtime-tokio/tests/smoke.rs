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
