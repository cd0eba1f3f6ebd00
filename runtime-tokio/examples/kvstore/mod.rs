//! The key-value service of the examples, written once for every runtime: the
//! program that includes it names its runtime crate `onward` (`use onward_tokio as
//! onward;`), and nothing else changes.
//!
//! The server keeps a map behind a plain worker, reachable only through secure
//! channels; the client opens one channel through a middle node and runs tasks that
//! each put and get keys concurrently, every call a request with its own reply
//! address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::onward::{
    route, tcp, Access, Context, Identifier, Identity, Node, Result, Routed, TrustEveryone,
    TrustIdentifier, Worker,
};

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    Put { key: String, value: String },
    Get { key: String },
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Response {
    Stored,
    Value(Option<String>),
}

/// The map, behind a worker.
#[derive(Default)]
struct Store(BTreeMap<String, String>);

impl Worker for Store {
    type Message = Request;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Request>) -> Result<()> {
        let response = match msg.body().clone() {
            Request::Put { key, value } => {
                self.0.insert(key, value);
                Response::Stored
            }
            Request::Get { key } => Response::Value(self.0.get(&key).cloned()),
        };
        ctx.send(msg.return_route(), response).await
    }
}

/// A server node listening on `address`, with a channel listener "secure" (as a new
/// identity, accepting any client, each authenticated) and the store at "store",
/// which takes messages only through secure channels.
pub(crate) async fn server(address: &str) -> Result<(Node, SocketAddr, Identifier)> {
    let identity = Identity::generate()?;
    let node = Node::start().await?;
    let bound = node.listen(address).await?;
    node.create_secure_channel_listener("secure", &identity, TrustEveryone)
        .await?;
    node.start_worker_with("store", Store::default(), Access::secure_channels())
        .await?;
    Ok((node, bound, identity.identifier()))
}

/// A middle node: a TCP listener, and nothing else.
pub(crate) async fn middle(address: &str) -> Result<(Node, SocketAddr)> {
    let node = Node::start().await?;
    let bound = node.listen(address).await?;
    Ok((node, bound))
}

/// The client: a secure channel to the server at `server` (which must prove it is
/// `server_id`) through the middle node at `middle`, then `tasks` concurrent tasks,
/// each putting `per_task` keys and getting each back. Returns the requests answered.
pub(crate) async fn client(
    middle: &str,
    server: &str,
    server_id: Identifier,
    tasks: usize,
    per_task: usize,
) -> std::result::Result<usize, Box<dyn std::error::Error>> {
    let node = Node::start().await?;
    let me = Identity::generate()?;
    let channel = node
        .create_secure_channel(
            route![tcp(middle), tcp(server), "secure"],
            &me,
            TrustIdentifier::new(server_id),
        )
        .await?;
    let ctx = node.context("client").await?;
    let timeout = Duration::from_secs(10);
    let jobs = (0..tasks).map(|task| {
        let sender = ctx.sender();
        let store = route![channel.address(), "store"];
        async move {
            for i in 0..per_task {
                let key = format!("task {task} key {i}");
                let value = format!("value {i} of task {task}");
                let put = Request::Put {
                    key: key.clone(),
                    value: value.clone(),
                };
                let stored = sender.request::<Response>(&store, put, timeout).await?;
                let got = sender
                    .request::<Response>(&store, Request::Get { key }, timeout)
                    .await?;
                if *stored.body() != Response::Stored || *got.body() != Response::Value(Some(value))
                {
                    return Err(format!("task {task}: wrong answer {:?}", got.body()).into());
                }
            }
            Ok::<usize, Box<dyn std::error::Error>>(2 * per_task)
        }
    });
    let answered = futures::future::try_join_all(jobs).await?.into_iter().sum();
    node.stop().await?;
    Ok(answered)
}

/// All three roles in one process, over loopback TCP: prints where the server and
/// middle node listen and how fast the client's requests were answered.
pub(crate) async fn demo() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (server, server_address, id) = server("127.0.0.1:0").await?;
    let (middle, middle_address) = middle("127.0.0.1:0").await?;
    println!("kv demo: server {server_address} ({id}), middle {middle_address}");
    let started = std::time::Instant::now();
    let answered = client(
        &middle_address.to_string(),
        &server_address.to_string(),
        id,
        10,
        50,
    )
    .await?;
    println!(
        "kv client: {answered} requests answered in {} ms",
        started.elapsed().as_millis()
    );
    middle.stop().await?;
    server.stop().await?;
    Ok(())
}
