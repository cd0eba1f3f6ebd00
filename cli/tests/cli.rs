//! The `onward` binary run as a user runs it: processes spawned, their output read,
//! stopped with SIGINT. Each test stays on loopback and ends within seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const ONWARD: &str = env!("CARGO_BIN_EXE_onward");

/// A scratch directory of this test, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("onward-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `onward` with `args` to its end.
fn onward(args: &[&str]) -> Output {
    Command::new(ONWARD)
        .args(args)
        .output()
        .expect("onward runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts `output` ended with `code` and without a panic; returns its standard error.
fn exits(output: &Output, code: i32) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout {:?}, stderr {err}",
        stdout(output)
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A long-running `onward` (a node), its standard output read line by line.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts `onward args` and waits for it to print `ready`.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(ONWARD)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("onward starts");
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut running = Running {
            child,
            lines,
            seen: Vec::new(),
        };
        running.wait_for("ready");
        running
    }

    /// Waits up to 20 s for a line that starts with `prefix`, and returns it.
    fn wait_for(&mut self, prefix: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("no line {prefix:?}: printed {:?}, stderr {err}", self.seen);
                }
            }
        }
    }

    /// The address after `listening on `.
    fn listening(&mut self) -> String {
        self.wait_for("listening on ")["listening on ".len()..].to_owned()
    }

    /// The identifier after `identity `.
    fn identity(&mut self) -> String {
        self.wait_for("identity ")["identity ".len()..].to_owned()
    }

    /// Stops it with SIGINT, as Ctrl-C: it must print `stopped` and exit 0 within 15 s.
    fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.wait_for("stopped");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "did not exit after SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an identity in `dir` as `name`; returns its path and identifier.
fn identity(dir: &Dir, name: &str) -> (String, String) {
    let path = dir.path(name);
    let output = onward(&["identity", "create", "--file", path.to_str().unwrap()]);
    exits(&output, 0);
    (path.to_str().unwrap().to_owned(), stdout(&output))
}

#[test]
fn identities_are_created_shown_and_not_overwritten() {
    let dir = Dir::new("identity");
    let (path, id) = identity(&dir, "a.key");
    assert!(id.starts_with('I') && id.len() == 65, "{id}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let shown = onward(&["identity", "show", "--file", &path]);
    exits(&shown, 0);
    assert_eq!(stdout(&shown), id);
    // The environment names the default file.
    let by_env = Command::new(ONWARD)
        .args(["identity", "show"])
        .env("ONWARD_IDENTITY", &path)
        .output()
        .unwrap();
    assert_eq!(stdout(&by_env), id);

    let again = onward(&["identity", "create", "--file", &path]);
    assert!(exits(&again, 1).contains(&path), "names the file");
    let shown = onward(&["identity", "show", "--file", &path]);
    assert_eq!(stdout(&shown), id, "the identity is still the same");
    let forced = onward(&["identity", "create", "--file", &path, "--force"]);
    exits(&forced, 0);
    assert_ne!(stdout(&forced), id);

    let missing = dir.path("missing.key");
    let err = exits(
        &onward(&["identity", "show", "--file", missing.to_str().unwrap()]),
        1,
    );
    assert!(err.contains("missing.key"), "{err}");
    let garbage = dir.path("garbage.key");
    std::fs::write(&garbage, b"not a key").unwrap();
    let err = exits(
        &onward(&["identity", "show", "--file", garbage.to_str().unwrap()]),
        1,
    );
    assert!(err.contains("garbage.key"), "{err}");
}

#[test]
fn every_command_has_help() {
    for command in [
        &[][..],
        &["identity"],
        &["identity", "create"],
        &["identity", "show"],
        &["node"],
        &["node", "run"],
        &["send"],
        &["relay"],
        &["relay", "create"],
        &["portal"],
        &["portal", "outlet"],
        &["portal", "inlet"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let output = onward(&args);
        exits(&output, 0);
        assert!(stdout(&output).contains("Usage: onward"), "{command:?}");
    }
    // No command at all is a usage error.
    exits(&onward(&[]), 2);
}

#[test]
fn bad_input_is_an_error_by_name_never_a_panic() {
    let dir = Dir::new("bad");
    let usage: &[(&[&str], &str)] = &[
        (&["send", "a//b", "hi"], "an empty hop"),
        (&["send", "300#x", "hi"], "300#x"),
        (
            &[
                "send", "echoer", "hi", "--secure", "secure", "--trust", "Inope",
            ],
            "Inope",
        ),
        (
            &["send", "echoer", "hi", "--secure", "127.0.0.1:1/secure"],
            "--trust",
        ),
        (&["send", "echoer", "hi", "--timeout", "1e9"], "seconds"),
        (&["node", "run", "--outlet", "no-target"], "NAME=HOST:PORT"),
        (&["node", "run", "--secure-listener", "secure"], "--trust"),
        (
            &["node", "run", "--trust-everyone", "--trust-file", "x"],
            "exclude",
        ),
        (&["portal", "inlet", "--listen", "127.0.0.1:0"], "--to"),
        (
            &[
                "portal",
                "inlet",
                "--listen",
                "127.0.0.1:0",
                "--to",
                "o",
                "--window",
                "0",
            ],
            "window",
        ),
        (
            &[
                "portal",
                "outlet",
                "--target",
                "127.0.0.1:1",
                "--access",
                "trusted",
            ],
            "--trust",
        ),
        (
            &["node", "run", "--config", "/nonexistent/onward.toml"],
            "onward.toml",
        ),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, names) in usage {
        let err = exits(&onward(args), 2);
        assert!(err.contains(names), "{args:?}: {err}");
    }
    // A configuration file with a setting that does not exist.
    let config = dir.path("node.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_twice = true\n").unwrap();
    let err = exits(
        &onward(&["node", "run", "--config", config.to_str().unwrap()]),
        2,
    );
    assert!(err.contains("listen_twice"), "{err}");
    // Failures of the operation itself.
    let refused = onward(&["send", "127.0.0.1:1/echoer", "hi"]);
    assert!(exits(&refused, 1).contains("127.0.0.1:1"));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let err = exits(&onward(&["node", "run", "--listen", &taken]), 1);
    assert!(err.contains(&taken), "{err}");
}

/// The guide's steps 07 to 10 from a shell: a plain message over TCP, over two TCP
/// hops, through a secure channel over two hops, and with identities that trust each
/// other by name (and one that is not trusted, refused).
#[test]
fn steps_07_to_10_from_a_shell() {
    let dir = Dir::new("steps");
    let (a_key, a_id) = identity(&dir, "a.key");
    let (b_key, b_id) = identity(&dir, "b.key");
    let (c_key, _) = identity(&dir, "c.key");
    let mut b = Running::start(&[
        "node",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--echo",
        "echoer",
        "--echo-access",
        "anyone",
        "--secure-listener",
        "secure",
        "--identity",
        &b_key,
        "--trust",
        &a_id,
    ]);
    assert_eq!(b.identity(), b_id);
    let b_addr = b.listening();
    let mut m = Running::start(&["node", "run", "--listen", "127.0.0.1:0"]);
    let m_addr = m.listening();

    // 07: one TCP hop.
    let reply = onward(&["send", &format!("{b_addr}/echoer"), "Hello 07"]);
    exits(&reply, 0);
    assert_eq!(stdout(&reply), "Hello 07");
    // 08: two TCP hops, in the printed form.
    let route = format!("[1#{m_addr} => 1#{b_addr} => 0#echoer]");
    let reply = onward(&["send", &route, "Hello 08"]);
    exits(&reply, 0);
    assert_eq!(stdout(&reply), "Hello 08");
    // 09 and 10: a secure channel through M, each side trusting the other by name.
    let secure = format!("{m_addr}/{b_addr}/secure");
    let reply = onward(&[
        "send",
        "echoer",
        "Hello 09",
        "--secure",
        &secure,
        "--identity",
        &a_key,
        "--trust",
        &b_id,
    ]);
    let err = exits(&reply, 0);
    assert_eq!(stdout(&reply), "Hello 09");
    assert!(err.contains(&b_id) && err.contains(&a_id), "{err}");
    // An identity B does not trust is refused; so is a B that A does not trust.
    let refused = onward(&[
        "send",
        "echoer",
        "x",
        "--secure",
        &secure,
        "--identity",
        &c_key,
        "--trust",
        &b_id,
        "--timeout",
        "5",
    ]);
    exits(&refused, 1);
    let untrusted = onward(&[
        "send",
        "echoer",
        "x",
        "--secure",
        &secure,
        "--identity",
        &a_key,
        "--trust",
        &a_id,
    ]);
    assert!(exits(&untrusted, 1).contains("not trusted"));
    // An address that is not there is named.
    let missing = onward(&["send", &format!("{b_addr}/nobody"), "x"]);
    assert!(exits(&missing, 1).contains("0#nobody"));
    b.interrupt();
    m.interrupt();
}

/// A node's settings from a TOML file, with a flag on top.
#[test]
fn a_node_runs_from_a_configuration_file() {
    let dir = Dir::new("config");
    let config = dir.path("node.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n\n[[echo]]\naddress = \"echoer\"\naccess = \"anyone\"\n",
    )
    .unwrap();
    let mut node = Running::start(&[
        "node",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--echo",
        "second",
        "--echo-access",
        "local",
    ]);
    let address = node.listening();
    let reply = onward(&["send", &format!("{address}/echoer"), "from the file"]);
    exits(&reply, 0);
    assert_eq!(stdout(&reply), "from the file");
    // The flag's echo takes only this node: refused, by name, over TCP.
    let refused = onward(&["send", &format!("{address}/second"), "x"]);
    assert!(exits(&refused, 1).contains("0#second"));
    node.interrupt();
}

/// `onward relay create`: a node with no listener, registered with a relay, reached
/// through a secure channel along the relay's route.
#[test]
fn a_node_without_a_listener_is_reached_through_a_relay() {
    let mut relay = Running::start(&[
        "node",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--secure-listener",
        "secure",
        "--trust-everyone",
        "--relay",
        "relay",
    ]);
    let r_addr = relay.listening();
    let mut hidden = Running::start(&[
        "relay",
        "create",
        "alice",
        "--at",
        &format!("{r_addr}/secure"),
        "--trust-everyone",
        "--secure-listener",
        "secure",
        "--echo",
        "echoer",
    ]);
    let registered = hidden.wait_for("registered ");
    assert!(registered.contains("0#relay/alice"), "{registered}");
    let secure = format!("[{r_addr} => relay/alice => secure]");
    let reply = onward(&[
        "send",
        "echoer",
        "Hello, hidden",
        "--secure",
        &secure,
        "--trust-everyone",
    ]);
    exits(&reply, 0);
    assert_eq!(stdout(&reply), "Hello, hidden");
    hidden.interrupt();
    relay.interrupt();
}

/// Whether a program can be run here.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A file of several MiB served by a real HTTP server (python3 -m http.server),
/// fetched by curl through an inlet, a secure channel over two TCP hops (through a
/// middle node) and an outlet, each a process of its own: the bytes match.
#[test]
fn an_http_download_crosses_a_secure_portal_between_processes() {
    assert!(
        have("python3") && have("curl"),
        "this test needs python3 and curl (apt-get install python3 curl)"
    );
    let dir = Dir::new("portal");
    let www = dir.path("www");
    std::fs::create_dir_all(&www).unwrap();
    let body: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(www.join("file.bin"), &body).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut http = KillOnDrop(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server"),
    );
    wait_for_port(&format!("127.0.0.1:{port}"), &mut http.0);

    let (a_key, a_id) = identity(&dir, "a.key");
    let (b_key, b_id) = identity(&dir, "b.key");
    let mut outlet = Running::start(&[
        "portal",
        "outlet",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--listen",
        "127.0.0.1:0",
        "--secure-listener",
        "secure",
        "--identity",
        &b_key,
        "--trust",
        &a_id,
    ]);
    let b_addr = outlet.listening();
    let mut middle = Running::start(&["node", "run", "--listen", "127.0.0.1:0"]);
    let m_addr = middle.listening();
    let mut inlet = Running::start(&[
        "portal",
        "inlet",
        "--listen",
        "127.0.0.1:0",
        "--to",
        "outlet",
        "--secure",
        &format!("{m_addr}/{b_addr}/secure"),
        "--identity",
        &a_key,
        "--trust",
        &b_id,
    ]);
    let line = inlet.wait_for("inlet on ");
    let inlet_addr = line["inlet on ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let fetched = dir.path("fetched.bin");
    let status = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "-o",
            fetched.to_str().unwrap(),
        ])
        .arg(format!("http://{inlet_addr}/file.bin"))
        .status()
        .expect("curl");
    assert!(status.success(), "curl: {status}");
    let got = std::fs::read(&fetched).unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "the download arrived changed");
    // A second request on the same inlet: sessions are independent.
    let again = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30"])
        .arg(format!("http://{inlet_addr}/"))
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&again.stdout).contains("file.bin"));
    inlet.interrupt();
    middle.interrupt();
    outlet.interrupt();
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 10 s for something to accept connections at `address`.
fn wait_for_port(address: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        assert!(Instant::now() < deadline, "nothing listens at {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
