//! Hello, grid: two nodes in one process, one call with raw bytes.
//!
//! Every node of a grid knows the whole host list (itself included) and keeps one websocket
//! to each other node. A node registers its handlers, serves the grid's HTTP route, starts
//! dialing, and then calls the other nodes through their [`rgrid::Connection`]s.
//!
//! ```sh
//! cargo run -p rgrid --example hello
//! ```

use std::time::Duration;

use rgrid::bytes::Bytes;
use rgrid::{CallOptions, HandlerId, Manager, RemoteError, serve};
use tokio::net::TcpListener;

/// The name of our call. A named call is the grid's service handler ([`HandlerId::SERVICE`])
/// under a route `service/method`; `typed::Service::new("greeter").method("hello")` means
/// the same on the wire (see `typed_service.rs` for the typed way).
const HELLO: &str = "greeter/hello";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Two listeners on loopback port 0: the OS picks free ports, and they name the hosts.
    let (listener_a, listener_b) = (
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    );
    let hosts = [
        format!("http://{}", listener_a.local_addr()?),
        format!("http://{}", listener_b.local_addr()?),
    ];

    let mut nodes = Vec::new();
    for (host, listener) in hosts.iter().zip([listener_a, listener_b]) {
        // One manager per node: its own URL, every URL of the grid, and how nodes prove
        // they belong (here a shared JWT secret; `build` refuses a grid without one).
        let node = Manager::builder(host.clone(), hosts.clone())
            .jwt_secret("hello example secret")
            .build()?;

        // Register handlers before starting, so no call can find them missing. A handler
        // gets the request's bytes and returns the answer's bytes or a `RemoteError`.
        let me = node.host().to_owned();
        node.register_single_subroute(HandlerId::SERVICE, HELLO, move |name: Bytes| {
            let greeting = format!("hello, {} (from {me})", String::from_utf8_lossy(&name));
            async move { Ok::<_, RemoteError>(Bytes::from(greeting)) }
        })?;

        // Serve the grid route on the listener (until shutdown) and start dialing peers.
        tokio::spawn(serve(listener, node.clone()));
        node.start();
        nodes.push(node);
    }

    // A start-up barrier: wait (bounded) until every peer of node A is connected.
    nodes[0].wait_for_peers(Duration::from_secs(5)).await?;

    // The call: node A asks node B, through A's connection to B.
    let to_b = nodes[0]
        .connection(&hosts[1])
        .ok_or("B is not in A's grid")?;
    let reply = to_b
        .request_with(
            HandlerId::SERVICE,
            "world",
            &CallOptions::new().subroute(HELLO),
        )
        .await?;
    let text = std::str::from_utf8(&reply)?;
    println!("{} answered: {text}", to_b.remote());
    assert_eq!(text, format!("hello, world (from {})", hosts[1]));

    // Shutdown closes the connections and waits for the nodes' tasks.
    for node in &nodes {
        node.shutdown().await;
    }
    println!("hello: ok");
    Ok(())
}
