//! A secure channel across a Redis broker: node A reaches node B's echoer through
//! Redis Streams (`route![redis("onward-demo:b"), "secure"]`), both nodes in this
//! program. Then it reads back, straight from Redis, every entry the exchange left in
//! the two inboxes, and looks for the message in them: Redis holds routes and channel
//! records only.
//!
//! ```sh
//! redis-server --port 6379 --save ''   # or any Redis you may write to
//! cargo run -p onward-redis --example redis-demo -- [REDIS_URL]
//! ```
//!
//! `REDIS_URL` defaults to `redis://127.0.0.1:6379`. It uses the keys `onward-demo:a`
//! and `onward-demo:b`, and deletes them when done.

use onward_redis::{RedisOptions, RedisTransport, REDIS};
use onward_tokio::{
    route, Access, Context, Identity, Node, Result, Routed, TrustIdentifier, Worker,
};

struct Echoer;

impl Worker for Echoer {
    type Message = String;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<String>) -> Result<()> {
        ctx.send(msg.return_route(), msg.into_body()).await
    }
}

const MESSAGE: &str = "Hello through Redis";

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // Keep consumed entries, so that we can read them back below (by default they are
    // deleted once their node has them).
    let mut options = RedisOptions::default();
    options.keep_consumed = true;
    let keys = ["onward-demo:a", "onward-demo:b"];
    let mut client = redis::Client::open(url.as_str())?.get_connection()?;
    let () = redis::cmd("DEL").arg(&keys).query(&mut client)?;

    let b = Node::start().await?;
    let b_inbox = RedisTransport::connect_with(&url, keys[1], options.clone()).await?;
    b.add_message_transport(REDIS, b_inbox)?;
    let b_identity = Identity::generate()?;
    b.create_secure_channel_listener("secure", &b_identity, onward_tokio::TrustEveryone)
        .await?;
    b.start_worker_with("echoer", Echoer, Access::secure_channels())
        .await?;

    let a = Node::start().await?;
    let a_inbox = RedisTransport::connect_with(&url, keys[0], options).await?;
    a.add_message_transport(REDIS, a_inbox)?;
    println!("demo: A reads {}, B reads {} on {url}", keys[0], keys[1]);
    let channel = a
        .create_secure_channel(
            route![onward_redis::redis(keys[1]), "secure"],
            &Identity::generate()?,
            TrustIdentifier::new(b_identity.identifier()),
        )
        .await?;
    println!(
        "demo: secure channel A -> Redis -> B established, B verified as {}",
        channel.peer()
    );
    let mut ctx = a.context("app").await?;
    ctx.send(route![channel.address(), "echoer"], MESSAGE.to_owned())
        .await?;
    let reply: Routed<String> = ctx.receive().await?;
    println!("demo: A sent {MESSAGE:?}, B echoed {:?}", reply.body());

    let mut entries = Vec::new();
    for key in keys {
        let range: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query(&mut client)?;
        entries.push(range.ids);
    }
    let appears = entries
        .iter()
        .flatten()
        .any(|entry| match entry.map.get("frame") {
            Some(redis::Value::BulkString(frame)) => frame
                .windows(MESSAGE.len())
                .any(|w| w == MESSAGE.as_bytes()),
            _ => false,
        });
    println!(
        "demo: Redis holds {} entries for A and {} for B; the plaintext appears in them: {}",
        entries[0].len(),
        entries[1].len(),
        if appears { "YES" } else { "no" }
    );
    for node in [a, b] {
        node.stop().await?;
    }
    let () = redis::cmd("DEL").arg(&keys).query(&mut client)?;
    println!("demo: done");
    Ok(())
}
