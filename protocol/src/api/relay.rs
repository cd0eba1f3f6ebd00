//! Relays on the async layer: a relay service on a node that listens, and the
//! registration that makes a node without a listener reachable through one.

use std::time::Duration;

use futures::future::{self, Either};

use crate::identity::Identity;
use crate::node::{is_valid_relay_name, Access, ChannelRules, RelayStatus, RELAY_REGISTER};
use crate::routing::{Address, Route};
use crate::trust::TrustPolicy;

use super::context::Context;
use super::node::{Node, SecureChannel};
use super::signal::Signal;
use super::{Error, Result};

/// How long a registration waits for the relay's answer.
pub const RELAY_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a registered node registers again: after its connection to the relay
/// dropped and came back, the relay forwards to it again within this.
pub const RELAY_REFRESH: Duration = Duration::from_secs(5);

/// How soon a registration that failed (the channel to the relay down, the relay
/// unreachable) is tried again.
pub const RELAY_RETRY: Duration = Duration::from_millis(500);

/// A name registered with a relay service, kept registered: see
/// [`Node::register_with_relay`]. Dropping it stops registering again (the relay
/// keeps the name for its owner, and forwards to it while the connection lasts).
pub struct RelayRegistration {
    address: Address,
    channel: SecureChannel,
    stop: Signal,
}

impl std::fmt::Debug for RelayRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayRegistration")
            .field("address", &self.address)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RelayRegistration {
    /// The name's address on the relay's node: initiators reach this node's channel
    /// listener at `route![<the relay>, registration.address(), "<listener>"]`.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The persistent secure channel to the relay that registrations go through.
    pub fn channel(&self) -> &SecureChannel {
        &self.channel
    }
}

impl Drop for RelayRegistration {
    fn drop(&mut self) {
        self.stop.fire();
    }
}

impl Node {
    /// Starts a relay service at `address`: nodes that connect to this one register
    /// names with it through secure channels that `access` admits (for instance
    /// [`Access::secure_channels_from`] a trust policy), and it forwards what is sent
    /// to `<address>/<name>` over the registering node's connection. It sees routes
    /// and what they carry: channel records, for channels to the registered node. A
    /// name belongs to the identity that registered it first.
    ///
    /// # Errors
    ///
    /// [`Error::Node`] if the address is taken; [`Error::Stopped`].
    pub async fn create_relay(&self, address: impl Into<Address>, access: Access) -> Result<()> {
        if self.shared.closing.is_fired() {
            return Err(Error::Stopped);
        }
        let address = address.into();
        self.shared
            .with_core(|core, now| core.create_relay(address, access, now))?;
        Ok(())
    }

    /// The names registered with this node's relay services, each with the identity
    /// that owns it and whether that node is connected now.
    pub fn relay_names(&self) -> Vec<(Address, crate::identity::Identifier, bool)> {
        self.shared.driver().core.relay_names()
    }

    /// Makes this node reachable through a relay, without a listener of its own: opens
    /// a persistent secure channel along `relay` (the route to the relay node's
    /// channel listener, its first hop a direct connection such as `tcp(relay)`) as
    /// `identity`, trusting `trust`, and registers `name` with the relay service at
    /// `service` on that node. Returns once the relay has answered "registered".
    ///
    /// The registration is kept: it is sent again every [`RELAY_REFRESH`], and every
    /// [`RELAY_RETRY`] while the relay cannot be reached, so that after the connection
    /// drops, or the relay restarts, the relay forwards to this node again by itself.
    /// A later refusal (a restarted relay where another identity took the name first)
    /// is logged as a warning and asked again every [`RELAY_REFRESH`].
    ///
    /// # Errors
    ///
    /// [`Error::RelayRefused`] if the name is not valid or the relay refused it (taken
    /// by another identity, not from a directly connected node, the relay full); as
    /// [`create_secure_channel`](Self::create_secure_channel) for the channel;
    /// [`Error::Timeout`] if the relay did not answer within
    /// [`RELAY_ANSWER_TIMEOUT`].
    pub async fn register_with_relay(
        &self,
        relay: impl Into<Route>,
        service: impl Into<Address>,
        name: &str,
        identity: &Identity,
        trust: impl TrustPolicy,
    ) -> Result<RelayRegistration> {
        if !is_valid_relay_name(name) {
            return Err(Error::RelayRefused {
                name: name.to_owned(),
                status: RelayStatus::Invalid,
                detail: "a name is 1 to 64 letters, digits, '.', '-' and '_'".to_owned(),
            });
        }
        let service = service.into();
        let channel = self
            .create_persistent_secure_channel(relay, identity, trust, ChannelRules::new())
            .await?;
        let ctx = self.new_context().await?;
        let to = crate::route![channel.address().clone(), service];
        let address = register(&ctx, &to, name).await?;
        tracing::debug!(%address, "registered with a relay");
        let stop = Signal::default();
        // The task holds no `Node`: it does not keep the node running.
        let shared = self.shared.clone();
        let (stopped, name) = (stop.clone(), name.to_owned());
        self.spawn(async move {
            let mut wait = RELAY_REFRESH;
            loop {
                let ended = future::select(stopped.wait(), shared.closing.wait());
                if let Either::Right(_) = future::select(shared.runtime.sleep(wait), ended).await {
                    return;
                }
                wait = match register(&ctx, &to, &name).await {
                    Ok(_) => RELAY_REFRESH,
                    Err(Error::Stopped) => return,
                    // An answer, not a failure to reach the relay (another identity
                    // took the name on a relay that restarted): said loudly, and not
                    // asked again twice a second.
                    Err(error @ Error::RelayRefused { .. }) => {
                        tracing::warn!(%error, %name, "the relay refused the registration");
                        RELAY_REFRESH
                    }
                    Err(error) => {
                        tracing::debug!(%error, %name, "registering with the relay again failed");
                        RELAY_RETRY
                    }
                };
            }
        });
        Ok(RelayRegistration {
            address,
            channel,
            stop,
        })
    }
}

/// Sends one registration of `name` along `to` and reads the answer.
async fn register(ctx: &Context, to: &Route, name: &str) -> Result<Address> {
    let answer = ctx
        .request::<(u8, String)>(
            to.clone(),
            (RELAY_REGISTER, name.to_owned()),
            RELAY_ANSWER_TIMEOUT,
        )
        .await?;
    let (code, detail) = answer.into_body();
    match RelayStatus::from_code(code) {
        Some(RelayStatus::Registered) => {
            detail.parse::<Address>().map_err(|_| Error::RelayRefused {
                name: name.to_owned(),
                status: RelayStatus::Invalid,
                detail: format!("the relay answered an address that is none: {detail:?}"),
            })
        }
        status => Err(Error::RelayRefused {
            name: name.to_owned(),
            status: status.unwrap_or(RelayStatus::Invalid),
            detail,
        }),
    }
}
