//! Head-of-line blocking: the latency of small single requests on a connection that also
//! carries a bulk stream, against the same latency on an idle connection.
//!
//! Two nodes (one websocket). First, `concurrency` client tasks make 512-byte echo calls in a
//! random direction while nothing else runs (idle). Then node 0 opens a stream to node 1
//! whose handler pushes 256 KiB messages as fast as its credits allow (output window
//! [`OUT_CAPACITY`] unless set otherwise), a consumer task drains them, and the same calls are measured again
//! (loaded). Every call crosses the bulk stream's direction once (either its request or its
//! response), so it may queue behind a 256 KiB frame in the sender's writer and in the
//! receiver's reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use rgrid::test_util::LocalGrid;
use rgrid::{HandlerId, RemoteError, StreamHandler};

use crate::measure::{Point, Timing};
use crate::requests;

/// Size of one bulk stream message.
pub const BULK_BYTES: usize = 256 * 1024;

/// Default output window of the bulk stream handler, in messages (the typed handlers'
/// default).
pub const OUT_CAPACITY: usize = 1;

/// The result of the scenario.
#[derive(Clone, Debug, Default)]
pub struct HolResult {
    /// Small calls in flight.
    pub concurrency: usize,
    /// Output window of the bulk stream, in messages.
    pub out_capacity: usize,
    /// The small calls on the idle connection.
    pub idle: Point,
    /// The small calls while the bulk stream runs.
    pub loaded: Point,
    /// Bulk stream throughput while the loaded calls ran, in MB/s (10^6 bytes).
    pub stream_mb_per_s: f64,
    /// Bulk messages per second while the loaded calls ran.
    pub stream_msgs_per_s: f64,
    /// The bulk stream's error, if it ended before the measurement did.
    pub stream_error: Option<String>,
}

impl HolResult {
    /// Loaded p99 / idle p99 (0 when the idle p99 is unknown).
    pub fn p99_ratio(&self) -> f64 {
        ratio(self.loaded.p99_us, self.idle.p99_us)
    }

    /// Loaded p50 / idle p50 (0 when the idle p50 is unknown).
    pub fn p50_ratio(&self) -> f64 {
        ratio(self.loaded.p50_us, self.idle.p50_us)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Runs the scenario with `concurrency` small calls in flight and a bulk stream with an
/// output window of `out_capacity` messages.
pub async fn run(
    concurrency: usize,
    out_capacity: usize,
    payload: &Bytes,
    timing: Timing,
) -> Result<HolResult, String> {
    let bulk = Bytes::from(vec![0xA5u8; BULK_BYTES]);
    let grid = LocalGrid::start(2, move |_, m| {
        let _ = m.register_single(HandlerId::TEST, |p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        });
        let bulk = bulk.clone();
        let _ = m.register_stream(
            HandlerId::TEST2,
            None,
            StreamHandler::new(0, out_capacity, move |_, _, _, out| {
                let bulk = bulk.clone();
                async move {
                    // Until the caller goes away: each send waits for a credit.
                    while out.send(bulk.clone()).await.is_ok() {}
                    Ok::<(), RemoteError>(())
                }
            }),
        );
    })
    .await
    .map_err(|e| format!("hol grid: {e}"))?;
    let result = measure(&grid, concurrency, out_capacity, payload, timing).await;
    grid.shutdown().await;
    result
}

async fn measure(
    grid: &LocalGrid,
    concurrency: usize,
    out_capacity: usize,
    payload: &Bytes,
    timing: Timing,
) -> Result<HolResult, String> {
    let idle = requests::bytes_point(grid, concurrency, payload, timing).await;

    let conn = grid.conn(0, 1);
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        conn.open_stream(HandlerId::TEST2, Bytes::new()),
    )
    .await
    .map_err(|_| "hol: opening the bulk stream timed out".to_owned())?
    .map_err(|e| format!("hol: opening the bulk stream: {e}"))?;
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
    let loaded = requests::bytes_point(grid, concurrency, payload, timing).await;
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
    Ok(HolResult {
        concurrency,
        out_capacity,
        idle,
        loaded,
        stream_mb_per_s: bytes / secs / 1e6,
        stream_msgs_per_s: bytes / BULK_BYTES as f64 / secs,
        stream_error,
    })
}
