//! Running a node: its settings from a TOML file and flags, its services, and its
//! life until Ctrl-C.

use std::path::PathBuf;

use onward_tokio::{
    Access, ChannelRules, Context, Node, Opaque, PortalOptions, Result as OnwardResult, Route,
    Routed, TransportMessage, Worker,
};
use serde::Deserialize;

use crate::args::{need_trust, AccessArg, IdentityArgs, InletArgs, NodeArgs, Trust, TrustArgs};
use crate::Failure;

/// Everything a node runs: the configuration file's form (docs/CLI.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    /// TCP listen address.
    listen: Option<String>,
    /// The identity's key file.
    identity: Option<PathBuf>,
    /// The secure channel listener's address.
    secure_listener: Option<String>,
    /// Trusted identifiers.
    #[serde(default)]
    trust: Vec<String>,
    /// A file of trusted identifiers.
    trust_file: Option<PathBuf>,
    /// Trust any identity.
    #[serde(default)]
    trust_everyone: bool,
    #[serde(default)]
    echo: Vec<ServiceSpec>,
    #[serde(default)]
    relay: Vec<ServiceSpec>,
    #[serde(default)]
    pub(crate) outlet: Vec<OutletSpec>,
    #[serde(default)]
    inlet: Vec<InletSpec>,
}

/// An echo or relay service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSpec {
    address: String,
    #[serde(default = "channels")]
    access: AccessArg,
}

/// An outlet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutletSpec {
    pub(crate) address: String,
    pub(crate) target: String,
    #[serde(default = "channels")]
    pub(crate) access: AccessArg,
    pub(crate) window: Option<u32>,
}

/// An inlet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InletSpec {
    listen: String,
    to: String,
    secure: Option<String>,
    window: Option<u32>,
}

fn channels() -> AccessArg {
    AccessArg::Channels
}

/// A registration with a relay: `onward relay create`.
#[derive(Debug)]
pub(crate) struct Register {
    pub(crate) name: String,
    pub(crate) at: Route,
    pub(crate) service: String,
}

impl Spec {
    /// The configuration file, if any, with the flags on top.
    pub(crate) fn from_args(args: NodeArgs) -> Result<Self, Failure> {
        let mut spec = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<Spec>(&text)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
            }
            None => Spec::default(),
        };
        spec.listen = args.listen.or(spec.listen);
        spec.identity = args.identity.identity.or(spec.identity);
        spec.secure_listener = args.secure_listener.or(spec.secure_listener);
        spec.trust
            .extend(args.trust.trust.iter().map(ToString::to_string));
        spec.trust_file = args.trust.trust_file.or(spec.trust_file);
        spec.trust_everyone |= args.trust.trust_everyone;
        let service = |address: String, access| ServiceSpec { address, access };
        spec.echo
            .extend(args.echo.into_iter().map(|a| service(a, args.echo_access)));
        spec.relay.extend(
            args.relay
                .into_iter()
                .map(|a| service(a, args.relay_access)),
        );
        for outlet in args.outlet {
            let Some((address, target)) = outlet.split_once('=') else {
                return Err(Failure::Usage(format!(
                    "--outlet {outlet:?}: expected NAME=HOST:PORT"
                )));
            };
            spec.outlet.push(OutletSpec {
                address: address.to_owned(),
                target: target.to_owned(),
                access: args.outlet_access,
                window: None,
            });
        }
        Ok(spec)
    }

    /// A node with one inlet and no listener: `onward portal inlet`.
    pub(crate) fn inlet(args: InletArgs) -> Result<Self, Failure> {
        Ok(Spec {
            identity: args.identity.identity,
            trust: args.trust.trust.iter().map(ToString::to_string).collect(),
            trust_file: args.trust.trust_file,
            trust_everyone: args.trust.trust_everyone,
            inlet: vec![InletSpec {
                listen: args.listen,
                to: args.to.to_string(),
                secure: args.secure.map(|r| r.to_string()),
                window: Some(args.window),
            }],
            ..Spec::default()
        })
    }

    /// What needs a trust decision has one, windows are in range and routes parse:
    /// checked before the node starts, so a mistake prints nothing else.
    fn check(&self, trust: Option<&Trust>, registers: bool) -> Result<(), Failure> {
        if self.secure_listener.is_some() {
            need_trust(trust, "a secure channel listener")?;
        }
        if registers {
            need_trust(trust, "registering with a relay")?;
        }
        for (access, what) in self
            .echo
            .iter()
            .map(|e| (e.access, "an echo service"))
            .chain(self.relay.iter().map(|r| (r.access, "a relay")))
            .chain(self.outlet.iter().map(|o| (o.access, "an outlet")))
        {
            access.access(trust, what)?;
        }
        let window = |w: Option<u32>| match w {
            Some(w) => crate::args::parse_window(&w.to_string()).map_err(Failure::Usage),
            None => Ok(0),
        };
        for outlet in &self.outlet {
            window(outlet.window)?;
        }
        for inlet in &self.inlet {
            window(inlet.window)?;
            for route in std::iter::once(&inlet.to).chain(inlet.secure.as_ref()) {
                route
                    .parse::<Route>()
                    .map_err(|e| Failure::Usage(format!("inlet route {route:?}: {e}")))?;
            }
            if inlet.secure.is_some() {
                need_trust(trust, "a secure channel")?;
            }
        }
        Ok(())
    }

    fn trust(&self) -> Result<Option<Trust>, Failure> {
        let mut ids = Vec::new();
        for text in &self.trust {
            ids.push(
                text.parse()
                    .map_err(|e| Failure::Usage(format!("trust {text:?}: {e}")))?,
            );
        }
        Trust::from_args(&TrustArgs {
            trust: ids,
            trust_file: self.trust_file.clone(),
            trust_everyone: self.trust_everyone,
        })
    }
}

/// Sends back whatever it receives, as it came.
struct Echo;

impl Worker for Echo {
    type Message = Opaque;

    async fn handle_message(&mut self, ctx: &mut Context, msg: Routed<Opaque>) -> OnwardResult<()> {
        let back = msg.return_route();
        let message = msg.into_transport_message();
        let reply =
            TransportMessage::new(back, Route::from(ctx.address().clone()), message.payload);
        ctx.forward(reply).await
    }
}

/// Runs the node `spec` describes until Ctrl-C or SIGTERM, printing what it runs,
/// then `ready`; then stops it.
pub(crate) async fn run(spec: Spec, register: Option<Register>) -> Result<(), Failure> {
    let trust = spec.trust()?;
    spec.check(trust.as_ref(), register.is_some())?;
    let identity = IdentityArgs {
        identity: spec.identity.clone(),
    }
    .load()?;
    let node = Node::start()
        .await
        .map_err(|e| Failure::failed("cannot start the node", e))?;
    println!("identity {}", identity.identifier());
    let started = start_services(&node, &spec, trust.as_ref(), &identity, register).await;
    let keep = match started {
        Ok(keep) => keep,
        Err(failure) => {
            let _ = node.stop().await;
            return Err(failure);
        }
    };
    println!("ready");
    wait_for_stop().await;
    drop(keep);
    node.stop()
        .await
        .map_err(|e| Failure::failed("stopping the node", e))?;
    println!("stopped");
    Ok(())
}

/// Handles that keep services running.
type Kept = Vec<Box<dyn std::any::Any + Send>>;

async fn start_services(
    node: &Node,
    spec: &Spec,
    trust: Option<&Trust>,
    identity: &onward_tokio::Identity,
    register: Option<Register>,
) -> Result<Kept, Failure> {
    let trust = trust.cloned();
    let mut kept: Kept = Vec::new();
    if let Some(listen) = &spec.listen {
        let bound = node
            .listen(listen)
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        println!("listening on {bound}");
    }
    if let Some(address) = &spec.secure_listener {
        let policy = need_trust(trust.as_ref(), "a secure channel listener")?.policy();
        node.create_secure_channel_listener(address.as_str(), identity, policy)
            .await
            .map_err(|e| Failure::failed(format!("secure channel listener at {address}"), e))?;
        println!("secure channel listener at 0#{address}");
    }
    let access = |arg: AccessArg, what: &str| arg.access(trust.as_ref(), what);
    for echo in &spec.echo {
        node.start_worker_with(
            echo.address.as_str(),
            Echo,
            access(echo.access, "an echo service")?,
        )
        .await
        .map_err(|e| Failure::failed(format!("echo at {}", echo.address), e))?;
        println!("echo at 0#{} ({})", echo.address, access_name(echo.access));
    }
    for relay in &spec.relay {
        node.create_relay(relay.address.as_str(), access(relay.access, "a relay")?)
            .await
            .map_err(|e| Failure::failed(format!("relay at {}", relay.address), e))?;
        println!(
            "relay at 0#{} ({})",
            relay.address,
            access_name(relay.access)
        );
    }
    for outlet in &spec.outlet {
        let options = PortalOptions {
            access: access(outlet.access, "an outlet")?,
            window: outlet.window.unwrap_or(PortalOptions::default().window),
            ..PortalOptions::default()
        };
        let handle = node
            .create_outlet(outlet.address.as_str(), &outlet.target, options)
            .await
            .map_err(|e| Failure::failed(format!("outlet at {}", outlet.address), e))?;
        println!(
            "outlet at 0#{} to {} ({})",
            outlet.address,
            outlet.target,
            access_name(outlet.access)
        );
        kept.push(Box::new(handle));
    }
    for inlet in &spec.inlet {
        let parse = |text: &str| {
            text.parse::<Route>()
                .map_err(|e| Failure::Usage(format!("inlet route {text:?}: {e}")))
        };
        let mut to = parse(&inlet.to)?;
        let mut options = PortalOptions {
            window: inlet.window.unwrap_or(PortalOptions::default().window),
            ..PortalOptions::default()
        };
        match &inlet.secure {
            Some(secure) => {
                let route = parse(secure)?;
                let policy = need_trust(trust.as_ref(), "a secure channel")?.policy();
                let channel = node
                    .create_persistent_secure_channel(
                        route.clone(),
                        identity,
                        policy,
                        ChannelRules::new(),
                    )
                    .await
                    .map_err(|e| Failure::failed(format!("secure channel along {route}"), e))?;
                println!("secure channel to {} along {route}", channel.peer());
                to.prepend(channel.address().clone());
                kept.push(Box::new(channel));
            }
            // Over plain transport the outlet's answers come from a connection.
            None => options.access = Access::anyone(),
        }
        let handle = node
            .create_inlet(&inlet.listen, to.clone(), options)
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        println!("inlet on {} to {to}", handle.local_addr());
        kept.push(Box::new(handle));
    }
    if let Some(register) = register {
        let policy = need_trust(trust.as_ref(), "registering with a relay")?.policy();
        let registration = node
            .register_with_relay(
                register.at.clone(),
                register.service.as_str(),
                &register.name,
                identity,
                policy,
            )
            .await
            .map_err(|e| {
                Failure::failed(
                    format!("registering {:?} at {}", register.name, register.at),
                    e,
                )
            })?;
        println!("registered {} at {}", registration.address(), register.at);
        kept.push(Box::new(registration));
    }
    Ok(kept)
}

fn access_name(arg: AccessArg) -> &'static str {
    match arg {
        AccessArg::Local => "access: this node only",
        AccessArg::Channels => "access: secure channels",
        AccessArg::Trusted => "access: secure channels from trusted identities",
        AccessArg::Anyone => "access: anyone, plain TCP included",
    }
}

/// Waits for Ctrl-C, or SIGTERM on Unix.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
