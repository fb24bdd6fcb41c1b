//! Command-line arguments of the benchmark (`rgrid-bench ...`, or `rgrid bench ...` in an
//! `rgrid` built with rgrid-cli's `bench` feature).

use std::path::PathBuf;
use std::time::Duration;

use crate::measure::Timing;

/// The usage text printed by `--help` and after a bad argument.
pub const USAGE: &str = "\
usage: rgrid-bench [OPTIONS]
       rgrid bench [OPTIONS]      (an rgrid built with `--features bench`)

Runs MinIO's grid benchmark matrix on rgrid (single requests bytes/rpc, streams
request/responses/twoway, 512-byte payloads) and, in the same run, its baselines: a raw
websocket echo over one loopback connection (the floor) and tonic gRPC (unary, client,
server and bidi streams on one HTTP/2 connection); then the head-of-line scenario. The
scale scenario (full meshes of 8 to 64 nodes: idle memory and CPU, calls/s, reconnect after
every node restarts) runs only when named: --only scale.

options:
  --quick                 short points: 100 ms warm-up, 300 ms measured, 1 repetition
  --servers LIST          rgrid grid sizes, each at least 2 (default 2,4)
  --concurrency LIST      client tasks per point (default 1,2,4,8,16,32,64)
  --workers N             tokio worker threads (default 2)
  --io-events-per-tick N  readiness events tokio's I/O driver hands out per poll (its
                          max_io_events_per_tick; default tokio's 1024). 1 keeps a worker
                          that finds two sockets ready from waking the idle worker for the
                          second (see the README on 2 calls in flight)
  --only GROUPS           any of requests,streams,hol,scale (default: requests,streams,hol;
                          scale only when named)
  --no-baselines          skip the websocket floor and tonic
  --systems LIST          only the request and stream systems named here, as printed
                          (e.g. \"rgrid bytes,ws floor\"), to profile one system alone
  --stream-windows LIST   in/out windows of the rgrid stream shapes, in messages: 1 = MinIO's
                          capacities, others add w<N> variants (default 1,16)
  --hol-concurrency N     small calls in flight in the head-of-line scenario (default 8)
  --hol-windows LIST      output windows of its bulk stream, in messages, each measured against
                          the same idle run (default 1,4; also --hol-window)
  --scale-nodes LIST      mesh sizes of the scale scenario, each at least 2 (default 8,32,64)
  --scale-per-node N      calls in flight per node in its load (default 2)
  --scale-settle-ms N     idle time before its memory is read (default 3000; --quick 500)
  --scale-idle-ms N       idle window of its CPU measurement (default 5000; --quick 1000)
  --scale-spread-ms N     its staggered restart brings the nodes back within this window
                          (default 2000; 0 skips the staggered restart)
  --warmup-ms N           warm-up before each repetition (default 200)
  --measure-ms N          measured time of each repetition (default 1000)
  --repeats N             repetitions per point, the median by ops/s is reported (default 3)
  --json FILE             write every point, the goals and the machine as JSON
  --svg FILE              write a chart of ops/s against concurrency per system
  -h, --help              print this text";

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// Warm-up, measurement and repetitions of every point.
    pub timing: Timing,
    /// Grid sizes of the rgrid systems.
    pub servers: Vec<usize>,
    /// Tokio worker threads.
    pub workers: usize,
    /// Tokio's `max_io_events_per_tick`, when set (`None`: tokio's default).
    pub io_events_per_tick: Option<usize>,
    /// Client tasks per point.
    pub concurrency: Vec<usize>,
    /// Run the single-request group.
    pub requests: bool,
    /// Run the stream group.
    pub streams: bool,
    /// Run the head-of-line scenario.
    pub hol: bool,
    /// Run the scale scenario (only when named in `--only`).
    pub scale: bool,
    /// Mesh sizes of the scale scenario.
    pub scale_nodes: Vec<usize>,
    /// Calls in flight per node in the scale scenario's load.
    pub scale_per_node: usize,
    /// Idle time before the scale scenario reads memory.
    pub scale_settle: Duration,
    /// Idle window of the scale scenario's CPU measurement.
    pub scale_idle: Duration,
    /// Spread of the scale scenario's staggered restart (0: none).
    pub scale_spread: Duration,
    /// Run the floor and tonic next to rgrid.
    pub baselines: bool,
    /// Only the systems of this list (names as printed, e.g. `rgrid bytes`); empty: all.
    pub systems: Vec<String>,
    /// Small calls in flight in the head-of-line scenario.
    pub hol_concurrency: usize,
    /// Output windows of the head-of-line scenario's bulk stream, in the order measured.
    pub hol_windows: Vec<usize>,
    /// In/out windows of the rgrid stream shapes (1 = MinIO's capacities).
    pub stream_windows: Vec<usize>,
    /// Where to write the JSON document.
    pub json: Option<PathBuf>,
    /// Where to write the SVG chart.
    pub svg: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            timing: Timing {
                warmup: Duration::from_millis(200),
                measure: Duration::from_secs(1),
                repeats: 3,
            },
            servers: vec![2, 4],
            workers: 2,
            io_events_per_tick: None,
            concurrency: vec![1, 2, 4, 8, 16, 32, 64],
            requests: true,
            streams: true,
            hol: true,
            scale: false,
            scale_nodes: crate::scale::DEFAULT_NODES.to_vec(),
            scale_per_node: crate::scale::DEFAULT_PER_NODE,
            scale_settle: crate::scale::DEFAULT_SETTLE,
            scale_idle: crate::scale::DEFAULT_IDLE,
            scale_spread: crate::scale::DEFAULT_SPREAD,
            baselines: true,
            systems: Vec::new(),
            hol_concurrency: 8,
            hol_windows: crate::hol::DEFAULT_WINDOWS.to_vec(),
            stream_windows: vec![crate::streams::MINIO_WINDOW, crate::streams::WIDE_WINDOW],
            json: None,
            svg: None,
        }
    }
}

/// The outcome of parsing.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// Run the benchmark.
    Run(Box<Args>),
    /// Print the usage and exit successfully.
    Help,
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut out = Args::default();
    let mut quick = false;
    let mut warmup_ms = None;
    let mut measure_ms = None;
    let mut repeats = None;
    let mut settle_ms = None;
    let mut idle_ms = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--quick" => quick = true,
            "--servers" => out.servers = list(&value("--servers")?, "--servers", 2)?,
            "--concurrency" => {
                out.concurrency = list(&value("--concurrency")?, "--concurrency", 1)?;
            }
            "--workers" => out.workers = number(&value("--workers")?, "--workers", 1)?,
            "--io-events-per-tick" => out.io_events_per_tick = Some(number(&value(a)?, a, 1)?),
            "--only" => {
                let groups = value("--only")?;
                out.requests = false;
                out.streams = false;
                out.hol = false;
                out.scale = false;
                for part in groups.split(',') {
                    match part.trim() {
                        "requests" => out.requests = true,
                        "streams" => out.streams = true,
                        "hol" => out.hol = true,
                        "scale" => out.scale = true,
                        other => {
                            return Err(format!(
                                "--only: unknown group {other:?} (requests, streams, hol, scale)"
                            ));
                        }
                    }
                }
            }
            "--no-baselines" => out.baselines = false,
            "--systems" => {
                out.systems = value(a)?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            "--hol-concurrency" => {
                out.hol_concurrency = number(&value("--hol-concurrency")?, "--hol-concurrency", 1)?;
            }
            "--hol-windows" | "--hol-window" => {
                out.hol_windows = list(&value(a)?, a, 1)?;
            }
            "--stream-windows" => {
                out.stream_windows = list(&value("--stream-windows")?, "--stream-windows", 1)?;
            }
            "--scale-nodes" => out.scale_nodes = list(&value(a)?, a, 2)?,
            "--scale-per-node" => out.scale_per_node = number(&value(a)?, a, 1)?,
            "--scale-settle-ms" => settle_ms = Some(number(&value(a)?, a, 0)?),
            "--scale-idle-ms" => idle_ms = Some(number(&value(a)?, a, 1)?),
            "--scale-spread-ms" => {
                out.scale_spread = Duration::from_millis(number(&value(a)?, a, 0)? as u64);
            }
            "--warmup-ms" => warmup_ms = Some(number(&value("--warmup-ms")?, "--warmup-ms", 0)?),
            "--measure-ms" => {
                measure_ms = Some(number(&value("--measure-ms")?, "--measure-ms", 1)?);
            }
            "--repeats" => repeats = Some(number(&value("--repeats")?, "--repeats", 1)?),
            "--json" => out.json = Some(PathBuf::from(value("--json")?)),
            "--svg" => out.svg = Some(PathBuf::from(value("--svg")?)),
            "-h" | "--help" => return Ok(Parsed::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if quick {
        out.timing = Timing {
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(300),
            repeats: 1,
        };
        out.scale_settle = Duration::from_millis(500);
        out.scale_idle = Duration::from_secs(1);
    }
    if let Some(ms) = settle_ms {
        out.scale_settle = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = idle_ms {
        out.scale_idle = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = warmup_ms {
        out.timing.warmup = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = measure_ms {
        out.timing.measure = Duration::from_millis(ms as u64);
    }
    if let Some(n) = repeats {
        out.timing.repeats = n;
    }
    Ok(Parsed::Run(Box::new(out)))
}

fn number(v: &str, name: &str, min: usize) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{name}: {v:?} is not a number of at least {min}")),
    }
}

fn list(v: &str, name: &str, min: usize) -> Result<Vec<usize>, String> {
    let mut out = v
        .split(',')
        .map(|part| number(part, name, min))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err(format!("{name} needs at least one value"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Args {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args).unwrap() {
            Parsed::Run(a) => *a,
            Parsed::Help => panic!("help"),
        }
    }

    fn err(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args).unwrap_err()
    }

    #[test]
    fn defaults() {
        let a = run(&[]);
        assert_eq!(a, Args::default());
        assert_eq!(a.servers, [2, 4]);
        assert_eq!(a.concurrency, [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(a.hol_windows, [1, 4]);
        assert_eq!(a.stream_windows, [1, 16]);
        assert_eq!(a.timing.repeats, 3);
        assert!(a.requests && a.streams && a.hol && a.baselines);
        assert!(!a.scale);
        assert_eq!(a.scale_nodes, [8, 32, 64]);
    }

    #[test]
    fn scale_is_selected_by_name() {
        let a = run(&[
            "--only",
            "scale",
            "--scale-nodes",
            "64,8",
            "--scale-per-node",
            "3",
            "--quick",
            "--scale-idle-ms",
            "200",
        ]);
        assert!(a.scale && !a.requests && !a.streams && !a.hol);
        assert_eq!(a.scale_nodes, [8, 64]);
        assert_eq!(a.scale_per_node, 3);
        assert_eq!(a.scale_settle, Duration::from_millis(500));
        assert_eq!(a.scale_idle, Duration::from_millis(200));
        assert!(err(&["--scale-nodes", "1"]).contains("at least 2"));
    }

    #[test]
    fn lists_and_groups() {
        let a = run(&[
            "--servers",
            "4,2,2",
            "--concurrency",
            "8, 1",
            "--only",
            "streams,hol",
            "--workers",
            "3",
            "--io-events-per-tick",
            "1",
            "--json",
            "/tmp/x.json",
            "--svg",
            "x.svg",
            "--no-baselines",
            "--hol-concurrency",
            "16",
            "--hol-window",
            "4",
            "--stream-windows",
            "16,1,4",
            "--systems",
            "rgrid bytes, ws floor",
        ]);
        assert_eq!(a.systems, ["rgrid bytes", "ws floor"]);
        assert_eq!(a.servers, [2, 4]);
        assert_eq!(a.concurrency, [1, 8]);
        assert!(!a.requests && a.streams && a.hol && !a.baselines);
        assert_eq!(a.workers, 3);
        assert_eq!(a.io_events_per_tick, Some(1));
        assert_eq!(run(&[]).io_events_per_tick, None);
        assert_eq!(a.hol_concurrency, 16);
        assert_eq!(a.hol_windows, [4]);
        assert_eq!(a.stream_windows, [1, 4, 16]);
        assert_eq!(run(&["--hol-windows", "4,1"]).hol_windows, [1, 4]);
        assert_eq!(a.json, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(a.svg, Some(PathBuf::from("x.svg")));
    }

    #[test]
    fn timing_overrides_apply_after_quick_in_any_order() {
        let a = run(&["--measure-ms", "50", "--quick", "--repeats", "2"]);
        assert_eq!(a.timing.measure, Duration::from_millis(50));
        assert_eq!(a.timing.warmup, Duration::from_millis(100));
        assert_eq!(a.timing.repeats, 2);
        let q = run(&["--quick"]);
        assert_eq!(q.timing.measure, Duration::from_millis(300));
        assert_eq!(q.timing.repeats, 1);
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse(&["-h".to_owned()]), Ok(Parsed::Help));
        assert!(err(&["--servers", "1"]).contains("at least 2"));
        assert!(err(&["--servers"]).contains("needs a value"));
        assert!(err(&["--concurrency", "0"]).contains("at least 1"));
        assert!(err(&["--concurrency", "1,x"]).contains("--concurrency"));
        assert!(err(&["--only", "nope"]).contains("unknown group"));
        assert!(err(&["--bogus"]).contains("unknown argument"));
        assert!(err(&["--repeats", "0"]).contains("at least 1"));
        assert!(err(&["--io-events-per-tick", "0"]).contains("at least 1"));
        assert!(err(&["--hol-windows", "0"]).contains("--hol-windows"));
        assert!(err(&["--stream-windows", "1,x"]).contains("--stream-windows"));
    }
}
