//! Round trips with the far end in a second process (this program run again with
//! `--serve <kind>`), and async-std with one worker measured in a child process of its
//! own (async-std's thread count is fixed once per process).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use std::time::Duration;

use super::peers::*;
use super::*;

/// How long the parent waits for a child process to report its ports.
const CHILD_READY: Duration = Duration::from_secs(20);

/// A far end in a second process, killed when dropped.
pub(super) struct FarProcess {
    child: Child,
    ports: Vec<u16>,
}

impl FarProcess {
    /// Starts this program with `--serve <kind>` and reads the ports it prints.
    fn start(kind: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--serve", kind])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(CHILD_READY) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the {kind} server process did not report its ports in time");
            }
        };
        let ports = line
            .split_whitespace()
            .map(|p| p.parse().expect("a port"))
            .collect::<Vec<u16>>();
        assert!(
            !ports.is_empty(),
            "the {kind} server process printed no port"
        );
        FarProcess { child, ports }
    }
}

impl Drop for FarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: serve `kind` on tokio (one thread) and print the ports on one
/// line; exit when the parent closes stdin or kills this process.
pub(super) fn serve(kind: &str) {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let rt = Rt::new(Kind::Tokio, 1);
    rt.block_on(async {
        let mut keep = Vec::new();
        let mut keep_raw = Vec::new();
        match kind {
            "onward" => {
                let b = rt.node().await.unwrap();
                let b_addr = b.listen("127.0.0.1:0").await.unwrap();
                b.create_secure_channel_listener(
                    "secure",
                    &Identity::generate().unwrap(),
                    TrustEveryone,
                )
                .await
                .unwrap();
                b.start_worker("echo", Echo).await.unwrap();
                let m = rt.node().await.unwrap();
                let m_addr = m.listen("127.0.0.1:0").await.unwrap();
                println!("{} {}", b_addr.port(), m_addr.port());
                keep.push(b);
                keep.push(m);
            }
            "raw" => {
                // An echo server, and a relay in front of it.
                let runtime = rt.runtime();
                let mut listener = runtime.bind("127.0.0.1:0".into()).await.unwrap();
                let echo = listener.local_addr();
                let mut relays = runtime.bind("127.0.0.1:0".into()).await.unwrap();
                println!("{} {}", echo.port(), relays.local_addr().port());
                keep_raw.push(rt.spawn(async move {
                    while let Ok(stream) = listener.accept().await {
                        tokio::spawn(echo_stream(stream));
                    }
                }));
                keep_raw.push(rt.spawn(async move {
                    while let Ok(inner) = relays.accept().await {
                        let outer = runtime.connect(echo.to_string()).await.unwrap();
                        tokio::spawn(forward(inner.reader, outer.writer));
                        tokio::spawn(forward(outer.reader, inner.writer));
                    }
                }));
            }
            other => panic!("unknown --serve kind {other:?}"),
        }
        std::future::pending::<()>().await;
    });
}

/// Round trips with the far end (and the middle node) in a second process.
pub(super) fn measure_two_processes(sizes: &Sizes, report: &mut Report) {
    let raw_far = FarProcess::start("raw");
    let onward_far = FarProcess::start("onward");
    let rt = Rt::new(Kind::Tokio, 1);
    let label = format!("two processes, {}", rt.label());
    rt.block_on(async {
        let a = rt.node().await.unwrap();
        for window in [1, 100] {
            let mut raws = Vec::new();
            for port in &raw_far.ports[..2] {
                let mut near = rt
                    .runtime()
                    .connect(format!("127.0.0.1:{port}"))
                    .await
                    .unwrap();
                raws.push(rtt_raw(&mut near, window, sizes.rtt_count).await);
            }
            for hops in [1, 2] {
                let mut route = route![tcp(format!("127.0.0.1:{}", onward_far.ports[0])), "secure"];
                if hops == 2 {
                    route.prepend(tcp(format!("127.0.0.1:{}", onward_far.ports[1])));
                }
                let ours = rtt_onward(&a, route, window, sizes.rtt_count).await;
                let name = format!("{label}, {hops} hop(s), {window} in flight");
                add_rtt(report, &name, hops, &ours, &raws[hops - 1]);
            }
        }
        a.stop().await.unwrap();
    });
}

/// The flag that makes this program measure async-std alone with one thread: its
/// thread count is read from `ASYNC_STD_THREAD_COUNT` once per process, so the parent
/// runs it in a child process with that variable set.
pub(super) const ASYNC_STD_ONE_THREAD: &str = "--async-std-one-thread";

/// Units and bench names a child's figures may carry, as the `'static` strings
/// [`Figure`] holds.
pub(super) fn known(s: &str) -> &'static str {
    [
        BENCH_BULK,
        BENCH_RTT,
        BENCH_ALLOCATIONS,
        "MB/s",
        "us",
        "msg/s",
        "allocs",
    ]
    .into_iter()
    .find(|k| *k == s)
    .unwrap_or("?")
}

/// The child's side: measure async-std and print every figure, and the figures for
/// the comparison between runtimes, as tab-separated lines for the parent.
pub(super) fn async_std_child(sizes: &Sizes) {
    let rt = Rt::new(Kind::AsyncStd, 0);
    let mut report = Report::default();
    let figures = measure(&rt, sizes, &mut report);
    for f in report.figures() {
        println!(
            "FIGURE\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            f.bench,
            f.name,
            f.value,
            f.unit,
            f.peer,
            f.peer_value,
            f.target.map_or("-".to_string(), |t| t.to_string()),
            f.lower_is_better
        );
    }
    println!("LABEL\t{}", figures.label);
    for (size, value) in figures.bulk {
        println!("BULK\t{size}\t{value}");
    }
    for ((hops, window), rate) in figures.rtt {
        println!("RTT\t{hops}\t{window}\t{rate}");
    }
}

/// Runs [`async_std_child`] in a second process with `ASYNC_STD_THREAD_COUNT=1` and
/// adds its figures to `report`.
pub(super) fn measure_async_std_one_thread(report: &mut Report) -> RuntimeFigures {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.arg(ASYNC_STD_ONE_THREAD);
    if quick() {
        command.arg("--quick");
    }
    let child = command
        .env("ASYNC_STD_THREAD_COUNT", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the async-std child did not finish within 10 minutes")
        .unwrap();
    assert!(output.status.success(), "the async-std child failed");
    let mut figures = RuntimeFigures {
        label: String::new(),
        threads: 1,
        bulk: Vec::new(),
        rtt: Vec::new(),
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["FIGURE", bench, name, value, unit, peer, peer_value, target, lower] => {
                report.add(Figure {
                    bench: known(bench),
                    name: name.to_string(),
                    value: value.parse().unwrap(),
                    unit: known(unit),
                    peer: peer.to_string(),
                    peer_value: peer_value.parse().unwrap(),
                    target: target.parse().ok(),
                    lower_is_better: *lower == "true",
                });
            }
            ["LABEL", label] => figures.label = label.to_string(),
            ["BULK", size, value] => figures
                .bulk
                .push((size.parse().unwrap(), value.parse().unwrap())),
            ["RTT", hops, window, rate] => figures.rtt.push((
                (hops.parse().unwrap(), window.parse().unwrap()),
                rate.parse().unwrap(),
            )),
            _ => {}
        }
    }
    figures
}
