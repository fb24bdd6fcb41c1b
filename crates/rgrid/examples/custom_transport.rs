//! A custom transport: two nodes that talk over in-memory pipes instead of TCP.
//!
//! The grid needs a websocket between each pair of nodes, and does not care what carries
//! it. Both ends of a transport are pluggable:
//!
//! * **Dialing**: a [`ConnDialer`] turns a host of the host list into a client websocket.
//!   Set it with `ManagerBuilder::dialer`; the manager calls it again (with backoff) after
//!   every failure, so it should make one attempt and not retry.
//! * **Accepting**: [`serve_connection`] serves one connection of any byte stream the way
//!   [`rgrid::serve`] serves a TCP connection (an HTTP/1.1 websocket upgrade on the grid's
//!   route, then the grid handshake). If your transport has no HTTP at all, build the
//!   websocket yourself (`tokio_websockets::ServerBuilder::serve`, and `ClientBuilder::take_over`
//!   in the dialer) and hand it to [`Manager::incoming_conn`].
//!
//! The same fits a Unix socket, a QUIC stream or a simulated network. Hosts are still
//! written `http://name:port`: the name is only a name here, never resolved.
//!
//! ```sh
//! cargo run -p rgrid --example custom_transport
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rgrid::transport::tokio_websockets::ClientBuilder;
use rgrid::transport::{BoxedIo, DialFuture};
use rgrid::typed::{Service, ServiceMethod};
use rgrid::{ConnDialer, DEFAULT_ROUTE_PATH, Error, Manager, serve_connection};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

const NODES: Service = Service::new("nodes");
static HELLO: ServiceMethod<(), String> = NODES.method("hello");

/// The in-memory "network": every node's accept queue, by host.
#[derive(Clone, Default)]
struct MemNetwork {
    listeners: Arc<Mutex<HashMap<String, mpsc::Sender<DuplexStream>>>>,
}

impl MemNetwork {
    /// Accepts pipes for `node` on its host, serving each like an accepted TCP connection.
    fn listen(&self, node: &Manager) {
        let (tx, mut incoming) = mpsc::channel(16);
        self.table().insert(node.host().to_owned(), tx);
        let node = node.clone();
        tokio::spawn(async move {
            while let Some(pipe) = incoming.recv().await {
                tokio::spawn(serve_connection(pipe, node.clone()));
            }
        });
    }

    /// Closes every accept queue (their accept loops end).
    fn close(&self) {
        self.table().clear();
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<DuplexStream>>> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Dials over the in-memory network: a pipe to the remote's accept queue, then a websocket
/// upgrade over the pipe, as a TCP dialer would do over its socket.
struct MemDialer {
    network: MemNetwork,
    dials: Arc<AtomicUsize>,
}

impl ConnDialer for MemDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        self.dials.fetch_add(1, Ordering::Relaxed);
        let accept = self.network.table().get(remote).cloned();
        // The upgrade request's URI: the remote's address and the grid's route.
        let uri = format!(
            "ws://{}{DEFAULT_ROUTE_PATH}",
            remote.trim_start_matches("http://")
        );
        let attempt = async move {
            let accept = accept.ok_or_else(|| Error::Transport("nobody listens there".into()))?;
            let (client, server) = tokio::io::duplex(64 * 1024);
            accept
                .send(server)
                .await
                .map_err(|_| Error::Transport("the listener is gone".into()))?;
            let io: BoxedIo = Box::new(client);
            let upgrade = ClientBuilder::new()
                .uri(&uri)
                .map_err(|e| Error::Config(e.to_string()))?;
            // The token is checked in the grid handshake that follows, not here.
            let (websocket, _response) = upgrade.connect_on(io).await?;
            Ok(websocket)
        };
        // A dialer bounds its own attempt: the manager waits for it as long as it takes.
        Box::pin(async move {
            tokio::time::timeout(Duration::from_secs(2), attempt)
                .await
                .map_err(|_| Error::Transport("dial timed out".into()))?
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hosts = ["http://node-a:9000", "http://node-b:9000"];
    let network = MemNetwork::default();
    let dials = Arc::new(AtomicUsize::new(0));

    let mut nodes = Vec::new();
    for host in hosts {
        let node = Manager::builder(host, hosts)
            .jwt_secret("custom transport secret")
            .dialer(MemDialer {
                network: network.clone(),
                dials: dials.clone(),
            })
            .build()?;
        HELLO.register(&node, move |()| async move {
            Ok(format!("hello from {host}, over a pipe"))
        })?;
        network.listen(&node);
        nodes.push(node);
    }
    // Start dialing once every node listens (an early dial would fail and be retried).
    for node in &nodes {
        node.start();
    }
    for node in &nodes {
        node.wait_for_peers(Duration::from_secs(5)).await?;
    }

    // Calls are made exactly as over TCP, in both directions over the one websocket.
    for (from, to) in [(0, 1), (1, 0)] {
        let conn = nodes[from].connection(hosts[to]).ok_or("unknown host")?;
        let answer = HELLO.call(&conn, &()).await?;
        println!("{} -> {}: {answer}", hosts[from], hosts[to]);
        assert_eq!(answer, format!("hello from {}, over a pipe", hosts[to]));
    }
    // One pair, one connection: only one of the two nodes dialed (a hash of the two host
    // names decides which).
    let dialed = dials.load(Ordering::Relaxed);
    println!("dials made: {dialed}");
    assert_eq!(dialed, 1);

    for node in &nodes {
        node.shutdown().await;
    }
    network.close();
    println!("custom_transport: ok");
    Ok(())
}
