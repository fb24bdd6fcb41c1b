//! The demo's grid: `n` nodes in this process, each serving on its own loopback listener,
//! fully meshed, built on the library's public API only ([`Manager::builder`], a
//! [`ConnDialer`], [`rgrid::serve`]); nothing from the `test-util` feature.
//!
//! The dialer keeps a second handle on every socket it opens, so the demo can cut one
//! connection the way a failed network would: a TCP shutdown under the websocket. Both ends
//! see their socket end, drop the connection, and the dialing side reconnects by itself.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use rgrid::transport::tokio_websockets::ClientBuilder;
use rgrid::transport::{BoxedIo, DialFuture};
use rgrid::{ConnDialer, Connection, Manager, Options};
use tokio::net::{TcpListener, TcpStream};

use crate::node::Failure;

/// How long one dial may take (the manager retries with backoff).
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the grid may take to connect every pair at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sockets a node dialed, by remote host: a duplicate handle of each, for [`DemoGrid::cut`].
type Dialed = Arc<Mutex<HashMap<String, std::net::TcpStream>>>;

fn lock(dialed: &Dialed) -> MutexGuard<'_, HashMap<String, std::net::TcpStream>> {
    // A poisoned map is still a valid map: inserts and removes cannot leave it half-done.
    dialed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Dials `ws://` on loopback like the library's websocket dialer (TCP_NODELAY, the bearer
/// token header, a bounded attempt; not its `TCP_NOTSENT_LOWAT` tuning, which matters only
/// next to bulk transfers), and remembers each socket.
#[derive(Clone, Debug)]
struct CuttableDialer {
    route_path: String,
    bearer: HeaderValue,
    dialed: Dialed,
}

impl CuttableDialer {
    async fn dial_inner(self, remote: String) -> Result<rgrid::WebSocket, rgrid::Error> {
        let bad_host = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("demo host {remote} is not http://address:port"),
            )
        };
        let authority = remote.strip_prefix("http://").ok_or_else(bad_host)?;
        let tcp = TcpStream::connect(authority).await?;
        tcp.set_nodelay(true)?;
        // A duplicate of the socket's handle: shutting it down ends the connection.
        let std_tcp = tcp.into_std()?;
        let handle = std_tcp.try_clone()?;
        let tcp = TcpStream::from_std(std_tcp)?;
        let uri = format!("ws://{authority}{}", self.route_path);
        let (ws, _response) = ClientBuilder::new()
            .uri(&uri)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?
            .add_header(http::header::AUTHORIZATION, self.bearer.clone())?
            .connect_on(Box::new(tcp) as BoxedIo)
            .await?;
        lock(&self.dialed).insert(remote, handle);
        Ok(ws)
    }
}

impl ConnDialer for CuttableDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        let attempt = self.clone().dial_inner(remote.to_owned());
        Box::pin(async move {
            match tokio::time::timeout(DIAL_TIMEOUT, attempt).await {
                Ok(res) => res,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("dial timed out after {DIAL_TIMEOUT:?}"),
                )
                .into()),
            }
        })
    }
}

/// The nodes of the demo, in host order.
pub(super) struct DemoGrid {
    pub(super) managers: Vec<Manager>,
    hosts: Vec<String>,
    /// Per node, the sockets it dialed.
    dialed: Vec<Dialed>,
}

impl DemoGrid {
    /// Starts `n` nodes on `127.0.0.1` with a random shared token, registering handlers with
    /// `register` before any connection is made, and waits until every pair is connected.
    pub(super) async fn start(
        n: usize,
        register: impl Fn(usize, &Manager) -> Result<(), Failure>,
    ) -> Result<DemoGrid, Failure> {
        let token: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
        let bearer = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|e| Failure::Local(format!("demo token: {e}")))?;
        let mut listeners = Vec::with_capacity(n);
        let mut hosts = Vec::with_capacity(n);
        for _ in 0..n {
            let l = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| Failure::Local(format!("bind 127.0.0.1: {e}")))?;
            let addr = l
                .local_addr()
                .map_err(|e| Failure::Local(format!("listener address: {e}")))?;
            hosts.push(format!("http://{addr}"));
            listeners.push(l);
        }
        let options = Options::default();
        let mut grid = DemoGrid {
            managers: Vec::with_capacity(n),
            hosts: hosts.clone(),
            dialed: Vec::with_capacity(n),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let dialed = Dialed::default();
            let built = Manager::builder(hosts[i].clone(), hosts.clone())
                .options(options.clone())
                .token(token.clone())
                .dialer(CuttableDialer {
                    route_path: options.route_path.clone(),
                    bearer: bearer.clone(),
                    dialed: dialed.clone(),
                })
                .build();
            let m = match built {
                Ok(m) => m,
                Err(e) => {
                    grid.shutdown().await;
                    return Err(e.into());
                }
            };
            grid.managers.push(m.clone());
            grid.dialed.push(dialed);
            if let Err(e) = register(i, &m) {
                grid.shutdown().await;
                return Err(e);
            }
            tokio::spawn(rgrid::serve(listener, m));
        }
        for m in &grid.managers {
            m.start();
        }
        let give_up = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        for m in &grid.managers {
            let left = give_up.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = m.wait_for_peers(left).await {
                grid.shutdown().await;
                return Err(Failure::Local(format!(
                    "the demo grid did not connect: {e}"
                )));
            }
        }
        Ok(grid)
    }

    /// The number of nodes.
    pub(super) fn len(&self) -> usize {
        self.managers.len()
    }

    /// The connection from node `from` to node `to` (two distinct nodes of this grid).
    pub(super) fn conn(&self, from: usize, to: usize) -> Connection {
        match self.managers[from].connection(&self.hosts[to]) {
            Some(c) => c,
            // Every node has a connection to every other host of its list.
            None => unreachable!("node {from} has no connection to node {to}"),
        }
    }

    /// Cuts the connection between nodes `a` and `b` under the websocket, on the side that
    /// dialed it. Returns false if there was no socket to cut.
    pub(super) fn cut(&self, a: usize, b: usize) -> bool {
        let (dialer, remote) = if self.conn(a, b).dials() {
            (a, b)
        } else {
            (b, a)
        };
        match lock(&self.dialed[dialer]).remove(&self.hosts[remote]) {
            Some(socket) => socket.shutdown(Shutdown::Both).is_ok(),
            None => false,
        }
    }

    /// Shuts every node down.
    pub(super) async fn shutdown(&self) {
        for m in &self.managers {
            m.shutdown().await;
        }
    }
}
