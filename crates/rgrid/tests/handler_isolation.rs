//! A handler that blocks cannot stall its connection unless it opted in to running inline
//! (issue 15, item 2).
//!
//! The blocking handler blocks its thread (a `std` channel, not an `.await`) until the test
//! releases it. With the default registration it runs in a task of its own, and rgrid wakes
//! a second worker when it starts one (`Session::nudge_runtime`), so another call on the
//! same connection is answered while it is still blocked: without that wake, the serving
//! runtime's only awake worker is the blocked one and nothing polls its sockets (this test
//! then fails 7 runs in 8). Registered inline, the handler holds the connection's reader,
//! and the other call can only be answered after the release: the same check fails there,
//! which shows it can fail.
//!
//! No duration is asserted (real time, real threads): the order of "other call answered"
//! and "handler released" is, and the other call's latency is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::bounded;
use rgrid::{HandlerCtx, HandlerId, Manager, RemoteError, serve};

const BLOCK: HandlerId = HandlerId::TEST;
const ECHO: HandlerId = HandlerId::TEST2;

/// What the blocking handler and the test share.
struct Gate {
    entered: tokio::sync::Notify,
    release_rx: Mutex<Option<mpsc::Receiver<()>>>,
    release_tx: Mutex<Option<mpsc::Sender<()>>>,
    /// When the handler was released, on the event counter.
    released_at: Mutex<Option<u32>>,
    /// Event counter: the release and the other call's answer each take the next number.
    clock: AtomicU32,
}

impl Gate {
    /// Releases the blocked handler (once; later calls do nothing).
    fn release(&self) {
        if let Some(tx) = self.release_tx.lock().unwrap().take() {
            *self.released_at.lock().unwrap() = Some(self.clock.fetch_add(1, Ordering::SeqCst));
            let _ = tx.send(());
        }
    }
}

/// Registers the blocking handler (inline or not) and an echo on `m`.
fn register(m: &Manager, gate: &Arc<Gate>, inline: bool) {
    let g = gate.clone();
    let block = move |_: HandlerCtx, p: Bytes| {
        let g = g.clone();
        async move {
            let rx = g.release_rx.lock().unwrap().take();
            if let Some(rx) = rx {
                g.entered.notify_one();
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
///
/// The serving node runs alone on a 2-worker runtime of its own, as a server does: only
/// socket events reach it (the caller is on the test's runtime), so if the blocked worker
/// is the only one awake, nothing polls that runtime's sockets until it is released. Nothing
/// on the test's side waits on the serving runtime's timers either: the handler signals that
/// it runs through a `Notify`, and a plain thread releases it after a bound if the other
/// call has not been answered by then.
async fn scenario(inline: bool) -> (u32, u32, Duration) {
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new(Gate {
        entered: tokio::sync::Notify::new(),
        release_rx: Mutex::new(Some(rx)),
        release_tx: Mutex::new(Some(tx)),
        released_at: Mutex::new(None),
        clock: AtomicU32::new(0),
    });
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    lb.set_nonblocking(true).unwrap();
    let a = format!("http://{}", la.local_addr().unwrap());
    let b = format!("http://{}", lb.local_addr().unwrap());
    let hosts = [a.clone(), b.clone()];
    let build = |host: &str| {
        Manager::builder(host, hosts.clone())
            .token("t")
            .build()
            .unwrap()
    };
    let server = build(&b);
    register(&server, &gate, inline);
    {
        let _in_server_rt = server_rt.enter();
        server_rt.spawn(serve(
            tokio::net::TcpListener::from_std(lb).unwrap(),
            server.clone(),
        ));
        server.start();
    }
    let client = build(&a);
    tokio::spawn(serve(la, client.clone()));
    client.start();
    let conn = client.connection(&b).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();

    let blocked = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request(BLOCK, Bytes::from_static(b"slow")).await }
    });
    bounded(gate.entered.notified()).await;

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
    let releaser = std::thread::spawn({
        let gate = gate.clone();
        move || {
            std::thread::sleep(Duration::from_secs(2));
            gate.release();
        }
    });
    let (r, answered_at, latency) = bounded(other).await.unwrap();
    gate.release();
    assert_eq!(r.unwrap(), Bytes::from_static(b"fast"));
    assert_eq!(
        bounded(blocked).await.unwrap().unwrap(),
        Bytes::from_static(b"slow")
    );
    // No mux left on the caller's side, nor on the server's.
    common::eventually("no mux left", || {
        let s = conn.stats();
        let t = server.connection(&a).unwrap().stats();
        s.outgoing_muxes + s.incoming_muxes + t.outgoing_muxes + t.incoming_muxes == 0
    })
    .await;
    bounded(client.shutdown()).await;
    bounded(server_rt.spawn(async move { server.shutdown().await }))
        .await
        .unwrap();
    server_rt.shutdown_background();
    releaser.join().unwrap();
    let released_at = gate.released_at.lock().unwrap().unwrap();
    (answered_at, released_at, latency)
}

/// Default registration: the other call is answered while the handler still blocks.
#[tokio::test]
async fn a_blocking_handler_does_not_stall_its_connection() {
    let (answered, released, latency) = scenario(false).await;
    println!("other call answered in {latency:?} (default registration)");
    assert!(
        answered < released,
        "the other call was answered only after the blocking handler was released"
    );
}

/// Inline opt-in: the handler holds the reader, so the other call waits for the release
/// (the check above fails here).
#[tokio::test]
async fn an_inline_handler_that_blocks_stalls_its_connection() {
    let (answered, released, latency) = scenario(true).await;
    println!("other call answered in {latency:?}, after the inline handler was released");
    assert!(
        answered > released,
        "answered {answered}, released {released}"
    );
}
