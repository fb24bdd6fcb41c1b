//! rgrid's integration tests that need no process of their own, built as one test binary.
//!
//! Every file under `tests/` still holds one promise (CONTRIBUTING.md, "House rules for
//! tests"); this crate root only gathers them as modules, so `cargo test` compiles and links
//! the library, tokio and rustls into one binary instead of one per file (most of the debug
//! test time was those links). The files use `crate::common` for the shared helpers. Run one
//! file's tests with its module path as the filter: `cargo test -p rgrid --test suite sim::`.
//!
//! A file that needs a process of its own is a `[[test]]` of its own in `Cargo.toml`
//! (`autotests = false`), which says why: a global allocator, a global tracing subscriber or
//! metrics recorder, or a memory figure (RSS) that must belong to that test alone.
//! [`every_test_file_is_built`] fails when a file under `tests/` is in neither list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod admission;
mod clients;
mod diagnostics;
mod disconnect;
mod example_quorum_lock;
mod examples;
mod fanout;
mod handler_isolation;
mod handshake;
mod hostile;
mod hosts;
mod http_mount;
mod keepalive_bound;
mod limits;
mod membership;
mod services;
mod sim;
mod single_roundtrip;
mod stream_capacities;
mod stream_frames;
mod stream_wire;
mod streams;
mod tls;
mod typed;
mod wire_order;

/// With `autotests = false`, cargo builds only the test targets `Cargo.toml` names: a new
/// file under `tests/` that is neither a module of the crate's suite nor a `[[test]]` of its
/// own would never run. Exactly one of the two must name each file, in this crate and in
/// rgrid-proto (whose suite is checked from here, when its sources are beside this crate's).
#[test]
fn every_test_file_is_built() {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    check_test_files(here);
    let proto = here.join("../rgrid-proto");
    if proto.join("tests/suite.rs").exists() {
        check_test_files(&proto);
    } else {
        eprintln!("NOT RUN for rgrid-proto: its sources are not beside this crate's");
    }
}

/// Checks the crate at `krate`: every `tests/*.rs` but the suite is exactly one of a module
/// of `tests/suite.rs` or a `[[test]]` of `Cargo.toml`.
fn check_test_files(krate: &std::path::Path) {
    let read = |p: &str| std::fs::read_to_string(krate.join(p)).unwrap();
    let (suite, manifest) = (read("tests/suite.rs"), read("Cargo.toml"));
    let dir = krate.join("tests");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "suite" {
            continue;
        }
        let module = suite.lines().any(|l| l == format!("mod {name};"));
        let own = manifest.contains(&format!("[[test]]\nname = \"{name}\"\n"));
        assert!(
            module != own,
            "{}: tests/{name}.rs must be either a `mod {name};` of tests/suite.rs or a \
             [[test]] of its own in Cargo.toml (module: {module}, own test: {own})",
            krate.display()
        );
        checked += 1;
    }
    assert!(checked > 1, "no test files found in {}", dir.display());
}
