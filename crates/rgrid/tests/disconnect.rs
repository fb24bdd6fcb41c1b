//! Connection loss: the single-request half of MinIO's TestDisconnect, calls before the first
//! connection, and dead-peer detection through connection pings (on paused time, over
//! in-memory pipes, where the detection time is exact).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::{bounded, eventually, mem_grid_with};
use futures_util::FutureExt;
use rgrid::test_util::LocalGrid;
use rgrid::{Error, HandlerId, Manager, Options, RemoteError, State};
use tokio::sync::mpsc;

/// Registers handlerTest as MinIO's h1: signal "got call", then block until the test ends.
fn register_blocking(m: &Manager, got_call: mpsc::UnboundedSender<()>) {
    m.register_single(HandlerId::TEST, move |_| {
        let _ = got_call.send(());
        async move {
            std::future::pending::<()>().await;
            Ok(Bytes::new())
        }
    })
    .unwrap();
}

#[tokio::test]
async fn pending_call_fails_on_disconnect_and_the_grid_reconnects() {
    let (got_call, mut calls) = mpsc::unbounded_channel::<()>();
    let g = LocalGrid::start(2, move |_, m| {
        register_blocking(m, got_call.clone());
        m.register_single(HandlerId::TEST2, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
    })
    .await
    .unwrap();
    let conn = g.conn(0, 1);
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request(HandlerId::TEST, "block").await }
    });
    bounded(calls.recv()).await.unwrap();
    assert_eq!(conn.stats().outgoing_muxes, 1);
    assert_eq!(g.conn(1, 0).stats().incoming_muxes, 1);

    // Kill the connection on both managers.
    g.conn(0, 1).kill();
    g.conn(1, 0).kill();
    let res = bounded(pending).await.unwrap();
    assert_eq!(res, Err(Error::Disconnected));

    // The grid reconnects by itself and later calls succeed.
    bounded(conn.wait_for_connect()).await.unwrap();
    bounded(g.conn(1, 0).wait_for_connect()).await.unwrap();
    let ok = bounded(async {
        loop {
            match conn.request(HandlerId::TEST2, "after").await {
                Err(Error::Disconnected) => tokio::time::sleep(Duration::from_millis(10)).await,
                other => break other,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&ok[..], b"after");
    assert!(conn.stats().reconnects >= 1 || g.conn(1, 0).stats().reconnects >= 1);
    // The blocked handler was cancelled with its connection.
    eventually(
        "the blocked handler's mux closes with its connection",
        || g.conn(1, 0).stats().incoming_muxes == 0,
    )
    .await;
    assert_eq!(conn.stats().outgoing_muxes, 0);
    g.shutdown().await;
}

#[tokio::test]
async fn calls_before_the_connection_is_up_fail_fast() {
    let hosts = ["http://127.0.0.1:1", "http://127.0.0.1:2"];
    let m = Manager::builder(hosts[0], hosts)
        .token("t")
        .build()
        .unwrap();
    let conn = m.connection(hosts[1]).unwrap();
    assert_eq!(conn.state(), State::Unconnected);
    // Fails on its first poll: it never waits for a connection.
    let res = conn.request(HandlerId::TEST, "x").now_or_never();
    assert_eq!(
        res,
        Some(Err(Error::Disconnected)),
        "must fail without waiting"
    );
    assert!(m.connection("http://127.0.0.1:3").is_none());
    m.shutdown().await;
    assert_eq!(conn.state(), State::Shutdown);
    assert_eq!(
        conn.request(HandlerId::TEST, "x").await.unwrap_err(),
        Error::Shutdown
    );
    assert_eq!(bounded(conn.wait_for_connect()).await, Err(Error::Shutdown));
}

#[tokio::test]
async fn shutdown_ends_calls_in_flight() {
    let (got_call, mut calls) = mpsc::unbounded_channel::<()>();
    let g = LocalGrid::start(2, move |_, m| register_blocking(m, got_call.clone()))
        .await
        .unwrap();
    let conn = g.conn(0, 1);
    let pending = tokio::spawn(async move { conn.request(HandlerId::TEST, "x").await });
    bounded(calls.recv()).await.unwrap();
    bounded(g.managers[0].shutdown()).await;
    assert_eq!(bounded(pending).await.unwrap(), Err(Error::Shutdown));
    bounded(g.shutdown()).await;
}

/// With the default timings (issue 17: a silent peer found in under 3 s). On paused time,
/// over in-memory pipes: the detection time is exact.
#[tokio::test(start_paused = true)]
async fn silent_peer_is_detected_by_pings_and_the_pair_reconnects() {
    let options = Options::default();
    let (interval, dead) = (options.ping_interval, options.dead_after);
    assert!(dead < Duration::from_secs(3), "{dead:?}");
    let (got_call, mut calls) = mpsc::unbounded_channel::<()>();
    let g = mem_grid_with(options, move |_, m| {
        register_blocking(m, got_call.clone());
        m.register_single(HandlerId::TEST2, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
    })
    .await;
    let before = g.conn(0, 1).stats().reconnects;
    // A call in flight ends when node 0 drops the connection: that moment is the detection.
    let pending = tokio::spawn({
        let conn = g.conn(0, 1);
        async move { conn.request(HandlerId::TEST, "block").await }
    });
    bounded(calls.recv()).await.unwrap();
    // Node 0 stops reading: it hears nothing more. It last heard from node 1 (a pong, or
    // node 1's own ping) at most one interval ago, so the connection must drop more than
    // `dead - interval` and at most `dead` from now.
    let block = g.conn(0, 1).block_inbound();
    let t0 = tokio::time::Instant::now();
    assert_eq!(bounded(pending).await.unwrap(), Err(Error::Disconnected));
    let detected = t0.elapsed();
    assert!(
        detected >= dead - interval && detected <= dead + Duration::from_millis(1),
        "dead peer detected after {detected:?} (ping interval {interval:?}, dead after {dead:?})"
    );
    drop(block);
    // The pair reconnects by itself and calls work again.
    eventually("the pair reconnects", || {
        g.conn(0, 1).stats().reconnects > before
    })
    .await;
    bounded(g.conn(0, 1).wait_for_connect()).await.unwrap();
    let ok = bounded(async {
        loop {
            match g.conn(0, 1).request(HandlerId::TEST2, "alive").await {
                Err(Error::Disconnected) => tokio::time::sleep(Duration::from_millis(10)).await,
                other => break other,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&ok[..], b"alive");
    g.shutdown().await;
}

/// A peer that stalls for a second (a GC-like pause: nothing read, nothing sent) is not
/// dropped with the default timings: the connection and a call in flight on it survive.
#[tokio::test(start_paused = true)]
async fn a_one_second_pause_is_not_a_dead_peer() {
    let g = mem_grid_with(Options::default(), |_, m| {
        m.register_single(HandlerId::TEST2, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
    })
    .await;
    let before = g.conn(0, 1).stats().reconnects;
    // Let pings settle, then freeze node 1 both ways for 1 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let conn = g.conn(1, 0);
    let inbound = conn.block_inbound();
    let outbound = conn.block_outbound();
    let call = tokio::spawn({
        let conn = g.conn(0, 1);
        async move { conn.request(HandlerId::TEST2, "paused").await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop((inbound, outbound));
    assert_eq!(&bounded(call).await.unwrap().unwrap()[..], b"paused");
    // Long after: never dropped, on either side.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for (a, b) in [(0, 1), (1, 0)] {
        let c = g.conn(a, b);
        assert_eq!(c.state(), State::Connected);
        assert_eq!(c.stats().reconnects, before, "{a} -> {b} reconnected");
    }
    g.shutdown().await;
}
