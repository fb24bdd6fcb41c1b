//! A workload for counting instructions per stream with `valgrind --tool=callgrind`: `N`
//! two-way streams (the benchmark's `twoway` exchange) of 10 messages of 512 bytes each way (windows of 16), `K` at a time, on a
//! current-thread runtime over in-memory pipes (no sockets, one thread). Instruction counts
//! do not move with the machine's speed the way timings do, so a small change to the per-message
//! path shows; runs still differ by about 1.5% (the deferral bounds read the clock), so compare
//! several runs of each build.
//!
//! ```sh
//! cargo build --release -p rgrid-bench --example stream_instructions
//! for n in 2000 12000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/stream_instructions $n 16 2>&1 | grep Collected
//! done
//! # instructions per stream = (count at 12000 - count at 2000) / 10000
//! ```

use bytes::Bytes;
use rgrid::test_util::LocalGrid;
use rgrid::{CallOptions, Error, HandlerId, Options, RawStreamHandler};
use rgrid_bench::streams::{SUBROUTE, WIDE_WINDOW, twoway, twoway_handler};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stream_instructions STREAMS AT_ONCE";
    let streams: usize = args.next().ok_or(usage)?.parse()?;
    let at_once: usize = args.next().ok_or(usage)?.parse::<usize>()?.max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(streams, at_once))?;
    Ok(())
}

async fn run(streams: usize, at_once: usize) -> Result<(), Error> {
    let grid = LocalGrid::start_in_memory(2, Options::default(), |_, m| {
        let echo = RawStreamHandler::new(WIDE_WINDOW, WIDE_WINDOW, twoway_handler);
        let _ = m.register_stream(HandlerId::TEST, Some(SUBROUTE), echo);
    })
    .await?;
    let payload = Bytes::from(vec![7u8; 512]);
    let mut tasks = Vec::with_capacity(at_once);
    for t in 0..at_once {
        // Both directions of the one connection, alternately.
        let conn = grid.conn(t % 2, (t + 1) % 2);
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let route = CallOptions::new().subroute(SUBROUTE);
            for _ in 0..streams / at_once {
                let st = conn
                    .open_stream_with(HandlerId::TEST, payload.clone(), &route)
                    .await?;
                twoway(st, &payload).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::Protocol(format!("a task failed: {e}")))??;
    }
    grid.shutdown().await;
    Ok(())
}
