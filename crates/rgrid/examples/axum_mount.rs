//! The grid mounted on an existing axum server, next to the app's own HTTP routes.
//!
//! A server that already has an HTTP port need not open another one for the grid:
//! [`Manager::service`] is a tower service that answers the websocket upgrade on the grid's
//! route ([`DEFAULT_ROUTE_PATH`], `/minio/grid/v1`), so it mounts on an axum `Router` with
//! `route_service`. The hosts in the grid's host list are then the axum server's URLs. TLS,
//! if any, is the HTTP server's business in this set-up.
//!
//! ```sh
//! cargo run -p rgrid --example axum_mount
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rgrid::tokio_util::sync::CancellationToken;
use rgrid::typed::{Service, ServiceMethod};
use rgrid::{DEFAULT_ROUTE_PATH, Manager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NODES: Service = Service::new("nodes");
/// nodes/describe: what the node says about itself.
static DESCRIBE: ServiceMethod<(), String> = NODES.method("describe");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listener_a, listener_b) = (
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    );
    let addrs = [listener_a.local_addr()?, listener_b.local_addr()?];
    let hosts = addrs.map(|a| format!("http://{a}"));
    // Stops both axum servers at the end (axum's graceful shutdown).
    let stop_http = CancellationToken::new();

    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for (host, listener) in hosts.iter().zip([listener_a, listener_b]) {
        let node = Manager::builder(host.clone(), hosts.clone())
            .jwt_secret("axum example secret")
            .build()?;
        let me = node.host().to_owned();
        DESCRIBE.register(&node, move |()| {
            let me = me.clone();
            async move { Ok(format!("{me}, served through axum")) }
        })?;

        // The app's router: its own routes, plus the grid on its route.
        let app = Router::new()
            .route("/health", get(|| async { "app ok" }))
            .route_service(DEFAULT_ROUTE_PATH, node.service());
        let stop = stop_http.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }));
        node.start();
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_for_peers(Duration::from_secs(5)).await?;
    }

    // Grid calls go both ways through the two axum servers.
    for (from, to) in [(0, 1), (1, 0)] {
        let conn = nodes[from].connection(&hosts[to]).ok_or("unknown host")?;
        let answer = DESCRIBE.call(&conn, &()).await?;
        println!("{} -> {}: {answer}", hosts[from], hosts[to]);
        assert_eq!(answer, format!("{}, served through axum", hosts[to]));
    }

    // The app's own route still answers on the same port.
    let health = http_get(&addrs[0].to_string(), "/health").await?;
    println!("GET /health: {}", health.lines().next().unwrap_or_default());
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("app ok"));

    // Stop the grid first (it closes its websockets), then the HTTP servers.
    for node in &nodes {
        node.shutdown().await;
    }
    stop_http.cancel();
    for server in servers {
        tokio::time::timeout(Duration::from_secs(5), server).await???;
    }
    println!("axum_mount: ok");
    Ok(())
}

/// A bare HTTP/1.1 GET, to stay free of an HTTP client dependency.
async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    let read = tcp.read_to_string(&mut response);
    tokio::time::timeout(Duration::from_secs(5), read).await??;
    Ok(response)
}
