//! Head-of-line blocking: the latency of small single requests on a connection that also
//! carries a bulk stream, against the same latency on an idle connection.
//!
//! Two nodes (one websocket). First, `concurrency` client tasks make 512-byte echo calls in a
//! random direction while nothing else runs (idle). Then, for each bulk window in turn, node
//! 0 opens a stream to node 1 whose handler pushes 256 KiB messages as fast as its credits
//! allow (output window of that many messages), a consumer task drains them, and the same
//! calls are measured again (loaded); the stream is dropped before the next window. Every
//! call crosses the bulk stream's direction once (either its request or its response), so it
//! may queue behind a 256 KiB frame in the sender's writer and in the receiver's reader.
//!
//! The repetitions are interleaved (idle, window 1, window 4, idle, window 1, ...) so that a
//! slow drift of the machine weighs on every ratio alike; each figure is the median by ops/s.
//!
//! The bulk stream's handler of window `w` is registered under `HandlerId::TEST2` and the
//! subroute `bulk-w{w}` on both nodes; `bulk_handler` and `open_bulk` are the only places
//! that register and open it (see "bulk priority opt-in" below).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use rgrid::test_util::LocalGrid;
use rgrid::{
    CallOptions, CallStream, Connection, HandlerId, Priority, RawStreamHandler, RemoteError,
};

use crate::measure::{self, Point, Timing};
use crate::requests;

/// Size of one bulk stream message.
pub const BULK_BYTES: usize = 256 * 1024;

/// Bulk windows measured by default: the typed handlers' default output window (1) and a
/// window of 4 (issue 14 checks both).
pub const DEFAULT_WINDOWS: [usize; 2] = [1, 4];

// ---------------------------------------------------------------------------------------
// Bulk priority opt-in.
//
// The bulk stream is in `Priority::Bulk`, set on its handler in `bulk_handler` (the
// handler's output is what crosses the connection). A caller can opt a call in instead with
// `CallOptions::priority`, on the open call in `open_bulk`. Nothing else in the scenario
// depends on the class.
// ---------------------------------------------------------------------------------------

/// The bulk stream's handler with an output window of `window` messages: until the caller
/// goes away, it sends `bulk` again and again, each send waiting for a credit.
fn bulk_handler(window: usize, bulk: Bytes) -> RawStreamHandler {
    // BULK PRIORITY (per handler): the handler's output is in the bulk class, so small calls
    // on the connection wait for at most one of its messages. `RGRID_BENCH_NO_BULK=1` leaves
    // it in the normal class, to measure what the class buys.
    let priority = if std::env::var_os("RGRID_BENCH_NO_BULK").is_some() {
        Priority::Normal
    } else {
        Priority::Bulk
    };
    RawStreamHandler::new(0, window, move |_, _, _, out| {
        let bulk = bulk.clone();
        async move {
            while out.send(bulk.clone()).await.is_ok() {}
            Ok::<(), RemoteError>(())
        }
    })
    .priority(priority)
}

/// Opens the bulk stream of window `window` from the node of `conn` to its peer.
async fn open_bulk(conn: &Connection, window: usize) -> Result<CallStream, rgrid::Error> {
    let route = CallOptions::new().subroute(bulk_subroute(window).as_str());
    conn.open_stream_with(HandlerId::TEST2, Bytes::new(), &route)
        .await
}

// ---------------------------------------------------------------------------------------

/// The subroute of the bulk handler of window `window`.
pub fn bulk_subroute(window: usize) -> String {
    format!("bulk-w{window}")
}

/// The small calls next to one bulk stream.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Output window of the bulk stream, in messages.
    pub window: usize,
    /// The small calls while the bulk stream runs.
    pub point: Point,
    /// Bulk stream throughput while the loaded calls ran, in MB/s (10^6 bytes).
    pub stream_mb_per_s: f64,
    /// Bulk messages per second while the loaded calls ran.
    pub stream_msgs_per_s: f64,
    /// The bulk stream's error, if it ended before the measurement did.
    pub stream_error: Option<String>,
}

/// The result of the scenario.
#[derive(Clone, Debug, Default)]
pub struct HolResult {
    /// Small calls in flight.
    pub concurrency: usize,
    /// The small calls on the idle connection.
    pub idle: Point,
    /// The small calls next to the bulk stream, one entry per window, in the order measured.
    pub loaded: Vec<Loaded>,
}

impl HolResult {
    /// Loaded p99 / idle p99 of `l` (0 when the idle p99 is unknown).
    pub fn p99_ratio(&self, l: &Loaded) -> f64 {
        ratio(l.point.p99_us, self.idle.p99_us)
    }

    /// Loaded p50 / idle p50 of `l` (0 when the idle p50 is unknown).
    pub fn p50_ratio(&self, l: &Loaded) -> f64 {
        ratio(l.point.p50_us, self.idle.p50_us)
    }

    /// Loaded ops/s / idle ops/s of `l` (0 when the idle ops/s is unknown).
    pub fn ops_ratio(&self, l: &Loaded) -> f64 {
        ratio(l.point.ops_per_sec, self.idle.ops_per_sec)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Runs the scenario with `concurrency` small calls in flight: once idle, then next to a bulk
/// stream of each window in `windows` (in messages), in that order.
pub async fn run(
    concurrency: usize,
    windows: &[usize],
    payload: &Bytes,
    timing: Timing,
) -> Result<HolResult, String> {
    let bulk = Bytes::from(vec![0xA5u8; BULK_BYTES]);
    let handlers: Vec<(String, usize)> = windows.iter().map(|&w| (bulk_subroute(w), w)).collect();
    let grid = LocalGrid::start(2, move |_, m| {
        let _ = m.register_single_inline(HandlerId::TEST, None, |_, p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        });
        for (route, window) in &handlers {
            let _ = m.register_stream(
                HandlerId::TEST2,
                Some(route),
                bulk_handler(*window, bulk.clone()),
            );
        }
    })
    .await
    .map_err(|e| format!("hol grid: {e}"))?;
    let result = async {
        grid.wait_all_connected(Duration::from_secs(10))
            .await
            .map_err(|e| format!("hol grid: {e}"))?;
        let once = measure::once(timing);
        let mut idle = Vec::new();
        let mut loaded: Vec<Vec<Loaded>> = vec![Vec::new(); windows.len()];
        for _ in 0..timing.repeats.max(1) {
            idle.push(
                requests::bytes_point(&grid, HandlerId::TEST, concurrency, payload, once).await,
            );
            for (runs, &w) in loaded.iter_mut().zip(windows) {
                runs.push(measure_loaded(&grid, concurrency, w, payload, once).await?);
            }
        }
        Ok(HolResult {
            concurrency,
            idle: measure::median(idle),
            loaded: loaded.into_iter().filter_map(median_loaded).collect(),
        })
    }
    .await;
    grid.shutdown().await;
    result
}

/// The repetition of one window with the median ops/s, carrying the first bulk stream error
/// of any repetition.
fn median_loaded(runs: Vec<Loaded>) -> Option<Loaded> {
    let error = runs.iter().find_map(|l| l.stream_error.clone());
    let mut m = measure::median_by(runs, |l| l.point.ops_per_sec)?;
    m.stream_error = m.stream_error.or(error);
    Some(m)
}

/// The small calls next to a bulk stream of window `window`.
async fn measure_loaded(
    grid: &LocalGrid,
    concurrency: usize,
    window: usize,
    payload: &Bytes,
    timing: Timing,
) -> Result<Loaded, String> {
    let conn = grid.conn(0, 1);
    let stream = tokio::time::timeout(Duration::from_secs(10), open_bulk(&conn, window))
        .await
        .map_err(|_| format!("hol: opening the bulk stream (window {window}) timed out"))?
        .map_err(|e| format!("hol: opening the bulk stream (window {window}): {e}"))?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let mut drain = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(m) = stream.next().await {
            match m {
                Ok(b) => {
                    counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Err(e) => return Some(e.to_string()),
            }
        }
        Some("the bulk stream ended".to_owned())
    });
    // Wait for the first bulk message so the stream is flowing before warm-up starts.
    let start = Instant::now();
    while received.load(Ordering::Relaxed) == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let b0 = received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let loaded = requests::bytes_point(grid, HandlerId::TEST, concurrency, payload, timing).await;
    let secs = t0.elapsed().as_secs_f64();
    let bytes = received.load(Ordering::Relaxed).saturating_sub(b0) as f64;

    let stream_error = if drain.is_finished() {
        match tokio::time::timeout(Duration::from_secs(1), &mut drain).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => Some(format!("drain task: {e}")),
            Err(_) => None,
        }
    } else {
        // Dropping the stream (with the task) cancels it on both sides.
        drain.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut drain).await;
        None
    };
    Ok(Loaded {
        window,
        point: loaded,
        stream_mb_per_s: bytes / secs / 1e6,
        stream_msgs_per_s: bytes / BULK_BYTES as f64 / secs,
        stream_error,
    })
}
