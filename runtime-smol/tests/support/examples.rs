//! Running the example programs of a runtime crate and checking what they print;
//! shared by the smol and async-std crates' tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the example `name` (built by `cargo test` into target/<profile>/examples/)
/// with `args` and `env`, to its end.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    let path: PathBuf = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example {name} not found at {}: `cargo test` of its crate builds it",
        path.display()
    );
    let mut command = Command::new(path);
    command.args(args).env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the example runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Step 02: the echoer answers "Hello"; with `RUST_LOG=debug` the node says on stderr
/// that it started and stopped.
pub(crate) fn step_02(name: &str) {
    let output = run(name, &[], &[("RUST_LOG", "debug")]);
    assert!(output.status.success(), "{output:?}");
    let out = stdout(&output);
    assert!(out.contains("echoer: received \"Hello\""), "{out}");
    assert!(out.contains("app: received \"Hello\""), "{out}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("node started") && err.contains("node stopped"),
        "{err}"
    );
}

/// Step 09: A's message reaches B's echoer through M and comes back.
pub(crate) fn step_09(name: &str) {
    let output = run(name, &[], &[]);
    assert!(output.status.success(), "{output:?}");
    let out = stdout(&output);
    assert!(out.contains("M: listening on"), "{out}");
    assert!(out.contains("B: echoer received"), "{out}");
    assert!(
        output.stderr.is_empty(),
        "nothing on stderr without RUST_LOG"
    );
}

/// `--help` prints the usage and succeeds; an extra argument is named, as a sentence,
/// and fails.
pub(crate) fn help_and_bad_argument(name: &str) {
    let help = run(name, &["--help"], &[]);
    assert!(help.status.success());
    assert_eq!(stdout(&help).trim(), format!("usage: {name}"));
    let bad = run(name, &["extra"], &[]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(
        err.trim(),
        format!("{name}: error: unexpected argument \"extra\"; usage: {name}")
    );
}

/// The key-value example, all three roles in one process: the client's ten tasks get
/// every answer.
#[allow(dead_code, reason = "only the smol crate has the key-value example")]
pub(crate) fn kv(name: &str) {
    let output = run(name, &[], &[]);
    assert!(output.status.success(), "{output:?}");
    let out = stdout(&output);
    assert!(
        out.contains("kv client: 1000 requests answered in "),
        "{out}"
    );
}
