//! The goals a run is judged by, and the acceptance block printed at the end of a run.
//!
//! Issue 14's acceptance, all on 2 nodes ([`SERVERS`]) and all ratios of points measured in
//! the same run:
//!
//! * single requests, 512 B: rgrid bytes / ws floor ops/s >= 0.8 at every concurrency;
//!   rgrid bytes ops/s at 2 in flight >= at 1; typed (`rpc`) / raw (`bytes`) ops/s >= 0.95
//!   at every concurrency (typed within 5% of raw);
//! * head-of-line: p99 of the small calls next to the bulk stream <= 1.5x idle at bulk
//!   window 1 and <= 2x idle at window 4; their ops/s >= 0.5x idle at every window;
//! * streams: the window-16 variant of each shape >= 2x the msgs/s of tonic's stream of the
//!   same shape, at every concurrency;
//! * allocations, whole process: rgrid bytes <= 3 per call, rgrid rpc <= 7 per call (the
//!   maximum over concurrency).
//!
//! Issue 6's goal that still stands: rgrid bytes >= 5x tonic unary at every concurrency (per
//! grid size). Its stream goal (MinIO's window-1 twoway >= 2x tonic bidi) and head-of-line
//! goal (p99 <= 3x idle at window 1) are replaced by issue 14's.

use std::fmt::Write as _;

use crate::report::{
    FLOOR, Goal, Group, HolRecord, Over, RGRID_BYTES, RGRID_BYTES_SPAWNED, RGRID_RPC, Record,
    TONIC_UNARY, Target, find, ratio, ratio_vs, tonic_counterpart, windowed_system,
};
use crate::streams::{Shape, WIDE_WINDOW};
use crate::suite::rgrid_stream_system;
use crate::svg::si;
use crate::tonic_baseline;

/// The grid size issue 14's goals are judged on (one connection, like the baselines).
pub const SERVERS: usize = 2;

/// rgrid bytes / ws floor ops/s, at every concurrency.
pub const FLOOR_RATIO: f64 = 0.8;
/// rgrid rpc / rgrid bytes ops/s, at every concurrency (typed within 5% of raw).
pub const TYPED_RATIO: f64 = 0.95;
/// rgrid bytes ops/s at 2 in flight / at 1.
pub const TWO_OVER_ONE: f64 = 1.0;
/// Window-16 stream msgs/s / tonic's stream of the same shape, at every concurrency.
pub const WIDE_STREAM_RATIO: f64 = 2.0;
/// Head-of-line: loaded p99 / idle p99 at bulk window 1.
pub const HOL_P99_WINDOW_1: f64 = 1.5;
/// Head-of-line: loaded p99 / idle p99 at bulk window 4.
pub const HOL_P99_WINDOW_4: f64 = 2.0;
/// Head-of-line: loaded ops/s / idle ops/s, at every bulk window.
pub const HOL_OPS_RATIO: f64 = 0.5;
/// Allocations per raw call (rgrid bytes), whole process.
pub const BYTES_ALLOCS: f64 = 3.0;
/// Allocations per typed call (rgrid rpc), whole process.
pub const RPC_ALLOCS: f64 = 7.0;
/// Issue 6: rgrid bytes / tonic unary ops/s, at every concurrency.
pub const BYTES_VS_TONIC: f64 = 5.0;

/// The p99 goal of the head-of-line scenario at bulk window `window`, if it has one.
pub fn hol_p99_target(window: usize) -> Option<f64> {
    match window {
        1 => Some(HOL_P99_WINDOW_1),
        4 => Some(HOL_P99_WINDOW_4),
        _ => None,
    }
}

fn goal(
    issue: u32,
    name: impl Into<String>,
    servers: Option<usize>,
    over: Over,
    value: Option<(f64, usize)>,
    unit: &'static str,
    target: Target,
) -> Goal {
    Goal {
        issue,
        name: name.into(),
        servers,
        window: None,
        over,
        at_concurrency: value.map(|v| v.1),
        value: value.map(|v| v.0),
        unit,
        target,
        met: value.map(|v| target.met(v.0)),
    }
}

/// The rgrid points of `system` on `servers` nodes, in the order measured.
fn points<'a>(records: &'a [Record], system: &'a str, servers: usize) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.system == system && r.servers == Some(servers))
        .collect()
}

/// The rgrid point of `system` on `servers` nodes at `concurrency`.
fn point<'a>(
    records: &'a [Record],
    system: &str,
    servers: usize,
    concurrency: usize,
) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.system == system && r.servers == Some(servers) && r.concurrency == concurrency)
}

/// The minimum over concurrency of `system` (at `servers`) ops/s over its tonic
/// counterpart's, with the concurrency where it occurs.
pub fn min_ratio(records: &[Record], system: &str, servers: usize) -> Option<(f64, usize)> {
    records
        .iter()
        .filter(|r| r.system == system && r.servers == Some(servers))
        .filter_map(|r| Some((ratio_vs(records, r, tonic_counterpart)?, r.concurrency)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The maximum over concurrency of `system`'s (at `servers`) allocations per operation.
fn max_allocs(records: &[Record], system: &str, servers: usize) -> Option<(f64, usize)> {
    points(records, system, servers)
        .into_iter()
        .map(|r| (r.allocs_per_op, r.concurrency))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Every goal the run can judge: issue 6's that still stand, then issue 14's (see the
/// module documentation). A goal whose rgrid side was not measured is left out; one whose
/// baseline was not measured has no value.
pub fn goals(records: &[Record], hol: &[HolRecord], servers: &[usize]) -> Vec<Goal> {
    let mut out = Vec::new();
    // Issue 6.
    for &n in servers {
        if points(records, RGRID_BYTES, n).is_empty() {
            continue;
        }
        out.push(goal(
            6,
            "rgrid bytes / tonic unary ops/s",
            Some(n),
            Over::Min,
            min_ratio(records, RGRID_BYTES, n),
            "x",
            Target::AtLeast(BYTES_VS_TONIC),
        ));
    }

    // Issue 14, single requests.
    let n = SERVERS;
    let bytes = points(records, RGRID_BYTES, n);
    for r in &bytes {
        let v = find(records, FLOOR, r.concurrency)
            .and_then(|f| ratio(r.ops_per_sec, f.ops_per_sec))
            .map(|v| (v, r.concurrency));
        let mut g = goal(
            14,
            "rgrid bytes / ws floor ops/s",
            Some(n),
            Over::Point,
            v,
            "x",
            Target::AtLeast(FLOOR_RATIO),
        );
        g.at_concurrency = Some(r.concurrency);
        out.push(g);
    }
    if let (Some(one), Some(two)) = (
        point(records, RGRID_BYTES, n, 1),
        point(records, RGRID_BYTES, n, 2),
    ) {
        out.push(goal(
            14,
            "rgrid bytes ops/s at 2 in flight / at 1",
            Some(n),
            Over::Point,
            ratio(two.ops_per_sec, one.ops_per_sec).map(|v| (v, 2)),
            "x",
            Target::AtLeast(TWO_OVER_ONE),
        ));
    }
    for r in points(records, RGRID_RPC, n) {
        let v = point(records, RGRID_BYTES, n, r.concurrency)
            .and_then(|b| ratio(r.ops_per_sec, b.ops_per_sec))
            .map(|v| (v, r.concurrency));
        let mut g = goal(
            14,
            "rgrid rpc / rgrid bytes ops/s",
            Some(n),
            Over::Point,
            v,
            "x",
            Target::AtLeast(TYPED_RATIO),
        );
        g.at_concurrency = Some(r.concurrency);
        out.push(g);
    }

    // Issue 14, window-16 streams against tonic.
    for shape in Shape::ALL {
        let system = windowed_system(rgrid_stream_system(shape), WIDE_WINDOW);
        let tonic = tonic_baseline::stream_system(shape);
        for r in points(records, &system, n) {
            let v = ratio_vs(records, r, tonic_counterpart).map(|v| (v, r.concurrency));
            let mut g = goal(
                14,
                format!("{system} / {tonic} msgs/s"),
                Some(n),
                Over::Point,
                v,
                "x",
                Target::AtLeast(WIDE_STREAM_RATIO),
            );
            g.window = Some(WIDE_WINDOW);
            g.at_concurrency = Some(r.concurrency);
            out.push(g);
        }
    }

    // Issue 14, head-of-line.
    for h in hol {
        let measured = h.idle_ops_per_sec > 0.0 && h.idle_p99_us > 0.0;
        if let Some(t) = hol_p99_target(h.window) {
            let mut g = goal(
                14,
                format!("head-of-line p99 loaded / idle, bulk window {}", h.window),
                Some(2),
                Over::Point,
                measured.then_some((h.p99_ratio, h.concurrency)),
                "x",
                Target::AtMost(t),
            );
            g.window = Some(h.window);
            out.push(g);
        }
        let mut g = goal(
            14,
            format!("head-of-line ops/s loaded / idle, bulk window {}", h.window),
            Some(2),
            Over::Point,
            measured.then_some((h.ops_ratio, h.concurrency)),
            "x",
            Target::AtLeast(HOL_OPS_RATIO),
        );
        g.window = Some(h.window);
        out.push(g);
    }

    // Issue 14, allocations.
    for (system, name, limit) in [
        (
            RGRID_BYTES,
            "rgrid bytes allocations per call",
            BYTES_ALLOCS,
        ),
        (RGRID_RPC, "rgrid rpc allocations per call", RPC_ALLOCS),
    ] {
        if points(records, system, n).is_empty() {
            continue;
        }
        out.push(goal(
            14,
            name,
            Some(n),
            Over::Max,
            max_allocs(records, system, n),
            " allocs",
            Target::AtMost(limit),
        ));
    }
    out
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    }
}

fn value_text(v: f64, unit: &str) -> String {
    if unit == "x" && v >= 10.0 {
        format!("{v:.1}x")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// The goals as lines of text, one per goal, except that the per-concurrency goals of one
/// name are summed up on one line ("4 of 7 met; NOT met at conc 1 (0.65x), ...").
pub fn goal_lines(goals: &[Goal]) -> Vec<String> {
    let mut groups: Vec<Vec<&Goal>> = Vec::new();
    for g in goals {
        match groups.iter_mut().find(|v| {
            let f = v[0];
            f.issue == g.issue
                && f.name == g.name
                && f.servers == g.servers
                && f.target == g.target
                && f.over == Over::Point
                && g.over == Over::Point
        }) {
            Some(v) => v.push(g),
            None => groups.push(vec![g]),
        }
    }
    groups
        .iter()
        .map(|v| {
            let f = v[0];
            let srv = f.servers.map_or_else(String::new, |n| format!(", {n} srv"));
            let label = format!("#{} {}{srv}", f.issue, f.name);
            let (value, met) = if let [g] = v.as_slice() {
                let value = match (g.value, g.at_concurrency, g.over) {
                    (Some(x), Some(c), Over::Min) => {
                        format!("{} (min at conc {c})", value_text(x, g.unit))
                    }
                    (Some(x), Some(c), Over::Max) => {
                        format!("{} (max at conc {c})", value_text(x, g.unit))
                    }
                    (Some(x), Some(c), Over::Point) => {
                        format!("{} at conc {c}", value_text(x, g.unit))
                    }
                    (Some(x), None, _) => value_text(x, g.unit),
                    (None, _, _) => "-".to_owned(),
                };
                (value, g.met)
            } else {
                let measured: Vec<&&Goal> = v.iter().filter(|g| g.met.is_some()).collect();
                let n_met = measured.iter().filter(|g| g.met == Some(true)).count();
                let mut value = format!("{n_met} of {} met", v.len());
                let misses: Vec<String> = measured
                    .iter()
                    .filter(|g| g.met == Some(false))
                    .filter_map(|g| {
                        Some(format!(
                            "{} ({})",
                            g.at_concurrency?,
                            value_text(g.value?, g.unit)
                        ))
                    })
                    .collect();
                if !misses.is_empty() {
                    let _ = write!(value, "; missed at conc {}", misses.join(", "));
                }
                let met = (!measured.is_empty()).then_some(n_met == v.len());
                (value, met)
            };
            format!(
                "{label:<62} {:<7} {:<8} {value}",
                f.target.to_string(),
                verdict(met)
            )
        })
        .collect()
}

/// The goals as text: a heading and [`goal_lines`].
pub fn goals_text(goals: &[Goal]) -> String {
    let met = goals.iter().filter(|g| g.met == Some(true)).count();
    let judged = goals.iter().filter(|g| g.met.is_some()).count();
    let mut s = format!(
        "goals ({met} of {judged} measured goals met; a line with several concurrency levels needs all of them)\n"
    );
    for line in goal_lines(goals) {
        let _ = writeln!(s, "  {line}");
    }
    s
}

const LABEL: usize = 36;
const CELL: usize = 11;

fn table_line(label: &str, cells: &[String]) -> String {
    let mut s = format!("  {label:<LABEL$}");
    for c in cells {
        let _ = write!(s, "{c:>CELL$}");
    }
    s.push('\n');
    s
}

fn ops_cell(r: Option<&Record>, msgs: bool) -> String {
    match r {
        Some(r) if msgs => si(r.msgs_per_sec),
        Some(r) => si(r.ops_per_sec),
        None => "-".to_owned(),
    }
}

fn pass(met: bool) -> &'static str {
    if met { "pass" } else { "FAIL" }
}

fn ratio_cell(v: Option<f64>, target: Option<Target>) -> String {
    match (v, target) {
        (Some(v), Some(t)) => format!("{} {}", value_text(v, "x"), pass(t.met(v))),
        (Some(v), None) => value_text(v, "x"),
        (None, _) => "-".to_owned(),
    }
}

fn concurrency_levels(records: &[Record], group: Group) -> Vec<usize> {
    let mut c: Vec<usize> = records
        .iter()
        .filter(|r| r.group == group)
        .map(|r| r.concurrency)
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

fn header_line(title: &str, concs: &[usize]) -> String {
    let cells: Vec<String> = concs.iter().map(|c| c.to_string()).collect();
    let mut s = format!("{title:<w$}", w = LABEL + 2);
    for c in cells {
        let _ = write!(s, "{c:>CELL$}");
    }
    s.push('\n');
    s
}

/// Issue 14's acceptance block: on 2 nodes, single requests against the floor and typed
/// against raw, streams of both windows against tonic, the head-of-line scenario at each
/// bulk window, and allocations per call and per stream; every ratio marked pass or FAIL
/// where it has a goal.
pub fn issue14_text(records: &[Record], hol: &[HolRecord]) -> String {
    let n = SERVERS;
    let mut s = format!(
        "issue 14 acceptance ({n} nodes; every ratio is between points of this run; \
         columns = calls or streams in flight)\n"
    );

    let concs = concurrency_levels(records, Group::Requests);
    if !points(records, RGRID_BYTES, n).is_empty() {
        s.push('\n');
        s.push_str(&header_line("single requests, 512 B, ops/s", &concs));
        let at = |system: &str, c: usize| point(records, system, n, c);
        let row = |system: &str| -> Vec<String> {
            concs
                .iter()
                .map(|&c| ops_cell(at(system, c), false))
                .collect()
        };
        s.push_str(&table_line(
            FLOOR,
            &concs
                .iter()
                .map(|&c| ops_cell(find(records, FLOOR, c), false))
                .collect::<Vec<_>>(),
        ));
        s.push_str(&table_line(RGRID_BYTES, &row(RGRID_BYTES)));
        s.push_str(&table_line(RGRID_RPC, &row(RGRID_RPC)));
        if !points(records, RGRID_BYTES_SPAWNED, n).is_empty() {
            s.push_str(&table_line(RGRID_BYTES_SPAWNED, &row(RGRID_BYTES_SPAWNED)));
            // The default registration's cost: a task per call instead of the inline
            // opt-in (issue 15: a handler cannot stall its connection unless it opts in).
            s.push_str(&table_line(
                "spawned / bytes (default's cost)",
                &concs
                    .iter()
                    .map(|&c| {
                        let v = at(RGRID_BYTES_SPAWNED, c)
                            .and_then(|r| ratio(r.ops_per_sec, at(RGRID_BYTES, c)?.ops_per_sec));
                        ratio_cell(v, None)
                    })
                    .collect::<Vec<_>>(),
            ));
        }
        s.push_str(&table_line(
            &format!("bytes / floor (goal >= {FLOOR_RATIO})"),
            &concs
                .iter()
                .map(|&c| {
                    let v = at(RGRID_BYTES, c)
                        .and_then(|b| ratio(b.ops_per_sec, find(records, FLOOR, c)?.ops_per_sec));
                    ratio_cell(v, Some(Target::AtLeast(FLOOR_RATIO)))
                })
                .collect::<Vec<_>>(),
        ));
        s.push_str(&table_line(
            &format!("rpc / bytes (goal >= {TYPED_RATIO})"),
            &concs
                .iter()
                .map(|&c| {
                    let v = at(RGRID_RPC, c)
                        .and_then(|r| ratio(r.ops_per_sec, at(RGRID_BYTES, c)?.ops_per_sec));
                    ratio_cell(v, Some(Target::AtLeast(TYPED_RATIO)))
                })
                .collect::<Vec<_>>(),
        ));
        s.push_str(&table_line(
            "bytes / tonic unary (issue 6: >= 5)",
            &concs
                .iter()
                .map(|&c| {
                    let v = at(RGRID_BYTES, c).and_then(|b| {
                        ratio(b.ops_per_sec, find(records, TONIC_UNARY, c)?.ops_per_sec)
                    });
                    ratio_cell(v, Some(Target::AtLeast(BYTES_VS_TONIC)))
                })
                .collect::<Vec<_>>(),
        ));
        let two_over_one =
            |system: &str| ratio(at(system, 2)?.ops_per_sec, at(system, 1)?.ops_per_sec);
        let _ = writeln!(
            s,
            "  ops/s at 2 in flight / at 1 (goal >= {TWO_OVER_ONE}): bytes {}, rpc {}",
            ratio_cell(
                two_over_one(RGRID_BYTES),
                Some(Target::AtLeast(TWO_OVER_ONE))
            ),
            ratio_cell(two_over_one(RGRID_RPC), None),
        );
    }

    let concs = concurrency_levels(records, Group::Streams);
    let mut windows: Vec<usize> = records
        .iter()
        .filter(|r| r.group == Group::Streams && r.servers == Some(n))
        .filter_map(|r| r.window)
        .collect();
    windows.sort_unstable();
    windows.dedup();
    if !windows.is_empty() {
        s.push('\n');
        s.push_str(&header_line("streams, msgs/s (w = in/out window)", &concs));
        for shape in Shape::ALL {
            let base = rgrid_stream_system(shape);
            let tonic = tonic_baseline::stream_system(shape);
            for &w in &windows {
                let system = windowed_system(base, w);
                s.push_str(&table_line(
                    &format!("{} w{w}", shape.name()),
                    &concs
                        .iter()
                        .map(|&c| ops_cell(point(records, &system, n, c), true))
                        .collect::<Vec<_>>(),
                ));
            }
            s.push_str(&table_line(
                tonic,
                &concs
                    .iter()
                    .map(|&c| ops_cell(find(records, tonic, c), true))
                    .collect::<Vec<_>>(),
            ));
            for &w in &windows {
                let system = windowed_system(base, w);
                let target = (w == WIDE_WINDOW).then_some(Target::AtLeast(WIDE_STREAM_RATIO));
                let label = match target {
                    Some(_) => format!("w{w} / tonic (goal >= {WIDE_STREAM_RATIO})"),
                    None => format!("w{w} / tonic"),
                };
                s.push_str(&table_line(
                    &label,
                    &concs
                        .iter()
                        .map(|&c| {
                            let v = point(records, &system, n, c)
                                .and_then(|r| ratio_vs(records, r, tonic_counterpart));
                            ratio_cell(v, target)
                        })
                        .collect::<Vec<_>>(),
                ));
            }
        }
    }

    if let Some(first) = hol.first() {
        let _ = writeln!(
            s,
            "\nhead-of-line, {} small calls next to a {} KiB bulk stream; idle: {} ops/s, p50 {:.0} us, p99 {:.0} us",
            first.concurrency,
            first.bulk_bytes / 1024,
            si(first.idle_ops_per_sec),
            first.idle_p50_us,
            first.idle_p99_us
        );
        for h in hol {
            let p99 = match hol_p99_target(h.window) {
                Some(t) => format!(
                    "{:.2}x idle (goal <= {t}) {}",
                    h.p99_ratio,
                    pass(Target::AtMost(t).met(h.p99_ratio))
                ),
                None => format!("{:.2}x idle", h.p99_ratio),
            };
            let _ = write!(
                s,
                "  bulk window {}: p99 {:.0} us, {p99}; ops/s {}, {:.2}x idle (goal >= {HOL_OPS_RATIO}) {}; \
                 p50 {:.0} us, {:.2}x idle; bulk {:.0} MB/s",
                h.window,
                h.loaded_p99_us,
                si(h.loaded_ops_per_sec),
                h.ops_ratio,
                pass(Target::AtLeast(HOL_OPS_RATIO).met(h.ops_ratio)),
                h.loaded_p50_us,
                h.p50_ratio,
                h.stream_mb_per_s,
            );
            if let Some(e) = &h.stream_error {
                let _ = write!(s, " (bulk stream error: {e})");
            }
            s.push('\n');
        }
    }

    let mut systems: Vec<(&str, Group, bool)> = Vec::new();
    for r in records {
        let rgrid = r.servers == Some(n);
        let baseline = r.servers.is_none();
        if (rgrid || baseline)
            && r.group != Group::Hol
            && !systems
                .iter()
                .any(|(s, _, b)| *s == r.system && *b == baseline)
        {
            systems.push((&r.system, r.group, baseline));
        }
    }
    if !systems.is_empty() {
        let _ = writeln!(
            s,
            "\nallocations per operation, whole process (both ends), min-max over concurrency"
        );
        for (system, group, baseline) in systems {
            let list: Vec<f64> = records
                .iter()
                .filter(|r| r.system == system && (r.servers.is_none() == baseline))
                .filter(|r| baseline || r.servers == Some(n))
                .map(|r| r.allocs_per_op)
                .collect();
            let lo = list.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = list.iter().copied().fold(0.0, f64::max);
            let per = if group == Group::Requests {
                "per call"
            } else {
                "per stream"
            };
            let target = match system {
                RGRID_BYTES if !baseline => Some(BYTES_ALLOCS),
                RGRID_RPC if !baseline => Some(RPC_ALLOCS),
                _ => None,
            };
            let goal = target.map_or_else(String::new, |t| {
                format!("  goal max <= {t}: {}", pass(Target::AtMost(t).met(hi)))
            });
            let line = format!("  {system:<24} {per:<10} {lo:>6.2} - {hi:<6.2}{goal}");
            let _ = writeln!(s, "{}", line.trim_end());
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::report::tests::{rec, sample};
    use crate::report::{RGRID_TWOWAY, TONIC_BIDI};

    fn hol(window: usize, p99_ratio: f64, ops_ratio: f64) -> HolRecord {
        HolRecord {
            concurrency: 8,
            bulk_bytes: crate::hol::BULK_BYTES,
            window,
            idle_ops_per_sec: 100_000.0,
            idle_p50_us: 40.0,
            idle_p99_us: 100.0,
            loaded_ops_per_sec: 100_000.0 * ops_ratio,
            loaded_p50_us: 80.0,
            loaded_p99_us: 100.0 * p99_ratio,
            p99_ratio,
            p50_ratio: 2.0,
            ops_ratio,
            stream_mb_per_s: 900.0,
            stream_msgs_per_s: 3433.0,
            stream_error: None,
        }
    }

    fn full() -> Vec<Record> {
        let mut v = sample();
        // Against bytes of the sample: 140k at 1, 180k at 8, 500k at 64.
        for (c, rpc, twoway16) in [
            (1, 139_000.0, 9_000.0),
            (8, 150_000.0, 17_000.0),
            (64, 490_000.0, 25_000.0),
        ] {
            let mut r = rec(RGRID_RPC, Group::Requests, Some(2), c, rpc);
            r.allocs_per_op = if c == 64 { 7.004 } else { 6.5 };
            v.push(r);
            v.push(
                rec(
                    &windowed_system(RGRID_TWOWAY, 16),
                    Group::Streams,
                    Some(2),
                    c,
                    twoway16,
                )
                .with_window(16),
            );
        }
        v
    }

    #[test]
    fn names_and_targets() {
        assert_eq!(windowed_system(RGRID_TWOWAY, 1), RGRID_TWOWAY);
        assert_eq!(windowed_system(RGRID_TWOWAY, 16), "rgrid twoway w16");
        assert_eq!(
            tonic_counterpart("rgrid twoway w16"),
            Some(TONIC_BIDI),
            "windowed systems keep their counterpart"
        );
        assert!(Target::AtLeast(0.8).met(0.796));
        assert!(!Target::AtLeast(0.8).met(0.794));
        assert!(Target::AtMost(7.0).met(7.004));
        assert!(!Target::AtMost(3.0).met(3.01));
        assert_eq!(Target::AtMost(1.5).to_string(), "<= 1.5");
        assert_eq!(hol_p99_target(4), Some(2.0));
        assert_eq!(hol_p99_target(2), None);
    }

    #[test]
    fn issue_14_goals() {
        let v = full();
        let h = [hol(1, 1.4, 0.4), hol(4, 2.5, 0.6)];
        let g = goals(&v, &h, &[2, 4]);
        let named = |name: &str| -> Vec<&Goal> { g.iter().filter(|g| g.name == name).collect() };
        // Issue 6: bytes / tonic unary per grid size.
        assert_eq!(named("rgrid bytes / tonic unary ops/s").len(), 2);
        // Floor: one goal per concurrency; 140k/200k = 0.7, 180k/300k = 0.6, 500k/400k.
        let floor = named("rgrid bytes / ws floor ops/s");
        assert_eq!(floor.len(), 3);
        assert_eq!(
            floor.iter().map(|g| g.met).collect::<Vec<_>>(),
            [Some(false), Some(false), Some(true)]
        );
        assert_eq!(floor[2].at_concurrency, Some(64));
        // 2 in flight was not measured: no such goal.
        assert!(named("rgrid bytes ops/s at 2 in flight / at 1").is_empty());
        // rpc / bytes: 139/140 met, 150/180 not, 490/500 met.
        let typed = named("rgrid rpc / rgrid bytes ops/s");
        assert_eq!(
            typed.iter().map(|g| g.met).collect::<Vec<_>>(),
            [Some(true), Some(false), Some(true)]
        );
        // twoway w16 / tonic bidi: 9k/5k = 1.8, 17k/8k, 25k/10k.
        let wide = named("rgrid twoway w16 / tonic bidi msgs/s");
        assert_eq!(wide.len(), 3);
        assert_eq!(wide[0].met, Some(false));
        assert_eq!(wide[1].met, Some(true));
        assert_eq!(wide[0].window, Some(16));
        // Shapes without w16 points have no goals.
        assert!(named("rgrid request w16 / tonic client-stream msgs/s").is_empty());
        // Head-of-line: window 1 p99 1.4 <= 1.5 met, ops 0.4 not; window 4 p99 2.5 not.
        let p1 = named("head-of-line p99 loaded / idle, bulk window 1");
        assert_eq!(p1[0].met, Some(true));
        assert_eq!(p1[0].target, Target::AtMost(1.5));
        assert_eq!(
            named("head-of-line ops/s loaded / idle, bulk window 1")[0].met,
            Some(false)
        );
        assert_eq!(
            named("head-of-line p99 loaded / idle, bulk window 4")[0].met,
            Some(false)
        );
        // Allocations: bytes 3.0 (sample) met; rpc max 7.004 at 64, met at 2 decimals.
        let a = named("rgrid rpc allocations per call");
        assert_eq!(a[0].at_concurrency, Some(64));
        assert_eq!(a[0].met, Some(true));
        assert_eq!(named("rgrid bytes allocations per call")[0].met, Some(true));

        let text = goals_text(&g);
        assert!(
            text.contains("1 of 3 met; missed at conc 1 (0.70x), 8 (0.60x)"),
            "{text}"
        );
        assert!(
            text.contains("#6 rgrid bytes / tonic unary ops/s, 4 srv"),
            "{text}"
        );
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json[0]["target"]["at_least"], 5.0);
        assert_eq!(json[0]["over"], "min");
    }

    #[test]
    fn acceptance_block_marks_every_ratio() {
        let mut v = full();
        v.push(rec(RGRID_BYTES, Group::Requests, Some(2), 2, 70_000.0));
        v.push(rec(FLOOR, Group::Requests, None, 2, 200_000.0));
        let h = [hol(1, 1.4, 0.4), hol(4, 2.5, 0.6)];
        let text = issue14_text(&v, &h);
        assert!(text.contains("0.70x FAIL"), "{text}");
        assert!(text.contains("1.25x pass"), "{text}");
        assert!(text.contains("bytes 0.50x FAIL"), "{text}");
        assert!(text.contains("twoway w16"), "{text}");
        assert!(text.contains("w16 / tonic (goal >= 2)"), "{text}");
        assert!(
            text.contains("bulk window 4: p99 250 us, 2.50x idle (goal <= 2) FAIL; ops/s 60k, 0.60x idle (goal >= 0.5) pass"),
            "{text}"
        );
        assert!(
            text.contains("bulk window 1: p99 140 us, 1.40x idle (goal <= 1.5) pass"),
            "{text}"
        );
        assert!(text.contains("goal max <= 7: pass"), "{text}");
        // The rows of a table are as wide as its header.
        let lines: Vec<&str> = text.lines().collect();
        for title in ["single requests", "streams, msgs/s"] {
            let i = lines.iter().position(|l| l.starts_with(title)).unwrap();
            let width = lines[i].chars().count();
            for l in lines[i + 1..]
                .iter()
                .take_while(|l| !l.is_empty() && !l.contains(':'))
            {
                assert_eq!(l.chars().count(), width, "{l:?}\n{text}");
            }
        }
    }
}
