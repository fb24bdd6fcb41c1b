//! `rgrid bench` is part of the CLI contract (DESIGN.md §4) but lives behind the cargo
//! feature `bench`, off by default so that `cargo install` builds no benchmark baselines:
//! without the feature the command names the command that builds it and exits with code 2;
//! with it, the benchmark program answers.
//!
//! `cargo test -p rgrid-cli` checks the first promise, `cargo test -p rgrid-cli --features
//! bench --test bench_command` the second (CI runs both).

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

#[cfg(not(feature = "bench"))]
#[test]
fn without_the_feature_bench_names_the_command_that_builds_it() {
    for args in [&["bench"][..], &["bench", "--quick"], &["bench", "--help"]] {
        let out = rgrid(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "rgrid {args:?}: {stderr}");
        assert!(
            stderr.contains("cargo run --release -p rgrid-cli --features bench -- bench"),
            "rgrid {args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "rgrid {args:?} printed on stdout");
    }
}

#[cfg(feature = "bench")]
#[test]
fn with_the_feature_bench_runs_the_benchmark_program() {
    let out = rgrid(&["bench", "--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("usage: rgrid-bench"), "{stdout}");
    // Bad arguments reach the benchmark's own parser: its exit code 2 and its usage.
    let out = rgrid(&["bench", "--servers", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("usage: rgrid-bench"), "{stderr}");
}
