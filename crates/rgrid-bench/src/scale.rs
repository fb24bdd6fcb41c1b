//! Scale: full meshes of N nodes in one process on loopback (issue 17, item 5).
//!
//! For each mesh size N: N managers, each serving on a listener of its own on `127.0.0.1`
//! (real sockets, bound first on port 0 so the URLs are known), with the inline 512-byte echo
//! on `HandlerId::TEST`; every node started at once and the mesh waited for with
//! [`Manager::wait_for_peers`] on every node. A full mesh has N(N-1)/2 connections (one
//! websocket per pair, dialed by the side the who-dials rule picks), and since every node is
//! in this process each connection has both of its ends here: N(N-1) connection ends.
//!
//! Measured, in this order:
//!
//! 1. **idle memory**: the resident set (`VmRSS`) before the mesh is built and after it has
//!    been up and idle for the settle time, each read right after giving the C heap's free
//!    memory back to the system (`malloc_trim`), so that what earlier meshes left free is not
//!    counted. The growth is divided per node (N), per connection (N(N-1)/2, both ends) and per
//!    connection end (N(N-1), what one node pays per peer). The live heap (bytes allocated and
//!    not freed, from the counting allocator) is reported the same way when the allocator is
//!    installed. Kernel memory (socket structures and buffers) is not in either figure;
//!    `/proc/net/sockstat`'s TCP buffer pages are recorded for the whole machine.
//! 2. **idle CPU**: the process's CPU time (user + system, `getrusage`) over the idle window,
//!    as a percentage of one core, in total and divided by N. At idle a node only pings each
//!    peer (every [`rgrid::Options::ping_interval`]) and answers its pings.
//! 3. **calls/s**: a closed loop in which every node has `per_node` client tasks, each calling
//!    the echo of a random other node with 512 bytes, on the same runtime as the nodes; the
//!    benchmark's timing (warm-up, measured time, repetitions, median by calls/s).
//! 4. **simultaneous restart**: every manager shut down at once (and its listener closed),
//!    then all rebuilt: new managers with the same URLs, each binding its old port again
//!    (retried briefly if the port is not free yet), serving and starting, one after
//!    another with nothing in between, so every node is back within milliseconds and all
//!    N(N-1)/2 connections are dialed and authenticated together (the herd). The clock
//!    starts when every old node is down, before the first new one binds, and stops when
//!    every new node's [`Manager::wait_for_peers`] has succeeded.
//! 5. **staggered restart** (unless the spread is 0): the same, but each node comes back
//!    after a random delay within the spread, as processes restarted together do. A node
//!    that dials a peer not bound yet is refused and retries 1-2 s after its attempt started
//!    (the jittered dial backoff), so this measures the backoff path: expect the spread plus
//!    up to 2 s.
//!
//! Before the first size, a 2-node mesh is built and shut down, so that one-time costs of the
//! process (lazily built statics, the runtime's I/O driver tables) are not charged to the
//! first size's memory.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use rgrid::{Connection, HandlerId, Manager, RemoteError};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::alloc::Snapshot;
use crate::measure::{self, Point, TaskResult, Timing};
use crate::report::{Goal, Over, Target};
use crate::sys;

/// Mesh sizes measured by default.
pub const DEFAULT_NODES: [usize; 3] = [8, 32, 64];
/// Calls in flight per node during the load, by default.
pub const DEFAULT_PER_NODE: usize = 2;
/// Idle time before the memory is read, by default.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(3);
/// The idle window over which CPU time is measured, by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(5);
/// The window over which the nodes of the staggered restart come back, by default.
pub const DEFAULT_SPREAD: Duration = Duration::from_secs(2);
/// Issue 17's goal: idle memory per connection, KiB (judged per connection, both ends).
pub const MEMORY_GOAL_KIB: f64 = 64.0;
/// Issue 17's goal: seconds for the whole mesh to reconnect after every node restarted.
pub const RECONNECT_GOAL_S: f64 = 10.0;
/// How long the mesh may take to come up (at start and after the restart) before the run
/// gives up on it.
pub const MESH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restarted node retries binding its old port.
pub const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
/// The token every node uses.
pub const TOKEN: &str = "t";
/// File descriptors kept free beyond the mesh's sockets and listeners.
const FD_MARGIN: u64 = 64;

/// What the scenario runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleConfig {
    /// Mesh sizes, in the order measured.
    pub nodes: Vec<usize>,
    /// Client tasks per node during the load.
    pub per_node: usize,
    /// Idle time after the mesh is up, before memory is read.
    pub settle: Duration,
    /// The idle window of the CPU measurement.
    pub idle: Duration,
    /// The window over which the nodes of the staggered restart come back (0: no staggered
    /// restart).
    pub spread: Duration,
    /// Warm-up, measured time and repetitions of the load.
    pub timing: Timing,
}

/// One mesh size's figures (the JSON document's `scale` entries). A figure that could not be
/// measured is `null`; `skipped` or `error` says why.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScaleRecord {
    /// Nodes (N).
    pub nodes: usize,
    /// Connections of the full mesh, N(N-1)/2.
    pub connections: usize,
    /// Connection ends, N(N-1): both ends of every connection are in this process.
    pub connection_ends: usize,
    /// Why this size was not run (a machine limit), if it was not.
    pub skipped: Option<String>,
    /// What failed part-way, if something did; the figures before it stand.
    pub error: Option<String>,
    /// Seconds from starting the nodes until every node's `wait_for_peers` succeeded.
    pub mesh_up_s: Option<f64>,
    /// Resident memory before the mesh was built, KiB.
    pub rss_before_kib: Option<u64>,
    /// Resident memory with the mesh up and idle, KiB.
    pub rss_idle_kib: Option<u64>,
    /// Resident memory growth per node, KiB.
    pub rss_per_node_kib: Option<f64>,
    /// Resident memory growth per connection (both ends), KiB.
    pub rss_per_connection_kib: Option<f64>,
    /// Resident memory growth per connection end, KiB.
    pub rss_per_end_kib: Option<f64>,
    /// Live heap growth per node, KiB (the counting allocator's bytes not yet freed).
    pub heap_per_node_kib: Option<f64>,
    /// Live heap growth per connection (both ends), KiB.
    pub heap_per_connection_kib: Option<f64>,
    /// Live heap growth per connection end, KiB.
    pub heap_per_end_kib: Option<f64>,
    /// Kernel TCP buffer memory of the whole machine before and with the mesh up, KiB
    /// (`/proc/net/sockstat`, pages of 4 KiB).
    pub kernel_tcp_mem_kib: Option<(u64, u64)>,
    /// Length of the idle CPU window, seconds.
    pub idle_window_s: f64,
    /// CPU time of the whole process over the idle window, % of one core.
    pub idle_cpu_pct: Option<f64>,
    /// The same divided by N.
    pub idle_cpu_pct_per_node: Option<f64>,
    /// Calls in flight during the load (N x per node).
    pub calls_in_flight: usize,
    /// Calls per second, the whole mesh.
    pub calls_per_sec: Option<f64>,
    /// Calls per second per node (as caller).
    pub calls_per_sec_per_node: Option<f64>,
    /// Median call latency, µs.
    pub call_p50_us: Option<f64>,
    /// 99th percentile call latency, µs.
    pub call_p99_us: Option<f64>,
    /// Failed calls during the load.
    pub call_errors: u64,
    /// Seconds to shut every node down at once.
    pub shutdown_s: Option<f64>,
    /// Seconds from the last old node down until the last new node was started (binding,
    /// building and starting every node in turn).
    pub rebuilt_s: Option<f64>,
    /// Seconds from the last old node down until every new node's `wait_for_peers`
    /// succeeded (the whole mesh reconnected).
    pub reconnect_s: Option<f64>,
    /// The median node's time to see all its peers, seconds.
    pub reconnect_median_node_s: Option<f64>,
    /// Peers still down (summed over nodes) when the restarted mesh timed out; 0 if it came
    /// up.
    pub reconnect_peers_down: usize,
    /// Connections whose first dial after the restart failed (most often: the peer's port
    /// was not bound yet), each then retried after the 1-2 s dial backoff.
    pub reconnect_failed_dials: usize,
    /// The error of one of them.
    pub reconnect_dial_error: Option<String>,
    /// The staggered restart's spread, seconds (0: not run).
    pub spread_s: f64,
    /// Seconds from the last old node down until the whole mesh reconnected, the nodes
    /// coming back at random times within the spread.
    pub staggered_reconnect_s: Option<f64>,
    /// Peers still down (summed over nodes) when the staggered restart timed out.
    pub staggered_peers_down: usize,
    /// Connections whose first dial after the staggered restart failed.
    pub staggered_failed_dials: usize,
    /// Resident memory after the restarts, the mesh up and idle for the settle time, KiB.
    pub rss_after_restart_kib: Option<u64>,
    /// Live heap after the restarts minus the live heap with the first mesh idle, KiB: about
    /// 0 when the old nodes' memory was freed (a resident figure above the first one is then
    /// memory the C allocator kept), positive when some of it is still allocated.
    pub heap_growth_after_restart_kib: Option<f64>,
}

impl ScaleRecord {
    fn new(nodes: usize) -> ScaleRecord {
        ScaleRecord {
            nodes,
            connections: nodes * nodes.saturating_sub(1) / 2,
            connection_ends: nodes * nodes.saturating_sub(1),
            ..ScaleRecord::default()
        }
    }
}

/// A node of the mesh: its manager and its serving task.
struct Node {
    manager: Manager,
    serve: JoinHandle<()>,
}

/// A running mesh.
struct Mesh {
    hosts: Vec<String>,
    addrs: Vec<SocketAddr>,
    nodes: Vec<Node>,
}

impl Mesh {
    fn managers(&self) -> impl Iterator<Item = &Manager> {
        self.nodes.iter().map(|n| &n.manager)
    }

    /// Shuts every node down at once and waits for their listeners to close.
    async fn shutdown(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        join_all(nodes.iter().map(|n| n.manager.shutdown())).await;
        for n in nodes {
            // The serving task returns (dropping the listener) once its manager shut down.
            let _ = tokio::time::timeout(Duration::from_secs(5), n.serve).await;
        }
    }
}

/// Builds, serves and starts one node on `listener`.
fn start_node(host: &str, hosts: &[String], listener: TcpListener) -> Result<Node, String> {
    let manager = Manager::builder(host.to_owned(), hosts.iter().cloned())
        .token(TOKEN)
        .build()
        .map_err(|e| format!("building {host}: {e}"))?;
    manager
        .register_single_inline(HandlerId::TEST, None, |_, p: Bytes| async move {
            Ok::<_, RemoteError>(p)
        })
        .map_err(|e| format!("registering the echo on {host}: {e}"))?;
    let serve = tokio::spawn(rgrid::serve(listener, manager.clone()));
    manager.start();
    Ok(Node { manager, serve })
}

/// Binds N listeners on `127.0.0.1:0`, then builds and starts every node.
async fn start_mesh(n: usize) -> Result<Mesh, String> {
    let mut listeners = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding a listener: {e}"))?;
        addrs.push(l.local_addr().map_err(|e| format!("local address: {e}"))?);
        listeners.push(l);
    }
    let hosts: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let mut mesh = Mesh {
        hosts,
        addrs,
        nodes: Vec::with_capacity(n),
    };
    for (i, l) in listeners.into_iter().enumerate() {
        match start_node(&mesh.hosts[i], &mesh.hosts, l) {
            Ok(node) => mesh.nodes.push(node),
            Err(e) => {
                mesh.shutdown().await;
                return Err(e);
            }
        }
    }
    Ok(mesh)
}

/// Waits until every node sees all its peers; the error counts the peers still down.
async fn wait_mesh(mesh: &Mesh) -> Result<(), String> {
    let results = join_all(mesh.managers().map(|m| m.wait_for_peers(MESH_TIMEOUT))).await;
    let down: usize = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.down.len())
        .sum();
    if down == 0 {
        Ok(())
    } else {
        Err(format!(
            "{down} connection end(s) still down after {} s",
            MESH_TIMEOUT.as_secs()
        ))
    }
}

/// Binds `addr` again, retrying for up to [`REBIND_TIMEOUT`] while the port is not free.
async fn rebind(addr: SocketAddr) -> Result<TcpListener, String> {
    let deadline = Instant::now() + REBIND_TIMEOUT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("binding {addr} again: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The restart's outcome.
struct Restart {
    shutdown: Duration,
    /// Each node's time to see all its peers, from the clock's start, with the peers still
    /// down if it gave up.
    nodes: Vec<(Duration, usize)>,
    /// Connections with a failed dial attempt since the restart.
    failed_dials: usize,
    /// One of their errors.
    example: Option<String>,
    /// From the clock's start until the last node was started.
    rebuilt: Duration,
}

/// Shuts every node down at once, rebuilds them all on the same ports, each after a random
/// delay within `spread` (none if zero), and waits for the mesh (see the module
/// documentation).
async fn restart(mesh: &mut Mesh, spread: Duration) -> Result<Restart, String> {
    let t = Instant::now();
    mesh.shutdown().await;
    let shutdown = t.elapsed();
    let n = mesh.addrs.len();
    let mut order: Vec<(Duration, usize)> = (0..n)
        .map(|i| (spread.mul_f64(fastrand::f64()), i))
        .collect();
    order.sort();
    let t0 = Instant::now();
    let mut waiters = Vec::with_capacity(n);
    for (delay, i) in order {
        if !delay.is_zero() {
            tokio::time::sleep_until((t0 + delay).into()).await;
        }
        let l = rebind(mesh.addrs[i]).await?;
        let node = start_node(&mesh.hosts[i], &mesh.hosts, l)?;
        let m = node.manager.clone();
        waiters.push(tokio::spawn(async move {
            let down = m
                .wait_for_peers(MESH_TIMEOUT)
                .await
                .map_or_else(|e| e.down.len(), |()| 0);
            (t0.elapsed(), down)
        }));
        mesh.nodes.push(node);
    }
    let rebuilt = t0.elapsed();
    let mut nodes = Vec::with_capacity(waiters.len());
    for w in join_all(waiters).await {
        nodes.push(w.map_err(|e| format!("waiting for the restarted mesh: {e}"))?);
    }
    // A new manager's connection has a last error only if one of its attempts failed.
    let failures: Vec<String> = mesh
        .managers()
        .flat_map(|m| m.connections())
        .filter_map(|c| c.last_error().map(|f| f.error.to_string()))
        .collect();
    Ok(Restart {
        shutdown,
        nodes,
        failed_dials: failures.len(),
        example: failures.into_iter().next(),
        rebuilt,
    })
}

/// Resident memory in KiB right after trimming the C heap.
fn trimmed_rss() -> Option<u64> {
    sys::trim_heap();
    sys::rss_kib()
}

/// Every node calling the echo of random other nodes, `per_node` client tasks per node.
async fn load(mesh: &Mesh, per_node: usize, payload: &Bytes, timing: Timing) -> Point {
    let conns: Vec<Arc<Vec<Connection>>> = mesh
        .managers()
        .map(|m| Arc::new(m.connections().collect()))
        .collect();
    let tasks = conns.len() * per_node;
    let cap = measure::lat_capacity(tasks, timing.measure);
    measure::median_of(timing, || {
        let conns = conns.clone();
        let payload = payload.clone();
        measure::run_once(timing, move |phase| {
            (0..tasks)
                .map(|i| {
                    let mine = conns[i % conns.len()].clone();
                    let phase = phase.clone();
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        let mut rng = fastrand::Rng::with_seed(i as u64);
                        let mut res = TaskResult::with_capacity(cap);
                        while !phase.stopped() {
                            let conn = &mine[rng.usize(..mine.len())];
                            let t0 = Instant::now();
                            let len = payload.len();
                            let ok = matches!(
                                conn.request(HandlerId::TEST, payload.clone()).await,
                                Ok(b) if b.len() == len
                            );
                            if phase.measuring() {
                                res.record(t0, ok);
                            }
                        }
                        res
                    })
                })
                .collect()
        })
    })
    .await
}

/// Whether the machine's limits allow a mesh of `n`: raises the soft open-files limit when
/// the hard one allows; `Err` says why not. `Ok` carries a note when the limit was raised.
fn check_limits(n: usize) -> Result<Option<String>, String> {
    let sockets = (n * n.saturating_sub(1) + n) as u64;
    let need = sys::open_fds().unwrap_or(0) as u64 + sockets + FD_MARGIN;
    let Some((soft, hard)) = sys::open_files_limit() else {
        return Ok(None);
    };
    if soft.is_none_or(|s| s >= need) {
        return Ok(None);
    }
    if hard.is_some_and(|h| h < need) {
        return Err(format!(
            "needs about {need} file descriptors ({sockets} sockets and listeners), \
             the open-files limit is {} (hard {})",
            soft.unwrap_or(0),
            hard.unwrap_or(0)
        ));
    }
    match sys::raise_open_files(need) {
        Ok(new) => Ok(Some(format!(
            "raised the open-files limit from {} to {new} for {n} nodes",
            soft.unwrap_or(0)
        ))),
        Err(e) => Err(format!(
            "needs about {need} file descriptors, the open-files limit is {} and raising it failed: {e}",
            soft.unwrap_or(0)
        )),
    }
}

fn per(total_kib: f64, count: usize) -> Option<f64> {
    (count > 0).then(|| total_kib / count as f64)
}

/// Measures one mesh size into `rec`; an error leaves the figures measured before it.
async fn measure_size(
    cfg: &ScaleConfig,
    payload: &Bytes,
    rec: &mut ScaleRecord,
) -> Result<(), String> {
    let n = rec.nodes;
    rec.idle_window_s = cfg.idle.as_secs_f64();
    rec.calls_in_flight = n * cfg.per_node;

    rec.rss_before_kib = trimmed_rss();
    let heap0 = Snapshot::now().live();
    let tcp0 = sys::tcp_stat();
    let t = Instant::now();
    let mut mesh = start_mesh(n).await?;
    let result = async {
        wait_mesh(&mesh).await?;
        rec.mesh_up_s = Some(t.elapsed().as_secs_f64());

        // 1. Idle memory.
        tokio::time::sleep(cfg.settle).await;
        rec.rss_idle_kib = trimmed_rss();
        let heap1 = Snapshot::now().live();
        if let (Some(a), Some(b)) = (rec.rss_before_kib, rec.rss_idle_kib) {
            let grown = b as f64 - a as f64;
            rec.rss_per_node_kib = per(grown, n);
            rec.rss_per_connection_kib = per(grown, rec.connections);
            rec.rss_per_end_kib = per(grown, rec.connection_ends);
        }
        if heap0 > 0 {
            let grown = (heap1 as f64 - heap0 as f64) / 1024.0;
            rec.heap_per_node_kib = per(grown, n);
            rec.heap_per_connection_kib = per(grown, rec.connections);
            rec.heap_per_end_kib = per(grown, rec.connection_ends);
        }
        if let (Some(a), Some(b)) = (tcp0, sys::tcp_stat()) {
            rec.kernel_tcp_mem_kib = Some((a.mem_pages * 4, b.mem_pages * 4));
        }

        // 2. Idle CPU.
        let c0 = sys::cpu_time();
        let w0 = Instant::now();
        tokio::time::sleep(cfg.idle).await;
        let wall = w0.elapsed().as_secs_f64();
        if let (Some(c0), Some(c1)) = (c0, sys::cpu_time()) {
            let pct = c1.saturating_sub(c0).as_secs_f64() / wall * 100.0;
            rec.idle_cpu_pct = Some(pct);
            rec.idle_cpu_pct_per_node = Some(pct / n as f64);
        }

        // 3. Calls/s.
        let p = load(&mesh, cfg.per_node, payload, cfg.timing).await;
        rec.calls_per_sec = Some(p.ops_per_sec);
        rec.calls_per_sec_per_node = Some(p.ops_per_sec / n as f64);
        rec.call_p50_us = Some(p.p50_us);
        rec.call_p99_us = Some(p.p99_us);
        rec.call_errors = p.errors;

        // 4. Simultaneous restart.
        let r = restart(&mut mesh, Duration::ZERO).await?;
        rec.shutdown_s = Some(r.shutdown.as_secs_f64());
        rec.rebuilt_s = Some(r.rebuilt.as_secs_f64());
        rec.reconnect_peers_down = r.nodes.iter().map(|(_, down)| down).sum();
        rec.reconnect_failed_dials = r.failed_dials;
        rec.reconnect_dial_error = r.example;
        let mut times: Vec<f64> = r.nodes.iter().map(|(t, _)| t.as_secs_f64()).collect();
        times.sort_by(f64::total_cmp);
        rec.reconnect_median_node_s = times.get(times.len() / 2).copied();
        if rec.reconnect_peers_down == 0 {
            rec.reconnect_s = times.last().copied();
        } else {
            return Err(format!(
                "after the restart, {} connection end(s) were still down after {} s",
                rec.reconnect_peers_down,
                MESH_TIMEOUT.as_secs()
            ));
        }

        // 5. Staggered restart.
        if !cfg.spread.is_zero() {
            rec.spread_s = cfg.spread.as_secs_f64();
            let r = restart(&mut mesh, cfg.spread).await?;
            rec.staggered_peers_down = r.nodes.iter().map(|(_, down)| down).sum();
            rec.staggered_failed_dials = r.failed_dials;
            if rec.staggered_peers_down > 0 {
                return Err(format!(
                    "after the staggered restart, {} connection end(s) were still down after {} s",
                    rec.staggered_peers_down,
                    MESH_TIMEOUT.as_secs()
                ));
            }
            rec.staggered_reconnect_s = r
                .nodes
                .iter()
                .map(|(t, _)| t.as_secs_f64())
                .reduce(f64::max);
        }
        tokio::time::sleep(cfg.settle).await;
        rec.rss_after_restart_kib = trimmed_rss();
        if heap0 > 0 {
            let heap2 = Snapshot::now().live();
            rec.heap_growth_after_restart_kib = Some((heap2 as f64 - heap1 as f64) / 1024.0);
        }
        Ok(())
    }
    .await;
    mesh.shutdown().await;
    result
}

/// Runs every mesh size of `cfg`, printing the table row by row, then the notes.
pub async fn run(cfg: &ScaleConfig, payload: &Bytes) -> Vec<ScaleRecord> {
    print!("{}", intro(cfg));
    // One-time costs of the process go to a throwaway mesh, not to the first size.
    if check_limits(2).is_ok()
        && let Ok(mut m) = start_mesh(2).await
    {
        let _ = wait_mesh(&m).await;
        m.shutdown().await;
    }
    println!("{}", header());
    let mut out = Vec::with_capacity(cfg.nodes.len());
    let mut notes = Vec::new();
    for &n in &cfg.nodes {
        let mut rec = ScaleRecord::new(n);
        match check_limits(n) {
            Err(why) => rec.skipped = Some(why),
            Ok(note) => {
                notes.extend(note);
                if let Err(e) = measure_size(cfg, payload, &mut rec).await {
                    rec.error = Some(e);
                }
            }
        }
        println!("{}", row(&rec));
        out.push(rec);
    }
    print!("{}", notes_text(&out, &notes));
    out
}

/// The lines printed before the table: what is measured and the machine's limits.
pub fn intro(cfg: &ScaleConfig) -> String {
    let mut s = String::new();
    let t = cfg.timing;
    let _ = writeln!(
        s,
        "\nscale: full meshes in one process on 127.0.0.1 (real sockets; N nodes, one websocket per pair = \
         N(N-1)/2 connections, both ends of each in this process); memory after {:.1} s idle (VmRSS, C heap \
         trimmed first), idle CPU over {:.1} s, then {} calls in flight per node to random other nodes \
         (512 B inline echo; {} x ({} ms warm-up + {} ms), median), then every node shut down at once and \
         rebuilt on the same ports: all back at once (reconnect), then each back at a random time within \
         {:.1} s (staggered)",
        cfg.settle.as_secs_f64(),
        cfg.idle.as_secs_f64(),
        cfg.per_node,
        t.repeats,
        t.warmup.as_millis(),
        t.measure.as_millis(),
        cfg.spread.as_secs_f64()
    );
    let limit = match sys::open_files_limit() {
        Some((soft, hard)) => {
            let f = |v: Option<u64>| v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string());
            format!("open files {} (hard {})", f(soft), f(hard))
        }
        None => "open-files limit unknown".to_owned(),
    };
    let ports = sys::local_port_range().map_or_else(
        || "ephemeral ports unknown".to_owned(),
        |(lo, hi)| format!("ephemeral ports {lo}-{hi}"),
    );
    let biggest = cfg.nodes.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        s,
        "limits: {limit}, {ports}; the largest mesh ({biggest} nodes) needs {} sockets + {biggest} listeners; \
         load average {}",
        biggest * biggest.saturating_sub(1),
        sys::loadavg().unwrap_or_else(|| "unknown".to_owned())
    );
    if sys::rss_kib().is_none() {
        let _ = writeln!(s, "no /proc/self/status here: memory is not measured");
    }
    s
}

/// The table's column header.
pub fn header() -> String {
    format!(
        "{:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>9}",
        "nodes",
        "conns",
        "RSS MiB",
        "KiB/node",
        "KiB/conn",
        "KiB/end",
        "heap/end",
        "idle CPU",
        "CPU/node",
        "calls/s",
        "/node",
        "reconnect",
        "staggered"
    )
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

/// One row of the table (a skipped or failed size says so after its figures).
pub fn row(r: &ScaleRecord) -> String {
    let mut s = format!(
        "{:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>9}",
        r.nodes,
        r.connections,
        opt(r.rss_idle_kib.map(|k| k as f64), |k| format!(
            "{:.1}",
            k / 1024.0
        )),
        opt(r.rss_per_node_kib, |v| format!("{v:.0}")),
        opt(r.rss_per_connection_kib, |v| format!("{v:.1}")),
        opt(r.rss_per_end_kib, |v| format!("{v:.1}")),
        opt(r.heap_per_end_kib, |v| format!("{v:.1}")),
        opt(r.idle_cpu_pct, |v| format!("{v:.2}%")),
        opt(r.idle_cpu_pct_per_node, |v| format!("{v:.3}%")),
        opt(r.calls_per_sec, crate::svg::si),
        opt(r.calls_per_sec_per_node, crate::svg::si),
        opt(r.reconnect_s, |v| format!("{v:.2} s")),
        opt(r.staggered_reconnect_s, |v| format!("{v:.2} s")),
    );
    if let Some(why) = &r.skipped {
        let _ = write!(s, "  skipped: {why}");
    }
    if let Some(e) = &r.error {
        let _ = write!(s, "  error: {e}");
    }
    s
}

/// Least-squares fit of the memory growth `g(N) = a N + b N(N-1)` over the measured sizes:
/// `a` is the cost of a node without connections, `b` that of a connection end. `None` with
/// fewer than two sizes.
pub fn fit(points: &[(usize, f64)]) -> Option<(f64, f64)> {
    let (mut s11, mut s12, mut s22, mut s1y, mut s2y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, y) in points {
        let x1 = n as f64;
        let x2 = (n * n.saturating_sub(1)) as f64;
        s11 += x1 * x1;
        s12 += x1 * x2;
        s22 += x2 * x2;
        s1y += x1 * y;
        s2y += x2 * y;
    }
    let det = s11 * s22 - s12 * s12;
    if points.len() < 2 || det.abs() < 1e-9 {
        return None;
    }
    Some(((s1y * s22 - s2y * s12) / det, (s11 * s2y - s12 * s1y) / det))
}

/// The lines under the table: how the columns divide, the fit, and anything not measured.
pub fn notes_text(records: &[ScaleRecord], notes: &[String]) -> String {
    let mut s = String::from(
        "RSS MiB = resident memory with the mesh idle; KiB/node, KiB/conn, KiB/end = its growth over the \
         memory before the mesh, divided by N, by the N(N-1)/2 connections (both ends) and by the N(N-1) \
         connection ends; heap/end = the same for the live heap; idle CPU = process CPU time over the idle \
         window in % of one core, CPU/node = that / N; calls/s = the whole mesh, /node = per calling node; \
         reconnect = every node down at once, back at once, until every node's wait_for_peers is satisfied; \
         staggered = the same with each node back at a random time within the spread \
         (kernel socket memory is in neither memory figure)\n",
    );
    for n in notes {
        let _ = writeln!(s, "note: {n}");
    }
    let rss: Vec<(usize, f64)> = records
        .iter()
        .filter_map(|r| Some((r.nodes, r.rss_per_node_kib? * r.nodes as f64)))
        .collect();
    let heap: Vec<(usize, f64)> = records
        .iter()
        .filter_map(|r| Some((r.nodes, r.heap_per_node_kib? * r.nodes as f64)))
        .collect();
    if let (Some((a, b)), Some((ha, hb))) = (fit(&rss), fit(&heap)) {
        let _ = writeln!(
            s,
            "fit over the sizes (growth = a N + b N(N-1)): RSS a = {a:.0} KiB per node, b = {b:.1} KiB per \
             connection end; live heap a = {ha:.0} KiB, b = {hb:.1} KiB"
        );
    } else if let Some((a, b)) = fit(&rss) {
        let _ = writeln!(
            s,
            "fit over the sizes (growth = a N + b N(N-1)): RSS a = {a:.0} KiB per node, b = {b:.1} KiB per \
             connection end"
        );
    }
    for r in records {
        if let (Some(p50), Some(p99)) = (r.call_p50_us, r.call_p99_us) {
            let _ = write!(
                s,
                "{} nodes: mesh up in {:.2} s; calls p50 {p50:.0} us, p99 {p99:.0} us, {} in flight, {} errors",
                r.nodes,
                r.mesh_up_s.unwrap_or(0.0),
                r.calls_in_flight,
                r.call_errors
            );
            if let (Some(sd), Some(med)) = (r.shutdown_s, r.reconnect_median_node_s) {
                let _ = write!(
                    s,
                    "; shutdown {sd:.2} s, every node back in {:.3} s, median node reconnected in {med:.2} s, \
                     {} of {} connections retried after a failed first dial ({} staggered)",
                    r.rebuilt_s.unwrap_or(0.0),
                    r.reconnect_failed_dials,
                    r.connections,
                    r.staggered_failed_dials
                );
                if let Some(e) = &r.reconnect_dial_error {
                    let _ = write!(s, " (e.g. {e})");
                }
            }
            if let Some(k) = r.rss_after_restart_kib {
                let _ = write!(s, "; RSS after the restarts {:.1} MiB", k as f64 / 1024.0);
            }
            if let Some(h) = r.heap_growth_after_restart_kib {
                let _ = write!(s, " (live heap {h:+.0} KiB against the first mesh)");
            }
            if let Some((a, b)) = r.kernel_tcp_mem_kib {
                let _ = write!(s, "; kernel TCP buffers (machine) {a} -> {b} KiB");
            }
            s.push('\n');
        }
        if let Some(why) = &r.skipped {
            let _ = writeln!(s, "{} nodes NOT measured: {why}", r.nodes);
        }
        if let Some(e) = &r.error {
            let _ = writeln!(s, "{} nodes: could not finish: {e}", r.nodes);
        }
    }
    s
}

/// Issue 17's goals on the measured sizes: idle memory per connection (both ends) and the
/// time for the mesh to reconnect after every node restarted at once.
pub fn goals(records: &[ScaleRecord]) -> Vec<Goal> {
    let mut out = Vec::new();
    for r in records {
        for (name, value, unit, target) in [
            (
                "idle memory per connection (RSS, both ends)",
                r.rss_per_connection_kib,
                " KiB",
                Target::AtMost(MEMORY_GOAL_KIB),
            ),
            (
                "mesh reconnect after every node restarted at once",
                r.reconnect_s,
                " s",
                Target::AtMost(RECONNECT_GOAL_S),
            ),
            (
                "mesh reconnect, nodes back within the spread",
                r.staggered_reconnect_s,
                " s",
                Target::AtMost(RECONNECT_GOAL_S),
            ),
        ] {
            if name.contains("spread") && r.spread_s == 0.0 && r.staggered_reconnect_s.is_none() {
                continue;
            }
            out.push(Goal {
                issue: 17,
                name: name.to_owned(),
                servers: Some(r.nodes),
                window: None,
                over: Over::Point,
                at_concurrency: None,
                value,
                unit,
                target,
                met: value.map(|v| target.met(v)),
            });
        }
    }
    out
}

/// A rough duration of the scenario.
pub fn estimate(cfg: &ScaleConfig) -> Duration {
    let t = cfg.timing;
    let load = (t.warmup + t.measure) * t.repeats.max(1) as u32;
    // Mesh up, the restarts (the spread and 1-2 s of dial backoff) and teardown.
    (cfg.settle * 2 + cfg.idle + load + cfg.spread + Duration::from_secs(4))
        * cfg.nodes.len() as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_node_and_end_costs() {
        let pts: Vec<(usize, f64)> = [8usize, 32, 64]
            .iter()
            .map(|&n| (n, 100.0 * n as f64 + 20.0 * (n * (n - 1)) as f64))
            .collect();
        let (a, b) = fit(&pts).unwrap();
        assert!((a - 100.0).abs() < 1e-6, "{a}");
        assert!((b - 20.0).abs() < 1e-6, "{b}");
        assert_eq!(fit(&pts[..1]), None);
    }

    #[test]
    fn counts_and_rows() {
        let mut r = ScaleRecord::new(64);
        assert_eq!(r.connections, 2016);
        assert_eq!(r.connection_ends, 4032);
        assert_eq!(row(&r).len(), header().len());
        r.rss_idle_kib = Some(300_000);
        r.rss_per_node_kib = Some(1500.0);
        r.rss_per_connection_kib = Some(47.6);
        r.rss_per_end_kib = Some(23.8);
        r.heap_per_end_kib = Some(12.1);
        r.idle_cpu_pct = Some(12.5);
        r.idle_cpu_pct_per_node = Some(0.195);
        r.calls_per_sec = Some(123_456.0);
        r.calls_per_sec_per_node = Some(1929.0);
        r.reconnect_s = Some(1.87);
        assert_eq!(row(&r).len(), header().len(), "{}\n{}", header(), row(&r));
        r.skipped = Some("too few fds".to_owned());
        assert!(row(&r).ends_with("skipped: too few fds"));
    }

    #[test]
    fn goals_per_size() {
        let mut r = ScaleRecord::new(64);
        r.rss_per_connection_kib = Some(70.0);
        r.reconnect_s = Some(2.0);
        r.spread_s = 2.0;
        r.staggered_reconnect_s = Some(12.0);
        let g = goals(&[r, ScaleRecord::new(8)]);
        // The 8-node record ran no staggered restart: no goal for it.
        assert_eq!(g.len(), 5);
        assert_eq!(g[0].met, Some(false));
        assert_eq!(g[1].met, Some(true));
        assert_eq!(g[2].met, Some(false));
        assert_eq!(g[3].met, None);
        assert!(g.iter().all(|g| g.issue == 17));
    }
}
