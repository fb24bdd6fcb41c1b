//! A handler that blocks cannot stall its connection unless it opted in to running inline
//! (issue 15, item 2).
//!
//! The blocking handler blocks its thread (a `std` channel, not an `.await`) until the test
//! releases it. With the default registration it runs in a task of its own, so another call
//! on the same connection is answered while it is still blocked. Registered inline, it holds
//! the connection's reader, and the other call can only be answered after the release: the
//! same check fails there, which shows it can fail.
//!
//! No duration is asserted (real time, real threads): the order of "other call answered"
//! and "handler released" is, and the other call's latency is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bounded, eventually, grid_with};
use rgrid::{HandlerCtx, HandlerId, Manager, Options, RemoteError};

const BLOCK: HandlerId = HandlerId::TEST;
const ECHO: HandlerId = HandlerId::TEST2;

/// What the blocking handler and the test share.
struct Gate {
    entered: AtomicBool,
    release: Mutex<Option<mpsc::Receiver<()>>>,
    /// Event counter: the release and the other call's answer each take the next number.
    clock: AtomicU32,
}

/// Registers the blocking handler (inline or not) and an echo on `m`.
fn register(m: &Manager, gate: &Arc<Gate>, inline: bool) {
    let g = gate.clone();
    let block = move |_: HandlerCtx, p: Bytes| {
        let g = g.clone();
        async move {
            g.entered.store(true, Ordering::SeqCst);
            let rx = g.release.lock().unwrap().take();
            if let Some(rx) = rx {
                // Blocks the thread; bounded so a broken test cannot hang forever.
                let _ = rx.recv_timeout(Duration::from_secs(20));
            }
            Ok::<_, RemoteError>(p)
        }
    };
    if inline {
        m.register_single_inline(BLOCK, None, block).unwrap();
    } else {
        m.register_single_with_ctx(BLOCK, None, block).unwrap();
    }
    m.register_single(ECHO, |p: Bytes| async move { Ok::<_, RemoteError>(p) })
        .unwrap();
}

/// Runs the scenario; returns (other call answered at, released at) on the gate's clock,
/// and the other call's latency.
async fn scenario(inline: bool) -> (u32, u32, Duration) {
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new(Gate {
        entered: AtomicBool::new(false),
        release: Mutex::new(Some(rx)),
        clock: AtomicU32::new(0),
    });
    let g = gate.clone();
    let grid = grid_with(Options::default(), move |_, m| register(m, &g, inline)).await;
    let conn = grid.conn(0, 1);
    let blocked = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request(BLOCK, Bytes::from_static(b"slow")).await }
    });
    eventually("the blocking handler runs", || {
        gate.entered.load(Ordering::SeqCst)
    })
    .await;

    // The other call, on the same connection, while the handler blocks.
    let t0 = Instant::now();
    let other = tokio::spawn({
        let (conn, gate) = (conn.clone(), gate.clone());
        async move {
            let r = conn.request(ECHO, Bytes::from_static(b"fast")).await;
            let at = gate.clock.fetch_add(1, Ordering::SeqCst);
            (r, at, t0.elapsed())
        }
    });
    // Release once the other call is answered, or after a bound: a stalled connection
    // cannot answer it before the release.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(2);
    while !other.is_finished() && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let released_at = gate.clock.fetch_add(1, Ordering::SeqCst);
    tx.send(()).unwrap();

    let (r, answered_at, latency) = bounded(other).await.unwrap();
    assert_eq!(r.unwrap(), Bytes::from_static(b"fast"));
    assert_eq!(
        bounded(blocked).await.unwrap().unwrap(),
        Bytes::from_static(b"slow")
    );
    common::assert_no_active(&grid).await;
    grid.shutdown().await;
    (answered_at, released_at, latency)
}

/// Default registration: the other call is answered while the handler still blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_handler_does_not_stall_its_connection() {
    let (answered, released, latency) = scenario(false).await;
    println!("other call answered in {latency:?} while a handler blocked its thread");
    assert!(
        answered < released,
        "the other call was answered only after the blocking handler was released"
    );
}

/// Inline opt-in: the handler holds the reader, so the other call waits for the release
/// (the check above fails here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_handler_that_blocks_stalls_its_connection() {
    let (answered, released, latency) = scenario(true).await;
    println!("other call answered in {latency:?}, after the inline handler was released");
    assert!(
        answered > released,
        "answered {answered}, released {released}"
    );
}
