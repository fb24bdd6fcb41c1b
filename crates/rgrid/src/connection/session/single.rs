//! Single requests: serving them (inline or in a task of their own) and making them.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant as StdInstant;

use bytes::Bytes;
use futures_util::FutureExt;
use rgrid_proto::conn::Class;
use rgrid_proto::{HandlerId, SubrouteId};
use tracing::Instrument;

use super::{Session, now};
use crate::error::{Error, RemoteError};
use crate::handlers::{HandlerCtx, panic_text};

type Outcome = Result<Result<Bytes, RemoteError>, Box<dyn std::any::Any + Send>>;

/// The answer for a handler's outcome (a panic becomes a remote error).
fn answer(mux: u64, res: Outcome) -> Result<Bytes, String> {
    match res {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(e.text().to_owned()),
        Err(panic) => {
            let what = panic_text(&*panic);
            tracing::error!(mux, panic = %what, "grid: single handler panicked");
            Err(format!("handleMessages: panic recovered: {what}"))
        }
    }
}

/// The debug event that ends a served call's span, and its metrics.
fn served(answer: &Result<Bytes, String>, metrics: &mut crate::metrics::Call) {
    use crate::metrics::Outcome;
    match answer {
        Ok(body) => {
            tracing::debug!(bytes = body.len(), "handler answered");
            metrics.sent(body.len());
            metrics.finish(Outcome::Ok);
        }
        Err(e) => {
            tracing::debug!(error = %e, "handler failed");
            metrics.finish(Outcome::Remote);
        }
    }
}

impl Session {
    /// Starts serving a single request. Returns the answer when the handler finished on
    /// its first poll (inline handlers); otherwise the handler runs in its own task, which
    /// answers when it is done.
    pub(super) fn serve_request(
        self: &Arc<Self>,
        mux: u64,
        handler: HandlerId,
        subroute: Option<SubrouteId>,
        deadline: Option<StdInstant>,
        payload: Bytes,
    ) -> Option<Result<Bytes, String>> {
        let conn = &self.conn;
        let Some(entry) = conn.ctx.registry().single(handler, subroute.as_ref()) else {
            // Unregistered since the core accepted it: answer like an unknown handler.
            return Some(Err(rgrid_proto::conn::unknown_handler_text(
                handler,
                subroute.as_ref(),
            )));
        };
        let deadline = deadline.map(tokio::time::Instant::from_std);
        let inline = entry.inline && conn.ctx.options.inline_handlers;
        // A handler in a task of its own gets a token of its own, which the caller's cancel
        // fires; an inline one shares the connection's (no allocation on the fast path).
        let token = if inline {
            self.cancel.clone()
        } else {
            self.cancel.child_token()
        };
        let ctx = HandlerCtx::new(
            conn.remote.clone(),
            handler,
            subroute,
            deadline,
            token.clone(),
        );
        let span = tracing::debug_span!("grid.serve", remote = %conn.remote, handler = %handler,
            route = entry.route.as_deref(), mux);
        let mut metrics = crate::metrics::Call::start(
            crate::metrics::Side::Serve,
            crate::metrics::label(entry.route.as_deref(), handler),
        );
        metrics.received(payload.len());
        let mut run = AssertUnwindSafe((entry.f)(ctx, payload)).catch_unwind();
        if inline {
            // First poll right here: most handlers answer without waiting, and then cost no
            // task. A pending handler moves to its own task, whose first poll registers its
            // real waker (the no-op one used here is never needed).
            let mut cx = Context::from_waker(Waker::noop());
            let polled = span.in_scope(|| Pin::new(&mut run).poll(&mut cx));
            if let Poll::Ready(res) = polled {
                let answer = answer(mux, res);
                span.in_scope(|| served(&answer, &mut metrics));
                return Some(answer);
            }
        }
        let run = run.instrument(span.clone());
        let session = self.clone();
        // An inline handler that waits moves here with the connection's token in its
        // context; a token of its own still lets the caller's cancel drop it.
        let token = if inline {
            self.cancel.child_token()
        } else {
            token
        };
        self.lock().served.insert(mux, token.clone());
        conn.ctx.tracker.spawn(async move {
            let res = tokio::select! {
                // The caller gave up (its cancel arrived: the core forgot the mux), or the
                // connection is gone: nobody to answer. The handler is dropped.
                () = token.cancelled() => {
                    metrics.finish(session.cancelled());
                    drop(metrics);
                    span.in_scope(|| tracing::debug!("caller cancelled: handler dropped"));
                    session.lock().served.remove(&mux);
                    return;
                }
                res = async {
                    match deadline {
                        Some(at) => tokio::time::timeout_at(at, run).await.ok(),
                        None => Some(run.await),
                    }
                } => res,
            };
            // A handler that returned once cancelled counts as cancelled: nobody takes its
            // answer.
            if token.is_cancelled() {
                metrics.finish(session.cancelled());
            }
            // Past the caller's deadline the answer is dropped (the core frees the mux).
            let res = res.map(|r| answer(mux, r));
            span.in_scope(|| match &res {
                Some(a) => served(a, &mut metrics),
                None => {
                    tracing::debug!("handler past the caller's deadline: dropped");
                    metrics.finish(crate::metrics::Outcome::Deadline);
                }
            });
            drop(metrics);
            let at = now();
            session.with_inner(|g| {
                g.served.remove(&mux);
                g.core.respond(at, mux, res);
            });
        });
        self.nudge_runtime();
        None
    }

    /// The metrics outcome of a served call or stream whose token fired: the connection
    /// went away, or the caller cancelled.
    pub(crate) fn cancelled(&self) -> crate::metrics::Outcome {
        if self.cancel.is_cancelled() {
            crate::metrics::Outcome::Disconnected
        } else {
            crate::metrics::Outcome::Cancelled
        }
    }

    /// Sends a request and waits for its answer (the caller's deadline is the caller's
    /// timer). The request is forgotten however the future ends, including when dropped.
    /// The payload counts as sent in `metrics` once it is queued.
    pub(crate) async fn roundtrip(
        self: &Arc<Self>,
        handler: HandlerId,
        subroute: Option<SubrouteId>,
        payload: Bytes,
        deadline: std::time::Duration,
        priority: Class,
        metrics: &crate::metrics::Call,
    ) -> Result<Bytes, Error> {
        let size = payload.len();
        let mut payload = Some(payload);
        let mux = self
            .admit(|g| {
                let payload = payload.take().unwrap_or_default();
                g.core
                    .start_request(handler, subroute, payload, deadline, priority)
            })
            .await?
            .map_err(|e| self.error(e))?;
        metrics.sent(size);
        tracing::Span::current().record("mux", mux);
        let mut guard = RequestGuard {
            session: self,
            mux,
            done: false,
        };
        let res = poll_fn(|cx| {
            let mut g = self.lock();
            let res = g.core.poll_response(mux, cx.waker());
            let next = if res.is_ready() {
                g.relay.done(mux)
            } else {
                None
            };
            drop(g);
            // Pass the turn on (see `relay`).
            if let Some(w) = next {
                w.wake();
            }
            res
        })
        .await;
        // The core forgot the request when it handed out the answer.
        guard.done = true;
        res.map_err(|e| self.error(e))
    }
}

/// Forgets a single request when its caller's future ends (answered, timed out or dropped).
pub(crate) struct RequestGuard<'a> {
    session: &'a Arc<Session>,
    mux: u64,
    done: bool,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let session = self.session;
            let mut g = session.lock();
            // A request on the wire owes its handler a cancel: `act` sends it.
            g.core.abandon_request(self.mux);
            let next = g.relay.done(self.mux);
            let done = session.collect(&mut g);
            drop(g);
            session.act(done);
            // Whoever gives up passes the turn on too (see `relay`).
            if let Some(w) = next {
                w.wake();
            }
        }
    }
}
