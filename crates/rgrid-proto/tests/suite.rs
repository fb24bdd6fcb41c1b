//! rgrid-proto's integration tests that need no process of their own, built as one test
//! binary.
//!
//! Every file under `tests/` still holds one promise (CONTRIBUTING.md, "House rules for
//! tests"); this crate root only gathers them as modules, so the tests compile (optimised,
//! see the workspace's `[profile.test.package.rgrid-proto]`) and link once instead of once per
//! file. The pair harness (`pair/harness.rs`, also the `mux_state` fuzz target's) and the
//! property-test strategies (`support/`) are modules of this root, which the files reach as
//! `crate::harness` and `crate::support`. Run one file's tests with its module path as the
//! filter: `cargo test -p rgrid-proto --test suite pair_fuzz::`.
//!
//! `no_alloc.rs` is a `[[test]]` of its own in `Cargo.toml` (`autotests = false`): it
//! installs a counting global allocator. [`every_test_file_is_built`] fails when a file under
//! `tests/` is in neither list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "pair/harness.rs"]
mod harness;
mod support;

mod golden;
mod pair;
mod pair_fuzz;
mod properties;
mod who_dials;

/// With `autotests = false`, cargo builds only the test targets `Cargo.toml` names: a new
/// file under `tests/` that is neither a module of this suite nor a `[[test]]` of its own
/// would never run. Exactly one of the two must name each file.
#[test]
fn every_test_file_is_built() {
    let suite = include_str!("suite.rs");
    let manifest = include_str!("../Cargo.toml");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
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
            "tests/{name}.rs must be either a `mod {name};` of tests/suite.rs or a [[test]] of \
             its own in Cargo.toml (module: {module}, own test: {own})"
        );
        checked += 1;
    }
    assert!(checked > 1, "no test files found in {}", dir.display());
}
