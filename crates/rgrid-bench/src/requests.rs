//! Single requests over rgrid: MinIO's BenchmarkRequests `bytes` shape.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rgrid::test_util::LocalGrid;
use rgrid::{Connection, HandlerId, RemoteError};

use crate::measure::{Point, TaskResult, Timing, lat_capacity, median_of, run_once};

/// A local grid of `servers` nodes with an echo handler on `HandlerId::TEST`.
pub async fn echo_grid(servers: usize) -> Result<LocalGrid, rgrid::Error> {
    let grid = LocalGrid::start(servers, |_, m| {
        let _ = m.register_single(HandlerId::TEST, |p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        });
    })
    .await?;
    grid.wait_all_connected(std::time::Duration::from_secs(10))
        .await?;
    Ok(grid)
}

/// Every ordered pair (src, dst) of distinct nodes, as connections.
fn pairs(grid: &LocalGrid) -> Vec<Connection> {
    let n = grid.hosts.len();
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                out.push(grid.conn(a, b));
            }
        }
    }
    out
}

/// `concurrency` client tasks, each calling a random pair with `payload` in a loop.
pub async fn bytes_point(
    grid: &LocalGrid,
    concurrency: usize,
    payload: &Bytes,
    timing: Timing,
) -> Point {
    let pairs = Arc::new(pairs(grid));
    median_of(timing, || {
        let pairs = pairs.clone();
        let payload = payload.clone();
        run_once(timing, move |phase| {
            (0..concurrency)
                .map(|i| {
                    let pairs = pairs.clone();
                    let payload = payload.clone();
                    let phase = phase.clone();
                    let cap = lat_capacity(concurrency, timing.measure);
                    tokio::spawn(async move {
                        let mut rng = fastrand::Rng::with_seed(i as u64);
                        let mut res = TaskResult::with_capacity(cap);
                        while !phase.stopped() {
                            let conn = &pairs[rng.usize(..pairs.len())];
                            let t0 = Instant::now();
                            let r = conn.request(HandlerId::TEST, payload.clone()).await;
                            if phase.measuring() {
                                res.record(t0, matches!(&r, Ok(b) if b.len() == payload.len()));
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
