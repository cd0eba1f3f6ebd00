//! One runtime, as the suite sees it: start a node, block on a test, sleep.

use std::future::Future;
use std::ops::Deref;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture, Either};
use onward_protocol::api::{self, Listener, NodeOptions, Result, Runtime, Stream};

/// What the suite needs from a runtime. Each runtime crate's own `Node::start_with`
/// starts the nodes, so the suite goes through the adapters' public API.
pub trait Harness: 'static {
    /// The runtime crate's node type.
    type Node: Deref<Target = api::Node> + Clone + Send + Sync + 'static;

    /// The runtime's name, for messages.
    const NAME: &'static str;

    /// Starts a node with `options` through the runtime crate.
    fn start(options: NodeOptions) -> BoxFuture<'static, Result<Self::Node>>;

    /// The runtime crate's [`Runtime`], for a node started on a wrapper of it
    /// ([`NeverConnects`]). Called from inside [`block_on`](Self::block_on).
    fn runtime() -> Arc<dyn Runtime>;

    /// Runs `future` to completion on this runtime, blocking the calling thread.
    fn block_on<T>(future: impl Future<Output = T>) -> T;

    /// Completes after `duration`, on this runtime's timer.
    fn sleep(duration: Duration) -> BoxFuture<'static, ()>;
}

/// tokio, through `onward-tokio`, on a two-worker multi-thread runtime.
#[derive(Debug)]
pub struct Tokio;

impl Harness for Tokio {
    type Node = onward_tokio::Node;
    const NAME: &'static str = "tokio";

    fn start(options: NodeOptions) -> BoxFuture<'static, Result<Self::Node>> {
        Box::pin(onward_tokio::Node::start_with(options))
    }

    fn runtime() -> Arc<dyn Runtime> {
        Arc::new(onward_tokio::Tokio::current())
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let output = runtime.block_on(future);
        runtime.shutdown_timeout(Duration::from_secs(1));
        output
    }

    fn sleep(duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// smol, through `onward-smol`, on smol's global executor.
#[derive(Debug)]
pub struct Smol;

impl Harness for Smol {
    type Node = onward_smol::Node;
    const NAME: &'static str = "smol";

    fn start(options: NodeOptions) -> BoxFuture<'static, Result<Self::Node>> {
        Box::pin(onward_smol::Node::start_with(options))
    }

    fn runtime() -> Arc<dyn Runtime> {
        Arc::new(onward_smol::Smol)
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }

    fn sleep(duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }
}

/// async-std, through `onward-async-std`.
#[derive(Debug)]
pub struct AsyncStd;

impl Harness for AsyncStd {
    type Node = onward_async_std::Node;
    const NAME: &'static str = "async-std";

    fn start(options: NodeOptions) -> BoxFuture<'static, Result<Self::Node>> {
        Box::pin(onward_async_std::Node::start_with(options))
    }

    fn runtime() -> Arc<dyn Runtime> {
        Arc::new(onward_async_std::AsyncStd)
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }

    fn sleep(duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async_std::task::sleep(duration))
    }
}

/// Runs a whole test on `H`, failing it if it takes longer than `limit`.
/// With `RUST_LOG` set, the nodes' logs go to the test's output.
pub fn run<H: Harness>(limit: Duration, test: impl Future<Output = ()>) {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    H::block_on(within::<H, _>(limit, "the test", test));
}

/// Awaits `future`, panicking with `what` if it takes longer than `limit`.
pub async fn within<H: Harness, T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = T>,
) -> T {
    match future::select(pin!(future), H::sleep(limit)).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("{what} did not finish within {limit:?} on {}", H::NAME),
    }
}

/// Runs blocking code (a raw socket client) on its own thread and awaits its result,
/// so no runtime thread blocks.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("the blocking thread panicked")
}

/// Options for tests: the defaults, with waits long enough that only a hang trips
/// them, even on a loaded machine running every runtime's suite at once, and short
/// enough that a hang fails the test well within its time limit (60 s). Tests that
/// expect a timeout set the one they expect to see, short, themselves.
pub fn options() -> NodeOptions {
    let mut options = NodeOptions {
        receive_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(20),
        stop_grace: Duration::from_secs(10),
        ..NodeOptions::default()
    };
    options.channel.handshake_timeout = Duration::from_secs(20);
    options
}

/// Options for tests that expect a handshake to time out: [`options`] with a
/// handshake timeout of one second. Nothing else is short: a loopback connect or a
/// receive that races a one-second timer would fail such a test under load for the
/// wrong reason.
pub fn short_options() -> NodeOptions {
    let mut options = options();
    options.channel.handshake_timeout = Duration::from_secs(1);
    options
}

/// A runtime whose connects never complete (a peer that drops every SYN), and which is
/// otherwise the runtime it wraps: what the connect timeout is for.
pub struct NeverConnects(pub Arc<dyn Runtime>);

impl Runtime for NeverConnects {
    fn spawn(&self, task: api::BoxFuture<'static, ()>) {
        self.0.spawn(task);
    }

    fn connect(&self, _peer: String) -> api::BoxFuture<'static, std::io::Result<Stream>> {
        Box::pin(future::pending())
    }

    fn bind(&self, address: String) -> api::BoxFuture<'static, std::io::Result<Box<dyn Listener>>> {
        self.0.bind(address)
    }

    fn sleep(&self, duration: Duration) -> api::BoxFuture<'static, ()> {
        self.0.sleep(duration)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }
}
