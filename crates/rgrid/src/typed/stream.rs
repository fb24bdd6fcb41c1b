//! Typed streams: an initial payload, typed requests up and typed responses down.

use std::marker::PhantomData;

use super::{Payload, bad_request, decode_with_depth, encode};
use crate::HandlerId;
use crate::codec::Msgpack;
use crate::connection::{CallOptions, CallStream, Connection};
use crate::error::{Error, RemoteError};
use crate::handlers::{HandlerCtx, RawStreamHandler, StreamIn, StreamOut};
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
        F: Fn(HandlerCtx, P, StreamIn<Msgpack<Req, Resp>>, StreamOut<Msgpack<Req, Resp>>) -> Fut
            + Send
            + Sync
            + 'static,
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
        F: Fn(HandlerCtx, P, StreamOut<Msgpack<Req, Resp>>) -> Fut + Send + Sync + 'static,
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
        F: Fn(HandlerCtx, StreamIn<Msgpack<Req, Resp>>, StreamOut<Msgpack<Req, Resp>>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        let raw = RawStreamHandler::new(
            self.in_capacity,
            self.out_capacity,
            move |ctx, _, input: Option<StreamIn>, out: StreamOut| {
                f(ctx, StreamIn::with_codec(input), StreamOut::with_codec(out))
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
        F: Fn(HandlerCtx, P, StreamIn<Msgpack<Req, Resp>>, StreamOut<Msgpack<Req, Resp>>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        let depth = manager.options().max_depth;
        let raw = RawStreamHandler::new(
            in_capacity,
            self.out_capacity,
            move |ctx, payload: bytes::Bytes, input: Option<StreamIn>, out: StreamOut| {
                let run = decode_with_depth::<P>(&payload, depth).map(|p| {
                    f(
                        ctx,
                        p,
                        StreamIn::with_codec(input),
                        StreamOut::with_codec(out),
                    )
                });
                async move { run.map_err(bad_request)?.await }
            },
        );
        manager.register_stream(self.id, subroute, raw)
    }

    /// Opens the stream on `conn`'s node with the initial payload `payload`, no deadline.
    pub async fn call(
        &self,
        conn: &Connection,
        payload: &P,
    ) -> Result<CallStream<Msgpack<Req, Resp>>, Error> {
        self.call_with(conn, payload, &CallOptions::new()).await
    }

    /// Opens the stream with [`CallOptions`] (a subroute, a deadline for the whole stream,
    /// a priority). The static's windows are used unless this node registered the handler
    /// itself (then its registration's, like MinIO) or `options` gives them.
    pub async fn call_with(
        &self,
        conn: &Connection,
        payload: &P,
        options: &CallOptions,
    ) -> Result<CallStream<Msgpack<Req, Resp>>, Error> {
        let payload = encode(payload)?;
        let mut options = options.clone();
        if options.capacities.is_none() {
            // This node's registration of the handler if there is one (MinIO's way), else
            // the static's own windows: a caller need not register the handler.
            options.capacities = Some((self.in_capacity, self.out_capacity));
            options.registration_first = true;
        }
        conn.open_stream_codec(self.id, payload, &options).await
    }
}
