//! Single requests over rgrid: MinIO's BenchmarkRequests `bytes` (raw 512-byte echo) and
//! `rpc` (typed `{Num, "hello"}` request, `{OrgNum, OrgString, Embedded}` response) shapes.

use std::sync::Arc;

use bytes::Bytes;
use rgrid::test_util::{LocalGrid, TestRequest, TestResponse};
use rgrid::typed::SingleHandler;
use rgrid::{Connection, HandlerId, RemoteError};

use crate::measure::{Point, Timing, closed_loop};

/// The typed handler of the `rpc` shape; it answers at once, so it opts in to running
/// inline, as the echo does.
pub static RPC: SingleHandler<TestRequest, TestResponse> =
    SingleHandler::new(HandlerId::TEST2).inline();

/// The id of the echo handler registered the default way (a task per call). Any id works:
/// the benchmark's grid serves nothing else.
pub const SPAWNED: HandlerId = HandlerId::GET_BANDWIDTH;

/// A local grid of `servers` nodes with an inline echo handler on `HandlerId::TEST`, the
/// same echo registered the default way on [`SPAWNED`], and the typed `rpc` handler on
/// `HandlerId::TEST2`.
pub async fn echo_grid(servers: usize) -> Result<LocalGrid, rgrid::Error> {
    let grid = LocalGrid::start(servers, |_, m| {
        let _ = m.register_single_inline(HandlerId::TEST, None, |_, p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        });
        let _ = m.register_single(SPAWNED, |p: Bytes| async move { Ok::<_, RemoteError>(p) });
        let _ = RPC.register(m, None, |r: TestRequest| async move {
            Ok(TestResponse {
                org_num: r.num,
                org_string: r.string.clone(),
                embedded: r,
            })
        });
    })
    .await?;
    grid.wait_all_connected(std::time::Duration::from_secs(10))
        .await?;
    Ok(grid)
}

/// Every ordered pair (src, dst) of distinct nodes, as connections.
fn pairs(grid: &LocalGrid) -> Vec<Arc<Connection>> {
    let n = grid.hosts.len();
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                out.push(Arc::new(grid.conn(a, b)));
            }
        }
    }
    out
}

/// `concurrency` client tasks, each calling the typed `rpc` handler of a random pair with
/// `{Num: 1, String: "hello"}` in a loop.
pub async fn rpc_point(grid: &LocalGrid, concurrency: usize, timing: Timing) -> Point {
    let req = Arc::new(TestRequest {
        num: 1,
        string: "hello".to_owned(),
    });
    closed_loop(Arc::new(pairs(grid)), concurrency, timing, move |conn| {
        let req = req.clone();
        async move { matches!(RPC.call(&conn, &req).await, Ok(resp) if resp.org_num == 1) }
    })
    .await
}

/// `concurrency` client tasks, each calling `handler` (an echo) of a random pair with
/// `payload` in a loop.
pub async fn bytes_point(
    grid: &LocalGrid,
    handler: HandlerId,
    concurrency: usize,
    payload: &Bytes,
    timing: Timing,
) -> Point {
    let payload = payload.clone();
    closed_loop(Arc::new(pairs(grid)), concurrency, timing, move |conn| {
        let payload = payload.clone();
        async move {
            let len = payload.len();
            matches!(conn.request(handler, payload).await, Ok(b) if b.len() == len)
        }
    })
    .await
}
