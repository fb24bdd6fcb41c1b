//! Typed streams: an initial payload, typed requests up and typed responses down.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream as FuturesStream;

use super::{Payload, Target, bad_request, decode, encode};
use crate::HandlerId;
use crate::connection::{Responses, Stream, StreamSender};
use crate::error::{Error, RemoteError};
use crate::handlers::{HandlerCtx, StreamHandler as RawStreamHandler, StreamIn, StreamOut};
use crate::manager::Manager;

/// A typed stream handler: an initial payload `P`, requests `Req` from the caller and
/// responses `Resp` to it, all MessagePack (see the [module docs](super)). Capacities
/// default to 1 each way, like MinIO's. Use [`NoPayload`](super::NoPayload) for `P` with
/// [`StreamHandler::register_no_payload`], and for `Req` with
/// [`StreamHandler::register_no_input`].
pub struct StreamHandler<P, Req, Resp> {
    id: HandlerId,
    in_capacity: usize,
    out_capacity: usize,
    _types: PhantomData<fn(P, Req) -> Resp>,
}

impl<P, Req, Resp> std::fmt::Debug for StreamHandler<P, Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHandler")
            .field("id", &self.id)
            .field("in_capacity", &self.in_capacity)
            .field("out_capacity", &self.out_capacity)
            .finish()
    }
}

impl<P: Payload, Req: Payload, Resp: Payload> StreamHandler<P, Req, Resp> {
    /// The handler with id `id`, in and out capacity 1.
    pub const fn new(id: HandlerId) -> Self {
        StreamHandler {
            id,
            in_capacity: 1,
            out_capacity: 1,
            _types: PhantomData,
        }
    }

    /// The number of requests the handler side buffers; 0 = the stream takes no requests
    /// (declare it so on a stream registered with [`StreamHandler::register_no_input`]: a
    /// caller that does not register the handler itself opens it with these windows).
    pub const fn with_in_capacity(mut self, n: usize) -> Self {
        self.in_capacity = n;
        self
    }

    /// The number of responses the caller side buffers (at least 1).
    pub const fn with_out_capacity(mut self, n: usize) -> Self {
        self.out_capacity = if n == 0 { 1 } else { n };
        self
    }

    /// The handler id.
    pub const fn id(&self) -> HandlerId {
        self.id
    }

    /// Registers `f`, which gets the context, the decoded payload, the requests and the
    /// response sender, under this id and optionally a static subroute.
    pub fn register<F, Fut>(
        &self,
        manager: &Manager,
        subroute: Option<&str>,
        f: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, P, TypedIn<Req>, TypedOut<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        self.register_raw(manager, subroute, self.in_capacity, f)
    }

    /// Registers `f` for a stream without requests (MinIO's `RegisterNoInput`).
    pub fn register_no_input<F, Fut>(
        &self,
        manager: &Manager,
        subroute: Option<&str>,
        f: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, P, TypedOut<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        self.register_raw(manager, subroute, 0, move |ctx, p, _, out| f(ctx, p, out))
    }

    /// Registers `f` for a stream whose initial payload is ignored (MinIO's
    /// `RegisterNoPayload`).
    pub fn register_no_payload<F, Fut>(
        &self,
        manager: &Manager,
        subroute: Option<&str>,
        f: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, TypedIn<Req>, TypedOut<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        let raw = RawStreamHandler::new(
            self.in_capacity,
            self.out_capacity,
            move |ctx, _, input: Option<StreamIn>, out: StreamOut| {
                f(ctx, TypedIn::new(input), TypedOut::new(out))
            },
        );
        manager.register_stream(self.id, subroute, raw)
    }

    fn register_raw<F, Fut>(
        &self,
        manager: &Manager,
        subroute: Option<&str>,
        in_capacity: usize,
        f: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, P, TypedIn<Req>, TypedOut<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        let raw = RawStreamHandler::new(
            in_capacity,
            self.out_capacity,
            move |ctx, payload: bytes::Bytes, input: Option<StreamIn>, out: StreamOut| {
                let run = decode::<P>(&payload)
                    .map(|p| f(ctx, p, TypedIn::new(input), TypedOut::new(out)));
                async move { run.map_err(bad_request)?.await }
            },
        );
        manager.register_stream(self.id, subroute, raw)
    }

    /// Opens the stream on `to` (a [`crate::Connection`] or [`crate::Subroute`]) with the
    /// initial payload `payload`, no deadline.
    pub async fn call(
        &self,
        to: &impl Target,
        payload: &P,
    ) -> Result<TypedStream<Req, Resp>, Error> {
        self.call_inner(to, payload, None).await
    }

    /// Like [`StreamHandler::call`], with a deadline for the whole stream.
    pub async fn call_with_deadline(
        &self,
        to: &impl Target,
        payload: &P,
        deadline: Duration,
    ) -> Result<TypedStream<Req, Resp>, Error> {
        self.call_inner(to, payload, Some(deadline)).await
    }

    async fn call_inner(
        &self,
        to: &impl Target,
        payload: &P,
        deadline: Option<Duration>,
    ) -> Result<TypedStream<Req, Resp>, Error> {
        let payload = encode(payload)?;
        // This node's registration of the handler if there is one (MinIO's way), else the
        // static's own windows: a caller need not register the handler.
        let mut options = crate::CallOptions::new().capacities(self.in_capacity, self.out_capacity);
        options.deadline = deadline;
        options.registration_first = true;
        let raw = to.raw_stream(self.id, payload, options).await?;
        Ok(TypedStream {
            raw,
            _types: PhantomData,
        })
    }
}

/// A typed stream handler's requests.
pub struct TypedIn<Req> {
    raw: Option<StreamIn>,
    _types: PhantomData<fn() -> Req>,
}

impl<Req> std::fmt::Debug for TypedIn<Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedIn").finish_non_exhaustive()
    }
}

impl<Req: Payload> TypedIn<Req> {
    fn new(raw: Option<StreamIn>) -> Self {
        TypedIn {
            raw,
            _types: PhantomData,
        }
    }

    /// The next request: `None` once the caller closed its side (or the stream ended), an
    /// error for a request that does not decode (return it with `?` to fail the stream).
    pub async fn recv(&mut self) -> Option<Result<Req, RemoteError>> {
        let raw = self.raw.as_mut()?.recv().await?;
        Some(decode(&raw).map_err(bad_request))
    }
}

/// A typed stream handler's response sender.
pub struct TypedOut<Resp> {
    raw: StreamOut,
    _types: PhantomData<fn(Resp)>,
}

impl<Resp> Clone for TypedOut<Resp> {
    fn clone(&self) -> Self {
        TypedOut {
            raw: self.raw.clone(),
            _types: PhantomData,
        }
    }
}

impl<Resp> std::fmt::Debug for TypedOut<Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedOut").finish_non_exhaustive()
    }
}

impl<Resp: Payload> TypedOut<Resp> {
    fn new(raw: StreamOut) -> Self {
        TypedOut {
            raw,
            _types: PhantomData,
        }
    }

    /// Sends one response, waiting for a credit from the caller. Fails with
    /// [`Error::Cancelled`] once the stream is cancelled.
    pub async fn send(&self, resp: &Resp) -> Result<(), Error> {
        self.raw.send(encode(resp)?).await
    }

    /// Whether the stream was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.raw.is_cancelled()
    }
}

/// The caller's handle to a typed stream: send requests, close the request side, and receive
/// decoded responses as a [`futures_util::Stream`]. Dropping it cancels the stream, like
/// [`crate::Stream`], whose semantics it shares. A response that does not decode is yielded
/// as [`Error::Decode`].
pub struct TypedStream<Req, Resp> {
    raw: Stream,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> std::fmt::Debug for TypedStream<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedStream")
            .field("raw", &self.raw)
            .finish()
    }
}

impl<Req: Payload, Resp: Payload> TypedStream<Req, Resp> {
    /// Sends one request, waiting for a credit if the handler is behind.
    pub async fn send(&mut self, req: &Req) -> Result<(), Error> {
        self.raw.send(encode(req)?).await
    }

    /// Closes the request side. Idempotent.
    pub fn close_send(&mut self) {
        self.raw.close_send();
    }

    /// Cancels the stream.
    pub fn cancel(&self) {
        self.raw.cancel();
    }

    /// Splits the handle so requests and responses can be handled in different tasks.
    pub fn split(self) -> (Option<TypedSender<Req>>, TypedResponses<Resp>) {
        let (tx, rx) = self.raw.split();
        (
            tx.map(|raw| TypedSender {
                raw,
                _types: PhantomData,
            }),
            TypedResponses {
                raw: rx,
                _types: PhantomData,
            },
        )
    }

    /// Closes the request side and receives every response with `f` until the stream ends.
    pub async fn results<F>(self, f: F) -> Result<(), Error>
    where
        F: FnMut(Resp) -> Result<(), Error>,
    {
        let (_, responses) = self.split();
        responses.results(f).await
    }
}

impl<Req, Resp: Payload> FuturesStream for TypedStream<Req, Resp> {
    type Item = Result<Resp, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.raw)
            .poll_next(cx)
            .map(|item| item.map(|r| r.and_then(|b| decode(&b))))
    }
}

/// The sending half of a typed stream. Dropping it closes the request side.
pub struct TypedSender<Req> {
    raw: StreamSender,
    _types: PhantomData<fn(Req)>,
}

impl<Req> std::fmt::Debug for TypedSender<Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedSender").finish_non_exhaustive()
    }
}

impl<Req: Payload> TypedSender<Req> {
    /// Sends one request, waiting for a credit if the handler is behind.
    pub async fn send(&mut self, req: &Req) -> Result<(), Error> {
        self.raw.send(encode(req)?).await
    }

    /// Closes the request side. Idempotent.
    pub fn close(&mut self) {
        self.raw.close();
    }
}

/// The receiving half of a typed stream. Dropping it before the end cancels the stream.
pub struct TypedResponses<Resp> {
    raw: Responses,
    _types: PhantomData<fn() -> Resp>,
}

impl<Resp> std::fmt::Debug for TypedResponses<Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedResponses").finish_non_exhaustive()
    }
}

impl<Resp: Payload> TypedResponses<Resp> {
    /// Cancels the stream.
    pub fn cancel(&self) {
        self.raw.cancel();
    }

    /// Whether the stream has ended.
    pub fn is_ended(&self) -> bool {
        self.raw.is_ended()
    }

    /// Receives every response with `f` until the stream ends. A response that does not
    /// decode, or an error from `f`, cancels the stream and is returned.
    pub async fn results<F>(self, mut f: F) -> Result<(), Error>
    where
        F: FnMut(Resp) -> Result<(), Error>,
    {
        self.raw.results(|b| f(decode(&b)?)).await
    }
}

impl<Resp: Payload> FuturesStream for TypedResponses<Resp> {
    type Item = Result<Resp, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.raw)
            .poll_next(cx)
            .map(|item| item.map(|r| r.and_then(|b| decode(&b))))
    }
}
