//! Soak test on real loopback sockets (reliability guide W2, §2.6, §2.8): a 3-node
//! [`LocalGrid`] under mixed load (single requests and two-way echo streams between random
//! pairs), periodic connection kills ([`rgrid::Connection::kill`]) and a slow consumer (a
//! client reading a server-pushed stream one message every 50 ms while the handler pushes as
//! fast as its credits allow).
//!
//! Every few seconds it samples live heap bytes (a counting global allocator: allocated −
//! freed), tokio's alive task count and the open muxes of every connection, and prints them.
//! It asserts that memory and task counts stay flat (the maximum over the last third of the
//! samples against the maximum over the first third, after warm-up, with a tolerance), that
//! every call ended within its deadline + 10 s with an expected outcome (none hung, no
//! unexpected error), and that no mux is left open once the load stops.
//!
//! Ignored by default. Run it (default 10 minutes; `RGRID_SOAK_SECS` overrides):
//! `cargo test -p rgrid --release --test soak -- --ignored --nocapture`
//! `RGRID_SOAK_SECS=60 cargo test -p rgrid --release --test soak -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::heap::{Counting, live_heap};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use rgrid::test_util::LocalGrid;
use rgrid::{Error, HandlerId, Manager, Options, RawStreamHandler, RemoteError, StreamOut};

#[global_allocator]
static GLOBAL: Counting = Counting;

const SINGLE: HandlerId = HandlerId::TEST;
const STREAM: HandlerId = HandlerId::TEST2;
/// The server-push stream: `STREAM` under this subroute.
const PUSH_ROUTE: &str = "push";
const PUSH_MSG: usize = 16 * 1024;
const PUSH_CAP: usize = 8;
const DEADLINE: Duration = Duration::from_secs(5);
const WORKERS: usize = 12;

#[derive(Default)]
struct Counters {
    issued: AtomicU64,
    ok: AtomicU64,
    remote: AtomicU64,
    disconnected: AtomicU64,
    deadline: AtomicU64,
    other: AtomicU64,
    hung: AtomicU64,
    kills: AtomicU64,
    pushed_received: AtomicU64,
    push_reopens: AtomicU64,
}

impl Counters {
    fn outcome(&self, res: Result<(), Error>) {
        let c = match res {
            Ok(()) => &self.ok,
            Err(Error::Remote(_)) => &self.remote,
            Err(Error::Disconnected) => &self.disconnected,
            Err(Error::DeadlineExceeded) => &self.deadline,
            Err(e) => {
                eprintln!("soak: unexpected error {e}");
                &self.other
            }
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self) -> u64 {
        [
            &self.ok,
            &self.remote,
            &self.disconnected,
            &self.deadline,
            &self.other,
            &self.hung,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

fn register(m: &Manager) {
    m.register_single(SINGLE, |p| async move { Ok::<_, RemoteError>(p) })
        .unwrap();
    m.register_stream(STREAM, None, common::echo_stream(4, 4))
        .unwrap();
    // Pushes as fast as the caller's credits allow, until cancelled.
    m.register_stream(
        STREAM,
        Some(PUSH_ROUTE),
        RawStreamHandler::new(0, PUSH_CAP, |_, _, _, out: StreamOut| async move {
            let msg = Bytes::from(vec![7u8; PUSH_MSG]);
            loop {
                out.send(msg.clone()).await?;
            }
        }),
    )
    .unwrap();
}

async fn one_call(g: &LocalGrid, rng: &mut fastrand::Rng) -> Result<(), Error> {
    let from = rng.usize(0..3);
    let to = (from + rng.usize(1..3)) % 3;
    let conn = g.conn(from, to);
    if rng.u8(0..10) < 7 {
        let payload = Bytes::from(vec![rng.u8(..); rng.usize(0..4096)]);
        let reply = conn
            .request_with(
                SINGLE,
                payload.clone(),
                &rgrid::CallOptions::new().deadline(DEADLINE),
            )
            .await?;
        if reply != payload {
            return Err(Error::Protocol("echo differs".to_owned()));
        }
        Ok(())
    } else {
        let mut st = conn
            .open_stream_with(STREAM, "", &rgrid::CallOptions::new().deadline(DEADLINE))
            .await?;
        let n = rng.u32(1..8);
        for i in 0..n {
            st.send(Bytes::from(i.to_be_bytes().to_vec())).await?;
            match st.next().await {
                Some(Ok(m)) if m[..] == i.to_be_bytes() => {}
                Some(Ok(_)) => return Err(Error::Protocol("echo out of order".to_owned())),
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Protocol("stream ended early".to_owned())),
            }
        }
        st.close_send();
        match st.next().await {
            None => Ok(()),
            Some(Ok(_)) => Err(Error::Protocol("extra echo".to_owned())),
            Some(Err(e)) => Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    heap: u64,
    tasks: usize,
    muxes: usize,
    calls: u64,
    pushed: u64,
    /// Messages queued on the pushing side's connection (node 1 to node 0).
    out_queue: usize,
}

fn muxes(g: &LocalGrid) -> usize {
    g.managers
        .iter()
        .flat_map(|m| m.connections())
        .map(|c| {
            let s = c.stats();
            s.incoming_muxes + s.outgoing_muxes
        })
        .sum()
}

fn max_of<T: Copy + Ord>(s: &[Sample], f: impl Fn(&Sample) -> T) -> T {
    s.iter().map(f).max().unwrap()
}

/// Least-squares slope of the live heap over the samples, in KiB per minute.
fn trend_kib_per_min(s: &[Sample]) -> f64 {
    let n = s.len() as f64;
    let xs: Vec<f64> = s.iter().map(|s| s.at.as_secs_f64() / 60.0).collect();
    let ys: Vec<f64> = s.iter().map(|s| s.heap as f64 / 1024.0).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: run explicitly, see the module docs"]
async fn soak() {
    let secs: u64 = std::env::var("RGRID_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let total = Duration::from_secs(secs);
    let every = Duration::from_secs((secs / 40).clamp(2, 15));
    let options = Options {
        ping_interval: Duration::from_secs(1),
        ..Options::default()
    };
    let g = Arc::new(
        LocalGrid::start_with(3, options, |_, m| register(m))
            .await
            .unwrap(),
    );
    let c = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Handle::current();
    let start = Instant::now();

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (g, c, stop) = (g.clone(), c.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(w as u64);
            while !stop.load(Ordering::Relaxed) {
                c.issued.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(
                    DEADLINE + Duration::from_secs(10),
                    one_call(&g, &mut rng),
                )
                .await
                {
                    Ok(res) => c.outcome(res),
                    Err(_) => {
                        c.hung.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    // Kills a random connection end every 2-6 s.
    let killer = {
        let (g, c, stop) = (g.clone(), c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(99);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(rng.u64(2000..6000))).await;
                let a = rng.usize(0..3);
                let b = (a + rng.usize(1..3)) % 3;
                g.conn(a, b).kill();
                c.kills.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // The slow consumer: node 0 reads node 1's push stream, one message per 50 ms.
    let slow = {
        let (g, c, stop) = (g.clone(), c.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let conn = g.conn(0, 1);
                let Ok(mut st) = conn
                    .open_stream_with(STREAM, "", &rgrid::CallOptions::new().subroute(PUSH_ROUTE))
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                c.push_reopens.fetch_add(1, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_secs(10), st.next()).await {
                        Ok(Some(Ok(m))) => {
                            assert_eq!(m.len(), PUSH_MSG);
                            c.pushed_received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => break,
                        Err(_) => panic!("slow consumer: no push message for 10 s"),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };

    let mut samples: Vec<Sample> = Vec::new();
    println!("soak: {secs} s, sample every {every:?}");
    println!("     t(s)   heap(KiB)  tasks  muxes     calls  pushed  outq");
    while start.elapsed() < total {
        tokio::time::sleep(every).await;
        let s = Sample {
            at: start.elapsed(),
            heap: live_heap(),
            tasks: rt.metrics().num_alive_tasks(),
            muxes: muxes(&g),
            calls: c.finished(),
            pushed: c.pushed_received.load(Ordering::Relaxed),
            out_queue: g.conn(1, 0).stats().out_queue,
        };
        println!(
            "{:>9.1} {:>11} {:>6} {:>6} {:>9} {:>7} {:>5}",
            s.at.as_secs_f64(),
            s.heap / 1024,
            s.tasks,
            s.muxes,
            s.calls,
            s.pushed,
            s.out_queue
        );
        samples.push(s);
    }

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    killer.await.unwrap();
    slow.await.unwrap();
    // Quiescence: every mux closes.
    let t0 = Instant::now();
    while muxes(&g) != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "muxes left open after the load stopped: {}",
            muxes(&g)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Each worker counts one outcome per call it issued (a call still running after its
    // deadline + 10 s counts as hung), so the outcome counters add up to `issued` by
    // construction: what is checked is which outcomes they are.
    let issued = c.issued.load(Ordering::Relaxed);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak summary: {:.0} s, {issued} calls ({:.0}/s): ok {} remote {} disconnected {} deadline {} other {} hung {}; {} kills; slow consumer got {} messages ({} MiB) over {} streams",
        start.elapsed().as_secs_f64(),
        issued as f64 / start.elapsed().as_secs_f64(),
        load(&c.ok),
        load(&c.remote),
        load(&c.disconnected),
        load(&c.deadline),
        load(&c.other),
        load(&c.hung),
        load(&c.kills),
        load(&c.pushed_received),
        load(&c.pushed_received) * PUSH_MSG as u64 / (1024 * 1024),
        load(&c.push_reopens),
    );
    assert_eq!(load(&c.hung), 0, "calls hung past their deadline");
    assert_eq!(load(&c.other), 0, "unexpected errors (see stderr)");
    assert!(load(&c.ok) > 0 && load(&c.pushed_received) > 0);

    // Flat memory and tasks: the last third against the first third, after warm-up (the
    // first two samples).
    let steady = &samples[2.min(samples.len().saturating_sub(3))..];
    assert!(steady.len() >= 3, "run longer: too few samples");
    let third = steady.len() / 3;
    let (first, last) = (
        &steady[..third.max(1)],
        &steady[steady.len() - third.max(1)..],
    );
    let (h0, h1) = (max_of(first, |s| s.heap), max_of(last, |s| s.heap));
    let (t0, t1) = (max_of(first, |s| s.tasks), max_of(last, |s| s.tasks));
    println!(
        "soak memory: max live heap first third {} KiB, last third {} KiB ({:+.1} %), trend {:+.1} KiB/min; tasks {t0} -> {t1}; peak heap {} KiB; max out queue (slow consumer's connection) {}",
        h0 / 1024,
        h1 / 1024,
        (h1 as f64 - h0 as f64) * 100.0 / h0 as f64,
        trend_kib_per_min(steady),
        max_of(&samples, |s| s.heap) / 1024,
        max_of(&samples, |s| s.out_queue),
    );
    assert!(
        h1 <= h0 + h0 / 4 + 512 * 1024,
        "live heap grew: {h0} -> {h1} bytes"
    );
    assert!(t1 <= t0 + t0 / 4 + 8, "tasks grew: {t0} -> {t1}");
    g.shutdown().await;
}
