//! The handler's side of a stream: the handler's task, and what the input/output handles it
//! gets ([`StreamIn`], [`StreamOut`], defined with the handlers) do through the session.
//! The stream's state (credits, sequence numbers, buffers) lives in the connection core.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use bytes::Bytes;
use futures_util::FutureExt;
use rgrid_proto::conn::{CallError, ServeMsg};
use rgrid_proto::{HandlerId, SubrouteId};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Session;
use super::session::now;
use crate::error::Error;
use crate::handlers::{HandlerCtx, ServedStream, StreamIn, StreamOut, panic_text, send};
use crate::metrics::{Outcome, Side, Stream};

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
            metrics: Stream::open(
                Side::Serve,
                crate::metrics::label(entry.route.as_deref(), handler),
                payload.len(),
            ),
        });
        let input = (h.in_capacity > 0).then(|| StreamIn::new(handle.clone()));
        let output = StreamOut::new(handle.clone());
        let span = tracing::debug_span!("grid.serve_stream", remote = %conn.remote,
            handler = %handler, route = entry.route.as_deref(), mux);
        let run = AssertUnwindSafe((h.f)(ctx, payload, input, output)).catch_unwind();
        let task = async move {
            let res = tokio::select! {
                // Cancelled (by the caller, the deadline, the watchdog or a lost connection).
                () = cancel.cancelled() => None,
                res = run => Some(res),
            };
            if res.is_none() {
                tracing::debug!("stream cancelled");
                handle.metrics.end(cancelled(&handle.session, deadline));
            }
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
                match &end {
                    Ok(()) => tracing::debug!("handler ended the stream"),
                    Err(e) => tracing::debug!(error = %e, "handler failed the stream"),
                }
                // A handler that returned once cancelled (its end cannot be sent) counts as
                // cancelled, whichever branch won.
                handle.metrics.end(if cancel.is_cancelled() {
                    cancelled(&handle.session, deadline)
                } else if end.is_ok() {
                    Outcome::Ok
                } else {
                    Outcome::Remote
                });
                // The end takes a credit like every message (MinIO does the same), so a
                // caller never holds more than its window.
                let _ = send(&*handle, ServeMsg::End(end)).await;
            }
            let session = handle.session.clone();
            session.with_core(|core| core.serve_done(mux));
            session.lock().forget_served(mux);
        };
        // The task's first poll runs with this session's writes held (on a quiet connection):
        // the ack, held since the reader started the handler, leaves with what the handler
        // sends in that poll, or its end, in one frame (`holding_writes`).
        let first = self.clone();
        let task = async move {
            let mut task = std::pin::pin!(task);
            let mut polled = false;
            std::future::poll_fn(move |cx| {
                if !polled {
                    polled = true;
                    let r = super::session::holding_writes(&first, || task.as_mut().poll(cx));
                    first.with_inner(|_| ());
                    return r;
                }
                task.as_mut().poll(cx)
            })
            .await;
        };
        conn.ctx.tracker.spawn(task.instrument(span));
    }
}

/// Why a served stream was cancelled, as a metrics outcome: the connection went away, its
/// deadline passed, or its caller cancelled it.
fn cancelled(session: &Session, deadline: Option<StdInstant>) -> Outcome {
    match session.cancelled() {
        Outcome::Cancelled if deadline.is_some_and(|at| now() >= at) => Outcome::Deadline,
        why => why,
    }
}

/// One served stream, shared by its handles.
#[derive(Debug)]
struct Served {
    session: Arc<Session>,
    mux: u64,
    cancel: CancellationToken,
    /// Its metrics, ended by the handler's task.
    metrics: Stream,
}

/// What [`StreamIn`] and [`StreamOut`] (defined with the handlers) do through the session.
impl ServedStream for Served {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut g = self.session.lock();
        let had_output = g.core.has_output();
        let r = g.core.serve_recv(self.mux, cx.waker());
        if r.is_ready() {
            if matches!(r, Poll::Ready(Some(_))) {
                let can_send = g.core.serve_credits(self.mux) > 0;
                g.defer_credit(had_output, can_send);
            }
            let done = self.session.collect(&mut g);
            drop(g);
            self.session.act(done);
        }
        if let Poll::Ready(Some(msg)) = &r {
            self.metrics.received(msg.len());
        }
        r
    }

    fn poll_send(
        &self,
        msg: &mut Option<ServeMsg>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        // A message (not the end) counts once the core took it.
        let size = match msg {
            Some(ServeMsg::Data(p)) => Some(p.len()),
            _ => None,
        };
        let mut g = self.session.lock();
        let r = g.core.serve_send(self.mux, msg, cx.waker());
        if let (Some(size), Poll::Ready(Ok(()))) = (size, &r)
            && g.core.serve_credits(self.mux) > 0
        {
            g.defer_write(size);
        }
        if let (Some(size), Poll::Ready(Ok(())), None) = (size, &r, &*msg) {
            self.metrics.sent(size);
        }
        if r.is_ready() {
            let done = self.session.collect(&mut g);
            drop(g);
            self.session.act(done);
        }
        r.map_err(|e| match e {
            CallError::Cancelled => Error::Cancelled,
            e => self.session.error(e),
        })
    }

    fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    fn max_message_size(&self) -> usize {
        self.session.conn.ctx.options.max_message_size
    }

    fn max_depth(&self) -> usize {
        self.session.conn.ctx.options.max_depth
    }
}
