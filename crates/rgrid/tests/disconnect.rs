//! Connection loss: the single-request half of MinIO's TestDisconnect, calls before the first
//! connection, and dead-peer detection through connection pings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use rgrid::test_util::LocalGrid;
use rgrid::{Error, HandlerId, Manager, Options, RemoteError, State};
use tokio::sync::mpsc;

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("hung")
}

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
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(g.conn(1, 0).stats().incoming_muxes, 0);
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
    let t0 = std::time::Instant::now();
    let err = conn.request(HandlerId::TEST, "x").await.unwrap_err();
    assert_eq!(err, Error::Disconnected);
    assert!(t0.elapsed() < Duration::from_millis(100));
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

#[tokio::test]
async fn silent_peer_is_detected_by_pings_and_the_pair_reconnects() {
    let options = Options {
        ping_interval: Duration::from_millis(100),
        ..Options::default()
    };
    let g = LocalGrid::start_with(2, options, |_, m| {
        m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
    })
    .await
    .unwrap();
    let before = g.conn(0, 1).stats().reconnects;
    // Node 0 stops reading: it sees no pongs and must drop the connection after ~200 ms. The
    // dialing side reconnects within a millisecond or so, so watch the reconnect counter
    // rather than the (brief) ConnectionError state.
    let block = g.conn(0, 1).block_inbound();
    let t0 = std::time::Instant::now();
    bounded(async {
        while g.conn(0, 1).stats().reconnects == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let detected = t0.elapsed();
    // At most 2 intervals without a pong plus one tick (and scheduling slack).
    assert!(
        detected <= Duration::from_secs(1),
        "dead peer detected after {detected:?}"
    );
    drop(block);
    bounded(g.conn(0, 1).wait_for_connect()).await.unwrap();
    let ok = bounded(async {
        loop {
            match g.conn(0, 1).request(HandlerId::TEST, "alive").await {
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
