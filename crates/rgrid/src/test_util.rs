//! Test utilities (feature `test-util`): local n-node grids on loopback. Not a stable API.
//!
//! Fault hooks live on [`crate::Connection`] under the same feature: [`crate::Connection::kill`]
//! drops the live websocket and [`crate::Connection::block_inbound`] stops inbound
//! processing; shorter ping intervals are set through [`crate::Options`].

use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::Error;
use crate::manager::Manager;
use crate::options::Options;
use crate::transport::serve;

/// The token every node of a local test grid uses.
pub const TEST_TOKEN: &str = "debug";

/// `n` managers in this process, each serving on its own `127.0.0.1:0` listener, fully
/// meshed (MinIO's `SetupTestGrid`).
#[derive(Debug)]
pub struct LocalGrid {
    /// The managers, in host order.
    pub managers: Vec<Manager>,
    /// The hosts (`http://127.0.0.1:<port>`).
    pub hosts: Vec<String>,
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
        let grid = LocalGrid { managers, hosts };
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
    }
}
