//! The caller's side of a stream: the mux state the reader updates, and the handle the
//! caller sends and receives with.
//!
//! Credits (spec §4.2): the caller may send `in_capacity` messages once the handler acked,
//! and gets one credit back per message the handler took. Responses land in a buffer of
//! `out_capacity` messages; each one the consumer takes returns a credit to the handler. A
//! handler that sends beyond its credits fails the stream with a protocol error instead of
//! growing the buffer.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use rgrid_proto::{
    Credits, Flags, HandlerId, Message, MuxConnectError, Op, PingMsg, PongMsg, RecvSeq, SendSeq,
    SubrouteId, Window,
};
use tokio::time::{Instant, Sleep};

use super::{ConnShared, Outgoing, Queued, Session, State, lock};
use crate::error::{Error, RemoteError};

/// How a stream ended, as the caller sees it.
#[derive(Debug)]
enum End {
    /// The handler finished without error: the consumer sees the buffered messages, then
    /// the end of the stream.
    Eof,
    /// The stream failed: the consumer sees the buffered messages, then this error once.
    Failed { error: Error, delivered: bool },
}

#[derive(Debug)]
struct ClientState {
    send_seq: SendSeq,
    recv_seq: RecvSeq,
    acked: bool,
    credits: Credits,
    window: Window,
    responses: VecDeque<Bytes>,
    end: Option<End>,
    send_closed: bool,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    last_alive: Instant,
}

/// One outgoing stream, shared by the caller's handle and the connection's reader.
pub(crate) struct ClientMux {
    pub(crate) id: u64,
    session: Arc<Session>,
    conn: Arc<ConnShared>,
    queued: Arc<Queued>,
    handler: HandlerId,
    deadline: Option<Instant>,
    /// Whether the keepalive task pings this stream (no deadline, or a long one).
    pub(crate) pinged: bool,
    state: Mutex<ClientState>,
}

impl fmt::Debug for ClientMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMux")
            .field("id", &self.id)
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

impl ClientMux {
    fn base(&self, op: Op, flags: Flags, seq: u32) -> Outgoing {
        Outgoing {
            mux_id: self.id,
            seq,
            handler: self.handler,
            ..Outgoing::new(op, self.conn.base_flags | flags)
        }
    }

    /// Queues a message that never waits (credit, EOF, ping, cancel), in stream order.
    fn send_now(&self, st: &mut ClientState, op: Op, flags: Flags, payload: Option<Bytes>) {
        let mut msg = self.base(op, flags, st.send_seq.advance());
        msg.payload = payload;
        self.session.send_ordered(&self.queued, msg);
    }

    /// Ends the stream (first end wins): wakes both halves, leaves the session's table, and
    /// tells the handler side to stop when `cancel_remote`.
    fn finish(&self, st: &mut ClientState, end: End, cancel_remote: bool) {
        if st.end.is_some() {
            return;
        }
        if cancel_remote {
            self.send_now(st, Op::DISCONNECT_SERVER_MUX, Flags::NONE, None);
        }
        st.end = Some(end);
        self.session.remove_client(self.id);
        if let Some(w) = st.rx_waker.take() {
            w.wake();
        }
        if let Some(w) = st.tx_waker.take() {
            w.wake();
        }
    }

    fn fail(&self, st: &mut ClientState, error: Error, cancel_remote: bool) {
        let end = End::Failed {
            error,
            delivered: false,
        };
        self.finish(st, end, cancel_remote);
    }

    /// Fails the stream from outside (connection lost, liveness timeout, shutdown).
    pub(crate) fn fail_with(&self, error: Error, cancel_remote: bool) {
        let mut st = lock(&self.state);
        self.fail(&mut st, error, cancel_remote);
    }

    /// Keepalive: fails the stream if the handler side has been silent for `dead_after`,
    /// otherwise pings it.
    pub(crate) fn keepalive(&self, dead_after: Duration) {
        let mut st = lock(&self.state);
        if st.end.is_some() {
            return;
        }
        if st.last_alive.elapsed() > dead_after {
            tracing::debug!(remote = %self.conn.remote, mux = self.id,
                "grid: stream silent too long, cancelling");
            self.fail(&mut st, Error::Disconnected, true);
            return;
        }
        let mut payload = bytes::BytesMut::with_capacity(24);
        PingMsg {
            t: rgrid_proto::GridTime::from_system_time(std::time::SystemTime::now()),
        }
        .encode(&mut payload);
        self.send_now(&mut st, Op::PING, Flags::NONE, Some(payload.freeze()));
    }

    /// A message from the handler side for this stream.
    pub(crate) fn on_message(&self, m: &Message<'_>, payload: Option<Bytes>) {
        let mut st = lock(&self.state);
        if st.end.is_some() {
            return;
        }
        match m.op {
            Op::ACK_MUX | Op::MUX_SERVER_MSG | Op::UNBLOCK_CL_MUX => {
                if let Err(e) = st.recv_seq.check(m.seq) {
                    let err = Error::IncorrectSequence {
                        want: e.want,
                        got: e.got,
                    };
                    self.fail(&mut st, err, true);
                    return;
                }
                st.last_alive = Instant::now();
            }
            _ => {}
        }
        match m.op {
            Op::ACK_MUX => {
                st.acked = true;
                st.credits.fill();
                if let Some(w) = st.tx_waker.take() {
                    w.wake();
                }
            }
            Op::UNBLOCK_CL_MUX => {
                if st.credits.grant().is_err() {
                    tracing::debug!(mux = self.id, "grid: stream input credit overflow, ignored");
                }
                if let Some(w) = st.tx_waker.take() {
                    w.wake();
                }
            }
            Op::MUX_SERVER_MSG => self.on_response(&mut st, m.flags, payload),
            Op::PONG => match PongMsg::decode(payload.as_deref().unwrap_or_default()) {
                Ok(p) if p.not_found => {
                    let err = Error::Remote(RemoteError::new("remote terminated call"));
                    self.fail(&mut st, err, false);
                }
                Ok(PongMsg { err: Some(e), .. }) => {
                    let err = Error::Remote(RemoteError::new(format!("remote pong failed: {e}")));
                    self.fail(&mut st, err, false);
                }
                _ => st.last_alive = Instant::now(),
            },
            Op::DISCONNECT_CLIENT_MUX => self.fail(&mut st, Error::Disconnected, false),
            Op::MUX_CONNECT_ERROR => {
                let text = match MuxConnectError::decode(payload.as_deref().unwrap_or_default()) {
                    Ok(e) => e.error.into_owned(),
                    Err(e) => format!("malformed mux connect error: {e}"),
                };
                self.fail(&mut st, Error::Remote(RemoteError::new(text)), false);
            }
            _ => {}
        }
    }

    fn on_response(&self, st: &mut ClientState, flags: Flags, payload: Option<Bytes>) {
        if flags.contains(Flags::PAYLOAD_IS_ERR) {
            let text = String::from_utf8_lossy(payload.as_deref().unwrap_or_default()).into_owned();
            self.fail(st, Error::Remote(RemoteError::new(text)), false);
            return;
        }
        if let Some(p) = payload
            && !(flags.contains(Flags::EOF) && p.is_empty())
        {
            if st.window.accept().is_err() {
                let err = Error::Protocol(format!(
                    "handler sent more than its {} credits",
                    st.window.buffered()
                ));
                tracing::warn!(remote = %self.conn.remote, mux = self.id, "grid: {err}");
                self.fail(st, err, true);
                return;
            }
            st.responses.push_back(p);
            if let Some(w) = st.rx_waker.take() {
                w.wake();
            }
        }
        if flags.contains(Flags::EOF) {
            self.finish(st, End::Eof, false);
        }
    }

    fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Opens a stream: registers the mux with the session and queues `OpConnectMux`. Returns at
/// once, without waiting for the handler's ack.
pub(crate) async fn open(
    conn: &Arc<ConnShared>,
    handler: HandlerId,
    subroute: Option<SubrouteId>,
    payload: Bytes,
    deadline: Option<Duration>,
) -> Result<Stream, Error> {
    let entry = conn.ctx.registry().stream(handler, subroute.as_ref());
    // Like MinIO, the caller sizes its windows from its own registration of the handler.
    let Some(entry) = entry else {
        return Err(Error::UnknownHandler(handler));
    };
    let limit = conn.ctx.options.max_message_size;
    if payload.len() > limit {
        return Err(Error::MessageTooLarge {
            size: payload.len(),
            limit,
        });
    }
    let deadline_ms = match deadline {
        Some(d) => match u32::try_from(d.as_millis()).unwrap_or(u32::MAX) {
            0 => return Err(Error::DeadlineExceeded),
            ms => ms,
        },
        None => 0,
    };
    let Some(session) = conn.session() else {
        return Err(match conn.state() {
            State::Shutdown => Error::Shutdown,
            _ => Error::Disconnected,
        });
    };
    let (in_cap, out_cap) = (entry.handler.in_capacity, entry.handler.out_capacity);
    let ping_every = conn.ctx.options.stream_ping_interval;
    let mux = Arc::new(ClientMux {
        id: conn.next_mux_id(),
        session: session.clone(),
        conn: conn.clone(),
        queued: Arc::default(),
        handler,
        deadline: deadline.map(|d| Instant::now() + d),
        pinged: deadline.is_none_or(|d| d > ping_every),
        state: Mutex::new(ClientState {
            send_seq: SendSeq::new(0),
            recv_seq: RecvSeq::new(0),
            acked: false,
            credits: Credits::new(0, in_cap),
            window: Window::new(out_cap),
            responses: VecDeque::with_capacity(out_cap.min(64) as usize),
            end: None,
            send_closed: in_cap == 0,
            rx_waker: None,
            tx_waker: None,
            last_alive: Instant::now(),
        }),
    });
    session.add_client(mux.clone())?;
    let permit = match session.reserve(payload.len()).await {
        Ok(p) => p,
        Err(e) => {
            mux.fail_with(e.clone(), false);
            return Err(e);
        }
    };
    {
        let mut st = lock(&mux.state);
        if let Some(End::Failed { error, .. }) = &st.end {
            return Err(error.clone());
        }
        let flags = if in_cap == 0 { Flags::EOF } else { Flags::NONE };
        let mut msg = mux.base(Op::CONNECT_MUX, flags, st.send_seq.advance());
        msg.deadline_ms = deadline_ms;
        msg.payload = Some(payload);
        msg.subroute = subroute;
        session.send_reserved(permit, &mux.queued, msg);
    }
    let responses = Responses {
        mux: mux.clone(),
        sleep: None,
    };
    let sender = (in_cap > 0).then(|| StreamSender {
        mux: mux.clone(),
        closed: false,
    });
    Ok(Stream { sender, responses })
}

/// The caller's handle to an open stream: send input messages (with back-pressure), close the
/// input, and receive the handler's messages as a [`futures_util::Stream`].
///
/// Dropping the handle before the stream ended cancels it: the handler side is told to stop
/// and its context is cancelled. After the last message, the stream yields `None` when the
/// handler finished without error, or one `Err` (a remote error, `Disconnected`,
/// `DeadlineExceeded`, `Cancelled`, ...) and then `None`. Messages that arrived before an
/// error are delivered before it.
#[derive(Debug)]
pub struct Stream {
    sender: Option<StreamSender>,
    responses: Responses,
}

impl Stream {
    /// Sends one input message, waiting for a credit if the handler is behind. Fails if the
    /// handler takes no input, the input was closed, or the stream ended.
    pub async fn send(&mut self, msg: impl Into<Bytes>) -> Result<(), Error> {
        match &mut self.sender {
            Some(s) => s.send(msg).await,
            None => Err(Error::Protocol("this stream takes no input".to_owned())),
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
    pub fn split(self) -> (Option<StreamSender>, Responses) {
        (self.sender, self.responses)
    }

    /// Cancels the stream: the handler side is told to stop, and the stream yields
    /// [`Error::Cancelled`] after any buffered messages.
    pub fn cancel(&self) {
        self.responses.cancel();
    }

    /// Receives every message with `f`, until the stream ends. Returns `Ok(())` when the
    /// handler finished without error, the stream's error otherwise, or `f`'s error (which
    /// cancels the stream).
    pub async fn results<F>(mut self, f: F) -> Result<(), Error>
    where
        F: FnMut(Bytes) -> Result<(), Error>,
    {
        self.close_send();
        self.responses.results(f).await
    }
}

impl FuturesStream for Stream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.responses).poll_next(cx)
    }
}

/// The sending half of a stream. Dropping it closes the input (like [`StreamSender::close`]).
#[derive(Debug)]
pub struct StreamSender {
    mux: Arc<ClientMux>,
    closed: bool,
}

impl StreamSender {
    /// Sends one input message, waiting for a credit if the handler is behind.
    pub async fn send(&mut self, msg: impl Into<Bytes>) -> Result<(), Error> {
        let payload = msg.into();
        let mux = &self.mux;
        let limit = mux.conn.ctx.options.max_message_size;
        if payload.len() > limit {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                limit,
            });
        }
        if self.closed {
            return Err(Error::Protocol("stream input already closed".to_owned()));
        }
        let credit = poll_fn(|cx| {
            let mut st = lock(&mux.state);
            if let Some(end) = &st.end {
                return Poll::Ready(Err(end_error(end)));
            }
            if mux.deadline_passed() {
                mux.fail(&mut st, Error::DeadlineExceeded, true);
                return Poll::Ready(Err(Error::DeadlineExceeded));
            }
            if st.acked && st.credits.try_take() {
                return Poll::Ready(Ok(()));
            }
            st.tx_waker = Some(cx.waker().clone());
            Poll::Pending
        });
        match mux.deadline {
            Some(at) => match tokio::time::timeout_at(at, credit).await {
                Ok(r) => r?,
                Err(_) => {
                    mux.fail_with(Error::DeadlineExceeded, true);
                    return Err(Error::DeadlineExceeded);
                }
            },
            None => credit.await?,
        }
        let permit = mux.session.reserve(payload.len()).await?;
        let mut st = lock(&mux.state);
        if let Some(end) = &st.end {
            return Err(end_error(end));
        }
        let mut out = mux.base(Op::MUX_CLIENT_MSG, Flags::NONE, st.send_seq.advance());
        out.payload = Some(payload);
        mux.session.send_reserved(permit, &mux.queued, out);
        Ok(())
    }

    /// Closes the input: the handler's input ends after the messages already sent.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut st = lock(&self.mux.state);
        if st.end.is_none() && !st.send_closed {
            st.send_closed = true;
            self.mux
                .send_now(&mut st, Op::MUX_CLIENT_MSG, Flags::EOF, None);
        }
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        self.close();
    }
}

fn end_error(end: &End) -> Error {
    match end {
        End::Eof => Error::Protocol("stream already ended".to_owned()),
        End::Failed { error, .. } => error.clone(),
    }
}

/// The receiving half of a stream. Dropping it before the end cancels the stream.
#[derive(Debug)]
pub struct Responses {
    mux: Arc<ClientMux>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Responses {
    /// Cancels the stream (see [`Stream::cancel`]).
    pub fn cancel(&self) {
        self.mux.fail_with(Error::Cancelled, true);
    }

    /// Receives every message with `f` (see [`Stream::results`]).
    pub async fn results<F>(mut self, mut f: F) -> Result<(), Error>
    where
        F: FnMut(Bytes) -> Result<(), Error>,
    {
        while let Some(item) = poll_fn(|cx| Pin::new(&mut self).poll_next(cx)).await {
            if let Err(e) = item.and_then(&mut f) {
                self.mux.fail_with(e.clone(), true);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the stream has ended (its remaining buffered messages may still be read).
    pub fn is_ended(&self) -> bool {
        lock(&self.mux.state).end.is_some()
    }
}

impl FuturesStream for Responses {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mux = &this.mux;
        let mut st = lock(&mux.state);
        if let Some(msg) = st.responses.pop_front() {
            if st.window.release() && st.end.is_none() {
                mux.send_now(&mut st, Op::UNBLOCK_SRV_MUX, Flags::NONE, None);
            }
            return Poll::Ready(Some(Ok(msg)));
        }
        match &mut st.end {
            Some(End::Eof) => return Poll::Ready(None),
            Some(End::Failed { error, delivered }) => {
                if *delivered {
                    return Poll::Ready(None);
                }
                *delivered = true;
                return Poll::Ready(Some(Err(error.clone())));
            }
            None => {}
        }
        if let Some(at) = mux.deadline {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if sleep.as_mut().poll(cx).is_ready() || mux.deadline_passed() {
                mux.fail(&mut st, Error::DeadlineExceeded, true);
                if let Some(End::Failed { delivered, .. }) = &mut st.end {
                    *delivered = true;
                }
                return Poll::Ready(Some(Err(Error::DeadlineExceeded)));
            }
        }
        st.rx_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Responses {
    fn drop(&mut self) {
        let mut st = lock(&self.mux.state);
        if st.end.is_none() {
            self.mux.fail(&mut st, Error::Cancelled, true);
        }
    }
}
