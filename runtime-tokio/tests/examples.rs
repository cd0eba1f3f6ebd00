//! The guide's examples, run as a user runs them: each test starts the compiled example
//! programs as processes, the responder and middle nodes on free ports, and asserts
//! what they print and how they exit.
//!
//! `cargo test` builds the examples along with the tests, into `target/<profile>/examples`
//! beside this test's own `deps` directory; that is where they are found. Running this
//! file alone (`--test examples`) does not rebuild them: build them first with
//! `cargo build -p onward-tokio --examples`.
//!
//! Nothing here sleeps: a test waits for the line it needs (a responder's "listening
//! on", an initiator's exit), and every wait gives up after [`WAIT`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest any single wait may take: generous, as the machine running the tests
/// may be busy compiling.
const WAIT: Duration = Duration::from_secs(60);

/// Where `cargo test` put the example called `name`.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // The test runs from target/<profile>/deps/; examples are in target/<profile>/examples/.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example {name} not found at {}: run `cargo test -p onward-tokio` (which builds the \
         examples) or `cargo build -p onward-tokio --examples` first",
        path.display()
    );
    path
}

/// An example program running as a child process, its stdout read line by line.
struct Program {
    name: String,
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    output: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

/// How a program ended.
struct Finished {
    status: ExitStatus,
    output: Vec<String>,
    stderr: String,
}

impl Finished {
    /// Asserts that `line` was printed, exactly.
    fn assert_line(&self, line: &str) {
        assert!(
            self.output.iter().any(|l| l == line),
            "expected the line {line:?} in:\n{}",
            self.output.join("\n")
        );
    }

    /// The first line starting with `prefix`, with the prefix taken off.
    fn after(&self, prefix: &str) -> &str {
        self.output
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "expected a line starting {prefix:?} in:\n{}",
                    self.output.join("\n")
                )
            })
    }

    /// How many lines start with `prefix`.
    fn count(&self, prefix: &str) -> usize {
        self.output.iter().filter(|l| l.starts_with(prefix)).count()
    }

    fn assert_success(&self, name: &str) {
        assert!(
            self.status.success(),
            "{name} exited with {}; stdout:\n{}\nstderr:\n{}",
            self.status,
            self.output.join("\n"),
            self.stderr
        );
    }
}

impl Program {
    fn start(name: &str, args: &[&str]) -> Program {
        let mut child = Command::new(example_path(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Program {
            name: name.to_string(),
            child,
            lines,
            output: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits for a line starting with `prefix` and returns the rest of it.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no line starting {prefix:?} within {WAIT:?}; stdout so far:\n{}",
                    self.name,
                    self.output.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let finished = self.finish();
                    panic!(
                        "{} ended ({}) without a line starting {prefix:?}; stdout:\n{}\nstderr:\n{}",
                        self.name,
                        finished.status,
                        finished.output.join("\n"),
                        finished.stderr
                    )
                }
            }
        }
    }

    /// Waits for the "listening on ADDRESS" line and returns the address.
    fn listening_address(&mut self, role: &str) -> String {
        self.wait_for(&format!("{role}: listening on "))
    }

    /// Waits for the program to end: its stdout closes, then it is reaped.
    fn finish(&mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.output.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} did not end within {WAIT:?}; stdout so far:\n{}",
                    self.name,
                    self.output.join("\n")
                ),
            }
        }
        let status = self.child.wait().expect("reap the child");
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            output: self.output.clone(),
            stderr,
        }
    }

    /// Presses Ctrl-C: sends SIGINT, as the terminal would.
    #[cfg(unix)]
    fn interrupt(&mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {} failed", self.child.id());
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // Ends a program a failed test left running; a finished one is already reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a single-process example to its end and checks it succeeded.
fn run(name: &str, args: &[&str]) -> Finished {
    let finished = Program::start(name, args).finish();
    finished.assert_success(name);
    finished
}

/// A directory of its own for a test's key files, empty.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onward-examples-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn step_01_node_starts_and_stops() {
    let run = run("01-node", &[]);
    assert_eq!(run.output, ["node: started", "node: stopped"]);
}

#[test]
fn step_02_worker_echoes() {
    let run = run("02-worker", &[]);
    assert_eq!(
        run.output,
        [
            "app: sending \"Hello\" to echoer",
            "echoer: received \"Hello\", replying along [0#app]",
            "app: received \"Hello\", return route [0#echoer]",
        ]
    );
}

#[test]
fn step_03_routing_reply_retraces_the_hop() {
    let run = run("03-routing", &[]);
    assert_eq!(
        run.output,
        [
            "app: sending \"Hello\" along [0#h1 => 0#echoer]",
            "0#h1: onward route [0#h1 => 0#echoer], return route [0#app]",
            "echoer: received \"Hello\", replying along [0#h1 => 0#app]",
            "0#h1: onward route [0#h1 => 0#app], return route [0#echoer]",
            "app: received \"Hello\", return route [0#h1 => 0#echoer]",
        ]
    );
}

#[test]
fn step_04_many_hops_there_and_back() {
    let run = run("04-many-hops", &[]);
    assert_eq!(
        run.output,
        [
            "app: sending \"Hello\" along [0#h1 => 0#h2 => 0#h3 => 0#echoer]",
            "0#h1: onward route [0#h1 => 0#h2 => 0#h3 => 0#echoer], return route [0#app]",
            "0#h2: onward route [0#h2 => 0#h3 => 0#echoer], return route [0#h1 => 0#app]",
            "0#h3: onward route [0#h3 => 0#echoer], return route [0#h2 => 0#h1 => 0#app]",
            "echoer: received \"Hello\", replying along [0#h3 => 0#h2 => 0#h1 => 0#app]",
            "0#h3: onward route [0#h3 => 0#h2 => 0#h1 => 0#app], return route [0#echoer]",
            "0#h2: onward route [0#h2 => 0#h1 => 0#app], return route [0#h3 => 0#echoer]",
            "0#h1: onward route [0#h1 => 0#app], return route [0#h2 => 0#h3 => 0#echoer]",
            "app: received \"Hello\", return route [0#h1 => 0#h2 => 0#h3 => 0#echoer]",
        ]
    );
}

/// Checks the lines steps 05 and 06 share: both sides verified the other's identity
/// and the reply came back through the channel.
fn assert_channel_in_one_node(run: &Finished) {
    let responder = run.after("responder identity: ");
    let initiator = run.after("initiator identity: ");
    assert_ne!(responder, initiator);
    let established = run.after("app: secure channel established at ");
    let (channel, peer) = established
        .split_once(", peer verified as ")
        .expect("the channel's address and peer");
    assert_eq!(peer, responder, "the initiator verified the responder");
    run.assert_line(&format!(
        "echoer: received \"Hello\" through a secure channel from {initiator}"
    ));
    run.assert_line(&format!(
        "app: received \"Hello\", return route [{channel} => 0#echoer]"
    ));
}

#[test]
fn step_05_secure_channel_in_one_node() {
    let run = run("05-secure-channel", &[]);
    assert_channel_in_one_node(&run);
}

#[test]
fn step_06_secure_channel_over_hops_that_cannot_read_it() {
    let run = run("06-secure-channel-many-hops", &[]);
    assert_channel_in_one_node(&run);
    // Each hop carried the handshake (hello, response, finish, confirmation) and the
    // message and its reply: six records at least, none of which it could read.
    for hop in ["0#h1", "0#h2", "0#h3"] {
        let forwarded = run.count(&format!("{hop}: forwarding "));
        assert!(forwarded >= 6, "{hop} forwarded {forwarded} records");
    }
    assert!(
        run.output
            .iter()
            .filter(|l| l.starts_with("0#h"))
            .all(|l| !l.contains("Hello")),
        "a hop saw the message"
    );
}

#[test]
fn step_07_routing_over_tcp() {
    let mut responder =
        Program::start("07-routing-over-transport-responder", &["127.0.0.1:0", "1"]);
    let address = responder.listening_address("responder");

    let initiator = run("07-routing-over-transport-initiator", &[&address]);
    initiator.assert_line(&format!(
        "initiator: sending \"Hello\" along [1#{address} => 0#echoer]"
    ));
    // The reply came back over the connection: its alias, then the echoer.
    let back = initiator.after("initiator: received \"Hello\", return route [");
    assert!(
        back.starts_with("0#") && back.ends_with(" => 0#echoer]"),
        "{back}"
    );

    let responder = responder.finish();
    responder.assert_success("07-routing-over-transport-responder");
    let seen = responder.after("echoer: received \"Hello\", replying along [");
    assert!(
        seen.starts_with("0#") && seen.ends_with(" => 0#app]"),
        "{seen}"
    );
    responder.assert_line("responder: echoed 1 messages, stopping");
}

#[test]
fn step_08_through_a_middle_node_with_no_code() {
    let mut responder = Program::start("08-many-transport-hops-responder", &["127.0.0.1:0", "1"]);
    let b = responder.listening_address("responder");
    let mut middle = Program::start("08-many-transport-hops-middle", &["127.0.0.1:0"]);
    let m = middle.listening_address("middle");

    let initiator = run("08-many-transport-hops-initiator", &[&m, &b]);
    initiator.assert_line(&format!(
        "initiator: sending \"Hello\" along [1#{m} => 1#{b} => 0#echoer]"
    ));
    // Back over two connections: two aliases, then the echoer.
    let back = initiator.after("initiator: received \"Hello\", return route [");
    assert_eq!(back.matches(" => ").count(), 2, "{back}");
    assert!(back.ends_with(" => 0#echoer]"), "{back}");

    let responder = responder.finish();
    responder.assert_success("08-many-transport-hops-responder");
    let seen = responder.after("echoer: received \"Hello\", replying along [");
    assert_eq!(seen.matches(" => ").count(), 2, "{seen}");
    assert!(seen.ends_with(" => 0#app]"), "{seen}");

    #[cfg(unix)]
    {
        middle.interrupt();
        let middle = middle.finish();
        middle.assert_success("08-many-transport-hops-middle");
        // The request and the reply.
        middle.assert_line("middle: interrupted after routing 2 messages, stopping");
    }
}

#[test]
fn step_09_secure_channel_through_a_middle_node() {
    let mut responder = Program::start(
        "09-secure-channel-many-transport-hops-responder",
        &["127.0.0.1:0", "1"],
    );
    let responder_id = responder.wait_for("responder: identity ");
    let b = responder.listening_address("responder");
    let mut middle = Program::start(
        "09-secure-channel-many-transport-hops-middle",
        &["127.0.0.1:0"],
    );
    let m = middle.listening_address("middle");

    let initiator = run("09-secure-channel-many-transport-hops-initiator", &[&m, &b]);
    let initiator_id = initiator.after("initiator: identity ");
    let established = initiator.after("initiator: secure channel established at ");
    let (channel, peer) = established
        .split_once(", responder verified as ")
        .expect("the channel's address and peer");
    assert_eq!(peer, responder_id);
    initiator.assert_line(&format!(
        "initiator: received \"Hello\", return route [{channel} => 0#echoer]"
    ));

    let responder = responder.finish();
    responder.assert_success("09-secure-channel-many-transport-hops-responder");
    responder.assert_line(&format!(
        "echoer: received \"Hello\" through a secure channel from {initiator_id}"
    ));

    #[cfg(unix)]
    {
        middle.interrupt();
        let middle = middle.finish();
        middle.assert_success("09-secure-channel-many-transport-hops-middle");
        // Four handshake records, the message and the reply, perhaps the close.
        let routed: usize = middle
            .after("middle: interrupted after routing ")
            .trim_end_matches(" messages, stopping")
            .parse()
            .unwrap();
        assert!(routed >= 6, "the middle node routed {routed} messages");
    }
}

#[test]
fn step_10_identities_persist_and_trust_is_enforced() {
    let dir = scratch_dir("step10");
    let responder_key = dir.join("responder.key");
    let initiator_key = dir.join("initiator.key");
    let (responder_key, initiator_key) = (
        responder_key.to_str().unwrap(),
        initiator_key.to_str().unwrap(),
    );

    let mut responder = Program::start(
        "10-secure-channel-with-identities-responder",
        &["127.0.0.1:0", responder_key, "2"],
    );
    let responder_id = responder.wait_for("responder: identifier ");
    let b = responder.listening_address("responder");

    // First run: the initiator generates its identity and trusts only the responder.
    let first = run(
        "10-secure-channel-with-identities-initiator",
        &[&responder_id, &b, initiator_key],
    );
    let initiator_id = first.after("initiator: identifier ").to_string();
    first.assert_line(&format!(
        "initiator: generated identity {initiator_id}, saved to {initiator_key}"
    ));
    first.assert_line(&format!(
        "initiator: secure channel established, responder verified as {responder_id}"
    ));
    first.assert_line("initiator: received \"Hello\"");

    // Told to trust someone else, the initiator refuses the responder and says why.
    let stranger = format!("I{}", "0".repeat(64));
    let refused = Program::start(
        "10-secure-channel-with-identities-initiator",
        &[&stranger, &b, initiator_key],
    )
    .finish();
    assert!(!refused.status.success(), "{}", refused.output.join("\n"));
    assert!(
        refused.stderr.to_lowercase().contains("trusted") && refused.stderr.contains(&responder_id),
        "the error should name the untrusted responder: {}",
        refused.stderr
    );
    assert_eq!(refused.count("initiator: secure channel established"), 0);

    // Second run: the same identity, loaded from its key file.
    let second = run(
        "10-secure-channel-with-identities-initiator",
        &[&responder_id, &b, initiator_key],
    );
    second.assert_line(&format!(
        "initiator: loaded identity {initiator_id} from {initiator_key}"
    ));
    second.assert_line("initiator: received \"Hello\"");

    let finished = responder.finish();
    finished.assert_success("10-secure-channel-with-identities-responder");
    finished.assert_line(&format!(
        "responder: generated identity {responder_id}, saved to {responder_key}"
    ));
    assert_eq!(
        finished.count(&format!("responder: trust policy accepts {initiator_id}")),
        2
    );
    assert_eq!(
        finished.count(&format!(
            "echoer: received \"Hello\" through a secure channel from {initiator_id}"
        )),
        2
    );
    finished.assert_line("responder: echoed 2 messages, stopping");

    // The responder comes back with the identity it saved (and echoes nothing: 0).
    let again = run(
        "10-secure-channel-with-identities-responder",
        &["127.0.0.1:0", responder_key, "0"],
    );
    again.assert_line(&format!(
        "responder: loaded identity {responder_id} from {responder_key}"
    ));

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_middle_node_sees_only_ciphertext() {
    let run = run("demo", &[]);
    let b_line = run.after("B: listening on ");
    let (_, b_id) = b_line.split_once(", identity ").expect("B's identity");
    let a_id = run.after("A: identity ");
    run.assert_line(&format!(
        "A: secure channel established, B verified as {b_id}"
    ));
    run.assert_line(&format!("A verified B as {b_id}"));
    run.assert_line(&format!("B verified A as {a_id}"));
    let secret = "Hello B, this is A: the vault code is 4711";
    run.assert_line(&format!(
        "B: echoer received \"{secret}\" through a secure channel from {a_id}"
    ));
    run.assert_line(&format!("A: received \"{secret}\""));
    // The tap printed frames both ways, and none of them held the message.
    assert!(run.count("M received from A: ") >= 3);
    assert!(run.count("M sent to A: ") >= 3);
    assert!(run
        .output
        .iter()
        .filter(|l| l.starts_with("M "))
        .all(|l| !l.contains("vault")));
    assert!(run
        .after("M routed ")
        .ends_with("the plaintext appears in them: no"));
    run.assert_line("demo: done");
}
