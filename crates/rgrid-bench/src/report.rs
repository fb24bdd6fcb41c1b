//! Results: one [`Record`] per measured point, the table rows with their ratios against the
//! baselines, the goals, and the JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use crate::hol::{BULK_BYTES, HolResult};
use crate::measure::{Point, Timing};

/// The raw websocket echo floor.
pub const FLOOR: &str = "ws floor";
/// tonic unary echo.
pub const TONIC_UNARY: &str = "tonic unary";
/// tonic bidi streams (the counterpart of rgrid twoway).
pub const TONIC_BIDI: &str = "tonic bidi";
/// tonic client streams (the counterpart of rgrid request).
pub const TONIC_CLIENT_STREAM: &str = "tonic client-stream";
/// tonic server streams (the counterpart of rgrid responses).
pub const TONIC_SERVER_STREAM: &str = "tonic server-stream";
/// rgrid raw 512-byte single requests.
pub const RGRID_BYTES: &str = "rgrid bytes";
/// rgrid raw 512-byte single requests to a handler registered the default way (a task
/// per call), where [`RGRID_BYTES`]'s handler opts in to running inline.
pub const RGRID_BYTES_SPAWNED: &str = "rgrid bytes spawned";
/// rgrid typed single requests.
pub const RGRID_RPC: &str = "rgrid rpc";
/// rgrid streams, shape request.
pub const RGRID_REQUEST: &str = "rgrid request";
/// rgrid streams, shape responses.
pub const RGRID_RESPONSES: &str = "rgrid responses";
/// rgrid streams, shape twoway.
pub const RGRID_TWOWAY: &str = "rgrid twoway";
/// Head-of-line scenario: small calls on an idle connection.
pub const HOL_IDLE: &str = "rgrid bytes idle";
/// Head-of-line scenario: small calls next to the bulk stream (the system name adds the
/// bulk window, see [`hol_loaded_system`]).
pub const HOL_LOADED: &str = "rgrid bytes + bulk";

/// The name of an rgrid stream system (`base` = [`RGRID_REQUEST`], ...) with a window of
/// `window` messages: MinIO's window 1 keeps the plain name, any other window adds
/// ` w{window}` (`rgrid twoway w16`).
pub fn windowed_system(base: &str, window: usize) -> String {
    if window == crate::streams::MINIO_WINDOW {
        base.to_owned()
    } else {
        format!("{base} w{window}")
    }
}

/// The name of the head-of-line scenario's loaded system with a bulk window of `window`
/// (`rgrid bytes + bulk w4`).
pub fn hol_loaded_system(window: usize) -> String {
    format!("{HOL_LOADED} w{window}")
}

/// `system` without a ` w{window}` suffix (`rgrid twoway w16` -> `rgrid twoway`).
pub fn base_system(system: &str) -> &str {
    match system.rsplit_once(" w") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => system,
    }
}

/// The group a point belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Single requests (one operation = one call).
    Requests,
    /// Streams (one operation = one stream).
    Streams,
    /// The head-of-line scenario.
    Hol,
}

/// One measured point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// System name ([`RGRID_BYTES`], [`TONIC_UNARY`], ...).
    pub system: String,
    /// Group.
    pub group: Group,
    /// Grid size for rgrid systems; `None` for the baselines (one connection).
    pub servers: Option<usize>,
    /// The window in messages: of the stream for rgrid streams (1 = MinIO's capacities), of
    /// the bulk stream for the head-of-line scenario's loaded points; `None` otherwise.
    pub window: Option<usize>,
    /// Client tasks.
    pub concurrency: usize,
    /// Operations (calls or streams) per second.
    pub ops_per_sec: f64,
    /// Messages per operation: 2 for a single call (request and response); for streams
    /// MinIO's count (10 for request and responses, 20 for twoway).
    pub msgs_per_op: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Median latency of an operation, µs.
    pub p50_us: f64,
    /// 99th percentile latency of an operation, µs.
    pub p99_us: f64,
    /// Mean latency of an operation, µs.
    pub mean_us: f64,
    /// Allocations per operation, whole process (both ends).
    pub allocs_per_op: f64,
    /// Bytes allocated per operation, whole process.
    pub bytes_per_op: f64,
    /// Failed operations.
    pub errors: u64,
}

impl Record {
    /// A record of `p`.
    pub fn new(
        system: &str,
        group: Group,
        servers: Option<usize>,
        concurrency: usize,
        msgs_per_op: f64,
        p: &Point,
    ) -> Record {
        Record {
            system: system.to_owned(),
            group,
            servers,
            window: None,
            concurrency,
            ops_per_sec: p.ops_per_sec,
            msgs_per_op,
            msgs_per_sec: p.ops_per_sec * msgs_per_op,
            p50_us: p.p50_us,
            p99_us: p.p99_us,
            mean_us: p.mean_us,
            allocs_per_op: p.allocs_per_op,
            bytes_per_op: p.bytes_per_op,
            errors: p.errors,
        }
    }

    /// The record with its window set.
    pub fn with_window(mut self, window: usize) -> Record {
        self.window = Some(window);
        self
    }

    /// The system with its grid size, as the chart's legend shows it.
    pub fn label(&self) -> String {
        match self.servers {
            Some(n) => format!("{} ({n} srv)", self.system),
            None => self.system.clone(),
        }
    }
}

/// The tonic system an rgrid system is compared with.
pub fn tonic_counterpart(system: &str) -> Option<&'static str> {
    match base_system(system) {
        RGRID_BYTES | RGRID_BYTES_SPAWNED | RGRID_RPC => Some(TONIC_UNARY),
        RGRID_REQUEST => Some(TONIC_CLIENT_STREAM),
        RGRID_RESPONSES => Some(TONIC_SERVER_STREAM),
        RGRID_TWOWAY => Some(TONIC_BIDI),
        _ => None,
    }
}

/// The floor an rgrid system is compared with (single requests only).
pub fn floor_counterpart(system: &str) -> Option<&'static str> {
    match base_system(system) {
        RGRID_BYTES | RGRID_BYTES_SPAWNED | RGRID_RPC => Some(FLOOR),
        _ => None,
    }
}

/// `a / b`, or `None` when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The baseline point of `system` at `concurrency` (baselines have no grid size).
pub fn find<'a>(records: &'a [Record], system: &str, concurrency: usize) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.system == system && r.concurrency == concurrency && r.servers.is_none())
}

/// ops/s of `rec` over ops/s of its counterpart (`counterpart` of its system) at the same
/// concurrency, if that was measured.
pub fn ratio_vs(
    records: &[Record],
    rec: &Record,
    counterpart: fn(&str) -> Option<&'static str>,
) -> Option<f64> {
    let base = find(records, counterpart(&rec.system)?, rec.concurrency)?;
    ratio(rec.ops_per_sec, base.ops_per_sec)
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
        None => "-".to_owned(),
    }
}

/// The column header of a group's table.
pub fn header(group: Group) -> String {
    match group {
        Group::Requests | Group::Hol => format!(
            "{:<22} {:>3} {:>4} {:>10} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>7} {:>7}",
            "system",
            "srv",
            "conc",
            "ops/s",
            "p50 us",
            "p99 us",
            "mean us",
            "allocs",
            "B/op",
            "errors",
            "/tonic",
            "/floor"
        ),
        Group::Streams => format!(
            "{:<22} {:>3} {:>4} {:>10} {:>10} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>7}",
            "system",
            "srv",
            "conc",
            "streams/s",
            "msgs/s",
            "p50 us",
            "p99 us",
            "mean us",
            "allocs",
            "B/op",
            "errors",
            "/tonic"
        ),
    }
}

/// One table row: `rec` with its ratios against the baselines found in `records`.
pub fn row(records: &[Record], rec: &Record) -> String {
    let srv = rec
        .servers
        .map_or_else(|| "-".to_owned(), |n| n.to_string());
    let vs_tonic = fmt_ratio(ratio_vs(records, rec, tonic_counterpart));
    match rec.group {
        Group::Requests | Group::Hol => format!(
            "{:<22} {srv:>3} {:>4} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>7.2} {:>7.0} {:>6} {vs_tonic:>7} {:>7}",
            rec.system,
            rec.concurrency,
            rec.ops_per_sec,
            rec.p50_us,
            rec.p99_us,
            rec.mean_us,
            rec.allocs_per_op,
            rec.bytes_per_op,
            rec.errors,
            fmt_ratio(ratio_vs(records, rec, floor_counterpart)),
        ),
        Group::Streams => format!(
            "{:<22} {srv:>3} {:>4} {:>10.0} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>7.0} {:>6} {vs_tonic:>7}",
            rec.system,
            rec.concurrency,
            rec.ops_per_sec,
            rec.msgs_per_sec,
            rec.p50_us,
            rec.p99_us,
            rec.mean_us,
            rec.allocs_per_op,
            rec.bytes_per_op,
            rec.errors,
        ),
    }
}

/// The head-of-line scenario at one bulk window, as it goes into the JSON document (one
/// record per window; the idle figures are the same in each).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HolRecord {
    /// Small calls in flight.
    pub concurrency: usize,
    /// Size of a bulk message.
    pub bulk_bytes: usize,
    /// Output window of the bulk stream, in messages.
    pub window: usize,
    /// Small calls per second, idle connection.
    pub idle_ops_per_sec: f64,
    /// Median latency, idle, µs.
    pub idle_p50_us: f64,
    /// p99 latency, idle, µs.
    pub idle_p99_us: f64,
    /// Small calls per second next to the bulk stream.
    pub loaded_ops_per_sec: f64,
    /// Median latency next to the bulk stream, µs.
    pub loaded_p50_us: f64,
    /// p99 latency next to the bulk stream, µs.
    pub loaded_p99_us: f64,
    /// Loaded p99 / idle p99.
    pub p99_ratio: f64,
    /// Loaded p50 / idle p50.
    pub p50_ratio: f64,
    /// Loaded ops/s / idle ops/s.
    pub ops_ratio: f64,
    /// Bulk stream throughput, MB/s.
    pub stream_mb_per_s: f64,
    /// Bulk messages per second.
    pub stream_msgs_per_s: f64,
    /// The bulk stream's error, if it ended early.
    pub stream_error: Option<String>,
}

/// One record per bulk window of the scenario.
pub fn hol_records(h: &HolResult) -> Vec<HolRecord> {
    h.loaded
        .iter()
        .map(|l| HolRecord {
            concurrency: h.concurrency,
            bulk_bytes: BULK_BYTES,
            window: l.window,
            idle_ops_per_sec: h.idle.ops_per_sec,
            idle_p50_us: h.idle.p50_us,
            idle_p99_us: h.idle.p99_us,
            loaded_ops_per_sec: l.point.ops_per_sec,
            loaded_p50_us: l.point.p50_us,
            loaded_p99_us: l.point.p99_us,
            p99_ratio: h.p99_ratio(l),
            p50_ratio: h.p50_ratio(l),
            ops_ratio: h.ops_ratio(l),
            stream_mb_per_s: l.stream_mb_per_s,
            stream_msgs_per_s: l.stream_msgs_per_s,
            stream_error: l.stream_error.clone(),
        })
        .collect()
}

/// The text block of the head-of-line scenario: the idle connection, then one line per
/// bulk window with its ratios to idle.
pub fn hol_text(hol: &[HolRecord]) -> String {
    let mut s = String::new();
    let Some(first) = hol.first() else {
        return s;
    };
    let _ = writeln!(
        s,
        "head-of-line: {} small calls (512 B echo, random direction) in flight on one connection \
         of 2 nodes, idle and next to a stream pushing {} KiB messages (output window in messages)",
        first.concurrency,
        first.bulk_bytes / 1024,
    );
    let _ = writeln!(
        s,
        "  {:<22} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "connection", "ops/s", "p50 us", "p99 us", "ops/idle", "p50/idle", "p99/idle", "bulk MB/s"
    );
    let _ = writeln!(
        s,
        "  {:<22} {:>10.0} {:>8.1} {:>8.1}",
        "idle", first.idle_ops_per_sec, first.idle_p50_us, first.idle_p99_us
    );
    for h in hol {
        let _ = write!(
            s,
            "  {:<22} {:>10.0} {:>8.1} {:>8.1} {:>8.2}x {:>8.2}x {:>8.2}x {:>10.0}",
            format!("bulk stream, window {}", h.window),
            h.loaded_ops_per_sec,
            h.loaded_p50_us,
            h.loaded_p99_us,
            h.ops_ratio,
            h.p50_ratio,
            h.p99_ratio,
            h.stream_mb_per_s,
        );
        if let Some(e) = &h.stream_error {
            let _ = write!(s, "  (bulk stream error: {e})");
        }
        s.push('\n');
    }
    s
}

/// How a goal's value is taken over the measured concurrency levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Over {
    /// The value at one concurrency (`at_concurrency`).
    Point,
    /// The minimum over concurrency (`at_concurrency` is where it occurs).
    Min,
    /// The maximum over concurrency (`at_concurrency` is where it occurs).
    Max,
}

/// The comparison of a goal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

impl Target {
    /// Whether `v` meets the target, compared at the precision it is printed with (two
    /// decimals), so that a printed `0.80x` never reads as a miss of `>= 0.8`.
    pub fn met(self, v: f64) -> bool {
        let v = (v * 100.0).round() / 100.0;
        match self {
            Target::AtLeast(t) => v >= t,
            Target::AtMost(t) => v <= t,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtLeast(t) => write!(f, ">= {t}"),
            Target::AtMost(t) => write!(f, "<= {t}"),
        }
    }
}

/// One goal and how the run did against it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Goal {
    /// The issue whose acceptance states the goal.
    pub issue: u32,
    /// What is compared.
    pub name: String,
    /// Grid size of the rgrid side, if the goal depends on it.
    pub servers: Option<usize>,
    /// The window (stream or bulk window), if the goal depends on it.
    pub window: Option<usize>,
    /// How the value is taken over concurrency.
    pub over: Over,
    /// The concurrency of the value (for `min`/`max`: where the extreme was found).
    pub at_concurrency: Option<usize>,
    /// The value, if measured.
    pub value: Option<f64>,
    /// The value's unit as printed: `x` for ratios, ` allocs` for counts.
    pub unit: &'static str,
    /// The target.
    pub target: Target,
    /// Whether the value meets the target (`None` when not measured).
    pub met: Option<bool>,
}

/// The machine the run was on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Machine {
    /// Available parallelism.
    pub cores: usize,
    /// Operating system.
    pub os: &'static str,
    /// CPU architecture.
    pub arch: &'static str,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// Timing of every point, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TimingMs {
    /// Warm-up per repetition.
    pub warmup_ms: u64,
    /// Measured time per repetition.
    pub measure_ms: u64,
    /// Repetitions (median by ops/s reported).
    pub repeats: usize,
}

impl From<Timing> for TimingMs {
    fn from(t: Timing) -> TimingMs {
        TimingMs {
            warmup_ms: t.warmup.as_millis() as u64,
            measure_ms: t.measure.as_millis() as u64,
            repeats: t.repeats,
        }
    }
}

/// The whole run, as written by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Document {
    /// The program.
    pub benchmark: &'static str,
    /// The machine.
    pub machine: Machine,
    /// Tokio worker threads.
    pub workers: usize,
    /// Tokio's `max_io_events_per_tick`, when the run set it (`null`: tokio's default).
    pub io_events_per_tick: Option<usize>,
    /// Timing of every point.
    pub timing: TimingMs,
    /// Payload size of every small message.
    pub payload_bytes: usize,
    /// Grid sizes of the rgrid systems.
    pub servers: Vec<usize>,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// Every point.
    pub points: Vec<Record>,
    /// The head-of-line scenario, one record per bulk window (empty if not run).
    pub hol: Vec<HolRecord>,
    /// The scale scenario, one record per mesh size (empty if not run).
    pub scale: Vec<crate::scale::ScaleRecord>,
    /// The goals.
    pub goals: Vec<Goal>,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
}

impl Document {
    /// The document as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(self).map_err(|e| format!("json: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rec(
        system: &str,
        group: Group,
        servers: Option<usize>,
        c: usize,
        ops: f64,
    ) -> Record {
        let p = Point {
            ops_per_sec: ops,
            mean_us: 10.0,
            p50_us: 9.0,
            p99_us: 20.0,
            allocs_per_op: 3.0,
            bytes_per_op: 700.0,
            errors: 0,
        };
        let msgs = if group == Group::Streams { 20.0 } else { 2.0 };
        Record::new(system, group, servers, c, msgs, &p)
    }

    pub(crate) fn sample() -> Vec<Record> {
        let mut v = Vec::new();
        for (c, tonic, floor, bytes2, bytes4, bidi, twoway2) in [
            (
                1, 8_000.0, 200_000.0, 140_000.0, 120_000.0, 5_000.0, 4_000.0,
            ),
            (
                8, 26_000.0, 300_000.0, 180_000.0, 160_000.0, 8_000.0, 20_000.0,
            ),
            (
                64, 30_000.0, 400_000.0, 500_000.0, 450_000.0, 10_000.0, 30_000.0,
            ),
        ] {
            v.push(rec(FLOOR, Group::Requests, None, c, floor));
            v.push(rec(TONIC_UNARY, Group::Requests, None, c, tonic));
            v.push(rec(RGRID_BYTES, Group::Requests, Some(2), c, bytes2));
            v.push(rec(RGRID_BYTES, Group::Requests, Some(4), c, bytes4));
            v.push(rec(TONIC_BIDI, Group::Streams, None, c, bidi));
            v.push(rec(RGRID_TWOWAY, Group::Streams, Some(2), c, twoway2));
        }
        v
    }

    #[test]
    fn ratios_use_the_same_concurrency() {
        let v = sample();
        let r = v
            .iter()
            .find(|r| r.system == RGRID_BYTES && r.servers == Some(2) && r.concurrency == 8)
            .unwrap();
        let t = ratio_vs(&v, r, tonic_counterpart).unwrap();
        assert!((t - 180_000.0 / 26_000.0).abs() < 1e-9);
        let f = ratio_vs(&v, r, floor_counterpart).unwrap();
        assert!((f - 0.6).abs() < 1e-9);
        // Baselines have no counterpart; streams have no floor.
        let tonic = find(&v, TONIC_UNARY, 8).unwrap();
        assert_eq!(ratio_vs(&v, tonic, tonic_counterpart), None);
        let tw = v.iter().find(|r| r.system == RGRID_TWOWAY).unwrap();
        assert_eq!(ratio_vs(&v, tw, floor_counterpart), None);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
    }

    #[test]
    fn issue_6_goal_takes_the_minimum_over_concurrency() {
        use crate::acceptance::{goals, goals_text, min_ratio};
        let v = sample();
        let (m, c) = min_ratio(&v, RGRID_BYTES, 2).unwrap();
        assert_eq!(c, 8);
        assert!((m - 180_000.0 / 26_000.0).abs() < 1e-9);
        let g = goals(&v, &[], &[2, 4]);
        assert_eq!(g[0].issue, 6);
        assert_eq!(g[0].met, Some(true));
        assert_eq!(g[1].servers, Some(4));
        assert_eq!(g[1].at_concurrency, Some(8));
        assert_eq!(g[1].over, Over::Min);
        let text = goals_text(&g);
        assert!(text.contains("6.15x (min at conc 8)"), "{text}");
        assert!(text.contains("NOT met"), "{text}");
    }

    #[test]
    fn hol_records_one_per_window() {
        let point = |ops: f64, p50: f64, p99: f64| Point {
            ops_per_sec: ops,
            p50_us: p50,
            p99_us: p99,
            ..Point::default()
        };
        let h = HolResult {
            concurrency: 8,
            idle: point(100_000.0, 40.0, 100.0),
            loaded: vec![
                crate::hol::Loaded {
                    window: 1,
                    point: point(60_000.0, 60.0, 140.0),
                    stream_mb_per_s: 900.0,
                    stream_msgs_per_s: 3433.0,
                    stream_error: None,
                },
                crate::hol::Loaded {
                    window: 4,
                    point: point(20_000.0, 400.0, 800.0),
                    stream_mb_per_s: 1500.0,
                    stream_msgs_per_s: 5722.0,
                    stream_error: Some("gone".to_owned()),
                },
            ],
        };
        let r = hol_records(&h);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].window, 4);
        assert_eq!(r[1].idle_p99_us, 100.0);
        assert!((r[0].p99_ratio - 1.4).abs() < 1e-9);
        assert!((r[1].ops_ratio - 0.2).abs() < 1e-9);
        assert!((r[1].p50_ratio - 10.0).abs() < 1e-9);
        let text = hol_text(&r);
        assert!(text.contains("bulk stream, window 4"), "{text}");
        assert!(text.contains("8.00x"), "{text}");
        assert!(text.contains("bulk stream error: gone"), "{text}");
        assert_eq!(hol_text(&[]), "");
    }

    #[test]
    fn rows_line_up_with_headers() {
        let v = sample();
        for r in &v {
            let h = header(r.group);
            let line = row(&v, r);
            assert_eq!(h.len(), line.len(), "{h}\n{line}");
        }
        let r = v
            .iter()
            .find(|r| r.system == RGRID_BYTES && r.concurrency == 1 && r.servers == Some(2))
            .unwrap();
        let line = row(&v, r);
        assert!(line.contains("17.5x"), "{line}");
        assert!(line.contains("0.70x"), "{line}");
    }

    #[test]
    fn json_document_has_every_point() {
        let v = sample();
        let doc = Document {
            benchmark: "rgrid-bench",
            machine: Machine::this(),
            workers: 2,
            io_events_per_tick: None,
            timing: TimingMs {
                warmup_ms: 200,
                measure_ms: 1000,
                repeats: 3,
            },
            payload_bytes: 512,
            servers: vec![2, 4],
            concurrency: vec![1, 8, 64],
            goals: crate::acceptance::goals(&v, &[], &[2]),
            points: v.clone(),
            hol: Vec::new(),
            scale: Vec::new(),
            elapsed_s: 1.5,
        };
        let json = doc.to_json().unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        let points = back["points"].as_array().unwrap();
        assert_eq!(points.len(), v.len());
        assert_eq!(points[2]["system"], "rgrid bytes");
        assert_eq!(points[2]["group"], "requests");
        assert_eq!(points[2]["servers"], 2);
        assert_eq!(points[0]["servers"], serde_json::Value::Null);
        assert_eq!(points[0]["window"], serde_json::Value::Null);
        assert_eq!(points[4]["msgs_per_sec"], 100_000.0);
        for key in [
            "ops_per_sec",
            "p50_us",
            "p99_us",
            "mean_us",
            "allocs_per_op",
            "bytes_per_op",
            "errors",
        ] {
            assert!(points[0].get(key).is_some(), "{key}");
        }
        assert_eq!(back["timing"]["measure_ms"], 1000);
        assert!(back["machine"]["cores"].as_u64().unwrap() >= 1);
    }
}
