//! `rgrid demo` (and `rgrid` with no arguments): a local grid, every kind of call, one
//! connection killed and restored, zero errors, and a report in text or JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rgrid");

/// Runs `rgrid <args>` with a 60 s bound.
fn rgrid(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("rgrid {args:?} did not finish within 60 s");
        }
    }
}

#[test]
fn the_json_report_shows_every_kind_a_reconnect_and_no_errors() {
    let out = rgrid(&["demo", "--nodes", "3", "--duration", "1.5", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["nodes"], 3);
    assert_eq!(report["connections"], 3);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert!(report["reconnects"].as_u64().unwrap() >= 1, "{report:#}");
    assert_eq!(report["kill"]["nodes"], serde_json::json!([1, 2]));
    let kinds = report["kinds"].as_array().unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "single",
            "typed",
            "stream-request",
            "stream-responses",
            "stream-twoway"
        ]
    );
    for k in kinds {
        assert!(k["calls"].as_u64().unwrap() > 0, "{k}");
        assert_eq!(k["errors"], 0, "{k}");
        let (p50, p99, max) = (
            k["p50_us"].as_u64().unwrap(),
            k["p99_us"].as_u64().unwrap(),
            k["max_us"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{k}");
    }
}

#[test]
fn the_text_report_names_every_kind_and_the_reconnect() {
    // The default run lasts 5 s; a shorter one exercises the same path.
    let out = rgrid(&["demo", "--duration", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 nodes, 6 connections"), "{stdout}");
    assert!(stdout.contains("reconnected after"), "{stdout}");
    assert!(stdout.contains("errors: 0"), "{stdout}");
    for kind in [
        "single",
        "typed",
        "stream-request",
        "stream-responses",
        "stream-twoway",
    ] {
        assert!(stdout.contains(kind), "{stdout}");
    }
}

#[test]
fn bad_flags_exit_with_code_2() {
    assert_eq!(rgrid(&["demo", "--nodes", "1"]).status.code(), Some(2));
    assert_eq!(rgrid(&["demo", "--duration", "0"]).status.code(), Some(2));
    assert_eq!(rgrid(&["no-such-command"]).status.code(), Some(2));
}
