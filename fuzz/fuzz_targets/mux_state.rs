//! Two real connection cores (`rgrid_proto::conn::Core`) wired in memory with virtual time,
//! driven by an arbitrary sequence of commands: open, send on, close, receive from, cancel and
//! release streams; start, poll and abandon requests; respond; run handlers (send, end,
//! receive, done); advance the time or step to the next timer; transmit, deliver, lose
//! frames, pump; inject hostile messages or garbage.
//!
//! After every command: nothing panicked; credits never exceed the windows; per mux and
//! direction the sequence numbers on the wire are consecutive, the ack comes first, nothing
//! follows a mux's final disconnect; the queued counters are zero whenever the pair is quiet.
//! At the end every handle is released and both cores hold no mux, timer or queued answer.
//!
//! The driver and the pair harness live with the crate's tests
//! (`crates/rgrid-proto/tests/pair/`), where the property test `tests/pair_fuzz.rs` runs the
//! same driver on stable; a crash input found here replays there with `fuzz::run(&input)`.
#![no_main]

#[path = "../../crates/rgrid-proto/tests/pair/harness.rs"]
mod harness;

#[path = "../../crates/rgrid-proto/tests/pair/fuzz.rs"]
mod fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz::run(data);
});
