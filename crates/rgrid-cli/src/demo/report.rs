//! The demo's report: its JSON form and the text table.

use std::io::Write;

use serde::Serialize;

/// The kill and the restore of the victim connection.
#[derive(Serialize, Debug, Default, Clone)]
pub(super) struct KillReport {
    /// The nodes whose connection was killed (1-based).
    pub(super) nodes: [usize; 2],
    /// Seconds into the run when it was killed.
    pub(super) killed_at_s: f64,
    /// Milliseconds from the kill until both sides were connected again.
    pub(super) restored_after_ms: f64,
}

/// One row of the report.
#[derive(Serialize, Debug, Clone)]
pub(super) struct KindReport {
    /// The kind's name.
    pub(super) kind: &'static str,
    /// What one call of the kind does.
    pub(super) what: &'static str,
    /// Calls that succeeded.
    pub(super) calls: u64,
    /// Calls that failed.
    pub(super) errors: u64,
    /// Successful calls per second over the run.
    pub(super) ops_per_sec: f64,
    /// Median latency of a call (a whole stream for stream kinds), µs.
    pub(super) p50_us: u64,
    /// 99th percentile latency, µs.
    pub(super) p99_us: u64,
    /// Slowest call, µs.
    pub(super) max_us: u64,
}

/// The demo's report (also its JSON form).
#[derive(Serialize, Debug, Clone)]
pub(super) struct Report {
    /// Nodes in the grid.
    pub(super) nodes: usize,
    /// Websockets (one per pair).
    pub(super) connections: usize,
    /// Seconds the workload ran.
    pub(super) duration_s: f64,
    /// One row per kind.
    pub(super) kinds: Vec<KindReport>,
    /// Successful calls of every kind.
    pub(super) total_calls: u64,
    /// Successful calls per second.
    pub(super) total_ops_per_sec: f64,
    /// Reconnects of every pair (dialing side).
    pub(super) reconnects: u64,
    /// The deliberate kill, if it completed.
    pub(super) kill: Option<KillReport>,
    /// Failed calls, plus 1 if the kill did not complete.
    pub(super) errors: u64,
    /// The first few errors, for the report.
    pub(super) first_errors: Vec<String>,
}

/// `1234567` as `1,234,567`.
pub(super) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn print_report(r: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out)?;
    writeln!(
        out,
        "{:<17} {:<18} {:>11} {:>10} {:>8} {:>8} {:>9} {:>7}",
        "kind", "shape", "calls", "ops/s", "p50 µs", "p99 µs", "max µs", "errors"
    )?;
    for k in &r.kinds {
        writeln!(
            out,
            "{:<17} {:<18} {:>11} {:>10} {:>8} {:>8} {:>9} {:>7}",
            k.kind,
            k.what,
            thousands(k.calls),
            thousands(k.ops_per_sec as u64),
            thousands(k.p50_us),
            thousands(k.p99_us),
            thousands(k.max_us),
            k.errors
        )?;
    }
    writeln!(
        out,
        "{:<17} {:<18} {:>11} {:>10}",
        "total",
        "",
        thousands(r.total_calls),
        thousands(r.total_ops_per_sec as u64)
    )?;
    writeln!(out)?;
    match &r.kill {
        Some(k) => writeln!(
            out,
            "connection node{} ↔ node{} killed at {:.1} s, reconnected after {:.0} ms",
            k.nodes[0], k.nodes[1], k.killed_at_s, k.restored_after_ms
        )?,
        None => writeln!(out, "the connection kill did not complete")?,
    }
    writeln!(
        out,
        "{} nodes, {} connections, {:.1} s, reconnects: {}, errors: {}",
        r.nodes, r.connections, r.duration_s, r.reconnects, r.errors
    )?;
    for e in &r.first_errors {
        writeln!(out, "  error: {e}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
