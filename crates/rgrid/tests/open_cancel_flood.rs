//! Rapid open-and-cancel (the HTTP/2 "rapid reset" class, reliability guide D6): a peer
//! opens and at once cancels 100,000 streams. Bookkeeping stays bounded by the streams alive
//! at one time, memory and the task count stay flat, and the connection lives. The attacker
//! reads what the node sends and keeps at most 4096 streams unanswered (a client that sends
//! faster than it reads overflows the node's queues and is disconnected, like the peer in
//! `hostile.rs` that never reads). In a file of its own so the process's memory belongs to
//! this test alone; run with `--nocapture` for the figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::hostile::{Msg, accepts_again, echo_node};
use common::raw::connected_peer;
use futures_util::{SinkExt, StreamExt};
use rgrid::Options;
use rgrid::proto::{DecodeLimits, Flags, Frame, HandlerId, Op};

/// Streams the attacker leaves unanswered at most when it checks (it checks every
/// `CHECK_EVERY` opens and then waits until at most `WINDOW` are unanswered).
const WINDOW: u64 = 4096;
const CHECK_EVERY: usize = 512;

/// Memory in use by this process, in KiB (Linux only: the memory bounds are checked there
/// alone, and the test says so elsewhere).
#[cfg(target_os = "linux")]
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn rss_kib() -> Option<u64> {
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_open_and_cancel_keeps_bookkeeping_bounded() {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 10_000;
    let (node, mut events) = echo_node(Options::default()).await;
    let conn = node.manager.connection(&node.peer).unwrap();
    let ws = connected_peer(&node).await;
    let (mut sink, mut stream) = ws.split();
    // The peer reads everything and counts the streams the node has finished with (each
    // ends with OpDisconnectClientMux, spec §15.6).
    let finished = Arc::new(AtomicU64::new(0));
    let reader = {
        let finished = finished.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let payload = m.into_payload();
                let n = match Frame::decode(&payload, &DecodeLimits::default()) {
                    Ok(Frame::Message(m)) => u64::from(m.op == Op::DISCONNECT_CLIENT_MUX),
                    Ok(Frame::Merged(ms)) => ms
                        .iter()
                        .filter(|m| m.as_ref().is_ok_and(|m| m.op == Op::DISCONNECT_CLIENT_MUX))
                        .count() as u64,
                    Err(_) => 0,
                };
                finished.fetch_add(n, Ordering::Relaxed);
            }
        })
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    // The node spawns its session's tasks right after the handshake answer the peer has
    // read: wait until the count has settled (the same for 5 polls in a row, bounded), or a
    // baseline taken mid-spawn reads as a leak afterwards.
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        let (mut last, mut same) = (tasks(), 0);
        while same < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = tasks();
            same = if now == last { same + 1 } else { 0 };
            last = now;
        }
    })
    .await;
    assert!(settled.is_ok(), "the task count never settled");
    let (tasks_before, rss_before) = (tasks(), rss_kib());
    let mut max_muxes = 0;
    let mut rss_per_round = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        for k in 0..PER_ROUND {
            let mux = (round * PER_ROUND + k) as u64 + 1;
            let open = Msg {
                flags: Flags::CRC | Flags::EOF,
                ..Msg::new(Op::CONNECT_MUX, mux, 0)
            }
            .handler(HandlerId::TEST2);
            let cancel = Msg::new(Op::DISCONNECT_SERVER_MUX, mux, 1);
            sink.feed(tokio_websockets::Message::binary(open.encode()))
                .await
                .unwrap();
            sink.feed(tokio_websockets::Message::binary(cancel.encode()))
                .await
                .unwrap();
            if k % CHECK_EVERY == 0 {
                sink.flush().await.unwrap();
                max_muxes = max_muxes.max(conn.stats().incoming_muxes);
                // At most WINDOW streams the node has not finished with yet.
                let sent = mux;
                let waited = tokio::time::timeout(Duration::from_secs(10), async {
                    while sent.saturating_sub(finished.load(Ordering::Relaxed)) > WINDOW {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
                .await;
                assert!(
                    waited.is_ok(),
                    "the node stopped answering: {:?}",
                    conn.stats()
                );
            }
        }
        sink.flush().await.unwrap();
        rss_per_round.push(rss_kib());
    }
    let flood = started.elapsed();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while conn.stats().incoming_muxes != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(drained.is_ok(), "muxes left: {:?}", conn.stats());
    assert!(conn.stats().connected, "a legal flood keeps the connection");
    // The node keeps books only for streams alive: when sampled, at most WINDOW +
    // CHECK_EVERY streams were unanswered (each finished stream was answered with
    // OpDisconnectClientMux, sent just before its books are dropped; a few may sit in that
    // gap). Kept books for finished streams would push this past the window (towards
    // `max_incoming_muxes`, 16384, where opens are refused).
    let bound = WINDOW as usize + CHECK_EVERY + 16;
    assert!(
        max_muxes <= bound,
        "{max_muxes} muxes at once, but at most {bound} streams were unanswered"
    );
    // Every handler task is gone again.
    let settled = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks() > tasks_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "tasks: {} before, {} now",
        tasks_before,
        tasks()
    );
    let rss_after = rss_kib();
    println!(
        "open-cancel flood: {} opens+cancels in {flood:?}; most muxes at once {max_muxes}; \
         RSS before {rss_before:?} KiB, per round {rss_per_round:?} KiB, after {rss_after:?} KiB; \
         tasks before {tasks_before}, after {}",
        ROUNDS * PER_ROUND,
        tasks()
    );
    // Memory is flat: the second half of the flood needs no more than the first (plus
    // allocator noise), and the whole flood stays within a small bound.
    if cfg!(not(target_os = "linux")) {
        println!("SKIPPED: the memory bounds (they read /proc/self/status, Linux only)");
    } else {
        let before = rss_before.expect("VmRSS missing from /proc/self/status");
        let rss: Vec<u64> = rss_per_round
            .iter()
            .map(|r| r.expect("VmRSS missing from /proc/self/status"))
            .collect();
        let half = rss.len() / 2;
        let first = rss[..half].iter().max().copied().unwrap();
        let second = rss[half..].iter().max().copied().unwrap();
        assert!(
            second <= first + 16 * 1024,
            "RSS grew from {first} KiB to {second} KiB during the flood"
        );
        assert!(
            first.max(second) < before + 64 * 1024,
            "the flood took {} KiB",
            first.max(second) - before
        );
    }
    drop(sink);
    reader.abort();
    accepts_again(&node).await;
}
