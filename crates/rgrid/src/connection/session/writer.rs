//! The writer role: pulls frames from the core and writes them to the socket.
//!
//! Whoever finds the writer idle with output pending takes the role ([`Session::collect`]) and
//! writes inline with [`Session::write_inline`]: without waiting, so a caller or the reader
//! never blocks on the socket. If the socket is full, or after [`INLINE_FRAMES`] frames, the
//! role passes to the writer task ([`run`]), which waits for the socket (bounded by
//! [`crate::Options::write_timeout`]) and drains the rest.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures_util::Sink;
use rgrid_proto::conn::{encode_frame, frame_len};

use super::{Session, WriterState};
use crate::error::Error;
use crate::options::{MAX_MERGE_BYTES, MAX_MERGE_MESSAGES};

/// Frames a task other than the writer writes before handing the role on.
const INLINE_FRAMES: usize = 4;

/// Rounds of the scheduler the writer task stays runnable after draining a busy connection
/// (see [`Session::linger`]).
const LINGER_ROUNDS: usize = 3;

/// Rounds the writer task lingers once [`LINGER_LOADED_MUXES`] calls and streams are live.
/// Against 3 rounds throughout, in batches of 10–12 alternated benchmark rounds: MinIO's
/// window-1 stream shapes at 8–32 in flight 0–20% more msgs/s (most points +5–15%, the same
/// sign in three batches), window-16 shapes mixed (−12% to +16%), single requests the same
/// or higher; 8 rounds at 4 in flight as well cost window-16 streams there 4–12%, hence the
/// threshold.
const LINGER_ROUNDS_LOADED: usize = 8;
/// Live calls and streams (both directions counted) from which the writer task lingers
/// [`LINGER_ROUNDS_LOADED`] rounds.
const LINGER_LOADED_MUXES: usize = 6;

/// Frames from this size on end the writer task's lingering (see [`Session::linger`]).
const LINGER_MAX_FRAME: usize = MAX_MERGE_BYTES;

enum Step {
    /// Nothing more to write; the role was released. `true`: the writer task may linger
    /// ([`Session::linger`]): the connection is busy and the last frame was small.
    Idle(usize),
    /// A frame is written (or buffered in the sink and flushed).
    Wrote,
    /// The socket did not take everything: the rest must be flushed by someone who can wait.
    Blocked,
    /// Writing failed; the session is closing.
    Failed,
}

impl Session {
    /// Writes pending frames without waiting; hands the role to the writer task when the
    /// socket is full or after a few frames.
    pub(crate) fn write_inline(self: &Arc<Self>) {
        if self.outbound_blocked() {
            return self.hand_off();
        }
        let mut w = super::lock(&self.writer);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..INLINE_FRAMES {
            match self.write_one(&mut w, &mut cx) {
                Step::Idle(_) | Step::Failed => return,
                Step::Wrote => {}
                Step::Blocked => {
                    drop(w);
                    return self.hand_off();
                }
            }
        }
        drop(w);
        self.hand_off();
    }

    pub(super) fn hand_off(&self) {
        self.handed_off.store(true, Ordering::Release);
        self.writer_wake.notify_one();
    }

    /// Pulls one frame from the core and starts writing it. With a no-op waker, `Blocked`
    /// means the frame sits in the sink's buffer and must be flushed by the writer task.
    fn write_one(self: &Arc<Self>, w: &mut WriterState, cx: &mut Context<'_>) -> Step {
        {
            let mut g = self.lock();
            let was_full = g.core.queue_full();
            w.batch.clear();
            if g.core
                .poll_transmit(&mut w.batch, MAX_MERGE_MESSAGES + 1, MAX_MERGE_BYTES)
                == 0
            {
                g.writer_busy = false;
                g.deferred = None;
                let quiet = g.quiet();
                if quiet {
                    // A burst on a quiet connection is not load: the next call writes inline.
                    g.loaded = false;
                }
                let rounds = if quiet || g.core.bulk_live() || w.last_frame >= LINGER_MAX_FRAME {
                    0
                } else if g.core.live_muxes() >= LINGER_LOADED_MUXES {
                    LINGER_ROUNDS_LOADED
                } else {
                    LINGER_ROUNDS
                };
                return Step::Idle(rounds);
            }
            g.loaded = w.batch.len() > 1;
            w.yield_next = !g.quiet() || g.core.has_output();
            if was_full {
                self.signal_room(&g);
            }
        }
        // See `WriterState::masks`: the client end encodes each frame into its own buffer;
        // the server end splits frames off one buffer it reuses.
        let own = w.masks;
        let mut own_buf = BytesMut::new();
        let buf = if own {
            own_buf.reserve(frame_len(&w.batch));
            &mut own_buf
        } else {
            &mut w.frame
        };
        if let Err(e) = encode_frame(&w.batch, buf) {
            // Only a payload of 4 GiB or more gets here; senders check sizes first.
            tracing::error!(error = %e, "grid: cannot encode outgoing message");
            buf.clear();
            return Step::Wrote;
        }
        let count = w.batch.len() as u64;
        w.batch.clear();
        let len = buf.len() as u64;
        w.last_frame = buf.len();
        let frame = if own { own_buf } else { w.frame.split() };
        let msg = tokio_websockets::Message::binary(frame.freeze());
        let sink = Pin::new(&mut w.sink);
        let res = match sink.poll_ready(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut w.sink).start_send(msg),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                // Cannot happen while the role is held (every frame is flushed before the
                // next), but stay safe: the writer task will finish.
                return Step::Blocked;
            }
        };
        if let Err(e) = res {
            tracing::debug!(remote = %self.conn.remote, error = %e, "grid write failed");
            self.close(Error::Disconnected);
            return Step::Failed;
        }
        let c = &self.conn.counters;
        c.outgoing_bytes.fetch_add(len, Ordering::Relaxed);
        c.outgoing_messages.fetch_add(count, Ordering::Relaxed);
        match Pin::new(&mut w.sink).poll_flush(cx) {
            Poll::Ready(Ok(())) => Step::Wrote,
            Poll::Ready(Err(e)) => {
                tracing::debug!(remote = %self.conn.remote, error = %e, "grid write failed");
                self.close(Error::Disconnected);
                Step::Failed
            }
            Poll::Pending => Step::Blocked,
        }
    }

    /// The writer task, having drained the output of a busy connection ([`Inner::quiet`]
    /// false) with small frames, stays runnable for `rounds` rounds of the scheduler
    /// ([`LINGER_ROUNDS`], or [`LINGER_ROUNDS_LOADED`] from [`LINGER_LOADED_MUXES`] live
    /// calls and streams) before it sleeps: each `yield_now` lets every other ready task run and polls
    /// the I/O driver without blocking. If output comes meanwhile and nobody holds the writer
    /// role, it takes the role back and returns `true` (it then writes).
    ///
    /// Why: in a latency-bound exchange on a busy connection (streams with windows of 1, each
    /// message waiting for a credit), the next output usually follows within microseconds.
    /// A worker thread left with nothing to run parks, and its wake-up (a futex call and a
    /// context switch, tens of microseconds on a small machine) then sits on the exchange's
    /// critical path; the writer staying runnable keeps the worker awake through that gap.
    /// Not while a bulk-class call or stream is live ([`rgrid_proto::conn::Core::bulk_live`]),
    /// nor after a frame of [`LINGER_MAX_FRAME`] bytes or more: a bulk transfer keeps the
    /// workers busy anyway, and lingering beside one took CPU from the small calls next to
    /// it (head-of-line p99 about 14% higher in the benchmark). The cost is bounded: a few
    /// polls of the I/O driver after a drain.
    ///
    /// [`Inner::quiet`]: super::Inner::quiet
    async fn linger(self: &Arc<Self>, rounds: usize) -> bool {
        for _ in 0..rounds {
            tokio::task::yield_now().await;
            if self.cancel.is_cancelled() {
                return false;
            }
            let mut g = self.lock();
            // Someone else may hold the role meanwhile: then this task only keeps the worker
            // awake (the holder hands on to it if it must).
            if !g.writer_busy && g.core.has_output() {
                g.writer_busy = true;
                return true;
            }
        }
        false
    }

    /// Flushes what the sink holds, waiting for the socket (bounded by the write timeout).
    async fn flush(self: &Arc<Self>) -> bool {
        let opts = &self.conn.ctx.options;
        let flush = poll_fn(|cx| {
            let mut w = super::lock(&self.writer);
            Pin::new(&mut w.sink).poll_flush(cx)
        });
        let res = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return false,
            r = tokio::time::timeout(opts.write_timeout, flush) => r,
        };
        match res {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(remote = %self.conn.remote, error = %e, "grid write failed");
                self.close(Error::Disconnected);
                false
            }
            Err(_) => {
                tracing::warn!(remote = %self.conn.remote,
                    "grid: write timed out (limit write_timeout), closing connection");
                self.close(Error::Disconnected);
                false
            }
        }
    }
}

/// The writer task: takes over the writer role when an inline writer hands it on.
pub(super) async fn run(session: Arc<Session>) {
    loop {
        tokio::select! {
            biased;
            () = session.cancel.cancelled() => break,
            () = session.writer_wake.notified() => {}
        }
        if !session.handed_off.swap(false, Ordering::AcqRel) {
            continue;
        }
        // Under load, give other tasks one chance to queue more so small messages merge
        // (MinIO yields once the same way). A deferral needs no yield on a quiet connection:
        // this task runs once the sender yields.
        let merge_wait = {
            let mut g = session.lock();
            std::mem::take(&mut g.merge_wait) || !g.quiet()
        };
        if merge_wait {
            tokio::task::yield_now().await;
        }
        loop {
            if !session.conn.wait_outbound_unblocked(&session).await {
                return session.conn.session_ended(&session);
            }
            if !session.flush().await {
                return session.conn.session_ended(&session);
            }
            // The task's own waker: a transport may keep one waker for both directions,
            // and a no-op one would then silence the reader.
            let step = poll_fn(|cx| {
                let mut w = super::lock(&session.writer);
                Poll::Ready(session.write_one(&mut w, cx))
            })
            .await;
            match step {
                Step::Idle(rounds) => {
                    if rounds > 0 && session.linger(rounds).await {
                        continue;
                    }
                    break;
                }
                Step::Failed => return session.conn.session_ended(&session),
                Step::Wrote | Step::Blocked => {
                    // Let others run between frames; the next flush finishes this one. On
                    // a quiet connection with nothing more to write, no yield (see
                    // `Inner::quiet`).
                    let more = super::lock(&session.writer).yield_next;
                    if more {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }
    session.conn.session_ended(&session);
}
