//! Allocations of typed calls, counted by a global allocator per thread: the grid runs on a
//! current-thread runtime, so both ends of every call allocate on the test's thread. Shows
//! (with `--nocapture`) and bounds the steady-state allocations per typed single call, per raw
//! call for comparison, per typed stream message and per 256 KiB echo; and checks that
//! hostile payloads are refused without large allocations. With feature `metrics`, with a
//! recorder installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use common::{HOSTILE_PAYLOADS, TestRequest, TestResponse, assert_no_active, grid_with};
use rgrid::typed::{SingleHandler, StreamHandler, decode};
use rgrid::{HandlerId, Options, RemoteError};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
}

// SAFETY: forwards to the system allocator; the counters are plain thread-locals.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes allocated on this thread so far.
fn snapshot() -> (u64, u64) {
    (ALLOCS.with(Cell::get), BYTES.with(Cell::get))
}

/// With feature `metrics`, a recorder that keeps every series (atomics: no allocation per
/// update) is installed before the grid starts, so the bounds below hold with metrics
/// recorded; without the feature the same bounds hold with no metrics code at all.
#[cfg(feature = "metrics")]
mod recorder {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

    /// Updates of every series so far (to check the calls were recorded).
    pub(super) static UPDATES: AtomicU64 = AtomicU64::new(0);

    struct Series;

    impl metrics::CounterFn for Series {
        fn increment(&self, _: u64) {
            UPDATES.fetch_add(1, Ordering::Relaxed);
        }
        fn absolute(&self, _: u64) {}
    }

    impl metrics::GaugeFn for Series {
        fn increment(&self, _: f64) {
            UPDATES.fetch_add(1, Ordering::Relaxed);
        }
        fn decrement(&self, _: f64) {
            UPDATES.fetch_add(1, Ordering::Relaxed);
        }
        fn set(&self, _: f64) {}
    }

    impl metrics::HistogramFn for Series {
        fn record(&self, _: f64) {
            UPDATES.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Recorder;

    impl metrics::Recorder for Recorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Series))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Series))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Series))
        }
    }

    pub(super) fn install() {
        metrics::set_global_recorder(Recorder).unwrap();
    }
}

/// Inline, like the benchmark's handlers: the library's fast path (a handler in a task of
/// its own adds the task's allocations, see the benchmark's `rgrid bytes spawned`).
static RPC: SingleHandler<TestRequest, TestResponse> = SingleHandler::new(HandlerId::TEST).inline();
static ECHO: StreamHandler<TestRequest, TestRequest, TestRequest> =
    StreamHandler::new(HandlerId::TEST);

const CALLS: u64 = 2000;

#[tokio::test(flavor = "current_thread")]
async fn steady_state_allocations_per_call_and_per_message() {
    #[cfg(feature = "metrics")]
    recorder::install();
    let g = grid_with(Options::default(), |_, m| {
        RPC.register(m, None, |r: TestRequest| async move {
            Ok(TestResponse {
                org_num: r.num,
                org_string: r.string.clone(),
                embedded: r,
            })
        })
        .unwrap();
        m.register_single_inline(HandlerId::TEST2, None, |_, p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        })
        .unwrap();
        ECHO.register(m, None, |_, _, mut input, out| async move {
            while let Some(r) = input.recv().await {
                out.send(&r?).await?;
            }
            Ok(())
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let request = TestRequest {
        num: 1,
        string: "hello".to_owned(),
    };

    // Typed single calls.
    for _ in 0..CALLS {
        RPC.call(&conn, &request).await.unwrap();
    }
    let (a0, b0) = snapshot();
    for _ in 0..CALLS {
        let resp = RPC.call(&conn, &request).await.unwrap();
        assert_eq!(resp.org_num, 1);
    }
    let (a1, b1) = snapshot();
    let typed = (a1 - a0) as f64 / CALLS as f64;

    // Raw calls of the same size, for comparison.
    let raw_payload = rgrid::typed::encode(&request).unwrap();
    for _ in 0..CALLS {
        conn.request(HandlerId::TEST2, raw_payload.clone())
            .await
            .unwrap();
    }
    let (a2, _) = snapshot();
    for _ in 0..CALLS {
        conn.request(HandlerId::TEST2, raw_payload.clone())
            .await
            .unwrap();
    }
    let (a3, _) = snapshot();
    let raw = (a3 - a2) as f64 / CALLS as f64;

    // Typed stream messages: one stream, requests echoed back one at a time.
    let mut st = ECHO.call(&conn, &request).await.unwrap();
    use futures_util::StreamExt;
    for _ in 0..CALLS {
        st.send(&request).await.unwrap();
        st.next().await.unwrap().unwrap();
    }
    let (a4, _) = snapshot();
    for _ in 0..CALLS {
        st.send(&request).await.unwrap();
        assert_eq!(st.next().await.unwrap().unwrap(), request);
    }
    let (a5, _) = snapshot();
    let per_message = (a5 - a4) as f64 / CALLS as f64;
    st.close_send();
    assert!(st.next().await.is_none());

    println!(
        "allocations, both ends: typed call {typed:.2} ({:.0} bytes), raw call {raw:.2}, \
         typed stream round trip (one message each way) {per_message:.2}",
        (b1 - b0) as f64 / CALLS as f64
    );
    // Issue 14's bounds (bytes <= 3, typed <= 7 per call, both ends).
    assert!(typed <= 7.0, "typed call: {typed} allocations");
    assert!(raw <= 3.0, "raw call: {raw} allocations");
    assert!(per_message <= 8.0, "typed stream message: {per_message}");
    #[cfg(feature = "metrics")]
    {
        let updates = recorder::UPDATES.load(std::sync::atomic::Ordering::Relaxed);
        // Per call, on both ends: in flight up and down, an outcome, a duration, bytes.
        assert!(updates >= 4 * 6 * CALLS, "{updates} metric updates");
    }
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// Declared lengths of 4 GiB (str, bin, array), nesting 100,000 deep, an invalid marker.
#[test]
fn hostile_payloads_are_refused_without_large_allocations() {
    for bad in HOSTILE_PAYLOADS {
        let (_, b0) = snapshot();
        assert!(decode::<TestRequest>(bad).is_err());
        assert!(decode::<Vec<Vec<u8>>>(bad).is_err());
        let (_, b1) = snapshot();
        // serde preallocates at most 1 MiB for a declared length it cannot trust.
        assert!(b1 - b0 <= 1024 * 1024 + 4096, "{} bytes allocated", b1 - b0);
    }
}

/// A 256 KiB echo, each way of the connection (one end dialed and masks what it sends, the
/// other does not): memory allocated per call stays near the two frames' worth. The dialing
/// end encodes each frame into a buffer of its own (the websocket masks it in place, without
/// the copy it makes of a shared buffer); the other end reuses one buffer. An earlier variant
/// that gave every large frame its own buffer on both ends allocated 3.0x the payload per
/// call here and failed the bound.
#[tokio::test(flavor = "current_thread")]
async fn large_messages_allocate_about_one_buffer_per_frame() {
    const SIZE: usize = 256 * 1024;
    const ROUNDS: u64 = 50;
    let g = grid_with(Options::default(), |_, m| {
        m.register_single_inline(HandlerId::TEST2, None, |_, p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        })
        .unwrap();
    })
    .await;
    let payload = Bytes::from(vec![5u8; SIZE]);
    for (from, to) in [(0, 1), (1, 0)] {
        let conn = g.conn(from, to);
        for _ in 0..5 {
            conn.request(HandlerId::TEST2, payload.clone())
                .await
                .unwrap();
        }
        let (a0, b0) = snapshot();
        for _ in 0..ROUNDS {
            let echo = conn
                .request(HandlerId::TEST2, payload.clone())
                .await
                .unwrap();
            assert_eq!(echo, payload);
        }
        let (a1, b1) = snapshot();
        let allocs = (a1 - a0) as f64 / ROUNDS as f64;
        let payloads = (b1 - b0) as f64 / ROUNDS as f64 / SIZE as f64;
        println!(
            "256 KiB echo {from} -> {to}: {allocs:.2} allocations, {payloads:.2} x the payload \
             allocated per call (both ends)"
        );
        assert!(
            payloads <= 2.2,
            "{from} -> {to}: {payloads} x the payload per call"
        );
        assert!(
            allocs <= 7.0,
            "{from} -> {to}: {allocs} allocations per call"
        );
    }
    assert_no_active(&g).await;
    g.shutdown().await;
}
