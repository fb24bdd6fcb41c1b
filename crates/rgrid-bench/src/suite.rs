//! The whole run: single requests, streams and the head-of-line scenario, each rgrid point
//! next to its baselines at the same concurrency, rows printed as they are measured; then,
//! when selected, the scale scenario.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rgrid::HandlerId;
use rgrid::test_util::LocalGrid;

use crate::cli::Args;
use crate::measure::{self, Point};
use crate::report::{
    self, Document, FLOOR, Group, HOL_IDLE, Machine, RGRID_BYTES, RGRID_BYTES_SPAWNED,
    RGRID_REQUEST, RGRID_RESPONSES, RGRID_RPC, RGRID_TWOWAY, Record, TONIC_UNARY,
};
use crate::scale::{self, ScaleConfig};
use crate::streams::Shape;
use crate::tonic_baseline::{self, TonicBaseline};
use crate::{acceptance, floor, hol, requests, streams, svg};

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

/// How many points `args` measures (the head-of-line scenario counts one idle point and one
/// per bulk window).
pub fn point_count(args: &Args) -> usize {
    let base = usize::from(args.baselines);
    let per_conc_requests = 2 * base + 2 * args.servers.len();
    let per_conc_streams =
        Shape::ALL.len() * (base + args.servers.len() * args.stream_windows.len());
    let mut n = 0;
    if args.requests {
        n += per_conc_requests * args.concurrency.len();
    }
    if args.streams {
        n += per_conc_streams * args.concurrency.len();
    }
    if args.hol {
        n += 1 + args.hol_windows.len();
    }
    n
}

/// The scale scenario's configuration in `args`.
pub fn scale_config(args: &Args) -> ScaleConfig {
    ScaleConfig {
        nodes: args.scale_nodes.clone(),
        per_node: args.scale_per_node,
        settle: args.scale_settle,
        idle: args.scale_idle,
        spread: args.scale_spread,
        timing: args.timing,
    }
}

/// A rough duration of the run: every point's repetitions, plus 0.3 s per grid started, plus
/// the scale scenario if selected.
pub fn estimate(args: &Args) -> Duration {
    let t = args.timing;
    let per_point = (t.warmup + t.measure) * t.repeats.max(1) as u32;
    let grids = usize::from(args.requests) * args.servers.len()
        + usize::from(args.streams)
            * args.servers.len()
            * Shape::ALL.len()
            * args.stream_windows.len()
        + usize::from(args.hol);
    let scale = if args.scale {
        scale::estimate(&scale_config(args))
    } else {
        Duration::ZERO
    };
    per_point * point_count(args) as u32 + Duration::from_millis(300) * grids as u32 + scale
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

/// One repetition of a point.
type PointFuture<'a> = Pin<Box<dyn Future<Output = Result<Point, String>> + 'a>>;

/// One system at one concurrency: what its record says and how to run one repetition.
struct Job<'a> {
    system: String,
    group: Group,
    servers: Option<usize>,
    window: Option<usize>,
    concurrency: usize,
    msgs_per_op: f64,
    once: Box<dyn Fn() -> PointFuture<'a> + 'a>,
}

/// Runs `timing.repeats` rounds of `jobs`, one repetition of each job in turn, and adds each
/// job's median by ops/s. Interleaved, the repetitions of the systems compared at one
/// concurrency spread over the same stretch of time, so a slow drift of the machine weighs on
/// all of them alike instead of on whichever system ran last.
async fn interleaved(mut jobs: Vec<Job<'_>>, args: &Args, run: &mut Run) -> Result<(), String> {
    if !args.systems.is_empty() {
        jobs.retain(|j| args.systems.iter().any(|s| s.replace('_', " ") == j.system));
    }
    let timing = args.timing;
    let mut runs: Vec<Vec<Point>> = jobs.iter().map(|_| Vec::new()).collect();
    for _ in 0..timing.repeats.max(1) {
        for (job, runs) in jobs.iter().zip(&mut runs) {
            runs.push((job.once)().await?);
        }
    }
    for (job, runs) in jobs.into_iter().zip(runs) {
        let mut rec = Record::new(
            &job.system,
            job.group,
            job.servers,
            job.concurrency,
            job.msgs_per_op,
            &measure::median(runs),
        );
        rec.window = job.window;
        run.add(rec);
    }
    Ok(())
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
        "rgrid-bench: {} cores, {} tokio workers{}; every point {} x ({} ms warm-up + {} ms), median by ops/s, \
         the repetitions of the systems at one concurrency interleaved; {PAYLOAD_BYTES}-byte payloads",
        machine.cores,
        args.workers,
        args.io_events_per_tick
            .map(|n| format!(" ({n} I/O events per tick)"))
            .unwrap_or_default(),
        t.repeats,
        t.warmup.as_millis(),
        t.measure.as_millis()
    );
    let scale_sizes = if args.scale {
        format!(" + the scale scenario at {:?} nodes", args.scale_nodes)
    } else {
        String::new()
    };
    println!(
        "{} points{scale_sizes}, estimated {:.0} s; allocations are counted for the whole process (both ends)",
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

    let scale_records = if args.scale {
        scale::run(&scale_config(args), &payload).await
    } else {
        Vec::new()
    };

    let hol_records = hol.as_ref().map(report::hol_records).unwrap_or_default();
    let mut goals = acceptance::goals(&run.records, &hol_records, &args.servers);
    goals.extend(scale::goals(&scale_records));
    if args.requests || args.streams || args.hol {
        println!();
        print!("{}", acceptance::issue14_text(&run.records, &hol_records));
    }
    println!();
    print!("{}", acceptance::goals_text(&goals));
    Ok(Document {
        benchmark: "rgrid-bench",
        machine,
        workers: args.workers,
        io_events_per_tick: args.io_events_per_tick,
        timing: args.timing.into(),
        payload_bytes: PAYLOAD_BYTES,
        servers: args.servers.clone(),
        concurrency: args.concurrency.clone(),
        points: run.records,
        hol: hol_records,
        scale: scale_records,
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
    let h = hol::run(
        args.hol_concurrency,
        &args.hol_windows,
        payload,
        args.timing,
    )
    .await?;
    run.records.push(Record::new(
        HOL_IDLE,
        Group::Hol,
        Some(2),
        h.concurrency,
        2.0,
        &h.idle,
    ));
    for l in &h.loaded {
        run.records.push(
            Record::new(
                &report::hol_loaded_system(l.window),
                Group::Hol,
                Some(2),
                h.concurrency,
                2.0,
                &l.point,
            )
            .with_window(l.window),
        );
    }
    print!("{}", report::hol_text(&report::hol_records(&h)));
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
         random src != dst; rgrid bytes spawned = the same echo registered the default way (a task per call, \
         where the others opt in to running inline); ws floor = raw websocket echo, conc messages in flight on one connection; \
         tonic unary = 512 B echo on one HTTP/2 connection; /tonic, /floor = ops/s ratios"
    );
    println!("{}", report::header(Group::Requests));
    let result = async {
        let once = measure::once(args.timing);
        for (i, &c) in args.concurrency.iter().enumerate() {
            if i > 0 {
                println!();
            }
            let mut jobs: Vec<Job<'_>> = Vec::new();
            if args.baselines {
                jobs.push(Job {
                    system: FLOOR.to_owned(),
                    group: Group::Requests,
                    servers: None,
                    window: None,
                    concurrency: c,
                    msgs_per_op: 2.0,
                    once: Box::new(move || {
                        Box::pin(async move {
                            floor::echo_point(c, payload, once)
                                .await
                                .map_err(|e| format!("floor: {e}"))
                        })
                    }),
                });
                if let Some(t) = tonic {
                    jobs.push(Job {
                        system: TONIC_UNARY.to_owned(),
                        group: Group::Requests,
                        servers: None,
                        window: None,
                        concurrency: c,
                        msgs_per_op: 2.0,
                        once: Box::new(move || {
                            Box::pin(async move { Ok(t.unary_point(c, payload, once).await) })
                        }),
                    });
                }
            }
            for (n, grid) in &grids {
                // The echo registered inline (the fast path) and the default way.
                for (system, handler) in [
                    (RGRID_BYTES, HandlerId::TEST),
                    (RGRID_BYTES_SPAWNED, requests::SPAWNED),
                ] {
                    jobs.push(Job {
                        system: system.to_owned(),
                        group: Group::Requests,
                        servers: Some(*n),
                        window: None,
                        concurrency: c,
                        msgs_per_op: 2.0,
                        once: Box::new(move || {
                            Box::pin(async move {
                                Ok(requests::bytes_point(grid, handler, c, payload, once).await)
                            })
                        }),
                    });
                }
                jobs.push(Job {
                    system: RGRID_RPC.to_owned(),
                    group: Group::Requests,
                    servers: Some(*n),
                    window: None,
                    concurrency: c,
                    msgs_per_op: 2.0,
                    once: Box::new(move || {
                        Box::pin(async move { Ok(requests::rpc_point(grid, c, once).await) })
                    }),
                });
            }
            interleaved(jobs, args, run).await?;
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
    let mut grids: Vec<(usize, Shape, usize, LocalGrid)> = Vec::new();
    let mut failed = None;
    'start: for &n in &args.servers {
        for &window in &args.stream_windows {
            for shape in Shape::ALL {
                match streams::stream_grid(n, shape, window, payload).await {
                    Ok(g) => grids.push((n, shape, window, g)),
                    Err(e) => {
                        failed = Some(format!("stream grid of {n}, window {window}: {e}"));
                        break 'start;
                    }
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
                 responses = 10 x 513 B down, twoway = 10 x 512 B each way; rgrid with MinIO's in/out capacities of 1, \
                 and \"w<N>\" with capacities of N (responses: no input); tonic: client-stream, server-stream \
                 and bidi streams of the same shapes; latency, allocs and B/op per stream; msgs/s as MinIO counts",
                streams::SUBROUTE
            );
            println!("{}", report::header(Group::Streams));
            let once = measure::once(args.timing);
            for (i, &c) in args.concurrency.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                let mut jobs: Vec<Job<'_>> = Vec::new();
                if let Some(t) = tonic {
                    for shape in Shape::ALL {
                        jobs.push(Job {
                            system: tonic_baseline::stream_system(shape).to_owned(),
                            group: Group::Streams,
                            servers: None,
                            window: None,
                            concurrency: c,
                            msgs_per_op: shape.messages_per_stream() as f64,
                            once: Box::new(move || {
                                Box::pin(async move {
                                    Ok(t.stream_point(shape, c, payload, once).await)
                                })
                            }),
                        });
                    }
                }
                for (n, shape, window, grid) in &grids {
                    let shape = *shape;
                    jobs.push(Job {
                        system: report::windowed_system(rgrid_stream_system(shape), *window),
                        group: Group::Streams,
                        servers: Some(*n),
                        window: Some(*window),
                        concurrency: c,
                        msgs_per_op: shape.messages_per_stream() as f64,
                        once: Box::new(move || {
                            Box::pin(async move {
                                Ok(streams::stream_point(grid, shape, c, payload, once).await)
                            })
                        }),
                    });
                }
                interleaved(jobs, args, run).await?;
            }
            Ok(())
        }
    };
    for (_, _, _, g) in &grids {
        g.shutdown().await;
    }
    result
}

/// The lines under the chart: the head-of-line scenario and the goals.
pub fn footer(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    for h in &doc.hol {
        out.push(format!(
            "Head-of-line, {} x 512 B calls next to a {} KiB bulk stream of window {}: p99 {:.0} -> {:.0} us ({:.2}x), \
             p50 {:.2}x, ops/s {:.2}x idle; bulk {:.0} MB/s",
            h.concurrency,
            h.bulk_bytes / 1024,
            h.window,
            h.idle_p99_us,
            h.loaded_p99_us,
            h.p99_ratio,
            h.p50_ratio,
            h.ops_ratio,
            h.stream_mb_per_s
        ));
    }
    for line in acceptance::goal_lines(&doc.goals) {
        out.push(format!("Goal {line}"));
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
