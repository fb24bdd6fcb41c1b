//! Deterministic fault simulation of the grid on turmoil (reliability guide §1.2, C3–C8,
//! W1, invariants of §4).
//!
//! Every seed builds a 3–5 node grid. Each node is a turmoil host running a real [`Manager`]
//! whose dialer opens a simulated TCP stream and upgrades it to a websocket, and whose
//! listener serves the manager's HTTP entry point with hyper (`common/sim_net.rs`). Every
//! node issues a mixed workload to random peers: single requests (echo with a per-call id and
//! a handler delay) and two-way echo streams (a few numbered messages whose order is
//! checked), all with deadlines. Meanwhile a seeded schedule injects, one after another:
//! two-way and one-way partitions, held-then-released traffic (longer than the keepalive
//! window), silent crashes (partition, crash, later restart with a new manager instance),
//! clean restarts (`bounce`, the old sockets get a FIN), flapping links, latency spikes
//! inside the keepalive window (which must not drop the connection), and membership changes
//! (a node leaves the grid under load, every other node removing it with
//! `Manager::remove_host`, and joins again with `add_host`).
//!
//! Measured per fault and printed per seed: dead-peer detection time (fault start → the
//! connection leaves `Connected`) against the contract bound `2 × ping_interval +
//! write_timeout`, and reconnect time (heal → both ends `Connected`).
//!
//! After all faults are healed and a quiet period has passed, each seed checks:
//! * every issued call has exactly one outcome (success, an error kind, or "its caller
//!   crashed with it"): none is missing, and none is reported twice (a second report is
//!   recorded in the ledger and checked here, not asserted in the task that reports it);
//! * no handler ran twice for one call; exactly once for calls that succeeded;
//! * successful streams got every echo, gap-free and in order;
//! * no mux left open (`incoming_muxes == outgoing_muxes == 0` everywhere) and each node's
//!   tokio task count is back to its baseline;
//! * every pair is `Connected` again within backoff + handshake of the last heal;
//! * no call outlived its deadline by more than a few ticks of virtual time;
//! * detection and reconnect times are within their bounds (with slack).
//!
//! Runs:
//! * `cargo test -p rgrid --test suite sim::` — the fixed CI seed list;
//! * `RGRID_SIM_SEEDS=200 cargo test -p rgrid --release --test suite sim:: -- --nocapture` —
//!   seeds 0..200 (`RGRID_SIM_SEED_BASE` moves the start);
//! * `RGRID_SIM_SEED=1234 cargo test -p rgrid --test suite sim:: -- --nocapture` — one seed.
//!
//! (This file is a module of `tests/suite.rs`, rgrid's one binary for the tests that need no
//! process of their own.)
//!
//! A failure names its seed. The fault schedule, workload choices, turmoil's network RNG and
//! the library's jitter and websocket masks (`fastrand`'s thread-local RNG, seeded per seed:
//! every host runs on the test thread) all follow the seed, and in practice a seed replays
//! exactly (same faults, timings and per-outcome counts, alone or within a batch). Not
//! explicitly seeded: tokio's `select!` branch randomisation (seedable only under
//! `--cfg tokio_unstable`), hash-map iteration order and the managers' uuid v4 instance ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sim_net.rs"]
mod sim_net;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use rgrid::{
    Error, HandlerCtx, HandlerId, Manager, Options, RawStreamHandler, RemoteError, State, StreamIn,
    StreamOut,
};
use sim_net::{SimDialer, serve_sim};
use turmoil::Sim;

const PORT: u16 = 9000;
const TOKEN: &str = "sim-token";
/// Turmoil step: every host runs this much virtual time per step.
const TICK: Duration = Duration::from_millis(10);
const SINGLE: HandlerId = HandlerId::TEST;
const STREAM: HandlerId = HandlerId::TEST2;
/// Largest deadline the workload uses.
const MAX_DEADLINE: Duration = Duration::from_secs(4);
/// Calls a node keeps in flight at most.
const MAX_IN_FLIGHT: usize = 6;
/// Seeds run by plain `cargo test`.
const CI_SEEDS: std::ops::Range<u64> = 0..24;

fn options() -> Options {
    Options {
        ping_interval: Duration::from_millis(1000),
        dead_after: Duration::from_millis(1000) * 2,
        write_timeout: Duration::from_millis(400),
        dial_timeout: Duration::from_millis(1000),
        handshake_timeout: Duration::from_millis(2000),
        stream_ping_interval: Duration::from_millis(1000),
        default_deadline: Duration::from_secs(5),
        ..Options::default()
    }
}

/// The contract's detection bound (§2.7).
fn detect_bound(o: &Options) -> Duration {
    2 * o.ping_interval + o.write_timeout
}

/// Reconnect bound after a heal: an attempt that started just before the heal hangs on its
/// unanswered SYN until the dial timeout, the next one starts at most one backoff period
/// (= dial timeout) after that one started, then the handshake's round trips.
fn reconnect_bound(o: &Options) -> Duration {
    o.dial_timeout + o.dial_timeout / 2 + Duration::from_millis(100)
}

fn host(i: usize) -> String {
    format!("http://n{i}:{PORT}")
}

fn name(i: usize) -> String {
    format!("n{i}")
}

// ---------------------------------------------------------------------------------------------
// The ledger: every call and every handler invocation, shared by all hosts of one seed.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Single,
    Stream,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Remote,
    Disconnected,
    Deadline,
    /// The caller's node crashed or restarted while the call was in flight.
    CallerCrashed,
    /// Any other error: a finding.
    Other(String),
    /// Wrong payload, or stream echoes missing, duplicated or out of order: a finding.
    Corrupt(String),
    /// No outcome within deadline + 5 s: a finding.
    Hung,
}

#[derive(Debug)]
struct Call {
    kind: Kind,
    from: usize,
    to: usize,
    deadline: Duration,
    outcome: Option<Outcome>,
    /// Virtual time from issue to outcome, on the caller's clock.
    took: Duration,
}

#[derive(Debug, Default)]
struct Ledger {
    calls: HashMap<u64, Call>,
    handler_runs: HashMap<u64, u32>,
    /// Outcomes reported for a call that had one already. Recorded rather than asserted: a
    /// panic in a task spawned on a turmoil host does not fail the simulation by itself
    /// (tokio keeps it in the dropped join handle; turmoil forwards such panics only under
    /// `--cfg tokio_unstable`), so the driver checks this list.
    second_outcomes: Vec<String>,
}

/// What the driver and all hosts of one seed share.
struct Shared {
    seed: u64,
    n: usize,
    ledger: Mutex<Ledger>,
    managers: Mutex<Vec<Option<Manager>>>,
    handles: Mutex<Vec<Option<tokio::runtime::Handle>>>,
    incarnation: Vec<AtomicU64>,
    next_id: AtomicU64,
    go: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn new(seed: u64, n: usize) -> Self {
        Shared {
            seed,
            n,
            ledger: Mutex::default(),
            managers: Mutex::new(vec![None; n]),
            handles: Mutex::new(vec![None; n]),
            incarnation: (0..n).map(|_| AtomicU64::new(0)).collect(),
            next_id: AtomicU64::new(1),
            go: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    fn manager(&self, i: usize) -> Option<Manager> {
        self.managers.lock().unwrap()[i].clone()
    }

    fn state(&self, a: usize, b: usize) -> Option<State> {
        // `None` also while `b` is not in `a`'s grid (a leave).
        self.manager(a)
            .and_then(|m| m.connection(&host(b)))
            .map(|c| c.state())
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.state(a, b) == Some(State::Connected)
    }

    fn issue(&self, kind: Kind, from: usize, to: usize, deadline: Duration) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.ledger.lock().unwrap().calls.insert(
            id,
            Call {
                kind,
                from,
                to,
                deadline,
                outcome: None,
                took: Duration::ZERO,
            },
        );
        id
    }

    fn finish(&self, id: u64, outcome: Outcome, took: Duration) {
        let mut l = self.ledger.lock().unwrap();
        let call = l.calls.get_mut(&id).unwrap();
        if let Some(first) = &call.outcome {
            let what = format!("call {id} got a second outcome {outcome:?} after {first:?}");
            l.second_outcomes.push(what);
            return;
        }
        call.outcome = Some(outcome);
        call.took = took;
    }

    fn handler_ran(&self, id: u64) {
        *self
            .ledger
            .lock()
            .unwrap()
            .handler_runs
            .entry(id)
            .or_default() += 1;
    }

    /// Node `i` lost its software: its calls without an outcome died with it.
    fn caller_crashed(&self, i: usize) {
        let mut l = self.ledger.lock().unwrap();
        for c in l.calls.values_mut() {
            if c.from == i && c.outcome.is_none() {
                c.outcome = Some(Outcome::CallerCrashed);
            }
        }
        self.managers.lock().unwrap()[i] = None;
        self.handles.lock().unwrap()[i] = None;
    }
}

fn classify(e: &Error) -> Outcome {
    match e {
        Error::Remote(_) => Outcome::Remote,
        Error::Disconnected => Outcome::Disconnected,
        Error::DeadlineExceeded => Outcome::Deadline,
        other => Outcome::Other(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Node software

/// Single payload: call id, handler delay in ms, padding.
fn single_payload(id: u64, delay_ms: u32, pad: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + pad);
    b.put_u64(id);
    b.put_u32(delay_ms);
    b.put_bytes(0xab, pad);
    b.freeze()
}

fn stream_msg(id: u64, seq: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(12);
    b.put_u64(id);
    b.put_u32(seq);
    b.freeze()
}

fn register(m: &Manager, shared: &Arc<Shared>) {
    let s = shared.clone();
    m.register_single(SINGLE, move |p: Bytes| {
        let s = s.clone();
        async move {
            let id = u64::from_be_bytes(p[..8].try_into().unwrap());
            let delay = u32::from_be_bytes(p[8..12].try_into().unwrap());
            s.handler_ran(id);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
            }
            Ok::<_, RemoteError>(p)
        }
    })
    .unwrap();
    let s = shared.clone();
    m.register_stream(
        STREAM,
        None,
        RawStreamHandler::new(
            2,
            2,
            move |_ctx: HandlerCtx, p: Bytes, input: Option<StreamIn>, out: StreamOut| {
                let s = s.clone();
                async move {
                    let id = u64::from_be_bytes(p[..8].try_into().unwrap());
                    s.handler_ran(id);
                    let mut input = input.unwrap();
                    while let Some(msg) = input.recv().await {
                        out.send(msg)
                            .await
                            .map_err(|e| RemoteError::new(e.to_string()))?;
                    }
                    Ok(())
                }
            },
        ),
    )
    .unwrap();
}

/// One node's software: a fresh manager (new instance id) on every (re)start, its listener,
/// and its workload.
async fn node(i: usize, shared: Arc<Shared>) -> turmoil::Result {
    let inc = shared.incarnation[i].fetch_add(1, Ordering::SeqCst);
    let hosts: Vec<String> = (0..shared.n).map(host).collect();
    let opts = options();
    let m = Manager::builder(host(i), hosts)
        .options(opts.clone())
        .token(TOKEN)
        .dialer(SimDialer {
            route: opts.route_path.clone(),
            token: TOKEN.to_owned(),
            timeout: opts.dial_timeout,
        })
        .build()?;
    register(&m, &shared);
    tokio::spawn(serve_sim(PORT, m.clone()));
    m.start();
    shared.managers.lock().unwrap()[i] = Some(m.clone());
    shared.handles.lock().unwrap()[i] = Some(tokio::runtime::Handle::current());

    let mut rng =
        fastrand::Rng::with_seed(shared.seed.wrapping_mul(1_000_003) ^ (i as u64) << 32 ^ inc);
    let in_flight = Arc::new(AtomicUsize::new(0));
    while !shared.go.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while !shared.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.u64(5..120))).await;
        if in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            continue;
        }
        let mut to = rng.usize(0..shared.n - 1);
        if to >= i {
            to += 1;
        }
        // A host that left the grid (for now) gets no calls.
        let Some(conn) = m.connection(&host(to)) else {
            continue;
        };
        let deadline = Duration::from_millis(rng.u64(300..=MAX_DEADLINE.as_millis() as u64));
        let s = shared.clone();
        let guard = InFlight::new(&in_flight);
        if rng.u8(0..3) < 2 {
            // Mostly quick handlers; now and then one slower than the deadline.
            let delay = if rng.u8(0..20) == 0 {
                rng.u32(0..5000)
            } else {
                rng.u32(0..200)
            };
            let pad = rng.usize(0..2048);
            let id = s.issue(Kind::Single, i, to, deadline);
            tokio::spawn(async move {
                let _guard = guard;
                let payload = single_payload(id, delay, pad);
                let t0 = tokio::time::Instant::now();
                let res = tokio::time::timeout(
                    deadline + Duration::from_secs(5),
                    conn.request_with(
                        SINGLE,
                        payload.clone(),
                        &rgrid::CallOptions::new().deadline(deadline),
                    ),
                )
                .await;
                let outcome = match res {
                    Err(_) => Outcome::Hung,
                    Ok(Ok(reply)) if reply == payload => Outcome::Ok,
                    Ok(Ok(_)) => Outcome::Corrupt("single reply differs".to_owned()),
                    Ok(Err(e)) => classify(&e),
                };
                s.finish(id, outcome, t0.elapsed());
            });
        } else {
            let count = rng.u32(1..=6);
            let id = s.issue(Kind::Stream, i, to, deadline);
            tokio::spawn(async move {
                let _guard = guard;
                let t0 = tokio::time::Instant::now();
                let res = tokio::time::timeout(
                    deadline + Duration::from_secs(5),
                    run_stream(&conn, id, count, deadline),
                )
                .await;
                let outcome = res.unwrap_or(Outcome::Hung);
                s.finish(id, outcome, t0.elapsed());
            });
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

/// A two-way echo stream: `count` numbered messages, each echo checked before the next send.
async fn run_stream(conn: &rgrid::Connection, id: u64, count: u32, deadline: Duration) -> Outcome {
    let mut st = match conn
        .open_stream_with(
            STREAM,
            stream_msg(id, u32::MAX),
            &rgrid::CallOptions::new().deadline(deadline),
        )
        .await
    {
        Ok(st) => st,
        Err(e) => return classify(&e),
    };
    for seq in 0..count {
        if let Err(e) = st.send(stream_msg(id, seq)).await {
            return classify(&e);
        }
        match st.next().await {
            Some(Ok(m)) if m == stream_msg(id, seq) => {}
            Some(Ok(m)) => {
                return Outcome::Corrupt(format!("echo {seq}: got {:?}", &m[..]));
            }
            Some(Err(e)) => return classify(&e),
            None => return Outcome::Corrupt(format!("stream ended before echo {seq}")),
        }
    }
    st.close_send();
    match st.next().await {
        None => Outcome::Ok,
        Some(Ok(_)) => Outcome::Corrupt("extra echo".to_owned()),
        Some(Err(e)) => classify(&e),
    }
}

/// Counts a node's calls in flight.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(c: &Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// The driver

/// One directed connection being watched for leaving `Connected` after a fault.
#[derive(Debug)]
struct Watch {
    from: usize,
    to: usize,
    since: Duration,
    detected: Option<Duration>,
}

#[derive(Debug, Default)]
struct Figures {
    /// (fault label, detection time) for faults long enough to require detection.
    detections: Vec<(String, Duration)>,
    /// (fault label, reconnect time).
    reconnects: Vec<(String, Duration)>,
    faults: Vec<String>,
}

struct Driver<'a> {
    sim: Sim<'a>,
    shared: Arc<Shared>,
    watches: Vec<Watch>,
    fig: Figures,
    opts: Options,
}

impl Driver<'_> {
    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn step(&mut self) {
        self.sim
            .step()
            .unwrap_or_else(|e| panic!("seed {}: simulation failed: {e}", self.shared.seed));
        let now = self.now();
        for w in &mut self.watches {
            if w.detected.is_none() && !self.shared.connected(w.from, w.to) {
                w.detected = Some(now - w.since);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now() + d;
        while self.now() < until {
            self.step();
        }
    }

    /// Steps until `cond` holds or `limit` passes; returns the time it took.
    fn run_until(&mut self, limit: Duration, cond: impl Fn(&Shared) -> bool) -> Option<Duration> {
        let t0 = self.now();
        loop {
            if cond(&self.shared) {
                return Some(self.now() - t0);
            }
            if self.now() - t0 > limit {
                return None;
            }
            self.step();
        }
    }

    fn all_connected(s: &Shared) -> bool {
        (0..s.n).all(|a| (0..s.n).all(|b| a == b || s.connected(a, b)))
    }

    fn pair_connected(s: &Shared, a: usize, b: usize) -> bool {
        s.connected(a, b) && s.connected(b, a)
    }

    fn watch(&mut self, pairs: &[(usize, usize)]) {
        let now = self.now();
        self.watches = pairs
            .iter()
            .flat_map(|&(a, b)| [(a, b), (b, a)])
            .filter(|&(a, b)| self.shared.connected(a, b))
            .map(|(from, to)| Watch {
                from,
                to,
                since: now,
                detected: None,
            })
            .collect();
    }

    /// Closes the watches of a fault that lasted `held`: if it lasted past the bound (plus a
    /// tick of slack), every watched end must have left `Connected` within the bound.
    fn end_watch(&mut self, label: &str, held: Duration) {
        let bound = detect_bound(&self.opts);
        let slack = 3 * TICK;
        let seed = self.shared.seed;
        for w in std::mem::take(&mut self.watches) {
            match w.detected {
                Some(d) => {
                    self.fig.detections.push((label.to_owned(), d));
                    assert!(
                        d <= bound + slack,
                        "seed {seed}: {label}: n{}->n{} detected after {d:?} > bound {bound:?}",
                        w.from,
                        w.to
                    );
                }
                None => assert!(
                    held <= bound + slack,
                    "seed {seed}: {label}: n{}->n{} still Connected after {held:?} (bound {bound:?})",
                    w.from,
                    w.to
                ),
            }
        }
    }

    /// After a heal: waits until the given pairs are connected again and records the time.
    fn reconnect(&mut self, label: &str, pairs: &[(usize, usize)]) {
        let bound = reconnect_bound(&self.opts);
        let limit = bound + Duration::from_secs(10);
        let pairs = pairs.to_vec();
        let took = self.run_until(limit, |s| {
            pairs.iter().all(|&(a, b)| Self::pair_connected(s, a, b))
        });
        let seed = self.shared.seed;
        let took = took.unwrap_or_else(|| {
            panic!("seed {seed}: {label}: pairs {pairs:?} not reconnected within {limit:?}")
        });
        self.fig.reconnects.push((label.to_owned(), took));
        assert!(
            took <= bound,
            "seed {seed}: {label}: reconnected after {took:?} > bound {bound:?}"
        );
    }

    /// Whether both ends of every pair went down during the fault (then "reconnected" means
    /// a new session, not an undetected old one).
    fn all_detected(watches: &[Watch]) -> bool {
        !watches.is_empty() && watches.iter().all(|w| w.detected.is_some())
    }

    fn fault(&mut self, rng: &mut fastrand::Rng) {
        let n = self.shared.n;
        let a = rng.usize(0..n);
        let mut b = rng.usize(0..n - 1);
        if b >= a {
            b += 1;
        }
        let (ha, hb) = (name(a), name(b));
        let bound = detect_bound(&self.opts);
        match rng.u8(0..8) {
            0 | 1 => {
                let oneway = rng.bool();
                let held = Duration::from_millis(rng.u64(500..6000));
                let label = format!(
                    "partition{} n{a}{}n{b} {held:?}",
                    if oneway { "-oneway" } else { "" },
                    if oneway { "->" } else { "<->" }
                );
                self.watch(&[(a, b)]);
                if oneway {
                    self.sim.partition_oneway(ha.as_str(), hb.as_str());
                } else {
                    self.sim.partition(ha.as_str(), hb.as_str());
                }
                self.run_for(held);
                let detected = Self::all_detected(&self.watches);
                self.end_watch(&label, held);
                if oneway {
                    self.sim.repair_oneway(ha.as_str(), hb.as_str());
                } else {
                    self.sim.repair(ha.as_str(), hb.as_str());
                }
                if detected {
                    self.reconnect(&label, &[(a, b)]);
                }
                self.fig.faults.push(label);
            }
            2 => {
                // Longer than the keepalive window: the connection must be declared dead and
                // the late frames of the old connection must not disturb the new one.
                let held = bound + Duration::from_millis(rng.u64(200..3000));
                let label = format!("hold n{a}<->n{b} {held:?}");
                self.watch(&[(a, b)]);
                self.sim.hold(ha.as_str(), hb.as_str());
                self.run_for(held);
                let detected = Self::all_detected(&self.watches);
                self.end_watch(&label, held);
                self.sim.release(ha.as_str(), hb.as_str());
                if detected {
                    self.reconnect(&label, &[(a, b)]);
                }
                self.fig.faults.push(label);
            }
            3 => {
                // Power loss: nothing more leaves the node (no FIN), then restart.
                let down = Duration::from_millis(rng.u64(500..6000));
                let label = format!("crash n{a} {down:?}");
                let others: Vec<usize> = (0..n).filter(|&j| j != a).collect();
                let pairs: Vec<(usize, usize)> = others.iter().map(|&j| (j, a)).collect();
                self.watch(&pairs);
                // Only the survivors' ends are watched: the crashed end is gone.
                self.watches.retain(|w| w.from != a);
                for &j in &others {
                    self.sim.partition(ha.as_str(), name(j).as_str());
                }
                self.sim.crash(ha.as_str());
                self.shared.caller_crashed(a);
                self.run_for(down);
                self.end_watch(&label, down);
                for &j in &others {
                    self.sim.repair(ha.as_str(), name(j).as_str());
                }
                self.sim.bounce(ha.as_str());
                self.reconnect(&label, &pairs);
                self.fig.faults.push(label);
            }
            4 => {
                // Restart: the old process's sockets are closed (FIN), a new instance starts.
                let label = format!("restart n{a}");
                self.sim.bounce(ha.as_str());
                self.shared.caller_crashed(a);
                let pairs: Vec<(usize, usize)> =
                    (0..n).filter(|&j| j != a).map(|j| (j, a)).collect();
                // The manager registers itself on its first poll.
                self.step();
                self.reconnect(&label, &pairs);
                self.fig.faults.push(label);
            }
            7 => {
                // Membership: node a leaves the grid (every other node removes it, it removes
                // them) under load, then joins again. Calls in flight between them end
                // (Disconnected); no new call goes to a host that is not in the grid.
                let away = Duration::from_millis(rng.u64(500..4000));
                let label = format!("leave n{a} {away:?}");
                let others: Vec<usize> = (0..n).filter(|&j| j != a).collect();
                let pairs: Vec<(usize, usize)> = others.iter().map(|&j| (j, a)).collect();
                let change = |s: &Shared, add: bool| {
                    for &j in &others {
                        for (x, y) in [(j, a), (a, j)] {
                            if let Some(m) = s.manager(x) {
                                let res = if add {
                                    m.add_host(&host(y)).map(|_| ())
                                } else {
                                    m.remove_host(&host(y))
                                };
                                assert!(res.is_ok(), "seed {}: n{x} {add}: {res:?}", s.seed);
                            }
                        }
                    }
                };
                change(&self.shared, false);
                self.run_for(away);
                change(&self.shared, true);
                self.reconnect(&label, &pairs);
                self.fig.faults.push(label);
            }
            6 => {
                // A latency spike well inside the keepalive window (round trip below the
                // write timeout): the connection must ride it out, no false detection.
                let latency = Duration::from_millis(rng.u64(50..=150));
                let held = Duration::from_millis(rng.u64(1000..6000));
                let label = format!("latency n{a}<->n{b} {latency:?} for {held:?}");
                // Settle first. Turmoil drops segments sent into a partition instead of
                // retransmitting them after the heal, so a short, undetected earlier fault
                // can leave the pair without pongs for a while: such a connection must drop
                // now, within the keepalive window, not be blamed on the spike. Afterwards the
                // pair has a pong from the last interval or a fresh session.
                let settle = 2 * self.opts.ping_interval + self.opts.write_timeout;
                self.run_for(settle);
                let limit = reconnect_bound(&self.opts) + Duration::from_secs(10);
                let seed = self.shared.seed;
                self.run_until(limit, |s| Self::pair_connected(s, a, b))
                    .unwrap_or_else(|| panic!("seed {seed}: n{a}<->n{b} down before {label}"));
                self.watch(&[(a, b)]);
                self.sim.set_link_latency(ha.as_str(), hb.as_str(), latency);
                self.run_for(held);
                self.sim
                    .set_link_latency(ha.as_str(), hb.as_str(), Duration::from_millis(1));
                self.sim.set_link_max_message_latency(
                    ha.as_str(),
                    hb.as_str(),
                    Duration::from_millis(5),
                );
                for w in std::mem::take(&mut self.watches) {
                    assert!(
                        w.detected.is_none(),
                        "seed {seed}: {label}: n{}->n{} dropped after {:?}",
                        w.from,
                        w.to,
                        w.detected
                    );
                }
                self.fig.faults.push(label);
            }
            _ => {
                let total = Duration::from_millis(rng.u64(3000..10_000));
                let mut flips = 0;
                let until = self.now() + total;
                let label = format!("flap n{a}<->n{b} over {total:?}");
                while self.now() < until {
                    let held = Duration::from_millis(rng.u64(500..3000));
                    self.watch(&[(a, b)]);
                    self.sim.partition(ha.as_str(), hb.as_str());
                    self.run_for(held);
                    let detected = Self::all_detected(&self.watches);
                    self.end_watch(&label, held);
                    self.sim.repair(ha.as_str(), hb.as_str());
                    if detected {
                        self.reconnect(&label, &[(a, b)]);
                    }
                    self.run_for(Duration::from_millis(rng.u64(500..3000)));
                    flips += 1;
                }
                self.fig.faults.push(format!("{label} {flips}x"));
            }
        }
    }
}

#[derive(Debug, Default)]
struct SeedReport {
    nodes: usize,
    calls: usize,
    outcomes: HashMap<(Kind, Outcome), usize>,
    fig: Figures,
    max_overshoot: Duration,
    virtual_secs: f64,
}

fn run_seed(seed: u64) -> SeedReport {
    // The library's jitter and websocket masks come from fastrand's thread-local RNG, and
    // every host runs on this thread.
    fastrand::seed(seed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = rng.usize(3..=5);
    let shared = Arc::new(Shared::new(seed, n));
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(3600))
        .tick_duration(TICK)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .rng_seed(seed)
        .build();
    for i in 0..n {
        let s = shared.clone();
        sim.host(name(i), move || node(i, s.clone()));
    }
    let opts = options();
    let mut d = Driver {
        sim,
        shared: shared.clone(),
        watches: Vec::new(),
        fig: Figures::default(),
        opts: opts.clone(),
    };
    d.run_until(Duration::from_secs(10), Driver::all_connected)
        .unwrap_or_else(|| panic!("seed {seed}: grid never connected"));
    // Baseline task counts: connected, no calls yet.
    d.run_for(Duration::from_millis(200));
    let baseline = task_counts(&shared);
    shared.go.store(true, Ordering::SeqCst);

    // Faults one after another, with calm gaps.
    let chaos = Duration::from_secs(rng.u64(20..40));
    let chaos_end = d.now() + chaos;
    while d.now() < chaos_end {
        d.fault(&mut rng);
        d.run_for(Duration::from_millis(rng.u64(200..2000)));
    }

    // Everything is healed by now (every fault heals itself, at least 200 ms ago); all pairs
    // must be up within one reconnect bound of the last heal.
    let limit = reconnect_bound(&opts);
    d.run_until(limit, Driver::all_connected)
        .unwrap_or_else(|| {
            panic!(
                "seed {seed}: not all pairs connected {limit:?} after the last heal: {}",
                states(&shared)
            )
        });
    // Calm load, then stop and let every call end.
    d.run_for(Duration::from_secs(2));
    shared.stop.store(true, Ordering::SeqCst);
    d.run_for(MAX_DEADLINE + Duration::from_secs(2));

    check_invariants(&mut d, &baseline)
}

fn states(s: &Shared) -> String {
    let mut out = String::new();
    for a in 0..s.n {
        for b in 0..s.n {
            if a != b {
                let _ = write!(out, "n{a}->n{b}={:?} ", s.state(a, b));
            }
        }
    }
    out
}

fn task_counts(s: &Shared) -> Vec<usize> {
    s.handles
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.as_ref().map_or(0, |h| h.metrics().num_alive_tasks()))
        .collect()
}

fn check_invariants(d: &mut Driver<'_>, baseline: &[usize]) -> SeedReport {
    let s = d.shared.clone();
    let seed = s.seed;
    let mut report = SeedReport {
        nodes: s.n,
        virtual_secs: d.now().as_secs_f64(),
        ..SeedReport::default()
    };

    // No mux left open, every pair connected (retrying briefly: cleanup is asynchronous).
    let clean = |s: &Shared| {
        (0..s.n).all(|a| {
            let m = s.manager(a).unwrap();
            m.connections().all(|c| {
                let st = c.stats();
                c.state() == State::Connected && st.incoming_muxes == 0 && st.outgoing_muxes == 0
            })
        })
    };
    if d.run_until(Duration::from_secs(2), clean).is_none() {
        let mut detail = String::new();
        for a in 0..s.n {
            for c in s.manager(a).unwrap().connections() {
                let st = c.stats();
                let _ = write!(
                    detail,
                    "\n  n{a}->{}: {:?} in={} out={}",
                    c.remote(),
                    c.state(),
                    st.incoming_muxes,
                    st.outgoing_muxes
                );
            }
        }
        panic!("seed {seed}: muxes left open or pairs down after quiescence:{detail}");
    }
    // Tasks back to the baseline (a restarted node has the same set of tasks).
    let tasks = task_counts(&s);
    assert_eq!(
        tasks, baseline,
        "seed {seed}: alive tasks per node {tasks:?} != baseline {baseline:?}"
    );

    let l = s.ledger.lock().unwrap();
    report.calls = l.calls.len();
    // Exactly one outcome per call: no second one (here), and none missing (below).
    assert!(
        l.second_outcomes.is_empty(),
        "seed {seed}: {} calls got a second outcome, first: {:?}",
        l.second_outcomes.len(),
        &l.second_outcomes[..l.second_outcomes.len().min(3)]
    );
    let slack = 3 * TICK;
    for (id, c) in &l.calls {
        let outcome = c
            .outcome
            .clone()
            .unwrap_or_else(|| panic!("seed {seed}: call {id} {c:?} has no outcome"));
        match &outcome {
            Outcome::Other(_) | Outcome::Corrupt(_) | Outcome::Hung => {
                panic!("seed {seed}: call {id} {c:?} ended badly")
            }
            _ => {}
        }
        assert!(
            c.to < s.n && c.to != c.from,
            "seed {seed}: bad target in {c:?}"
        );
        let runs = l.handler_runs.get(id).copied().unwrap_or(0);
        assert!(
            runs <= 1,
            "seed {seed}: handler ran {runs} times for call {id} {c:?}"
        );
        if outcome == Outcome::Ok {
            assert_eq!(
                runs, 1,
                "seed {seed}: call {id} succeeded without a handler run"
            );
        }
        if outcome != Outcome::CallerCrashed {
            let over = c.took.saturating_sub(c.deadline);
            report.max_overshoot = report.max_overshoot.max(over);
            assert!(
                over <= slack,
                "seed {seed}: call {id} {c:?} outlived its deadline by {over:?}"
            );
        }
        *report.outcomes.entry((c.kind, outcome)).or_default() += 1;
    }
    let ok = |k| report.outcomes.get(&(k, Outcome::Ok)).copied().unwrap_or(0);
    assert!(
        ok(Kind::Single) > 0 && ok(Kind::Stream) > 0,
        "seed {seed}: no successful calls of some kind: {:?}",
        report.outcomes
    );
    drop(l);
    report.fig = std::mem::take(&mut d.fig);
    report
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("RGRID_SIM_SEED") {
        return vec![s.parse().expect("RGRID_SIM_SEED must be a number")];
    }
    if let Ok(n) = std::env::var("RGRID_SIM_SEEDS") {
        let n: u64 = n.parse().expect("RGRID_SIM_SEEDS must be a number");
        let base: u64 = std::env::var("RGRID_SIM_SEED_BASE")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        return (base..base + n).collect();
    }
    CI_SEEDS.collect()
}

fn stats(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "n=0".to_owned();
    }
    v.sort();
    let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "n={} min={:?} p50={:?} p99={:?} max={:?}",
        v.len(),
        v[0],
        pct(0.5),
        pct(0.99),
        v[v.len() - 1]
    )
}

#[test]
fn fault_simulation() {
    let opts = options();
    let seeds = seeds();
    let mut detections = Vec::new();
    let mut reconnects = Vec::new();
    let mut totals: HashMap<(Kind, Outcome), usize> = HashMap::new();
    let mut calls = 0;
    let mut max_overshoot = Duration::ZERO;
    let wall = std::time::Instant::now();
    for &seed in &seeds {
        let t0 = std::time::Instant::now();
        let r = std::panic::catch_unwind(|| run_seed(seed)).unwrap_or_else(|e| {
            eprintln!("sim: seed {seed} FAILED; reproduce with RGRID_SIM_SEED={seed}");
            std::panic::resume_unwind(e)
        });
        let det: Vec<Duration> = r.fig.detections.iter().map(|x| x.1).collect();
        let rec: Vec<Duration> = r.fig.reconnects.iter().map(|x| x.1).collect();
        let mut outcomes: Vec<_> = r.outcomes.iter().collect();
        outcomes.sort();
        println!(
            "seed {seed}: {} nodes, {:.0} s virtual in {:.1} s, {} calls, max overshoot {:?}\n  faults: {}\n  detection: {}\n  reconnect: {}\n  outcomes: {outcomes:?}",
            r.nodes,
            r.virtual_secs,
            t0.elapsed().as_secs_f64(),
            r.calls,
            r.max_overshoot,
            r.fig.faults.join(", "),
            stats(det.clone()),
            stats(rec.clone()),
        );
        detections.extend(det);
        reconnects.extend(rec);
        calls += r.calls;
        max_overshoot = max_overshoot.max(r.max_overshoot);
        for (k, v) in r.outcomes {
            *totals.entry(k).or_default() += v;
        }
    }
    let mut totals: Vec<_> = totals.into_iter().collect();
    totals.sort();
    println!(
        "sim summary: {} seeds in {:.1} s, {calls} calls, 0 lost, 0 duplicate handler runs, max deadline overshoot {max_overshoot:?}\n  detection (bound {:?}): {}\n  reconnect (bound {:?}): {}\n  outcomes: {totals:?}",
        seeds.len(),
        wall.elapsed().as_secs_f64(),
        detect_bound(&opts),
        stats(detections),
        reconnect_bound(&opts),
        stats(reconnects),
    );
}
