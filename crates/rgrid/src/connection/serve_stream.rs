//! The handler's side of a stream: the handler's task and the input/output handles it gets.
//! The stream's state (credits, sequence numbers, buffers) lives in the connection core.

use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use futures_util::FutureExt;
use rgrid_proto::conn::{CallError, ServeMsg};
use rgrid_proto::{HandlerId, SubrouteId};
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::error::Error;
use crate::handlers::{HandlerCtx, panic_text};

impl Session {
    /// Starts the handler of a stream the core accepted.
    pub(crate) fn serve_stream(
        self: &Arc<Self>,
        mux: u64,
        handler: HandlerId,
        subroute: Option<SubrouteId>,
        deadline: Option<StdInstant>,
        payload: Bytes,
    ) {
        let conn = &self.conn;
        let cancel = self
            .lock()
            .served_token(mux)
            .unwrap_or_else(|| self.cancel.child_token());
        let Some(entry) = conn.ctx.registry().stream(handler, subroute.as_ref()) else {
            // Unregistered since the core accepted it.
            let session = self.clone();
            return session.with_core(|core| core.serve_done(mux));
        };
        let ctx = HandlerCtx::new(
            conn.remote.clone(),
            handler,
            subroute,
            deadline.map(tokio::time::Instant::from_std),
            cancel.clone(),
        )
        .with_route(entry.route.clone());
        let h = &entry.handler;
        let handle = Arc::new(Served {
            session: self.clone(),
            mux,
            cancel: cancel.clone(),
        });
        let input = (h.in_capacity > 0).then(|| StreamIn {
            served: handle.clone(),
        });
        let output = StreamOut {
            served: handle.clone(),
        };
        let run = AssertUnwindSafe((h.f)(ctx, payload, input, output)).catch_unwind();
        conn.ctx.tracker.spawn(async move {
            let res = tokio::select! {
                // Cancelled (by the caller, the deadline, the watchdog or a lost connection).
                () = cancel.cancelled() => None,
                res = run => Some(res),
            };
            if let Some(res) = res {
                let end = match res {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.text().to_owned()),
                    Err(panic) => {
                        let what = panic_text(&*panic);
                        tracing::error!(mux, panic = %what, "grid: stream handler panicked");
                        Err(format!("handler panic: {what}"))
                    }
                };
                // The end takes a credit like every message (MinIO does the same), so a
                // caller never holds more than its window.
                let _ = handle.send(ServeMsg::End(end)).await;
            }
            let session = handle.session.clone();
            session.with_core(|core| core.serve_done(mux));
            session.lock().forget_served(mux);
        });
    }
}

/// One served stream, shared by its handles.
#[derive(Debug)]
struct Served {
    session: Arc<Session>,
    mux: u64,
    cancel: CancellationToken,
}

impl Served {
    async fn send(&self, msg: ServeMsg) -> Result<(), Error> {
        let mut msg = Some(msg);
        let sent = poll_fn(|cx| {
            let mut g = self.session.lock();
            let r = g.core.serve_send(self.mux, &mut msg, cx.waker());
            if r.is_ready() {
                let done = self.session.collect(&mut g);
                drop(g);
                self.session.act(done);
            }
            r
        });
        tokio::select! {
            biased;
            r = sent => r.map_err(|e| match e {
                CallError::Cancelled => Error::Cancelled,
                e => self.session.error(e),
            }),
            () = self.cancel.cancelled() => Err(Error::Cancelled),
        }
    }
}

/// A stream handler's input: the caller's messages, in order. Each message taken returns a
/// credit to the caller.
#[derive(Debug)]
pub struct StreamIn {
    served: Arc<Served>,
}

impl StreamIn {
    /// The next input message, or `None` once the caller closed its input (or the stream was
    /// cancelled).
    pub async fn recv(&mut self) -> Option<Bytes> {
        let s = &self.served;
        let next = poll_fn(|cx| {
            let mut g = s.session.lock();
            let r = g.core.serve_recv(s.mux, cx.waker());
            if r.is_ready() {
                let done = s.session.collect(&mut g);
                drop(g);
                s.session.act(done);
            }
            r
        });
        tokio::select! {
            biased;
            m = next => m,
            () = s.cancel.cancelled() => None,
        }
    }
}

/// A stream handler's output. Each message waits for a credit from the caller, so a slow
/// caller slows the handler down instead of filling memory.
#[derive(Debug, Clone)]
pub struct StreamOut {
    served: Arc<Served>,
}

impl StreamOut {
    /// Sends one message to the caller. Fails with [`Error::Cancelled`] once the stream is
    /// cancelled (the caller went away, the deadline passed, or the connection dropped).
    pub async fn send(&self, msg: impl Into<Bytes>) -> Result<(), Error> {
        let payload = msg.into();
        let limit = self.served.session.conn.ctx.options.max_message_size;
        if payload.len() > limit {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                limit,
            });
        }
        self.served.send(ServeMsg::Data(payload)).await
    }

    /// Whether the stream was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.served.cancel.is_cancelled()
    }
}
