//! Streams over a real two-node grid: ports of MinIO's TestStreamSuite (roundtrip, cancel,
//! deadline, congestion both ways, blocked consumer, pings) and of the stream half of
//! TestDisconnect. After every test no mux is left open on either side. Tests that depend on
//! timers (deadlines, pings) run over in-memory pipes on paused tokio time with the real
//! timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    DropSignal, assert_no_active, bounded, eventually, grid_with, mem_grid_with,
    register_echo_stream, waiting_stream, within,
};
use futures_util::StreamExt;
use rgrid::{
    Error, HandlerCtx, HandlerId, Manager, Options, RawStreamHandler, RemoteError, StreamIn,
    StreamOut,
};
use tokio::sync::mpsc;

const TEXT: &str = "Hello Grid World!";

#[tokio::test]
async fn stream_roundtrip() {
    let g = grid_with(Options::default(), |_, m| {
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(
                1,
                1,
                |_, payload: Bytes, input: Option<StreamIn>, out: StreamOut| async move {
                    let mut input = input.unwrap();
                    while let Some(msg) = input.recv().await {
                        let mut b = payload.to_vec();
                        b.extend_from_slice(&msg);
                        out.send(b).await?;
                    }
                    Ok(())
                },
            ),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let mut st = bounded(conn.open_stream(HandlerId::TEST, TEXT))
        .await
        .unwrap();
    bounded(st.send("0")).await.unwrap();
    let mut n = 0;
    while let Some(r) = bounded(st.next()).await {
        let r = r.unwrap();
        assert_eq!(r, format!("{TEXT}{n}").as_bytes());
        n += 1;
        if n == 11 {
            st.close_send();
        } else {
            bounded(st.send(n.to_string())).await.unwrap();
        }
    }
    assert_eq!(n, 11);
    assert_no_active(&g).await;
    g.shutdown().await;
}

fn register_waiting(m: &Manager, in_cap: usize, tx: mpsc::UnboundedSender<&'static str>) {
    m.register_stream(HandlerId::TEST, None, waiting_stream(in_cap, tx))
        .unwrap();
}

/// On paused time, over in-memory pipes: a send that is still pending when the clock moves
/// on is pending with every task idle, so it really waits for a credit.
#[tokio::test(start_paused = true)]
async fn stream_cancel_unbuffered_buffered_and_full() {
    for (in_cap, prefill) in [(0, false), (1, false), (1, true)] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let g = mem_grid_with(Options::default(), move |_, m| {
            register_waiting(m, in_cap, tx.clone())
        })
        .await;
        let conn = g.conn(0, 1);
        let st = bounded(conn.open_stream(HandlerId::TEST, "x"))
            .await
            .unwrap();
        assert_eq!(bounded(rx.recv()).await, Some("started"));
        let (sender, mut responses) = st.split();
        let mut sender = sender;
        if prefill {
            // Fill the request window (the handler never reads), then block on the next send:
            // the timeout only fires once every task is idle (paused time).
            let s = sender.as_mut().unwrap();
            bounded(s.send("1")).await.unwrap();
            let blocked = tokio::time::timeout(Duration::from_millis(50), s.send("2")).await;
            assert!(blocked.is_err(), "send beyond the window must wait");
        }
        responses.cancel();
        assert_eq!(
            bounded(rx.recv()).await,
            Some("dropped"),
            "handler cancelled"
        );
        let first = bounded(responses.next()).await.unwrap();
        assert_eq!(first, Err(Error::Cancelled));
        if let Some(s) = sender.as_mut() {
            assert_eq!(bounded(s.send("3")).await, Err(Error::Cancelled));
        }
        drop(sender);
        drop(responses);
        assert_no_active(&g).await;
        g.shutdown().await;
    }
}

/// On paused time, over in-memory pipes.
#[tokio::test(start_paused = true)]
async fn stream_deadline_unbuffered_and_buffered() {
    for in_cap in [0, 1] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let g = mem_grid_with(Options::default(), move |_, m| {
            register_waiting(m, in_cap, tx.clone())
        })
        .await;
        let conn = g.conn(0, 1);
        let t0 = tokio::time::Instant::now();
        let st = bounded(conn.open_stream_with(
            HandlerId::TEST,
            "x",
            &rgrid::CallOptions::new().deadline(Duration::from_millis(50)),
        ))
        .await
        .unwrap();
        assert_eq!(bounded(rx.recv()).await, Some("started"));
        let res = bounded(st.results(|_| Ok(()))).await;
        assert_eq!(res, Err(Error::DeadlineExceeded));
        let took = t0.elapsed();
        assert!(
            (Duration::from_millis(50)..Duration::from_millis(60)).contains(&took),
            "{took:?}"
        );
        assert_eq!(
            bounded(rx.recv()).await,
            Some("dropped"),
            "handler saw its deadline"
        );
        assert_no_active(&g).await;
        g.shutdown().await;
    }
}

fn register_echo_single(m: &Manager) {
    m.register_single(HandlerId::TEST2, |p: Bytes| async move { Ok(p) })
        .unwrap();
}

#[tokio::test]
async fn server_out_congestion_does_not_block_single_requests() {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let g = grid_with(Options::default(), move |_, m| {
        register_echo_single(m);
        let tx = tx.clone();
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(0, 1, move |_, _, _, out: StreamOut| {
                let tx = tx.clone();
                async move {
                    for i in 0..100u8 {
                        out.send(vec![i]).await?;
                        let _ = tx.send(());
                    }
                    Ok(())
                }
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let mut st = bounded(conn.open_stream(HandlerId::TEST, ""))
        .await
        .unwrap();
    bounded(rx.recv()).await.unwrap();
    for i in 0..100 {
        let r = bounded(conn.request(HandlerId::TEST2, format!("{i}")))
            .await
            .unwrap();
        assert_eq!(r, format!("{i}").as_bytes());
    }
    let mut got = Vec::new();
    while let Some(r) = bounded(st.next()).await {
        got.push(r.unwrap()[0]);
    }
    assert_eq!(got, (0..100u8).collect::<Vec<_>>());
    assert_no_active(&g).await;
    g.shutdown().await;
}

#[tokio::test]
async fn server_in_congestion_does_not_block_single_requests() {
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = release.clone();
    let g = grid_with(Options::default(), move |_, m| {
        register_echo_single(m);
        let release = r2.clone();
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(
                5,
                5,
                move |_, _, input: Option<StreamIn>, out: StreamOut| {
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        let mut input = input.unwrap();
                        let mut n = 0u8;
                        while let Some(msg) = input.recv().await {
                            if msg[..] != [n] {
                                return Err(RemoteError::new(format!("got {msg:?}, want {n}")));
                            }
                            out.send(msg).await?;
                            n += 1;
                        }
                        Ok(())
                    }
                },
            ),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let st = bounded(conn.open_stream(HandlerId::TEST, ""))
        .await
        .unwrap();
    let (sender, responses) = st.split();
    let mut sender = sender.unwrap();
    let feeder = tokio::spawn(async move {
        for i in 0..100u8 {
            sender.send(vec![i]).await.unwrap();
        }
    });
    for i in 0..100 {
        let r = bounded(conn.request(HandlerId::TEST2, format!("{i}")))
            .await
            .unwrap();
        assert_eq!(r, format!("{i}").as_bytes());
    }
    release.notify_one();
    let got: Vec<u8> = bounded(responses.map(|r| r.unwrap()[0]).collect()).await;
    assert_eq!(got, (0..100u8).collect::<Vec<_>>());
    bounded(feeder).await.unwrap();
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// On paused time, over in-memory pipes, so "the handler is blocked" is a fact, not a guess.
#[tokio::test(start_paused = true)]
async fn cancel_works_while_the_consumer_is_blocked() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent2 = sent.clone();
    let g = mem_grid_with(Options::default(), move |_, m| {
        let (tx, sent) = (tx.clone(), sent2.clone());
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(0, 1, move |_, _, _, out: StreamOut| {
                let (tx, sent) = (tx.clone(), sent.clone());
                async move {
                    let _guard = DropSignal(Some(tx.clone()));
                    for i in 0..100u8 {
                        if out.send(vec![i]).await.is_err() {
                            let _ = tx.send("send failed");
                            return Ok(());
                        }
                        sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if i == 0 {
                            let _ = tx.send("first sent");
                        }
                    }
                    Ok(())
                }
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let st = bounded(conn.open_stream(HandlerId::TEST, ""))
        .await
        .unwrap();
    assert_eq!(bounded(rx.recv()).await, Some("first sent"));
    // The consumer takes one message and then blocks (never polls again); the window fills.
    let (_, mut responses) = st.split();
    assert!(bounded(responses.next()).await.unwrap().is_ok());
    // On paused time the clock moves only once every task is idle: the handler is then
    // parked in a send, out of credits, having sent the message taken and one more (its
    // window of 1).
    tokio::time::sleep(Duration::from_millis(1)).await;
    let sent_before_cancel = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        sent_before_cancel, 2,
        "the handler must be stuck on credits after 1 + its window of 1"
    );
    assert!(rx.try_recv().is_err(), "the handler must still be running");
    responses.cancel();
    let ended = bounded(rx.recv()).await.unwrap();
    assert!(ended == "dropped" || ended == "send failed", "{ended}");
    assert_eq!(g.conn(0, 1).stats().outgoing_muxes, 0);
    // What was buffered is still readable, then the cancel.
    let mut saw_cancel = false;
    while let Some(r) = bounded(responses.next()).await {
        if let Err(e) = r {
            assert_eq!(e, Error::Cancelled);
            saw_cancel = true;
        }
    }
    assert!(saw_cancel);
    drop(responses);
    assert_no_active(&g).await;
    g.shutdown().await;
}

#[tokio::test]
async fn disconnect_closes_the_stream_and_cancels_the_handler() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let g = grid_with(Options::default(), move |_, m| {
        register_waiting(m, 1, tx.clone())
    })
    .await;
    let conn = g.conn(0, 1);
    let st = bounded(conn.open_stream(HandlerId::TEST, "x"))
        .await
        .unwrap();
    assert_eq!(bounded(rx.recv()).await, Some("started"));
    let drain = tokio::spawn(st.results(|_| Ok(())));
    conn.kill();
    assert_eq!(bounded(drain).await.unwrap(), Err(Error::Disconnected));
    assert_eq!(
        bounded(rx.recv()).await,
        Some("dropped"),
        "handler cancelled"
    );
    bounded(conn.wait_for_connect()).await.unwrap();
    bounded(g.wait_all_connected(Duration::from_secs(10)))
        .await
        .unwrap();
    // A new stream works.
    let st = bounded(conn.open_stream(HandlerId::TEST, "y"))
        .await
        .unwrap();
    assert_eq!(bounded(rx.recv()).await, Some("started"));
    drop(st);
    assert_eq!(bounded(rx.recv()).await, Some("dropped"));
    assert_no_active(&g).await;
    g.shutdown().await;
}

#[tokio::test]
async fn unknown_stream_handlers_fail_locally_and_remotely() {
    let g = grid_with(Options::default(), |i, m| {
        if i == 0 {
            register_waiting(m, 0, mpsc::unbounded_channel().0);
        }
    })
    .await;
    // Not registered here: a local error.
    let err = g
        .conn(1, 0)
        .open_stream(HandlerId::TEST, "")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(t) if t.contains("not registered on this node")),
        "{err}"
    );
    // Registered here but not there: a remote error as the stream's end.
    let st = bounded(g.conn(0, 1).open_stream(HandlerId::TEST, ""))
        .await
        .unwrap();
    let err = bounded(st.results(|_| Ok(()))).await.unwrap_err();
    assert!(
        err.as_remote().unwrap().text().contains("Invalid Handler"),
        "{err}"
    );
    assert_no_active(&g).await;
    g.shutdown().await;
}

#[tokio::test]
async fn handler_errors_and_panics_end_the_stream_after_its_messages() {
    let g = grid_with(Options::default(), |_, m| {
        m.register_stream(
            HandlerId::TEST,
            Some("error"),
            RawStreamHandler::new(
                0,
                4,
                |ctx: HandlerCtx, p: Bytes, _, out: StreamOut| async move {
                    assert_eq!(ctx.route(), Some("error"));
                    out.send("one").await.unwrap();
                    out.send("two").await.unwrap();
                    Err(RemoteError::new(String::from_utf8_lossy(&p).into_owned()))
                },
            ),
        )
        .unwrap();
        m.register_stream(
            HandlerId::TEST,
            Some("panic"),
            RawStreamHandler::new(0, 1, |_, _, _, _| async move {
                if true {
                    panic!("stream boom");
                }
                Ok(())
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let st = bounded(conn.open_stream_with(
        HandlerId::TEST,
        TEXT,
        &rgrid::CallOptions::new().subroute("error"),
    ))
    .await
    .unwrap();
    let items: Vec<_> = bounded(st.collect::<Vec<_>>()).await;
    assert_eq!(
        items,
        vec![
            Ok(Bytes::from("one")),
            Ok(Bytes::from("two")),
            Err(Error::Remote(RemoteError::new(TEXT)))
        ]
    );
    let st = bounded(conn.open_stream_with(
        HandlerId::TEST,
        "",
        &rgrid::CallOptions::new().subroute("panic"),
    ))
    .await
    .unwrap();
    let err = bounded(st.results(|_| Ok(()))).await.unwrap_err();
    assert!(
        err.as_remote().unwrap().text().contains("stream boom"),
        "{err}"
    );
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// The default stream ping interval (spec §3.12); the ping tests run on paused time with it.
const PING: Duration = Duration::from_secs(15);

/// MinIO's testServerStreamNoPing, one-way and two-way: the caller stops reading its
/// connection, so no pong arrives; the stream fails on its own and the handler is cancelled.
/// Real timings on paused time: the caller gives up after two silent ping intervals.
#[tokio::test(start_paused = true)]
async fn stream_without_pongs_fails_and_cancels_the_handler() {
    for in_cap in [0, 1] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Connection pings far apart, so the stream pings (not the connection keepalive,
        // which drops a connection silent for 2 × 10 s with the defaults) end the stream.
        let options = Options {
            ping_interval: PING * 4,
            dead_after: PING * 4 * 2,
            ..Options::default()
        };
        let g = mem_grid_with(options, move |_, m| register_waiting(m, in_cap, tx.clone())).await;
        let conn = g.conn(0, 1);
        let st = bounded(conn.open_stream(HandlerId::TEST, "x"))
            .await
            .unwrap();
        assert_eq!(bounded(rx.recv()).await, Some("started"));
        let block = conn.block_inbound();
        let t0 = tokio::time::Instant::now();
        let res = within(PING * 10, st.results(|_| Ok(()))).await;
        assert_eq!(res, Err(Error::Disconnected), "in_cap {in_cap}");
        let took = t0.elapsed();
        assert!((PING * 2..=PING * 3).contains(&took), "{took:?}");
        assert_eq!(
            bounded(rx.recv()).await,
            Some("dropped"),
            "handler cancelled"
        );
        drop(block);
        assert_no_active(&g).await;
        g.shutdown().await;
    }
}

/// MinIO's testServerStreamPingRunning, all six variants: a stream whose consumer and/or
/// producer is blocked survives ten ping intervals (real timings, paused time), then ends
/// only by the caller's cancel, which reaches the handler.
#[tokio::test(start_paused = true)]
async fn blocked_streams_survive_on_pings() {
    let variants = [
        (1, false, false),
        (1, false, true),
        (1, true, false),
        (1, true, true),
        (0, false, true),
        (0, false, false),
    ];
    let mut runs = Vec::new();
    for (in_cap, block_resp, block_req) in variants {
        runs.push(tokio::spawn(ping_running(in_cap, block_resp, block_req)));
    }
    for r in runs {
        r.await.unwrap();
    }
}

async fn ping_running(in_cap: usize, block_resp: bool, block_req: bool) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let g = mem_grid_with(Options::default(), move |_, m| {
        let tx = tx.clone();
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(in_cap, 1, move |ctx: HandlerCtx, _, _, out: StreamOut| {
                let tx = tx.clone();
                async move {
                    let _guard = DropSignal(Some(tx.clone()));
                    let _ = tx.send("started");
                    if block_resp {
                        while out.send(vec![1u8]).await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    } else {
                        ctx.cancelled().await;
                    }
                    Ok(())
                }
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let st = bounded(conn.open_stream(HandlerId::TEST, "x"))
        .await
        .unwrap();
    assert_eq!(bounded(rx.recv()).await, Some("started"));
    let (sender, responses) = st.split();
    let mut hold = None;
    let feeder = match (block_req, sender) {
        (true, Some(mut s)) => Some(tokio::spawn(async move {
            while s.send(vec![1u8]).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })),
        (_, s) => {
            // Keep the input open without sending until the end.
            hold = s;
            None
        }
    };
    // The consumer does not read for ten ping intervals.
    tokio::time::sleep(PING * 10).await;
    assert!(
        !responses.is_ended(),
        "variant in={in_cap} resp={block_resp} req={block_req}: stream died while blocked"
    );
    responses.cancel();
    assert_eq!(bounded(rx.recv()).await, Some("dropped"));
    let mut responses = responses;
    let mut last = None;
    while let Some(r) = bounded(responses.next()).await {
        last = Some(r);
    }
    assert_eq!(last, Some(Err(Error::Cancelled)));
    if let Some(f) = feeder {
        bounded(f).await.unwrap();
    }
    drop(responses);
    drop(hold);
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// MinIO bugs 22aa16ab1 / 3415c4dd1: a reconnect while the outbound queue is full and senders
/// are blocked must not hang; every blocked sender is woken with an error.
#[tokio::test]
async fn reconnect_with_a_full_queue_and_blocked_senders() {
    let options = Options {
        out_queue: 4,
        ..Options::default()
    };
    let g = grid_with(options, |_, m| {
        register_echo_single(m);
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(64, 1, |_, _, input: Option<StreamIn>, _| async move {
                let mut input = input.unwrap();
                while input.recv().await.is_some() {}
                Ok(())
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    // The remote stops reading: socket buffers fill, the writer blocks, the queue fills.
    let block = g.conn(1, 0).block_inbound();
    let big = Bytes::from(vec![7u8; 256 * 1024]);
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(
            bounded(conn.open_stream(HandlerId::TEST, ""))
                .await
                .unwrap(),
        );
    }
    // The opens leave once this task yields (input usually follows an open at once, so an
    // open waits for it); they must be out before the senders fill the queue.
    eventually("the opens are written", || conn.stats().out_queue == 0).await;
    let mut senders = Vec::new();
    for st in streams {
        let big = big.clone();
        senders.push(tokio::spawn(async move {
            let (sender, _responses) = st.split();
            let mut sender = sender.unwrap();
            loop {
                if let Err(e) = sender.send(big.clone()).await {
                    return e;
                }
            }
        }));
    }
    // The senders and large single requests fill the socket buffers, which the blocked
    // remote does not drain, and then the outbound queue.
    let mut calls = Vec::new();
    for _ in 0..32 {
        let (conn, big) = (conn.clone(), big.clone());
        calls.push(tokio::spawn(async move {
            conn.request(HandlerId::TEST2, big).await.unwrap_err()
        }));
    }
    bounded(async {
        while conn.stats().out_queue < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    conn.kill();
    for s in senders {
        assert_eq!(bounded(s).await.unwrap(), Error::Disconnected);
    }
    for c in calls {
        assert_eq!(bounded(c).await.unwrap(), Error::Disconnected);
    }
    drop(block);
    bounded(g.wait_all_connected(Duration::from_secs(10)))
        .await
        .unwrap();
    let r = bounded(conn.request(HandlerId::TEST2, "after"))
        .await
        .unwrap();
    assert_eq!(&r[..], b"after");
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// A stream sender that finds the outbound queue full waits for room, then goes on: the
/// queue never holds more than its bound, and every message arrives, in order.
#[tokio::test]
async fn a_stream_sender_waits_for_room_in_the_outbound_queue() {
    const QUEUE: usize = 4;
    const N: usize = 64;
    let options = Options {
        out_queue: QUEUE,
        ..Options::default()
    };
    let g = grid_with(options, |_, m| {
        m.register_stream(
            HandlerId::TEST,
            None,
            // The window takes every message: only the outbound queue can hold the sender.
            RawStreamHandler::new(N, 1, |_, _, input: Option<StreamIn>, _| async move {
                let mut input = input.unwrap();
                let mut next = 0usize;
                while let Some(m) = input.recv().await {
                    if m.first().copied() != Some(next as u8) {
                        return Err(RemoteError::new(format!("message {next} out of order")));
                    }
                    next += 1;
                }
                if next != N {
                    return Err(RemoteError::new(format!("got {next} messages, want {N}")));
                }
                Ok(())
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let st = bounded(conn.open_stream(HandlerId::TEST, ""))
        .await
        .unwrap();
    eventually("the open is written", || conn.stats().out_queue == 0).await;
    // The remote stops reading: socket buffers fill, the writer blocks, the queue fills.
    let block = g.conn(1, 0).block_inbound();
    let (sender, responses) = st.split();
    let mut sender = sender.unwrap();
    let sending = tokio::spawn(async move {
        for i in 0..N {
            let mut m = vec![0u8; 256 * 1024];
            m[0] = i as u8;
            sender.send(m).await?;
        }
        sender.close();
        Ok::<(), Error>(())
    });
    eventually("the queue fills", || conn.stats().out_queue >= QUEUE).await;
    // Held at its bound while the remote does not read (sampled while the sender waits).
    for _ in 0..20 {
        tokio::task::yield_now().await;
        let queued = conn.stats().out_queue;
        assert!(queued <= QUEUE, "{queued} messages queued, bound {QUEUE}");
    }
    assert!(!sending.is_finished(), "the sender went past a full queue");
    drop(block);
    bounded(sending).await.unwrap().unwrap();
    bounded(responses.results(|_| Ok(()))).await.unwrap();
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// MinIO bug 02a67cbd2: a cancel racing with the end of a buffered stream either delivers
/// every message and a clean end, or fails with the cancel: never a lost final message with
/// a success result.
#[tokio::test]
async fn cancel_racing_eof_never_loses_messages_silently() {
    let g = grid_with(Options::default(), |_, m| {
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(0, 8, |_, _, _, out: StreamOut| async move {
                for i in 0..8u8 {
                    out.send(vec![i]).await?;
                }
                Ok(())
            }),
        )
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let (mut complete, mut cancelled) = (0, 0);
    for round in 0..200u64 {
        let mut st = bounded(conn.open_stream(HandlerId::TEST, ""))
            .await
            .unwrap();
        let mut got = Vec::new();
        // Read a few, wait a varying moment, cancel, then read what is left. The end takes
        // a credit like a message, and the 8 credits go back in batches of 4 (half the
        // window): so the end can leave before the cancel only in the rounds that read 4 or 5.
        for _ in 0..(round % 6) {
            if let Some(Ok(b)) = bounded(st.next()).await {
                got.push(b[0]);
            }
        }
        if round % 3 == 0 {
            tokio::task::yield_now().await;
        } else if round % 3 == 1 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        st.cancel();
        let mut end = Ok(());
        while let Some(item) = bounded(st.next()).await {
            match item {
                Ok(b) => got.push(b[0]),
                Err(e) => end = Err(e),
            }
        }
        match end {
            Ok(()) => {
                assert_eq!(
                    got,
                    (0..8u8).collect::<Vec<_>>(),
                    "clean end with missing messages"
                );
                complete += 1;
            }
            Err(e) => {
                assert_eq!(e, Error::Cancelled);
                assert_eq!(
                    got,
                    (0..got.len() as u8).collect::<Vec<_>>(),
                    "out of order"
                );
                cancelled += 1;
            }
        }
    }
    // Both sides of the race were run: some cancels came after the end (clean, complete),
    // some before it (every message before the cancel, in order).
    println!("cancel racing EOF: {complete} complete, {cancelled} cancelled");
    assert!(
        complete > 0 && cancelled > 0,
        "the race was not exercised both ways: {complete} complete, {cancelled} cancelled"
    );
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// Sequence order under parallel load: two workers, 32 callers, each running two-way streams
/// with one credit each way, so credits and data of one stream constantly take different
/// outbound lanes. A message overtaking another of its stream would fail a stream with
/// `IncorrectSequence` (the benchmark once caught that race).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_order_holds_under_parallel_load() {
    let g = grid_with(Options::default(), |_, m| {
        register_echo_stream(m);
    })
    .await;
    let mut tasks = Vec::new();
    for t in 0..32u32 {
        let conns = [g.conn(0, 1), g.conn(1, 0)];
        tasks.push(tokio::spawn(async move {
            for s in 0..200u32 {
                let st = conns[(s % 2) as usize]
                    .open_stream(HandlerId::TEST, "")
                    .await
                    .unwrap();
                let (sender, mut responses) = st.split();
                let mut sender = sender.unwrap();
                let feed = tokio::spawn(async move {
                    for i in 0..10u32 {
                        sender.send(format!("{t}-{s}-{i}")).await?;
                    }
                    Ok::<_, Error>(())
                });
                let mut n = 0;
                while let Some(m) = responses.next().await {
                    assert_eq!(m.unwrap(), format!("{t}-{s}-{n}").as_bytes());
                    n += 1;
                }
                assert_eq!(n, 10);
                feed.await.unwrap().unwrap();
            }
        }));
    }
    within(Duration::from_secs(60), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    assert_no_active(&g).await;
    g.shutdown().await;
}
