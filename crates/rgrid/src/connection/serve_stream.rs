//! The handler's side of a stream: the mux state the reader updates, the handler's task, and
//! the input/output handles the handler gets.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use rgrid_proto::{
    Credits, Flags, HandlerId, Message, Op, PingMsg, PongMsg, RecvSeq, SendSeq, Window,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ConnShared, Outgoing, Queued, Session, lock};
use crate::error::Error;
use crate::handlers::{HandlerCtx, StreamEntry, panic_text};

#[derive(Debug)]
struct ServerState {
    send_seq: SendSeq,
    recv_seq: RecvSeq,
    inbound: VecDeque<Bytes>,
    window: Window,
    in_closed: bool,
    in_waker: Option<Waker>,
    credits: Credits,
    out_waker: Option<Waker>,
    last_ping: Instant,
    /// Set once the stream failed or the final message was queued: nothing more is sent.
    done: bool,
}

/// One incoming stream, shared by the handler's task, its input/output handles and the
/// connection's reader.
pub(crate) struct ServerMux {
    pub(crate) id: u64,
    session: Arc<Session>,
    conn: Arc<ConnShared>,
    queued: Arc<Queued>,
    handler: HandlerId,
    in_capacity: u32,
    cancel: CancellationToken,
    /// Whether the keepalive watchdog may cancel this stream for missing pings.
    pub(crate) watched: bool,
    state: Mutex<ServerState>,
}

impl fmt::Debug for ServerMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerMux")
            .field("id", &self.id)
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

impl ServerMux {
    fn send_now(&self, st: &mut ServerState, op: Op, flags: Flags, payload: Option<Bytes>) {
        let msg = Outgoing {
            mux_id: self.id,
            seq: st.send_seq.advance(),
            handler: self.handler,
            payload,
            ..Outgoing::new(op, self.conn.base_flags | flags)
        };
        self.session.send_ordered(&self.queued, msg);
    }

    /// Fails the stream from this side: the caller gets `text` as a remote error, the handler
    /// is cancelled.
    fn fail(&self, st: &mut ServerState, text: String) {
        tracing::debug!(remote = %self.conn.remote, mux = self.id, %text, "grid: stream failed");
        if !st.done {
            st.done = true;
            self.send_now(
                st,
                Op::MUX_SERVER_MSG,
                Flags::EOF | Flags::PAYLOAD_IS_ERR,
                Some(Bytes::from(text)),
            );
        }
        self.cancel.cancel();
    }

    /// Watchdog: cancels the stream if the caller has not pinged for `dead_after`.
    pub(crate) fn watchdog(&self, dead_after: Duration) {
        let silent = lock(&self.state).last_ping.elapsed();
        if silent > dead_after {
            tracing::info!(remote = %self.conn.remote, mux = self.id, ?silent,
                "grid: cancelling stream, caller not seen");
            self.cancel.cancel();
        }
    }

    /// A message from the caller for this stream.
    pub(crate) fn on_message(&self, m: &Message<'_>, payload: Option<Bytes>) {
        match m.op {
            Op::DISCONNECT_SERVER_MUX => self.cancel.cancel(),
            Op::MUX_CLIENT_MSG => self.on_input(m, payload),
            Op::UNBLOCK_SRV_MUX => {
                let mut st = lock(&self.state);
                if let Err(e) = st.recv_seq.check(m.seq) {
                    self.fail(&mut st, e.to_string());
                    return;
                }
                if st.credits.grant().is_err() {
                    tracing::debug!(mux = self.id, "grid: output unblocked overflow, ignored");
                }
                if let Some(w) = st.out_waker.take() {
                    w.wake();
                }
            }
            Op::PING => {
                let mut st = lock(&self.state);
                let ping =
                    PingMsg::decode(payload.as_deref().unwrap_or_default()).unwrap_or_default();
                let err = match st.recv_seq.check(m.seq) {
                    Err(e) => Some(e.to_string()),
                    Ok(()) if self.cancel.is_cancelled() => Some("stream cancelled".to_owned()),
                    Ok(()) => None,
                };
                st.last_ping = Instant::now();
                let pong = PongMsg {
                    not_found: false,
                    err: err.clone().map(Into::into),
                    t: ping.t,
                };
                let mut buf = BytesMut::with_capacity(48);
                if pong.encode(&mut buf).is_ok() {
                    let reply =
                        Outgoing::reply_to(m, Op::PONG, self.conn.base_flags, Some(buf.freeze()));
                    self.session.send_control(reply);
                }
                if let Some(text) = err {
                    self.fail(&mut st, text);
                }
            }
            _ => {}
        }
    }

    fn on_input(&self, m: &Message<'_>, payload: Option<Bytes>) {
        let mut st = lock(&self.state);
        if st.done {
            return;
        }
        if let Err(e) = st.recv_seq.check(m.seq) {
            self.fail(&mut st, e.to_string());
            return;
        }
        if self.in_capacity == 0 {
            self.fail(&mut st, "did not expect inbound message".to_owned());
            return;
        }
        let eof = m.flags.contains(Flags::EOF);
        if let Some(p) = payload
            && !(eof && p.is_empty())
        {
            if st.window.accept().is_err() {
                tracing::warn!(remote = %self.conn.remote, mux = self.id,
                    "grid: caller sent beyond its credits");
                self.fail(&mut st, "handler blocked".to_owned());
                return;
            }
            st.inbound.push_back(p);
        }
        if eof {
            st.in_closed = true;
        }
        if let Some(w) = st.in_waker.take() {
            w.wake();
        }
    }
}

/// Starts serving an `OpConnectMux`: registers the mux, acks it, and spawns the handler.
pub(crate) fn start(
    conn: &Arc<ConnShared>,
    session: &Arc<Session>,
    m: &Message<'_>,
    entry: StreamEntry,
    payload: Option<Bytes>,
) {
    let opts = &conn.ctx.options;
    let deadline = (m.deadline_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(u64::from(m.deadline_ms)));
    let watch_after = opts.stream_ping_interval * 4;
    let h = &entry.handler;
    let mux = Arc::new(ServerMux {
        id: m.mux_id.0,
        session: session.clone(),
        conn: conn.clone(),
        queued: Arc::default(),
        handler: m.handler,
        in_capacity: h.in_capacity,
        cancel: session.cancel.child_token(),
        watched: m.deadline_ms == 0
            || Duration::from_millis(u64::from(m.deadline_ms)) > watch_after,
        state: Mutex::new(ServerState {
            send_seq: SendSeq::new(m.seq),
            recv_seq: RecvSeq::new(m.seq.wrapping_add(1)),
            inbound: VecDeque::with_capacity(h.in_capacity.min(64) as usize),
            window: Window::new(h.in_capacity),
            in_closed: h.in_capacity == 0,
            in_waker: None,
            credits: Credits::new(h.out_capacity, h.out_capacity),
            out_waker: None,
            last_ping: Instant::now(),
            done: false,
        }),
    });
    if !session.add_server(mux.clone()) {
        // A second connect for a mux id that is already open: ignored like MinIO does.
        return;
    }
    conn.counters.incoming_muxes.fetch_add(1, Ordering::Relaxed);
    {
        let mut st = lock(&mux.state);
        mux.send_now(&mut st, Op::ACK_MUX, Flags::NONE, None);
    }
    let ctx = HandlerCtx::new(
        conn.remote.clone(),
        m.handler,
        m.subroute,
        deadline,
        mux.cancel.clone(),
    )
    .with_route(entry.route.clone());
    let input = (h.in_capacity > 0).then(|| StreamIn { mux: mux.clone() });
    let output = StreamOut { mux: mux.clone() };
    let run =
        AssertUnwindSafe((h.f)(ctx, payload.unwrap_or_default(), input, output)).catch_unwind();
    let conn2 = conn.clone();
    conn.ctx.tracker.spawn(async move {
        let res = tokio::select! {
            _ = mux.cancel.cancelled() => None,
            res = async {
                match deadline {
                    Some(at) => tokio::time::timeout_at(at, run).await.ok(),
                    None => Some(run.await),
                }
            } => res,
        };
        match res {
            Some(res) => {
                let (flags, payload) = match res {
                    Ok(Ok(())) => (Flags::EOF, None),
                    Ok(Err(e)) => (
                        Flags::EOF | Flags::PAYLOAD_IS_ERR,
                        Some(Bytes::from(e.text().to_owned())),
                    ),
                    Err(panic) => {
                        let what = panic_text(&*panic);
                        tracing::error!(mux = mux.id, panic = %what, "grid: stream handler panicked");
                        (
                            Flags::EOF | Flags::PAYLOAD_IS_ERR,
                            Some(Bytes::from(format!("handler panic: {what}"))),
                        )
                    }
                };
                // The end takes a credit like every message (MinIO does the same), so a
                // caller never holds more than its window.
                let _ = mux.send_data(flags, payload).await;
            }
            None => {
                // Cancelled, or past the deadline: the caller learns through its own
                // deadline, its cancel, or the disconnect below.
                mux.cancel.cancel();
            }
        }
        {
            let mut st = lock(&mux.state);
            st.done = true;
            if let Some(w) = st.in_waker.take() {
                w.wake();
            }
            if let Some(w) = st.out_waker.take() {
                w.wake();
            }
            // After the final message (spec §15.6), with seq 0.
            let msg = Outgoing {
                mux_id: mux.id,
                handler: mux.handler,
                ..Outgoing::new(Op::DISCONNECT_CLIENT_MUX, conn2.base_flags)
            };
            mux.session.send_ordered(&mux.queued, msg);
        }
        mux.session.remove_server(mux.id);
        conn2.counters.incoming_muxes.fetch_sub(1, Ordering::Relaxed);
    });
}

impl ServerMux {
    /// Waits for an output credit, then queues one `OpMuxServerMsg`.
    async fn send_data(&self, flags: Flags, payload: Option<Bytes>) -> Result<(), Error> {
        let credit = poll_fn(|cx| {
            let mut st = lock(&self.state);
            if st.done || self.cancel.is_cancelled() {
                return Poll::Ready(Err(Error::Cancelled));
            }
            if st.credits.try_take() {
                return Poll::Ready(Ok(()));
            }
            st.out_waker = Some(cx.waker().clone());
            Poll::Pending
        });
        tokio::select! {
            _ = self.cancel.cancelled() => return Err(Error::Cancelled),
            r = credit => r?,
        }
        let permit = tokio::select! {
            _ = self.cancel.cancelled() => return Err(Error::Cancelled),
            p = self.session.reserve(payload.as_ref().map_or(0, Bytes::len)) => p?,
        };
        let mut st = lock(&self.state);
        if st.done {
            return Err(Error::Cancelled);
        }
        if flags.contains(Flags::EOF) {
            st.done = true;
        }
        let msg = Outgoing {
            mux_id: self.id,
            seq: st.send_seq.advance(),
            handler: self.handler,
            payload,
            ..Outgoing::new(Op::MUX_SERVER_MSG, self.conn.base_flags | flags)
        };
        self.session.send_reserved(permit, &self.queued, msg);
        Ok(())
    }
}

/// A stream handler's input: the caller's messages, in order. Each message taken returns a
/// credit to the caller.
#[derive(Debug)]
pub struct StreamIn {
    mux: Arc<ServerMux>,
}

impl StreamIn {
    /// The next input message, or `None` once the caller closed its input (or the stream was
    /// cancelled).
    pub async fn recv(&mut self) -> Option<Bytes> {
        let mux = &self.mux;
        let next = poll_fn(|cx| {
            let mut st = lock(&mux.state);
            if let Some(msg) = st.inbound.pop_front() {
                if st.window.release() && !st.done {
                    mux.send_now(&mut st, Op::UNBLOCK_CL_MUX, Flags::NONE, None);
                }
                return Poll::Ready(Some(msg));
            }
            if st.in_closed || st.done {
                return Poll::Ready(None);
            }
            st.in_waker = Some(cx.waker().clone());
            Poll::Pending
        });
        tokio::select! {
            biased;
            m = next => m,
            _ = mux.cancel.cancelled() => None,
        }
    }
}

/// A stream handler's output. Each message waits for a credit from the caller, so a slow
/// caller slows the handler down instead of filling memory.
#[derive(Debug, Clone)]
pub struct StreamOut {
    mux: Arc<ServerMux>,
}

impl StreamOut {
    /// Sends one message to the caller. Fails with [`Error::Cancelled`] once the stream is
    /// cancelled (the caller went away, the deadline passed, or the connection dropped).
    pub async fn send(&self, msg: impl Into<Bytes>) -> Result<(), Error> {
        let payload = msg.into();
        let limit = self.mux.conn.ctx.options.max_message_size;
        if payload.len() > limit {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                limit,
            });
        }
        self.mux.send_data(Flags::NONE, Some(payload)).await
    }

    /// Whether the stream was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.mux.cancel.is_cancelled()
    }
}
