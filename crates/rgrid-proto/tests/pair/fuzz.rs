//! The `mux_state` driver: two real connection cores in a [`Pair`], driven by an arbitrary
//! sequence of commands read from bytes, with invariants checked after every step.
//!
//! Shared by the cargo-fuzz target `fuzz/fuzz_targets/mux_state.rs` (nightly) and the
//! property test `tests/pair_fuzz.rs` (stable), which both call [`run`].
//!
//! Commands (one byte picks the command, the next bytes its arguments; input that runs out
//! reads as zeros): start, poll and abandon requests; open, send on, close, receive from,
//! cancel and release streams; answer served requests; run served streams' handlers
//! (send, end, receive, done); advance the virtual time or step to the next timer; transmit,
//! deliver or lose frames, pump; inject a hostile message or garbage.
//!
//! Checked after every command:
//! * nothing panics (every core call, the encoder, the decoder);
//! * credits never exceed windows: on every stream no hostile message named, messages
//!   accepted by the sender and not yet read by the receiver stay within the window, both
//!   directions (the handler's end takes a credit too);
//! * on the wire (every message a core transmits): per mux and direction, the sequence
//!   numbers are consecutive from the open (caller side) or the ack (handler side); the ack
//!   leaves before anything else of a served stream; follow-ups carry handler id 0; nothing
//!   of a served stream follows its final `OpDisconnectClientMux`, nothing of a caller's
//!   stream follows its `OpDisconnectServerMux`; a caller never reuses a mux id; every
//!   message but connection pings has the CRC flag;
//! * once both cores have nothing to send and nothing is in flight, the queued counters
//!   are back to zero;
//! * when one core closes, the other is closed as the transport would be;
//! * at the end every handle is released (callers release streams and abandon requests,
//!   handlers finish), the pair is pumped until quiet, and both cores hold no mux, timer or
//!   queued answer.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rgrid_proto::conn::{
    CallError, Class, CloseReason, Config, Event, OutMsg, ServeMsg, StreamRoute,
};
use rgrid_proto::{Flags, GridTime, HandlerId, MuxConnectError, Op, PingMsg, PongMsg};

use crate::harness::{A, B, Pair, TestRoutes, tables_empty};

/// Reads the input; past its end every read is 0.
struct Src<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Src<'_> {
    fn more(&self) -> bool {
        self.pos < self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn node(&mut self) -> usize {
        usize::from(self.u8() & 1)
    }
    /// An index below `n`, or `None` when `n` is 0: one of the last three half of the time
    /// (the newest calls are the live ones), any otherwise.
    fn index(&mut self, n: usize) -> Option<usize> {
        let b = usize::from(self.u8());
        if n == 0 {
            None
        } else if b & 0x80 == 0 {
            Some(n - 1 - b % n.min(3))
        } else {
            Some(b % n)
        }
    }
    fn of<T: Copy>(&mut self, choices: &[T]) -> T {
        let i = usize::from(self.u8()) % choices.len();
        choices[i]
    }
    fn payload(&mut self) -> Bytes {
        let len = usize::from(self.u8() % 8);
        let fill = self.u8();
        Bytes::from(vec![fill; len])
    }
}

/// What the applications on one node hold.
#[derive(Debug, Default)]
struct App {
    /// Single requests started and not yet answered or abandoned.
    requests: Vec<u64>,
    /// Streams opened and not yet released.
    streams: Vec<u64>,
    /// Served single requests not yet answered.
    served_requests: Vec<u64>,
    /// Served streams whose handler has not finished.
    served: Vec<u64>,
}

/// Message counts of one stream, keyed by (caller node, mux).
#[derive(Debug)]
struct Flow {
    in_cap: u32,
    out_cap: u32,
    /// Input messages the caller's `stream_send` accepted.
    sent_in: u64,
    /// Input messages the handler's `serve_recv` returned.
    read_in: u64,
    /// Messages and the end the handler's `serve_send` accepted.
    sent_out: u64,
    /// Messages the caller's `stream_recv` returned.
    read_out: u64,
}

/// A caller mux as seen on the wire.
#[derive(Debug)]
struct CallWire {
    next: u32,
    ended: bool,
    /// A single request: its only follow-up is one cancel (`OpDisconnectServerMux`, seq 1)
    /// when its caller gives up after it left.
    request: bool,
}

/// The wire checks (see the module docs), fed with every transmitted message.
#[derive(Debug, Default)]
struct Wire {
    /// (sender, mux) of muxes opened by the sender.
    calls: HashMap<(usize, u64), CallWire>,
    /// (sender, mux) of streams served by the sender, acked and not yet disconnected: the
    /// next sequence number.
    served: HashMap<(usize, u64), u32>,
}

impl Wire {
    fn check(&mut self, from: usize, m: &OutMsg) {
        let id = m.mux_id;
        if m.op == Op::PING && id == 0 {
            assert_eq!(m.flags, Flags::NONE, "connection pings carry no flags");
        } else {
            assert!(m.flags.contains(Flags::CRC), "no CRC on {m:?}");
        }
        match m.op {
            Op::REQUEST | Op::CONNECT_MUX => {
                assert_eq!(m.seq, 0, "{m:?}");
                let prev = self.calls.insert(
                    (from, id),
                    CallWire {
                        next: 1,
                        ended: m.op == Op::REQUEST,
                        request: m.op == Op::REQUEST,
                    },
                );
                assert!(prev.is_none(), "node {from} reused mux id {id}");
            }
            Op::MUX_CLIENT_MSG | Op::UNBLOCK_SRV_MUX => self.follow(from, m),
            Op::PING if id != 0 => self.follow(from, m),
            // Seq 0: the answer to a message for a stream this side does not have.
            Op::DISCONNECT_SERVER_MUX
                if m.seq != 0
                    && self
                        .calls
                        .get(&(from, id))
                        .is_some_and(|c| c.request && c.next == 1) =>
            {
                assert_eq!((m.seq, m.handler), (1, HandlerId(0)), "{m:?}");
                if let Some(c) = self.calls.get_mut(&(from, id)) {
                    c.next = 2;
                }
            }
            Op::DISCONNECT_SERVER_MUX if m.seq != 0 => {
                self.follow(from, m);
                if let Some(c) = self.calls.get_mut(&(from, id)) {
                    c.ended = true;
                }
            }
            Op::ACK_MUX => {
                assert_eq!(m.handler, HandlerId(0), "{m:?}");
                let prev = self.served.insert((from, id), m.seq.wrapping_add(1));
                assert!(prev.is_none(), "node {from} acked mux {id} twice: {m:?}");
            }
            Op::MUX_SERVER_MSG | Op::UNBLOCK_CL_MUX => {
                assert_eq!(m.handler, HandlerId(0), "{m:?}");
                let next = self.served.get_mut(&(from, id)).unwrap_or_else(|| {
                    panic!("node {from}: {m:?} for a stream not acked or already disconnected")
                });
                assert_eq!(m.seq, *next, "node {from}: sequence gap on served mux {id}");
                *next = next.wrapping_add(1);
            }
            Op::DISCONNECT_CLIENT_MUX => {
                assert_eq!(m.seq, 0, "{m:?}");
                self.served.remove(&(from, id));
            }
            _ => {}
        }
    }

    fn follow(&mut self, from: usize, m: &OutMsg) {
        assert_eq!(m.handler, HandlerId(0), "{m:?}");
        let c = self
            .calls
            .get_mut(&(from, m.mux_id))
            .unwrap_or_else(|| panic!("node {from}: {m:?} of a mux it never opened"));
        assert!(!c.ended, "node {from}: {m:?} after the mux ended");
        assert_eq!(
            m.seq, c.next,
            "node {from}: sequence gap on mux {}",
            m.mux_id
        );
        c.next = c.next.wrapping_add(1);
    }
}

/// What a run exercised (for tests that the driver is not vacuous).
#[derive(Clone, Debug, Default)]
pub(crate) struct RunStats {
    /// Commands run while both cores were open.
    pub(crate) open_commands: usize,
    /// Messages transmitted, by op.
    pub(crate) sent: HashMap<u8, usize>,
    /// Stream messages read by callers and handlers.
    pub(crate) reads: u64,
    /// Why the pair closed, if it did.
    pub(crate) closed: Option<CloseReason>,
}

struct Driver {
    stats: Rc<RefCell<RunStats>>,
    p: Pair,
    apps: [App; 2],
    flows: HashMap<(usize, u64), Flow>,
    /// Mux ids a hostile message named (either namespace): their flows are not checked.
    tainted: HashSet<u64>,
}

/// Stream handlers a caller opens: mostly registered ones, sometimes 77 (unknown).
const STREAM_HANDLERS: [u8; 8] = [78, 78, 78, 79, 79, 79, 10, 77];
const SINGLE_HANDLERS: [u8; 5] = [78, 78, 79, 79, 77];
/// Stream deadlines: mostly none (keepalive applies), sometimes short or long.
const DEADLINES: [Option<Duration>; 8] = [
    None,
    None,
    None,
    None,
    None,
    None,
    Some(Duration::from_secs(3)),
    Some(Duration::from_secs(100)),
];

impl Driver {
    fn new(src: &mut Src<'_>) -> Self {
        let b = [src.u8(), src.u8(), src.u8(), src.u8()];
        let routes = TestRoutes::default()
            .single(78, Class::Latency)
            .single(79, Class::Bulk)
            .stream(
                78,
                u32::from(b[0] % 4),
                1 + u32::from(b[1] % 4),
                Class::Normal,
            )
            .stream(
                79,
                u32::from(b[1] / 4 % 3),
                1 + u32::from(b[0] / 4 % 3),
                Class::Bulk,
            )
            .stream(10, 0, 1, Class::Latency);
        // Small limits, so the fuzzer reaches them.
        let cfg = Config {
            max_incoming_muxes: 8 + usize::from(b[2] % 32),
            max_pings_per_interval: 4 + u32::from(b[3] % 32),
            max_stateless_answers: 8 + usize::from(b[2] / 16),
            ..Config::default()
        };
        let mut p = Pair::with(cfg.clone(), cfg, routes.clone(), routes);
        // Frame byte limits down to a few dozen bytes, so messages that do not fit the frame
        // being filled (carried to the next one) come up with the fuzzer's small payloads.
        p.max_bytes = match b[3] % 4 {
            0 => 24 + usize::from(b[2] % 64),
            _ => p.max_bytes,
        };
        let wire = Rc::new(RefCell::new(Wire::default()));
        let stats = Rc::new(RefCell::new(RunStats::default()));
        let counts = stats.clone();
        p.observer = Some(Box::new(move |from, m| {
            wire.borrow_mut().check(from, m);
            *counts.borrow_mut().sent.entry(m.op.0).or_default() += 1;
        }));
        p.logging = false;
        Driver {
            stats,
            p,
            apps: [App::default(), App::default()],
            flows: HashMap::new(),
            tainted: HashSet::new(),
        }
    }

    fn flow(&mut self, caller: usize, mux: u64) -> Option<&mut Flow> {
        self.flows.get_mut(&(caller, mux))
    }

    /// Moves the events of both nodes to their applications.
    fn take_events(&mut self) -> bool {
        let mut any = false;
        for n in [A, B] {
            for e in self.p.events(n) {
                any = true;
                match e {
                    Event::Request { mux, .. } => self.apps[n].served_requests.push(mux),
                    Event::Stream { mux, .. } => self.apps[n].served.push(mux),
                    // The handler notices and finishes when the input says so.
                    Event::Cancel { .. } => {}
                }
            }
        }
        any
    }

    fn command(&mut self, src: &mut Src<'_>) {
        let w = Waker::noop();
        let cmd = src.u8() % 40;
        let n = src.node();
        if self.p.nodes[A].core.close_reason().is_none() {
            self.stats.borrow_mut().open_commands += 1;
        }
        match cmd {
            0 | 1 => {
                let h = src.of(&SINGLE_HANDLERS);
                let payload = src.payload();
                let deadline = src.of(&[Duration::from_secs(60), Duration::from_secs(2)]);
                let class = src.of(&[Class::Latency, Class::Normal, Class::Bulk]);
                let core = self.p.core(n);
                if let Ok(id) = core.start_request(HandlerId(h), None, payload, deadline, class) {
                    self.apps[n].requests.push(id);
                }
            }
            2 => {
                if let Some(i) = src.index(self.apps[n].requests.len()) {
                    let id = self.apps[n].requests[i];
                    if self.p.response(n, id).is_ready() {
                        self.apps[n].requests.swap_remove(i);
                    }
                }
            }
            3 => {
                if let Some(i) = src.index(self.apps[n].requests.len()) {
                    let id = self.apps[n].requests.swap_remove(i);
                    self.p.core(n).abandon_request(id);
                }
            }
            4 | 5 => {
                let h = src.of(&STREAM_HANDLERS);
                let deadline = src.of(&DEADLINES);
                let payload = src.payload();
                let route = self.p.nodes[n]
                    .routes
                    .stream_route(h)
                    .unwrap_or(StreamRoute {
                        in_capacity: 1,
                        out_capacity: 1,
                        class: Class::Normal,
                    });
                let now = self.p.now;
                let core = self.p.core(n);
                if let Ok(id) = core.open_stream(now, HandlerId(h), None, payload, deadline, route)
                {
                    self.apps[n].streams.push(id);
                    self.flows.insert(
                        (n, id),
                        Flow {
                            in_cap: route.in_capacity,
                            out_cap: route.out_capacity.max(1),
                            sent_in: 0,
                            read_in: 0,
                            sent_out: 0,
                            read_out: 0,
                        },
                    );
                }
            }
            6..=8 => {
                if let Some(i) = src.index(self.apps[n].streams.len()) {
                    let id = self.apps[n].streams[i];
                    let mut payload = Some(src.payload());
                    if let Poll::Ready(Ok(())) = self.p.core(n).stream_send(id, &mut payload, w) {
                        assert!(payload.is_none());
                        if let Some(f) = self.flow(n, id) {
                            f.sent_in += 1;
                        }
                    }
                }
            }
            9 => {
                if let Some(i) = src.index(self.apps[n].streams.len()) {
                    let id = self.apps[n].streams[i];
                    self.p.core(n).stream_close_send(id);
                }
            }
            10..=12 => {
                if let Some(i) = src.index(self.apps[n].streams.len()) {
                    let id = self.apps[n].streams[i];
                    if let Poll::Ready(Some(Ok(_))) = self.p.recv(n, id) {
                        self.stats.borrow_mut().reads += 1;
                        if let Some(f) = self.flow(n, id) {
                            f.read_out += 1;
                        }
                    }
                }
            }
            // Cancels are rarer than the rest (1 in 4 of these).
            13 => {
                if src.u8() < 64
                    && let Some(i) = src.index(self.apps[n].streams.len())
                {
                    let id = self.apps[n].streams[i];
                    let e = if src.u8() & 1 == 0 {
                        CallError::Cancelled
                    } else {
                        CallError::DeadlineExceeded
                    };
                    self.p.core(n).stream_cancel(id, e);
                }
            }
            // Mostly a stream that ended is released (a dropped handle otherwise).
            14 => {
                let core = &self.p.nodes[n].core;
                let streams = &self.apps[n].streams;
                let ended = streams.iter().position(|&id| core.stream_is_ended(id));
                let pick = match ended {
                    Some(i) if src.u8() >= 32 => Some(i),
                    _ => src.index(streams.len()),
                };
                if let Some(i) = pick {
                    let id = self.apps[n].streams.swap_remove(i);
                    self.p.core(n).stream_release(id);
                }
            }
            15 | 16 => {
                if let Some(i) = src.index(self.apps[n].served_requests.len()) {
                    let id = self.apps[n].served_requests.swap_remove(i);
                    let answer = match src.u8() % 3 {
                        0 => None,
                        1 => Some(Ok(src.payload())),
                        _ => Some(Err("handler failed".to_owned())),
                    };
                    let now = self.p.now;
                    self.p.core(n).respond(now, id, answer);
                }
            }
            17..=19 => {
                if let Some(i) = src.index(self.apps[n].served.len()) {
                    let id = self.apps[n].served[i];
                    let msg = match src.u8() % 12 {
                        0 => ServeMsg::End(Ok(())),
                        1 => ServeMsg::End(Err("handler error".to_owned())),
                        _ => ServeMsg::Data(src.payload()),
                    };
                    let mut msg = Some(msg);
                    if let Poll::Ready(Ok(())) = self.p.core(n).serve_send(id, &mut msg, w) {
                        assert!(msg.is_none());
                        if let Some(f) = self.flow(1 - n, id) {
                            f.sent_out += 1;
                        }
                    }
                }
            }
            20 | 21 => {
                if let Some(i) = src.index(self.apps[n].served.len()) {
                    let id = self.apps[n].served[i];
                    if let Poll::Ready(Some(_)) = self.p.serve_recv(n, id) {
                        self.stats.borrow_mut().reads += 1;
                        if let Some(f) = self.flow(1 - n, id) {
                            f.read_in += 1;
                        }
                    }
                }
            }
            // Mostly a handler finishes once it was cancelled or sent its end.
            22 => {
                let core = &self.p.nodes[n].core;
                let served = &self.apps[n].served;
                let over = served.iter().position(|&id| core.serve_is_cancelled(id));
                let pick = match over {
                    Some(i) if src.u8() >= 32 => Some(i),
                    _ => src.index(served.len()),
                };
                if let Some(i) = pick {
                    let id = self.apps[n].served.swap_remove(i);
                    self.p.serve_done(n, id);
                }
            }
            23 => {
                // Up to 2.5 s: the writers and readers of a live pair are never far behind.
                self.p.now += Duration::from_millis(10 * u64::from(src.u8()));
                self.p.run_timers();
            }
            24 => {
                self.p.step();
                // Mostly the writers catch up before the next timer.
                if src.u8() != 0 {
                    self.p.pump();
                }
            }
            25..=27 => {
                self.p.transmit(n);
            }
            28..=30 => {
                let _ = self.p.deliver(n);
            }
            31..=34 => {
                self.p.pump();
            }
            35 => self.hostile(src, n),
            36 | 37 => match src.u8() {
                // A frame lost in flight (the transport never does this; the cores must
                // survive it all the same).
                0..=7 => {
                    self.p.wire[n].pop_front();
                }
                // Garbage (rare: it ends the run's connection).
                8 => {
                    let len = usize::from(src.u8() % 12);
                    let bytes: Vec<u8> = (0..len).map(|_| src.u8()).collect();
                    let _ = self.p.deliver_bytes(n, &Bytes::from(bytes));
                }
                // The local side closes (rare too).
                9 => self
                    .p
                    .core(n)
                    .close(CloseReason::Local("fuzz: closed".to_owned())),
                _ => {}
            },
            _ => {
                self.p.now += Duration::from_millis(u64::from(src.u8()));
                self.p.run_timers();
            }
        }
        self.p.collect(A);
        self.p.collect(B);
        self.take_events();
        self.after_step();
    }

    /// A message a hostile peer sends to node `to`.
    fn hostile(&mut self, src: &mut Src<'_>, to: usize) {
        let mut known: Vec<u64> = self.flows.keys().map(|&(_, id)| id).collect();
        for app in &self.apps {
            known.extend(&app.requests);
            known.extend(&app.served_requests);
            known.extend(&app.served);
        }
        known.sort_unstable();
        known.dedup();
        let count = 1 + usize::from(src.u8() % 3);
        let mut msgs = Vec::with_capacity(count);
        for _ in 0..count {
            let op = Op(1 + src.u8() % 16);
            let mux = match src.u8() % 4 {
                0 => 0,
                1 | 2 => match src.index(known.len()) {
                    Some(i) => known[i],
                    None => 1,
                },
                _ => u64::from(src.u8() % 24),
            };
            if mux != 0 {
                self.tainted.insert(mux);
            }
            let seq = match src.u8() % 3 {
                0 => 0,
                1 => u32::from(src.u8() % 8),
                _ => u32::from(src.u8()) << 24 | u32::from(src.u8()),
            };
            let flags =
                Flags(src.u8() & (Flags::EOF.0 | Flags::STATELESS.0 | Flags::PAYLOAD_IS_ERR.0))
                    | src.of(&[Flags::CRC, Flags::NONE]);
            let handler = HandlerId(src.of(&[0, 78, 79, 10, 77, 200]));
            let deadline_ms = src.of(&[0, 1, 1_000, 100_000]);
            let mut buf = BytesMut::new();
            let payload = match src.u8() % 7 {
                0 => None,
                1 => Some(Bytes::new()),
                2 => {
                    PongMsg {
                        not_found: src.u8() & 1 == 1,
                        err: (src.u8() & 1 == 1).then(|| "hostile".into()),
                        t: GridTime::default(),
                    }
                    .encode(&mut buf)
                    .expect("pong encodes");
                    Some(buf.split().freeze())
                }
                3 => {
                    MuxConnectError {
                        error: "hostile refusal".into(),
                    }
                    .encode(&mut buf)
                    .expect("error encodes");
                    Some(buf.split().freeze())
                }
                4 => {
                    PingMsg {
                        t: GridTime::UNIX_EPOCH,
                    }
                    .encode(&mut buf);
                    Some(buf.split().freeze())
                }
                _ => Some(src.payload()),
            };
            msgs.push(OutMsg {
                mux_id: mux,
                seq,
                deadline_ms,
                handler,
                op,
                flags,
                payload,
                subroute: None,
            });
        }
        let _ = self.p.inject(to, &msgs);
    }

    fn after_step(&mut self) {
        // One side closed: the transport goes with it.
        let closed = [A, B].map(|n| self.p.nodes[n].core.close_reason().is_some());
        if (closed[0] || closed[1]) && self.stats.borrow().closed.is_none() {
            let first = if closed[0] { A } else { B };
            self.stats.borrow_mut().closed = self.p.nodes[first].core.close_reason().cloned();
        }
        if closed[0] != closed[1] {
            let n = if closed[0] { B } else { A };
            self.p.nodes[n]
                .core
                .close(CloseReason::Local("fuzz: transport closed".to_owned()));
            self.p.wire = Default::default();
            self.p.collect(n);
            self.take_events();
        }
        if closed[0] || closed[1] {
            self.p.wire = Default::default();
        }
        // Credits never exceed windows.
        for (&(caller, id), f) in &self.flows {
            if self.tainted.contains(&id) {
                continue;
            }
            let in_flight = f.sent_in.saturating_sub(f.read_in);
            assert!(
                in_flight <= u64::from(f.in_cap),
                "node {caller} mux {id}: {in_flight} inputs in flight, window {}",
                f.in_cap
            );
            assert!(
                f.read_in <= f.sent_in,
                "node {caller} mux {id}: read more than sent"
            );
            let out_flight = f.sent_out.saturating_sub(f.read_out);
            assert!(
                out_flight <= u64::from(f.out_cap),
                "node {caller} mux {id}: {out_flight} outputs in flight, window {}",
                f.out_cap
            );
            assert!(
                f.read_out <= f.sent_out,
                "node {caller} mux {id}: read more than sent"
            );
        }
        // Quiet: nothing is queued but the data of streams the bulk gate holds (each for a
        // message its consumer has not read yet).
        let quiet = [A, B].iter().all(|&n| !self.p.nodes[n].core.has_output())
            && self.p.wire.iter().all(|w| w.is_empty());
        if quiet {
            for n in [A, B] {
                let core = &self.p.nodes[n].core;
                let stats = core.stats();
                if stats.paced_streams == 0 {
                    assert_eq!(core.queued(), (0, 0), "node {n}: queued while quiet");
                } else {
                    assert!(
                        core.queued().1 >= stats.paced_streams,
                        "node {n}: a stream held with nothing queued"
                    );
                }
                assert_eq!(stats.stateless_answers, 0);
            }
        }
    }

    /// Every handle is released, every handler finishes, the pair is pumped until quiet.
    fn drain(&mut self) {
        for _ in 0..64 {
            for n in [A, B] {
                for id in std::mem::take(&mut self.apps[n].streams) {
                    self.p.core(n).stream_release(id);
                }
                for id in std::mem::take(&mut self.apps[n].requests) {
                    if self.p.response(n, id).is_pending() {
                        self.p.core(n).abandon_request(id);
                    }
                }
                for id in std::mem::take(&mut self.apps[n].served) {
                    self.p.serve_done(n, id);
                }
                let now = self.p.now;
                for id in std::mem::take(&mut self.apps[n].served_requests) {
                    self.p.core(n).respond(now, id, None);
                }
            }
            self.p.pump();
            self.after_step();
            let new = self.take_events();
            let idle = self
                .apps
                .iter()
                .all(|a| a.streams.is_empty() && a.requests.is_empty() && a.served.is_empty())
                && self.apps.iter().all(|a| a.served_requests.is_empty());
            if !new && idle {
                break;
            }
        }
        self.p.pump();
        self.after_step();
        for n in [A, B] {
            let core = &self.p.nodes[n].core;
            assert_eq!(core.queued(), (0, 0), "node {n}");
            if let Err(e) = tables_empty(core) {
                panic!("node {n}: {e}");
            }
        }
    }
}

/// Runs the command sequence in `data` on a fresh pair (see the module docs).
pub(crate) fn run(data: &[u8]) -> RunStats {
    let mut src = Src { data, pos: 0 };
    let mut d = Driver::new(&mut src);
    while src.more() {
        d.command(&mut src);
    }
    d.drain();
    d.stats.take()
}
