//! Runs every single-process example of `examples/` (issue 15, item 9): each must exit 0
//! within [`LIMIT`] (it is killed and the test fails otherwise) and print its key lines.
//! `examples/quorum_lock.rs` takes three processes: `tests/example_quorum_lock.rs` runs it.
//!
//! `cargo test` builds the examples next to this test (`target/<profile>/examples/`),
//! except those whose `required-features` this build lacks; their tests print why they
//! did not run instead of passing silently. (rgrid's dev-dependency on itself enables `tls`
//! and `test-util`, so `cargo test --workspace` builds and runs all of them.) Selecting
//! this test alone (`--test suite examples::`, or any `--test`) does not build the examples: build them first
//! (`cargo build -p rgrid --examples`). A binary older than its sources fails the test
//! rather than run stale code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one example may run. They finish in well under a second on loopback; the
/// margin is for a loaded CI machine.
const LIMIT: Duration = Duration::from_secs(30);

/// `target/<profile>/examples/<name>`: this test runs from `target/<profile>/deps/`.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The files Cargo built `exe` from: its dep-info file (`<exe>.d`, next to it) lists them
/// after `<exe>:`, separated by spaces (a space inside a path escaped as `\ `).
fn sources_of(exe: &Path) -> Vec<PathBuf> {
    let dep_info = exe.with_extension("d");
    let text = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|e| panic!("{}: {e}", dep_info.display()));
    let first_line = text.lines().next().unwrap_or_default();
    let (_, list) = first_line.split_once(": ").unwrap_or_default();
    let mut paths = Vec::new();
    let mut path = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => path.extend(chars.next()),
            ' ' => {
                paths.extend((!path.is_empty()).then(|| PathBuf::from(std::mem::take(&mut path))))
            }
            c => path.push(c),
        }
    }
    paths.extend((!path.is_empty()).then(|| PathBuf::from(path)));
    paths
}

/// Fails if the example's binary is missing or older than one of the files Cargo built it
/// from (say, after `--test suite` alone rebuilt the library but not the examples).
fn check_fresh(exe: &Path) {
    let built = std::fs::metadata(exe).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "{} is missing: `cargo test -p rgrid` builds it (`--test suite` alone does not: \
             run `cargo build -p rgrid --examples` first)",
            exe.display()
        );
    };
    let sources = sources_of(exe);
    assert!(
        !sources.is_empty(),
        "no sources listed for {}",
        exe.display()
    );
    for source in sources {
        let changed = std::fs::metadata(&source).and_then(|m| m.modified());
        assert!(
            changed.is_ok_and(|changed| changed <= built),
            "{} is older than {} (or that file is gone): rebuild it \
             (`cargo build -p rgrid --examples`)",
            exe.display(),
            source.display()
        );
    }
}

/// Reads a child's pipe to the end on a thread of its own (so a full pipe never blocks it).
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Runs example `name` and checks that it succeeds and that its output contains every one
/// of `key_lines`. `feature` is the feature the example requires and whether this build
/// has it.
fn run_example(name: &str, feature: Option<(&str, bool)>, key_lines: &[&str]) {
    if let Some((feature, false)) = feature {
        println!(
            "NOT RUN: example `{name}` needs feature `{feature}`, which this build lacks \
             (cargo test -p rgrid --features {feature} --test suite examples::)"
        );
        return;
    }
    let exe = example_path(name);
    check_fresh(&exe);
    let mut child = Command::new(&exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    // The pipes close when the process ends (or is killed).
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    let took = started.elapsed();
    let Some(status) = status else {
        panic!(
            "example `{name}` did not finish within {LIMIT:?}; killed\nstdout:\n{out}\nstderr:\n{err}"
        );
    };
    assert!(
        status.success(),
        "example `{name}` failed: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    for key in key_lines {
        assert!(
            out.lines().any(|l| l.contains(key)),
            "example `{name}` did not print {key:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
    }
    println!("example `{name}`: ok in {took:?}");
}

#[test]
fn hello() {
    run_example(
        "hello",
        None,
        &[
            "answered: hello, world (from http://127.0.0.1:",
            "hello: ok",
        ],
    );
}

#[test]
fn typed_service() {
    run_example(
        "typed_service",
        None,
        &[
            "remote error: no key \"size\"",
            "the remote has no method \"kv/delete\"",
            "stored `everywhere`: version 1",
            "typed_service: ok",
        ],
    );
}

#[test]
fn streams() {
    run_example(
        "streams",
        None,
        &[
            r#"count: ["item 1 of 3", "item 2 of 3", "item 3 of 3"]"#,
            r#"shout: ["> STREAMS", "> ARE", "> TWO", "> WAY"]"#,
            "shout failed remotely: empty word",
            "ticks: the handler stopped after",
            "streams: ok",
        ],
    );
}

#[test]
fn axum_mount() {
    run_example(
        "axum_mount",
        None,
        &[
            "served through axum",
            "GET /health: HTTP/1.1 200 OK",
            "axum_mount: ok",
        ],
    );
}

#[test]
fn tls_jwt() {
    run_example(
        "tls_jwt",
        Some(("tls", cfg!(feature = "tls"))),
        &[
            "refused it: connection rejected: auth token: invalid token signature",
            "was refused: connection rejected: auth token: invalid token signature",
            "over TLS",
            "tls_jwt: ok",
        ],
    );
}

#[test]
fn lock_grid() {
    run_example(
        "lock_grid",
        None,
        &[
            "codes [0, 1, 0, 0, 3]",
            "lock call on the main grid: Invalid Handler",
            "lock_grid: ok",
        ],
    );
}

#[test]
fn custom_transport() {
    run_example(
        "custom_transport",
        None,
        &["over a pipe", "dials made: 1", "custom_transport: ok"],
    );
}

#[test]
fn testing() {
    run_example(
        "testing",
        Some(("test-util", cfg!(feature = "test-util"))),
        &[
            "test a_killed_connection_fails_the_call_then_recovers ... ok",
            "testing: ok",
        ],
    );
}
