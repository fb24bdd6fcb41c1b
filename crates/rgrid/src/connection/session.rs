//! One live websocket: its reader task, its writer task, and the calls in flight on it.
//!
//! The writer task owns the sending half of the socket and the reader task the receiving half;
//! everyone else talks to them through two bounded queues (control messages first, then data)
//! and the pending-call table. When either task stops, the session closes: every call in
//! flight fails, both tasks exit and the socket is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rgrid_proto::{
    DecodeLimits, Flags, Frame, GridTime, Message, MuxConnectError, Op, PingMsg, PongMsg,
    put_merged_header,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::serve_stream::{self, ServerMux};
use super::stream::ClientMux;
use super::{ByteBudget, ConnShared, Lane, Outgoing, Queued, lock, unix_nanos};
use crate::error::{Error, RemoteError};
use crate::handlers::{HandlerCtx, panic_text};
use crate::manager::ManagerCtx;
use crate::options::{MAX_MERGE_BYTES, MAX_MERGE_MESSAGES};
use crate::transport::WebSocket;

type Reply = oneshot::Sender<Result<Bytes, Error>>;
type WsSink = SplitSink<WebSocket, tokio_websockets::Message>;
type WsStream = SplitStream<WebSocket>;

struct Pending {
    /// Set once the session closed; new calls fail with `reason`.
    closed: bool,
    reason: Error,
    calls: HashMap<u64, Reply>,
    /// Streams opened from this side.
    clients: HashMap<u64, Arc<ClientMux>>,
    /// Streams served on this side.
    servers: HashMap<u64, Arc<ServerMux>>,
}

/// A live websocket session.
pub(crate) struct Session {
    data_tx: mpsc::Sender<Outgoing>,
    ctl_tx: mpsc::Sender<Outgoing>,
    pending: Mutex<Pending>,
    pub(crate) cancel: CancellationToken,
    /// Payload bytes queued for the writer ([`crate::Options::out_queue_bytes`]).
    budget: ByteBudget,
    /// Answers waiting in tasks for room in a full data lane.
    overflow: AtomicUsize,
    /// Pings received this ping interval that belong to no served stream.
    pings: AtomicU32,
}

/// A slot in the data lane plus the bytes charged for it; both are given back if it is
/// dropped unused.
pub(crate) struct Reservation<'a> {
    permit: Option<mpsc::Permit<'a, Outgoing>>,
    session: &'a Session,
    charged: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.charged > 0 {
            self.session.release_bytes(self.charged);
        }
    }
}

/// The reader and writer futures of a new session, spawned once the session is installed.
pub(crate) struct Tasks {
    reader: Pin<Box<dyn Future<Output = ()> + Send>>,
    writer: Pin<Box<dyn Future<Output = ()> + Send>>,
    keepalive: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Tasks {
    pub(crate) fn spawn(self, ctx: &ManagerCtx) {
        ctx.tracker.spawn(self.writer);
        ctx.tracker.spawn(self.reader);
        ctx.tracker.spawn(self.keepalive);
    }
}

impl Session {
    /// Builds a session over `ws`. The returned tasks must be spawned to run it.
    pub(crate) fn start(conn: Arc<ConnShared>, ws: WebSocket) -> (Arc<Session>, Tasks) {
        let opts = &conn.ctx.options;
        let (data_tx, data_rx) = mpsc::channel(opts.out_queue.max(1));
        let (ctl_tx, ctl_rx) = mpsc::channel(opts.control_queue.max(1));
        let session = Arc::new(Session {
            data_tx,
            ctl_tx,
            pending: Mutex::new(Pending {
                closed: false,
                reason: Error::Disconnected,
                calls: HashMap::new(),
                clients: HashMap::new(),
                servers: HashMap::new(),
            }),
            cancel: conn.ctx.shutdown.child_token(),
            budget: ByteBudget::new(opts.out_queue_bytes),
            overflow: AtomicUsize::new(0),
            pings: AtomicU32::new(0),
        });
        let (sink, stream) = ws.split();
        let tasks = Tasks {
            keepalive: Box::pin(run_keepalive(conn.clone(), session.clone())),
            reader: Box::pin(run_reader(conn.clone(), session.clone(), stream)),
            writer: Box::pin(run_writer(conn, session.clone(), sink, data_rx, ctl_rx)),
        };
        (session, tasks)
    }

    /// Resolves when the session has closed.
    pub(crate) async fn closed(&self) {
        self.cancel.cancelled().await;
    }

    /// Closes the session: in-flight calls fail with `reason`, the tasks stop, the socket is
    /// dropped. Idempotent; the first reason wins.
    pub(crate) fn close(&self, reason: Error) {
        let calls = {
            let mut p = lock(&self.pending);
            if p.closed {
                return;
            }
            p.closed = true;
            p.reason = reason.clone();
            p.servers.clear();
            (std::mem::take(&mut p.calls), std::mem::take(&mut p.clients))
        };
        let (calls, clients) = calls;
        self.cancel.cancel();
        for (_, reply) in calls {
            let _ = reply.send(Err(reason.clone()));
        }
        for (_, mux) in clients {
            mux.fail_with(reason.clone(), false);
        }
    }

    /// Calls and streams opened from this side that have not ended.
    pub(crate) fn pending_len(&self) -> usize {
        let p = lock(&self.pending);
        p.calls.len() + p.clients.len()
    }

    pub(crate) fn add_client(&self, mux: Arc<ClientMux>) -> Result<(), Error> {
        let mut p = lock(&self.pending);
        if p.closed {
            return Err(p.reason.clone());
        }
        p.clients.insert(mux.id, mux);
        Ok(())
    }

    pub(crate) fn remove_client(&self, id: u64) {
        lock(&self.pending).clients.remove(&id);
    }

    /// Registers a served stream; false if the id is taken or the session closed.
    pub(crate) fn add_server(&self, mux: Arc<ServerMux>) -> bool {
        let mut p = lock(&self.pending);
        if p.closed || p.servers.contains_key(&mux.id) {
            return false;
        }
        p.servers.insert(mux.id, mux);
        true
    }

    pub(crate) fn remove_server(&self, id: u64) {
        lock(&self.pending).servers.remove(&id);
    }

    fn client(&self, id: u64) -> Option<Arc<ClientMux>> {
        lock(&self.pending).clients.get(&id).cloned()
    }

    fn server(&self, id: u64) -> Option<Arc<ServerMux>> {
        lock(&self.pending).servers.get(&id).cloned()
    }

    /// Waits until the outbound byte budget has room, then charges `bytes` to it.
    async fn charge(&self, bytes: usize) -> Result<(), Error> {
        // Fast path without a cancellation waiter (registering one takes the token's lock).
        if self.budget.try_charge(bytes) {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(self.close_reason()),
            () = self.budget.charge(bytes) => Ok(()),
        }
    }

    /// Gives `bytes` back to the outbound byte budget.
    fn release_bytes(&self, bytes: usize) {
        self.budget.release(bytes);
    }

    /// Payload bytes queued for the writer.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.budget.queued()
    }

    /// Waits for room for a message of `bytes` payload bytes in the data queue: first in
    /// the byte budget, then a slot.
    pub(crate) async fn reserve(&self, bytes: usize) -> Result<Reservation<'_>, Error> {
        self.charge(bytes).await?;
        let mut res = Reservation {
            permit: None,
            session: self,
            charged: bytes,
        };
        match self.data_tx.reserve().await {
            Ok(p) => {
                res.permit = Some(p);
                Ok(res)
            }
            Err(_) => Err(self.close_reason()),
        }
    }

    /// Queues a stream's data message into a reserved slot. Call under the stream's lock,
    /// which assigned its sequence number.
    pub(crate) fn send_reserved(
        &self,
        mut res: Reservation<'_>,
        queued: &Arc<Queued>,
        mut msg: Outgoing,
    ) {
        queued.enter(&mut msg);
        msg.charged = std::mem::take(&mut res.charged);
        if let Some(permit) = res.permit.take() {
            permit.send(msg);
        }
    }

    /// Queues a stream's control message without waiting, keeping the stream's order (see
    /// [`Queued`]): in the control lane, ahead of other calls' data, when none of this
    /// stream's messages waits in the data lane; otherwise behind them. Call under the
    /// stream's lock, which assigned its sequence number. If both lanes are full the
    /// connection is hopelessly behind and is closed.
    pub(crate) fn send_ordered(&self, queued: &Arc<Queued>, mut msg: Outgoing) {
        if queued.lane_for_control() == Lane::Control {
            match self.ctl_tx.try_send(msg) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                // The writer moves the control lane ahead of any data it takes, so a full
                // control lane may overflow into the data lane without breaking order.
                Err(mpsc::error::TrySendError::Full(m)) => msg = m,
            }
        }
        queued.enter(&mut msg);
        match self.data_tx.try_send(msg) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                queued.leave();
                tracing::warn!("grid: outbound queues full, closing connection");
                self.close(Error::Disconnected);
            }
        }
    }

    /// Queues a control message (not part of any stream's sequence) without waiting.
    pub(crate) fn send_control(&self, msg: Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.ctl_tx.try_send(msg) {
            tracing::warn!("grid: control queue full, closing connection");
            self.close(Error::Disconnected);
        }
    }

    /// Test hook: queues a connection ping so a writer parked on empty lanes runs one more
    /// round (and so notices a block of its output).
    #[cfg(feature = "test-util")]
    pub(crate) fn nudge_writer(&self, interval: Duration) {
        self.send_control(connection_ping(interval));
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.data_tx.max_capacity() - self.data_tx.capacity()
    }

    /// Sends a request and waits for its response. The pending entry is removed however the
    /// future ends, including when it is dropped.
    pub(crate) async fn roundtrip(&self, mux_id: u64, msg: Outgoing) -> Result<Bytes, Error> {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.pending);
            if p.closed {
                return Err(p.reason.clone());
            }
            p.calls.insert(mux_id, tx);
        }
        let _guard = PendingGuard {
            session: self,
            mux_id,
        };
        let res = self
            .reserve(msg.payload.as_ref().map_or(0, Bytes::len))
            .await?;
        self.send_unordered(res, msg);
        match rx.await {
            Ok(res) => res,
            Err(_) => Err(self.close_reason()),
        }
    }

    fn close_reason(&self) -> Error {
        let p = lock(&self.pending);
        if p.closed {
            p.reason.clone()
        } else {
            Error::Disconnected
        }
    }

    /// Queues a message that belongs to no stream into a reserved slot.
    fn send_unordered(&self, mut res: Reservation<'_>, mut msg: Outgoing) {
        msg.charged = std::mem::take(&mut res.charged);
        if let Some(permit) = res.permit.take() {
            permit.send(msg);
        }
    }

    fn take_pending(&self, mux_id: u64) -> Option<Reply> {
        lock(&self.pending).calls.remove(&mux_id)
    }

    /// Queues an answer without blocking the caller (the reader task): if the data lane is
    /// full, a task waits for room. At most `max_pending_replies` answers wait that way;
    /// past that the peer sends requests faster than it reads answers, and the connection
    /// is closed.
    fn send_detached(self: &Arc<Self>, ctx: &ManagerCtx, msg: Outgoing) {
        match self.data_tx.try_send(msg) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let max = ctx.options.max_pending_replies;
                if self.overflow.fetch_add(1, Ordering::AcqRel) >= max {
                    self.overflow.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(
                        limit = max,
                        "grid: peer does not read its answers (pending replies over the limit), closing connection"
                    );
                    self.close(Error::Disconnected);
                    return;
                }
                let session = self.clone();
                ctx.tracker.spawn(async move {
                    let tx = session.data_tx.clone();
                    tokio::select! {
                        _ = tx.send(msg) => {}
                        _ = session.cancel.cancelled() => {}
                    }
                    session.overflow.fetch_sub(1, Ordering::AcqRel);
                });
            }
        }
    }

    /// Counts a ping that belongs to no served stream; false once the peer sent more than
    /// `max` this ping interval.
    fn count_ping(&self, max: u32) -> bool {
        self.pings.fetch_add(1, Ordering::Relaxed) < max
    }
}

struct PendingGuard<'a> {
    session: &'a Session,
    mux_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.session.take_pending(self.mux_id);
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

async fn run_writer(
    conn: Arc<ConnShared>,
    session: Arc<Session>,
    mut sink: WsSink,
    mut data_rx: mpsc::Receiver<Outgoing>,
    mut ctl_rx: mpsc::Receiver<Outgoing>,
) {
    let opts = &conn.ctx.options;
    let ping_every = opts.ping_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Liveness is judged at the moment the last pong becomes too old, not on the next ping
    // tick: checking only on ticks let a peer that fell silent just after a pong live for up
    // to three intervals. The timer is re-armed only when it fires (about once per interval).
    let dead_after = 2 * ping_every;
    let pong_deadline = |conn: &ConnShared| {
        let last = conn.counters.last_pong_mono.load(Ordering::Relaxed);
        conn.epoch + Duration::from_nanos(last) + dead_after
    };
    let liveness = tokio::time::sleep_until(pong_deadline(&conn));
    tokio::pin!(liveness);
    let mut frame = BytesMut::with_capacity(32 * 1024);
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_MERGE_MESSAGES + 1);
    let mut last_batch = 1;
    // One cancellation waiter for the task's life: registering a new one per select would
    // take the token's lock for every frame.
    let cancelled = session.cancel.clone().cancelled_owned();
    tokio::pin!(cancelled);

    let reason = loop {
        // Test hook; one relaxed load when off (the flag is set before the writer is woken
        // through a channel, which orders it).
        let f = &conn.faults;
        if f.outbound_blocked.load(Ordering::Relaxed) {
            f.outbound_parked.store(true, Ordering::SeqCst);
            f.outbound_parked_changed.notify_waiters();
            let go_on = wait_unblocked(&f.outbound_blocked, &f.outbound_released, &session).await;
            f.outbound_parked.store(false, Ordering::SeqCst);
            if !go_on {
                break None;
            }
        }
        tokio::select! {
            biased;
            () = &mut cancelled => break None,
            Some(m) = ctl_rx.recv() => batch.push(m),
            Some(m) = data_rx.recv() => place_data(&session, m, &mut ctl_rx, &mut batch),
            () = &mut liveness => {
                let last = conn.counters.last_pong_mono.load(Ordering::Relaxed);
                let silent = Duration::from_nanos(conn.mono_nanos().saturating_sub(last));
                if silent >= dead_after {
                    tracing::warn!(local = %conn.local, remote = %conn.remote, ?silent,
                        "grid: last pong too old, dropping connection");
                    break Some(Error::Disconnected);
                }
                liveness.as_mut().reset(pong_deadline(&conn));
                continue;
            }
            _ = ticker.tick() => {
                // A new interval: the peer's ping allowance starts again.
                session.pings.store(0, Ordering::Relaxed);
                batch.push(connection_ping(ping_every));
            }
        }
        // Under load, give other tasks one chance to queue more so small messages merge
        // (MinIO yields once the same way). When the last frame carried a single message
        // there is no load to merge, and yielding would only add a wake-up to the round trip.
        if last_batch > 1 && ctl_rx.is_empty() && data_rx.is_empty() {
            tokio::task::yield_now().await;
        }
        let mut bytes = batch
            .iter()
            .map(|m| m.as_message().encoded_len())
            .sum::<usize>();
        while batch.len() <= MAX_MERGE_MESSAGES && bytes < MAX_MERGE_BYTES {
            let start = batch.len();
            match ctl_rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => match data_rx.try_recv() {
                    Ok(m) => place_data(&session, m, &mut ctl_rx, &mut batch),
                    Err(_) => break,
                },
            }
            bytes += batch[start..]
                .iter()
                .map(|m| m.as_message().encoded_len())
                .sum::<usize>();
        }

        if let Err(e) = encode_batch(&batch, &mut frame) {
            // Only a payload of 4 GiB or more gets here; senders check sizes first.
            tracing::error!(error = %e, "grid: cannot encode outgoing message");
            batch.clear();
            frame.clear();
            continue;
        }
        let count = batch.len() as u64;
        last_batch = batch.len();
        batch.clear();
        let len = frame.len() as u64;
        let out = tokio_websockets::Message::binary(frame.split().freeze());
        // A closed session does not wait for a stuck write: the socket goes at once.
        let sent = tokio::select! {
            biased;
            () = &mut cancelled => break None,
            res = tokio::time::timeout(opts.write_timeout, sink.send(out)) => res,
        };
        match sent {
            Ok(Ok(())) => {
                conn.counters
                    .outgoing_bytes
                    .fetch_add(len, Ordering::Relaxed);
                conn.counters
                    .outgoing_messages
                    .fetch_add(count, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                tracing::debug!(remote = %conn.remote, error = %e, "grid write failed");
                break Some(Error::Disconnected);
            }
            Err(_) => {
                tracing::warn!(remote = %conn.remote, "grid write timed out, dropping connection");
                break Some(Error::Disconnected);
            }
        }
    };
    if let Some(reason) = reason {
        session.close(reason);
    }
    conn.session_ended(&session);
}

/// Places a message taken off the data lane: first everything already in the control lane,
/// then the message, which only then counts as placed (the ordering rule of [`Queued`]).
fn place_data(
    session: &Session,
    m: Outgoing,
    ctl_rx: &mut mpsc::Receiver<Outgoing>,
    batch: &mut Vec<Outgoing>,
) {
    while let Ok(c) = ctl_rx.try_recv() {
        batch.push(c);
    }
    m.taken();
    if m.charged > 0 {
        session.release_bytes(m.charged);
    }
    batch.push(m);
}

/// Encodes a batch as one frame: a single message, or a merged container.
fn encode_batch(batch: &[Outgoing], frame: &mut BytesMut) -> Result<(), rgrid_proto::EncodeError> {
    frame.clear();
    if let [only] = batch {
        return only.as_message().encode(frame);
    }
    put_merged_header(frame, batch.len() as u32);
    for m in batch {
        m.as_message().encode_merged_entry(frame)?;
    }
    Ok(())
}

/// A connection-level ping: mux 0, flags 0, DeadlineMS = the ping interval, payload `{t}`.
fn connection_ping(interval: Duration) -> Outgoing {
    let mut payload = BytesMut::with_capacity(24);
    PingMsg {
        t: GridTime::from_system_time(std::time::SystemTime::now()),
    }
    .encode(&mut payload);
    Outgoing {
        deadline_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        payload: Some(payload.freeze()),
        ..Outgoing::new(Op::PING, Flags::NONE)
    }
}

// ---------------------------------------------------------------------------------------------
// Reader

async fn run_reader(conn: Arc<ConnShared>, session: Arc<Session>, mut stream: WsStream) {
    let opts = &conn.ctx.options;
    let limits = DecodeLimits::new(opts.max_message_size).with_frame_size(opts.frame_limit());
    let cancelled = session.cancel.clone().cancelled_owned();
    tokio::pin!(cancelled);
    let reason = loop {
        let next = tokio::select! {
            biased;
            () = &mut cancelled => break None,
            m = stream.next() => m,
        };
        let msg = match next {
            None => break Some(Error::Disconnected),
            Some(Err(e)) => {
                tracing::debug!(remote = %conn.remote, error = %e, "grid read failed");
                break Some(Error::Disconnected);
            }
            Some(Ok(m)) => m,
        };
        if msg.is_close() {
            break Some(Error::Disconnected);
        }
        if !msg.is_binary() {
            // Text frames are ignored like MinIO does; ping/pong are answered by the
            // websocket layer.
            continue;
        }
        if !wait_inbound_unblocked(&conn, &session).await {
            break None;
        }
        let data = Bytes::from(msg.into_payload());
        conn.counters
            .incoming_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Err(e) = handle_frame(&conn, &session, &data, &limits) {
            tracing::warn!(local = %conn.local, remote = %conn.remote, error = %e,
                "grid: closing connection after a protocol error");
            break Some(Error::Disconnected);
        }
    };
    if let Some(reason) = reason {
        session.close(reason);
    }
    conn.session_ended(&session);
}

/// Test hook: waits while inbound processing is blocked. Returns false if the session closed.
async fn wait_inbound_unblocked(conn: &ConnShared, session: &Session) -> bool {
    let f = &conn.faults;
    wait_unblocked(&f.inbound_blocked, &f.inbound_released, session).await
}

/// Test hooks: waits while `blocked` is set. Returns false if the session closed.
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

fn handle_frame(
    conn: &Arc<ConnShared>,
    session: &Arc<Session>,
    data: &Bytes,
    limits: &DecodeLimits,
) -> Result<(), Error> {
    match Frame::decode(data, limits)? {
        Frame::Message(m) => {
            conn.counters
                .incoming_messages
                .fetch_add(1, Ordering::Relaxed);
            dispatch(conn, session, &m, data);
        }
        Frame::Merged(merged) => {
            conn.counters
                .incoming_messages
                .fetch_add(u64::from(merged.len()), Ordering::Relaxed);
            for m in merged {
                dispatch(conn, session, &m?, data);
                if session.cancel.is_cancelled() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Handles one message. Never blocks: anything that may wait runs in its own task.
fn dispatch(conn: &Arc<ConnShared>, session: &Arc<Session>, m: &Message<'_>, frame: &Bytes) {
    let payload = m.payload.map(|p| frame.slice_ref(p));
    match m.op {
        Op::REQUEST => handle_request(conn, session, m, payload),
        Op::RESPONSE => {
            if let Some(reply) = session.take_pending(m.mux_id.0) {
                let res = if m.seq != 0 {
                    Err(Error::IncorrectSequence {
                        want: 0,
                        got: m.seq,
                    })
                } else if m.flags.contains(Flags::PAYLOAD_IS_ERR) {
                    Err(Error::Remote(remote_text(payload.as_deref())))
                } else {
                    Ok(payload.unwrap_or_default())
                };
                let _ = reply.send(res);
            }
            // Unknown mux: a late response to a call that already gave up. Dropped.
        }
        Op::ACK_MUX | Op::MUX_SERVER_MSG | Op::UNBLOCK_CL_MUX | Op::DISCONNECT_CLIENT_MUX => {
            match session.client(m.mux_id.0) {
                Some(mux) => mux.on_message(m, payload),
                None if matches!(m.op, Op::ACK_MUX | Op::MUX_SERVER_MSG)
                    && !m.flags.contains(Flags::EOF) =>
                {
                    // A stream this side no longer has: tell the handler side to stop. (Go
                    // answers with OpDisconnectClientMux, which targets the wrong table.)
                    let msg = Outgoing {
                        mux_id: m.mux_id.0,
                        handler: m.handler,
                        ..Outgoing::new(Op::DISCONNECT_SERVER_MUX, conn.base_flags)
                    };
                    session.send_control(msg);
                }
                None => {}
            }
        }
        Op::MUX_CLIENT_MSG | Op::UNBLOCK_SRV_MUX | Op::DISCONNECT_SERVER_MUX => {
            match session.server(m.mux_id.0) {
                Some(mux) => mux.on_message(m, payload),
                None if m.op == Op::MUX_CLIENT_MSG => {
                    let msg = Outgoing {
                        mux_id: m.mux_id.0,
                        handler: m.handler,
                        ..Outgoing::new(Op::DISCONNECT_CLIENT_MUX, conn.base_flags)
                    };
                    session.send_control(msg);
                }
                None => {}
            }
        }
        Op::MUX_CONNECT_ERROR => {
            if let Some(mux) = session.client(m.mux_id.0) {
                mux.on_message(m, payload);
            } else if let Some(reply) = session.take_pending(m.mux_id.0) {
                let text = match MuxConnectError::decode(payload.as_deref().unwrap_or_default()) {
                    Ok(e) => e.error.into_owned(),
                    Err(e) => format!("malformed mux connect error: {e}"),
                };
                let _ = reply.send(Err(Error::Remote(RemoteError::new(text))));
            }
        }
        Op::PING => handle_ping(conn, session, m, payload),
        Op::PONG if m.mux_id.0 != 0 => {
            if let Some(mux) = session.client(m.mux_id.0) {
                mux.on_message(m, payload);
            }
        }
        Op::PONG => {
            let now = unix_nanos();
            conn.counters.last_pong.store(now, Ordering::Relaxed);
            conn.counters
                .last_pong_mono
                .store(conn.mono_nanos(), Ordering::Relaxed);
            if let Ok(pong) = PongMsg::decode(payload.as_deref().unwrap_or_default()) {
                let sent = pong.t.unix_nanos();
                if sent > 0 {
                    let rtt = (i128::from(now) - sent).max(0) / 1000;
                    let rtt = u64::try_from(rtt).unwrap_or(u64::MAX);
                    conn.counters.last_rtt_micros.store(rtt, Ordering::Relaxed);
                    conn.counters
                        .max_rtt_micros
                        .fetch_max(rtt, Ordering::Relaxed);
                }
            }
        }
        Op::CONNECT_MUX => handle_connect_mux(conn, session, m, payload),
        other => {
            tracing::debug!(remote = %conn.remote, op = %other, mux = %m.mux_id,
                "grid: ignoring message");
        }
    }
}

fn handle_connect_mux(
    conn: &Arc<ConnShared>,
    session: &Arc<Session>,
    m: &Message<'_>,
    payload: Option<Bytes>,
) {
    if m.flags.contains(Flags::STATELESS) {
        reply_connect_error(
            conn,
            session,
            m,
            "Stateless streams not supported".to_owned(),
        );
        return;
    }
    if let Some(text) = over_mux_limit(conn) {
        reply_connect_error(conn, session, m, text);
        return;
    }
    let entry = conn.ctx.registry().stream(m.handler, m.subroute.as_ref());
    match entry {
        Some(entry) => serve_stream::start(conn, session, m, entry, payload),
        None => reply_connect_error(conn, session, m, unknown_handler_text(m)),
    }
}

// ---------------------------------------------------------------------------------------------
// Stream keepalive

/// Pings the streams opened from this side and cancels served streams whose caller stopped
/// pinging (spec §3.12): every `stream_ping_interval`, a caller-side stream silent for two
/// intervals fails with `Disconnected`; a served stream not pinged for four is cancelled.
async fn run_keepalive(conn: Arc<ConnShared>, session: Arc<Session>) {
    let every = conn.ctx.options.stream_ping_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = session.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (clients, servers): (Vec<_>, Vec<_>) = {
            let p = lock(&session.pending);
            (
                p.clients.values().filter(|m| m.pinged).cloned().collect(),
                p.servers.values().filter(|m| m.watched).cloned().collect(),
            )
        };
        for mux in clients {
            mux.keepalive(every * 2);
        }
        for mux in servers {
            mux.watchdog(every * 4);
        }
    }
}

fn remote_text(payload: Option<&[u8]>) -> RemoteError {
    RemoteError::new(String::from_utf8_lossy(payload.unwrap_or_default()).into_owned())
}

fn unknown_handler_text(m: &Message<'_>) -> String {
    match (&m.subroute, m.handler.name()) {
        (Some(sub), _) => format!("Invalid Handler for type: {sub}"),
        (None, Some(name)) => format!("Invalid Handler for type: {name}"),
        (None, None) => "Invalid Handler".to_owned(),
    }
}

/// The refusal text when this peer already has `max_incoming_muxes` requests and streams
/// being served here.
fn over_mux_limit(conn: &ConnShared) -> Option<String> {
    let max = conn.ctx.options.max_incoming_muxes;
    (conn.counters.incoming_muxes.load(Ordering::Relaxed) >= max).then(|| {
        tracing::debug!(remote = %conn.remote, limit = max, "grid: incoming mux refused");
        format!("grid: too many requests and streams in progress (limit {max})")
    })
}

fn reply_connect_error(conn: &ConnShared, session: &Arc<Session>, m: &Message<'_>, text: String) {
    let mut payload = BytesMut::new();
    let err = MuxConnectError { error: text.into() };
    if err.encode(&mut payload).is_ok() {
        let reply = Outgoing::reply_to(
            m,
            Op::MUX_CONNECT_ERROR,
            conn.base_flags,
            Some(payload.freeze()),
        );
        session.send_detached(&conn.ctx, reply);
    }
}

fn handle_ping(conn: &ConnShared, session: &Session, m: &Message<'_>, payload: Option<Bytes>) {
    if m.mux_id.0 != 0
        && let Some(mux) = session.server(m.mux_id.0)
    {
        mux.on_message(m, payload);
        return;
    }
    let max = conn.ctx.options.max_pings_per_interval;
    if !session.count_ping(max) {
        tracing::warn!(remote = %conn.remote, limit = max,
            "grid: ping flood (more pings than allowed per ping interval), closing connection");
        session.close(Error::Disconnected);
        return;
    }
    let ping = PingMsg::decode(payload.as_deref().unwrap_or_default()).unwrap_or_default();
    let pong = PongMsg {
        // A mux ping for a stream this side does not serve (any more).
        not_found: m.mux_id.0 != 0,
        err: None,
        t: ping.t,
    };
    let mut buf = BytesMut::with_capacity(32);
    if pong.encode(&mut buf).is_err() {
        return;
    }
    let mut reply = Outgoing::reply_to(m, Op::PONG, conn.base_flags, Some(buf.freeze()));
    if pong.not_found {
        // The stream may have just finished with its last messages still in the data lane:
        // a "not found" answer queued behind them cannot overtake them (it would fail a
        // stream that succeeded). Only a full data lane sends it the fast way.
        match session.data_tx.try_send(reply) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(r)) => reply = r,
        }
    }
    if let Err(mpsc::error::TrySendError::Full(_)) = session.ctl_tx.try_send(reply) {
        tracing::warn!(remote = %conn.remote, "grid: control queue full (ping flood?), closing");
        session.close(Error::Disconnected);
    }
}

fn handle_request(
    conn: &Arc<ConnShared>,
    session: &Arc<Session>,
    m: &Message<'_>,
    payload: Option<Bytes>,
) {
    if let Some(text) = over_mux_limit(conn) {
        reply_connect_error(conn, session, m, text);
        return;
    }
    let handler = conn.ctx.registry().single(m.handler, m.subroute.as_ref());
    let Some(handler) = handler else {
        reply_connect_error(conn, session, m, unknown_handler_text(m));
        return;
    };
    let deadline = (m.deadline_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(u64::from(m.deadline_ms)));
    let ctx = HandlerCtx::new(
        conn.remote.clone(),
        m.handler,
        m.subroute,
        deadline,
        session.cancel.clone(),
    );
    let reply = ReplyTo {
        mux_id: m.mux_id.0,
        seq: m.seq,
        base: conn.base_flags,
        max: conn.ctx.options.max_message_size,
    };
    let mut run = AssertUnwindSafe(handler(ctx, payload.unwrap_or_default())).catch_unwind();
    if conn.ctx.options.inline_handlers {
        // First poll right here: most handlers answer without waiting, and then cost no
        // task. A pending handler moves to its own task, whose first poll registers its
        // real waker (the no-op one used here is never needed).
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(res) = Pin::new(&mut run).poll(&mut cx) {
            session.send_detached(&conn.ctx, reply.response(res));
            return;
        }
    }
    let cancel = session.cancel.clone();
    let tx = session.data_tx.clone();
    let counters = conn.clone();
    counters
        .counters
        .incoming_muxes
        .fetch_add(1, Ordering::Relaxed);
    conn.ctx.tracker.spawn(async move {
        let _active = ActiveGuard(&counters);
        let res = tokio::select! {
            _ = cancel.cancelled() => return, // connection gone: nobody to answer
            res = async {
                match deadline {
                    Some(at) => tokio::time::timeout_at(at, run).await.ok(),
                    None => Some(run.await),
                }
            } => res,
        };
        // Finished after the caller's deadline: the caller has given up; send nothing.
        let Some(res) = res else { return };
        let _ = tx.send(reply.response(res)).await;
    });
}

/// Where the answer to one request goes.
struct ReplyTo {
    mux_id: u64,
    seq: u32,
    base: Flags,
    max: usize,
}

impl ReplyTo {
    /// The response message for a handler's outcome (a panic becomes a remote error).
    fn response(
        &self,
        res: Result<Result<Bytes, RemoteError>, Box<dyn std::any::Any + Send>>,
    ) -> Outgoing {
        let max = self.max;
        let (flags, payload) = match res {
            Ok(Ok(body)) if body.len() > max => (
                Flags::PAYLOAD_IS_ERR,
                Bytes::from(format!(
                    "response of {} bytes exceeds the limit of {max}",
                    body.len()
                )),
            ),
            Ok(Ok(body)) => (Flags::NONE, body),
            Ok(Err(e)) => (Flags::PAYLOAD_IS_ERR, Bytes::from(e.text().to_owned())),
            Err(panic) => {
                let what = panic_text(&*panic);
                tracing::error!(mux = self.mux_id, panic = %what, "grid: single handler panicked");
                (
                    Flags::PAYLOAD_IS_ERR,
                    Bytes::from(format!("handleMessages: panic recovered: {what}")),
                )
            }
        };
        Outgoing {
            mux_id: self.mux_id,
            seq: self.seq,
            flags: self.base | Flags::EOF | flags,
            payload: Some(payload),
            ..Outgoing::new(Op::RESPONSE, Flags::NONE)
        }
    }
}

struct ActiveGuard<'a>(&'a ConnShared);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0
            .counters
            .incoming_muxes
            .fetch_sub(1, Ordering::Relaxed);
    }
}
