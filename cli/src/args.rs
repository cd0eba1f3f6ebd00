//! The command line, as clap reads it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use onward_tokio::{Access, Identifier, Identity, Route, TrustAnyOf, TrustEveryone, TrustPolicy};

use crate::Failure;

/// onward from a shell: identities, nodes, messages, relays and TCP portals.
///
/// Routes are written as the library prints them, `[1#127.0.0.1:4000 => 0#echoer]`,
/// or short, with `/` between hops: `127.0.0.1:4000/echoer` (a hop with `:` is a TCP
/// address, one without is a local address).
#[derive(Debug, Parser)]
#[command(name = "onward", version, propagate_version = true)]
pub(crate) struct Cli {
    /// More logs on standard error: -v info, -vv debug, -vvv trace (RUST_LOG, if set,
    /// decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or show a long-term identity (an Ed25519 key file).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Send one message along a route, optionally through a secure channel, and print
    /// the reply.
    Send(SendArgs),
    /// Make a node without a listener reachable through a relay.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Carry TCP connections of any application through onward.
    #[command(subcommand)]
    Portal(PortalCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Create an identity and save it (mode 0600); print its identifier.
    Create {
        /// The key file [default: $ONWARD_IDENTITY, else ~/.onward/identity].
        #[arg(long)]
        file: Option<PathBuf>,
        /// Replace an identity already at that path.
        #[arg(long)]
        force: bool,
    },
    /// Print the identifier of an identity.
    Show {
        /// The key file [default: $ONWARD_IDENTITY, else ~/.onward/identity].
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run a node until Ctrl-C (or SIGTERM), then stop it cleanly.
    Run(NodeArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RelayCommand {
    /// Run a node with no listener that registers NAME with the relay service of the
    /// node at --at, and serves through it until Ctrl-C.
    Create(RelayCreateArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PortalCommand {
    /// Run a node with an outlet: each portal session opened to it connects to
    /// --target.
    Outlet(OutletArgs),
    /// Listen on --listen and carry each connection to an outlet at --to.
    Inlet(InletArgs),
}

/// Who may reach a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AccessArg {
    /// Only this node.
    Local,
    /// Secure channels this node accepted or opened (and this node).
    #[default]
    Channels,
    /// Secure channels from the identities of --trust / --trust-file (and this node).
    Trusted,
    /// Anyone, plain TCP included.
    Anyone,
}

impl AccessArg {
    /// The rule, with `trust` for [`AccessArg::Trusted`]; `what` names the service
    /// for the error when that needs a trust decision and none was given.
    pub(crate) fn access(self, trust: Option<&Trust>, what: &str) -> Result<Access, Failure> {
        Ok(match self {
            AccessArg::Local => Access::local_only(),
            AccessArg::Channels => Access::secure_channels(),
            AccessArg::Trusted => Access::secure_channels_from(need_trust(trust, what)?.policy()),
            AccessArg::Anyone => Access::anyone(),
        })
    }
}

/// Whom secure channels trust.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TrustArgs {
    /// Trust this identifier (repeat for more).
    #[arg(long = "trust", value_name = "ID", value_parser = parse_identifier)]
    pub(crate) trust: Vec<Identifier>,
    /// Trust the identifiers in this file (one per line, # comments).
    #[arg(long, value_name = "FILE")]
    pub(crate) trust_file: Option<PathBuf>,
    /// Trust any identity (channels are still authenticated, and the peer's
    /// identifier is printed).
    #[arg(long)]
    pub(crate) trust_everyone: bool,
}

/// A trust decision made from [`TrustArgs`].
#[derive(Debug, Clone)]
pub(crate) enum Trust {
    Everyone,
    AnyOf(TrustAnyOf),
}

impl Trust {
    /// From the arguments; `None` if none was given.
    pub(crate) fn from_args(args: &TrustArgs) -> Result<Option<Trust>, Failure> {
        if args.trust_everyone {
            if !args.trust.is_empty() || args.trust_file.is_some() {
                return Err(Failure::Usage(
                    "--trust-everyone and --trust/--trust-file exclude each other".into(),
                ));
            }
            return Ok(Some(Trust::Everyone));
        }
        let mut ids: Vec<Identifier> = args.trust.clone();
        if let Some(file) = &args.trust_file {
            let loaded = TrustAnyOf::load(file).map_err(|e| Failure::Failed(e.to_string()))?;
            ids.extend(loaded.identifiers().iter().copied());
        }
        Ok((!ids.is_empty()).then(|| Trust::AnyOf(TrustAnyOf::new(ids))))
    }

    /// As a policy.
    pub(crate) fn policy(&self) -> Box<dyn TrustPolicy> {
        match self {
            Trust::Everyone => Box::new(TrustEveryone),
            Trust::AnyOf(any) => Box::new(any.clone()),
        }
    }
}

/// The trust decision, or the error that names what needed one.
pub(crate) fn need_trust<'a>(trust: Option<&'a Trust>, what: &str) -> Result<&'a Trust, Failure> {
    trust.ok_or_else(|| {
        Failure::Usage(format!(
            "{what} needs to know whom to trust: give --trust ID, --trust-file FILE or --trust-everyone"
        ))
    })
}

/// Which identity a node uses.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct IdentityArgs {
    /// The node's identity (a key file made by `onward identity create`); without it a
    /// fresh identity is made for this run, and its identifier printed. Given here or
    /// by $ONWARD_IDENTITY, it replaces a configuration file's `identity`.
    #[arg(long, value_name = "FILE", env = "ONWARD_IDENTITY")]
    pub(crate) identity: Option<PathBuf>,
}

impl IdentityArgs {
    /// The identity: loaded, or fresh.
    pub(crate) fn load(&self) -> Result<Identity, Failure> {
        match &self.identity {
            Some(path) => Identity::load(path).map_err(|e| Failure::Failed(e.to_string())),
            None => Identity::generate().map_err(|e| Failure::Failed(e.to_string())),
        }
    }
}

/// What a node runs.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct NodeArgs {
    /// A TOML file of the same settings (docs/CLI.md); flags add to it and override
    /// its single values.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Listen for TCP connections here (host:port; port 0 picks a free one, printed).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Start a secure channel listener at this address (needs a trust flag).
    #[arg(long, value_name = "NAME")]
    pub(crate) secure_listener: Option<String>,
    /// Start an echo service at this address: it sends back what it receives.
    #[arg(long, value_name = "NAME")]
    pub(crate) echo: Vec<String>,
    /// Who may reach the echo services.
    #[arg(long, value_enum, default_value_t = AccessArg::Channels)]
    pub(crate) echo_access: AccessArg,
    /// Start a relay service at this address.
    #[arg(long, value_name = "NAME")]
    pub(crate) relay: Vec<String>,
    /// Who may register names with the relay services.
    #[arg(long, value_enum, default_value_t = AccessArg::Channels)]
    pub(crate) relay_access: AccessArg,
    /// Start an outlet: NAME=HOST:PORT (sessions opened to NAME connect to HOST:PORT).
    #[arg(long, value_name = "NAME=TARGET")]
    pub(crate) outlet: Vec<String>,
    /// Who may open sessions to the outlets.
    #[arg(long, value_enum, default_value_t = AccessArg::Channels)]
    pub(crate) outlet_access: AccessArg,
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Where the message goes: after the secure channel, with --secure.
    #[arg(value_parser = parse_route)]
    pub(crate) route: Route,
    /// The message (a text).
    pub(crate) message: String,
    /// First open a secure channel along this route (to a channel listener) and send
    /// through it.
    #[arg(long, value_name = "ROUTE", value_parser = parse_route)]
    pub(crate) secure: Option<Route>,
    /// How long to wait for the reply, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub(crate) timeout: Duration,
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RelayCreateArgs {
    /// The name to register (1 to 64 letters, digits, '.', '-' and '_').
    pub(crate) name: String,
    /// The route to the relay node's secure channel listener; its first hop must be
    /// a direct TCP connection.
    #[arg(long, value_name = "ROUTE", value_parser = parse_route)]
    pub(crate) at: Route,
    /// The relay service's address on that node.
    #[arg(long, default_value = "relay")]
    pub(crate) service: String,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct OutletArgs {
    /// Where each session connects (host:port).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) target: String,
    /// The outlet's address on this node.
    #[arg(long, default_value = "outlet")]
    pub(crate) name: String,
    /// Who may open sessions.
    #[arg(long, value_enum, default_value_t = AccessArg::Trusted)]
    pub(crate) access: AccessArg,
    /// The window of each session here: bytes the inlet may send ahead of what this
    /// outlet has written to the target (1 to 67108864).
    #[arg(long, value_name = "BYTES", default_value_t = onward_tokio::protocol::portal::DEFAULT_PORTAL_WINDOW, value_parser = parse_window)]
    pub(crate) window: u32,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InletArgs {
    /// Listen here for the application's connections (host:port).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: String,
    /// The route to the outlet: after the secure channel, with --secure.
    #[arg(long, value_name = "ROUTE", value_parser = parse_route)]
    pub(crate) to: Route,
    /// Open a secure channel along this route (to a channel listener) and carry the
    /// sessions through it; it is re-established if it fails.
    #[arg(long, value_name = "ROUTE", value_parser = parse_route)]
    pub(crate) secure: Option<Route>,
    /// The window of each session here: bytes the outlet may send ahead of what this
    /// inlet has written to the client (1 to 67108864).
    #[arg(long, value_name = "BYTES", default_value_t = onward_tokio::protocol::portal::DEFAULT_PORTAL_WINDOW, value_parser = parse_window)]
    pub(crate) window: u32,
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

fn parse_route(text: &str) -> Result<Route, String> {
    text.parse::<Route>().map_err(|e| e.to_string())
}

fn parse_identifier(text: &str) -> Result<Identifier, String> {
    text.parse::<Identifier>().map_err(|e| e.to_string())
}

/// A portal window: 1 byte to the protocol's largest.
pub(crate) fn parse_window(text: &str) -> Result<u32, String> {
    let max = onward_tokio::protocol::portal::MAX_PORTAL_WINDOW;
    match text.parse::<u32>() {
        Ok(window) if (1..=max).contains(&window) => Ok(window),
        _ => Err(format!("{text:?} is not a window from 1 to {max} bytes")),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0 to 86400"
        )),
    }
}

/// The identity file: given, or `$ONWARD_IDENTITY`, or `~/.onward/identity`.
pub(crate) fn identity_path(file: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(file) = file {
        return Ok(file);
    }
    if let Some(path) = std::env::var_os("ONWARD_IDENTITY") {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".onward").join("identity"))
        .ok_or_else(|| Failure::Usage("no --file, $ONWARD_IDENTITY or $HOME".into()))
}
