//! Closed-loop measurement: warm up, measure for a fixed time, collect ops, latencies and
//! allocations; repeat and keep the median.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::alloc::Snapshot;

/// Warm-up, measurement time and repetitions of each point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Time run before measuring.
    pub warmup: Duration,
    /// Time measured.
    pub measure: Duration,
    /// Repetitions; the median by ops/s is reported.
    pub repeats: usize,
}

/// The phase all client tasks of one run are in: warming up (the initial state), measuring,
/// or stopped.
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

const MEASURE: u8 = 1;
const STOP: u8 = 2;

impl Phase {
    /// Whether calls are being measured now.
    pub fn measuring(&self) -> bool {
        self.0.load(Ordering::Relaxed) == MEASURE
    }

    /// Whether the run is over.
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed) == STOP
    }
}

/// What one client task saw while measuring.
#[derive(Debug, Default)]
pub struct TaskResult {
    /// Operations completed.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Latency of each operation in nanoseconds (up to the reserved capacity).
    pub lat_ns: Vec<u32>,
}

impl TaskResult {
    /// A result with room for `cap` latencies, reserved up front so that recording never
    /// allocates while measuring.
    pub fn with_capacity(cap: usize) -> TaskResult {
        TaskResult {
            ops: 0,
            errors: 0,
            lat_ns: Vec::with_capacity(cap),
        }
    }

    /// Records one operation that started at `t0`.
    pub fn record(&mut self, t0: Instant, ok: bool) {
        if !ok {
            self.errors += 1;
            return;
        }
        self.ops += 1;
        if self.lat_ns.len() < self.lat_ns.capacity() {
            let ns = u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX);
            self.lat_ns.push(ns);
        }
    }
}

/// One measured point.
#[derive(Clone, Debug, Default)]
pub struct Point {
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Mean latency in microseconds.
    pub mean_us: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency in microseconds.
    pub p99_us: f64,
    /// Allocations per operation, whole process (both ends).
    pub allocs_per_op: f64,
    /// Bytes allocated per operation, whole process.
    pub bytes_per_op: f64,
    /// Failed operations.
    pub errors: u64,
}

/// Runs one timed repetition: `start` spawns the client tasks (which watch `phase`) and
/// returns their join handles.
pub async fn run_once<S>(timing: Timing, start: S) -> Point
where
    S: FnOnce(Arc<Phase>) -> Vec<tokio::task::JoinHandle<TaskResult>>,
{
    let phase = Arc::new(Phase::default());
    let tasks = start(phase.clone());
    tokio::time::sleep(timing.warmup).await;
    let a0 = Snapshot::now();
    let t0 = Instant::now();
    phase.0.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(timing.measure).await;
    phase.0.store(STOP, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let allocs = Snapshot::now().since(a0);
    let mut ops = 0;
    let mut errors = 0;
    let mut lat: Vec<u32> = Vec::new();
    // Every task finishes its operation in flight and returns; one that does not within
    // JOIN_TIMEOUT (a hung call) is aborted and counted as an error, so no point can hang.
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    for mut t in tasks {
        match tokio::time::timeout_at(deadline, &mut t).await {
            Ok(Ok(r)) => {
                ops += r.ops;
                errors += r.errors;
                lat.extend_from_slice(&r.lat_ns);
            }
            Ok(Err(_)) => errors += 1,
            Err(_) => {
                t.abort();
                errors += 1;
            }
        }
    }
    summarize(ops, errors, elapsed, allocs, &mut lat)
}

/// How long the client tasks of a run get to finish their last operation after the
/// measurement stopped.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The point of a run: `ops` operations (and `errors` failures) in `elapsed`, with the
/// allocations counted over the same window and the latencies (ns) of the operations.
pub fn summarize(
    ops: u64,
    errors: u64,
    elapsed: Duration,
    allocs: Snapshot,
    lat: &mut [u32],
) -> Point {
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).map_or(0.0, |&ns| f64::from(ns) / 1000.0)
    };
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&n| f64::from(n)).sum::<f64>() / lat.len() as f64 / 1000.0
    };
    let per_op = |x: u64| if ops == 0 { 0.0 } else { x as f64 / ops as f64 };
    Point {
        ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        mean_us: mean,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        allocs_per_op: per_op(allocs.allocs),
        bytes_per_op: per_op(allocs.bytes),
        errors,
    }
}

/// Runs `timing.repeats` repetitions of a point and returns the median by ops/s.
pub async fn median_of<F, Fut>(timing: Timing, mut once: F) -> Point
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Point>,
{
    let mut runs = Vec::with_capacity(timing.repeats.max(1));
    for _ in 0..timing.repeats.max(1) {
        runs.push(once().await);
    }
    median(runs)
}

/// The median of `runs` by ops/s (the upper one of an even count; a default point when
/// `runs` is empty).
pub fn median(runs: Vec<Point>) -> Point {
    median_by(runs, |p| p.ops_per_sec).unwrap_or_default()
}

/// The median of `runs` by `key` (the upper one of an even count).
pub fn median_by<T>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> Option<T> {
    if runs.is_empty() {
        return None;
    }
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = runs.len() / 2;
    Some(runs.swap_remove(mid))
}

/// `timing` with a single repetition: one run of a point that is repeated by interleaving
/// (see `suite`).
pub fn once(timing: Timing) -> Timing {
    Timing {
        repeats: 1,
        ..timing
    }
}

/// One point of a closed-loop workload: `concurrency` client tasks, each picking a random
/// target from `targets` and running `op` on it in a loop (the op returns whether it
/// succeeded); `timing.repeats` repetitions, median by ops/s.
pub async fn closed_loop<T, F, Fut>(
    targets: Arc<Vec<Arc<T>>>,
    concurrency: usize,
    timing: Timing,
    op: F,
) -> Point
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    median_of(timing, || {
        let targets = targets.clone();
        let op = op.clone();
        run_once(timing, move |phase| {
            (0..concurrency)
                .map(|i| {
                    let targets = targets.clone();
                    let op = op.clone();
                    let phase = phase.clone();
                    let cap = lat_capacity(concurrency, timing.measure);
                    tokio::spawn(async move {
                        let mut rng = fastrand::Rng::with_seed(i as u64);
                        let mut res = TaskResult::with_capacity(cap);
                        while !phase.stopped() {
                            let target = targets[rng.usize(..targets.len())].clone();
                            let t0 = Instant::now();
                            let ok = op(target).await;
                            if phase.measuring() {
                                res.record(t0, ok);
                            }
                        }
                        res
                    })
                })
                .collect()
        })
    })
    .await
}

/// Latency capacity to reserve per task for `tasks` tasks measuring for `measure`.
pub fn lat_capacity(tasks: usize, measure: Duration) -> usize {
    // Room for 1.5 M ops/s in total; beyond that latencies are sampled from the first ones.
    let total = (measure.as_secs_f64() * 1_500_000.0) as usize;
    total / tasks.max(1) + 1024
}
