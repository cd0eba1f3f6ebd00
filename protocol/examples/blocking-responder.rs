//! A custom stack: the sans-IO node core driven by blocking `std::net` sockets and
//! threads, with no async runtime. It is the responder of the guide's step 09: a TCP
//! listener, a secure channel listener at "secure" and an echoer at "echoer", and it
//! answers the tokio initiator through the tokio middle node.
//!
//! ```sh
//! cargo run -p onward-protocol --example blocking-responder -- [ADDRESS] [COUNT]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:4000`; after echoing `COUNT` messages (default:
//! never) it stops once the replies are written.
//!
//! The whole contract with the core is here: every input goes in under one lock with
//! the current time, then every output is carried out (`dispatch`) before the lock is
//! let go; a timer thread calls `handle_timeout` at `poll_timeout`. Each connection
//! has a reader thread and a writer thread; reading pauses when the core says so.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use onward_protocol::channel::ChannelConfig;
use onward_protocol::identity::Identity;
use onward_protocol::node::{Access, ChannelRules, ConnectionId, NodeConfig, NodeCore, Output};
use onward_protocol::random::SystemRandom;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{Address, Route, TransportMessage};

type Failure = Box<dyn std::error::Error>;

/// A connection's reading switch: closed while the core has paused reading.
#[derive(Default)]
struct Gate {
    paused: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn set(&self, paused: bool) {
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = paused;
        self.changed.notify_all();
    }

    fn wait_open(&self) {
        let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        while *paused {
            paused = self.changed.wait(paused).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The core and where its outputs go.
struct Driver {
    core: NodeCore,
    writers: BTreeMap<ConnectionId, mpsc::Sender<Vec<u8>>>,
    gates: BTreeMap<ConnectionId, Arc<Gate>>,
    echoed: usize,
}

struct Shared {
    driver: Mutex<Driver>,
    /// Notified after every dispatch: the timer re-reads the deadline, and `main`
    /// checks whether it is done.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `input` on the core with the current time, then carries out its outputs.
    fn input<T>(self: &Arc<Self>, input: impl FnOnce(&mut NodeCore, Instant) -> T) -> T {
        let mut d = self.lock();
        let result = input(&mut d.core, Instant::now());
        self.dispatch(&mut d);
        result
    }

    fn dispatch(self: &Arc<Self>, d: &mut Driver) {
        while let Some(output) = d.core.poll_output() {
            let now = Instant::now();
            match output {
                // The only mailbox is the echoer's: it answers at once.
                Output::Deliver {
                    address,
                    message,
                    origin,
                } => {
                    d.core.handle_consumed(&address, now);
                    let text: String =
                        ciborium::from_reader(message.payload.as_slice()).unwrap_or_default();
                    let from = origin.channel_peer().map(ToString::to_string);
                    println!(
                        "echoer: received {text:?} through a secure channel from {}",
                        from.unwrap_or_default()
                    );
                    let reply = TransportMessage::new(
                        message.return_route,
                        Route::from(address.clone()),
                        message.payload,
                    );
                    match d.core.handle_send(&address, reply, now) {
                        Ok(()) => d.echoed += 1,
                        Err(error) => println!("echoer: reply failed: {error}"),
                    }
                }
                Output::Connect { connection, peer } => self.connect(connection, peer),
                Output::Transmit { connection, bytes } => {
                    let len = bytes.len();
                    let queued = d
                        .writers
                        .get(&connection)
                        .is_some_and(|w| w.send(bytes).is_ok());
                    if !queued {
                        d.core.handle_written(connection, len, now);
                    }
                }
                // Dropping the writer's queue makes it shut the socket down.
                Output::Close { connection } => {
                    d.writers.remove(&connection);
                    if let Some(gate) = d.gates.remove(&connection) {
                        gate.set(false);
                    }
                }
                Output::PauseReading { connection } | Output::ResumeReading { connection } => {
                    let paused = matches!(output, Output::PauseReading { .. });
                    if let Some(gate) = d.gates.get(&connection) {
                        gate.set(paused);
                    }
                }
                Output::Decongested(_) => {}
                Output::Event(event) => tracing::debug!(?event, "node event"),
            }
        }
        self.changed.notify_all();
    }

    /// Dials a peer the core asked for, on a thread of its own.
    fn connect(self: &Arc<Self>, connection: ConnectionId, peer: Address) {
        let shared = self.clone();
        thread::spawn(move || {
            let stream = peer
                .value_str()
                .filter(|_| peer.transport() == onward_protocol::TransportType::TCP)
                .ok_or_else(|| std::io::Error::other("only TCP here"))
                .and_then(|text| {
                    let address = std::net::ToSocketAddrs::to_socket_addrs(text)?
                        .next()
                        .ok_or_else(|| std::io::Error::other("no address"))?;
                    TcpStream::connect_timeout(&address, Duration::from_secs(10))
                });
            match stream {
                Ok(stream) => {
                    let mut d = shared.lock();
                    shared.attach(&mut d, connection, stream);
                    d.core.handle_connected(connection, Instant::now());
                    shared.dispatch(&mut d);
                }
                Err(error) => shared.input(|core, now| {
                    core.handle_connect_failed(connection, &error.to_string(), now);
                }),
            }
        });
    }

    /// Starts the reader and writer threads of a connected stream. Called under the
    /// lock, before the core's outputs for it are carried out.
    fn attach(self: &Arc<Self>, d: &mut Driver, connection: ConnectionId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let gate = Arc::new(Gate::default());
        d.writers.insert(connection, tx);
        d.gates.insert(connection, gate.clone());
        let (Ok(mut reader), mut writer) = (stream.try_clone(), stream) else {
            d.core.handle_connection_closed(
                connection,
                Some("cannot clone socket"),
                Instant::now(),
            );
            return;
        };
        let shared = self.clone();
        thread::spawn(move || {
            for bytes in rx {
                let len = bytes.len();
                if let Err(error) = writer.write_all(&bytes) {
                    let reason = error.to_string();
                    shared.input(|core, now| {
                        core.handle_connection_closed(connection, Some(&reason), now);
                    });
                    break;
                }
                shared.input(|core, now| core.handle_written(connection, len, now));
            }
            let _ = writer.shutdown(Shutdown::Both);
        });
        let shared = self.clone();
        thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            loop {
                gate.wait_open();
                match reader.read(&mut buf) {
                    Ok(0) => {
                        shared.input(|core, now| core.handle_read_closed(connection, now));
                        return;
                    }
                    Ok(n) => {
                        let bytes = &buf[..n];
                        shared.input(|core, now| core.handle_received(connection, bytes, now));
                    }
                    Err(error) => {
                        let reason = error.to_string();
                        shared.input(|core, now| {
                            core.handle_connection_closed(connection, Some(&reason), now);
                        });
                        return;
                    }
                }
            }
        });
    }

    /// Calls `handle_timeout` whenever the core's deadline comes.
    fn run_timer(self: &Arc<Self>) {
        let mut d = self.lock();
        loop {
            let now = Instant::now();
            d = match d.core.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    d.core.handle_timeout(now);
                    self.dispatch(&mut d);
                    d
                }
                Some(deadline) => {
                    let wait = deadline - now;
                    self.changed
                        .wait_timeout(d, wait)
                        .map(|(d, _)| d)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
                None => self.changed.wait(d).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_owned());
    let count: Option<usize> = args.next().map(|c| c.parse()).transpose()?;

    let now = Instant::now();
    let mut core = NodeCore::new(NodeConfig::default(), Box::new(SystemRandom::new()));
    let identity = Identity::generate()?;
    println!("responder: identity {}", identity.identifier());
    core.create_channel_listener(
        Address::local("secure"),
        Arc::new(identity),
        Arc::new(TrustEveryone),
        ChannelConfig::default(),
        ChannelRules::new(),
        now,
    )?;
    // Messages only through secure channels (the default of the async API too).
    core.register(Address::local("echoer"), Access::secure_channels(), now)?;

    let listener = TcpListener::bind(&address)?;
    println!("responder: listening on {}", listener.local_addr()?);
    let shared = Arc::new(Shared {
        driver: Mutex::new(Driver {
            core,
            writers: BTreeMap::new(),
            gates: BTreeMap::new(),
            echoed: 0,
        }),
        changed: Condvar::new(),
    });
    let timer = shared.clone();
    thread::spawn(move || timer.run_timer());
    let acceptor = shared.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let mut d = acceptor.lock();
            let connection = d.core.handle_incoming_connection(peer, Instant::now());
            acceptor.attach(&mut d, connection, stream);
            acceptor.dispatch(&mut d);
        }
    });

    // Until COUNT messages are echoed and every reply is written.
    let mut d = shared.lock();
    loop {
        let written = d
            .writers
            .keys()
            .all(|c| d.core.connection_backlog(*c).unwrap_or(0) == 0);
        if count.is_some_and(|count| d.echoed >= count) && written {
            break;
        }
        d = shared.changed.wait(d).unwrap_or_else(|p| p.into_inner());
    }
    println!("responder: echoed {} messages, stopping", d.echoed);
    Ok(())
}
