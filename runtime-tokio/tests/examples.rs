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

use onward_tokio::protocol::framing::{encode_frame, PREAMBLE};
use onward_tokio::{route, Address, Identity, Route, TransportMessage};

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
        Self::start_with_env(name, args, &[])
    }

    /// As [`start`](Self::start), with environment variables set.
    fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Program {
        let mut child = Command::new(example_path(name))
            .args(args)
            .envs(env.iter().copied())
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

/// A route as the examples print it, `[0#a => 1#b:1]`, parsed back.
fn parse_route(text: &str) -> Route {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a route: {text}"));
    if inner.is_empty() {
        return Route::new();
    }
    inner
        .split(" => ")
        .map(|a| {
            a.parse::<Address>()
                .unwrap_or_else(|e| panic!("{a} in {text}: {e}"))
        })
        .collect()
}

/// The CBOR text string holding `text` (a body of type `String`, docs/PROTOCOL.md §3).
fn cbor_text(text: &str) -> Vec<u8> {
    let len = u8::try_from(text.len()).expect("a short text");
    let mut out = if len < 24 {
        vec![0x60 | len]
    } else {
        vec![0x78, len]
    };
    out.extend_from_slice(text.as_bytes());
    out
}

/// Sends `count` plain frames to `worker` on the node listening at `address`, as a
/// hostile TCP client would, then closes its side and waits until the node has read
/// them all and closed its own.
fn send_plain_frames(address: &str, worker: &str, count: usize) {
    let mut bytes = PREAMBLE.to_vec();
    for i in 0..count {
        let message = TransportMessage::new(
            route![worker],
            route!["attacker"],
            cbor_text(&format!("plain {i}")),
        );
        encode_frame(&message.to_bytes().unwrap(), u32::MAX, &mut bytes).unwrap();
    }
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    std::io::Write::write_all(&mut stream, &bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    // The node's preamble, and not one echo: only reports of the refusals.
    let mut decoder = onward_tokio::protocol::framing::FrameDecoder::new(u32::MAX);
    decoder.handle_bytes(&answer).unwrap();
    let mut reports = 0;
    while let Some(frame) = decoder.poll_frame() {
        let message = TransportMessage::decode(&frame).unwrap();
        assert!(
            onward_tokio::protocol::report::is_report(&message),
            "an echo came back"
        );
        let report = onward_tokio::protocol::report::Report::decode(&message.payload).unwrap();
        assert_eq!(
            report.code,
            onward_tokio::protocol::report::ReportCode::Refused
        );
        reports += 1;
    }
    assert!(reports <= count);
}

/// The length of the channel transport record that carries `inner` (docs/PROTOCOL.md
/// §8): kind and counter (9 bytes), then the sealed plaintext (a type byte and the
/// inner message) and its 16-byte tag.
fn record_len(inner: &TransportMessage) -> usize {
    9 + 1 + inner.encoded_len() + 16
}

/// A line of step 06's hops, `0#h1: forwarding N bytes the hop cannot read, onward
/// route R`, as (hop, N, R).
fn forwarding(line: &str) -> Option<(&str, usize, &str)> {
    let (hop, rest) = line.split_once(": forwarding ")?;
    let (len, route) = rest.split_once(" bytes the hop cannot read, onward route ")?;
    Some((hop, len.parse().ok()?, route))
}

/// The hop lines forwarding `len` bytes printed after the line `after` and before the
/// first line after it that starts with `before`, as (hop, onward route).
fn forwarded_between<'a>(
    run: &'a Finished,
    after: &str,
    before: &str,
    len: usize,
) -> Vec<(&'a str, &'a str)> {
    let lines = &run.output;
    let start = lines
        .iter()
        .position(|l| l == after)
        .unwrap_or_else(|| panic!("no line {after:?} in:\n{}", lines.join("\n")));
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.starts_with(before))
            .unwrap_or_else(|| panic!("no line {before:?} after {after:?}"));
    lines[start + 1..end]
        .iter()
        .filter_map(|l| forwarding(l))
        .filter(|(_, n, _)| *n == len)
        .map(|(hop, _, route)| (hop, route))
        .collect()
}

/// The last address of the route forwarded by the first line of `hop` forwarding `len`
/// bytes: where that record was going.
fn destination_of(run: &Finished, hop: &str, len: usize) -> String {
    run.output
        .iter()
        .filter_map(|l| forwarding(l))
        .find(|(h, n, _)| *h == hop && *n == len)
        .and_then(|(_, _, route)| parse_route(route).last().map(ToString::to_string))
        .unwrap_or_else(|| panic!("{hop} forwarded no record of {len} bytes"))
}

/// A frame the demo's tap printed: `M received from A: onward R, return R, payload N
/// bytes HEX...` (or `M sent to A: ...`), HEX being the payload's first 12 bytes.
struct TapFrame {
    /// The index of the line that printed it.
    line: usize,
    from_a: bool,
    onward: Route,
    back: Route,
    payload_len: usize,
    payload_head: Vec<u8>,
}

impl TapFrame {
    fn parse(line: usize, text: &str) -> Option<TapFrame> {
        let (from_a, rest) = if let Some(rest) = text.strip_prefix("M received from A: ") {
            (true, rest)
        } else {
            (false, text.strip_prefix("M sent to A: ")?)
        };
        let rest = rest.strip_prefix("onward ")?;
        let (onward, rest) = rest.split_once(", return ")?;
        let (back, rest) = rest.split_once(", payload ")?;
        let (len, rest) = rest.split_once(" bytes ")?;
        let hex = rest.strip_suffix("...")?;
        let payload_head = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        Some(TapFrame {
            line,
            from_a,
            onward: parse_route(onward),
            back: parse_route(back),
            payload_len: len.parse().ok()?,
            payload_head,
        })
    }

    /// The frame's length on the wire: its length prefix and the message.
    fn wire_len(&self) -> usize {
        let message = TransportMessage::new(
            self.onward.clone(),
            self.back.clone(),
            vec![0; self.payload_len],
        );
        4 + message.encoded_len()
    }
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
    // The hops forwarded the message itself, in a record of the length that carries
    // it: h1, h2 then h3 after the app sent it and before the echoer had it, along the
    // route the finish took to the responder's end; and the reply back, h3, h2 then
    // h1, along the route the response took to the initiator's end. (The hops print
    // no content, so what they could read is the demo's test, on real bytes.)
    let hello = cbor_text("Hello");
    let message = record_len(&TransportMessage::new(
        route!["echoer"],
        route!["app"],
        hello.clone(),
    ));
    let reply = record_len(&TransportMessage::new(
        route!["app"],
        route!["echoer"],
        hello,
    ));
    // Handshake records have fixed lengths (docs/PROTOCOL.md §8).
    let (response, finish) = (193, 161);
    let responder_end = destination_of(&run, "0#h3", finish);
    let initiator_end = destination_of(&run, "0#h1", response);
    assert_ne!(
        responder_end, "0#secure",
        "records go to the end, not the listener"
    );
    assert_eq!(
        forwarded_between(
            &run,
            "app: sending \"Hello\" through the channel to echoer",
            "echoer: received \"Hello\"",
            message
        ),
        [
            (
                "0#h1",
                &*format!("[0#h1 => 0#h2 => 0#h3 => {responder_end}]")
            ),
            ("0#h2", &*format!("[0#h2 => 0#h3 => {responder_end}]")),
            ("0#h3", &*format!("[0#h3 => {responder_end}]")),
        ]
    );
    assert_eq!(
        forwarded_between(
            &run,
            &format!(
                "echoer: received \"Hello\" through a secure channel from {}",
                run.after("initiator identity: ")
            ),
            "app: received \"Hello\"",
            reply
        ),
        [
            (
                "0#h3",
                &*format!("[0#h3 => 0#h2 => 0#h1 => {initiator_end}]")
            ),
            ("0#h2", &*format!("[0#h2 => 0#h1 => {initiator_end}]")),
            ("0#h1", &*format!("[0#h1 => {initiator_end}]")),
        ]
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

/// Runs step 09's initiator through the middle node at `m` to the responder at `b`,
/// checks that it verified `responder_id` and got the echo back through its channel,
/// and returns its own identifier.
fn step_09_initiator(m: &str, b: &str, responder_id: &str) -> String {
    let initiator = run("09-secure-channel-many-transport-hops-initiator", &[m, b]);
    let initiator_id = initiator.after("initiator: identity ").to_owned();
    let established = initiator.after("initiator: secure channel established at ");
    let (channel, peer) = established
        .split_once(", responder verified as ")
        .expect("the channel's address and peer");
    assert_eq!(peer, responder_id);
    initiator.assert_line(&format!(
        "initiator: received \"Hello\", return route [{channel} => 0#echoer]"
    ));
    initiator_id
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

    // The echoer takes messages only through secure channels: plain frames sent to it
    // over TCP are refused, and none is echoed.
    send_plain_frames(&b, "echoer", 200);

    let initiator_id = step_09_initiator(&m, &b, &responder_id);

    let responder = responder.finish();
    responder.assert_success("09-secure-channel-many-transport-hops-responder");
    responder.assert_line("responder: refused 200 messages");
    assert!(!responder
        .output
        .iter()
        .any(|l| l.contains("outside any secure channel")));
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

/// A custom stack answers the tokio examples: the responder of step 09 is
/// `onward-protocol`'s `blocking-responder` example, the node core driven by blocking
/// std sockets and threads, and the tokio initiator reaches it through the tokio
/// middle node. (`cargo test --workspace` builds it; alone, `cargo build -p
/// onward-protocol --examples` first.)
#[test]
fn a_blocking_custom_stack_answers_step_09_through_the_tokio_middle_node() {
    let mut responder = Program::start("blocking-responder", &["127.0.0.1:0", "1"]);
    let responder_id = responder.wait_for("responder: identity ");
    let b = responder.listening_address("responder");
    let mut middle = Program::start(
        "09-secure-channel-many-transport-hops-middle",
        &["127.0.0.1:0"],
    );
    let m = middle.listening_address("middle");

    let initiator_id = step_09_initiator(&m, &b, &responder_id);

    let responder = responder.finish();
    responder.assert_success("blocking-responder");
    responder.assert_line(&format!(
        "echoer: received \"Hello\" through a secure channel from {initiator_id}"
    ));
    responder.assert_line("responder: echoed 1 messages, stopping");
    drop(middle);
}

/// The relay examples: a hidden responder with no listener registers with the relay,
/// and the initiator reaches it through the relay's name for it.
#[test]
fn relay_examples_reach_a_node_without_a_listener() {
    let mut relay = Program::start("relay", &["127.0.0.1:0"]);
    let relay_id = relay.wait_for("relay: identity ");
    let r = relay.listening_address("relay");
    let mut hidden = Program::start("relay-hidden-responder", &[&relay_id, &r, "1"]);
    let hidden_id = hidden.wait_for("hidden: identity ");
    let registered = hidden.wait_for("hidden: registered, reachable at ");
    assert_eq!(registered, format!("0#relay/alice on {r}"));

    let initiator = run("relay-initiator", &[&hidden_id, &r]);
    initiator.assert_success("relay-initiator");
    let established = initiator.after("initiator: secure channel established at ");
    assert!(established.ends_with(&format!(", hidden node verified as {hidden_id}")));
    initiator.assert_line("initiator: received \"Hello\"");

    let hidden = hidden.finish();
    hidden.assert_success("relay-hidden-responder");
    hidden.assert_line("hidden: echoed 1 messages, stopping");
    #[cfg(unix)]
    {
        relay.interrupt();
        let relay = relay.finish();
        relay.assert_success("relay");
        relay.assert_line(&format!(
            "relay: 0#relay/alice registered by {hidden_id}, connected: false"
        ));
    }
}

#[test]
fn step_10_identities_persist_and_trust_is_enforced() {
    let dir = scratch_dir("step10");
    let responder_key = dir.join("responder.key");
    let initiator_key = dir.join("initiator.key");
    let stranger_key = dir.join("stranger.key");
    // The initiator's identity exists before the responder starts, which is told to
    // trust only it.
    let initiator_id = {
        let identity = Identity::generate().unwrap();
        identity.save(&initiator_key).unwrap();
        identity.identifier().to_string()
    };
    let (responder_key, initiator_key, stranger_key) = (
        responder_key.to_str().unwrap(),
        initiator_key.to_str().unwrap(),
        stranger_key.to_str().unwrap(),
    );

    // With `RUST_LOG=debug`, it says on stderr what its node does, refusals included.
    let mut responder = Program::start_with_env(
        "10-secure-channel-with-identities-responder",
        &["127.0.0.1:0", responder_key, "2", &initiator_id],
        &[("RUST_LOG", "debug")],
    );
    let responder_id = responder.wait_for("responder: identifier ");
    let b = responder.listening_address("responder");

    // Plain frames to the echoer are refused: it takes only the trusted channel.
    send_plain_frames(&b, "echoer", 200);

    // First run: the initiator loads its identity and trusts only the responder.
    let first = run(
        "10-secure-channel-with-identities-initiator",
        &[&responder_id, &b, initiator_key],
    );
    first.assert_line(&format!(
        "initiator: loaded identity {initiator_id} from {initiator_key}"
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
        refused
            .stderr
            .contains("10-secure-channel-with-identities-initiator: error: secure channel")
            && refused.stderr.contains(&format!(
                "peer identity {responder_id} is not trusted by the policy"
            )),
        "the error should name the untrusted responder, as a sentence: {}",
        refused.stderr
    );
    assert_eq!(refused.count("initiator: secure channel established"), 0);

    // An initiator with another identity is refused by the responder's policy.
    let outsider = Program::start(
        "10-secure-channel-with-identities-initiator",
        &[&responder_id, &b, stranger_key],
    )
    .finish();
    assert!(!outsider.status.success(), "{}", outsider.output.join("\n"));
    let outsider_id = outsider.after("initiator: identifier ").to_string();
    outsider.assert_line(&format!(
        "initiator: generated identity {outsider_id}, saved to {stranger_key}"
    ));
    assert_eq!(outsider.count("initiator: secure channel established"), 0);

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
    finished.assert_line(&format!("responder: trust policy refuses {outsider_id}"));
    assert!(
        finished.stderr.lines().any(|l| l.contains("DEBUG")
            && l.contains("secure channel failed")
            && l.contains(&format!("peer identity {outsider_id} is not trusted"))),
        "RUST_LOG=debug shows why the handshake was refused:\n{}",
        finished.stderr
    );
    assert_eq!(
        finished.count(&format!(
            "echoer: received \"Hello\" through a secure channel from {initiator_id}"
        )),
        2
    );
    assert!(!finished
        .output
        .iter()
        .any(|l| l.contains("outside any secure channel")));
    finished.assert_line("responder: echoed 2 messages, stopping");
    finished.assert_line("responder: refused 200 messages");

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
    // The tap printed frames both ways.
    let frames: Vec<TapFrame> = run
        .output
        .iter()
        .enumerate()
        .filter_map(|(i, l)| TapFrame::parse(i, l))
        .collect();
    assert!(frames.iter().filter(|f| f.from_a).count() >= 3);
    assert!(frames.iter().filter(|f| !f.from_a).count() >= 3);
    // The message crossed M both ways, each time in a transport record (kind 4) of the
    // length that carries it.
    let body = cbor_text(secret);
    let there = record_len(&TransportMessage::new(
        route!["echoer"],
        route!["app"],
        body.clone(),
    ));
    let back = record_len(&TransportMessage::new(
        route!["app"],
        route!["echoer"],
        body,
    ));
    for (from_a, len) in [(true, there), (false, back)] {
        assert!(
            frames.iter().any(|f| f.from_a == from_a
                && f.payload_len == len
                && f.payload_head.first() == Some(&0x04)),
            "no record of {len} bytes {} A",
            if from_a { "from" } else { "to" }
        );
    }
    // The bytes the tap printed of each frame hold no four bytes in a row of the
    // message, and no transport record goes on after its 9-byte header as a plaintext
    // message record would: type 0 (a message), array(4), version 1.
    for f in &frames {
        assert!(
            !f.payload_head
                .windows(4)
                .any(|w| secret.as_bytes().windows(4).any(|s| s == w)),
            "{}",
            run.output[f.line]
        );
        if f.payload_head.first() == Some(&0x04) {
            assert_ne!(
                f.payload_head.get(9..12),
                Some(&[0x00, 0x84, 0x01][..]),
                "{}",
                run.output[f.line]
            );
        }
    }
    // The demo looked for the whole message in every byte M carried with A, and found
    // it in none. Those bytes include both preambles and every frame the tap printed
    // before A had the reply, the records carrying the message among them.
    let (counted, leaked) = run
        .after("M routed ")
        .split_once(" bytes on its connection with A; the plaintext appears in them: ")
        .expect("the demo's count of M's bytes");
    assert_eq!(leaked, "no");
    let counted: usize = counted
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a byte count");
    let replied = run
        .output
        .iter()
        .position(|l| *l == format!("A: received \"{secret}\""))
        .expect("A's reply");
    let printed: usize = frames
        .iter()
        .filter(|f| f.line < replied)
        .map(TapFrame::wire_len)
        .sum();
    assert!(
        counted >= 2 * 8 + printed,
        "the demo searched {counted} bytes, the frames before the reply alone are {printed}"
    );
    run.assert_line("demo: done");
}

/// Every example answers `--help` with its usage; a bad or missing argument, or one
/// too many, is named in a one-line error, and the program fails.
#[test]
fn examples_answer_help_and_name_bad_arguments() {
    for (name, usage) in [
        ("01-node", ""),
        (
            "07-routing-over-transport-responder",
            "[ADDRESS] [MESSAGES]",
        ),
        (
            "10-secure-channel-with-identities-initiator",
            "RESPONDER_IDENTIFIER [RESPONDER] [KEY_FILE]",
        ),
    ] {
        let help = run(name, &["--help"]);
        help.assert_line(format!("usage: {name} {usage}").trim_end());
    }
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "07-routing-over-transport-responder",
            &["127.0.0.1:0", "lots"],
            "MESSAGES \"lots\" is not valid",
        ),
        (
            "10-secure-channel-with-identities-initiator",
            &[],
            "RESPONDER_IDENTIFIER is missing",
        ),
        (
            "10-secure-channel-with-identities-initiator",
            &["not-an-identifier"],
            "RESPONDER_IDENTIFIER \"not-an-identifier\" is not valid",
        ),
        ("02-worker", &["extra"], "unexpected argument \"extra\""),
    ];
    for (name, args, says) in cases {
        let failed = Program::start(name, args).finish();
        assert!(!failed.status.success(), "{name} {args:?} succeeded");
        let first = failed.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{name}: error: ")) && first.contains(says),
            "{name} {args:?}: expected an error saying {says:?}, got:\n{}",
            failed.stderr
        );
        assert!(
            first.contains("usage: "),
            "the error shows the usage: {first}"
        );
    }
}

/// A real crash: the step 10 responder is killed (SIGKILL: it tells nobody) and
/// started again on the same port with the same key file. A node in this process that
/// holds a channel to the old one gets a named error within 2 s of its next send that
/// reaches the new one, and a new channel works.
#[test]
fn a_killed_and_restarted_responder_is_an_error_within_two_seconds() {
    use onward_tokio::protocol::channel::ChannelError;
    use onward_tokio::{tcp, Error, NodeError, Routed, TrustIdentifier};

    let dir = scratch_dir("killed");
    let key = dir.join("responder.key");
    let key = key.to_str().unwrap();
    let mut responder = Program::start(
        "10-secure-channel-with-identities-responder",
        &["127.0.0.1:0", key, "-"],
    );
    let responder_id: onward_tokio::Identifier = responder
        .wait_for("responder: identifier ")
        .parse()
        .unwrap();
    let address = responder.listening_address("responder");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let node = onward_tokio::Node::start().await.unwrap();
        let me = Identity::generate().unwrap();
        let to_b = || route![tcp(address.as_str()), "secure"];
        let channel = node
            .create_secure_channel(to_b(), &me, TrustIdentifier::new(responder_id))
            .await
            .unwrap();
        let mut ctx = node.context("app").await.unwrap();
        ctx.send(route![channel.address(), "echoer"], "one".to_owned())
            .await
            .unwrap();
        let reply: Routed<String> = ctx.receive().await.unwrap();
        assert_eq!(reply.body(), "one");

        responder.child.kill().unwrap();
        responder.child.wait().unwrap();
        let mut restarted = Program::start(
            "10-secure-channel-with-identities-responder",
            &[address.as_str(), key, "-"],
        );
        assert_eq!(restarted.listening_address("responder"), address);

        // The first send may go into the dead connection (lost without a word, or
        // reported); the next reaches the new process.
        let (error, took) = loop {
            let sent_at = Instant::now();
            ctx.send(route![channel.address(), "echoer"], "two".to_owned())
                .await
                .unwrap();
            match ctx.receive_timeout::<String>(Duration::from_secs(3)).await {
                Err(Error::Node(NodeError::ConnectionClosed { .. }) | Error::Timeout(_)) => {}
                Err(error) => break (error, sent_at.elapsed()),
                Ok(reply) => panic!("a reply through a channel the responder forgot: {reply:?}"),
            }
        };
        println!("killed responder: error {took:?} after the send: {error}");
        assert!(
            matches!(
                &error,
                Error::Node(NodeError::Channel {
                    error: ChannelError::PeerLost { .. },
                    ..
                })
            ),
            "{error}"
        );
        assert!(took < Duration::from_millis(2500), "took {took:?}");

        let channel = node
            .create_secure_channel(to_b(), &me, TrustIdentifier::new(responder_id))
            .await
            .unwrap();
        ctx.send(route![channel.address(), "echoer"], "three".to_owned())
            .await
            .unwrap();
        let reply: Routed<String> = ctx.receive().await.unwrap();
        assert_eq!(reply.body(), "three");
        node.stop().await.unwrap();
        // Dropping the program kills the restarted responder.
        drop(restarted);
    });
}

/// The key-value service in three processes: a server, a middle node and a client
/// whose ten tasks put and get keys through one secure channel, each request with its
/// own reply address; and all three in one process.
#[test]
fn kv_service_in_three_processes_and_in_one() {
    let mut server = Program::start("kv", &["server", "127.0.0.1:0"]);
    let server_id = server.wait_for("kv server: identifier ");
    let server_address = server.listening_address("kv server");
    let mut middle = Program::start("kv", &["middle", "127.0.0.1:0"]);
    let middle_address = middle.listening_address("kv middle");
    let client = run(
        "kv",
        &[
            "client",
            &middle_address,
            &server_address,
            &server_id,
            "10",
            "20",
        ],
    );
    let answered = client.after("kv client: ");
    assert!(
        answered.starts_with("400 requests answered in "),
        "{answered}"
    );

    let demo = run("kv", &["demo"]);
    assert!(demo
        .after("kv client: ")
        .starts_with("1000 requests answered in "));
}
