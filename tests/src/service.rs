//! The service section of the suite: what a service built on onward needs from the
//! API, on every runtime (requests and their replies, attributable failures, a receive
//! loop).

use std::time::Duration;

use futures::StreamExt;
use onward_protocol::api::Error;
use onward_protocol::report::ReportCode;
use onward_protocol::route;

use crate::harness::{options, Harness};
use crate::suite::{identity, responder_and_initiator};
use crate::workers::Late;

/// Ten tasks send requests concurrently through one channel, each through the same
/// context's senders: every reply answers its own request. A request to an address
/// that does not exist far away fails by itself, with the far node's report, while
/// the others go on.
pub async fn requests_from_concurrent_tasks_get_their_own_replies<H: Harness>() {
    let (b, _, a, channel, ctx) = responder_and_initiator::<H>(&identity()).await;
    let tasks = (0..10).map(|task| {
        let sender = ctx.sender();
        let channel = channel.clone();
        async move {
            for i in 0..20 {
                let body = format!("task {task} request {i}");
                let reply = sender
                    .request::<String>(
                        route![channel.address(), "echoer"],
                        body.clone(),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("a reply");
                assert_eq!(*reply.body(), body);
            }
        }
    });
    let failing = async {
        let error = ctx
            .request::<String>(
                route![channel.address(), "nobody"],
                "hello?".to_owned(),
                Duration::from_secs(10),
            )
            .await
            .expect_err("nothing at that address");
        assert!(
            matches!(&error, Error::Remote { report, .. } if report.code == ReportCode::UnknownAddress),
            "{error}"
        );
    };
    futures::join!(futures::future::join_all(tasks), failing);
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A reply that comes after its request gave up is never taken as the reply to the
/// next request.
pub async fn a_late_reply_is_not_the_next_requests_reply<H: Harness>() {
    let (b, _, a, channel, ctx) = responder_and_initiator::<H>(&identity()).await;
    b.start_worker("late", Late::default())
        .await
        .expect("worker");
    let to_late = || route![channel.address(), "late"];
    let first = ctx
        .request::<String>(to_late(), "first".to_owned(), Duration::from_millis(200))
        .await
        .expect_err("held until the next request");
    assert!(matches!(first, Error::Timeout(_)), "{first}");
    // The worker now answers "first" (to an address that is gone), then "second".
    let second = ctx
        .request::<String>(to_late(), "second".to_owned(), Duration::from_secs(10))
        .await
        .expect("the second reply");
    assert_eq!(second.body(), "second");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

/// A context's messages as a stream, with no timeout: a service loop. The stream
/// ends when the node stops.
pub async fn a_context_is_a_stream_of_messages<H: Harness>() {
    let node = H::start(options()).await.expect("node");
    let mut server = node.context("server").await.expect("context");
    let client = node.context("client").await.expect("context");
    for i in 0..5 {
        client
            .send(route!["server"], format!("message {i}"))
            .await
            .expect("send");
    }
    let received: Vec<String> = server
        .messages::<String>()
        .take(5)
        .map(|m| m.expect("a message").into_body())
        .collect()
        .await;
    assert_eq!(
        received,
        (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
    node.stop().await.expect("stop");
    assert!(
        server.messages::<String>().next().await.is_none(),
        "the stream ends when the node stops"
    );
}
