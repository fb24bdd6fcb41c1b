//! Scale (issue 14, item 7): the served-stream limit's worth of idle two-way streams on one
//! connection, kept alive by stream pings (spec §3.12) for five ping intervals.
//!
//! * `idle_streams_survive_five_ping_rounds_in_memory`: 16,384 streams
//!   (`Options::max_incoming_muxes`' default) over the in-memory grid on paused time, with the
//!   real 15 s interval. Every round pings all of them at once.
//! * `idle_streams_survive_five_ping_rounds_on_loopback`: the same over TCP in real time with
//!   a 2 s interval while two busy-looping OS threads steal the CPU. Prints memory per idle
//!   stream and per idle connection (run with `--nocapture`).
//! * `raw_peer_pings_every_stream_at_once`: a raw peer opens 16,384 streams on a node and pings
//!   them all in merged frames of 50, as a Go caller whose streams were opened together does
//!   every 15 s; it must get one pong per ping and keep its connection.
//!
//! After each hold: no connection was lost (no reconnect, still connected), no stream ended,
//! every stream echoes one message and ends cleanly, and no mux is left open.
//!
//! `RGRID_SCALE_STREAMS=<n>` runs them with `n` streams instead (e.g. 900, to check the tests
//! themselves). The tests take turns (one lock): they compete for the CPU and the memory
//! figures are process-wide.
//!
//! `tests/many_streams.rs` (10,000 busy streams, its peak RSS asserted in a process of its
//! own) stays separate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::heap::{Counting, live_heap};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use common::hostile::{Msg, Step, play};
use common::raw::{self, Got, connected_peer};
use common::{assert_no_active, bounded, register_echo_stream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rgrid::proto::{
    DecodeLimits, Frame, GridTime, HandlerId, Op, PingMsg, PongMsg, put_merged_entry,
    put_merged_header,
};
use rgrid::test_util::LocalGrid;
use rgrid::{Connection, Options, State, StreamSender};
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A field of /proc/self/status in KiB (Linux only).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Tests of this process started so far (RSS figures are clean only for the first).
static STARTED: AtomicU64 = AtomicU64::new(0);

/// One test at a time: they compete for two cores, and memory figures are process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this test's turn; returns the turn and how many tests started before it.
async fn my_turn() -> (tokio::sync::MutexGuard<'static, ()>, u64) {
    let turn = SERIAL.lock().await;
    log_warnings();
    (turn, STARTED.fetch_add(1, Ordering::Relaxed))
}

/// Streams per test: the served-stream limit (`Options::max_incoming_muxes`' default), or
/// `RGRID_SCALE_STREAMS`.
fn stream_count() -> usize {
    match std::env::var("RGRID_SCALE_STREAMS") {
        Ok(v) => v.parse().expect("RGRID_SCALE_STREAMS: a number of streams"),
        Err(_) => Options::default().max_incoming_muxes,
    }
}

/// Warnings (such as why a connection was closed) into the test's output.
fn log_warnings() {
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_test_writer()
            .finish(),
    );
}

/// Busy-looping OS threads that steal the CPU until dropped (also when the test panics).
struct CpuHogs {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl CpuHogs {
    fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut spins = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        spins = spins.wrapping_add(1);
                        std::hint::spin_loop();
                    }
                    spins
                })
            })
            .collect();
        CpuHogs { stop, threads }
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An open stream, split so its end can be observed without reading it.
type Held = (StreamSender, rgrid::Responses);

/// Opens `n` two-way echo streams from node 0 to node 1 and waits (up to `limit`) until node 1
/// serves all of them.
async fn open_idle(g: &LocalGrid, n: usize, limit: Duration) -> Vec<Held> {
    let conn = g.conn(0, 1);
    let served = g.conn(1, 0);
    let mut held = Vec::with_capacity(n);
    let timely = tokio::time::timeout(limit, async {
        for i in 0..n {
            let st = conn
                .open_stream(HandlerId::TEST, "")
                .await
                .unwrap_or_else(|e| panic!("opening stream {i} of {n}: {e}"));
            let (tx, rx) = st.split();
            held.push((tx.expect("a two-way stream"), rx));
        }
        while served.stats().incoming_muxes < n {
            if let Some(what) = trouble(&conn, &served, &held, Check::Opening) {
                panic!(
                    "trouble while opening {n} streams: {what}; {}",
                    ends(&mut held)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        timely.is_ok(),
        "after {limit:?}: {} of {n} streams opened, {} served",
        held.len(),
        served.stats().incoming_muxes
    );
    held
}

/// What [`trouble`] looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The connection, and that no opened stream has ended (not all may be served yet).
    Opening,
    /// The connection, and that no stream has ended (by the mux counts of both sides).
    Holding,
    /// As `Holding`, and also each stream's own view of whether it has ended.
    EveryStream,
}

/// What went wrong on the connection or its streams, if anything.
fn trouble(c: &Connection, s: &Connection, held: &[Held], check: Check) -> Option<String> {
    let n = held.len();
    let (cs, ss) = (c.stats(), s.stats());
    let up = c.state() == State::Connected
        && s.state() == State::Connected
        && cs.reconnects == 0
        && ss.reconnects == 0
        && cs.outgoing_muxes == n
        && (check == Check::Opening || ss.incoming_muxes == n);
    if up && check != Check::EveryStream {
        return None;
    }
    let ended = held.iter().filter(|(_, rx)| rx.is_ended()).count();
    (!up || ended != 0).then(|| {
        format!(
            "caller side {} (reconnects {}), handler side {} (reconnects {}); \
             streams open: {} at the caller and {} served (want {n} each), {ended} ended",
            c.state(),
            cs.reconnects,
            s.state(),
            ss.reconnects,
            cs.outgoing_muxes,
            ss.incoming_muxes,
        )
    })
}

/// How the first few ended streams ended.
fn ends(held: &mut [Held]) -> String {
    let ends: Vec<String> = held
        .iter_mut()
        .enumerate()
        .filter(|(_, (_, rx))| rx.is_ended())
        .take(3)
        .map(|(i, (_, rx))| format!("stream {i}: {:?}", rx.next().now_or_never()))
        .collect();
    format!("first ends: {ends:?}")
}

/// Holds the streams idle until at least five stream-ping intervals have passed and five
/// rounds of pings and pongs have crossed (fails at once if the connection or a stream is
/// lost, and after `limit`). Returns the time held.
async fn hold_idle(
    g: &LocalGrid,
    held: &mut [Held],
    interval: Duration,
    limit: Duration,
) -> Duration {
    let (c, s) = (g.conn(0, 1), g.conn(1, 0));
    let rounds = 5 * held.len() as u64;
    // Messages node 1 receives (pings) and node 0 receives (pongs); connection pings add a
    // handful, nothing else moves while the streams are idle.
    let (pings0, pongs0) = (s.stats().incoming_messages, c.stats().incoming_messages);
    let t0 = Instant::now();
    loop {
        if let Some(what) = trouble(&c, &s, held, Check::Holding) {
            panic!(
                "trouble {:?} into holding {} idle streams: {what}; {}",
                t0.elapsed(),
                held.len(),
                ends(held)
            );
        }
        let pings = s.stats().incoming_messages - pings0;
        let pongs = c.stats().incoming_messages - pongs0;
        if t0.elapsed() >= 5 * interval && pings >= rounds && pongs >= rounds {
            break;
        }
        assert!(
            t0.elapsed() < limit,
            "after {:?}: {pings} pings and {pongs} pongs crossed, want {rounds} of each \
             (five rounds for {} streams)",
            t0.elapsed(),
            held.len()
        );
        tokio::time::sleep(interval / 20).await;
    }
    if let Some(what) = trouble(&c, &s, held, Check::EveryStream) {
        panic!(
            "after holding {} idle streams: {what}; {}",
            held.len(),
            ends(held)
        );
    }
    t0.elapsed()
}

/// Every stream echoes one message, then ends cleanly once its input is closed.
async fn echo_and_close(held: Vec<Held>, limit: Duration) {
    let n = held.len();
    let failures: Vec<String> = tokio::time::timeout(
        limit,
        futures_util::stream::iter(held.into_iter().enumerate())
            .map(|(i, (mut tx, mut rx))| async move {
                let want = Bytes::from(format!("echo {i}"));
                if let Err(e) = tx.send(want.clone()).await {
                    return Some(format!("stream {i}: send failed: {e}"));
                }
                match rx.next().await {
                    Some(Ok(got)) if got == want => {}
                    other => return Some(format!("stream {i}: echo {other:?}, want {want:?}")),
                }
                tx.close();
                match rx.next().await {
                    None => None,
                    other => Some(format!("stream {i}: after close {other:?}, want the end")),
                }
            })
            .buffer_unordered(512)
            .filter_map(|failed| async move { failed })
            .collect(),
    )
    .await
    .unwrap_or_else(|_| panic!("echo and close of {n} streams unfinished after {limit:?}"));
    assert!(
        failures.is_empty(),
        "{} of {n} streams did not echo and end cleanly; first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

#[tokio::test(start_paused = true)]
async fn idle_streams_survive_five_ping_rounds_in_memory() {
    let (_turn, _) = my_turn().await;
    let n = stream_count();
    let wall = std::time::Instant::now();
    let options = Options::default();
    let interval = options.stream_ping_interval;
    let g = common::mem_grid_with(options, |_, m| register_echo_stream(m)).await;
    let mut held = open_idle(&g, n, Duration::from_secs(60)).await;
    let opened = wall.elapsed();
    let hold = hold_idle(&g, &mut held, interval, 10 * interval).await;
    let held_at = wall.elapsed();
    echo_and_close(held, Duration::from_secs(120)).await;
    assert_no_active(&g).await;
    g.shutdown().await;
    println!(
        "in memory, paused time: {n} idle streams held {hold:?} (virtual); wall clock: \
         opened in {opened:?}, held by {held_at:?}, done in {:?}",
        wall.elapsed()
    );
}

/// Nodes of the loopback grid: its 28 connections give a per-connection memory figure; the
/// streams all run on the one from node 0 to node 1.
const NODES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_survive_five_ping_rounds_on_loopback() {
    let (_turn, earlier) = my_turn().await;
    let n = stream_count();
    let wall = std::time::Instant::now();
    // Shortened from 15 s, but not to 1 s: in a debug build on two cores shared with the hogs,
    // a round of 16,384 pings and pongs can take over a second, and the caller fails streams
    // whose pong is two intervals late (§3.12), as designed.
    let interval = Duration::from_secs(2);
    let options = Options {
        stream_ping_interval: interval,
        ..Options::default()
    };
    let (heap0, rss0) = (live_heap(), status_kib("VmRSS:"));
    let g = bounded(LocalGrid::start_with(NODES, options, |_, m| {
        register_echo_stream(m)
    }))
    .await
    .unwrap();
    let (heap1, rss1) = (live_heap(), status_kib("VmRSS:"));
    let hogs = CpuHogs::start(2);
    let mut held = open_idle(&g, n, Duration::from_secs(60)).await;
    let opened = wall.elapsed();
    let hold = hold_idle(&g, &mut held, interval, 30 * interval).await;
    let (heap2, rss2) = (live_heap(), status_kib("VmRSS:"));
    echo_and_close(held, Duration::from_secs(60)).await;
    assert_no_active(&g).await;
    drop(hogs);
    g.shutdown().await;

    let conns = (NODES * (NODES - 1) / 2) as u64;
    let streams = n.max(1) as u64;
    println!(
        "loopback, 2 CPU hogs: {n} idle streams held {hold:?} ({interval:?} ping interval), \
         opened by {opened:?}, done in {:?}",
        wall.elapsed()
    );
    println!(
        "heap per idle connection (both ends, {conns} connections of {NODES} nodes): {} B; \
         per idle stream (caller and handler side): {} B",
        heap1.saturating_sub(heap0) / conns,
        heap2.saturating_sub(heap1) / streams
    );
    match (rss0, rss1, rss2) {
        (Some(r0), Some(r1), Some(r2)) => println!(
            "RSS per idle connection: {} KiB; per idle stream: {} B ({r0} KiB before the \
             grid, {r1} KiB with it, {r2} KiB with {n} idle streams)",
            r1.saturating_sub(r0) / conns,
            r2.saturating_sub(r1) * 1024 / streams
        ),
        _ => println!("RSS per idle stream and connection skipped: no /proc/self/status"),
    }
    if earlier > 0 {
        println!(
            "(RSS: {earlier} test(s) ran before in this process and the allocator reuses \
             what they freed, so the RSS figures read low; the heap figures are exact; \
             run this test alone for clean RSS figures)"
        );
    }
}

/// A ping's time: distinct per stream, so a pong answers one ping only.
fn ping_time(mux: u64) -> GridTime {
    GridTime::from_system_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + mux))
}

/// Frames of at most 50 messages (the merge limit of Go's and rgrid's writers).
fn merged_frames(msgs: impl Iterator<Item = Msg>) -> Vec<Bytes> {
    let msgs: Vec<Msg> = msgs.collect();
    msgs.chunks(50)
        .map(|chunk| {
            let mut frame = BytesMut::new();
            put_merged_header(&mut frame, chunk.len() as u32);
            for m in chunk {
                put_merged_entry(&mut frame, &m.encode()).unwrap();
            }
            frame.freeze()
        })
        .collect()
}

/// The messages of one received frame.
fn frame_msgs(frame: &[u8]) -> Vec<Got> {
    let own = |m: rgrid::proto::Message<'_>| Got {
        op: m.op,
        mux: m.mux_id.0,
        seq: m.seq,
        handler: m.handler,
        deadline_ms: m.deadline_ms,
        flags: m.flags,
        payload: m.payload.map(<[u8]>::to_vec),
    };
    match Frame::decode(frame, &DecodeLimits::default()).unwrap() {
        Frame::Message(m) => vec![own(m)],
        Frame::Merged(ms) => ms.iter().map(|m| own(m.unwrap())).collect(),
    }
}

/// What is wrong with `m` as the pong to the ping (seq 1) of one of streams `1..=n`.
fn bad_pong(m: &Got, n: u64, seen: &HashSet<u64>) -> Option<String> {
    if m.op != Op::PONG {
        return Some(format!("{:?} for mux {}", m.op, m.mux));
    }
    if !(1..=n).contains(&m.mux) || seen.contains(&m.mux) {
        return Some(format!("unasked or second pong for mux {}", m.mux));
    }
    if m.seq != 1 {
        return Some(format!("pong for mux {} with seq {}, want 1", m.mux, m.seq));
    }
    let want = PongMsg {
        not_found: false,
        err: None,
        t: ping_time(m.mux),
    };
    match PongMsg::decode(m.payload.as_deref().unwrap_or_default()) {
        Ok(p) if p == want => None,
        other => Some(format!("mux {}: pong {other:?}, want {want:?}", m.mux)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_peer_pings_every_stream_at_once() {
    let (_turn, _) = my_turn().await;
    let n = stream_count() as u64;
    let wall = std::time::Instant::now();
    let node = raw::node(Options::default(), register_echo_stream).await;
    let conn = node.manager.connection(&node.peer).unwrap();
    let ws = connected_peer(&node).await;
    let (mut sink, mut source) = ws.split();

    // Open every stream (two-way, no deadline), in merged frames, and read every ack.
    let opens = merged_frames((1..=n).map(|mux| Msg::new(Op::CONNECT_MUX, mux, 0)));
    let mut acked = HashSet::new();
    // Bounds well under the node's 20 s limit for a pong to its connection pings, which this
    // peer does not answer.
    let timely = tokio::time::timeout(Duration::from_secs(10), async {
        for f in opens {
            sink.feed(tokio_websockets::Message::binary(f))
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
        while (acked.len() as u64) < n {
            let frame = match source.next().await {
                Some(Ok(f)) if f.is_binary() => f,
                Some(Ok(f)) if !f.is_close() => continue,
                _ => panic!("the node closed the connection after {} acks", acked.len()),
            };
            for m in frame_msgs(frame.as_payload())
                .into_iter()
                .filter(|m| m.mux != 0)
            {
                assert_eq!(m.op, Op::ACK_MUX, "answer to open of mux {}", m.mux);
                assert!(acked.insert(m.mux), "second ack for mux {}", m.mux);
            }
        }
    })
    .await;
    assert!(
        timely.is_ok(),
        "{} of {n} streams acked within 10 s",
        acked.len()
    );
    assert_eq!(
        conn.stats().incoming_muxes as u64,
        n,
        "streams served after the acks"
    );

    // Ping all of them at once (seq 1 follows the open's seq 0) while reading the pongs.
    let pings = merged_frames((1..=n).map(|mux| {
        let mut payload = BytesMut::new();
        PingMsg { t: ping_time(mux) }.encode(&mut payload);
        Msg {
            payload: Some(payload.to_vec()),
            ..Msg::new(Op::PING, mux, 1)
        }
    }));
    let send = tokio::spawn(async move {
        for f in pings {
            if sink
                .feed(tokio_websockets::Message::binary(f))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.flush().await;
        sink
    });
    let t0 = Instant::now();
    let mut seen = HashSet::new();
    let mut bad = Vec::new();
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        while ((seen.len() + bad.len()) as u64) < n {
            let frame = match source.next().await {
                Some(Ok(f)) if f.is_binary() => f,
                Some(Ok(f)) if !f.is_close() => continue,
                _ => return Some("the node closed the connection"),
            };
            for m in frame_msgs(frame.as_payload())
                .into_iter()
                .filter(|m| m.mux != 0)
            {
                match bad_pong(&m, n, &seen) {
                    Some(why) => bad.push(why),
                    None => {
                        seen.insert(m.mux);
                    }
                }
            }
        }
        None
    })
    .await
    .unwrap_or(Some("no more pongs came for 10 s"));
    let pong_time = t0.elapsed();
    let sink = bounded(send).await.unwrap();
    if let Some(why) = stopped {
        panic!(
            "{why} after {} of {n} pongs (the node's side is {}); wrong answers: {:?}",
            seen.len(),
            conn.state(),
            &bad[..bad.len().min(3)]
        );
    }
    assert!(
        bad.is_empty(),
        "{} wrong answers: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    assert_eq!(seen.len() as u64, n, "pongs");

    // The connection is still up and answering (a connection ping: at the limit, a request
    // would be refused), no late second pong came, and no stream ended.
    let mut ws = sink.reunite(source).unwrap();
    let late = play(
        &mut ws,
        &[Step::Send(Msg::conn_ping()), Step::Expect(Op::PONG, 0)],
    )
    .await;
    let late: Vec<&Got> = late.iter().filter(|m| m.mux != 0).collect();
    assert!(late.is_empty(), "unexpected after the pongs: {late:?}");
    assert_eq!(
        conn.state(),
        State::Connected,
        "the node's side after the pongs"
    );
    assert_eq!(
        conn.stats().incoming_muxes as u64,
        n,
        "streams served after the pongs"
    );
    node.manager.shutdown().await;
    println!(
        "raw peer: {n} streams opened and pinged at once; all pongs in {pong_time:?}; \
         done in {:?}",
        wall.elapsed()
    );
}
