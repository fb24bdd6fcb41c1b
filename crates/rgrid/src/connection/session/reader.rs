//! The reader task: feeds received frames to the core and starts the handlers it asks for.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use rgrid_proto::conn::Event;

use super::{Session, WsStream, now};
use crate::error::Error;

/// Frames handled before the reader acts on what they produced (wakes consumers and callers,
/// starts handlers, writes), when more are already buffered.
const READ_BATCH: usize = 8;

/// A frame this large is acted on at once: batching is for small frames, and looking for the
/// next one while its payload is still held would make the websocket allocate a new read
/// buffer instead of reusing the one the payload leaves (once consumed).
const BATCH_MAX_FRAME: usize = 16 * 1024;

/// Reads frames until the connection ends. Frames already buffered are handled together (up
/// to [`READ_BATCH`]) before acting on them, so the answers and credits they produce leave
/// in one write instead of one each.
pub(super) async fn run(session: Arc<Session>, mut stream: WsStream) {
    let conn = session.conn.clone();
    let cancelled = session.cancel.clone().cancelled_owned();
    tokio::pin!(cancelled);
    // Frames handled since the reader last acted.
    let mut unacted = 0usize;
    let reason = loop {
        let buffered = if unacted > 0 {
            stream.next().now_or_never()
        } else {
            None
        };
        let next = match buffered {
            // The end or an error waits until the frames before it are acted on.
            Some(m @ Some(Ok(_))) if unacted < READ_BATCH => m,
            buffered => {
                if unacted > 0 {
                    unacted = 0;
                    let done = session.collect(&mut session.lock());
                    session.act(done);
                    if session.cancel.is_cancelled() {
                        break None;
                    }
                }
                match buffered {
                    Some(m) => m,
                    None => tokio::select! {
                        biased;
                        () = &mut cancelled => break None,
                        m = stream.next() => m,
                    },
                }
            }
        };
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
        if unacted > 0 && conn.inbound_blocked() {
            // The test hook holds this frame: the frames before it take effect first.
            unacted = 0;
            let done = session.collect(&mut session.lock());
            session.act(done);
        }
        if !conn.wait_inbound_unblocked(&session).await {
            break None;
        }
        let data = Bytes::from(msg.into_payload());
        conn.counters
            .incoming_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let broke = {
            let registry = conn.ctx.registry();
            let mut g = session.lock();
            let res = g.core.handle_frame(now(), &data, &*registry);
            drop(registry);
            if let Ok(n) = res {
                conn.counters
                    .incoming_messages
                    .fetch_add(u64::from(n), Ordering::Relaxed);
            }
            res.is_err()
        };
        unacted += 1;
        if broke || data.len() >= BATCH_MAX_FRAME {
            // Closing (if the frame broke a rule) is logged and started by `collect`.
            unacted = 0;
            let done = session.collect(&mut session.lock());
            session.act(done);
        }
        if session.cancel.is_cancelled() {
            break None;
        }
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
