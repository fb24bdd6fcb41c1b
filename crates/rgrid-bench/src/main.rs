//! `rgrid-bench`: runs the benchmark matrix and prints a table.
//!
//! Usage: `rgrid-bench [--quick] [--servers N] [--workers N] [--concurrency 1,2,4]
//! [--only requests,streams]`

use std::time::Duration;

use bytes::Bytes;
use rgrid_bench::alloc::CountingAlloc;
use rgrid_bench::measure::{Point, Timing};
use rgrid_bench::streams::Shape;
use rgrid_bench::{floor, requests, streams};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

struct Args {
    timing: Timing,
    servers: usize,
    workers: usize,
    concurrency: Vec<usize>,
    requests: bool,
    streams: bool,
}

const USAGE: &str = "usage: rgrid-bench [--quick] [--servers N] [--workers N] [--concurrency 1,2,4] [--only requests,streams]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        timing: Timing {
            warmup: Duration::from_millis(300),
            measure: Duration::from_secs(1),
            repeats: 3,
        },
        servers: 2,
        workers: 2,
        concurrency: vec![1, 2, 4, 8, 16, 32, 64],
        requests: true,
        streams: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                args.timing = Timing {
                    warmup: Duration::from_millis(100),
                    measure: Duration::from_millis(300),
                    repeats: 1,
                };
            }
            "--servers" => {
                args.servers = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n >= 2)
                    .ok_or("--servers needs a number of at least 2")?;
            }
            "--workers" => {
                args.workers = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n >= 1)
                    .ok_or("--workers needs a number of at least 1")?;
            }
            "--concurrency" => {
                let list = it.next().ok_or("--concurrency needs a list like 1,2,4")?;
                args.concurrency = list
                    .split(',')
                    .map(|v| v.trim().parse::<usize>().map_err(|e| format!("{v}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--only" => {
                let list = it
                    .next()
                    .ok_or("--only needs a list like requests,streams")?;
                args.requests = false;
                args.streams = false;
                for part in list.split(',') {
                    match part.trim() {
                        "requests" => args.requests = true,
                        "streams" => args.streams = true,
                        other => return Err(format!("--only: unknown group {other}")),
                    }
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn row(system: &str, conc: usize, p: &Point, floor: Option<&Point>) {
    let ratio = floor.map_or(String::from("-"), |f| {
        format!("{:.2}", p.mean_us / f.mean_us.max(f64::MIN_POSITIVE))
    });
    println!(
        "{system:<14} {conc:>4} {:>11.0} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>8.0} {:>7} {ratio:>9}",
        p.ops_per_sec, p.mean_us, p.p50_us, p.p99_us, p.allocs_per_op, p.bytes_per_op, p.errors
    );
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        let payload = Bytes::from((0..512).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
        if args.requests
            && let Err(e) = run_requests(&args, &payload).await
        {
            eprintln!("{e}");
            return 1;
        }
        if args.streams
            && let Err(e) = run_streams(&args, &payload).await
        {
            eprintln!("{e}");
            return 1;
        }
        0
    });
    std::process::exit(code);
}

async fn run_requests(args: &Args, payload: &Bytes) -> Result<(), String> {
    let grid = requests::echo_grid(args.servers)
        .await
        .map_err(|e| format!("grid: {e}"))?;
    println!(
        "single requests: bytes = 512-byte echo, rpc = typed {{Num, \"hello\"}} call; {} servers; {:?} x {} per point (median)",
        args.servers, args.timing.measure, args.timing.repeats
    );
    println!(
        "{:<14} {:>4} {:>11} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>9}",
        "system",
        "conc",
        "ops/s",
        "mean us",
        "p50 us",
        "p99 us",
        "allocs",
        "bytes",
        "errors",
        "vs floor"
    );
    for &c in &args.concurrency {
        let floor = floor::echo_point(c, payload, args.timing)
            .await
            .map_err(|e| format!("floor: {e}"))?;
        let grid_point = requests::bytes_point(&grid, c, payload, args.timing).await;
        let rpc_point = requests::rpc_point(&grid, c, args.timing).await;
        row("ws-echo floor", c, &floor, None);
        row("rgrid bytes", c, &grid_point, Some(&floor));
        row("rgrid rpc", c, &rpc_point, Some(&floor));
    }
    grid.shutdown().await;
    Ok(())
}

async fn run_streams(args: &Args, payload: &Bytes) -> Result<(), String> {
    println!();
    println!(
        "streams (MinIO BenchmarkStream shapes, subroute {}), 512-byte messages, {} servers; \
         {:?} x {} per point (median); latency, allocs and bytes are per stream",
        streams::SUBROUTE,
        args.servers,
        args.timing.measure,
        args.timing.repeats
    );
    println!(
        "{:<10} {:>4} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "shape",
        "conc",
        "streams/s",
        "msgs/s",
        "mean us",
        "p50 us",
        "p99 us",
        "allocs",
        "bytes",
        "errors"
    );
    for shape in Shape::ALL {
        let grid = streams::stream_grid(args.servers, shape, payload)
            .await
            .map_err(|e| format!("grid: {e}"))?;
        for &c in &args.concurrency {
            let p = streams::stream_point(&grid, shape, c, payload, args.timing).await;
            println!(
                "{:<10} {c:>4} {:>10.0} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>8.0} {:>7}",
                shape.name(),
                p.ops_per_sec,
                p.ops_per_sec * shape.messages_per_stream() as f64,
                p.mean_us,
                p.p50_us,
                p.p99_us,
                p.allocs_per_op,
                p.bytes_per_op,
                p.errors
            );
        }
        grid.shutdown().await;
    }
    Ok(())
}
