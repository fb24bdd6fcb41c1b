//! The `rgrid` command (DESIGN.md §4):
//!
//! - `rgrid` / `rgrid demo`: a local multi-node grid in this process, a mixed workload with a
//!   progress display, one connection killed and restored, and a report;
//! - `rgrid serve`: a real node (optionally with the conformance handlers);
//! - `rgrid call`: join a grid, make one call or open one stream, print the answer
//!   (exit code 3 for a remote error, 2 for a local one);
//! - `rgrid bench`: the benchmark matrix against the baselines (`rgrid-bench`), only in a
//!   binary built with the cargo feature `bench` (off by default, so that `cargo install`
//!   does not build tonic and the other baselines); without it, the command says how to get
//!   it and exits with code 2.
//!
//! `serve` and `call` take exactly one source of credentials (`--jwt-secret`, the MinIO root
//! credentials or `--token`; see `auth.rs`), never printed.
//!
//! Logs go to stderr through `tracing`; `RUST_LOG` sets the filter.

mod auth;
mod call;
mod conformance;
mod demo;
mod metrics;
mod node;
mod serve;

use std::process::ExitCode;

/// Counts allocations for `rgrid bench` (relaxed per-thread counters). Only in a binary
/// built with the `bench` feature; the default build keeps the system allocator.
#[cfg(feature = "bench")]
#[global_allocator]
static GLOBAL: rgrid_bench::alloc::CountingAlloc = rgrid_bench::alloc::CountingAlloc;

/// How to get a binary with `rgrid bench`, printed when this one was built without it.
#[cfg(not(feature = "bench"))]
const NO_BENCH: &str = "\
rgrid: this rgrid was built without the `bench` feature, which `rgrid bench` needs
(it keeps the benchmark's baselines, tonic and its HTTP/2 stack, out of the installed binary).
From a checkout of rgrid, run the benchmark with:
    cargo run --release -p rgrid-cli --features bench -- bench [ARGS]
or install a binary that has it with:
    cargo install --path crates/rgrid-cli --features bench";

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "rgrid",
    version,
    about = "Fast two-way RPC between cluster servers over one websocket per pair (MinIO grid v1)",
    after_help = "With no command, rgrid runs the demo."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local grid in this process with a mixed workload and print a report (default).
    Demo(demo::DemoArgs),
    /// Run a real node until SIGINT or SIGTERM; prints `ready <url>` once it listens.
    Serve(serve::ServeArgs),
    /// Join a grid, make one call (or open one stream) and print each response on its own line.
    Call(call::CallArgs),
    /// Run the benchmark matrix (rgrid against the websocket floor and tonic); see `rgrid bench --help`.
    /// Needs a binary built with `--features bench`.
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments of the benchmark program.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second initialisation (never happens in the binary) would only be ignored.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Waits for SIGINT or SIGTERM and names the one that came.
pub(crate) async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops this node");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// `rgrid bench ARGS`: the benchmark program's exit code.
#[cfg(feature = "bench")]
fn bench(args: Vec<String>) -> ExitCode {
    let code = rgrid_bench::run(args);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `rgrid bench` in a binary built without the benchmark: how to get it, exit code 2.
#[cfg(not(feature = "bench"))]
fn bench(_args: Vec<String>) -> ExitCode {
    eprintln!("{NO_BENCH}");
    ExitCode::from(2)
}

/// Parses the command line. When clap refuses two authentication sources, the error also
/// names the authentication variables set in the environment (they count as their flags).
fn parse() -> Result<Cli, clap::Error> {
    Cli::try_parse().map_err(|mut e| {
        if e.kind() == clap::error::ErrorKind::ArgumentConflict {
            let tips = auth::env_tips();
            if !tips.is_empty() {
                e.insert(
                    clap::error::ContextKind::Suggested,
                    clap::error::ContextValue::StyledStrs(
                        tips.into_iter().map(Into::into).collect(),
                    ),
                );
            }
        }
        e
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let command = cli
        .command
        .unwrap_or_else(|| Command::Demo(demo::DemoArgs::default()));
    if let Command::Bench { args } = command {
        return bench(args);
    }
    init_logging(match command {
        Command::Serve(_) => "info",
        _ => "warn",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rgrid: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Call(args) => call::run(args).await,
            Command::Bench { .. } => Ok(()),
        }
    });
    // Tasks still running (dial loops of a shut-down manager) must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{f}");
            ExitCode::from(f.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::error::ErrorKind;

    use super::*;

    const CALL: [&str; 10] = [
        "rgrid",
        "call",
        "--local",
        "http://127.0.0.1:1",
        "--hosts",
        "http://127.0.0.1:2",
        "--to",
        "http://127.0.0.1:2",
        "--handler",
        "78",
    ];

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(CALL.iter().chain(extra))
    }

    #[test]
    fn two_authentication_sources_are_refused() {
        for extra in [
            &["--jwt-secret", "a", "--token", "b"][..],
            &["--jwt-secret", "a", "--jwt-secret-file", "f"],
            &["--jwt-secret-file", "f", "--token", "b"],
            &["--jwt-secret", "a", "--minio-access-key", "k"],
            &["--jwt-secret-file", "f", "--minio-secret-key", "s"],
            &["--token", "b", "--minio-secret-key-file", "f"],
            &[
                "--minio-access-key",
                "k",
                "--minio-secret-key",
                "s",
                "--minio-secret-key-file",
                "f",
            ],
        ] {
            let e = parse(extra).expect_err("conflict");
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{extra:?}: {e}");
            let text = e.to_string();
            assert!(text.contains("cannot be used with"), "{text}");
        }
        // One source of each kind parses.
        for extra in [
            &["--jwt-secret", "a"][..],
            &["--jwt-secret-file", "f"],
            &["--minio-access-key", "k", "--minio-secret-key", "s"],
            &["--minio-access-key", "k", "--minio-secret-key-file", "f"],
            &["--token", "b"],
        ] {
            assert!(parse(extra).is_ok(), "{extra:?}");
        }
    }

    #[test]
    fn parsed_arguments_do_not_show_secrets() {
        let cli = parse(&[
            "--minio-access-key",
            "k",
            "--minio-secret-key",
            "minio-root-password",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("minio-root-password"), "{shown}");
        let cli = parse(&["--jwt-secret", "the-jwt-secret"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("the-jwt-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
