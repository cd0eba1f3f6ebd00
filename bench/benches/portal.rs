//! A TCP portal between two processes against a direct TCP connection between the same
//! two processes, in the same run: bulk upload and download of `N` bytes by a plain
//! socket client, through inlet → secure channel over loopback TCP → outlet, and
//! straight to the target. Both processes run tokio (multi-thread, default workers);
//! the target server (in the outlet's process) and the client (in the inlet's) are
//! plain threads with `std::net`. CPU time of both processes, from
//! `/proc/<pid>/stat`, is reported per GB moved.
//!
//! The program re-executes itself with `--serve-outlet` for the second process.
//! `--quick` moves a few MiB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onward_bench::{quick, Figure, Report};
use onward_protocol::identity::Identity;
use onward_protocol::portal::DEFAULT_PORTAL_WINDOW;
use onward_protocol::trust::TrustEveryone;
use onward_protocol::{route, tcp};
use onward_tokio::{Node, PortalOptions};

/// Ockam's portal on this kind of machine, two processes (issue 20): about 245 MB/s
/// at about 5 CPU-seconds per GB.
const OCKAM_MBPS: f64 = 245.0;
const OCKAM_CPU_PER_GB: f64 = 5.0;

/// The target: for each connection a command byte and a length (8 bytes, big
/// endian). `U`: it reads that many bytes and answers one byte. `D`: it writes that
/// many bytes and closes.
fn target_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = [0u8; 9];
                if stream.read_exact(&mut head).is_err() {
                    return;
                }
                let len = u64::from_be_bytes(head[1..].try_into().unwrap());
                let mut buffer = vec![0u8; 256 * 1024];
                match head[0] {
                    b'U' => {
                        let mut left = len;
                        while left > 0 {
                            let want = buffer.len().min(left as usize);
                            match stream.read(&mut buffer[..want]) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => left -= n as u64,
                            }
                        }
                        let _ = stream.write_all(b"k");
                    }
                    _ => {
                        let mut left = len;
                        while left > 0 {
                            let n = buffer.len().min(left as usize);
                            if stream.write_all(&buffer[..n]).is_err() {
                                return;
                            }
                            left -= n as u64;
                        }
                    }
                }
            });
        }
    });
    port
}

/// Uploads `len` bytes to `address` and waits for the answer; then downloads `len`.
/// Returns the two times.
fn transfer(address: &str, len: u64) -> (Duration, Duration) {
    let buffer = vec![0x5au8; 256 * 1024];
    let mut up = TcpStream::connect(address).unwrap();
    let start = Instant::now();
    let mut head = vec![b'U'];
    head.extend_from_slice(&len.to_be_bytes());
    up.write_all(&head).unwrap();
    let mut left = len;
    while left > 0 {
        let n = buffer.len().min(left as usize);
        up.write_all(&buffer[..n]).unwrap();
        left -= n as u64;
    }
    let mut answer = [0u8; 1];
    up.read_exact(&mut answer).unwrap();
    let upload = start.elapsed();
    drop(up);

    let mut down = TcpStream::connect(address).unwrap();
    let start = Instant::now();
    let mut head = vec![b'D'];
    head.extend_from_slice(&len.to_be_bytes());
    down.write_all(&head).unwrap();
    down.shutdown(Shutdown::Write).unwrap();
    let mut got = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match down.read(&mut buffer).unwrap() {
            0 => break,
            n => got += n as u64,
        }
    }
    assert_eq!(got, len, "the download was cut short");
    (upload, start.elapsed())
}

/// CPU time (user + system) of process `pid` so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses, which may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the file: 12 and 13 after the name.
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The second process: a node with a channel listener and an outlet to the target.
/// Prints the node's port and the target's, then serves until stdin closes.
fn serve_outlet() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let target = target_server();
    let runtime = runtime();
    runtime.block_on(async {
        let node = Node::start().await.unwrap();
        let address = node.listen("127.0.0.1:0").await.unwrap();
        node.create_secure_channel_listener(
            "secure",
            &Identity::generate().unwrap(),
            TrustEveryone,
        )
        .await
        .unwrap();
        let mut outlets = Vec::new();
        for (name, window) in WINDOWS {
            let options = PortalOptions {
                window,
                ..PortalOptions::default()
            };
            let target = format!("127.0.0.1:{target}");
            outlets.push(node.create_outlet(name, &target, options).await.unwrap());
        }
        println!("{} {target}", address.port());
        std::future::pending::<()>().await;
    });
}

/// The outlet's process, killed when dropped.
struct Outlet(Child);

impl Drop for Outlet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tokio, multi-thread with its default workers; `ONWARD_BENCH_THREADS=1` for
/// current-thread.
fn runtime() -> tokio::runtime::Runtime {
    if std::env::var("ONWARD_BENCH_THREADS").is_ok_and(|t| t == "1") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Runtime::new().unwrap()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The windows measured, each with its outlet's address: the default, and a larger
/// one (a choice of `PortalOptions::window`).
const WINDOWS: [(&str, u32); 2] = [("outlet", DEFAULT_PORTAL_WINDOW), ("outlet-4m", 4 << 20)];

fn main() {
    if std::env::args().any(|a| a == "--serve-outlet") {
        return serve_outlet();
    }
    let (len, rounds) = if quick() {
        (8u64 << 20, 1)
    } else {
        (1u64 << 30, 3)
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve-outlet")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let outlet = Outlet(child);
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (node_port, target_port) = (ports[0], ports[1]);
    let direct = format!("127.0.0.1:{target_port}");

    let runtime = runtime();
    let (node, _channel, inlets) = runtime.block_on(async {
        let node = Node::start().await.unwrap();
        let channel = node
            .create_secure_channel(
                route![tcp(format!("127.0.0.1:{node_port}")), "secure"],
                &Identity::generate().unwrap(),
                TrustEveryone,
            )
            .await
            .unwrap();
        let mut inlets = Vec::new();
        for (outlet, window) in WINDOWS {
            let options = PortalOptions {
                window,
                ..PortalOptions::default()
            };
            let to = route![channel.address().clone(), outlet];
            inlets.push(node.create_inlet("127.0.0.1:0", to, options).await.unwrap());
        }
        (node, channel, inlets)
    });
    let mut addresses = vec![direct];
    addresses.extend(inlets.iter().map(|i| i.local_addr().to_string()));
    let (me, far) = (std::process::id(), outlet.0.id());

    // Alternating rounds: direct, then each portal; each figure the median of its
    // rounds. Per address: upload MB/s, download MB/s, CPU-s per GB.
    let mut figures = vec![[Vec::new(), Vec::new(), Vec::new()]; addresses.len()];
    for _ in 0..rounds {
        for (i, address) in addresses.iter().enumerate() {
            let before = cpu(me) + cpu(far);
            // On its own thread, while this one drives the inlet's runtime (a
            // current-thread runtime runs only inside `block_on`).
            let address = address.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || tx.send(transfer(&address, len)));
            let (up, down) = runtime.block_on(rx).unwrap();
            let used = (cpu(me) + cpu(far)).saturating_sub(before);
            let mb = len as f64 / 1e6;
            figures[i][0].push(mb / up.as_secs_f64());
            figures[i][1].push(mb / down.as_secs_f64());
            figures[i][2].push(used.as_secs_f64() / (2.0 * len as f64 / 1e9));
        }
    }
    let figures: Vec<[f64; 3]> = figures.into_iter().map(|f| f.map(median)).collect();
    let direct = figures[0];
    let size = format!("{} MiB", len >> 20);
    let mut report = Report::default();
    for ((_, window), portal) in WINDOWS.into_iter().zip(&figures[1..]) {
        let label = format!("window {} MiB, {size}", window >> 20);
        for (i, what) in [(0, "upload"), (1, "download")] {
            let figure = |peer: &str, peer_value, target| Figure {
                bench: "portal",
                name: format!("{what} through a secure portal ({label})"),
                value: portal[i],
                unit: "MB/s",
                peer: peer.into(),
                peer_value,
                target: Some(target),
                lower_is_better: false,
            };
            report.add(figure("direct TCP", direct[i], 0.5));
            report.add(figure("Ockam portal", OCKAM_MBPS, 3.0));
        }
        let cpu = |peer: &str, peer_value| Figure {
            bench: "portal",
            name: format!("CPU of both processes per GB ({label})"),
            value: portal[2],
            unit: "CPU-s/GB",
            peer: peer.into(),
            peer_value,
            target: None,
            lower_is_better: true,
        };
        report.add(cpu("direct TCP", direct[2]));
        report.add(cpu("Ockam portal", OCKAM_CPU_PER_GB));
    }
    report.print_table();
    for inlet in inlets {
        assert_eq!(inlet.stats().failed, 0, "a portal session failed");
    }
    runtime.block_on(async { node.stop().await.unwrap() });
    drop(outlet);
}
