//! `rgrid` / `rgrid demo`: a local grid of several nodes in this process over real loopback
//! websockets, a mixed workload with a live progress display, one connection killed and
//! restored midway, and a report.
//!
//! The killed connection is drained first (no new calls start on it, those in flight finish),
//! so the report can show a reconnect and still zero errors: that is how an operator takes
//! a link down on purpose. Calls on every other pair keep running meanwhile.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rgrid::test_util::LocalGrid;
use rgrid::typed::SingleHandler;
use rgrid::{Connection, HandlerId, Manager, RemoteError, StreamHandler, StreamIn, StreamOut};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::node::Failure;

/// Flags of `rgrid demo`.
#[derive(Args, Debug, Clone)]
pub(crate) struct DemoArgs {
    /// Nodes in the local grid (2 to 16).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=16))]
    nodes: u16,
    /// Seconds of mixed load (the connection kill happens halfway).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Print the report as JSON on stdout (and no progress display).
    #[arg(long)]
    json: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            nodes: 4,
            duration: 5.0,
            json: false,
        }
    }
}

/// A disk-info query, like the small metadata calls between storage nodes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DiskInfoRequest {
    disk: String,
    metrics: bool,
}

/// The answer to a [`DiskInfoRequest`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DiskInfo {
    disk: String,
    total: u64,
    free: u64,
    used_inodes: u64,
    healing: bool,
    endpoint: String,
}

const ECHO: HandlerId = HandlerId::TEST;
static DISK_INFO: SingleHandler<DiskInfoRequest, DiskInfo> = SingleHandler::new(HandlerId::TEST2);
/// Messages each way in the stream shapes.
const STREAM_MESSAGES: usize = 10;
/// Deadline of every demo call: nothing may hang the demo.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The kinds of call the workload makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Single,
    Typed,
    StreamRequest,
    StreamResponses,
    StreamTwoway,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Single,
        Kind::Typed,
        Kind::StreamRequest,
        Kind::StreamResponses,
        Kind::StreamTwoway,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Typed => "typed",
            Kind::StreamRequest => "stream-request",
            Kind::StreamResponses => "stream-responses",
            Kind::StreamTwoway => "stream-twoway",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Single => "512 B echo",
            Kind::Typed => "DiskInfo msgpack",
            Kind::StreamRequest => "10 msgs in, 1 out",
            Kind::StreamResponses => "1 in, 10 msgs out",
            Kind::StreamTwoway => "10 msgs each way",
        }
    }

    fn subroute(self) -> Option<&'static str> {
        match self {
            Kind::Single | Kind::Typed => None,
            Kind::StreamRequest => Some("demo/request"),
            Kind::StreamResponses => Some("demo/responses"),
            Kind::StreamTwoway => Some("demo/twoway"),
        }
    }

    /// Concurrent callers of this kind.
    fn workers(self) -> usize {
        match self {
            Kind::Single | Kind::Typed => 8,
            _ => 2,
        }
    }
}

fn send_err(e: rgrid::Error) -> RemoteError {
    RemoteError::new(e.to_string())
}

/// Registers the demo's handlers on one node.
fn register(index: usize, m: &Manager) -> Result<(), rgrid::Error> {
    m.register_single(ECHO, |payload: Bytes| async move { Ok(payload) })?;
    let endpoint = m.host().to_owned();
    DISK_INFO.register(m, None, move |req: DiskInfoRequest| {
        let endpoint = endpoint.clone();
        async move {
            Ok(DiskInfo {
                total: 4 << 40,
                free: (3 << 40) + index as u64,
                used_inodes: if req.metrics { 1_234_567 } else { 0 },
                healing: false,
                disk: req.disk,
                endpoint,
            })
        }
    })?;
    let request = StreamHandler::new(
        1,
        1,
        |_, _, input: Option<StreamIn>, out: StreamOut| async move {
            let mut input = input.ok_or_else(|| RemoteError::new("no input"))?;
            let (mut n, mut bytes) = (0u64, 0u64);
            while let Some(msg) = input.recv().await {
                n += 1;
                bytes += msg.len() as u64;
            }
            out.send(Bytes::from(format!("{n} messages, {bytes} bytes")))
                .await
                .map_err(send_err)
        },
    );
    let responses = StreamHandler::new(0, 1, |_, payload: Bytes, _, out: StreamOut| async move {
        for _ in 0..STREAM_MESSAGES {
            out.send(payload.clone()).await.map_err(send_err)?;
        }
        Ok(())
    });
    let twoway = StreamHandler::new(
        1,
        1,
        |_, _, input: Option<StreamIn>, out: StreamOut| async move {
            let mut input = input.ok_or_else(|| RemoteError::new("no input"))?;
            while let Some(msg) = input.recv().await {
                out.send(msg).await.map_err(send_err)?;
            }
            Ok(())
        },
    );
    for (kind, handler) in [
        (Kind::StreamRequest, request),
        (Kind::StreamResponses, responses),
        (Kind::StreamTwoway, twoway),
    ] {
        m.register_stream(ECHO, kind.subroute(), handler)?;
    }
    Ok(())
}

/// One call of `kind` on `conn`; `Err` carries the error text.
async fn one_call(kind: Kind, conn: &Connection, payload: &Bytes) -> Result<(), String> {
    let e = |e: rgrid::Error| e.to_string();
    match kind {
        Kind::Single => {
            let got = conn
                .request_with_deadline(ECHO, payload.clone(), CALL_DEADLINE)
                .await
                .map_err(e)?;
            if got != *payload {
                return Err("echo answered different bytes".into());
            }
        }
        Kind::Typed => {
            let req = DiskInfoRequest {
                disk: "/mnt/disk1".into(),
                metrics: true,
            };
            let info = DISK_INFO
                .call_with_deadline(conn, &req, CALL_DEADLINE)
                .await
                .map_err(e)?;
            if info.disk != req.disk || info.endpoint != conn.remote() {
                return Err(format!("unexpected disk info {info:?}"));
            }
        }
        Kind::StreamRequest | Kind::StreamResponses | Kind::StreamTwoway => {
            let sub = conn.subroute(kind.subroute().unwrap_or_default());
            let mut stream = sub
                .open_stream_with_deadline(ECHO, payload.clone(), CALL_DEADLINE)
                .await
                .map_err(e)?;
            let mut received = 0;
            if kind == Kind::StreamResponses {
                while let Some(msg) = stream.next().await {
                    msg.map_err(e)?;
                    received += 1;
                }
            } else {
                for _ in 0..STREAM_MESSAGES {
                    stream.send(payload.clone()).await.map_err(e)?;
                    if kind == Kind::StreamTwoway {
                        match stream.next().await {
                            Some(msg) if msg.as_ref().map_err(|e| e.to_string())? == payload => {
                                received += 1;
                            }
                            Some(_) => return Err("echo answered different bytes".into()),
                            None => return Err("stream ended early".into()),
                        }
                    }
                }
                stream.close_send();
                while let Some(msg) = stream.next().await {
                    msg.map_err(e)?;
                    received += 1;
                }
            }
            let want = if kind == Kind::StreamRequest {
                1
            } else {
                STREAM_MESSAGES
            };
            if received != want {
                return Err(format!("{received} messages received, want {want}"));
            }
        }
    }
    Ok(())
}

/// Live counters of one kind.
#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    errors: AtomicU64,
}

/// The pair of nodes whose connection gets killed, and its drain state.
struct Victim {
    a: usize,
    b: usize,
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Victim {
    fn is(&self, from: usize, to: usize) -> bool {
        (from, to) == (self.a, self.b) || (from, to) == (self.b, self.a)
    }
}

/// What all workers share.
struct Shared {
    grid: LocalGrid,
    counters: Vec<Counters>,
    victim: Victim,
    first_errors: Mutex<Vec<String>>,
    end: Instant,
}

impl Shared {
    /// A random ordered pair of distinct nodes whose connection is usable now; registers
    /// the call on the victim pair so the drain can wait for it.
    fn pick_pair(&self) -> (usize, usize, bool) {
        let n = self.grid.managers.len();
        loop {
            let from = fastrand::usize(..n);
            let to = (from + 1 + fastrand::usize(..n - 1)) % n;
            if !self.victim.is(from, to) {
                return (from, to, false);
            }
            self.victim.in_flight.fetch_add(1, Ordering::SeqCst);
            if !self.victim.draining.load(Ordering::SeqCst) {
                return (from, to, true);
            }
            self.victim.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Latency histogram in microseconds (1 µs to 60 s, 3 significant digits).
fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 60_000_000, 3) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts.
        Err(_) => unreachable!("valid histogram bounds"),
    }
}

async fn worker(shared: Arc<Shared>, kind: Kind) -> Histogram<u64> {
    let mut hist = histogram();
    let payload = Bytes::from((0..512).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
    let counters = &shared.counters[kind as usize];
    while Instant::now() < shared.end {
        let (from, to, on_victim) = shared.pick_pair();
        let conn = shared.grid.conn(from, to);
        let start = Instant::now();
        let res = one_call(kind, &conn, &payload).await;
        let took = start.elapsed();
        if on_victim {
            shared.victim.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        match res {
            Ok(()) => {
                hist.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = shared
                    .first_errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if first.len() < 5 {
                    first.push(format!(
                        "{} node{}→node{}: {e}",
                        kind.name(),
                        from + 1,
                        to + 1
                    ));
                }
            }
        }
    }
    hist
}

/// The kill and the restore of the victim connection.
#[derive(Serialize, Debug, Default, Clone)]
struct KillReport {
    /// The nodes whose connection was killed (1-based).
    nodes: [usize; 2],
    /// Seconds into the run when it was killed.
    killed_at_s: f64,
    /// Milliseconds from the kill until both sides were connected again.
    restored_after_ms: f64,
}

async fn kill_and_restore(shared: &Shared, started: Instant) -> Result<KillReport, String> {
    let v = &shared.victim;
    v.draining.store(true, Ordering::SeqCst);
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        while v.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    if drained.is_err() {
        v.draining.store(false, Ordering::SeqCst);
        return Err("calls on the victim connection did not finish within 15 s".into());
    }
    let (ab, ba) = (shared.grid.conn(v.a, v.b), shared.grid.conn(v.b, v.a));
    let before = (ab.stats().reconnects, ba.stats().reconnects);
    let killed = Instant::now();
    ab.kill();
    let back = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let up = ab.stats().reconnects > before.0
                && ba.stats().reconnects > before.1
                && ab.state() == rgrid::State::Connected
                && ba.state() == rgrid::State::Connected;
            if up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    v.draining.store(false, Ordering::SeqCst);
    back.map_err(|_| "the killed connection did not come back within 15 s".to_owned())?;
    Ok(KillReport {
        nodes: [v.a + 1, v.b + 1],
        killed_at_s: killed.duration_since(started).as_secs_f64(),
        restored_after_ms: killed.elapsed().as_secs_f64() * 1e3,
    })
}

/// One row of the report.
#[derive(Serialize, Debug, Clone)]
struct KindReport {
    kind: &'static str,
    what: &'static str,
    calls: u64,
    errors: u64,
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// The demo's report (also its JSON form).
#[derive(Serialize, Debug, Clone)]
struct Report {
    nodes: usize,
    connections: usize,
    duration_s: f64,
    kinds: Vec<KindReport>,
    total_calls: u64,
    total_ops_per_sec: f64,
    reconnects: u64,
    kill: Option<KillReport>,
    errors: u64,
    first_errors: Vec<String>,
}

/// Runs the demo and prints its report.
pub(crate) async fn run(args: DemoArgs) -> Result<(), Failure> {
    let duration = Duration::try_from_secs_f64(args.duration)
        .ok()
        .filter(|d| *d >= Duration::from_millis(200) && *d <= Duration::from_secs(24 * 3600))
        .ok_or_else(|| Failure::Local("--duration needs 0.2 to 86400 seconds".into()))?;
    let nodes = usize::from(args.nodes);
    let progress = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(duration.as_millis() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} [{bar:30}] {msg}")
            .map_err(|e| Failure::Local(e.to_string()))?
            .progress_chars("=> "),
    );
    if !args.json {
        println!(
            "rgrid demo: {nodes} nodes in this process, one websocket per pair over loopback, \
             {:.1} s of mixed load",
            duration.as_secs_f64()
        );
    }

    let registration = Mutex::new(Ok(()));
    let grid = LocalGrid::start(nodes, |i, m| {
        if let Err(e) = register(i, m) {
            *registration
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Err(e);
        }
    })
    .await?;
    if let Err(e) = registration
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        grid.shutdown().await;
        return Err(e.into());
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        grid,
        counters: Kind::ALL.iter().map(|_| Counters::default()).collect(),
        victim: Victim {
            a: 0,
            b: 1,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        },
        first_errors: Mutex::new(Vec::new()),
        end: started + duration,
    });
    let mut workers = Vec::new();
    for kind in Kind::ALL {
        for _ in 0..kind.workers() {
            let s = shared.clone();
            workers.push((kind, tokio::spawn(worker(s, kind))));
        }
    }

    // Progress until halfway, the kill and restore, then progress until the end.
    let kill = {
        let ticker = tick_progress(&shared, &progress, started);
        tokio::pin!(ticker);
        let mut kill = None;
        let halfway = tokio::time::sleep_until(started + duration / 2);
        tokio::pin!(halfway);
        loop {
            tokio::select! {
                () = &mut ticker => break,
                () = &mut halfway, if kill.is_none() => {
                    let v = &shared.victim;
                    progress.println(format!(
                        "  killing the connection node{} ↔ node{} (after draining its calls)",
                        v.a + 1, v.b + 1
                    ));
                    let k = kill_and_restore(&shared, started).await;
                    if let Ok(k) = &k {
                        progress.println(format!(
                            "  node{} ↔ node{} reconnected after {:.0} ms",
                            k.nodes[0], k.nodes[1], k.restored_after_ms
                        ));
                    }
                    kill = Some(k);
                }
            }
        }
        kill
    };

    let mut hists: Vec<Histogram<u64>> = Kind::ALL.iter().map(|_| histogram()).collect();
    for (kind, w) in workers {
        match w.await {
            Ok(h) => {
                // Same bounds on both sides: adding cannot fail.
                let _ = hists[kind as usize].add(&h);
            }
            Err(e) => {
                progress.finish_and_clear();
                shared.grid.shutdown().await;
                return Err(Failure::Local(format!("a demo worker failed: {e}")));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let reconnects = reconnects(&shared.grid);
    let kinds: Vec<KindReport> = Kind::ALL
        .iter()
        .map(|&kind| {
            let h = &hists[kind as usize];
            let c = &shared.counters[kind as usize];
            let calls = c.ok.load(Ordering::Relaxed);
            KindReport {
                kind: kind.name(),
                what: kind.what(),
                calls,
                errors: c.errors.load(Ordering::Relaxed),
                ops_per_sec: calls as f64 / elapsed,
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            }
        })
        .collect();
    let kill = match kill {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            first_errors_push(&shared, e);
            None
        }
        None => {
            first_errors_push(&shared, "the run ended before the connection kill".into());
            None
        }
    };
    let first_errors = shared
        .first_errors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let total_calls: u64 = kinds.iter().map(|k| k.calls).sum();
    let errors = kinds.iter().map(|k| k.errors).sum::<u64>() + u64::from(kill.is_none());
    let report = Report {
        nodes,
        connections: nodes * (nodes - 1) / 2,
        duration_s: elapsed,
        total_ops_per_sec: total_calls as f64 / elapsed,
        total_calls,
        kinds,
        reconnects,
        kill,
        errors,
        first_errors,
    };
    shared.grid.shutdown().await;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Local(format!("json: {e}")))?;
        println!("{text}");
    } else {
        print_report(&report).map_err(|e| Failure::Local(format!("stdout: {e}")))?;
    }
    if report.errors > 0 {
        return Err(Failure::Local(format!(
            "the demo saw {} errors",
            report.errors
        )));
    }
    Ok(())
}

fn first_errors_push(shared: &Shared, e: String) {
    let mut first = shared
        .first_errors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    first.insert(0, e);
}

/// Reconnects of every pair (counted once, on the dialing side).
fn reconnects(grid: &LocalGrid) -> u64 {
    grid.managers
        .iter()
        .flat_map(Manager::connections)
        .filter(|c| c.dials())
        .map(|c| c.stats().reconnects)
        .sum()
}

/// Updates the progress line every 100 ms until the workload's end.
async fn tick_progress(shared: &Shared, progress: &ProgressBar, started: Instant) {
    let mut last = (started, 0u64);
    while Instant::now() < shared.end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        let calls: u64 = shared
            .counters
            .iter()
            .map(|c| c.ok.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = shared
            .counters
            .iter()
            .map(|c| c.errors.load(Ordering::Relaxed))
            .sum();
        let rate = (calls - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, calls);
        progress.set_position(now.duration_since(started).as_millis() as u64);
        progress.set_message(format!(
            "{} calls, {}/s, {} errors, {} reconnects",
            thousands(calls),
            thousands(rate as u64),
            errors,
            reconnects(&shared.grid)
        ));
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_report(r: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out)?;
    writeln!(
        out,
        "{:<17} {:<18} {:>11} {:>10} {:>8} {:>8} {:>9} {:>7}",
        "kind", "shape", "calls", "ops/s", "p50 µs", "p99 µs", "max µs", "errors"
    )?;
    for k in &r.kinds {
        writeln!(
            out,
            "{:<17} {:<18} {:>11} {:>10} {:>8} {:>8} {:>9} {:>7}",
            k.kind,
            k.what,
            thousands(k.calls),
            thousands(k.ops_per_sec as u64),
            thousands(k.p50_us),
            thousands(k.p99_us),
            thousands(k.max_us),
            k.errors
        )?;
    }
    writeln!(
        out,
        "{:<17} {:<18} {:>11} {:>10}",
        "total",
        "",
        thousands(r.total_calls),
        thousands(r.total_ops_per_sec as u64)
    )?;
    writeln!(out)?;
    match &r.kill {
        Some(k) => writeln!(
            out,
            "connection node{} ↔ node{} killed at {:.1} s, reconnected after {:.0} ms",
            k.nodes[0], k.nodes[1], k.killed_at_s, k.restored_after_ms
        )?,
        None => writeln!(out, "the connection kill did not complete")?,
    }
    writeln!(
        out,
        "{} nodes, {} connections, {:.1} s, reconnects: {}, errors: {}",
        r.nodes, r.connections, r.duration_s, r.reconnects, r.errors
    )?;
    for e in &r.first_errors {
        writeln!(out, "  error: {e}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
