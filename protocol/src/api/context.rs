//! A context: an address that can send, and receive what is sent to it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, Either};
use futures::StreamExt;

use crate::identity::Identifier;
use crate::message::TransportMessage;
use crate::node::{NodeError, Origin};
use crate::routing::{Address, Route};

use super::driver::Shared;
use super::queue::Receiver;
use super::worker::{Message, Routed};
use super::{Error, Result};

/// What a mailbox holds: a message with where it came from, or the failure of an
/// earlier send.
pub(crate) type Delivery = std::result::Result<(TransportMessage, Origin), (NodeError, u64)>;

/// The id of a send made with [`Context::send_tracked`]: a failure of that message
/// found later comes back as [`Error::Undelivered`] with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub(crate) u64);

impl fmt::Display for SendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "send {}", self.0)
    }
}

/// An address on a node, with a mailbox. Workers get one for each message they
/// handle; the application gets its own from [`Node::context`](super::Node::context).
pub struct Context {
    address: Address,
    shared: Arc<Shared>,
    mailbox: Receiver<Delivery>,
    /// An application context, which may wait for congestion to clear; a worker's
    /// context never waits, so chains of workers cannot deadlock.
    may_wait: bool,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        self.shared
            .unregister_if_owner(&self.address, &self.mailbox);
    }
}

impl Context {
    pub(crate) fn new(
        address: Address,
        shared: Arc<Shared>,
        mailbox: Receiver<Delivery>,
        may_wait: bool,
    ) -> Self {
        Self {
            address,
            shared,
            mailbox,
            may_wait,
        }
    }

    /// This context's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Sends `body` along `route`, with this context's address as the return route.
    ///
    /// Returns once the node has taken the message: delivered to a local mailbox,
    /// queued on a connection, or encrypted into a channel. A failure found later (the
    /// connection could not be opened, say) arrives as an error from
    /// [`receive`](Self::receive).
    ///
    /// An application context (from [`Node::context`](super::Node::context)) waits
    /// while the first hop is congested (past half its limit), so a fast sender is
    /// slowed rather than refused. A worker's context never waits: a full mailbox or
    /// connection is an error at once, so chains of workers cannot deadlock.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if `body` does not encode; [`Error::Node`] if the node refused
    /// the message (unknown address, full mailbox or connection, channel not usable,
    /// or an access rule on the way: [`NodeError::Refused`]);
    /// [`Error::Timeout`] if an application context waited the send timeout for a
    /// congested first hop.
    pub async fn send<M: Message>(&self, route: impl Into<Route>, body: M) -> Result<()> {
        self.sender_ref().send(route, body).await
    }

    /// Sends a message with the routes it carries, unchanged: for workers that pass
    /// messages on.
    ///
    /// The message leaves as this context's own: its origin is this node, whatever it
    /// was when it arrived. So a worker that forwards what it receives lends its
    /// standing to its senders: one reachable through a channel or over TCP lets them
    /// reach addresses that take only local senders, a channel's encryptor among them.
    /// Give a forwarding worker a rule no wider than what it forwards to should accept.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn forward(&self, message: TransportMessage) -> Result<()> {
        self.sender_ref().forward(message).await
    }

    /// As [`send`](Self::send), and returns an id for this send: if the message is
    /// found undeliverable later (its connection could not be opened, or closed
    /// before the message was written), [`receive`](Self::receive) returns
    /// [`Error::Undelivered`] with this id, so the failure can be matched to the send.
    /// (A failure a node on the route reports comes back as [`Error::Remote`],
    /// naming the address it could not reach; the wire carries no id.)
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_tracked<M: Message>(
        &self,
        route: impl Into<Route>,
        body: M,
    ) -> Result<SendId> {
        self.sender_ref().send_tracked(route.into(), body).await
    }

    /// Sends `body` along `route` as a request and waits, up to `timeout`, for its
    /// reply, decoded as an `R`.
    ///
    /// The request goes from a fresh address made for this call alone (with this
    /// context's access rule), so the reply cannot be confused with the reply to
    /// another request, a late one included, nor with anything else this context
    /// receives; the address goes when the call returns. A failure to deliver the
    /// request, whether found by this node or reported by another
    /// ([`Error::Remote`]), comes back to that address and is this call's error. The
    /// server side is a plain [`Worker`](super::Worker) replying to the return route.
    /// Calls may run concurrently, from this context or from its
    /// [`sender`](Self::sender)s.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send) and [`receive`](Self::receive): [`Error::Timeout`] if
    /// no reply came within `timeout`; [`Error::Node`] or [`Error::Remote`] if the
    /// request could not be delivered; [`Error::Decode`] if the reply is not an `R`.
    pub async fn request<R: Message>(
        &self,
        route: impl Into<Route>,
        body: impl Message,
        timeout: Duration,
    ) -> Result<Routed<R>> {
        self.sender_ref().request(route.into(), body, timeout).await
    }

    /// A handle that sends as this context (replies come to this context's mailbox),
    /// to send from another task while this one receives.
    pub fn sender(&self) -> Sender {
        Sender {
            address: self.address.clone(),
            shared: self.shared.clone(),
            may_wait: self.may_wait,
        }
    }

    fn sender_ref(&self) -> SenderRef<'_> {
        SenderRef {
            address: &self.address,
            shared: &self.shared,
            may_wait: self.may_wait,
        }
    }

    /// The verified identifier of the peer at the other end of the secure channel whose
    /// local end is `address`, or `None` if `address` is not an established channel end
    /// on this node.
    ///
    /// A message that came through a secure channel has that channel's local end first
    /// on its return route, so `msg.sender().and_then(|end| ctx.secure_channel_peer(end))` tells a worker
    /// who sent it. A message that arrived any other way has a connection or a worker
    /// first, and gets `None`: a remote peer cannot put a channel end there.
    /// [`Routed::channel_peer`] is the authoritative answer: the node sets it when it
    /// delivers, and it stays right after the channel has closed, when this lookup
    /// finds nothing.
    pub fn secure_channel_peer(&self, address: &Address) -> Option<Identifier> {
        self.shared.channel_peer(address)
    }

    /// Waits for the next message, up to the node's receive timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if nothing arrives in time; [`Error::Node`] for a failure of
    /// an earlier send from this context (a secure channel it sent through that
    /// failed, among others); [`Error::Remote`] when a node on the route sent back a
    /// report that it could not pass one of this context's messages on;
    /// [`Error::Decode`] if the body is not an `M` (the message is consumed: to try
    /// several types, receive [`Opaque`](super::Opaque) and use
    /// [`Routed::body_as`] or [`Routed::into_typed`]);
    /// [`Error::Stopped`] once the node has stopped.
    pub async fn receive<M: Message>(&mut self) -> Result<Routed<M>> {
        let timeout = self.shared.receive_timeout();
        self.receive_timeout(timeout).await
    }

    /// As [`receive`](Self::receive), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive).
    pub async fn receive_timeout<M: Message>(&mut self, timeout: Duration) -> Result<Routed<M>> {
        let (message, origin) = self.next_delivery(Some(timeout)).await?;
        Routed::decode(message, origin)
    }

    /// Waits for the next message for as long as it takes: the receive of a service
    /// loop. Ends with [`Error::Stopped`] when the node stops.
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive), but for the timeout.
    pub async fn next_message<M: Message>(&mut self) -> Result<Routed<M>> {
        let (message, origin) = self.next_delivery(None).await?;
        Routed::decode(message, origin)
    }

    /// The messages to this context as a [`Stream`](futures::Stream) (the `futures`
    /// trait, so the same loop runs on every runtime), each decoded as an `M` or the
    /// error that came instead; the stream ends when the node stops.
    ///
    /// ```no_run
    /// # async fn serve(mut ctx: onward_protocol::api::Context) {
    /// use futures::StreamExt;
    /// let mut messages = ctx.messages::<String>();
    /// while let Some(message) = messages.next().await {
    ///     match message {
    ///         Ok(request) => println!("{}", request.body()),
    ///         Err(error) => eprintln!("{error}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn messages<M: Message>(
        &mut self,
    ) -> impl futures::Stream<Item = Result<Routed<M>>> + Unpin + Send + '_ {
        // Boxed, so that it is `Unpin`: `next()` works on it as it is.
        Box::pin(futures::stream::unfold(self, |ctx| async move {
            match ctx.next_message::<M>().await {
                Err(Error::Stopped) => None,
                item => Some((item, ctx)),
            }
        }))
    }

    /// The next delivery, reporting it consumed to the node.
    pub(crate) async fn next_delivery(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<(TransportMessage, Origin)> {
        let next = match timeout {
            None => self.mailbox.next().await,
            // Already there: no timer to make.
            Some(_) if self.mailbox.is_ready() => self.mailbox.next().await,
            Some(timeout) => {
                let sleep = self.shared.sleep(timeout);
                match future::select(self.mailbox.next(), sleep).await {
                    Either::Left((next, _)) => next,
                    Either::Right(((), _)) => return Err(Error::Timeout(timeout)),
                }
            }
        };
        self.take(next)
    }

    /// As [`next_delivery`](Self::next_delivery) without a timeout, for a task that
    /// polls its mailbox beside other sources (a portal session).
    pub(crate) fn poll_delivery(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(TransportMessage, Origin)>> {
        self.mailbox.poll_next_unpin(cx).map(|next| self.take(next))
    }

    /// What came out of the mailbox, reported consumed to the node.
    fn take(&self, next: Option<Delivery>) -> Result<(TransportMessage, Origin)> {
        match next {
            Some(Ok(delivery)) => {
                self.shared.consumed(&self.address);
                Ok(delivery)
            }
            Some(Err((error, 0))) => Err(Error::Node(error)),
            Some(Err((error, send))) => Err(Error::Undelivered {
                send: SendId(send),
                error,
            }),
            None => Err(Error::Stopped),
        }
    }
}

/// A cloneable handle that sends as a [`Context`]: the return route of what it sends
/// is that context's address. Get one with [`Context::sender`].
#[derive(Clone)]
pub struct Sender {
    address: Address,
    shared: Arc<Shared>,
    may_wait: bool,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// The address replies go to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// As [`Context::send`].
    ///
    /// # Errors
    ///
    /// As [`Context::send`].
    pub async fn send<M: Message>(&self, route: impl Into<Route>, body: M) -> Result<()> {
        self.as_ref().send(route, body).await
    }

    /// As [`Context::forward`].
    ///
    /// # Errors
    ///
    /// As [`Context::send`].
    pub async fn forward(&self, message: TransportMessage) -> Result<()> {
        self.as_ref().forward(message).await
    }

    /// As [`Context::send_tracked`].
    ///
    /// # Errors
    ///
    /// As [`Context::send`].
    pub async fn send_tracked<M: Message>(
        &self,
        route: impl Into<Route>,
        body: M,
    ) -> Result<SendId> {
        self.as_ref().send_tracked(route.into(), body).await
    }

    /// As [`Context::request`].
    ///
    /// # Errors
    ///
    /// As [`Context::request`].
    pub async fn request<R: Message>(
        &self,
        route: impl Into<Route>,
        body: impl Message,
        timeout: Duration,
    ) -> Result<Routed<R>> {
        self.as_ref().request(route.into(), body, timeout).await
    }

    fn as_ref(&self) -> SenderRef<'_> {
        SenderRef {
            address: &self.address,
            shared: &self.shared,
            may_wait: self.may_wait,
        }
    }
}

/// What sending needs, borrowed from a context or a sender.
struct SenderRef<'a> {
    address: &'a Address,
    shared: &'a Arc<Shared>,
    may_wait: bool,
}

impl SenderRef<'_> {
    async fn send<M: Message>(&self, route: impl Into<Route>, body: M) -> Result<()> {
        let payload = super::worker::encode_body(&body)?;
        let message =
            TransportMessage::new(route.into(), Route::from(self.address.clone()), payload);
        self.forward(message).await
    }

    async fn send_tracked<M: Message>(&self, route: Route, body: M) -> Result<SendId> {
        let payload = super::worker::encode_body(&body)?;
        let message = TransportMessage::new(route, Route::from(self.address.clone()), payload);
        if self.may_wait {
            self.shared.wait_uncongested(&message.onward_route).await?;
        }
        let send = self.shared.send_tracked(self.address, message)?;
        Ok(SendId(send))
    }

    async fn request<R: Message>(
        &self,
        route: Route,
        body: impl Message,
        timeout: Duration,
    ) -> Result<Routed<R>> {
        let (address, mailbox) = self.shared.open_reply_mailbox(self.address)?;
        // Dropped when the call returns: the address goes with it.
        let mut reply = Context::new(address, self.shared.clone(), mailbox, self.may_wait);
        reply.send(route, body).await?;
        reply.receive_timeout(timeout).await
    }

    async fn forward(&self, message: TransportMessage) -> Result<()> {
        if self.may_wait {
            self.shared.wait_uncongested(&message.onward_route).await?;
        }
        self.shared.send(self.address, message)
    }
}
