//! `rgrid` / `rgrid demo`: a local grid of several nodes in this process over real loopback
//! websockets, a mixed workload with a live progress display, one connection killed and
//! restored midway, and a report.
//!
//! The killed connection is drained first (no new calls start on it, those in flight finish),
//! so the report can show a reconnect and still zero errors: that is how an operator takes
//! a link down on purpose. Calls on every other pair keep running meanwhile. The kill cuts
//! the TCP socket under the websocket ([`grid::DemoGrid::cut`]), as a failed network would.

mod grid;
mod report;
mod workload;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rgrid::Manager;
use tokio::time::Instant;

use self::grid::DemoGrid;
use self::report::{KillReport, KindReport, Report, print_report, thousands};
use self::workload::{Kind, one_call, register};
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
    grid: DemoGrid,
    counters: Vec<Counters>,
    victim: Victim,
    first_errors: Mutex<Vec<String>>,
    end: Instant,
}

impl Shared {
    /// The first errors seen (a poisoned lock is recovered: a push cannot leave it broken).
    fn first_errors(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.first_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A random ordered pair of distinct nodes whose connection is usable now; registers
    /// the call on the victim pair so the drain can wait for it.
    fn pick_pair(&self) -> (usize, usize, bool) {
        let n = self.grid.len();
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
                let mut first = shared.first_errors();
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
    if !shared.grid.cut(v.a, v.b) {
        v.draining.store(false, Ordering::SeqCst);
        return Err("the victim connection had no socket to cut".into());
    }
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

    let grid = DemoGrid::start(nodes, |i, m| register(i, m).map_err(Failure::from)).await?;
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
    let first_errors = shared.first_errors().clone();
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
    shared.first_errors().insert(0, e);
}

/// Reconnects of every pair (counted once, on the dialing side).
fn reconnects(grid: &DemoGrid) -> u64 {
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
