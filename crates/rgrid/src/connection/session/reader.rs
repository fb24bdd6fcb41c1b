//! The reader task: feeds received frames to the core and starts the handlers it asks for.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::Bytes;
use futures_util::StreamExt;
use rgrid_proto::conn::Event;

use super::{Session, WsStream, now};
use crate::error::Error;

pub(super) async fn run(session: Arc<Session>, mut stream: WsStream) {
    let conn = session.conn.clone();
    let cancelled = session.cancel.clone().cancelled_owned();
    tokio::pin!(cancelled);
    let reason = loop {
        // The socket first: the cancellation future (a lock and a waker check per poll) is
        // polled only when no frame is ready, and a closed session is noticed below. Whether
        // the reader waited for this frame starts a new pass of the relay (see `relay`).
        let mut waited = false;
        let next = poll_fn(|cx| {
            if let Poll::Ready(m) = stream.poll_next_unpin(cx) {
                return Poll::Ready(Some(m));
            }
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            waited = true;
            Poll::Pending
        })
        .await;
        let Some(next) = next else {
            break None;
        };
        if session.cancel.is_cancelled() {
            break None;
        }
        let msg = match next {
            None => break Some("the peer closed the connection".to_owned()),
            Some(Err(e)) => {
                tracing::debug!(remote = %conn.remote, error = %e, "grid read failed");
                break Some(format!("read failed: {e}"));
            }
            Some(Ok(m)) => m,
        };
        if msg.is_close() {
            break Some("the peer closed the connection".to_owned());
        }
        if !msg.is_binary() {
            // Text frames are ignored like MinIO does; ping/pong are answered by the
            // websocket layer.
            continue;
        }
        if !conn.wait_inbound_unblocked(&session).await {
            break None;
        }
        let data = Bytes::from(msg.into_payload());
        conn.counters
            .incoming_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut voided = Vec::new();
        let done = {
            let registry = conn.ctx.registry();
            let mut g = session.lock();
            if waited {
                g.relay.new_pass(&mut voided);
            }
            let res = g.core.handle_frame(now(), &data, &*registry);
            drop(registry);
            if let Ok(n) = res {
                conn.counters
                    .incoming_messages
                    .fetch_add(u64::from(n), Ordering::Relaxed);
            }
            session.collect(&mut g)
        };
        // Closing (if the frame broke a rule) was logged and started by `collect`; the
        // check above ends the loop.
        session.act(done);
        voided.into_iter().for_each(std::task::Waker::wake);
    };
    if let Some(why) = reason {
        // Calls in flight see `Disconnected`; `why` goes to `Connection::last_error`.
        session.close_because(Error::Disconnected, why);
    }
    conn.session_ended(&session);
}

impl Session {
    /// Starts the handlers the core asked for. Single handlers that answer at once (with
    /// [`crate::Options::inline_handlers`]) are answered here, all in one write.
    pub(super) fn run_events(self: &Arc<Self>, events: super::Few<Event>) {
        let mut answers = super::Few::new();
        for ev in events {
            match ev {
                Event::Request {
                    mux,
                    handler,
                    subroute,
                    deadline,
                    payload,
                } => {
                    if let Some(answer) =
                        self.serve_request(mux, handler, subroute, deadline, payload)
                    {
                        answers.push((mux, answer));
                    }
                }
                Event::Stream {
                    mux,
                    handler,
                    subroute,
                    deadline,
                    payload,
                } => self.serve_stream(mux, handler, subroute, deadline, payload),
                Event::Cancel { mux } => {
                    let token = self.lock().served.get(&mux).cloned();
                    if let Some(t) = token {
                        t.cancel();
                    }
                }
            }
        }
        if !answers.is_empty() {
            let at = now();
            self.with_core(|core| {
                for (mux, answer) in answers {
                    core.respond(at, mux, Some(answer));
                }
            });
        }
    }
}
