//! One live websocket: the connection core behind one lock, the writer role, and the three
//! tasks (reader, writer, timer) that drive it.
//!
//! Ownership and locking: the [`Core`] (every mux's state) sits behind `Session::state`, a
//! short-held mutex that nobody holds across an `.await` or a socket write. Whoever changes
//! the core (a caller starting a request, the reader handling a frame, the timer) leaves
//! through [`Session::release`], which wakes whoever the core says and, if the core has
//! output and nobody is writing, takes the *writer role* and writes the frames itself
//! ([`writer`]). So there is one writer at a time, whoever holds the role also drains what
//! others queued meanwhile (frames still merge under load), and a call at low concurrency
//! crosses no task hand-off on its way out. The writer task only takes over when a write
//! would block, or after a few frames so that a reader never stays a writer for long, or for
//! a stream message sent with credits to spare (more may follow at once: they leave merged
//! once the sender yields, see [`Inner::defer_write`]).
//!
//! A quiet connection ([`Inner::quiet`]: four calls and streams at most) never waits
//! for more output to merge with: each yield polls the I/O driver and can wake a sleeping
//! worker thread, which then keeps waking the other, and on a small machine those wake-ups
//! cost more than the work. There the writer task yields only while there is more to write,
//! and a served stream's ack is held through its handler's first poll
//! ([`holding_writes`]) so that it leaves with the handler's first messages.

mod reader;
mod relay;
mod single;
mod timer;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant as StdInstant;

use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use rgrid_proto::conn::{CallError, CloseReason, Config, Core, Event, OutMsg};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::relay::Relay;
use super::{ConnShared, lock};
use crate::error::{Error, RemoteError};
use crate::transport::dial::WebSocket;

type WsSink = SplitSink<WebSocket, tokio_websockets::Message>;
type WsStream = SplitStream<WebSocket>;

/// Now on the clock the core runs on (tokio's, so paused test time drives it).
pub(crate) fn now() -> StdInstant {
    tokio::time::Instant::now().into_std()
}

/// The task [`Session::nudge_runtime`] wakes; it does nothing else.
async fn nudge_task(session: Arc<Session>) {
    let cancel = session.cancel.clone();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = session.nudge.notified() => {}
        }
    }
}

/// What lives behind the session's lock.
pub(crate) struct Inner {
    pub(crate) core: Core,
    /// Someone holds the writer role.
    writer_busy: bool,
    /// The last frame carried several messages: the connection is under load, and the
    /// writer task (which yields once so more can queue) merges better than inline writes.
    loaded: bool,
    /// The change being collected was a stream message sent with credits to spare: its
    /// sender may queue more at once, so the writer task (which yields once first) writes
    /// them together instead of one frame per message ([`Inner::defer_write`]).
    defer: bool,
    /// The writer task was handed the role because of load (not a deferral): it yields once
    /// before writing, so more can queue and merge.
    merge_wait: bool,
    /// Since when, and for how many deferred messages, the writer role has waited for the
    /// writer task after a hand-off (`None` otherwise); see [`Inner::defer_write`].
    deferred: Option<(StdInstant, usize)>,
    /// Cancellation tokens of the streams, and of the single requests in tasks of their own,
    /// served here, fired on [`Event::Cancel`].
    pub(crate) served: HashMap<u64, CancellationToken>,
    /// The error calls get once the session closed.
    reason: Option<Error>,
    /// The instant the timer task sleeps until.
    timer_at: Option<StdInstant>,
    /// Answered callers, woken one at a time.
    pub(crate) relay: Relay,
}

impl Inner {
    /// The cancellation token of a served stream.
    pub(crate) fn served_token(&self, mux: u64) -> Option<CancellationToken> {
        self.served.get(&mux).cloned()
    }

    /// Marks the change being made as one that more output may follow at once (a stream
    /// message of `size` bytes sent with credits to spare): if it takes the writer role, the
    /// writer task writes, after the sender yields, so a burst of messages leaves in one
    /// frame (as tonic's HTTP/2 connection task batches them) instead of a write per message.
    ///
    /// Bounded, for a sender that keeps sending without yielding (computing between sends,
    /// say): once [`DEFER_MAX_MESSAGES`] messages were deferred, or a send comes
    /// [`DEFER_MAX_WAIT`] after the writer role was handed to the writer task (for a
    /// deferral, or because the connection is loaded), that sender takes the role back (if
    /// the writer task has not started) and writes at once. Messages of
    /// [`DEFER_MAX_SIZE`] or more are not deferred: they could not share a frame anyway.
    pub(crate) fn defer_write(&mut self, size: usize) {
        self.defer = size < DEFER_MAX_SIZE;
    }

    /// A stream message was just taken (`had_output`: whether output was waiting before).
    /// If taking it made a credit owed, the connection is quiet and the taker has credits
    /// to answer with (`can_send`), the credit is deferred like a message
    /// ([`Inner::defer_write`]): it leaves when the taker yields, in one frame with what the
    /// taker sent meanwhile (with windows of 1, an echo's credit and answer), instead of a
    /// frame of its own. A taker that computes before it yields holds it as long.
    pub(crate) fn defer_credit(&mut self, had_output: bool, can_send: bool) {
        if !had_output && can_send && self.core.has_output() && self.quiet() {
            self.defer_write(0);
        }
    }

    /// Whether the connection is quiet: at most [`QUIET_MUXES`] calls and streams live, both
    /// directions. On a quiet connection nothing waits for more output to merge with (a
    /// yield costs a poll of the I/O driver, and any second runnable task wakes a sleeping
    /// worker thread, tens of microseconds on a small machine): frames leave as soon as
    /// the task that made them is done, and the writer task yields only while there is
    /// more to write.
    pub(crate) fn quiet(&self) -> bool {
        self.core.live_muxes() <= QUIET_MUXES
    }

    /// Whether a message may be queued now: the session is open and the outbound queue is
    /// below its bounds (else [`Session::wait_room`] says which, or waits).
    pub(crate) fn has_room(&self) -> bool {
        self.reason.is_none() && !self.core.queue_full()
    }

    /// Forgets a served stream's token once its handler ended.
    pub(crate) fn forget_served(&mut self, mux: u64) {
        self.served.remove(&mux);
    }
}

/// Live muxes up to which a connection counts as quiet ([`Inner::quiet`]): four calls and
/// streams, both directions counted. Measured against 2 and 8: 4 was about 15% faster for
/// streams at 4 in flight and the same at 2 and 8; 8 was slower for window-1 `twoway`
/// streams at 8 in flight.
const QUIET_MUXES: usize = 4;

/// Messages a deferral lets queue before the sender writes them itself
/// ([`Inner::defer_write`]).
const DEFER_MAX_MESSAGES: usize = 16;
/// How long after a deferral began a further send writes them itself (on tokio's clock, so a
/// test on paused time decides when it passes; otherwise the process's clock).
const DEFER_MAX_WAIT: std::time::Duration = std::time::Duration::from_micros(100);
/// Messages this large are written at once rather than deferred (half a merged frame).
const DEFER_MAX_SIZE: usize = crate::options::MAX_MERGE_BYTES / 2;

/// The writer's tools, used only by the holder of the writer role.
struct WriterState {
    sink: WsSink,
    batch: Vec<OutMsg>,
    /// The frame buffer frames are split off (unused when `masks`).
    frame: BytesMut,
    /// The websocket is the client end (this side dialed): it masks every frame in place,
    /// and copies a frame whose buffer it does not own alone (a frame split off `frame`
    /// would share its allocation). So each frame is encoded into a buffer of its own,
    /// exactly sized: the one allocation the copy cost, without copying the frame.
    masks: bool,
    /// Whether the writer task yields after the frame just pulled: the connection is not
    /// quiet, or more output waited when it was pulled ([`Inner::quiet`]).
    yield_next: bool,
    /// Bytes of the last frame written (whether the writer task may linger, see
    /// `writer::Session::linger`).
    last_frame: usize,
}

/// A live websocket session.
pub(crate) struct Session {
    pub(crate) conn: Arc<ConnShared>,
    state: Mutex<Inner>,
    writer: Mutex<WriterState>,
    pub(crate) cancel: CancellationToken,
    /// Hands the writer role to the writer task.
    writer_wake: Notify,
    /// An earlier timer was armed.
    timer_wake: Notify,
    /// Wakes the nudge task (see [`Session::nudge_runtime`]).
    nudge: Notify,
    /// The outbound queue dropped below its bounds.
    room: Notify,
    /// Set while the writer task holds the role (a frame is being flushed).
    handed_off: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.conn.remote)
            .finish_non_exhaustive()
    }
}

/// The reader, writer and timer futures of a new session, spawned once it is installed.
pub(crate) struct Tasks {
    reader: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    writer: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    timer: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    nudge: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Tasks {
    pub(crate) fn spawn(self, ctx: &crate::ctx::ManagerCtx) {
        ctx.tracker.spawn(self.writer);
        ctx.tracker.spawn(self.reader);
        ctx.tracker.spawn(self.timer);
        ctx.tracker.spawn(self.nudge);
    }
}

/// A snapshot of a session's counters.
pub(crate) struct SessionStats {
    pub(crate) incoming_muxes: usize,
    pub(crate) outgoing_muxes: usize,
    pub(crate) queued_messages: usize,
    pub(crate) queued_bytes: usize,
    pub(crate) last_rtt: Option<std::time::Duration>,
    pub(crate) max_rtt: Option<std::time::Duration>,
    pub(crate) last_pong_unix_nanos: u64,
}

/// A few items: the first two inline, more in a vector (a lock release usually wakes one or
/// two tasks and starts at most one handler, and this keeps that free of allocations).
pub(crate) struct Few<T> {
    inline: [Option<T>; 2],
    more: Vec<T>,
}

impl<T> Few<T> {
    fn new() -> Self {
        Few {
            inline: [None, None],
            more: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(item),
            None => self.more.push(item),
        }
    }

    fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.inline.iter().flatten().chain(&self.more)
    }
}

impl<T> Extend<T> for Few<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<
        std::iter::Flatten<std::array::IntoIter<Option<T>, 2>>,
        std::vec::IntoIter<T>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.inline.into_iter().flatten().chain(self.more)
    }
}

/// What a session lock hands back when released: wakers and events to act on outside it.
pub(crate) struct Released {
    wakers: Few<Waker>,
    /// Answered callers to wake ([`Relay`]).
    answered: Few<Waker>,
    events: Few<Event>,
    cancels: Few<CancellationToken>,
    write: bool,
}

impl Session {
    /// Builds a session over `ws` (`masks`: the client end of the websocket, see
    /// [`WriterState::masks`]). The returned tasks must be spawned to run it.
    pub(crate) fn start(
        conn: Arc<ConnShared>,
        ws: WebSocket,
        masks: bool,
    ) -> (Arc<Session>, Tasks) {
        let opts = &conn.ctx.options;
        let cfg = Config {
            base_flags: conn.base_flags,
            max_message_size: opts.max_message_size,
            max_frame_size: opts.frame_limit(),
            max_incoming_muxes: opts.max_incoming_muxes,
            max_pings_per_interval: opts.max_pings_per_interval,
            max_stateless_answers: opts.max_pending_replies.max(1),
            out_queue: (opts.out_queue_bytes, opts.out_queue),
            max_pending_answers: opts.max_pending_replies,
            ping_interval: opts.ping_interval,
            dead_after: opts.dead_after,
            stream_ping_interval: opts.stream_ping_interval,
        };
        let (sink, stream) = ws.split();
        let session = Arc::new(Session {
            state: Mutex::new(Inner {
                core: Core::new(cfg, now()),
                writer_busy: false,
                loaded: false,
                defer: false,
                merge_wait: false,
                deferred: None,
                served: HashMap::new(),
                reason: None,
                timer_at: None,
                relay: Relay::default(),
            }),
            writer: Mutex::new(WriterState {
                sink,
                batch: Vec::with_capacity(crate::options::MAX_MERGE_MESSAGES + 1),
                frame: if masks {
                    BytesMut::new()
                } else {
                    BytesMut::with_capacity(32 * 1024)
                },
                masks,
                yield_next: false,
                last_frame: 0,
            }),
            cancel: conn.ctx.shutdown.child_token(),
            writer_wake: Notify::new(),
            timer_wake: Notify::new(),
            nudge: Notify::new(),
            room: Notify::new(),
            handed_off: AtomicBool::new(false),
            conn,
        });
        let tasks = Tasks {
            reader: Box::pin(reader::run(session.clone(), stream)),
            writer: Box::pin(writer::run(session.clone())),
            timer: Box::pin(timer::run(session.clone())),
            nudge: Box::pin(nudge_task(session.clone())),
        };
        (session, tasks)
    }

    /// Locks the core.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.state)
    }

    /// Runs `f` on the core, then acts on what changed (wakes, events, writing).
    pub(crate) fn with_core<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        self.with_inner(|g| f(&mut g.core))
    }

    /// Like [`Session::with_core`], with the whole locked state.
    pub(crate) fn with_inner<R>(self: &Arc<Self>, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.lock();
        let r = f(&mut g);
        let done = self.collect(&mut g);
        drop(g);
        self.act(done);
        r
    }

    /// Collects, under the lock, what must be done once it is released.
    pub(crate) fn collect(&self, g: &mut Inner) -> Released {
        let mut wakers = Few::new();
        while let Some(w) = g.core.pop_waker() {
            wakers.push(w);
        }
        let mut answered = Few::new();
        while let Some((mux, w)) = g.core.pop_answered() {
            g.relay.push(mux, w);
        }
        g.relay.wake_after_push(&mut answered);
        let mut events = Few::new();
        let mut cancels = Few::new();
        while let Some(ev) = g.core.poll_event() {
            match ev {
                Event::Cancel { mux } => match g.served.get(&mux) {
                    Some(t) => cancels.push(t.clone()),
                    // A request's cancel in the same frame as the request: its handler starts
                    // in `run_events`, which then cancels it.
                    None => events.push(ev),
                },
                Event::Stream { mux, .. } => {
                    g.served.insert(mux, self.cancel.child_token());
                    events.push(ev);
                }
                other => events.push(other),
            }
        }
        let defer = std::mem::take(&mut g.defer);
        // On a quiet connection, output made while a stream's handler is being started, and
        // by that handler's first poll, waits for the end of that poll: the ack leaves with
        // the handler's first messages, or its end, in one frame (see `holding_writes`).
        let (held, hold_ended) = if g.quiet() {
            match self.hold(defer) {
                Hold::None => (
                    events.iter().any(|e| matches!(e, Event::Stream { .. })),
                    false,
                ),
                Hold::Held => (true, false),
                Hold::Ended => (false, true),
            }
        } else {
            (false, false)
        };
        let mut write = !held && !g.writer_busy && g.core.has_output();
        if write {
            g.writer_busy = true;
            if !hold_ended && (g.loaded || defer) {
                // Under load, or with more messages about to follow, one task writes merged
                // frames; a lone call writes its own.
                write = false;
                g.merge_wait = !defer || !g.quiet();
                g.deferred = Some((now(), 1));
                self.hand_off();
            }
        } else if defer && let Some((since, n)) = &mut g.deferred {
            *n += 1;
            // Bounded (see `Inner::defer_write`): take the role back if the writer task has
            // not started; once it has, it is writing.
            if (*n >= DEFER_MAX_MESSAGES
                || now().saturating_duration_since(*since) >= DEFER_MAX_WAIT)
                && self
                    .handed_off
                    .swap(false, std::sync::atomic::Ordering::AcqRel)
            {
                g.deferred = None;
                write = true;
            }
        }
        if let Some(at) = g.core.next_timeout()
            && g.timer_at.is_some_and(|t| at < t)
        {
            g.timer_at = Some(at);
            self.timer_wake.notify_one();
        }
        if let Some(reason) = g.core.close_reason()
            && g.reason.is_none()
        {
            let reason = reason.clone();
            g.reason = Some(Error::Disconnected);
            tracing::warn!(local = %self.conn.local, remote = %self.conn.remote,
                reason = %reason, "grid: closing connection");
            self.cancel.cancel();
        }
        Released {
            wakers,
            answered,
            events,
            cancels,
            write,
        }
    }

    /// Acts on what [`Session::collect`] gathered, outside the lock.
    pub(crate) fn act(self: &Arc<Self>, done: Released) {
        // Each list is usually empty: checked first, as building and dropping an iterator
        // over one is most of what an empty loop costs.
        if !done.wakers.is_empty() {
            done.wakers.into_iter().for_each(Waker::wake);
        }
        // Last, so an answered caller is the one this worker runs next.
        if !done.answered.is_empty() {
            done.answered.into_iter().for_each(Waker::wake);
        }
        if !done.cancels.is_empty() {
            done.cancels.into_iter().for_each(|t| t.cancel());
        }
        if !done.events.is_empty() {
            self.run_events(done.events);
        }
        if done.write {
            self.write_inline();
        }
    }

    /// Why the session closed, in words (empty while it is open).
    pub(crate) fn close_text(&self) -> String {
        self.lock()
            .core
            .close_reason()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Makes sure a second worker thread of a multi-thread runtime is awake after a
    /// handler task was spawned here. A task spawned from a worker goes to that worker's
    /// "next task" slot, which other workers cannot steal, and no idle worker is woken: if
    /// the handler then blocks its thread (a `std` sleep, a blocking read), nobody polls the
    /// runtime's I/O and timers until it returns, and every connection of the process
    /// stalls. Waking the nudge task right after the spawn takes that slot, which moves the
    /// handler to the worker's stealable queue and wakes an idle worker: one of the two
    /// keeps the runtime going while the other runs the handler.
    pub(super) fn nudge_runtime(&self) {
        self.nudge.notify_one();
    }

    /// Sends a connection ping now and waits for its pong; the round-trip time.
    pub(crate) async fn ping(self: &Arc<Self>) -> Result<std::time::Duration, Error> {
        let wall = rgrid_proto::GridTime::from_system_time(std::time::SystemTime::now());
        let n = self.with_core(|core| core.ping_now(now(), wall));
        std::future::poll_fn(|cx| self.lock().core.poll_pong(n, cx.waker()))
            .await
            .map_err(|e| self.error(e))
    }

    /// Resolves when the session has closed.
    pub(crate) async fn closed(&self) {
        self.cancel.cancelled().await;
    }

    /// Closes the session: in-flight calls fail with `reason`, served handlers are
    /// cancelled, the tasks stop, the socket is dropped. Idempotent; the first reason wins.
    pub(crate) fn close(self: &Arc<Self>, reason: Error) {
        let why = reason.to_string();
        self.close_because(reason, why);
    }

    /// Like [`Session::close`], with the reason in words for the connection's record
    /// (`why`), when it says more than the error calls get.
    pub(crate) fn close_because(self: &Arc<Self>, reason: Error, why: String) {
        let mut g = self.lock();
        if g.reason.is_none() {
            g.reason = Some(reason.clone());
        }
        g.core.close(CloseReason::Local(why));
        let done = self.collect(&mut g);
        let relay: Vec<Waker> = g.relay.take_all().collect();
        drop(g);
        self.cancel.cancel();
        self.act(done);
        relay.into_iter().for_each(Waker::wake);
        self.room.notify_waiters();
    }

    /// Maps a core error to the call's error.
    pub(crate) fn error(&self, e: CallError) -> Error {
        match e {
            CallError::Remote(t) => Error::Remote(RemoteError::new(t)),
            CallError::Disconnected => Error::Disconnected,
            CallError::ConnectionClosed => {
                self.lock().reason.clone().unwrap_or(Error::Disconnected)
            }
            CallError::DeadlineExceeded => Error::DeadlineExceeded,
            CallError::Cancelled => Error::Cancelled,
            CallError::Sequence { want, got } => Error::IncorrectSequence { want, got },
            CallError::Protocol(t) => Error::Protocol(t),
            CallError::Local(t) => Error::Usage(t.to_owned()),
        }
    }

    /// Runs `f` on the locked state as soon as the outbound queue is below its bounds
    /// ([`crate::Options::out_queue`], [`crate::Options::out_queue_bytes`]): the check and
    /// `f` happen under one lock, so no more callers get in than the bounds allow.
    pub(crate) async fn admit<R>(
        self: &Arc<Self>,
        mut f: impl FnMut(&mut Inner) -> R,
    ) -> Result<R, Error> {
        // Fast path: no waiter registration (it takes the notifier's lock) while there is
        // room, which is nearly always.
        let mut wait = false;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            if wait {
                room.as_mut().enable();
            }
            {
                let mut g = self.lock();
                if let Some(r) = &g.reason {
                    return Err(r.clone());
                }
                if !g.core.queue_full() {
                    let r = f(&mut g);
                    let done = self.collect(&mut g);
                    drop(g);
                    self.act(done);
                    return Ok(r);
                }
            }
            if !wait {
                // Full: register, then look again before sleeping.
                wait = true;
                continue;
            }
            tokio::select! {
                () = room => {}
                () = self.cancel.cancelled() => {}
            }
        }
    }

    /// Waits until the outbound queue is below its bounds.
    pub(crate) async fn wait_room(self: &Arc<Self>) -> Result<(), Error> {
        self.admit(|_| ()).await
    }

    /// The core's counters, with the last pong's time on the wall clock.
    pub(crate) fn core_stats(&self) -> SessionStats {
        let (s, last_pong) = {
            let g = self.lock();
            (g.core.stats(), g.core.last_pong())
        };
        let ago = now().saturating_duration_since(last_pong);
        let ago = u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX);
        SessionStats {
            incoming_muxes: s.incoming_muxes,
            outgoing_muxes: s.outgoing_muxes,
            queued_messages: s.queued_messages,
            queued_bytes: s.queued_bytes,
            last_rtt: s.last_rtt,
            max_rtt: s.max_rtt,
            last_pong_unix_nanos: super::unix_nanos().saturating_sub(ago),
        }
    }

    /// Test hook: makes the writer notice an outbound block at once (it takes the writer
    /// role if nobody holds it, and parks).
    #[cfg(feature = "test-util")]
    pub(crate) fn nudge_writer(&self) {
        let mut g = self.lock();
        if !g.writer_busy {
            g.writer_busy = true;
            drop(g);
            self.hand_off();
        }
    }

    fn outbound_blocked(&self) -> bool {
        self.conn.faults_outbound_blocked()
    }

    /// Wakes callers waiting for room if the queue dropped below its bounds.
    fn signal_room(&self, g: &Inner) {
        if !g.core.queue_full() {
            self.room.notify_waiters();
        }
    }
}

/// A hold on one session's writes by the task running on this thread ([`holding_writes`]).
#[derive(Clone, Copy)]
struct HoldState {
    /// The session (its address, only compared).
    session: usize,
    /// When the hold began.
    since: StdInstant,
    /// Deferrable messages sent under it.
    sends: usize,
}

thread_local! {
    /// Set while this thread runs code inside [`holding_writes`].
    static HOLDING: std::cell::Cell<Option<HoldState>> = const { std::cell::Cell::new(None) };
}

/// Whether this thread holds a session's writes ([`Session::hold`]).
enum Hold {
    /// Not this session's.
    None,
    /// Held: write nothing yet.
    Held,
    /// The hold reached its bound ([`DEFER_MAX_MESSAGES`] messages or [`DEFER_MAX_WAIT`]):
    /// write what waits at once.
    Ended,
}

impl Session {
    /// Whether a release on this thread falls under a hold of this session's writes;
    /// `defer`: it sent a message (counted against the bound).
    fn hold(&self, defer: bool) -> Hold {
        let Some(mut h) = HOLDING.get() else {
            return Hold::None;
        };
        if h.session != std::ptr::from_ref(self) as usize {
            return Hold::None;
        }
        if defer {
            h.sends += 1;
            HOLDING.set(Some(h));
        }
        if h.sends >= DEFER_MAX_MESSAGES
            || now().saturating_duration_since(h.since) >= DEFER_MAX_WAIT
        {
            // This release writes; later ones defer as usual.
            HOLDING.set(None);
            Hold::Ended
        } else {
            Hold::Held
        }
    }
}

/// Runs `f` (the first poll of a served stream's task) with this thread's writes to
/// `session` held while the connection is quiet ([`Inner::quiet`]): what `f` makes leaves
/// when the caller releases the session once more, merged into one frame, so a stream's ack
/// leaves with its first messages, or its end. Bounded like a deferral
/// ([`Inner::defer_write`]): after [`DEFER_MAX_MESSAGES`] messages or [`DEFER_MAX_WAIT`],
/// releases write again. Other tasks write as usual (and take the held output with them).
pub(crate) fn holding_writes<R>(session: &Session, f: impl FnOnce() -> R) -> R {
    /// Restores the hold found on entry, also if `f` panics.
    struct Restore(Option<HoldState>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HOLDING.set(self.0);
        }
    }
    let _restore = Restore(HOLDING.replace(Some(HoldState {
        session: std::ptr::from_ref(session) as usize,
        since: now(),
        sends: 0,
    })));
    f()
}
