//! The Redis demo (`onward-redis`'s example `redis-demo`), run as a user runs it,
//! against a `redis-server` this test starts: the echo comes back, and the entries it
//! read back from Redis hold no plaintext. `cargo test --workspace` builds the example;
//! alone, `cargo build -p onward-redis --examples` first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use onward_tests::redis_server::RedisServer;

#[test]
fn the_redis_demo_finds_no_plaintext_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let exe = std::env::current_exe().expect("the test's own path");
    let examples = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join("redis-demo");
    let output = Command::new(&examples)
        .arg(server.url())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (build the examples first)", examples.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("demo: A sent \"Hello through Redis\", B echoed \"Hello through Redis\""),
        "{stdout}"
    );
    let holds = stdout
        .lines()
        .find_map(|l| l.strip_prefix("demo: Redis holds "))
        .expect("the count of entries");
    assert!(
        holds.ends_with("the plaintext appears in them: no"),
        "{holds}"
    );
    let counts: Vec<usize> = holds.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert!(
        counts.len() == 2 && counts[0] >= 2 && counts[1] >= 3,
        "{holds}"
    );
}
