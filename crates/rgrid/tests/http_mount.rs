//! The grid mounted on an existing axum server next to the application's own routes: both
//! nodes serve the grid from axum, calls flow both ways, and the other routes keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use rgrid::{DEFAULT_ROUTE_PATH, HandlerId, Manager, RemoteError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("hung")
}

/// A plain HTTP/1.1 GET, answered by axum.
async fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn grid_mounts_on_axum_beside_other_routes() {
    let listeners = [
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let hosts: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let mut managers = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let m = Manager::builder(hosts[i].clone(), hosts.clone())
            .token("secret")
            .build()
            .unwrap();
        m.register_single(HandlerId::TEST, move |p: Bytes| async move {
            Ok::<_, RemoteError>(Bytes::from(format!(
                "node {i}: {}",
                String::from_utf8_lossy(&p)
            )))
        })
        .unwrap();
        let app = Router::new()
            .route("/health", get(|| async { "app ok" }))
            .route_service(DEFAULT_ROUTE_PATH, m.service());
        tokio::spawn(async move { axum::serve(listener, app).await });
        m.start();
        managers.push(m);
    }

    let ab = managers[0].connection(&hosts[1]).unwrap();
    let ba = managers[1].connection(&hosts[0]).unwrap();
    bounded(ab.wait_for_connect()).await.unwrap();
    bounded(ba.wait_for_connect()).await.unwrap();
    for _ in 0..10 {
        let r = bounded(ab.request(HandlerId::TEST, "hi")).await.unwrap();
        assert_eq!(&r[..], b"node 1: hi");
        let r = bounded(ba.request(HandlerId::TEST, "yo")).await.unwrap();
        assert_eq!(&r[..], b"node 0: yo");
    }

    // The application's routes are untouched; a plain GET on the grid route is refused.
    let health = bounded(http_get(&addrs[0], "/health")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("app ok"), "{health}");
    let plain = bounded(http_get(&addrs[1], DEFAULT_ROUTE_PATH)).await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");

    for m in &managers {
        bounded(m.shutdown()).await;
    }
}
