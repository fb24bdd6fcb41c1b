//! Allocation accounting: decoding (valid or hostile input) allocates nothing, encoding into a
//! buffer with room allocates nothing, and the lossy control decoders allocate at most a
//! bounded multiple of their input.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(unsafe_code)] // the counting allocator

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use rgrid_proto::{
    ConnectRequest, ConnectResponse, DecodeLimits, Frame, Message, MuxConnectError, PingMsg,
    PongMsg, encode_merged,
};
use support::message;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + size));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// const-initialised thread-locals without destructors, which are safe to touch here.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns (allocations, bytes allocated) made by this thread meanwhile.
fn counted(f: impl FnOnce()) -> (usize, usize) {
    let a0 = ALLOCS.with(Cell::get);
    let b0 = BYTES.with(Cell::get);
    f();
    (ALLOCS.with(Cell::get) - a0, BYTES.with(Cell::get) - b0)
}

fn decode_frames(data: &[u8]) {
    let limits = DecodeLimits::default();
    let _ = std::hint::black_box(Message::decode(data, &limits));
    if let Ok(Frame::Merged(m)) = Frame::decode(data, &limits) {
        for item in m.iter() {
            std::hint::black_box(&item);
        }
    }
}

fn decode_controls(data: &[u8]) {
    let _ = std::hint::black_box(ConnectRequest::decode(data));
    let _ = std::hint::black_box(ConnectResponse::decode(data));
    let _ = std::hint::black_box(MuxConnectError::decode(data));
    let _ = std::hint::black_box(PingMsg::decode(data));
    let _ = std::hint::black_box(PongMsg::decode(data));
}

#[test]
fn counter_sees_allocations() {
    let (n, bytes) = counted(|| {
        std::hint::black_box(vec![0u8; 100]);
    });
    assert_eq!((n, bytes), (1, 100));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn decoding_allocates_nothing(
        m in message(),
        junk in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let valid = m.view().encode_to_vec().unwrap();
        let mut merged = Vec::new();
        encode_merged(&mut merged, [&valid, &valid]).unwrap();
        for input in [&valid, &merged, &junk] {
            let (n, _) = counted(|| decode_frames(input));
            prop_assert_eq!(n, 0, "decoding {:02x?} allocated", input);
        }
    }

    #[test]
    fn encoding_into_a_reserved_buffer_allocates_nothing(m in message()) {
        let msg = m.view();
        let mut buf = Vec::with_capacity(2 * msg.encoded_len() + 16);
        let (n, _) = counted(|| {
            msg.encode(&mut buf).unwrap();
            msg.encode_merged_entry(&mut buf).unwrap();
        });
        prop_assert_eq!(n, 0);
    }

    #[test]
    fn control_decoding_allocates_at_most_three_times_the_input(
        junk in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let (_, bytes) = counted(|| decode_controls(&junk));
        // Only invalid UTF-8 in error texts is copied, each bad byte growing to U+FFFD.
        prop_assert!(bytes <= 3 * 5 * junk.len(), "{} bytes for {} input", bytes, junk.len());
    }
}
