#!/usr/bin/env bash
# Builds and runs every fuzz target for a bounded time, then prints executions per second.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 s each, every target)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Seeds are
# (re)written into fuzz/corpus/<target>/ by `cargo run --example seeds`; the corpus grows
# while fuzzing and is not checked in. A crash leaves its input in fuzz/artifacts/<target>/
# and makes the script exit non-zero after the remaining targets ran; minimise it with
# `cargo +nightly fuzz tmin -a <target> <file>` and pin it as a #[test] in the owning crate.
set -uo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-60}"
shift || true
ALL_TARGETS=(frame_decode merged handshake typed_decode mux_state jwt_verify)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi

TOOLCHAIN="${RGRID_FUZZ_TOOLCHAIN:-+nightly}"
# -a: debug assertions and overflow checks on (an overflow is a crash, not a wrap).
BUILD_FLAGS=(-a)
# Bounded time; final stats for the exec/s table; a single allocation above 128 MiB (a
# length prefix trusted before the bytes were seen) is a crash; a 10 s input is a hang.
FUZZ_FLAGS=(-max_total_time="$SECS" -print_final_stats=1 -malloc_limit_mb=128
    -rss_limit_mb=2048 -timeout=10 -max_len=8192)

LOG_DIR=fuzz/target/run-logs
mkdir -p "$LOG_DIR"

echo "== seeds"
cargo "$TOOLCHAIN" run --quiet --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus \
    || { echo "seed generation failed"; exit 2; }

echo "== build"
cargo "$TOOLCHAIN" fuzz build "${BUILD_FLAGS[@]}" || { echo "build failed"; exit 2; }

failed=()
rows=()
for t in "${TARGETS[@]}"; do
    log="$LOG_DIR/$t.log"
    echo "== $t (${SECS}s)"
    cargo "$TOOLCHAIN" fuzz run "${BUILD_FLAGS[@]}" "$t" -- "${FUZZ_FLAGS[@]}" >"$log" 2>&1
    rc=$?
    units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    avg=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
    corpus=$(ls "fuzz/corpus/$t" 2>/dev/null | wc -l)
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        status="FAILED (exit $rc)"
        grep -E 'panicked at|ERROR: |SUMMARY: |Test unit written to|artifact_prefix' "$log" | head -20
    else
        status="ok"
    fi
    tail -3 "$log"
    rows+=("$(printf '%-14s %10s %12s %8s %8s %8s  %s' "$t" "${avg:--}" "${units:--}" \
        "${cov:--}" "${corpus}" "${rss:--}" "$status")")
done

echo
echo "== summary (${SECS}s per target; logs in $LOG_DIR)"
printf '%-14s %10s %12s %8s %8s %8s  %s\n' target exec/s executions cov corpus rss_mb status
for r in "${rows[@]}"; do
    echo "$r"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed: ${failed[*]} (crash inputs in fuzz/artifacts/<target>/, logs in $LOG_DIR)"
    exit 1
fi
