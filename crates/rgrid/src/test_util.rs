//! Test utilities (feature `test-util`): local n-node grids, on loopback or in memory. Not a
//! stable API.
//!
//! Fault hooks live on [`crate::Connection`] under the same feature: [`crate::Connection::kill`]
//! drops the live websocket and [`crate::Connection::block_inbound`] stops inbound
//! processing; shorter ping intervals are set through [`crate::Options`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_websockets::{ClientBuilder, Limits, ServerBuilder};

use crate::error::Error;
use crate::manager::Manager;
use crate::options::Options;
use crate::transport::{BoxedIo, ConnDialer, DialFuture, serve};

/// Bytes each direction of an in-memory connection buffers.
const MEM_PIPE_BYTES: usize = 256 * 1024;

/// The accept queues of in-memory nodes, by host.
type MemListeners = Arc<Mutex<HashMap<String, mpsc::Sender<BoxedIo>>>>;

/// Dials in-memory nodes: a `tokio::io::duplex` pipe, the client end as a websocket, the
/// server end handed to the remote node's accept queue.
#[derive(Clone, Debug)]
struct MemDialer {
    listeners: MemListeners,
    max_message_size: usize,
}

impl ConnDialer for MemDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        let tx = self
            .listeners
            .lock()
            .ok()
            .and_then(|l| l.get(remote).cloned());
        let limits = Limits::default().max_payload_len(Some(self.max_message_size));
        Box::pin(async move {
            let tx = tx.ok_or(Error::Disconnected)?;
            let (client, server) = tokio::io::duplex(MEM_PIPE_BYTES);
            tx.send(Box::new(server))
                .await
                .map_err(|_| Error::Disconnected)?;
            let io: BoxedIo = Box::new(client);
            Ok(ClientBuilder::new().limits(limits).take_over(io))
        })
    }
}

/// The token every node of a local test grid uses.
pub const TEST_TOKEN: &str = "debug";

/// `n` managers in this process, each serving on its own `127.0.0.1:0` listener, fully
/// meshed (MinIO's `SetupTestGrid`).
#[derive(Debug)]
pub struct LocalGrid {
    /// The managers, in host order.
    pub managers: Vec<Manager>,
    /// The hosts (`http://127.0.0.1:<port>`, or `http://mem-<i>:9000` in memory).
    pub hosts: Vec<String>,
    /// In memory: the nodes' accept queues (emptied on shutdown).
    mem: Option<MemListeners>,
}

impl LocalGrid {
    /// Starts `n` nodes with default options, registering handlers with `register` before any
    /// connection is made, and waits (up to 10 s) until every connection is up.
    pub async fn start(n: usize, register: impl Fn(usize, &Manager)) -> Result<LocalGrid, Error> {
        Self::start_with(n, Options::default(), register).await
    }

    /// Like [`LocalGrid::start`] with the given options on every node.
    pub async fn start_with(
        n: usize,
        options: Options,
        register: impl Fn(usize, &Manager),
    ) -> Result<LocalGrid, Error> {
        let mut listeners = Vec::with_capacity(n);
        let mut hosts = Vec::with_capacity(n);
        for _ in 0..n {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            hosts.push(format!("http://{}", l.local_addr()?));
            listeners.push(l);
        }
        let mut managers = Vec::with_capacity(n);
        for (i, listener) in listeners.into_iter().enumerate() {
            let m = Manager::builder(hosts[i].clone(), hosts.clone())
                .options(options.clone())
                .token(TEST_TOKEN)
                .build()?;
            register(i, &m);
            tokio::spawn(serve(listener, m.clone()));
            managers.push(m);
        }
        for m in &managers {
            m.start();
        }
        let grid = LocalGrid {
            managers,
            hosts,
            mem: None,
        };
        grid.wait_all_connected(Duration::from_secs(10)).await?;
        Ok(grid)
    }

    /// Like [`LocalGrid::start_with`], but the nodes talk over in-memory pipes instead of
    /// TCP (the same websocket framing on top). With no real I/O, tests can run on paused
    /// tokio time (`#[tokio::test(start_paused = true)]`) and use the real keepalive timings:
    /// time only jumps when every task is idle.
    pub async fn start_in_memory(
        n: usize,
        options: Options,
        register: impl Fn(usize, &Manager),
    ) -> Result<LocalGrid, Error> {
        let hosts: Vec<String> = (0..n).map(|i| format!("http://mem-{i}:9000")).collect();
        let listeners = MemListeners::default();
        let mut managers = Vec::with_capacity(n);
        for host in &hosts {
            let m = Manager::builder(host.clone(), hosts.clone())
                .options(options.clone())
                .token(TEST_TOKEN)
                .dialer(MemDialer {
                    listeners: listeners.clone(),
                    max_message_size: options.max_message_size,
                })
                .build()?;
            register(managers.len(), &m);
            let (tx, mut rx) = mpsc::channel::<BoxedIo>(16);
            if let Ok(mut l) = listeners.lock() {
                l.insert(host.clone(), tx);
            }
            let acceptor = m.clone();
            let limits = Limits::default().max_payload_len(Some(options.max_message_size));
            tokio::spawn(async move {
                while let Some(io) = rx.recv().await {
                    let ws = ServerBuilder::new().limits(limits).serve(io);
                    let m = acceptor.clone();
                    tokio::spawn(async move { m.incoming_conn(ws).await });
                }
            });
            managers.push(m);
        }
        for m in &managers {
            m.start();
        }
        let grid = LocalGrid {
            managers,
            hosts,
            mem: Some(listeners),
        };
        grid.wait_all_connected(Duration::from_secs(10)).await?;
        Ok(grid)
    }

    /// Waits until every connection of every node is up.
    pub async fn wait_all_connected(&self, timeout: Duration) -> Result<(), Error> {
        let all = async {
            for m in &self.managers {
                for c in m.connections() {
                    c.wait_for_connect().await?;
                }
            }
            Ok(())
        };
        tokio::time::timeout(timeout, all)
            .await
            .map_err(|_| Error::Disconnected)?
    }

    /// The connection from node `from` to node `to`.
    pub fn conn(&self, from: usize, to: usize) -> crate::Connection {
        match self.managers[from].connection(&self.hosts[to]) {
            Some(c) => c,
            None => panic!("node {from} has no connection to node {to}"),
        }
    }

    /// Shuts every node down.
    pub async fn shutdown(&self) {
        for m in &self.managers {
            m.shutdown().await;
        }
        // Closes the in-memory accept queues, which ends their tasks.
        if let Some(mem) = &self.mem
            && let Ok(mut l) = mem.lock()
        {
            l.clear();
        }
    }
}

/// MinIO's `testRequest` (grid_types_test.go), encoded as a msgp map `{Num, String}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRequest {
    /// `Num`.
    #[serde(rename = "Num")]
    pub num: i64,
    /// `String`.
    #[serde(rename = "String")]
    pub string: String,
}

/// MinIO's `testResponse`, a msgp map `{OrgNum, OrgString, Embedded}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResponse {
    /// `OrgNum`.
    #[serde(rename = "OrgNum")]
    pub org_num: i64,
    /// `OrgString`.
    #[serde(rename = "OrgString")]
    pub org_string: String,
    /// `Embedded`.
    #[serde(rename = "Embedded")]
    pub embedded: TestRequest,
}
