//! rgrid's benchmark suite: rgrid's single requests and streams (MinIO's BenchmarkRequests and
//! BenchmarkStream shapes) and, in the same run, the baselines they are judged against: a raw
//! websocket echo over one loopback connection (the floor) and tonic gRPC on one HTTP/2
//! connection; then a head-of-line scenario (small calls next to a bulk stream), and the
//! goals of the project's issues judged on ratios of points of the same run
//! ([`acceptance`]). On request (`--only scale`), the scale scenario ([`scale`]): full meshes
//! of up to 64 nodes in one process, their idle memory and CPU, calls/s and the time to
//! reconnect after every node restarted at once.
//!
//! Every point is closed-loop: `concurrency` client tasks on the same runtime as the servers
//! (performance guide §4.3), a warm-up, then a fixed measuring time, repeated and reported as
//! the median by ops/s. Allocations are counted for the whole process (both ends) by
//! [`alloc::CountingAlloc`], which the binary installs as its global allocator (without it
//! the allocation columns read 0).
//!
//! The entry point is [`run`]: the `rgrid-bench` binary and `rgrid bench` both call it. The
//! `rgrid` command has it only when built with its cargo feature `bench` (off by default, so
//! that `cargo install` does not build the baselines):
//! `cargo run --release -p rgrid-cli --features bench -- bench [ARGS]`.

use std::time::Duration;

pub mod acceptance;
pub mod alloc;
pub mod cli;
pub mod floor;
pub mod hol;
pub mod measure;
pub mod report;
pub mod requests;
pub mod scale;
pub mod streams;
pub mod suite;
pub mod svg;
pub mod sys;
pub mod tonic_baseline;

/// Runs the benchmark with `args` (the arguments without the program name, see
/// [`cli::USAGE`]), prints the tables, writes `--json` and `--svg` files, and returns the
/// process exit code: 0 on success, 1 when the run failed, 2 for bad arguments (after
/// printing the usage).
///
/// It builds its own multi-thread tokio runtime and blocks until the run is over; called from
/// inside a runtime, it runs on a thread of its own.
pub fn run(args: Vec<String>) -> i32 {
    let args = match cli::parse(&args) {
        Ok(cli::Parsed::Run(a)) => *a,
        Ok(cli::Parsed::Help) => {
            println!("{}", cli::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            return 2;
        }
    };
    let work = move || run_parsed(&args);
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::spawn(work).join().unwrap_or(1)
    } else {
        work()
    }
}

fn run_parsed(args: &cli::Args) -> i32 {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(args.workers);
    if let Some(n) = args.io_events_per_tick {
        builder.max_io_events_per_tick(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(suite::run_all(args));
    rt.shutdown_timeout(Duration::from_secs(2));
    let doc = match result {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut code = 0;
    if let Some(path) = &args.json {
        match doc.to_json() {
            Ok(json) => match std::fs::write(path, json) {
                Ok(()) => println!("wrote {}", path.display()),
                Err(e) => {
                    eprintln!("error: writing {}: {e}", path.display());
                    code = 1;
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
            }
        }
    }
    if let Some(path) = &args.svg {
        match std::fs::write(path, suite::chart(&doc)) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("error: writing {}: {e}", path.display());
                code = 1;
            }
        }
    }
    let secs = doc.elapsed_s;
    println!(
        "elapsed: {}m {:02}s ({secs:.1} s)",
        (secs / 60.0).floor() as u64,
        (secs % 60.0).floor() as u64
    );
    code
}
