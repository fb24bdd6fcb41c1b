//! Handler registries and the context every handler gets.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rgrid_proto::conn::{Routes, ServeMsg, StreamRoute};
use rgrid_proto::{HandlerId, SubrouteId};

pub use rgrid_proto::conn::Class as Priority;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::codec::{Codec, Msgpack, Raw};
use crate::error::{Error, RemoteError};
use crate::typed::Payload;

/// A boxed future returned by type-erased handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A type-erased single-request handler: context and request payload in, response payload or
/// remote error out.
pub type SingleHandlerFn =
    Arc<dyn Fn(HandlerCtx, Bytes) -> BoxFuture<Result<Bytes, RemoteError>> + Send + Sync>;

/// What a handler knows about the call it serves: who called, which handler and subroute,
/// the caller's deadline, and a cancellation signal.
///
/// The deadline is the one the caller sent (`DeadlineMS`), counted from the moment the
/// request arrived here. rgrid enforces it: a single handler still running at its deadline
/// is dropped and its answer is never sent. Long handlers can use [`HandlerCtx::remaining`]
/// to size their work, and [`HandlerCtx::cancelled`] to stop early when the call is gone
/// (its connection dropped, or, for streams, the caller cancelled).
#[derive(Clone, Debug)]
pub struct HandlerCtx {
    remote: Arc<str>,
    handler: HandlerId,
    subroute: Option<SubrouteId>,
    route: Option<Arc<str>>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
}

impl HandlerCtx {
    pub(crate) fn new(
        remote: Arc<str>,
        handler: HandlerId,
        subroute: Option<SubrouteId>,
        deadline: Option<Instant>,
        cancel: CancellationToken,
    ) -> Self {
        HandlerCtx {
            remote,
            handler,
            subroute,
            route: None,
            deadline,
            cancel,
        }
    }

    pub(crate) fn with_route(mut self, route: Option<Arc<str>>) -> Self {
        self.route = route;
        self
    }

    /// The host that made the call, as in the host list.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// The handler id the call addressed.
    pub fn handler(&self) -> HandlerId {
        self.handler
    }

    /// The subroute id the call addressed, if any.
    pub fn subroute(&self) -> Option<&SubrouteId> {
        self.subroute.as_ref()
    }

    /// The static subroute the handler was registered under (`"a/b"`), if any.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// When the caller gives up on this call, or `None` if it sent no deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left before the deadline (zero once it has passed), or `None` if the caller
    /// sent no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the call has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the call is cancelled: its connection dropped, the manager shut down,
    /// or (for streams) the caller cancelled or its deadline passed.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// The cancellation token of the call, for handing to sub-tasks.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// The message of a caught handler panic.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// The connection's side of one served stream, behind [`StreamIn`] and [`StreamOut`] (the
/// connection implements it; the handles stay free of connection types).
pub(crate) trait ServedStream: Send + Sync + std::fmt::Debug {
    /// Polls for the next input message (`None` once the caller closed its input).
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>>;
    /// Polls to send `msg` (taken once it is queued); waits for a credit.
    fn poll_send(
        &self,
        msg: &mut Option<ServeMsg>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>>;
    /// Cancelled with the stream.
    fn cancel_token(&self) -> &CancellationToken;
    /// The connection's [`crate::Options::max_message_size`].
    fn max_message_size(&self) -> usize;
    /// The connection's [`crate::Options::max_depth`].
    fn max_depth(&self) -> usize;
}

/// Sends one message of a served stream, or fails with [`Error::Cancelled`] once the stream
/// is cancelled.
pub(crate) async fn send(served: &dyn ServedStream, msg: ServeMsg) -> Result<(), Error> {
    let mut msg = Some(msg);
    tokio::select! {
        biased;
        r = poll_fn(|cx| served.poll_send(&mut msg, cx)) => r,
        () = served.cancel_token().cancelled() => Err(Error::Cancelled),
    }
}

/// A stream handler's input: the caller's messages, in order. Each message taken returns a
/// credit to the caller. `C` is the [codec](crate::codec): [`Raw`] bytes (the default) or
/// [`Msgpack`] values (typed handlers).
pub struct StreamIn<C: Codec = Raw> {
    /// `None` for a typed handler registered without input: it reads the end at once.
    served: Option<Arc<dyn ServedStream>>,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> std::fmt::Debug for StreamIn<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIn").finish_non_exhaustive()
    }
}

impl<C: Codec> StreamIn<C> {
    pub(crate) fn new(served: Arc<dyn ServedStream>) -> Self {
        StreamIn {
            served: Some(served),
            _codec: PhantomData,
        }
    }

    /// The same input, read with another codec.
    pub(crate) fn with_codec<D: Codec>(input: Option<StreamIn<D>>) -> Self {
        StreamIn {
            served: input.and_then(|i| i.served),
            _codec: PhantomData,
        }
    }

    async fn recv_bytes(&mut self) -> Option<Bytes> {
        let s = &**self.served.as_ref()?;
        tokio::select! {
            biased;
            m = poll_fn(|cx| s.poll_recv(cx)) => m,
            () = s.cancel_token().cancelled() => None,
        }
    }
}

impl StreamIn<Raw> {
    /// The next input message, or `None` once the caller closed its input (or the stream was
    /// cancelled).
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.recv_bytes().await
    }
}

impl<Req: Payload, Resp: Payload> StreamIn<Msgpack<Req, Resp>> {
    /// The next request: `None` once the caller closed its side (or the stream ended), an
    /// error for a request that does not decode (return it with `?` to fail the stream).
    pub async fn recv(&mut self) -> Option<Result<Req, RemoteError>> {
        let raw = self.recv_bytes().await?;
        let depth = self.served.as_ref()?.max_depth();
        Some(
            crate::typed::decode_with_depth(&raw, depth)
                .map_err(|e| RemoteError::new(format_args!("decode request: {e}"))),
        )
    }
}

/// A stream handler's output. Each message waits for a credit from the caller, so a slow
/// caller slows the handler down instead of filling memory. A message that takes the last
/// credit is written before `send` returns; with credits to spare it leaves when the handler
/// next yields, merged with the messages sent meanwhile (bounded; see the crate docs,
/// "Ownership and locking"). `C` is the [codec](crate::codec), as for [`StreamIn`]. Cheap
/// to clone.
pub struct StreamOut<C: Codec = Raw> {
    served: Arc<dyn ServedStream>,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Clone for StreamOut<C> {
    fn clone(&self) -> Self {
        StreamOut {
            served: self.served.clone(),
            _codec: PhantomData,
        }
    }
}

impl<C: Codec> std::fmt::Debug for StreamOut<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOut").finish_non_exhaustive()
    }
}

impl<C: Codec> StreamOut<C> {
    pub(crate) fn new(served: Arc<dyn ServedStream>) -> Self {
        StreamOut {
            served,
            _codec: PhantomData,
        }
    }

    /// The same output, written with another codec.
    pub(crate) fn with_codec<D: Codec>(out: StreamOut<D>) -> Self {
        StreamOut::new(out.served)
    }

    async fn send_bytes(&self, payload: Bytes) -> Result<(), Error> {
        let limit = self.served.max_message_size();
        if payload.len() > limit {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                limit,
            });
        }
        send(&*self.served, ServeMsg::Data(payload)).await
    }

    /// Whether the stream was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.served.cancel_token().is_cancelled()
    }
}

impl StreamOut<Raw> {
    /// Sends one message to the caller. Fails with [`Error::Cancelled`] once the stream is
    /// cancelled (the caller went away, the deadline passed, or the connection dropped).
    pub async fn send(&self, msg: impl Into<Bytes>) -> Result<(), Error> {
        self.send_bytes(msg.into()).await
    }
}

impl<Req: Payload, Resp: Payload> StreamOut<Msgpack<Req, Resp>> {
    /// Sends one response, waiting for a credit from the caller. Fails with
    /// [`Error::Cancelled`] once the stream is cancelled.
    pub async fn send(&self, resp: &Resp) -> Result<(), Error> {
        self.send_bytes(crate::typed::encode(resp)?).await
    }
}

/// Wraps an async function of the payload as a [`SingleHandlerFn`].
pub(crate) fn single_fn<F, Fut>(f: F) -> SingleHandlerFn
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
{
    Arc::new(move |_ctx, payload| Box::pin(f(payload)))
}

/// Wraps an async function of the context and the payload as a [`SingleHandlerFn`].
pub(crate) fn single_ctx_fn<F, Fut>(f: F) -> SingleHandlerFn
where
    F: Fn(HandlerCtx, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
{
    Arc::new(move |ctx, payload| Box::pin(f(ctx, payload)))
}

/// A type-erased stream handler: context, initial payload, the input (when the handler
/// takes one) and the output in; `Ok` or a remote error out, sent to the caller as the end
/// of the stream.
pub type StreamHandlerFn = Arc<
    dyn Fn(HandlerCtx, Bytes, Option<StreamIn>, StreamOut) -> BoxFuture<Result<(), RemoteError>>
        + Send
        + Sync,
>;

/// A stream handler and its capacities, for [`crate::Manager::register_stream`].
#[derive(Clone)]
pub struct RawStreamHandler {
    pub(crate) in_capacity: u32,
    pub(crate) out_capacity: u32,
    pub(crate) priority: Priority,
    pub(crate) f: StreamHandlerFn,
}

impl RawStreamHandler {
    /// A handler with `in_capacity` input messages in flight (0 = the stream has no input)
    /// and `out_capacity` output messages in flight (at least 1). Both ends size their
    /// credit windows from these numbers, so they must be registered alike on every node.
    pub fn new<F, Fut>(in_capacity: usize, out_capacity: usize, f: F) -> Self
    where
        F: Fn(HandlerCtx, Bytes, Option<StreamIn>, StreamOut) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        RawStreamHandler {
            in_capacity: u32::try_from(in_capacity).unwrap_or(u32::MAX),
            out_capacity: u32::try_from(out_capacity).unwrap_or(u32::MAX).max(1),
            priority: Priority::Normal,
            f: Arc::new(move |ctx, payload, input, output| {
                Box::pin(f(ctx, payload, input, output))
            }),
        }
    }

    /// Sets the scheduling class of the stream's messages on the wire, on both ends (the
    /// caller's input uses the caller's registration, the handler's output this one).
    /// Default [`Priority::Normal`]. Mark large transfers [`Priority::Bulk`] so small calls
    /// on the same connection never wait behind more than one of their messages: the writer
    /// sends them first, and while they are in flight a bulk stream keeps one message ahead
    /// of its consumer instead of its whole window (the crate docs, "Bulk yields its
    /// window"). The wire carries no priority, so peers are unaffected.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Input messages in flight (0 = no input stream).
    pub fn in_capacity(&self) -> usize {
        self.in_capacity as usize
    }

    /// Output messages in flight (at least 1).
    pub fn out_capacity(&self) -> usize {
        self.out_capacity as usize
    }
}

impl std::fmt::Debug for RawStreamHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStreamHandler")
            .field("in_capacity", &self.in_capacity)
            .field("out_capacity", &self.out_capacity)
            .finish_non_exhaustive()
    }
}

/// A registered stream handler with the route it was registered under.
#[derive(Clone, Debug)]
pub(crate) struct StreamEntry {
    pub(crate) handler: RawStreamHandler,
    pub(crate) route: Option<Arc<str>>,
}

/// A registered single handler.
#[derive(Clone)]
pub(crate) struct SingleEntry {
    pub(crate) f: SingleHandlerFn,
    /// Opted in to its first poll on the connection's reader ([`Manager::register_single_inline`]).
    pub(crate) inline: bool,
    /// The subroute's name, for spans (`None` without a subroute).
    pub(crate) route: Option<Arc<str>>,
}

/// All handlers of a manager, by id and by subroute id.
#[derive(Default)]
pub(crate) struct Registry {
    single: HashMap<HandlerId, SingleEntry>,
    single_sub: HashMap<SubrouteId, SingleEntry>,
    stream: HashMap<HandlerId, StreamEntry>,
    stream_sub: HashMap<SubrouteId, StreamEntry>,
}

impl Registry {
    /// Registers a single handler under `id`, or under `(id, subroute)`.
    pub(crate) fn add_single(
        &mut self,
        id: HandlerId,
        subroute: Option<&str>,
        f: SingleHandlerFn,
        inline: bool,
    ) -> Result<(), Error> {
        let f = SingleEntry {
            f,
            inline,
            route: subroute.map(Arc::from),
        };
        if !id.is_valid() {
            return Err(Error::UnknownHandler(id));
        }
        let exists = match subroute {
            None => self.single.contains_key(&id),
            Some(route) => self.single_sub.contains_key(&SubrouteId::new(id, route)),
        };
        // MinIO lets tests re-register the two test ids.
        if exists && !id.is_test() {
            return Err(Error::HandlerAlreadyExists(id));
        }
        match subroute {
            None => {
                self.single.insert(id, f);
            }
            Some(route) => {
                self.single_sub.insert(SubrouteId::new(id, route), f);
            }
        }
        Ok(())
    }

    /// Registers a stream handler under `id`, or under `(id, subroute)`.
    pub(crate) fn add_stream(
        &mut self,
        id: HandlerId,
        subroute: Option<&str>,
        handler: RawStreamHandler,
    ) -> Result<(), Error> {
        if !id.is_valid() {
            return Err(Error::UnknownHandler(id));
        }
        let exists = match subroute {
            None => self.stream.contains_key(&id),
            Some(route) => self.stream_sub.contains_key(&SubrouteId::new(id, route)),
        };
        if exists && !id.is_test() {
            return Err(Error::HandlerAlreadyExists(id));
        }
        match subroute {
            None => {
                self.stream.insert(
                    id,
                    StreamEntry {
                        handler,
                        route: None,
                    },
                );
            }
            Some(route) => {
                let entry = StreamEntry {
                    handler,
                    route: Some(Arc::from(route)),
                };
                self.stream_sub.insert(SubrouteId::new(id, route), entry);
            }
        }
        Ok(())
    }

    /// The stream handler for `id` with an optional subroute id.
    pub(crate) fn stream(
        &self,
        id: HandlerId,
        subroute: Option<&SubrouteId>,
    ) -> Option<StreamEntry> {
        match subroute {
            None => self.stream.get(&id).cloned(),
            Some(sub) => self.stream_sub.get(sub).cloned(),
        }
    }

    /// The single handler for a request to `id` with an optional subroute id.
    pub(crate) fn single(
        &self,
        id: HandlerId,
        subroute: Option<&SubrouteId>,
    ) -> Option<SingleEntry> {
        match subroute {
            None => self.single.get(&id).cloned(),
            Some(sub) => self.single_sub.get(sub).cloned(),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("single", &self.single.keys().collect::<Vec<_>>())
            .field("single_sub", &self.single_sub.len())
            .field("stream", &self.stream.keys().collect::<Vec<_>>())
            .field("stream_sub", &self.stream_sub.len())
            .finish()
    }
}

/// The core asks the registry whether a call can be served (and with which windows).
impl Routes for Registry {
    fn single(&self, id: HandlerId, subroute: Option<&SubrouteId>) -> Option<Priority> {
        let found = match subroute {
            None => self.single.contains_key(&id),
            Some(sub) => self.single_sub.contains_key(sub),
        };
        found.then_some(Priority::Latency)
    }

    fn stream(&self, id: HandlerId, subroute: Option<&SubrouteId>) -> Option<StreamRoute> {
        let entry = match subroute {
            None => self.stream.get(&id),
            Some(sub) => self.stream_sub.get(sub),
        }?;
        Some(StreamRoute {
            in_capacity: entry.handler.in_capacity,
            out_capacity: entry.handler.out_capacity,
            class: entry.handler.priority,
        })
    }
}
