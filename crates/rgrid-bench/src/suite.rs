//! The whole run: single requests, streams and the head-of-line scenario, each rgrid point
//! next to its baselines at the same concurrency, rows printed as they are measured.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rgrid::test_util::LocalGrid;

use crate::cli::Args;
use crate::report::{
    self, Document, FLOOR, Group, HOL_IDLE, HOL_LOADED, HolRecord, Machine, RGRID_BYTES,
    RGRID_REQUEST, RGRID_RESPONSES, RGRID_RPC, RGRID_TWOWAY, Record, TONIC_UNARY,
};
use crate::streams::Shape;
use crate::tonic_baseline::{self, TonicBaseline};
use crate::{floor, hol, requests, streams, svg};

/// Size of every small payload (MinIO's benchmarks).
pub const PAYLOAD_BYTES: usize = 512;

/// The rgrid system name of a stream shape.
pub fn rgrid_stream_system(shape: Shape) -> &'static str {
    match shape {
        Shape::Request => RGRID_REQUEST,
        Shape::Responses => RGRID_RESPONSES,
        Shape::TwoWay => RGRID_TWOWAY,
    }
}

/// How many points `args` measures (the head-of-line scenario counts two).
pub fn point_count(args: &Args) -> usize {
    let base = usize::from(args.baselines);
    let per_conc_requests = 2 * base + 2 * args.servers.len();
    let per_conc_streams = Shape::ALL.len() * (base + args.servers.len());
    let mut n = 0;
    if args.requests {
        n += per_conc_requests * args.concurrency.len();
    }
    if args.streams {
        n += per_conc_streams * args.concurrency.len();
    }
    if args.hol {
        n += 2;
    }
    n
}

/// A rough duration of the run: every point's repetitions, plus a second per grid started.
pub fn estimate(args: &Args) -> Duration {
    let t = args.timing;
    let per_point = (t.warmup + t.measure) * t.repeats.max(1) as u32;
    let grids = usize::from(args.requests) * args.servers.len()
        + usize::from(args.streams) * args.servers.len() * Shape::ALL.len()
        + usize::from(args.hol);
    per_point * point_count(args) as u32 + Duration::from_millis(300) * grids as u32
}

struct Run {
    records: Vec<Record>,
}

impl Run {
    fn add(&mut self, rec: Record) {
        println!("{}", report::row(&self.records, &rec));
        self.records.push(rec);
    }
}

/// Runs everything `args` selects on the current runtime and returns the document.
pub async fn run_all(args: &Args) -> Result<Document, String> {
    let started = Instant::now();
    let payload = Bytes::from(
        (0..PAYLOAD_BYTES)
            .map(|_| fastrand::u8(..))
            .collect::<Vec<u8>>(),
    );
    let machine = Machine::this();
    let t = args.timing;
    println!(
        "rgrid-bench: {} cores, {} tokio workers; every point {} x ({} ms warm-up + {} ms), median by ops/s; {PAYLOAD_BYTES}-byte payloads",
        machine.cores,
        args.workers,
        t.repeats,
        t.warmup.as_millis(),
        t.measure.as_millis()
    );
    println!(
        "{} points, estimated {:.0} s; allocations are counted for the whole process (both ends)",
        point_count(args),
        estimate(args).as_secs_f64()
    );

    let tonic = if args.baselines && (args.requests || args.streams) {
        Some(TonicBaseline::start(&payload).await?)
    } else {
        None
    };
    let mut run = Run {
        records: Vec::new(),
    };
    let result = run_groups(args, &payload, tonic.as_ref(), &mut run).await;
    if let Some(t) = tonic {
        t.shutdown().await;
    }
    let hol = result?;

    let hol_record = hol.as_ref().map(HolRecord::from);
    let goals = report::goals(&run.records, hol_record.as_ref(), &args.servers);
    println!();
    print!("{}", report::goals_text(&goals));
    Ok(Document {
        benchmark: "rgrid-bench",
        machine,
        workers: args.workers,
        timing: args.timing.into(),
        payload_bytes: PAYLOAD_BYTES,
        servers: args.servers.clone(),
        concurrency: args.concurrency.clone(),
        points: run.records,
        hol: hol_record,
        goals,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

async fn run_groups(
    args: &Args,
    payload: &Bytes,
    tonic: Option<&TonicBaseline>,
    run: &mut Run,
) -> Result<Option<hol::HolResult>, String> {
    if args.requests {
        run_requests(args, payload, tonic, run).await?;
    }
    if args.streams {
        run_streams(args, payload, tonic, run).await?;
    }
    if !args.hol {
        return Ok(None);
    }
    println!();
    let h = hol::run(args.hol_concurrency, args.hol_window, payload, args.timing).await?;
    for (system, p) in [(HOL_IDLE, &h.idle), (HOL_LOADED, &h.loaded)] {
        run.records.push(Record::new(
            system,
            Group::Hol,
            Some(2),
            h.concurrency,
            2.0,
            p,
        ));
    }
    println!("{}", report::hol_text(&HolRecord::from(&h)));
    Ok(Some(h))
}

async fn shutdown_all(grids: &[(usize, LocalGrid)]) {
    for (_, g) in grids {
        g.shutdown().await;
    }
}

async fn run_requests(
    args: &Args,
    payload: &Bytes,
    tonic: Option<&TonicBaseline>,
    run: &mut Run,
) -> Result<(), String> {
    let mut grids = Vec::new();
    for &n in &args.servers {
        match requests::echo_grid(n).await {
            Ok(g) => grids.push((n, g)),
            Err(e) => {
                shutdown_all(&grids).await;
                return Err(format!("grid of {n}: {e}"));
            }
        }
    }
    println!();
    println!(
        "single requests (ops = calls): rgrid bytes = 512 B echo, rgrid rpc = typed {{Num, \"hello\"}} call, \
         random src != dst; ws floor = raw websocket echo, conc messages in flight on one connection; \
         tonic unary = 512 B echo on one HTTP/2 connection; /tonic, /floor = ops/s ratios"
    );
    println!("{}", report::header(Group::Requests));
    let result = async {
        for (i, &c) in args.concurrency.iter().enumerate() {
            if i > 0 {
                println!();
            }
            if args.baselines {
                let p = floor::echo_point(c, payload, args.timing)
                    .await
                    .map_err(|e| format!("floor: {e}"))?;
                run.add(Record::new(FLOOR, Group::Requests, None, c, 2.0, &p));
                if let Some(t) = tonic {
                    let p = t.unary_point(c, payload, args.timing).await;
                    run.add(Record::new(TONIC_UNARY, Group::Requests, None, c, 2.0, &p));
                }
            }
            for (n, grid) in &grids {
                let p = requests::bytes_point(grid, c, payload, args.timing).await;
                run.add(Record::new(
                    RGRID_BYTES,
                    Group::Requests,
                    Some(*n),
                    c,
                    2.0,
                    &p,
                ));
                let p = requests::rpc_point(grid, c, args.timing).await;
                run.add(Record::new(
                    RGRID_RPC,
                    Group::Requests,
                    Some(*n),
                    c,
                    2.0,
                    &p,
                ));
            }
        }
        Ok::<(), String>(())
    }
    .await;
    shutdown_all(&grids).await;
    result
}

async fn run_streams(
    args: &Args,
    payload: &Bytes,
    tonic: Option<&TonicBaseline>,
    run: &mut Run,
) -> Result<(), String> {
    let mut grids: Vec<(usize, Shape, LocalGrid)> = Vec::new();
    let mut failed = None;
    'start: for &n in &args.servers {
        for shape in Shape::ALL {
            match streams::stream_grid(n, shape, payload).await {
                Ok(g) => grids.push((n, shape, g)),
                Err(e) => {
                    failed = Some(format!("stream grid of {n}: {e}"));
                    break 'start;
                }
            }
        }
    }
    let result = match failed {
        Some(e) => Err(e),
        None => {
            println!();
            println!(
                "streams (ops = streams, MinIO BenchmarkStream shapes, subroute {}): request = 1 + 10 x 512 B up, \
                 responses = 10 x 513 B down, twoway = 10 x 512 B each way; tonic: client-stream, server-stream \
                 and bidi streams of the same shapes; latency, allocs and B/op per stream; msgs/s as MinIO counts",
                streams::SUBROUTE
            );
            println!("{}", report::header(Group::Streams));
            for (i, &c) in args.concurrency.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                if let Some(t) = tonic {
                    for shape in Shape::ALL {
                        let p = t.stream_point(shape, c, payload, args.timing).await;
                        run.add(Record::new(
                            tonic_baseline::stream_system(shape),
                            Group::Streams,
                            None,
                            c,
                            shape.messages_per_stream() as f64,
                            &p,
                        ));
                    }
                }
                for (n, shape, grid) in &grids {
                    let p = streams::stream_point(grid, *shape, c, payload, args.timing).await;
                    run.add(Record::new(
                        rgrid_stream_system(*shape),
                        Group::Streams,
                        Some(*n),
                        c,
                        shape.messages_per_stream() as f64,
                        &p,
                    ));
                }
            }
            Ok(())
        }
    };
    for (_, _, g) in &grids {
        g.shutdown().await;
    }
    result
}

/// The lines under the chart: the head-of-line scenario and the goals.
pub fn footer(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = &doc.hol {
        out.push(format!(
            "Head-of-line (2 nodes, {} x 512 B calls in flight): p99 {:.0} us idle, {:.0} us next to a {} KiB bulk stream \
             ({:.2}x; p50 {:.0} -> {:.0} us); bulk stream {:.0} MB/s",
            h.concurrency,
            h.idle_p99_us,
            h.loaded_p99_us,
            h.bulk_bytes / 1024,
            h.p99_ratio,
            h.idle_p50_us,
            h.loaded_p50_us,
            h.stream_mb_per_s
        ));
    }
    for g in &doc.goals {
        let value = g
            .value
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x"));
        let at = g
            .at_concurrency
            .map_or_else(String::new, |c| format!(" at conc {c}"));
        let srv = g
            .servers
            .map_or_else(String::new, |n| format!(", {n} servers"));
        let verdict = match g.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "-",
        };
        out.push(format!(
            "Goal {} {}{srv}: {value}{at} ({verdict})",
            g.name, g.target
        ));
    }
    out
}

/// The chart of the document.
pub fn chart(doc: &Document) -> String {
    let title = format!(
        "rgrid vs tonic vs raw websocket: ops/s by concurrency ({} cores, {} workers, median of {} x {} ms)",
        doc.machine.cores, doc.workers, doc.timing.repeats, doc.timing.measure_ms
    );
    svg::render(&doc.points, &doc.servers, &title, &footer(doc))
}
