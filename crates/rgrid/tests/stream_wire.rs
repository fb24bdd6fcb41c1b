//! Streams against a peer that breaks the rules, driven message by message: credit abuse and
//! sequence gaps in both directions, input to a stream that takes none, a caller that never
//! pings, a duplicate open, and messages for muxes that do not exist. Each fails only the
//! stream concerned (with the error MinIO's peers expect) and leaves the connection serving
//! calls, with no mux left open.
//!
//! The raw peer talks to an in-memory node (through the production accept path) on paused
//! time: a quiet window ("no answer within 100 ms") and the watchdog's timing are exact, as
//! time only moves when every task is idle. Every timer of these nodes but the stream
//! watchdog's is 4 s or longer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::raw::{
    Got, Node, assert_no_active, connected_peer, expect, mem_node, quiet_for, raw_request,
    recv_msgs, send_mux,
};
use common::{bounded, waiting_stream};
use futures_util::StreamExt;
use rgrid::proto::{Flags, HandlerId, Message, MuxId, Op, PongMsg};
use rgrid::{Error, Manager, Options, RemoteError, State, WebSocket};
use tokio::sync::mpsc;

/// A node with an echo single handler on TEST, a waiting stream handler with one input
/// credit on TEST and one without input on TEST2.
async fn stream_node() -> (Node, mpsc::UnboundedReceiver<&'static str>) {
    stream_node_with(Options::default()).await
}

async fn stream_node_with(options: Options) -> (Node, mpsc::UnboundedReceiver<&'static str>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let n = mem_node(options, move |m: &Manager| {
        m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
        m.register_stream(HandlerId::TEST, None, waiting_stream(1, tx.clone()))
            .unwrap();
        m.register_stream(HandlerId::TEST2, None, waiting_stream(0, tx))
            .unwrap();
    })
    .await;
    (n, rx)
}

/// Opens stream `mux` on `handler` like a caller would and waits for the ack.
async fn open(ws: &mut WebSocket, mux: u64, handler: HandlerId) {
    common::raw::send(
        ws,
        Message {
            mux_id: MuxId(mux),
            handler,
            flags: Flags::CRC,
            payload: Some(b"init"),
            ..Message::new(Op::CONNECT_MUX)
        },
    )
    .await;
    let ack = expect(ws, Op::ACK_MUX, mux, &mut Vec::new()).await;
    assert_eq!(ack.seq, 0);
}

/// Reads the stream's failure (an ERR|EOF message) and the disconnect that follows it.
async fn expect_failure(ws: &mut WebSocket, mux: u64, pending: &mut Vec<Got>) -> Got {
    let end = expect(ws, Op::MUX_SERVER_MSG, mux, pending).await;
    assert!(
        end.flags.contains(Flags::EOF | Flags::PAYLOAD_IS_ERR),
        "{end:?}"
    );
    expect(ws, Op::DISCONNECT_CLIENT_MUX, mux, pending).await;
    end
}

/// Sends a single request on `call` and returns what the node sent before its answer
/// (connection-level messages aside). The node reads one message at a time and queues its
/// direct reply to each (a stream failure, a refusal, a pong) before it reads the next, so
/// this holds every direct reply to the earlier messages: a bounded, exact "nothing more
/// came" instead of listening for a while. (What a handler's task sends later, such as the
/// disconnect once a failed stream's handler has ended, may come after the answer.)
async fn said_before_answer(ws: &mut WebSocket, call: u64, pending: &mut Vec<Got>) -> Vec<Got> {
    common::raw::send(
        ws,
        Message {
            mux_id: MuxId(call),
            deadline_ms: 5000,
            handler: HandlerId::TEST,
            flags: Flags::CRC | Flags::EOF,
            payload: Some(b"probe"),
            ..Message::new(Op::REQUEST)
        },
    )
    .await;
    let answer = expect(ws, Op::RESPONSE, call, pending).await;
    assert_eq!(answer.payload.as_deref(), Some(&b"probe"[..]));
    std::mem::take(pending)
        .into_iter()
        .filter(|m| m.mux != 0)
        .collect()
}

/// The node still serves calls on this socket, never reconnected, and has no mux open.
async fn connection_is_healthy(n: &Node, ws: &mut WebSocket, call: u64) {
    let answer = raw_request(ws, call, b"still here").await;
    assert_eq!(answer.payload.as_deref(), Some(&b"still here"[..]));
    let conn = n.manager.connection(&n.peer).unwrap();
    assert_eq!(conn.state(), State::Connected);
    assert_eq!(conn.stats().reconnects, 0);
    assert_no_active(n).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_sending_beyond_its_credits_fails_only_that_stream() {
    let (n, mut events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    open(&mut ws, 1, HandlerId::TEST).await;
    assert_eq!(bounded(events.recv()).await, Some("started"));
    // One credit, and the handler never reads: the first message is buffered, the second
    // is a violation.
    send_mux(&mut ws, Op::MUX_CLIENT_MSG, 1, 1, Flags::NONE, Some(b"a")).await;
    assert_eq!(
        said_before_answer(&mut ws, 50, &mut Vec::new()).await,
        Vec::<Got>::new(),
        "a message within the credit must be taken silently"
    );
    send_mux(&mut ws, Op::MUX_CLIENT_MSG, 1, 2, Flags::NONE, Some(b"b")).await;
    let end = expect_failure(&mut ws, 1, &mut Vec::new()).await;
    assert_eq!(end.text(), "handler blocked");
    assert_eq!(bounded(events.recv()).await, Some("dropped"));
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_sequence_gap_fails_the_stream_with_minios_text() {
    let (n, mut events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    // A message, a credit and a ping, each arriving one number too far.
    for (i, op) in [Op::MUX_CLIENT_MSG, Op::UNBLOCK_SRV_MUX, Op::PING]
        .into_iter()
        .enumerate()
    {
        let mux = 1 + i as u64;
        open(&mut ws, mux, HandlerId::TEST).await;
        assert_eq!(bounded(events.recv()).await, Some("started"));
        send_mux(&mut ws, Op::MUX_CLIENT_MSG, mux, 1, Flags::NONE, Some(b"a")).await;
        send_mux(&mut ws, op, mux, 3, Flags::NONE, Some(b"")).await;
        let mut skipped = Vec::new();
        if op == Op::PING {
            let pong = expect(&mut ws, Op::PONG, mux, &mut skipped).await;
            let pong = PongMsg::decode(pong.payload.as_deref().unwrap()).unwrap();
            assert_eq!(
                pong.err.as_deref(),
                Some("receive sequence number mismatch. want 2, got 3")
            );
        }
        let end = expect_failure(&mut ws, mux, &mut skipped).await;
        assert_eq!(
            end.text(),
            "receive sequence number mismatch. want 2, got 3",
            "{op}"
        );
        assert_eq!(bounded(events.recv()).await, Some("dropped"));
    }
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn input_to_a_stream_that_takes_none_fails_it() {
    let (n, mut events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    open(&mut ws, 1, HandlerId::TEST2).await;
    assert_eq!(bounded(events.recv()).await, Some("started"));
    send_mux(&mut ws, Op::MUX_CLIENT_MSG, 1, 1, Flags::NONE, Some(b"a")).await;
    let end = expect_failure(&mut ws, 1, &mut Vec::new()).await;
    assert_eq!(end.text(), "did not expect inbound message");
    assert_eq!(bounded(events.recv()).await, Some("dropped"));
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_cancels_a_stream_whose_caller_never_pings() {
    let every = Duration::from_millis(50);
    let (n, mut events) = stream_node_with(Options {
        stream_ping_interval: every,
        ..Options::default()
    })
    .await;
    let mut ws = connected_peer(&n).await;
    let t0 = tokio::time::Instant::now();
    open(&mut ws, 1, HandlerId::TEST).await;
    assert_eq!(bounded(events.recv()).await, Some("started"));
    // Silent for more than four intervals, then the handler is cancelled and the caller told
    // so, at the first watchdog tick after that (ticks come every interval).
    expect(&mut ws, Op::DISCONNECT_CLIENT_MUX, 1, &mut Vec::new()).await;
    let took = t0.elapsed();
    assert!(
        took > every * 4 && took <= every * 5,
        "cancelled after {took:?}"
    );
    assert_eq!(bounded(events.recv()).await, Some("dropped"));
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_open_of_a_live_mux_id_is_ignored() {
    let (n, mut events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    open(&mut ws, 1, HandlerId::TEST).await;
    assert_eq!(bounded(events.recv()).await, Some("started"));
    common::raw::send(
        &mut ws,
        Message {
            mux_id: MuxId(1),
            handler: HandlerId::TEST,
            flags: Flags::CRC,
            payload: Some(b"again"),
            ..Message::new(Op::CONNECT_MUX)
        },
    )
    .await;
    // No second ack, no second handler; the first stream still takes its input.
    assert!(
        quiet_for(&mut ws, Duration::from_millis(100))
            .await
            .is_empty()
    );
    assert!(events.try_recv().is_err());
    send_mux(&mut ws, Op::MUX_CLIENT_MSG, 1, 1, Flags::NONE, Some(b"a")).await;
    send_mux(&mut ws, Op::DISCONNECT_SERVER_MUX, 1, 2, Flags::NONE, None).await;
    assert_eq!(bounded(events.recv()).await, Some("dropped"));
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn messages_for_unknown_muxes_get_the_right_answer_and_hurt_nothing() {
    let (n, _events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    let mut skipped = Vec::new();
    // Input for a stream the node does not serve: the caller is told to drop it.
    send_mux(&mut ws, Op::MUX_CLIENT_MSG, 41, 1, Flags::NONE, Some(b"x")).await;
    expect(&mut ws, Op::DISCONNECT_CLIENT_MUX, 41, &mut skipped).await;
    // A response and an ack for a stream the node never opened: the handler side is told
    // to stop (not the node's own caller mux of that number, quirk 14.2).
    for (op, mux) in [(Op::MUX_SERVER_MSG, 42), (Op::ACK_MUX, 43)] {
        send_mux(&mut ws, op, mux, 1, Flags::NONE, Some(b"x")).await;
        expect(&mut ws, Op::DISCONNECT_SERVER_MUX, mux, &mut skipped).await;
    }
    // A ping for a stream the node does not serve: the pong says so.
    send_mux(&mut ws, Op::PING, 44, 1, Flags::NONE, Some(b"")).await;
    let pong = expect(&mut ws, Op::PONG, 44, &mut skipped).await;
    assert!(
        PongMsg::decode(pong.payload.as_deref().unwrap())
            .unwrap()
            .not_found
    );
    // Credits, cancels and disconnects for unknown muxes are ignored silently.
    for op in [
        Op::UNBLOCK_SRV_MUX,
        Op::UNBLOCK_CL_MUX,
        Op::DISCONNECT_SERVER_MUX,
        Op::DISCONNECT_CLIENT_MUX,
    ] {
        send_mux(&mut ws, op, 45, 1, Flags::NONE, None).await;
    }
    assert_eq!(
        said_before_answer(&mut ws, 99, &mut skipped).await,
        Vec::<Got>::new(),
        "unexpected answers"
    );
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

/// The node opens a stream to the raw peer, which plays the handler: returns the stream
/// and the mux id it arrived on, after acking it.
async fn node_opens_stream(n: &Node, ws: &mut WebSocket) -> (rgrid::CallStream, u64) {
    let conn = n.manager.connection(&n.peer).unwrap();
    let st = bounded(conn.open_stream(HandlerId::TEST, "hi"))
        .await
        .unwrap();
    let open = loop {
        let msgs = bounded(recv_msgs(ws)).await.unwrap();
        if let Some(m) = msgs.into_iter().find(|m| m.op == Op::CONNECT_MUX) {
            break m;
        }
    };
    assert_eq!((open.seq, open.payload.as_deref()), (0, Some(&b"hi"[..])));
    send_mux(ws, Op::ACK_MUX, open.mux, 0, Flags::NONE, None).await;
    (st, open.mux)
}

#[tokio::test(start_paused = true)]
async fn a_handler_sending_beyond_its_credits_fails_the_callers_stream() {
    let (n, _events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    let (mut st, mux) = node_opens_stream(&n, &mut ws).await;
    // Out capacity 1 and the consumer has not read: the second message is a violation.
    send_mux(&mut ws, Op::MUX_SERVER_MSG, mux, 1, Flags::NONE, Some(b"a")).await;
    send_mux(&mut ws, Op::MUX_SERVER_MSG, mux, 2, Flags::NONE, Some(b"b")).await;
    expect(&mut ws, Op::DISCONNECT_SERVER_MUX, mux, &mut Vec::new()).await;
    assert_eq!(&bounded(st.next()).await.unwrap().unwrap()[..], b"a");
    match bounded(st.next()).await {
        Some(Err(Error::Protocol(text))) => assert!(text.contains("credits"), "{text}"),
        other => panic!("want a protocol error, got {other:?}"),
    }
    assert!(bounded(st.next()).await.is_none());
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_sequence_gap_from_the_handler_fails_the_callers_stream() {
    let (n, _events) = stream_node().await;
    let mut ws = connected_peer(&n).await;
    let (mut st, mux) = node_opens_stream(&n, &mut ws).await;
    send_mux(&mut ws, Op::MUX_SERVER_MSG, mux, 2, Flags::NONE, Some(b"a")).await;
    expect(&mut ws, Op::DISCONNECT_SERVER_MUX, mux, &mut Vec::new()).await;
    assert_eq!(
        bounded(st.next()).await,
        Some(Err(Error::IncorrectSequence { want: 1, got: 2 }))
    );
    assert!(bounded(st.next()).await.is_none());
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

/// A caller's ping that reaches a stream the handler has just finished (its last messages
/// still queued behind a slow socket) must be answered after those messages: a "not found"
/// pong that overtook them would fail a stream that succeeded ("remote terminated call").
#[tokio::test(start_paused = true)]
async fn a_not_found_pong_never_overtakes_the_finished_streams_last_messages() {
    const BIG: usize = 8 << 20;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let n = mem_node(Options::default(), move |m: &Manager| {
        let done = done_tx.clone();
        m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
        m.register_stream(
            HandlerId::TEST,
            None,
            rgrid::RawStreamHandler::new(0, 4, move |_, _, _, out: rgrid::StreamOut| {
                let done = done.clone();
                async move {
                    for i in 0..3u8 {
                        out.send(vec![i; BIG])
                            .await
                            .map_err(|e| RemoteError::new(e.to_string()))?;
                    }
                    let _ = done.send(());
                    Ok(())
                }
            }),
        )
        .unwrap();
    })
    .await;
    let mut ws = connected_peer(&n).await;
    common::raw::send(
        &mut ws,
        Message {
            mux_id: MuxId(7),
            handler: HandlerId::TEST,
            flags: Flags::CRC,
            payload: Some(b"init"),
            ..Message::new(Op::CONNECT_MUX)
        },
    )
    .await;
    // Without reading, the 24 MiB of output cannot all leave: the writer stalls on the
    // socket while the handler finishes.
    bounded(done_rx.recv()).await.unwrap();
    let conn = n.manager.connection(&n.peer).unwrap();
    let before = conn.stats();
    // A served stream is forgotten only once its last message is out: the node still
    // knows mux 7, so a ping for it cannot be answered "not found" ahead of its output.
    assert_eq!(before.incoming_muxes, 1, "{before:?}");
    send_mux(&mut ws, Op::PING, 7, 1, Flags::NONE, Some(b"")).await;
    // On paused time this returns once every task is idle: the node has handled the ping
    // while its writer is still stuck on the unread pipe (nothing is read before this).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = conn.stats();
    assert_eq!(
        after.incoming_messages,
        before.incoming_messages + 1,
        "the node read the ping"
    );
    assert!(
        after.outgoing_bytes < 3 * BIG as u64,
        "the output is still stuck: {after:?}"
    );
    let mut order = Vec::new();
    let mut pongs = Vec::new();
    bounded(async {
        while !order.contains(&(Op::DISCONNECT_CLIENT_MUX, false)) || pongs.is_empty() {
            for m in recv_msgs(&mut ws).await.unwrap() {
                if m.mux != 7 {
                    continue;
                }
                if m.op == Op::PONG {
                    let payload = m.payload.clone().unwrap_or_default();
                    pongs.push(PongMsg::decode(&payload).unwrap().not_found);
                } else {
                    order.push((m.op, m.flags.contains(Flags::EOF)));
                }
            }
        }
    })
    .await;
    assert_eq!(pongs, [false], "the stream was still served when pinged");
    let ops: Vec<Op> = order.iter().map(|(op, _)| *op).collect();
    assert_eq!(
        ops,
        [
            Op::ACK_MUX,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::DISCONNECT_CLIENT_MUX,
        ],
        "{order:?}"
    );
    assert!(order[4].1, "the fourth server message is the EOF");
    // Now the stream is gone: a ping for it is answered "not found", after everything.
    assert_no_active(&n).await;
    send_mux(&mut ws, Op::PING, 7, 2, Flags::NONE, Some(b"")).await;
    let mut pending = Vec::new();
    let pong = expect(&mut ws, Op::PONG, 7, &mut pending).await;
    let payload = pong.payload.unwrap_or_default();
    assert!(PongMsg::decode(&payload).unwrap().not_found);
    connection_is_healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}
