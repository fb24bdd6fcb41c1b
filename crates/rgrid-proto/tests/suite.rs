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
//! installs a counting global allocator. rgrid's suite (`every_test_file_is_built` in
//! `crates/rgrid/tests/suite.rs`) fails when a file under this crate's `tests/` is in
//! neither list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "pair/harness.rs"]
mod harness;
mod support;

mod golden;
mod pair;
mod pair_fuzz;
mod properties;
mod who_dials;
