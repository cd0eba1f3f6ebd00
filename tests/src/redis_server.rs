//! A real `redis-server` for the broker tests: started on a free loopback port with no
//! persistence, stopped when dropped.
//!
//! Where `redis-server` is not installed the broker tests do not run, and say so on
//! the terminal (not in captured test output). With `ONWARD_REQUIRE_REDIS=1` (CI sets
//! it, after installing the package) a missing server fails them instead.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Once;
use std::time::Duration;

/// How long the server may take to say it is ready.
const READY: Duration = Duration::from_secs(20);

/// A running `redis-server`.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server, or returns `None` if `redis-server` is not installed and not
    /// required.
    ///
    /// # Panics
    ///
    /// If it is required and missing, or it does not start.
    pub fn start() -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                std::env::var_os("ONWARD_REQUIRE_REDIS").is_none(),
                "ONWARD_REQUIRE_REDIS is set and redis-server is not installed"
            );
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Straight to the terminal: libtest captures only the print macros.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTE: redis-server is not installed: the Redis broker tests were NOT run \
                     (install it, e.g. `apt-get install redis-server`; CI does, and sets \
                     ONWARD_REQUIRE_REDIS=1 to make them mandatory)\n"
                );
            });
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("onward-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("server directory");
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let stdout = child.stdout.take().expect("its output");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections") {
                    let _ = tx.send(());
                }
            }
        });
        let server = Self { child, port, dir };
        rx.recv_timeout(READY)
            .expect("redis-server ready to accept connections");
        Some(server)
    }

    /// Its URL, for clients.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain (blocking) client connection, for a test to read the streams itself.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a client connection")
    }

    /// Stops the server now (as a crash would: no shutdown command).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
