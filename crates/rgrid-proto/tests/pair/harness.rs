//! A deterministic pair of connection cores wired in memory, in the manner of quinn-proto's
//! test `Pair`.
//!
//! * Two [`Core`]s, `A` (node 0) and `B` (node 1), each with its own routes (handlers with
//!   capacities and classes, [`TestRoutes`]).
//! * Virtual time: an [`Instant`] base advanced by hand. The cores never read a clock;
//!   [`Pair::step`] jumps to the earliest [`Core::next_timeout`] of the two and runs both
//!   cores' timers there, [`Pair::advance_to`] steps until a given offset.
//! * The wire: [`Pair::transmit`] takes one frame from a core ([`Core::poll_transmit`]),
//!   logs every message in it ([`Pair::log`]) and puts it in flight; [`Pair::deliver`] encodes
//!   the oldest frame in flight ([`encode_frame`]) and hands it to the other core. A per
//!   direction filter ([`Pair::drop_from`]) loses chosen messages on the way (they are still
//!   logged as transmitted). [`Pair::pump`] does both, both ways, until nothing moves.
//! * After every input the pair collects the receiving core's events ([`Pair::events`]) and
//!   wakes the wakers it hands out ([`Core::take_wakers`]); [`counting_waker`] tells a test
//!   which of its wakers were woken.
//! * Handlers are run by hand: [`Pair::respond`], [`Pair::serve_send`],
//!   [`Pair::serve_recv`], [`Pair::serve_done`]; hostile peers by [`Pair::inject`].
//!
//! Shared by `tests/pair.rs`, `tests/pair_fuzz.rs` and the `mux_state` fuzz target.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rgrid_proto::conn::{
    CallError, Class, CloseReason, Config, Core, Event, OutMsg, Routes, ServeMsg, StreamRoute,
    encode_frame,
};
use rgrid_proto::{Flags, GridTime, HandlerId, Op, SubrouteId};

/// The first node (usually the caller).
pub(crate) const A: usize = 0;
/// The second node (usually the handler side).
pub(crate) const B: usize = 1;

/// Handlers registered on one node: single requests with a class, streams with capacities.
#[derive(Clone, Debug, Default)]
pub(crate) struct TestRoutes {
    singles: HashMap<(HandlerId, Option<SubrouteId>), Class>,
    streams: HashMap<(HandlerId, Option<SubrouteId>), StreamRoute>,
}

impl TestRoutes {
    /// Registers a single-request handler.
    pub(crate) fn single(mut self, h: u8, class: Class) -> Self {
        self.singles.insert((HandlerId(h), None), class);
        self
    }

    /// Registers a subrouted single-request handler.
    pub(crate) fn single_sub(mut self, h: u8, route: &str, class: Class) -> Self {
        let sub = SubrouteId::new(HandlerId(h), route);
        self.singles.insert((HandlerId(h), Some(sub)), class);
        self
    }

    /// Registers a stream handler.
    pub(crate) fn stream(
        mut self,
        h: u8,
        in_capacity: u32,
        out_capacity: u32,
        class: Class,
    ) -> Self {
        let r = StreamRoute {
            in_capacity,
            out_capacity,
            class,
        };
        self.streams.insert((HandlerId(h), None), r);
        self
    }

    /// A stream handler's settings (what a caller sizes its windows from).
    pub(crate) fn stream_route(&self, h: u8) -> Option<StreamRoute> {
        self.streams.get(&(HandlerId(h), None)).copied()
    }
}

impl Routes for TestRoutes {
    fn single(&self, handler: HandlerId, subroute: Option<&SubrouteId>) -> Option<Class> {
        self.singles.get(&(handler, subroute.copied())).copied()
    }
    fn stream(&self, handler: HandlerId, subroute: Option<&SubrouteId>) -> Option<StreamRoute> {
        self.streams.get(&(handler, subroute.copied())).copied()
    }
}

/// Counts how often a waker was woken.
#[derive(Debug, Default)]
pub(crate) struct WakeCount(AtomicUsize);

impl WakeCount {
    /// Wake-ups so far.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker and its wake-up counter.
pub(crate) fn counting_waker() -> (Waker, Arc<WakeCount>) {
    let count = Arc::new(WakeCount::default());
    (Waker::from(count.clone()), count)
}

/// One message as a core transmitted it.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    /// The node that transmitted it.
    pub(crate) from: usize,
    /// The frame it was in (numbered over both directions).
    pub(crate) frame: usize,
    /// The message.
    pub(crate) msg: OutMsg,
}

/// One side of the pair.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) core: Core,
    pub(crate) routes: TestRoutes,
    /// Events collected from the core, oldest first.
    pub(crate) events: VecDeque<Event>,
    /// Wakers woken so far (all of them, counting or not).
    pub(crate) woken: usize,
}

type Filter = Box<dyn FnMut(&OutMsg) -> bool>;
type Observer = Box<dyn FnMut(usize, &OutMsg)>;

/// Two cores wired in memory (see the module docs).
pub(crate) struct Pair {
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) nodes: [Node; 2],
    /// Frames transmitted by node i, not yet delivered to the other: (frame number, messages).
    pub(crate) wire: [VecDeque<(usize, Vec<OutMsg>)>; 2],
    /// Every message transmitted, in order (when `logging`).
    pub(crate) log: Vec<Sent>,
    pub(crate) logging: bool,
    pub(crate) frames: usize,
    /// Frame limits passed to `poll_transmit`.
    pub(crate) max_msgs: usize,
    pub(crate) max_bytes: usize,
    /// Messages from node i for which this returns true are lost on the wire.
    pub(crate) drop_from: [Option<Filter>; 2],
    /// Called with every transmitted message (the fuzz target's wire checks).
    pub(crate) observer: Option<Observer>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("elapsed", &self.elapsed())
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// The wall-clock time the pair puts in pings: a fixed epoch plus the virtual time.
pub(crate) fn wall(elapsed: Duration) -> GridTime {
    GridTime {
        unix_secs: 1_700_000_000 + i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX / 2),
        nanos: elapsed.subsec_nanos(),
    }
}

impl Pair {
    /// A pair with the same routes on both nodes and default configs.
    pub(crate) fn new(routes: TestRoutes) -> Self {
        Self::with(Config::default(), Config::default(), routes.clone(), routes)
    }

    /// A pair with a config and routes per node.
    pub(crate) fn with(cfg_a: Config, cfg_b: Config, ra: TestRoutes, rb: TestRoutes) -> Self {
        let start = Instant::now();
        let node = |cfg, routes| Node {
            core: Core::new(cfg, start),
            routes,
            events: VecDeque::new(),
            woken: 0,
        };
        Pair {
            start,
            now: start,
            nodes: [node(cfg_a, ra), node(cfg_b, rb)],
            wire: [VecDeque::new(), VecDeque::new()],
            log: Vec::new(),
            logging: true,
            frames: 0,
            max_msgs: 50,
            max_bytes: 32 * 1024 - 1024,
            drop_from: [None, None],
            observer: None,
        }
    }

    /// Node A's core.
    pub(crate) fn a(&mut self) -> &mut Core {
        &mut self.nodes[A].core
    }

    /// Node B's core.
    pub(crate) fn b(&mut self) -> &mut Core {
        &mut self.nodes[B].core
    }

    /// A node's core.
    pub(crate) fn core(&mut self, node: usize) -> &mut Core {
        &mut self.nodes[node].core
    }

    /// Virtual time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Collects a node's events and wakes the wakers it hands out.
    pub(crate) fn collect(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        while let Some(e) = n.core.poll_event() {
            n.events.push_back(e);
        }
        let mut wakers = Vec::new();
        n.core.take_wakers(&mut wakers);
        n.woken += wakers.len();
        for w in wakers {
            w.wake();
        }
    }

    /// The events a node produced so far (drained).
    pub(crate) fn events(&mut self, node: usize) -> Vec<Event> {
        self.collect(node);
        self.nodes[node].events.drain(..).collect()
    }

    /// Takes one frame from `from` and puts it in flight; returns its message count.
    pub(crate) fn transmit(&mut self, from: usize) -> usize {
        self.collect(from);
        let mut batch = Vec::new();
        let n = self.nodes[from]
            .core
            .poll_transmit(&mut batch, self.max_msgs, self.max_bytes);
        if n == 0 {
            return 0;
        }
        let frame = self.frames;
        self.frames += 1;
        if let Some(obs) = &mut self.observer {
            for m in &batch {
                obs(from, m);
            }
        }
        if self.logging {
            self.log.extend(batch.iter().map(|m| Sent {
                from,
                frame,
                msg: m.clone(),
            }));
        }
        if let Some(f) = &mut self.drop_from[from] {
            batch.retain(|m| !f(m));
        }
        self.wire[from].push_back((frame, batch));
        self.collect(from);
        n
    }

    /// Transmits from `from` until it has nothing more; returns the messages taken.
    pub(crate) fn transmit_all(&mut self, from: usize) -> usize {
        let mut total = 0;
        loop {
            let n = self.transmit(from);
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// Delivers the oldest frame `from` has in flight to the other node. `None` when nothing
    /// is in flight; otherwise what the receiving core returned (a frame whose messages were
    /// all lost is `Ok(0)`).
    pub(crate) fn deliver(&mut self, from: usize) -> Option<Result<u32, CloseReason>> {
        let (_, batch) = self.wire[from].pop_front()?;
        if batch.is_empty() {
            return Some(Ok(0));
        }
        let mut frame = BytesMut::new();
        encode_frame(&batch, &mut frame).expect("encodable");
        Some(self.deliver_bytes(1 - from, &frame.freeze()))
    }

    /// Hands raw bytes to a node as one received frame.
    pub(crate) fn deliver_bytes(&mut self, to: usize, frame: &Bytes) -> Result<u32, CloseReason> {
        let now = self.now;
        let node = &mut self.nodes[to];
        let r = node.core.handle_frame(now, frame, &node.routes);
        self.collect(to);
        r
    }

    /// Delivers everything `from` has in flight.
    pub(crate) fn deliver_all(&mut self, from: usize) -> usize {
        let mut n = 0;
        while self.deliver(from).is_some() {
            n += 1;
        }
        n
    }

    /// Drops everything `from` has in flight (lost on the wire).
    pub(crate) fn lose_in_flight(&mut self, from: usize) {
        self.wire[from].clear();
    }

    /// Moves frames both ways until neither core has anything to send and nothing is in
    /// flight; returns the messages transmitted.
    pub(crate) fn pump(&mut self) -> usize {
        let mut total = 0;
        loop {
            let moved = self.transmit_all(A) + self.transmit_all(B);
            let delivered = self.deliver_all(A) + self.deliver_all(B);
            total += moved;
            if moved == 0 && delivered == 0 {
                return total;
            }
        }
    }

    /// A message that `to` receives as if its peer had sent it.
    pub(crate) fn inject(&mut self, to: usize, msgs: &[OutMsg]) -> Result<u32, CloseReason> {
        let mut frame = BytesMut::new();
        encode_frame(msgs, &mut frame).expect("encodable");
        self.deliver_bytes(to, &frame.freeze())
    }

    /// The earliest timer of the two cores.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let a = self.nodes[A].core.next_timeout();
        let b = self.nodes[B].core.next_timeout();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs both cores' timers at the current time.
    pub(crate) fn run_timers(&mut self) {
        let w = wall(self.elapsed());
        for node in [A, B] {
            let now = self.now;
            self.nodes[node].core.handle_timeout(now, w);
            self.collect(node);
        }
    }

    /// Jumps to the earliest timer of the two cores and runs both cores' timers there.
    /// Returns the new virtual time, or `None` when both cores are closed.
    pub(crate) fn step(&mut self) -> Option<Duration> {
        let t = self.next_timeout()?;
        if t > self.now {
            self.now = t;
        }
        self.run_timers();
        Some(self.elapsed())
    }

    /// Steps through every timer up to `offset` (since the start), then sets the time there.
    /// Pumps after each step when `pump` is set.
    pub(crate) fn advance_to(&mut self, offset: Duration, pump: bool) {
        let target = self.start + offset;
        while let Some(t) = self.next_timeout() {
            if t > target {
                break;
            }
            self.step();
            if pump {
                self.pump();
            }
        }
        if target > self.now {
            self.now = target;
        }
    }

    /// Closes a node's connection (and the other's, as the transport would).
    pub(crate) fn close_both(&mut self, node: usize, reason: CloseReason) {
        self.nodes[node].core.close(reason);
        self.nodes[1 - node]
            .core
            .close(CloseReason::Local("transport closed".to_owned()));
        self.wire = [VecDeque::new(), VecDeque::new()];
        self.collect(A);
        self.collect(B);
    }

    // -------------------------------------------------------------------------------------
    // Callers

    /// Starts a single request with a 60 s deadline, latency class.
    pub(crate) fn request(&mut self, node: usize, h: u8, payload: &[u8]) -> u64 {
        self.nodes[node]
            .core
            .start_request(
                HandlerId(h),
                None,
                Bytes::copy_from_slice(payload),
                Duration::from_secs(60),
                Class::Latency,
            )
            .expect("request starts")
    }

    /// The answer of a single request (noop waker).
    pub(crate) fn response(&mut self, node: usize, mux: u64) -> Poll<Result<Bytes, CallError>> {
        let r = self.nodes[node].core.poll_response(mux, Waker::noop());
        self.collect(node);
        r
    }

    /// Opens a stream sized from the node's own registration of `h` (or 1/1 normal if it has
    /// none), without a deadline.
    pub(crate) fn open(&mut self, node: usize, h: u8, payload: &[u8]) -> u64 {
        self.open_with(node, h, payload, None)
    }

    /// Opens a stream with a deadline.
    pub(crate) fn open_with(
        &mut self,
        node: usize,
        h: u8,
        payload: &[u8],
        deadline: Option<Duration>,
    ) -> u64 {
        let route = self.nodes[node]
            .routes
            .stream_route(h)
            .unwrap_or(StreamRoute {
                in_capacity: 1,
                out_capacity: 1,
                class: Class::Normal,
            });
        let now = self.now;
        self.nodes[node]
            .core
            .open_stream(
                now,
                HandlerId(h),
                None,
                Bytes::copy_from_slice(payload),
                deadline,
                route,
            )
            .expect("stream opens")
    }

    /// Sends one input message (noop waker).
    pub(crate) fn send(
        &mut self,
        node: usize,
        mux: u64,
        payload: &[u8],
    ) -> Poll<Result<(), CallError>> {
        let mut p = Some(Bytes::copy_from_slice(payload));
        let r = self.nodes[node]
            .core
            .stream_send(mux, &mut p, Waker::noop());
        self.collect(node);
        r
    }

    /// Receives one response (noop waker).
    pub(crate) fn recv(&mut self, node: usize, mux: u64) -> Poll<Option<Result<Bytes, CallError>>> {
        let r = self.nodes[node].core.stream_recv(mux, Waker::noop());
        self.collect(node);
        r
    }

    /// Receives every response available now.
    pub(crate) fn recv_all(
        &mut self,
        node: usize,
        mux: u64,
    ) -> Vec<Option<Result<Bytes, CallError>>> {
        let mut out = Vec::new();
        while let Poll::Ready(r) = self.recv(node, mux) {
            let end = r.is_none();
            out.push(r);
            if end {
                break;
            }
        }
        out
    }

    // -------------------------------------------------------------------------------------
    // Handlers, run by hand

    /// Answers a served single request.
    pub(crate) fn respond(&mut self, node: usize, mux: u64, answer: Option<Result<&[u8], &str>>) {
        let now = self.now;
        let answer = answer.map(|a| a.map(Bytes::copy_from_slice).map_err(ToOwned::to_owned));
        self.nodes[node].core.respond(now, mux, answer);
        self.collect(node);
    }

    /// A served stream's handler sends a message or its end (noop waker).
    pub(crate) fn serve_send(
        &mut self,
        node: usize,
        mux: u64,
        msg: ServeMsg,
    ) -> Poll<Result<(), CallError>> {
        let mut m = Some(msg);
        let r = self.nodes[node].core.serve_send(mux, &mut m, Waker::noop());
        self.collect(node);
        r
    }

    /// A served stream's handler sends one data message.
    pub(crate) fn serve_data(
        &mut self,
        node: usize,
        mux: u64,
        payload: &[u8],
    ) -> Poll<Result<(), CallError>> {
        self.serve_send(node, mux, ServeMsg::Data(Bytes::copy_from_slice(payload)))
    }

    /// A served stream's handler reads one input message (noop waker).
    pub(crate) fn serve_recv(&mut self, node: usize, mux: u64) -> Poll<Option<Bytes>> {
        let r = self.nodes[node].core.serve_recv(mux, Waker::noop());
        self.collect(node);
        r
    }

    /// A served stream's handler has returned.
    pub(crate) fn serve_done(&mut self, node: usize, mux: u64) {
        self.nodes[node].core.serve_done(mux);
        self.collect(node);
    }

    // -------------------------------------------------------------------------------------
    // The wire log

    /// Messages transmitted by `from`.
    pub(crate) fn sent_by(&self, from: usize) -> Vec<OutMsg> {
        self.log
            .iter()
            .filter(|s| s.from == from)
            .map(|s| s.msg.clone())
            .collect()
    }

    /// Messages transmitted by `from` for `mux`.
    pub(crate) fn sent_on(&self, from: usize, mux: u64) -> Vec<OutMsg> {
        self.log
            .iter()
            .filter(|s| s.from == from && s.msg.mux_id == mux)
            .map(|s| s.msg.clone())
            .collect()
    }

    /// The ops `from` transmitted for `mux`, in order.
    pub(crate) fn ops_on(&self, from: usize, mux: u64) -> Vec<Op> {
        self.sent_on(from, mux).iter().map(|m| m.op).collect()
    }

    /// Forgets the log.
    pub(crate) fn clear_log(&mut self) {
        self.log.clear();
    }
}

/// The `Event::Stream` a node must have produced next: (mux, payload).
pub(crate) fn expect_stream(p: &mut Pair, node: usize) -> (u64, Bytes) {
    p.collect(node);
    match p.nodes[node].events.pop_front() {
        Some(Event::Stream { mux, payload, .. }) => (mux, payload),
        other => panic!("expected a stream event, got {other:?}"),
    }
}

/// The `Event::Request` a node must have produced next: (mux, payload).
pub(crate) fn expect_request(p: &mut Pair, node: usize) -> (u64, Bytes) {
    p.collect(node);
    match p.nodes[node].events.pop_front() {
        Some(Event::Request { mux, payload, .. }) => (mux, payload),
        other => panic!("expected a request event, got {other:?}"),
    }
}

/// A message as a peer would send it on `mux` (base flags: CRC).
pub(crate) fn msg(op: Op, mux: u64, seq: u32, flags: Flags, payload: Option<&[u8]>) -> OutMsg {
    OutMsg {
        mux_id: mux,
        seq,
        payload: payload.map(Bytes::copy_from_slice),
        ..OutMsg::new(op, Flags::CRC | flags)
    }
}

/// Whether a core holds no mux, timer or queued answer any more: the tables are private, so
/// this reads the core's `Debug` output.
pub(crate) fn tables_empty(core: &Core) -> Result<(), String> {
    let d = format!("{core:?}");
    for want in [
        "clients: {}",
        "servers: {}",
        "deadlines: {}",
        "control: []",
        "stateless: []",
        "ready: [[], [], []]",
    ] {
        if !d.contains(want) {
            let mut shown = d.clone();
            shown.truncate(4000);
            return Err(format!("the core still holds state (no `{want}`): {shown}"));
        }
    }
    Ok(())
}
