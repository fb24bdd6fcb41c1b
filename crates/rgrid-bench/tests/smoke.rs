//! End to end: a tiny matrix (concurrency 1 and 2, 2 servers, 50 ms points) with every
//! system, both stream windows, the head-of-line scenario at both bulk windows, the issue-14
//! goals, and the JSON and SVG outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rgrid_bench::alloc::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    assert_eq!(rgrid_bench::run(args(&["--bogus"])), 2);
    assert_eq!(rgrid_bench::run(args(&["--servers", "1"])), 2);
    assert_eq!(rgrid_bench::run(args(&["--help"])), 0);
}

#[test]
fn tiny_matrix_end_to_end() {
    let dir = std::env::temp_dir();
    let json = dir.join(format!("rgrid-bench-smoke-{}.json", std::process::id()));
    let svg = dir.join(format!("rgrid-bench-smoke-{}.svg", std::process::id()));
    let started = std::time::Instant::now();
    // Called from inside a runtime, as an async CLI would: run() moves to a thread of its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(async {
        rgrid_bench::run(args(&[
            "--concurrency",
            "1,2",
            "--servers",
            "2",
            "--warmup-ms",
            "20",
            "--measure-ms",
            "50",
            "--repeats",
            "1",
            "--hol-concurrency",
            "2",
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ]))
    });
    assert_eq!(code, 0);
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let points = doc["points"].as_array().unwrap();
    let systems: Vec<&str> = points
        .iter()
        .map(|p| p["system"].as_str().unwrap())
        .collect();
    for want in [
        "ws floor",
        "tonic unary",
        "rgrid bytes",
        "rgrid rpc",
        "tonic client-stream",
        "tonic server-stream",
        "tonic bidi",
        "rgrid request",
        "rgrid responses",
        "rgrid twoway",
        "rgrid request w16",
        "rgrid responses w16",
        "rgrid twoway w16",
        "rgrid bytes idle",
        "rgrid bytes + bulk w1",
        "rgrid bytes + bulk w4",
    ] {
        assert!(systems.contains(&want), "{want} missing from {systems:?}");
    }
    for p in points {
        assert!(p["ops_per_sec"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
        assert!(p["allocs_per_op"].as_f64().unwrap() > 0.0, "{p}");
    }
    let hol = doc["hol"].as_array().unwrap();
    assert_eq!(hol.len(), 2);
    for (h, window) in hol.iter().zip([1, 4]) {
        assert_eq!(h["window"], window, "{h}");
        assert!(h["stream_mb_per_s"].as_f64().unwrap() > 0.0, "{h}");
        assert!(h["idle_p99_us"].as_f64().unwrap() > 0.0, "{h}");
        assert!(h["ops_ratio"].as_f64().unwrap() > 0.0, "{h}");
        assert_eq!(h["stream_error"], serde_json::Value::Null, "{h}");
    }
    // Issue 6: bytes / tonic. Issue 14: bytes / floor at 1 and 2, 2 vs 1 in flight, rpc /
    // bytes at 1 and 2, three w16 shapes / tonic at 1 and 2, head-of-line p99 and ops at
    // both windows, allocations of bytes and rpc.
    let goals = doc["goals"].as_array().unwrap();
    let names: Vec<&str> = goals.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(goals.len(), 1 + 2 + 1 + 2 + 6 + 4 + 2, "{names:?}");
    for g in goals {
        assert!(g["value"].as_f64().is_some(), "{g}");
        assert!(g["met"].as_bool().is_some(), "{g}");
    }

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("tonic bidi"));
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&svg);
}
