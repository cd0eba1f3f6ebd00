//! `onward`, the command-line program: create identities, run nodes with echo, relay
//! and portal services, send a message along a route (through a secure channel if
//! asked), register with a relay, and carry TCP connections through portals, all
//! without writing Rust. `onward --help` lists the commands; docs/CLI.md is the guide.
//!
//! Exit codes: 0 success, 1 the operation failed (the error is printed on standard
//! error, naming the address, file or identity concerned), 2 the command line or the
//! configuration file is wrong.
#![forbid(unsafe_code)]

mod args;
mod node;
mod send;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use onward_tokio::Identity;

use args::{Cli, Command, IdentityCommand, PortalCommand, RelayCommand};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line or the configuration is wrong: exit code 2.
    Usage(String),
    /// The operation failed: exit code 1.
    Failed(String),
}

impl Failure {
    /// An operation that failed, with what was being done.
    pub(crate) fn failed(context: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        Failure::Failed(format!("{context}: {error}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli.command)),
        Err(error) => Err(Failure::failed("cannot start the tokio runtime", error)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("onward: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("onward: {message}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to standard error: `RUST_LOG` if set, else warnings, more with each `-v`.
fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Identity(IdentityCommand::Create { file, force }) => {
            let path = args::identity_path(file)?;
            create_identity(&path, force)
        }
        Command::Identity(IdentityCommand::Show { file }) => {
            let path = args::identity_path(file)?;
            let identity = Identity::load(&path).map_err(|e| Failure::Failed(e.to_string()))?;
            println!("{}", identity.identifier());
            Ok(())
        }
        Command::Node(args::NodeCommand::Run(node)) => {
            node::run(node::Spec::from_args(node)?, None).await
        }
        Command::Send(send) => send::run(send).await,
        Command::Relay(RelayCommand::Create(create)) => {
            let register = node::Register {
                name: create.name,
                at: create.at,
                service: create.service,
            };
            node::run(node::Spec::from_args(create.node)?, Some(register)).await
        }
        Command::Portal(PortalCommand::Outlet(outlet)) => {
            let mut spec = node::Spec::from_args(outlet.node)?;
            spec.outlet.push(node::OutletSpec {
                address: outlet.name,
                target: outlet.target,
                access: outlet.access,
                window: Some(outlet.window),
            });
            node::run(spec, None).await
        }
        Command::Portal(PortalCommand::Inlet(inlet)) => {
            node::run(node::Spec::inlet(inlet)?, None).await
        }
    }
}

/// Creates an identity and saves it at `path` (mode 0600), unless one is there.
fn create_identity(path: &Path, force: bool) -> Result<(), Failure> {
    if path.exists() && !force {
        return Err(Failure::Failed(format!(
            "{} exists: it may hold an identity in use (--force replaces it)",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::failed(format!("cannot create {}", parent.display()), e))?;
    }
    let identity = Identity::generate().map_err(|e| Failure::Failed(e.to_string()))?;
    identity
        .save(path)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    println!("{}", identity.identifier());
    eprintln!("saved to {}", path.display());
    Ok(())
}
