//! onward over Redis Streams: a broker as one hop of a route.
//!
//! Each node reads its own **inbox**, a Redis stream (say `onward:b`); an address of
//! transport type [`REDIS`] names a stream (`redis("onward:b")`, text `2#onward:b`).
//! A frame for another node is one stream entry added to that node's inbox, with two
//! fields: `from`, the sender's inbox, and `frame`, the frame's bytes (a length prefix
//! and one transport message). The receiving node puts `2#<from>` on the message's
//! return route, so replies go to the sender's inbox. docs/PROTOCOL.md specifies it.
//!
//! Through a secure channel, Redis holds only routes and channel records: it cannot
//! read, alter or forge the messages, and a replayed entry is rejected by the channel's
//! replay window.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use onward_redis::{redis, RedisTransport, REDIS};
//! use onward_tokio::{route, Identity, Node, TrustEveryone};
//!
//! let node = Node::start().await?;
//! let transport = RedisTransport::connect("redis://127.0.0.1:6379", "onward:a").await?;
//! node.add_message_transport(REDIS, transport)?;
//! let channel = node
//!     .create_secure_channel(route![redis("onward:b"), "secure"], &Identity::generate()?, TrustEveryone)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Delivery and bounds
//!
//! - **At least once.** The inbox is read through a consumer group (`onward`), a
//!   batch at a time: the entries of a batch are acknowledged (`XACK`) together once
//!   the node has taken every one of them and asks for more. Entries read and not
//!   acknowledged when a node stopped or crashed, or whose read reply was lost, are
//!   read again (a channel's replay window rejects the records it has seen; a fresh
//!   node has no channel they belong to).
//! - **Bounded streams, with backpressure, nothing trimmed.** Acknowledged entries
//!   are deleted (`XDEL`) unless [`RedisOptions::keep_consumed`] is set. Units are
//!   added by a script that checks the peer's inbox first: one that holds
//!   [`RedisOptions::max_len`] entries takes no more, and the sender waits and offers
//!   them again (its node's senders are slowed meanwhile, as by a slow socket),
//!   failing them by name once the inbox has stayed full for the node's connect
//!   timeout (10 s by default). So a slow reader slows its senders rather than losing
//!   entries, and the inbox of a node that is gone stops at `max_len` entries (plus
//!   less than one batch of 64).
//! - **Failures are named.** A send that fails (Redis unreachable) fails the messages
//!   waiting for that peer, and their senders are told; the inbox reader retries
//!   after a pause.
//!
//! The `from` field is what the entry claims: anyone who may write to the inbox can
//! name any sender. Authenticate with secure channels, and restrict who may write to
//! Redis with Redis's own access control.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use futures::lock::Mutex;
use onward_protocol::api::{BoxFuture, MessageTransport, Unit};
use onward_protocol::routing::{Address, AddressError, TransportType};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamReadReply;
use redis::{Client, Value};

/// The transport type of Redis stream addresses.
pub const REDIS: TransportType = TransportType(2);

/// The consumer group (and consumer) each node reads its inbox through.
pub const GROUP: &str = "onward";

/// The address of the Redis stream `stream`: type [`REDIS`], the stream's key as its
/// value. A key longer than an address value may be (255 bytes) gives the address of
/// the empty stream name, which no node reads.
pub fn redis(stream: &str) -> Address {
    Address::new(REDIS, stream.as_bytes().to_vec())
        .unwrap_or_else(|_| Address::new(REDIS, Vec::new()).unwrap_or_else(|_| Address::local("")))
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisTransportError {
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The inbox name is empty: the empty stream name stands for no inbox
    /// ([`redis()`] of a key too long to be an address).
    #[error("the inbox name is empty")]
    EmptyInbox,
    /// The inbox's name cannot be an onward address.
    #[error("the inbox name cannot be an address: {0}")]
    Inbox(#[from] AddressError),
}

/// Settings of a [`RedisTransport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// How many entries a peer's inbox may hold before this node waits to add more.
    /// Entries count until their reader deletes them: with `keep_consumed` on the
    /// reading side, consumed entries count too, and senders stop once the inbox
    /// holds this many. Default 10,000.
    pub max_len: usize,
    /// Keep entries once acknowledged, rather than delete them. For inspection and
    /// tests: the senders' `max_len` still bounds the stream, so they stop once it is
    /// full. Default `false`.
    pub keep_consumed: bool,
    /// How long one blocking read waits for entries before it asks again. Default 1 s.
    pub block: Duration,
    /// Entries read at a time. Default 64.
    pub batch: usize,
    /// How long a command may take before it fails. Default 5 s.
    pub response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            max_len: 10_000,
            keep_consumed: false,
            block: Duration::from_secs(1),
            batch: 64,
            response_timeout: Duration::from_secs(5),
        }
    }
}

/// A node's Redis Streams transport: add it with
/// [`Node::add_message_transport`](onward_protocol::api::Node::add_message_transport)
/// under [`REDIS`].
pub struct RedisTransport {
    inbox: String,
    options: RedisOptions,
    /// For adding units: many calls may be in flight on one connection. It
    /// reconnects by itself after Redis comes back.
    writer: ConnectionManager,
    reader: Mutex<Reader>,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport")
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

/// The inbox's reading state.
struct Reader {
    /// Its own connection, as blocking reads hold a connection while they wait.
    connection: ConnectionManager,
    /// Entries read and not yet handed over.
    buffered: VecDeque<(String, Unit)>,
    /// Entries handed over and not yet acknowledged.
    handed: Vec<String>,
    /// Whether the entries left pending by an earlier run were read again.
    recovered: bool,
}

impl RedisTransport {
    /// Connects to Redis at `url` (`redis://host:port`), with `inbox` as this node's
    /// inbox stream, with default [`RedisOptions`].
    ///
    /// # Errors
    ///
    /// [`RedisTransportError::Redis`] if Redis cannot be reached or refuses to create
    /// the inbox's consumer group; [`RedisTransportError::Inbox`] if `inbox` is longer
    /// than an address value may be (255 bytes).
    pub async fn connect(url: &str, inbox: &str) -> Result<Self, RedisTransportError> {
        Self::connect_with(url, inbox, RedisOptions::default()).await
    }

    /// As [`connect`](Self::connect), with `options`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(
        url: &str,
        inbox: &str,
        options: RedisOptions,
    ) -> Result<Self, RedisTransportError> {
        let _ = Address::new(REDIS, inbox.as_bytes().to_vec())?;
        if inbox.is_empty() {
            return Err(RedisTransportError::EmptyInbox);
        }
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.response_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let writer = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        // A blocking read answers after up to `block`: its timeout is past that.
        let reading = config.set_response_timeout(Some(options.block + options.response_timeout));
        let mut connection = ConnectionManager::new_with_config(client, reading).await?;
        create_group(&mut connection, inbox).await?;
        Ok(Self {
            inbox: inbox.to_owned(),
            options,
            writer,
            reader: Mutex::new(Reader {
                connection,
                buffered: VecDeque::new(),
                handed: Vec::new(),
                recovered: false,
            }),
        })
    }
}

/// Creates the inbox's consumer group (and the stream) unless it exists. The group
/// starts at the stream's beginning: what was sent before this node first started is
/// read too.
async fn create_group(connection: &mut ConnectionManager, inbox: &str) -> redis::RedisResult<()> {
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(inbox)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Err(error) if error.code() != Some("BUSYGROUP") => Err(error),
        _ => Ok(()),
    }
}

/// Adds units to an inbox, all or none, in one step on the server: `KEYS[1]` the
/// inbox, `ARGV[1]` its limit, `ARGV[2]` the sender's inbox, then the units. If the
/// inbox holds entries and the units would take it past its limit, nothing is added
/// and the answer is 0 (the sender waits and offers them again); else each is one
/// entry `{from, frame}` and the answer is how many. An empty inbox takes a whole
/// batch, so the inbox holds at most its limit plus one batch less one. Nothing is
/// trimmed: an entry is gone only once its reader has it.
const ADD: &str = "\
local max = tonumber(ARGV[1])
local n = #ARGV - 2
local len = redis.call('XLEN', KEYS[1])
if len > 0 and len + n > max then return 0 end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'from', ARGV[2], 'frame', ARGV[i])
end
return n
";

fn io_error(error: redis::RedisError) -> io::Error {
    io::Error::other(error)
}

impl MessageTransport for RedisTransport {
    fn inbox(&self) -> String {
        self.inbox.clone()
    }

    fn send(&self, peer: &str, units: &[Vec<u8>]) -> BoxFuture<'static, io::Result<()>> {
        // The script travels with each call (a few hundred bytes; Redis caches what it
        // compiled): nothing to lose when Redis restarts. The units are copied into
        // the command now.
        let mut command = redis::cmd("EVAL");
        command
            .arg(ADD)
            .arg(1)
            .arg(peer)
            .arg(self.options.max_len)
            .arg(&self.inbox);
        for unit in units {
            command.arg(unit.as_slice());
        }
        let mut writer = self.writer.clone();
        let peer = peer.to_owned();
        Box::pin(async move {
            let added: i64 = command.query_async(&mut writer).await.map_err(io_error)?;
            if added == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("the inbox {peer} is full"),
                ));
            }
            Ok(())
        })
    }

    fn receive(&self) -> BoxFuture<'_, io::Result<Unit>> {
        Box::pin(async move {
            let mut reader = self.reader.lock().await;
            loop {
                if let Some((id, unit)) = reader.buffered.pop_front() {
                    reader.handed.push(id);
                    return Ok(unit);
                }
                // The node has every unit of the last batch: they are acknowledged
                // together, before more are read.
                self.acknowledge(&mut reader).await?;
                self.read(&mut reader).await?;
            }
        })
    }
}

impl RedisTransport {
    /// Acknowledges (and unless kept, deletes) the entries handed over. (Sending this
    /// in one pipeline with the next read measured no faster, within the noise of a
    /// two-core machine running Redis too.)
    async fn acknowledge(&self, reader: &mut Reader) -> io::Result<()> {
        if reader.handed.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.inbox)
            .arg(GROUP)
            .arg(&reader.handed)
            .ignore();
        if !self.options.keep_consumed {
            pipe.cmd("XDEL")
                .arg(&self.inbox)
                .arg(&reader.handed)
                .ignore();
        }
        let () = pipe
            .query_async(&mut reader.connection)
            .await
            .map_err(io_error)?;
        reader.handed.clear();
        Ok(())
    }

    /// Reads the next entries into `reader.buffered`: first those an earlier run read
    /// and did not acknowledge, then new ones, waiting up to `block` for them.
    async fn read(&self, reader: &mut Reader) -> io::Result<()> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(GROUP)
            .arg("COUNT")
            .arg(self.options.batch);
        if reader.recovered {
            command
                .arg("BLOCK")
                .arg(u64::try_from(self.options.block.as_millis()).unwrap_or(u64::MAX));
        }
        let from = if reader.recovered { ">" } else { "0" };
        command.arg("STREAMS").arg(&self.inbox).arg(from);
        let reply: Option<StreamReadReply> = match command.query_async(&mut reader.connection).await
        {
            Ok(reply) => reply,
            Err(error) => {
                // The answer may have been lost with entries in it, now pending for
                // this consumer: the next read takes the pending ones first.
                reader.recovered = false;
                // A Redis that restarted without persistence lost the inbox and its
                // group: make them again, so the next read works.
                if error.code() == Some("NOGROUP") {
                    tracing::debug!(inbox = %self.inbox, "the inbox's group is gone; creating it again");
                    create_group(&mut reader.connection, &self.inbox)
                        .await
                        .map_err(io_error)?;
                }
                return Err(io_error(error));
            }
        };
        let entries: Vec<_> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        if !reader.recovered && entries.is_empty() {
            reader.recovered = true;
        }
        for entry in entries {
            match (entry.map.get("from"), entry.map.get("frame")) {
                (Some(Value::BulkString(from)), Some(Value::BulkString(frame))) => {
                    let unit = Unit {
                        from: String::from_utf8_lossy(from).into_owned(),
                        bytes: frame.clone(),
                    };
                    reader.buffered.push_back((entry.id, unit));
                }
                _ => {
                    // Not an onward entry: acknowledged and dropped with the next batch.
                    tracing::debug!(inbox = %self.inbox, id = %entry.id, "entry without from and frame dropped");
                    reader.handed.push(entry.id);
                }
            }
        }
        Ok(())
    }
}
