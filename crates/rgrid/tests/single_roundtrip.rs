//! Single requests over a real two-node grid on loopback: ports of MinIO's TestSingleRoundtrip
//! and TestSingleRoundtripNotReady, plus deadlines, cancellation, panics and subroutes. The
//! tests that check timings (deadlines, the time a handler sees left) run over in-memory
//! pipes on paused tokio time, where those timings are exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rgrid::test_util::LocalGrid;
use rgrid::{Error, HandlerCtx, HandlerId, Manager, Options, RemoteError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::common;

const TEXT: &str = "Hello Grid World!";

/// handlerTest echoes a copy; handlerTest2 returns the payload as a remote error.
fn register_echo_and_error(_: usize, m: &Manager) {
    m.register_single(HandlerId::TEST, |p: Bytes| async move {
        Ok(Bytes::copy_from_slice(&p))
    })
    .unwrap();
    m.register_single(HandlerId::TEST2, |p: Bytes| async move {
        Err(RemoteError::new(String::from_utf8_lossy(&p).into_owned()))
    })
    .unwrap();
}

async fn grid(n: usize) -> LocalGrid {
    tokio::time::timeout(
        Duration::from_secs(20),
        LocalGrid::start(n, register_echo_and_error),
    )
    .await
    .expect("grid start timed out")
    .expect("grid start failed")
}

/// Every call ends within this bound, so a hang fails the test instead of blocking CI.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("call hung")
}

#[tokio::test]
async fn single_roundtrip() {
    roundtrip_on(grid(2).await).await;
}

/// The same with every handler in a task of its own (`inline_handlers: false`).
#[tokio::test]
async fn single_roundtrip_spawned_handlers() {
    let options = Options {
        inline_handlers: false,
        ..Options::default()
    };
    let g = tokio::time::timeout(
        Duration::from_secs(20),
        LocalGrid::start_with(2, options, register_echo_and_error),
    )
    .await
    .unwrap()
    .unwrap();
    roundtrip_on(g).await;
}

async fn roundtrip_on(g: LocalGrid) {
    let conn = g.conn(0, 1);

    // localToRemote
    let resp = bounded(conn.request(HandlerId::TEST, TEXT)).await.unwrap();
    assert_eq!(&resp[..], TEXT.as_bytes());

    // localToRemoteErr: the error equals the handler's text, and it is a remote error.
    let err = bounded(conn.request(HandlerId::TEST2, TEXT))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Remote(RemoteError::new(TEXT)));

    // localToRemoteHuge: 1 MiB of '?' echoes byte-exact.
    let huge = Bytes::from(vec![b'?'; 1 << 20]);
    let resp = bounded(conn.request(HandlerId::TEST, huge.clone()))
        .await
        .unwrap();
    assert_eq!(resp, huge);

    // localToRemoteErrHuge: 1 KiB of '!' as an error.
    let text = "!".repeat(1024);
    let err = bounded(conn.request(HandlerId::TEST2, text.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.as_remote().map(RemoteError::text), Some(text.as_str()));

    // The other direction over the same websocket.
    let back = g.conn(1, 0);
    let resp = bounded(back.request(HandlerId::TEST, "back"))
        .await
        .unwrap();
    assert_eq!(&resp[..], b"back");

    // Empty payloads stay empty.
    let resp = bounded(conn.request(HandlerId::TEST, Bytes::new()))
        .await
        .unwrap();
    assert!(resp.is_empty());

    assert_eq!(conn.stats().outgoing_muxes, 0);
    g.shutdown().await;
}

#[tokio::test]
async fn single_roundtrip_not_ready() {
    // Only node 0 registers handlers: a request to node 1 is refused by the remote.
    let g = LocalGrid::start(2, |i, m| {
        if i == 0 {
            register_echo_and_error(i, m);
        }
    })
    .await
    .unwrap();
    let err = bounded(g.conn(0, 1).request(HandlerId::TEST, TEXT))
        .await
        .unwrap_err();
    let remote = err.as_remote().expect("a remote error");
    assert!(remote.text().contains("Invalid Handler"), "{remote}");
    // Invalid handler ids fail locally.
    let err = bounded(g.conn(0, 1).request(HandlerId(0), TEXT))
        .await
        .unwrap_err();
    assert_eq!(err, Error::UnknownHandler(HandlerId(0)));
    g.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_concurrent_requests_both_directions() {
    let g = grid(2).await;
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let conn = g.conn((i % 2) as usize, ((i + 1) % 2) as usize);
        tasks.push(tokio::spawn(async move {
            let payload = Bytes::from(i.to_be_bytes().to_vec());
            let resp = conn
                .request(HandlerId::TEST, payload.clone())
                .await
                .unwrap();
            assert_eq!(resp, payload);
        }));
    }
    for t in tasks {
        bounded(t).await.unwrap();
    }
    let s = g.conn(0, 1).stats();
    assert!(s.connected);
    assert!(
        s.outgoing_messages >= 10_000 && s.incoming_messages >= 10_000,
        "{s:?}"
    );
    // No mux is left on either side.
    for (a, b) in [(0, 1), (1, 0)] {
        let s = g.conn(a, b).stats();
        assert_eq!(
            (s.outgoing_muxes, s.incoming_muxes),
            (0, 0),
            "{a}->{b}: {s:?}"
        );
    }
    assert_eq!(g.conn(0, 1).stats().reconnects, 0);
    g.shutdown().await;
}

/// Established TCP sockets (Linux `/proc/net/tcp`) whose local port is one of `ports`, as
/// "local remote" address pairs (hex, as the kernel writes them).
///
/// The kernel writes the table in chunks, so a read made while other sockets come and go
/// (other tests of this binary, other processes) can list a socket twice or miss one: the
/// result is the set of sockets seen in any of three reads.
#[cfg(target_os = "linux")]
fn established_to(ports: &[u16]) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        for l in table.lines().skip(1) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let local_port = cols.get(1).and_then(|a| a.rsplit(':').next());
            let port = local_port.and_then(|p| u16::from_str_radix(p, 16).ok());
            if cols.get(3) == Some(&"01") && port.is_some_and(|p| ports.contains(&p)) {
                seen.insert(format!("{} {}", cols[1], cols[2]));
            }
        }
    }
    seen
}

#[tokio::test]
async fn a_three_node_grid_has_exactly_three_sockets() {
    let g = grid(3).await;
    // Calls in every direction, so every connection is used both ways.
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                let r = bounded(g.conn(a, b).request(HandlerId::TEST, "x"))
                    .await
                    .unwrap();
                assert_eq!(&r[..], b"x");
            }
        }
    }
    let ports: Vec<u16> = g
        .hosts
        .iter()
        .map(|h| h.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    // The node side of each socket has the node's listening port as its local port.
    #[cfg(target_os = "linux")]
    {
        let sockets = established_to(&ports);
        assert_eq!(
            sockets.len(),
            3,
            "sockets accepted by the nodes on {ports:?}: {sockets:?}; reconnects {:?}",
            [(0, 1), (0, 2), (1, 2)].map(|(a, b)| g.conn(a, b).stats().reconnects)
        );
    }
    #[cfg(not(target_os = "linux"))]
    println!("SKIPPED: counting sockets ({ports:?}) needs Linux's /proc/net/tcp");
    g.shutdown().await;
}

/// Sends the (paused) time when dropped: a handler's future is dropped when its call ends
/// without it (deadline, cancel, disconnect).
struct DropTime(mpsc::UnboundedSender<Instant>);

impl Drop for DropTime {
    fn drop(&mut self) {
        let _ = self.0.send(Instant::now());
    }
}

/// A grid over in-memory pipes, for tests on paused time.
async fn mem_grid(register: impl Fn(usize, &Manager)) -> LocalGrid {
    bounded(LocalGrid::start_in_memory(2, Options::default(), register))
        .await
        .expect("grid start failed")
}

/// The longest a timer on paused time fires after its deadline (tokio's timer wheel has
/// millisecond ticks).
const TICK: Duration = Duration::from_millis(1);

/// On paused time, over in-memory pipes: the deadline ends the call at exactly its time,
/// the handler is dropped at the same moment, and a dropped call had reached the handler.
#[tokio::test(start_paused = true)]
async fn deadline_and_cancellation() {
    let started = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
    let s2 = started.clone();
    let g = mem_grid(move |_, m| {
        let (s, dropped_tx) = (s2.clone(), dropped_tx.clone());
        m.register_single(HandlerId::LOCK_LOCK, move |_| {
            s.fetch_add(1, Ordering::SeqCst);
            let guard = DropTime(dropped_tx.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Bytes::new())
            }
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);

    // The deadline ends the call, on time, and frees its state.
    let deadline = Duration::from_millis(200);
    let t0 = Instant::now();
    let err = bounded(conn.request_with(
        HandlerId::LOCK_LOCK,
        "x",
        &rgrid::CallOptions::new().deadline(deadline),
    ))
    .await
    .unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err, Error::DeadlineExceeded);
    assert!(
        took >= deadline && took <= deadline + TICK,
        "ended after {took:?}"
    );
    assert_eq!(conn.stats().outgoing_muxes, 0);
    // The remote handler was dropped at its deadline too (the request took no time to
    // arrive).
    let at = bounded(dropped.recv()).await.unwrap() - t0;
    assert!(
        at >= deadline && at <= deadline + TICK,
        "handler dropped after {at:?}"
    );
    common::eventually("the remote's mux closes at the deadline", || {
        g.conn(1, 0).stats().incoming_muxes == 0
    })
    .await;

    // Dropping the future cancels at once and frees the pending entry. The timeout fires
    // only once every task is idle: the request has reached the handler by then.
    let call = conn.request(HandlerId::LOCK_LOCK, "y");
    let res = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert!(res.is_err());
    assert_eq!(conn.stats().outgoing_muxes, 0);
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "both calls reached the handler"
    );
    g.shutdown().await;
}

/// The handler sees who called and how much time is left; a tight deadline ends the call on
/// time; the default deadline of 60 s is what arrives. On paused time, over in-memory pipes,
/// so every figure is exact.
#[tokio::test(start_paused = true)]
async fn handler_sees_the_remaining_time_and_tight_deadlines_hold() {
    let g = mem_grid(|_, m| {
        m.register_single_with_ctx(HandlerId::TEST, None, |ctx: HandlerCtx, _| async move {
            let left = ctx.remaining().map_or(u128::MAX, |d| d.as_millis());
            Ok(Bytes::from(format!("{} {left}", ctx.remote())))
        })
        .unwrap();
        m.register_single_with_ctx(HandlerId::TEST2, None, |ctx: HandlerCtx, _| async move {
            assert!(ctx.deadline().is_some());
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Bytes::new())
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let parse = |b: Bytes| {
        let text = String::from_utf8(b.to_vec()).unwrap();
        let (host, left) = text.split_once(' ').unwrap();
        (host.to_owned(), left.parse::<u128>().unwrap())
    };

    let (host, left) = parse(
        bounded(conn.request_with(
            HandlerId::TEST,
            "",
            &rgrid::CallOptions::new().deadline(Duration::from_secs(3)),
        ))
        .await
        .unwrap(),
    );
    assert_eq!(host, g.hosts[0]);
    assert_eq!(left, 3000, "ms left of 3000");

    let (_, left) = parse(bounded(conn.request(HandlerId::TEST, "")).await.unwrap());
    assert_eq!(left, 60_000, "ms left of the default 60 s");

    // 50 ms on a handler that never answers: DeadlineExceeded, on time.
    let deadline = Duration::from_millis(50);
    for _ in 0..5 {
        let t0 = Instant::now();
        let err = bounded(conn.request_with(
            HandlerId::TEST2,
            "",
            &rgrid::CallOptions::new().deadline(deadline),
        ))
        .await
        .unwrap_err();
        let took = t0.elapsed();
        assert_eq!(err, Error::DeadlineExceeded);
        assert!(took >= deadline && took <= deadline + TICK, "{took:?}");
    }
    assert_eq!(conn.stats().outgoing_muxes, 0);
    g.shutdown().await;
}

#[tokio::test]
async fn handler_panic_is_a_remote_error_and_the_node_keeps_serving() {
    let g = LocalGrid::start(2, |i, m| {
        register_echo_and_error(i, m);
        // Panics on its first poll (on the reader, inline) ...
        m.register_single(HandlerId::LOCK_UNLOCK, |_| async move {
            if true {
                panic!("boom");
            }
            Ok(Bytes::new())
        })
        .unwrap();
        // ... and after waiting (in a task of its own).
        m.register_single(HandlerId::LOCK_R_UNLOCK, |_| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if true {
                panic!("late boom");
            }
            Ok(Bytes::new())
        })
        .unwrap();
    })
    .await
    .unwrap();
    let conn = g.conn(0, 1);
    let err = bounded(conn.request(HandlerId::LOCK_UNLOCK, "x"))
        .await
        .unwrap_err();
    assert!(err.as_remote().unwrap().text().contains("boom"), "{err}");
    let err = bounded(conn.request(HandlerId::LOCK_R_UNLOCK, "x"))
        .await
        .unwrap_err();
    assert!(
        err.as_remote().unwrap().text().contains("late boom"),
        "{err}"
    );
    let ok = bounded(conn.request(HandlerId::TEST, "still here"))
        .await
        .unwrap();
    assert_eq!(&ok[..], b"still here");
    g.shutdown().await;
}

#[tokio::test]
async fn subroutes_are_static_and_exact() {
    let g = LocalGrid::start(2, |_, m| {
        m.register_single_subroute(HandlerId::DISK_INFO, "/mnt/disk1", |_| async {
            Ok(Bytes::from_static(b"disk1"))
        })
        .unwrap();
        m.register_single_subroute(HandlerId::DISK_INFO, "/mnt/disk2", |_| async {
            Ok(Bytes::from_static(b"disk2"))
        })
        .unwrap();
        m.register_single_subroute(HandlerId::DISK_INFO, "a/b", |_| async {
            Ok(Bytes::from_static(b"a/b"))
        })
        .unwrap();
    })
    .await
    .unwrap();
    let conn = g.conn(0, 1);
    let r1 = bounded(conn.request_with(
        HandlerId::DISK_INFO,
        "",
        &rgrid::CallOptions::new().subroute("/mnt/disk1"),
    ))
    .await
    .unwrap();
    let r2 = bounded(conn.request_with(
        HandlerId::DISK_INFO,
        "",
        &rgrid::CallOptions::new().subroute("/mnt/disk2"),
    ))
    .await
    .unwrap();
    assert_eq!((&r1[..], &r2[..]), (&b"disk1"[..], &b"disk2"[..]));
    let nested = bounded(conn.request_with(
        HandlerId::DISK_INFO,
        "",
        &rgrid::CallOptions::new().subroute(rgrid::Route::new("a").join("b")),
    ))
    .await;
    assert_eq!(&nested.unwrap()[..], b"a/b");
    // Without a subroute, or with another one, the handler is not found.
    let err = bounded(conn.request(HandlerId::DISK_INFO, ""))
        .await
        .unwrap_err();
    assert!(err.as_remote().is_some());
    let err = bounded(conn.request_with(
        HandlerId::DISK_INFO,
        "",
        &rgrid::CallOptions::new().subroute("/mnt/disk3"),
    ))
    .await;
    assert!(err.unwrap_err().as_remote().is_some());
    g.shutdown().await;
}

/// Answered callers are woken one at a time, each waking the next when it takes its answer
/// or gives up. Callers that give up at every point around their answer's arrival (raced
/// against 0-3 yields) must never strand the others: every task finishes, and both
/// outcomes happened, so the race was real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_giving_up_as_answers_arrive_strand_nobody() {
    let g = grid(2).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let gave_up = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let conn = g.conn((t % 2) as usize, ((t + 1) % 2) as usize);
        let (answered, gave_up) = (answered.clone(), gave_up.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t);
            for i in 0..300u32 {
                let payload = Bytes::from(i.to_be_bytes().to_vec());
                let call = conn.request(HandlerId::TEST, payload.clone());
                if i % 2 == 0 {
                    assert_eq!(call.await.unwrap(), payload);
                    answered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let yields = rng.u32(0..4);
                tokio::select! {
                    biased;
                    r = call => {
                        assert_eq!(r.unwrap(), payload);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    () = async {
                        for _ in 0..yields {
                            tokio::task::yield_now().await;
                        }
                    } => {
                        gave_up.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        bounded(t).await.unwrap();
    }
    let (a, d) = (
        answered.load(Ordering::Relaxed),
        gave_up.load(Ordering::Relaxed),
    );
    assert_eq!(a + d, 32 * 300);
    assert!(a > 32 * 150 && d > 0, "answered {a}, gave up {d}");
    for (a, b) in [(0, 1), (1, 0)] {
        let s = g.conn(a, b).stats();
        assert_eq!(s.outgoing_muxes, 0, "{a}->{b}: {s:?}");
    }
    g.shutdown().await;
}

/// Polls `call` once (it must wait) and returns at the task's next wake-up without polling
/// it again: a caller whose task goes on to something else.
async fn poll_once_then_wait_for_a_wake<F: Future>(mut call: std::pin::Pin<&mut F>) {
    let mut polled = false;
    std::future::poll_fn(|cx| {
        if polled {
            return std::task::Poll::Ready(());
        }
        polled = true;
        assert!(call.as_mut().poll(cx).is_pending());
        std::task::Poll::Pending
    })
    .await;
}

/// The raw peer answers the requests `muxes` in one merged frame, in order: answer `i` is
/// the one byte `10 + i`.
async fn answer_in_one_frame(ws: &mut rgrid::WebSocket, muxes: &[u64]) {
    use futures_util::SinkExt;
    use rgrid::proto::{Flags, Message, MuxId, Op, put_merged_entry, put_merged_header};

    let mut frame = bytes::BytesMut::new();
    put_merged_header(&mut frame, u32::try_from(muxes.len()).unwrap());
    for (i, mux) in muxes.iter().enumerate() {
        let answer = Message {
            mux_id: MuxId(*mux),
            flags: Flags::CRC,
            payload: Some(&[i as u8 + 10][..]),
            ..Message::new(Op::RESPONSE)
        }
        .encode_to_vec()
        .unwrap();
        put_merged_entry(&mut frame, &answer).unwrap();
    }
    ws.send(tokio_websockets::Message::binary(frame.freeze()))
        .await
        .unwrap();
}

/// The deterministic case of the test above: three answers arrive in one merged frame, so
/// one caller is woken and each wakes the next. Whether the first one takes its answer or
/// gives up the moment it is woken (a `select!` whose other branch won), the other two get
/// theirs (without the hand-on they would wait forever, and the bound fails the test).
#[tokio::test(start_paused = true)]
async fn answers_in_one_frame_reach_every_caller_even_if_the_first_gives_up() {
    use common::raw::{connected_peer, mem_node, recv_msgs};
    use rgrid::proto::Op;

    for first_gives_up in [false, true] {
        let n = mem_node(Options::default(), |_| {}).await;
        let mut ws = connected_peer(&n).await;
        let conn = n.manager.connection(&n.peer).unwrap();
        let mut callers = Vec::new();
        let mut muxes = Vec::new();
        for i in 0..3u8 {
            let conn = conn.clone();
            let give_up = first_gives_up && i == 0;
            callers.push(tokio::spawn(async move {
                let mut call = Box::pin(conn.request(HandlerId::TEST, Bytes::from(vec![i])));
                if !give_up {
                    return Some(call.await.unwrap());
                }
                // Gives up on the next wake-up, its answer's, without looking at it.
                poll_once_then_wait_for_a_wake(call.as_mut()).await;
                None
            }));
            // One request at a time, so the answers' order is the callers' order.
            let got = bounded(recv_msgs(&mut ws)).await.unwrap();
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(
                (got[0].op, got[0].payload.as_deref()),
                (Op::REQUEST, Some(&[i][..]))
            );
            muxes.push(got[0].mux);
        }
        answer_in_one_frame(&mut ws, &muxes).await;
        let mut got = Vec::new();
        for c in callers {
            got.push(bounded(c).await.unwrap());
        }
        let want_first = (!first_gives_up).then(|| Bytes::from_static(&[10]));
        assert_eq!(
            got,
            [
                want_first,
                Some(Bytes::from_static(&[11])),
                Some(Bytes::from_static(&[12]))
            ]
        );
        let s = conn.stats();
        assert_eq!(s.outgoing_muxes, 0, "{s:?}");
        n.manager.shutdown().await;
    }
}

/// A caller whose call was answered but who does not poll it (its task is busy with
/// something else and keeps the future) holds up nobody: another caller's answer on the same
/// connection arrives at once, on paused time. The answered caller still gets its answer
/// when it comes back.
#[tokio::test(start_paused = true)]
async fn an_answered_call_left_unpolled_holds_up_no_other_caller() {
    let g = mem_grid(register_echo_and_error).await;
    let conn = g.conn(0, 1);
    let before = conn.stats().incoming_messages;
    let mut idle = Box::pin(conn.request(HandlerId::TEST, Bytes::from_static(b"idle")));
    assert!(futures_util::poll!(&mut idle).is_pending());
    common::eventually("the first call's answer arrived", || {
        conn.stats().incoming_messages > before
    })
    .await;
    for i in 0..3u8 {
        let t0 = Instant::now();
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            conn.request(HandlerId::TEST, Bytes::from(vec![i])),
        )
        .await;
        assert!(other.is_ok(), "call {i} waited for the unpolled one");
        assert_eq!(other.unwrap().unwrap(), Bytes::from(vec![i]));
        assert_eq!(t0.elapsed(), Duration::ZERO, "call {i}");
    }
    assert_eq!(bounded(idle).await.unwrap(), Bytes::from_static(b"idle"));
    let s = conn.stats();
    assert_eq!(s.outgoing_muxes, 0, "{s:?}");
    g.shutdown().await;
}

/// Answers that arrive in the same frame as that of a caller who does not poll its call
/// (woken, its task goes on to something else and keeps the future) wait behind it only
/// until the connection's next frame: here a connection ping the peer sends once that caller
/// went busy. The other two get their answers at that very moment, on paused time, while the
/// busy caller still sleeps; it gets its own answer when it comes back.
#[tokio::test(start_paused = true)]
async fn answers_behind_a_caller_that_does_not_poll_wait_only_for_the_next_frame() {
    use common::hostile::Msg;
    use common::raw::{connected_peer, mem_node, recv_msgs};
    use futures_util::SinkExt;
    use tokio::sync::oneshot;

    let n = mem_node(Options::default(), |_| {}).await;
    let mut ws = connected_peer(&n).await;
    let conn = n.manager.connection(&n.peer).unwrap();
    let (busy_tx, busy_rx) = oneshot::channel();
    let mut busy_tx = Some(busy_tx);
    let mut callers = Vec::new();
    let mut muxes = Vec::new();
    for i in 0..3u8 {
        let conn = conn.clone();
        let busy_tx = if i == 0 { busy_tx.take() } else { None };
        callers.push(tokio::spawn(async move {
            let mut call = Box::pin(conn.request(HandlerId::TEST, Bytes::from(vec![i])));
            if let Some(busy_tx) = busy_tx {
                // Woken by its answer, goes on to something else for an hour without polling
                // the call, then takes it.
                poll_once_then_wait_for_a_wake(call.as_mut()).await;
                let _ = busy_tx.send(());
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            (call.await.unwrap(), Instant::now())
        }));
        // One request at a time, so the answers' order is the callers' order.
        let got = bounded(recv_msgs(&mut ws)).await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        muxes.push(got[0].mux);
    }
    answer_in_one_frame(&mut ws, &muxes).await;
    bounded(busy_rx).await.unwrap();
    let next_frame_at = Instant::now();
    ws.send(tokio_websockets::Message::binary(Msg::conn_ping().encode()))
        .await
        .unwrap();
    let busy = callers.remove(0);
    for (i, c) in callers.into_iter().enumerate() {
        let (answer, at) = bounded(c).await.unwrap();
        assert_eq!(answer, Bytes::from(vec![i as u8 + 11]));
        assert_eq!(
            at,
            next_frame_at,
            "caller {} waited for the busy one",
            i + 1
        );
    }
    let (answer, at) = common::within(Duration::from_secs(7200), busy)
        .await
        .unwrap();
    assert_eq!(answer, Bytes::from_static(&[10]));
    assert!(at >= next_frame_at + Duration::from_secs(3600));
    n.manager.shutdown().await;
}
