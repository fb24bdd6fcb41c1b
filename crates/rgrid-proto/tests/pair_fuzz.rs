//! The `mux_state` fuzz driver (`pair/fuzz.rs`) on stable: arbitrary command sequences on a
//! pair of real connection cores, with the invariants checked after every step. The
//! cargo-fuzz target `fuzz/fuzz_targets/mux_state.rs` runs the same driver under libFuzzer.
//!
//! `PAIR_FUZZ_CASES` raises the number of cases of both tests (default: a few seconds in
//! debug builds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The driver uses the pair harness as `crate::harness` (tests/suite.rs declares it).
#[path = "pair/fuzz.rs"]
mod fuzz;

use std::collections::HashMap;

use proptest::prelude::*;
use rgrid_proto::Op;

fn cases(default: u32) -> u32 {
    std::env::var("PAIR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_command_sequences(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = fuzz::run(&data);
    }
}

/// Long runs from a fixed generator: deterministic, so a failure names its seed. Also checks
/// that the driver is not vacuous: the runs together use every op of a stream's life, read
/// stream messages, and both close and stay up.
#[test]
fn seeded_long_runs() {
    let mut sent: HashMap<u8, usize> = HashMap::new();
    let (mut reads, mut closed, mut open) = (0, 0, 0);
    for seed in 0..u64::from(cases(64)) {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let data: Vec<u8> = (0..6000)
            .map(|_| {
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        let stats = match std::panic::catch_unwind(|| fuzz::run(&data)) {
            Ok(stats) => stats,
            Err(_) => panic!("seed {seed} failed"),
        };
        for (op, n) in stats.sent {
            *sent.entry(op).or_default() += n;
        }
        reads += stats.reads;
        if stats.closed.is_some() {
            closed += 1;
        } else {
            open += 1;
        }
    }
    for op in [
        Op::PING,
        Op::PONG,
        Op::CONNECT_MUX,
        Op::MUX_CONNECT_ERROR,
        Op::DISCONNECT_CLIENT_MUX,
        Op::DISCONNECT_SERVER_MUX,
        Op::MUX_CLIENT_MSG,
        Op::MUX_SERVER_MSG,
        Op::UNBLOCK_SRV_MUX,
        Op::UNBLOCK_CL_MUX,
        Op::ACK_MUX,
        Op::REQUEST,
        Op::RESPONSE,
    ] {
        assert!(sent.get(&op.0).copied().unwrap_or(0) > 0, "{op} never sent");
    }
    assert!(reads > 100, "{reads} stream messages read");
    assert!(
        closed > 0 && open > 0,
        "{closed} runs closed, {open} stayed up"
    );
}
