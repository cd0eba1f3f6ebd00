//! `onward send`: one message along a route, the reply printed.

use onward_tokio::{Access, Error, Node, Opaque};

use crate::args::{need_trust, SendArgs, Trust};
use crate::Failure;

/// Sends the message (through a secure channel it opens, with `--secure`), prints the
/// reply on standard output, and stops.
pub(crate) async fn run(args: SendArgs) -> Result<(), Failure> {
    let node = Node::start()
        .await
        .map_err(|e| Failure::failed("cannot start the node", e))?;
    let result = send(&node, args).await;
    let _ = node.stop().await;
    let reply = result?;
    println!("{reply}");
    Ok(())
}

async fn send(node: &Node, args: SendArgs) -> Result<String, Failure> {
    let mut route = args.route;
    // Held until the reply is in: dropping the last handle closes the channel.
    let mut channel = None;
    // A reply over plain TCP comes from a connection: the sender takes it only when
    // it sent without a channel.
    let mut access = Access::anyone();
    if let Some(secure) = &args.secure {
        let trust = Trust::from_args(&args.trust)?;
        let trust = need_trust(trust.as_ref(), "--secure")?;
        let identity = args.identity.load()?;
        let opened = node
            .create_secure_channel(secure.clone(), &identity, trust.policy())
            .await
            .map_err(|e| Failure::failed(format!("secure channel along {secure}"), e))?;
        eprintln!(
            "secure channel to {} as {} along {secure}",
            opened.peer(),
            identity.identifier()
        );
        route.prepend(opened.address().clone());
        channel = Some(opened);
        access = Access::secure_channels();
    }
    let ctx = node
        .context_with(format!("send-{}", std::process::id()), access)
        .await
        .map_err(|e| Failure::failed("cannot open a context", e))?;
    let reply = ctx
        .request::<Opaque>(route.clone(), args.message, args.timeout)
        .await
        .map_err(|e| Failure::failed(format!("sending to {route}"), e))?;
    drop(channel);
    reply.body_as::<String>().map_err(|error| match error {
        Error::Remote { .. } => Failure::failed(format!("sending to {route}"), error),
        _ => Failure::Failed(format!(
            "the reply from {route} is not a text ({} bytes)",
            reply.payload().len()
        )),
    })
}
