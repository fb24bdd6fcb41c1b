//! The caller's side of a stream: the handles the caller sends and receives with. The
//! stream's state (credits, sequence numbers, buffered responses, deadline, keepalive) lives
//! in the connection core.
//!
//! Credits (spec §4.2): the caller may send `in_capacity` messages once the handler acked,
//! and gets one credit back per message the handler took. Responses wait in a buffer of
//! `out_capacity` messages; each one the consumer takes returns a credit to the handler (in
//! batches of half the window, see `rgrid_proto::conn`). A handler that sends beyond its
//! credits fails the stream with a protocol error instead of growing the buffer.

use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use rgrid_proto::HandlerId;
use rgrid_proto::conn::{CallError, StreamRoute};

use super::session::now;
use super::{CallOptions, ConnShared, Session};
use crate::codec::{Codec, Msgpack, Raw};
use crate::error::Error;
use crate::metrics::{Outcome, Side};
use crate::typed::{Payload, encode};

/// One stream opened from this side, shared by its two handles.
#[derive(Debug)]
pub(crate) struct ClientMux {
    session: Arc<Session>,
    id: u64,
    handler: HandlerId,
    /// The subroute asked for, named in a refusal.
    route: Option<Arc<str>>,
    /// The stream's `grid.stream` span (debug level).
    span: tracing::Span,
    /// Its metrics: ended when the consumer sees the end, else when released.
    metrics: crate::metrics::Stream,
}

impl ClientMux {
    fn error(&self, e: CallError) -> Error {
        let e = self.session.error(e);
        match &self.route {
            Some(route) => super::name_route(e, self.handler, route),
            None => e,
        }
    }
}

impl ClientMux {
    fn cancel(&self, error: CallError) {
        self.session
            .with_core(|core| core.stream_cancel(self.id, error));
    }
}

impl Drop for ClientMux {
    fn drop(&mut self) {
        let id = self.id;
        self.span.in_scope(|| tracing::debug!("stream released"));
        if self.metrics.pending() {
            // Released before the consumer saw the end: the end the core has (unread), else
            // the release cancels the stream.
            let end = self.session.lock().core.stream_end(id);
            self.metrics.end(match end {
                None => Outcome::Cancelled,
                Some(Ok(())) => Outcome::Ok,
                Some(Err(e)) => Outcome::of(Err(&self.error(e))),
            });
        }
        self.session.with_core(|core| core.stream_release(id));
    }
}

/// Opens a stream: registers the mux with the core and queues `OpConnectMux`. Returns at
/// once, without waiting for the handler's ack.
pub(crate) async fn open<C: Codec>(
    conn: &Arc<ConnShared>,
    handler: HandlerId,
    payload: Bytes,
    opts: &CallOptions,
) -> Result<CallStream<C>, Error> {
    let subroute = opts.subroute.as_ref().map(|r| r.id(handler));
    let route_name = opts.subroute.as_ref().map(|r| r.text.clone());
    let deadline = opts.deadline;
    // The windows: given with the call (typed statics carry theirs), else, like MinIO, from
    // this node's own registration of the handler.
    let registered = conn
        .ctx
        .registry()
        .stream(handler, subroute.as_ref())
        .map(|e| {
            (
                e.handler.in_capacity,
                e.handler.out_capacity,
                e.handler.priority,
            )
        });
    let given = match (opts.registration_first, registered) {
        (true, Some(_)) => None,
        _ => opts.capacities,
    };
    let (in_capacity, out_capacity, class) = match (given, registered) {
        (Some((i, o)), reg) => (
            // As `RawStreamHandler::new` stores them.
            u32::try_from(i).unwrap_or(u32::MAX),
            u32::try_from(o).unwrap_or(u32::MAX).max(1),
            reg.map_or(crate::Priority::Normal, |r| r.2),
        ),
        (None, Some(reg)) => reg,
        (None, None) => {
            let route = route_name
                .as_deref()
                .map(|r| format!(" under {r:?}"))
                .unwrap_or_default();
            return Err(Error::Config(format!(
                "stream {handler}{route}: not registered on this node, so its windows are \
                 unknown; register it here too or pass CallOptions::capacities"
            )));
        }
    };
    let limit = conn.ctx.options.max_message_size;
    if payload.len() > limit {
        return Err(Error::MessageTooLarge {
            size: payload.len(),
            limit,
        });
    }
    let Some(session) = conn.session() else {
        return Err(conn.down_error());
    };
    let route = StreamRoute {
        in_capacity,
        out_capacity,
        class: opts.priority.unwrap_or(class),
    };
    let size = payload.len();
    let mut payload = Some(payload);
    let id = session
        .admit(|g| {
            let payload = payload.take().unwrap_or_default();
            let id = g
                .core
                .open_stream(now(), handler, subroute, payload, deadline, route)?;
            if in_capacity > 0 {
                // Input usually follows the open at once: it leaves in the same frame.
                g.defer_write(size);
            }
            Ok(id)
        })
        .await?
        .map_err(|e| session.error(e))?;
    let span = tracing::debug_span!("grid.stream", remote = %conn.remote, handler = %handler,
        route = route_name.as_deref(), mux = id);
    span.in_scope(|| tracing::debug!(in_capacity, out_capacity, "stream opened"));
    let metrics = crate::metrics::Stream::open(
        Side::Call,
        crate::metrics::label(route_name.as_deref(), handler),
        size,
    );
    let mux = Arc::new(ClientMux {
        session,
        id,
        handler,
        route: route_name,
        span,
        metrics,
    });
    let responses = Responses {
        mux: mux.clone(),
        _codec: PhantomData,
    };
    let sender = (in_capacity > 0).then(|| StreamSender {
        mux,
        closed: false,
        _codec: PhantomData,
    });
    Ok(CallStream { sender, responses })
}

/// The caller's handle to an open stream: send input messages (with back-pressure), close the
/// input, and receive the handler's messages as a [`futures_util::Stream`]. `C` is the
/// [codec](crate::codec): [`Raw`] bytes (the default) or [`Msgpack`] values (typed statics).
///
/// Dropping the handle before the stream ended cancels it: the handler side is told to stop
/// and its context is cancelled. After the last message, the stream yields `None` when the
/// handler finished without error, or one `Err` (a remote error, `Disconnected`,
/// `DeadlineExceeded`, `Cancelled`, ...) and then `None`. Messages that arrived before an
/// error are delivered before it.
#[derive(Debug)]
pub struct CallStream<C: Codec = Raw> {
    sender: Option<StreamSender<C>>,
    responses: Responses<C>,
}

impl<C: Codec> CallStream<C> {
    async fn send_bytes(&mut self, msg: Result<Bytes, Error>) -> Result<(), Error> {
        match &mut self.sender {
            Some(s) => s.send_bytes(msg?).await,
            None => Err(Error::Usage("this stream takes no input".to_owned())),
        }
    }

    /// Closes the input: the handler sees the end of its input once it has read what was
    /// sent. Idempotent.
    pub fn close_send(&mut self) {
        if let Some(mut s) = self.sender.take() {
            s.close();
        }
    }

    /// Splits the handle so sending and receiving can happen in different tasks. The sender
    /// is `None` when the handler takes no input.
    pub fn split(self) -> (Option<StreamSender<C>>, Responses<C>) {
        (self.sender, self.responses)
    }

    /// Cancels the stream: the handler side is told to stop, and the stream yields
    /// [`Error::Cancelled`] after any buffered messages.
    pub fn cancel(&self) {
        self.responses.cancel();
    }

    /// Closes the input and receives every message with `f`, until the stream ends. Returns
    /// `Ok(())` when the handler finished without error, the stream's error otherwise, or
    /// `f`'s error (which cancels the stream).
    pub async fn results<F>(mut self, f: F) -> Result<(), Error>
    where
        F: FnMut(C::Resp) -> Result<(), Error>,
    {
        self.close_send();
        self.responses.results(f).await
    }
}

impl CallStream<Raw> {
    /// Sends one input message, waiting for a credit if the handler is behind. Fails if the
    /// handler takes no input, the input was closed, or the stream ended.
    pub async fn send(&mut self, msg: impl Into<Bytes>) -> Result<(), Error> {
        self.send_bytes(Ok(msg.into())).await
    }
}

impl<Req: Payload, Resp: Payload> CallStream<Msgpack<Req, Resp>> {
    /// Sends one request, waiting for a credit if the handler is behind. Fails if the
    /// handler takes no input, the input was closed, or the stream ended.
    pub async fn send(&mut self, req: &Req) -> Result<(), Error> {
        self.send_bytes(encode(req)).await
    }
}

impl<C: Codec> FuturesStream for CallStream<C> {
    type Item = Result<C::Resp, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.responses).poll_next(cx)
    }
}

/// The sending half of a stream. Dropping it closes the input (like [`StreamSender::close`]).
///
/// A message that takes the last credit is written before `send` returns; with credits to
/// spare it leaves when the sending task next yields, merged with the messages sent
/// meanwhile (bounded; see the crate docs, "Ownership and locking").
#[derive(Debug)]
pub struct StreamSender<C: Codec = Raw> {
    mux: Arc<ClientMux>,
    closed: bool,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> StreamSender<C> {
    async fn send_bytes(&mut self, payload: Bytes) -> Result<(), Error> {
        let mux = &self.mux;
        let session = &mux.session;
        let limit = session.conn.ctx.options.max_message_size;
        if payload.len() > limit {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                limit,
            });
        }
        if self.closed {
            return Err(Error::Usage("stream input already closed".to_owned()));
        }
        let size = payload.len();
        let mut payload = Some(payload);
        // The room check and the send share one lock; only a full outbound queue (or a
        // closed session, whose error `wait_room` returns) waits outside it, then tries
        // again.
        let res = loop {
            let sent = poll_fn(|cx| {
                let mut g = session.lock();
                if !g.has_room() {
                    return Poll::Ready(None);
                }
                let r = g.core.stream_send(mux.id, &mut payload, cx.waker());
                if let Poll::Ready(Ok(())) = r
                    && g.core.stream_credits(mux.id) > 0
                {
                    g.defer_write(size);
                }
                if r.is_ready() {
                    let done = session.collect(&mut g);
                    drop(g);
                    session.act(done);
                }
                r.map(Some)
            })
            .await;
            match sent {
                Some(r) => break r,
                None => session.wait_room().await?,
            }
        };
        if res.is_ok() {
            mux.metrics.sent(size);
        }
        res.map_err(|e| mux.error(e))
    }

    /// Closes the input: the handler's input ends after the messages already sent.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let id = self.mux.id;
        self.mux
            .session
            .with_core(|core| core.stream_close_send(id));
    }
}

impl StreamSender<Raw> {
    /// Sends one input message, waiting for a credit if the handler is behind.
    pub async fn send(&mut self, msg: impl Into<Bytes>) -> Result<(), Error> {
        self.send_bytes(msg.into()).await
    }
}

impl<Req: Payload, Resp: Payload> StreamSender<Msgpack<Req, Resp>> {
    /// Sends one request, waiting for a credit if the handler is behind.
    pub async fn send(&mut self, req: &Req) -> Result<(), Error> {
        self.send_bytes(encode(req)?).await
    }
}

impl<C: Codec> Drop for StreamSender<C> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The receiving half of a stream. Dropping it before the end cancels the stream.
#[derive(Debug)]
pub struct Responses<C: Codec = Raw> {
    mux: Arc<ClientMux>,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Responses<C> {
    /// Cancels the stream (see [`CallStream::cancel`]).
    pub fn cancel(&self) {
        self.mux.cancel(CallError::Cancelled);
    }

    /// Receives every message with `f` (see [`CallStream::results`]). A message that does
    /// not decode, or an error from `f`, cancels the stream and is returned.
    pub async fn results<F>(mut self, mut f: F) -> Result<(), Error>
    where
        F: FnMut(C::Resp) -> Result<(), Error>,
    {
        while let Some(item) = poll_fn(|cx| Pin::new(&mut self).poll_next(cx)).await {
            if let Err(e) = item.and_then(&mut f) {
                self.mux.cancel(CallError::Cancelled);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the stream has ended (its remaining buffered messages may still be read).
    pub fn is_ended(&self) -> bool {
        self.mux.session.lock().core.stream_is_ended(self.mux.id)
    }
}

impl<C: Codec> FuturesStream for Responses<C> {
    type Item = Result<C::Resp, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mux = &self.mux;
        let session = &mux.session;
        let mut g = session.lock();
        let had_output = g.core.has_output();
        let r = g.core.stream_recv(mux.id, cx.waker());
        if r.is_ready() {
            if matches!(r, Poll::Ready(Some(Ok(_)))) {
                let can_send = g.core.stream_credits(mux.id) > 0;
                g.defer_credit(had_output, can_send);
            }
            // A credit may now be owed to the handler.
            let done = session.collect(&mut g);
            drop(g);
            session.act(done);
        }
        let depth = session.conn.ctx.options.max_depth;
        r.map(|o| match o {
            Some(Ok(b)) => {
                mux.metrics.received(b.len());
                Some(C::decode_resp(b, depth))
            }
            Some(Err(e)) => {
                let e = mux.error(e);
                mux.metrics.end(Outcome::of(Err(&e)));
                Some(Err(e))
            }
            None => {
                mux.metrics.end(Outcome::Ok);
                None
            }
        })
    }
}
