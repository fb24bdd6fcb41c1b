//! One remote host: its state, its live websocket session, and the calls made to it.

mod serve_stream;
mod session;
mod stream;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rgrid_proto::{Flags, HandlerId, RouteHash, SubrouteId};
#[cfg(feature = "test-util")]
use tokio::sync::Notify;
use tokio::sync::watch;
use tracing::Instrument;

pub(crate) use self::session::Session;
pub use self::stream::{CallStream, Responses, StreamSender};
use crate::ctx::ManagerCtx;
use crate::error::Error;
use crate::handlers::Priority;
use crate::transport::dial::WebSocket;
use crate::util::lock;

/// The state of a connection (MinIO's `State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Never connected yet (an accepting side stays here until the peer dials).
    Unconnected,
    /// The dial loop is trying to connect.
    Connecting,
    /// A websocket is up; calls can be made.
    Connected,
    /// The last attempt failed or the connection was lost; it is being re-established.
    ConnectionError,
    /// The manager shut down. Terminal.
    Shutdown,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Unconnected => "Unconnected",
            State::Connecting => "Connecting",
            State::Connected => "Connected",
            State::ConnectionError => "ConnectionError",
            State::Shutdown => "Shutdown",
        })
    }
}

/// Why a connection is down, or why it last went down ([`Connection::last_error`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnFailure {
    /// What failed:
    /// * [`Error::Rejected`]: the handshake was refused, with the refuser's reason (a wrong
    ///   token or JWT secret, a host name the peer does not know, clock skew). See
    ///   [`ConnFailure::refused_here`] for which side refused.
    /// * [`Error::Transport`] or [`Error::Tls`]: the dial failed (nothing listening, a
    ///   timeout, an untrusted certificate).
    /// * [`Error::Protocol`]: the peer broke the protocol in the handshake.
    /// * [`Error::Lost`]: an established connection ended, with why (the peer closed it,
    ///   nothing heard for `Options::dead_after`, a protocol violation, ...).
    pub error: Error,
    /// This node refused the peer's handshake (the peer claimed this host's name but failed
    /// authentication): the fix is on one of the two nodes' credentials. Such a claim is not
    /// authenticated, so anyone able to reach the port can cause this entry.
    pub refused_here: bool,
    /// Failed attempts in a row when this was recorded (1 = the first attempt after the
    /// connection was last up, or after start); 0 for a lost connection.
    pub attempts: u64,
    /// When it happened, on the wall clock.
    pub at: SystemTime,
}

/// A snapshot of a connection's statistics (MinIO's per-connection RPC metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnStats {
    /// Whether the connection is up.
    pub connected: bool,
    /// Requests and streams being handled here for the remote.
    pub incoming_muxes: usize,
    /// Calls to the remote waiting for their response, and streams to it not yet ended.
    pub outgoing_muxes: usize,
    /// Bytes received (websocket payloads).
    pub incoming_bytes: u64,
    /// Bytes sent (websocket payloads).
    pub outgoing_bytes: u64,
    /// Messages received; each message of a merged frame counts.
    pub incoming_messages: u64,
    /// Messages sent; each message of a merged frame counts.
    pub outgoing_messages: u64,
    /// Messages waiting in the outbound queue.
    pub out_queue: usize,
    /// Payload bytes charged to the outbound byte budget
    /// ([`crate::Options::out_queue_bytes`]): calls and stream messages in the outbound queue
    /// or waiting for a place in it.
    pub out_queue_bytes: usize,
    /// When the last connection-level pong arrived (Unix nanoseconds, 0 = never).
    pub last_pong_unix_nanos: u64,
    /// When the connection last came up (Unix nanoseconds, 0 = never).
    pub last_connect_unix_nanos: u64,
    /// How often the connection was re-established after the first time.
    pub reconnects: u64,
    /// Round-trip time of the last connection ping, in microseconds (0 until measured:
    /// MinIO's metric; [`ConnStats::last_rtt`] tells "not yet" apart).
    pub last_ping_rtt_micros: u64,
    /// Largest round-trip time of a connection ping seen, in microseconds (0 until
    /// measured).
    pub max_ping_rtt_micros: u64,
    /// Round-trip time of the last connection ping; `None` until a pong was measured on
    /// the current connection ([`Connection::ping`] measures one on demand).
    pub last_rtt: Option<Duration>,
    /// Largest round-trip time of a connection ping on the current connection.
    pub max_rtt: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) incoming_bytes: AtomicU64,
    pub(crate) outgoing_bytes: AtomicU64,
    pub(crate) incoming_messages: AtomicU64,
    pub(crate) outgoing_messages: AtomicU64,
    pub(crate) last_connect: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// Unix time in nanoseconds.
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Test-only fault injection state (feature `test-util`).
#[cfg(feature = "test-util")]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) inbound_blocked: AtomicBool,
    pub(crate) inbound_released: Notify,
    pub(crate) outbound_blocked: AtomicBool,
    pub(crate) outbound_released: Notify,
    /// Set while the writer waits for an outbound block to end.
    pub(crate) outbound_parked: AtomicBool,
    pub(crate) outbound_parked_changed: Notify,
}

/// Everything about one remote, shared by the handle, the dial loop and the session tasks.
pub(crate) struct ConnShared {
    pub(crate) local: String,
    pub(crate) remote: Arc<str>,
    /// Whether this side dials (the who-dials rule).
    pub(crate) dials: bool,
    /// Checksums are on unless both hosts use TLS (spec §3.6).
    pub(crate) base_flags: Flags,
    pub(crate) ctx: Arc<ManagerCtx>,
    state: watch::Sender<State>,
    /// The live session. Weak: the session's tasks (and call handles) keep it alive, and the
    /// session points back here, so a strong reference would make a cycle that outlives a
    /// dropped runtime and keeps its socket open.
    session: Mutex<Option<Weak<Session>>>,
    remote_id: Mutex<Option<[u8; 16]>>,
    /// Why the connection is down, or last went down.
    failure: Mutex<Option<ConnFailure>>,
    /// Stops this connection's dial loop: the manager's shutdown, or the host's removal.
    pub(crate) stop: tokio_util::sync::CancellationToken,
    /// The host was removed from the grid ([`crate::Manager::remove_host`]).
    pub(crate) removed: AtomicBool,
    pub(crate) counters: Counters,
    #[cfg(feature = "test-util")]
    pub(crate) faults: Faults,
}

impl fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl ConnShared {
    /// Test hook: whether the writer must stop.
    pub(crate) fn faults_outbound_blocked(&self) -> bool {
        #[cfg(feature = "test-util")]
        {
            self.faults.outbound_blocked.load(Ordering::Relaxed)
        }
        #[cfg(not(feature = "test-util"))]
        {
            false
        }
    }

    /// Test hook: waits while the writer is blocked (telling [`OutboundBlock::parked`]).
    /// Returns false if the session closed.
    pub(crate) async fn wait_outbound_unblocked(&self, session: &Session) -> bool {
        #[cfg(feature = "test-util")]
        {
            let f = &self.faults;
            if !f.outbound_blocked.load(Ordering::SeqCst) {
                return true;
            }
            f.outbound_parked.store(true, Ordering::SeqCst);
            f.outbound_parked_changed.notify_waiters();
            let go_on = wait_unblocked(&f.outbound_blocked, &f.outbound_released, session).await;
            f.outbound_parked.store(false, Ordering::SeqCst);
            go_on
        }
        #[cfg(not(feature = "test-util"))]
        {
            let _ = session;
            true
        }
    }

    /// Test hook: waits while inbound processing is blocked. Returns false if the session
    /// closed.
    pub(crate) async fn wait_inbound_unblocked(&self, session: &Session) -> bool {
        #[cfg(feature = "test-util")]
        {
            let f = &self.faults;
            wait_unblocked(&f.inbound_blocked, &f.inbound_released, session).await
        }
        #[cfg(not(feature = "test-util"))]
        {
            let _ = session;
            true
        }
    }
}

/// Test hooks: waits while `blocked` is set. Returns false if the session closed.
#[cfg(feature = "test-util")]
async fn wait_unblocked(blocked: &AtomicBool, unblocked: &Notify, session: &Session) -> bool {
    // Fast path for every frame: one load, no waiter registration.
    if !blocked.load(Ordering::SeqCst) {
        return true;
    }
    loop {
        let released = unblocked.notified();
        if !blocked.load(Ordering::SeqCst) {
            return true;
        }
        tokio::select! {
            _ = released => {}
            _ = session.cancel.cancelled() => return false,
        }
    }
}

impl ConnShared {
    pub(crate) fn new(ctx: Arc<ManagerCtx>, local: &str, remote: &str) -> Self {
        let dials = rgrid_proto::should_dial(local, remote);
        Self::with_role(ctx, local, remote, dials)
    }

    /// A connection whose dialing side is fixed (client participants: the client dials).
    pub(crate) fn with_role(ctx: Arc<ManagerCtx>, local: &str, remote: &str, dials: bool) -> Self {
        let tls = |h: &str| h.starts_with("https://") || h.starts_with("wss://");
        let base_flags = if tls(local) && tls(remote) {
            Flags::NONE
        } else {
            Flags::CRC
        };
        let stop = ctx.shutdown.child_token();
        ConnShared {
            stop,
            local: local.to_owned(),
            remote: Arc::from(remote),
            dials,
            base_flags,
            ctx,
            state: watch::Sender::new(State::Unconnected),
            session: Mutex::new(None),
            remote_id: Mutex::new(None),
            failure: Mutex::new(None),
            removed: AtomicBool::new(false),
            counters: Counters::default(),
            #[cfg(feature = "test-util")]
            faults: Faults::default(),
        }
    }

    pub(crate) fn state(&self) -> State {
        *self.state.borrow()
    }

    /// The error of a call made while there is no session.
    pub(crate) fn down_error(&self) -> Error {
        if self.removed.load(Ordering::SeqCst) {
            Error::UnknownHost(self.remote.to_string())
        } else if self.state() == State::Shutdown {
            Error::Shutdown
        } else {
            Error::Disconnected
        }
    }

    /// Records why the connection is down (see [`ConnFailure`]).
    pub(crate) fn record_failure(&self, error: Error, refused_here: bool, attempts: u64) {
        *lock(&self.failure) = Some(ConnFailure {
            error,
            refused_here,
            attempts,
            at: SystemTime::now(),
        });
    }

    /// Changes the state unless it is the terminal Shutdown.
    pub(crate) fn set_state(&self, new: State) {
        let changed = self.state.send_if_modified(|s| {
            if *s == State::Shutdown || *s == new {
                false
            } else {
                *s = new;
                true
            }
        });
        if changed {
            tracing::debug!(local = %self.local, remote = %self.remote, state = %new, "grid connection state");
        }
    }

    /// The live session, if connected.
    pub(crate) fn session(&self) -> Option<Arc<Session>> {
        lock(&self.session).as_ref().and_then(Weak::upgrade)
    }

    /// Starts serving `ws` as this connection's session, replacing (and failing) any previous
    /// one. `dialed`: this side dialed, so its websocket is the client end, which masks what
    /// it sends. Returns `None` when the manager is shut down.
    pub(crate) fn attach(
        self: &Arc<Self>,
        ws: WebSocket,
        remote_id: [u8; 16],
        dialed: bool,
    ) -> Option<Arc<Session>> {
        if self.state() == State::Shutdown || self.ctx.shutdown.is_cancelled() {
            return None;
        }
        let (session, tasks) = Session::start(self.clone(), ws, dialed);
        let old = {
            let mut cur = lock(&self.session);
            let old = cur
                .replace(Arc::downgrade(&session))
                .and_then(|w| w.upgrade());
            let mut known = lock(&self.remote_id);
            if known.is_some() {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                crate::metrics::reconnected(&self.remote);
            }
            *known = Some(remote_id);
            old
        };
        if let Some(old) = old {
            tracing::info!(local = %self.local, remote = %self.remote, "grid connection replaced by a new one");
            old.close(Error::Disconnected);
        }
        self.counters
            .last_connect
            .store(unix_nanos(), Ordering::Relaxed);
        self.set_state(State::Connected);
        tracing::info!(local = %self.local, remote = %self.remote, "grid connected");
        tasks.spawn(&self.ctx);
        Some(session)
    }

    /// Called when a session ended: forgets it if it is still the current one.
    pub(crate) fn session_ended(&self, session: &Arc<Session>) {
        let was_current = {
            let mut cur = lock(&self.session);
            if cur
                .as_ref()
                .is_some_and(|s| std::ptr::eq(s.as_ptr(), Arc::as_ptr(session)))
            {
                *cur = None;
                true
            } else {
                false
            }
        };
        if was_current {
            let why = session.close_text();
            tracing::info!(local = %self.local, remote = %self.remote, reason = %why,
                "grid connection lost");
            if self.state() != State::Shutdown {
                self.record_failure(Error::Lost(why), false, 0);
            }
            self.set_state(State::ConnectionError);
        }
    }

    /// The host left the grid: the dial loop stops, calls in flight fail with
    /// [`Error::Disconnected`], and later calls with [`Error::UnknownHost`].
    pub(crate) fn remove(&self) {
        self.removed.store(true, Ordering::SeqCst);
        self.stop.cancel();
        let _ = self.state.send_replace(State::Shutdown);
        if let Some(s) = lock(&self.session).take().and_then(|w| w.upgrade()) {
            s.close(Error::Disconnected);
        }
    }

    /// Shuts the connection down for good: in-flight calls end with [`Error::Shutdown`].
    pub(crate) fn shutdown(&self) {
        let _ = self.state.send_replace(State::Shutdown);
        if let Some(s) = lock(&self.session).take().and_then(|w| w.upgrade()) {
            s.close(Error::Shutdown);
        }
    }
}

/// A handle to the connection with one remote host. Cheap to clone.
///
/// Calls fail at once with [`Error::Disconnected`] while the connection is not up; they never
/// wait or queue for a connection.
#[derive(Clone, Debug)]
pub struct Connection {
    pub(crate) inner: Arc<ConnShared>,
}

impl Connection {
    /// The remote host, as in the host list.
    pub fn remote(&self) -> &str {
        &self.inner.remote
    }

    /// The local host.
    pub fn local(&self) -> &str {
        &self.inner.local
    }

    /// Whether this side dials the remote (otherwise the remote dials here).
    pub fn dials(&self) -> bool {
        self.inner.dials
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// Why the connection is down, or why it last went down: the latest failed dial
    /// attempt, handshake refused by either side, or end of an established connection.
    /// `None` if none of these happened yet. Kept after the connection comes back up, with
    /// the time it happened.
    pub fn last_error(&self) -> Option<ConnFailure> {
        lock(&self.inner.failure).clone()
    }

    /// Pings the remote now and returns the round-trip time once its pong arrives (a Go
    /// peer answers like any connection ping). Fails with [`Error::Disconnected`] if the
    /// connection is down or is lost first (a peer that never answers is dropped after two
    /// ping intervals); bound it with a timeout for a shorter wait.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let Some(session) = self.inner.session() else {
            return Err(Error::Disconnected);
        };
        session.ping().await
    }

    /// A watch of the connection's state: `borrow()` reads it, `changed().await` waits for
    /// the next change.
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.inner.state.subscribe()
    }

    /// Waits until the connection is up. Fails with [`Error::Shutdown`] if the manager shuts
    /// down first. Bound it with a timeout.
    pub async fn wait_for_connect(&self) -> Result<(), Error> {
        let mut rx = self.inner.state.subscribe();
        let state = rx
            .wait_for(|s| matches!(s, State::Connected | State::Shutdown))
            .await
            .map_err(|_| Error::Shutdown)?;
        if *state == State::Shutdown {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    /// A snapshot of the connection's statistics.
    pub fn stats(&self) -> ConnStats {
        let c = &self.inner.counters;
        let session = self.inner.session();
        let core = session.as_ref().map(|s| s.core_stats());
        let micros =
            |d: Option<Duration>| d.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        ConnStats {
            connected: self.state() == State::Connected,
            incoming_muxes: core.as_ref().map_or(0, |s| s.incoming_muxes),
            outgoing_muxes: core.as_ref().map_or(0, |s| s.outgoing_muxes),
            incoming_bytes: c.incoming_bytes.load(Ordering::Relaxed),
            outgoing_bytes: c.outgoing_bytes.load(Ordering::Relaxed),
            incoming_messages: c.incoming_messages.load(Ordering::Relaxed),
            outgoing_messages: c.outgoing_messages.load(Ordering::Relaxed),
            out_queue: core.as_ref().map_or(0, |s| s.queued_messages),
            out_queue_bytes: core.as_ref().map_or(0, |s| s.queued_bytes),
            last_pong_unix_nanos: core.as_ref().map_or(0, |s| s.last_pong_unix_nanos),
            last_connect_unix_nanos: c.last_connect.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            last_ping_rtt_micros: micros(core.as_ref().and_then(|s| s.last_rtt)),
            max_ping_rtt_micros: micros(core.as_ref().and_then(|s| s.max_rtt)),
            last_rtt: core.as_ref().and_then(|s| s.last_rtt),
            max_rtt: core.as_ref().and_then(|s| s.max_rtt),
        }
    }

    /// Makes a single request with the default deadline (60 s unless configured).
    ///
    /// Returns the handler's response, [`Error::Remote`] with the handler's error text, or a
    /// local error. Dropping the returned future cancels the call at once and frees its state:
    /// an rgrid handler is told to stop (its context is cancelled and its future dropped),
    /// and a response that arrives later is dropped.
    pub async fn request(
        &self,
        handler: HandlerId,
        payload: impl Into<Bytes>,
    ) -> Result<Bytes, Error> {
        self.call(handler, payload.into(), &CallOptions::new())
            .await
    }

    /// Makes a single request with [`CallOptions`]: a subroute, a deadline (the remaining
    /// time travels to the remote, which drops a response it finishes too late), a priority.
    ///
    /// ```no_run
    /// # async fn f(conn: rgrid::Connection) -> Result<(), rgrid::Error> {
    /// use std::time::Duration;
    /// use rgrid::{CallOptions, HandlerId, Route};
    ///
    /// static DISK: std::sync::LazyLock<Route> = std::sync::LazyLock::new(|| Route::new("disk1"));
    /// let opts = CallOptions::new().subroute(&*DISK).deadline(Duration::from_secs(2));
    /// let info = conn.request_with(HandlerId::DISK_INFO, "", &opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn request_with(
        &self,
        handler: HandlerId,
        payload: impl Into<Bytes>,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        self.call(handler, payload.into(), options).await
    }

    async fn call(
        &self,
        handler: HandlerId,
        payload: Bytes,
        opts: &CallOptions,
    ) -> Result<Bytes, Error> {
        let subroute = opts.subroute.as_ref().map(|r| (r.id(handler), r.as_str()));
        let deadline = opts
            .deadline
            .unwrap_or(self.inner.ctx.options.default_deadline);
        let priority = opts.priority.unwrap_or(Priority::Latency);
        if !handler.is_valid() {
            return Err(Error::UnknownHandler(handler));
        }
        let limit = self.inner.ctx.options.max_message_size;
        if payload.len() > limit {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                limit,
            });
        }
        if deadline.as_millis() == 0 {
            return Err(Error::DeadlineExceeded);
        }
        let Some(session) = self.inner.session() else {
            return Err(self.inner.down_error());
        };
        let at = tokio::time::Instant::now() + deadline;
        let sub = subroute.map(|(id, _)| id);
        // One span per call (debug level: free when disabled); the mux is recorded once
        // the request is queued, and one event tells how the call ended.
        let span = tracing::debug_span!("grid.call", remote = %self.inner.remote,
            handler = %handler, route = subroute.map(|(_, r)| r), mux = tracing::field::Empty);
        let label = crate::metrics::label(subroute.map(|(_, r)| r), handler);
        let mut metrics = crate::metrics::Call::start(crate::metrics::Side::Call, label);
        let call = session.roundtrip(handler, sub, payload, deadline, priority, &metrics);
        // The clock is read for the debug event only when it is on.
        let started = (!span.is_disabled()).then(tokio::time::Instant::now);
        let res = match tokio::time::timeout_at(at, call)
            .instrument(span.clone())
            .await
        {
            Ok(Err(e)) => Err(match subroute {
                Some((_, route)) => name_route(e, handler, route),
                None => e,
            }),
            Ok(res) => res,
            Err(_) => Err(Error::DeadlineExceeded),
        };
        let took = started.map(|t| t.elapsed()).unwrap_or_default();
        span.in_scope(|| match &res {
            Ok(body) => tracing::debug!(bytes = body.len(), took = ?took, "call answered"),
            Err(e) => tracing::debug!(error = %e, took = ?took, "call failed"),
        });
        if let Ok(body) = &res {
            metrics.received(body.len());
        }
        metrics.finish(crate::metrics::Outcome::of(res.as_ref().map(|_| ())));
        res
    }

    /// Opens a stream to the handler `handler`, with no deadline. Returns at once, before
    /// the handler acknowledges; a refusal arrives as the stream's error.
    ///
    /// Like MinIO, the stream's windows come from this node's own registration of the
    /// handler (same id, same capacities as on the remote node); without one, pass them with
    /// [`Connection::open_stream_with`] and [`CallOptions::capacities`] (typed statics do
    /// that for you). Fails with [`Error::Config`] when neither gives them, and with
    /// [`Error::Disconnected`] if the connection is down.
    pub async fn open_stream(
        &self,
        handler: HandlerId,
        payload: impl Into<Bytes>,
    ) -> Result<CallStream, Error> {
        stream::open(&self.inner, handler, payload.into(), &CallOptions::new()).await
    }

    /// Opens a stream with [`CallOptions`]: a subroute, its windows, a deadline (which
    /// travels to the handler, whose context is cancelled when it passes; the caller sees
    /// [`Error::DeadlineExceeded`]), and the priority of this call's messages (its input; the
    /// handler's output uses the handler's registration).
    pub async fn open_stream_with(
        &self,
        handler: HandlerId,
        payload: impl Into<Bytes>,
        options: &CallOptions,
    ) -> Result<CallStream, Error> {
        stream::open(&self.inner, handler, payload.into(), options).await
    }

    /// The manager's [`crate::Options::max_depth`] (typed answers decode with it).
    pub(crate) fn max_depth(&self) -> usize {
        self.inner.ctx.options.max_depth
    }

    /// [`Connection::open_stream_with`] for any codec (typed statics use [`Msgpack`]).
    ///
    /// [`Msgpack`]: crate::codec::Msgpack
    pub(crate) async fn open_stream_codec<C: crate::codec::Codec>(
        &self,
        handler: HandlerId,
        payload: Bytes,
        options: &CallOptions,
    ) -> Result<CallStream<C>, Error> {
        stream::open(&self.inner, handler, payload, options).await
    }

    /// Test hook: drops the live websocket as if the network failed (MinIO's
    /// `debugKillInbound`). In-flight calls fail with [`Error::Disconnected`]; the dialing side
    /// reconnects by itself.
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn kill(&self) {
        if let Some(s) = self.inner.session() {
            s.close(Error::Disconnected);
        }
    }

    /// Test hook: stops the writer (nothing more is sent, queued messages stay queued) until
    /// the returned guard is dropped: a peer that stopped reading, made exact. The writer is
    /// woken with a connection ping (which may or may not go out) so that it stops at once;
    /// [`OutboundBlock::parked`] tells when it has.
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn block_outbound(&self) -> OutboundBlock {
        self.inner
            .faults
            .outbound_blocked
            .store(true, Ordering::SeqCst);
        if let Some(s) = self.inner.session() {
            s.nudge_writer();
        }
        OutboundBlock {
            conn: self.inner.clone(),
        }
    }

    /// Test hook: stops processing inbound messages until the returned guard is dropped
    /// (MinIO's `debugBlockInboundMessages`). Pongs and responses from the remote stay unread.
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn block_inbound(&self) -> InboundBlock {
        self.inner
            .faults
            .inbound_blocked
            .store(true, Ordering::SeqCst);
        InboundBlock {
            conn: self.inner.clone(),
        }
    }
}

/// Releases an outbound block when dropped.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[derive(Debug)]
pub struct OutboundBlock {
    conn: Arc<ConnShared>,
}

#[cfg(feature = "test-util")]
impl OutboundBlock {
    /// Resolves once the writer has stopped (from then on nothing more is sent). Bound it
    /// with a timeout: a connection that is down has no writer.
    pub async fn parked(&self) {
        let f = &self.conn.faults;
        loop {
            let changed = f.outbound_parked_changed.notified();
            if f.outbound_parked.load(Ordering::SeqCst) {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(feature = "test-util")]
impl Drop for OutboundBlock {
    fn drop(&mut self) {
        self.conn
            .faults
            .outbound_blocked
            .store(false, Ordering::SeqCst);
        self.conn.faults.outbound_released.notify_waiters();
    }
}

/// Releases an inbound block when dropped.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[derive(Debug)]
pub struct InboundBlock {
    conn: Arc<ConnShared>,
}

#[cfg(feature = "test-util")]
impl Drop for InboundBlock {
    fn drop(&mut self) {
        self.conn
            .faults
            .inbound_blocked
            .store(false, Ordering::SeqCst);
        self.conn.faults.inbound_released.notify_waiters();
    }
}

/// Options of one call: its subroute, deadline, priority and (streams) windows. `Default`
/// leaves each to the connection's defaults: no subroute; [`crate::Options::default_deadline`]
/// for single requests, none for streams; [`Priority::Latency`] for single requests, the
/// handler's registration for streams; the windows of this node's registration.
///
/// Build one per call or keep one around (it is cheap to clone: the subroute is shared).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// The subroute of the handler (MinIO registers per-disk handlers this way).
    pub subroute: Option<Route>,
    /// The call must complete within this; it travels to the handler.
    pub deadline: Option<Duration>,
    /// The scheduling class of this call's messages on this side's writer.
    pub priority: Option<Priority>,
    /// A stream's windows `(in_capacity, out_capacity)`, which must equal the handler's
    /// registration on the remote node. `None` takes them from this node's registration of
    /// the same handler (MinIO's way); typed statics pass their own, so a caller need not
    /// register the handler.
    pub capacities: Option<(usize, usize)>,
    /// Typed statics: this node's registration wins over `capacities` (the static cannot
    /// know that its handler was registered without input).
    pub(crate) registration_first: bool,
}

impl CallOptions {
    /// Defaults for everything.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// Sets the subroute: a [`Route`] made once (hashing a route is a SHA-256), or a `&str`
    /// hashed here.
    pub fn subroute(mut self, route: impl Into<Route>) -> Self {
        self.subroute = Some(route.into());
        self
    }

    /// Sets a stream's windows (see [`CallOptions::capacities`]).
    pub fn capacities(mut self, in_capacity: usize, out_capacity: usize) -> Self {
        self.capacities = Some((in_capacity, out_capacity));
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the priority (e.g. [`Priority::Bulk`] for a large transfer, so small calls on the
    /// same connection do not wait behind it).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }
}

/// A subroute: a static route string under which handlers register (MinIO's per-disk
/// handlers, rgrid's `service/method` names), hashed once. On the wire a call carries the
/// route's SHA-256 with the handler id in its first byte. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    text: Arc<str>,
    hash: RouteHash,
}

impl Route {
    /// The route `route` (matched exactly: no normalisation).
    pub fn new(route: &str) -> Self {
        Route {
            text: Arc::from(route),
            hash: RouteHash::new(route),
        }
    }

    /// A route whose string and hash were made before (named services cache them).
    pub(crate) fn from_parts(text: Arc<str>, hash: RouteHash) -> Self {
        Route { text, hash }
    }

    /// A deeper route: the routes joined with `/` (MinIO's `Subroute("a").Subroute("b")`).
    pub fn join(&self, route: &str) -> Route {
        Route::new(&rgrid_proto::join_route(&[&self.text, route]))
    }

    /// The route string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The subroute id a call to `handler` on this route carries.
    pub fn id(&self, handler: HandlerId) -> SubrouteId {
        SubrouteId::from_route_hash(self.hash, handler)
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route({:?})", &*self.text)
    }
}

impl From<&str> for Route {
    fn from(route: &str) -> Self {
        Route::new(route)
    }
}

impl From<&Route> for Route {
    fn from(route: &Route) -> Self {
        route.clone()
    }
}

/// Adds the route the caller asked for to a refusal for an unknown handler, which names the
/// subroute only by its 32-byte id (as MinIO's text does).
pub(crate) fn name_route(e: Error, handler: HandlerId, route: &str) -> Error {
    match e {
        // A named method (an rgrid peer): the name says it all, without MinIO's 32 id bytes.
        Error::Remote(r)
            if r.text().starts_with("Invalid Handler") && handler == HandlerId::SERVICE =>
        {
            Error::Remote(crate::error::RemoteError::new(format_args!(
                "the remote has no method {route:?}: not registered there"
            )))
        }
        Error::Remote(r) if r.text().starts_with("Invalid Handler") => {
            Error::Remote(crate::error::RemoteError::new(format_args!(
                "{} (the remote has no handler {handler} for route {route:?})",
                r.text()
            )))
        }
        other => other,
    }
}
