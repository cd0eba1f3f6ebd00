//! The runtimes the benchmarks run on, each with one or two threads, behind one type:
//! block on a future, spawn a task and await its output, and start onward nodes whose
//! tasks go to the same executor.
// Benchmark support: a runtime that cannot be built, or a task that panicked, ends the
// run with a message.
#![allow(clippy::expect_used)]

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures::FutureExt;
use onward_protocol::api::{self, BoxFuture, Listener, NodeOptions, Runtime, Stream};
use smol::Executor;

/// Which runtime and how many threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// tokio: `current_thread` for one thread, `multi_thread` otherwise.
    Tokio,
    /// smol: an [`Executor`] run by the calling thread in `smol::block_on`, and by
    /// extra threads for more than one.
    Smol,
    /// async-std's global executor; its thread count is fixed for the process by
    /// `ASYNC_STD_THREAD_COUNT`, read when it starts.
    AsyncStd,
}

impl Kind {
    /// The runtime's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tokio => "tokio",
            Kind::Smol => "smol",
            Kind::AsyncStd => "async-std",
        }
    }
}

/// The runtimes every benchmark program measures in one process, each with its thread
/// count: tokio and smol with one thread and two, async-std with its global
/// executor's (see [`Kind::AsyncStd`]).
pub const EVERY_RUNTIME: [(Kind, usize); 5] = [
    (Kind::Tokio, 1),
    (Kind::Tokio, 2),
    (Kind::Smol, 1),
    (Kind::Smol, 2),
    (Kind::AsyncStd, 0),
];

/// A runtime ready to run benchmarks.
pub struct Rt {
    kind: Kind,
    threads: usize,
    tokio: Option<tokio::runtime::Runtime>,
    smol: Option<SmolPool>,
}

impl std::fmt::Debug for Rt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// A smol executor and the extra threads that run it.
struct SmolPool {
    executor: Arc<Executor<'static>>,
    stop: smol::channel::Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for SmolPool {
    fn drop(&mut self) {
        self.stop.close();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The number of threads async-std's global executor runs, as it reads it at start.
pub fn async_std_threads() -> usize {
    std::env::var("ASYNC_STD_THREAD_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Rt {
    /// `kind` with `threads` threads (ignored for async-std, see [`Kind::AsyncStd`]).
    ///
    /// # Panics
    ///
    /// If the runtime cannot be built.
    pub fn new(kind: Kind, threads: usize) -> Self {
        let mut rt = Rt {
            kind,
            threads,
            tokio: None,
            smol: None,
        };
        match kind {
            Kind::Tokio => {
                let built = if threads == 1 {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .enable_all()
                        .build()
                };
                rt.tokio = Some(built.expect("a tokio runtime"));
            }
            Kind::Smol => {
                let executor = Arc::new(Executor::new());
                let (stop, stopped) = smol::channel::bounded::<()>(1);
                let threads = (1..threads)
                    .map(|_| {
                        let executor = executor.clone();
                        let stopped = stopped.clone();
                        std::thread::spawn(move || {
                            let _ = smol::block_on(executor.run(stopped.recv()));
                        })
                    })
                    .collect();
                rt.smol = Some(SmolPool {
                    executor,
                    stop,
                    threads,
                });
            }
            Kind::AsyncStd => rt.threads = async_std_threads(),
        }
        rt
    }

    /// Which runtime.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// How many threads run tasks (for async-std, its worker threads).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// "tokio, 1 thread", "smol, 2 threads", ..., and for async-std "1 worker" or
    /// "2 workers": its `block_on` runs the caller's future on the calling thread,
    /// beside the executor's worker threads.
    pub fn label(&self) -> String {
        if self.kind == Kind::AsyncStd {
            let s = if self.threads == 1 { "" } else { "s" };
            return format!("async-std, {} worker{s}", self.threads);
        }
        let threads = if self.threads == 1 {
            "1 thread".to_string()
        } else {
            format!("{} threads", self.threads)
        };
        format!("{}, {threads}", self.kind.name())
    }

    /// Runs `future` to completion, the calling thread taking part in the executor.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        match self.kind {
            Kind::Tokio => self.tokio().block_on(future),
            Kind::Smol => smol::block_on(self.executor().run(future)),
            Kind::AsyncStd => async_std::task::block_on(future),
        }
    }

    /// Spawns `future` on this runtime; the returned future yields its output.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<'static, T> {
        match self.kind {
            Kind::Tokio => Box::pin(
                self.tokio()
                    .spawn(future)
                    .map(|r| r.expect("the task panicked")),
            ),
            Kind::Smol => Box::pin(self.executor().spawn(future)),
            Kind::AsyncStd => Box::pin(async_std::task::spawn(future)),
        }
    }

    /// This runtime as onward's [`Runtime`]: node tasks go to the same executor.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        match self.kind {
            Kind::Tokio => {
                let _entered = self.tokio().enter();
                Arc::new(onward_tokio::Tokio::current())
            }
            Kind::Smol => Arc::new(SmolOn(self.executor().clone())),
            Kind::AsyncStd => Arc::new(onward_async_std::AsyncStd),
        }
    }

    /// Starts an onward node on this runtime.
    ///
    /// # Errors
    ///
    /// As [`api::Node::start_on`].
    pub async fn node(&self) -> api::Result<api::Node> {
        api::Node::start_on(self.runtime(), NodeOptions::default()).await
    }

    fn tokio(&self) -> &tokio::runtime::Runtime {
        self.tokio.as_ref().expect("a tokio runtime")
    }

    fn executor(&self) -> &Arc<Executor<'static>> {
        &self.smol.as_ref().expect("a smol executor").executor
    }
}

/// onward on smol with tasks spawned on a given executor rather than smol's global
/// one, so the benchmark chooses the threads; TCP and timers are `onward-smol`'s.
struct SmolOn(Arc<Executor<'static>>);

impl Runtime for SmolOn {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.0.spawn(task).detach();
    }

    fn connect(&self, peer: String) -> BoxFuture<'static, io::Result<Stream>> {
        onward_smol::Smol.connect(peer)
    }

    fn bind(&self, address: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        onward_smol::Smol.bind(address)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        onward_smol::Smol.sleep(duration)
    }
}
