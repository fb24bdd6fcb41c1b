//! How stream messages leave in frames: a burst sent with credits to spare leaves merged in
//! one frame, in both directions (the writer task writes it once the sender yields, as
//! tonic's HTTP/2 connection task batches a stream's messages), while a message that takes
//! the last credit (MinIO's windows of 1) is written before its `send` returns, so a
//! credit-bound stream gains no latency. A sender that does not yield holds its messages
//! back for at most 16 messages, or until it sends again 100 µs after the deferral began. The
//! credit for a message just taken (windows of 1) waits for the taker to yield, so it shares a
//! frame with the answer or next message sent meanwhile.
//!
//! The raw peer talks to an in-memory node on paused time (see `common::raw`; one test runs
//! in real time, and says why): a frame the node wrote is in the pipe at once, so "already
//! there" is a single poll, not a wait, and no time passes between two sends of a burst.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::bounded;
use common::raw::{Got, assert_no_active, connected_peer, mem_node, recv_msgs, send_mux};
use futures_util::FutureExt;
use rgrid::proto::{Flags, HandlerId, Message, MuxId, Op};
use rgrid::{
    CallOptions, HandlerCtx, Manager, Options, RawStreamHandler, RemoteError, StreamIn, StreamOut,
    WebSocket,
};

const BURST: usize = 10;

/// Reads frames until `done` holds for the messages read; returns, per frame read, the
/// messages of `mux` it carried (frames with none of them are left out).
async fn frames_until(
    ws: &mut WebSocket,
    mux: u64,
    done: impl Fn(&[Got]) -> bool,
) -> Vec<Vec<Got>> {
    let mut frames: Vec<Vec<Got>> = Vec::new();
    let mut all: Vec<Got> = Vec::new();
    while !done(&all) {
        let msgs = bounded(recv_msgs(ws)).await.expect("socket closed");
        let mine: Vec<Got> = msgs.into_iter().filter(|m| m.mux == mux).collect();
        if !mine.is_empty() {
            all.extend(mine.iter().cloned());
            frames.push(mine);
        }
    }
    frames
}

fn count(msgs: &[Got], op: Op) -> usize {
    msgs.iter().filter(|m| m.op == op).count()
}

/// The ops of each frame's messages ([`frames_until`]).
fn ops_of(frames: &[Vec<Got>]) -> Vec<Vec<Op>> {
    frames
        .iter()
        .map(|f| f.iter().map(|m| m.op).collect())
        .collect()
}

/// Reads frames until one carries a message with `op`; returns that message.
async fn first_of(ws: &mut WebSocket, op: Op) -> Got {
    loop {
        let msgs = bounded(recv_msgs(ws)).await.expect("socket closed");
        if let Some(m) = msgs.into_iter().find(|m| m.op == op) {
            return m;
        }
    }
}

/// The raw caller ends its input (message `seq`), waits for the handler's end and checks
/// that no mux is left on the node, then shuts the node down.
async fn end_input(n: common::raw::Node, ws: &mut WebSocket, mux: u64, seq: u32) {
    send_mux(ws, Op::MUX_CLIENT_MSG, mux, seq, Flags::EOF, None).await;
    frames_until(ws, mux, ended).await;
    assert_no_active(&n).await;
    n.manager.shutdown().await;
}

/// A handler that sends `BURST` messages at once, then ends.
fn burst_handler(out_cap: usize) -> RawStreamHandler {
    sending_handler(out_cap, BURST, Duration::ZERO)
}

/// A handler that sends `count` messages without yielding, keeping its thread busy for
/// `work` between two sends (computing, as far as the runtime can tell), then ends.
fn sending_handler(out_cap: usize, count: usize, work: Duration) -> RawStreamHandler {
    RawStreamHandler::new(
        0,
        out_cap,
        move |_: HandlerCtx, _: Bytes, _: Option<StreamIn>, out: StreamOut| async move {
            for i in 0..count {
                if i > 0 && !work.is_zero() {
                    let t = std::time::Instant::now();
                    while t.elapsed() < work {
                        std::hint::spin_loop();
                    }
                }
                out.send(vec![u8::try_from(i).unwrap()])
                    .await
                    .map_err(|e| RemoteError::new(e.to_string()))?;
            }
            Ok(())
        },
    )
}

/// Sends the raw peer's open of a stream on handler TEST, as mux `mux`.
async fn open_mux(ws: &mut WebSocket, mux: u64, flags: Flags) {
    common::raw::send(
        ws,
        Message {
            mux_id: MuxId(mux),
            handler: HandlerId::TEST,
            flags: Flags::CRC | flags,
            payload: Some(b"go"),
            ..Message::new(Op::CONNECT_MUX)
        },
    )
    .await;
}

/// Whether the handler's end is among `all`.
fn ended(all: &[Got]) -> bool {
    all.iter()
        .any(|m| m.op == Op::MUX_SERVER_MSG && m.flags.contains(Flags::EOF))
}

/// Opens a stream on the node's handler TEST (no input) and returns the ops of the stream's
/// messages in each frame, once the end arrived; checks no mux is left.
async fn served_ops(handler: RawStreamHandler) -> Vec<Vec<Op>> {
    let n = mem_node(Options::default(), move |m: &Manager| {
        m.register_stream(HandlerId::TEST, None, handler).unwrap();
    })
    .await;
    let mut ws = connected_peer(&n).await;
    const MUX: u64 = 3;
    open_mux(&mut ws, MUX, Flags::EOF).await;
    let frames = frames_until(&mut ws, MUX, ended).await;
    // The handler's output is all out: the stream ends cleanly.
    assert_no_active(&n).await;
    n.manager.shutdown().await;
    ops_of(&frames)
}

/// How many of the handler's messages (the end included) each frame carried
/// ([`served_ops`]).
async fn served_frames(handler: RawStreamHandler) -> Vec<usize> {
    let data: Vec<usize> = served_ops(handler)
        .await
        .iter()
        .map(|f| f.iter().filter(|&&op| op == Op::MUX_SERVER_MSG).count())
        .filter(|&c| c > 0)
        .collect();
    println!("messages (with the end) per frame: {data:?}");
    data
}

#[tokio::test(start_paused = true)]
async fn a_handlers_burst_leaves_in_one_frame() {
    // The 10 messages and the end (11 server messages) in one frame.
    assert_eq!(served_frames(burst_handler(16)).await, vec![BURST + 1]);
}

#[tokio::test(start_paused = true)]
async fn a_long_burst_leaves_sixteen_messages_at_a_time() {
    // 40 messages with credits for all: the sender writes every 16th itself, so no frame
    // waits for more than 16 (the last 8 leave with the end once the handler returns).
    let frames = served_frames(sending_handler(64, 40, Duration::ZERO)).await;
    assert_eq!(frames, vec![16, 16, 9]);
}

/// Real time, unlike the rest of this file: the handler's work between sends must move the
/// clock the bound reads, which paused time only moves when every task waits. Preemption
/// only adds time, so the outcome does not depend on the machine's load.
#[tokio::test]
async fn a_sender_busy_between_sends_does_not_hold_its_messages() {
    // 4 messages, 1 ms of work between two: each send after the first finds the deferral
    // older than its bound and writes what waits, so messages leave in pairs instead of all
    // at the end.
    let frames = served_frames(sending_handler(16, 4, Duration::from_millis(1))).await;
    assert_eq!(frames, vec![2, 2, 1]);
}

/// A node, the raw peer connected to it, and a stream the node opened on the peer's handler
/// TEST with an input window of `window`.
async fn caller_stream(window: usize) -> (common::raw::Node, WebSocket, rgrid::CallStream) {
    let n = mem_node(Options::default(), |_: &Manager| {}).await;
    let ws = connected_peer(&n).await;
    let conn = n.manager.connection(&n.peer).unwrap();
    let st = bounded(conn.open_stream_with(
        HandlerId::TEST,
        "hi",
        &CallOptions::new().capacities(window, 1),
    ))
    .await
    .unwrap();
    (n, ws, st)
}

/// The node calls a stream on the raw peer with an input window of `window`, sends `BURST`
/// messages without yielding, and returns how many input messages each frame carried.
/// `at_once` records, after each send, whether its message was already in the pipe.
async fn caller_burst(window: usize) -> (Vec<usize>, Vec<bool>) {
    let (n, mut ws, mut st) = caller_stream(window).await;
    let open = first_of(&mut ws, Op::CONNECT_MUX).await;
    let mux = open.mux;
    send_mux(&mut ws, Op::ACK_MUX, mux, 0, Flags::NONE, None).await;
    let mut per_frame = Vec::new();
    let mut at_once = Vec::new();
    let mut credits_back = 0u32;
    let mut seq = 1;
    for i in 0..BURST {
        if window == 1 && i > 0 {
            // Give the credit back for the message read, as a handler would.
            send_mux(&mut ws, Op::UNBLOCK_CL_MUX, mux, seq, Flags::NONE, None).await;
            seq += 1;
            credits_back += 1;
        }
        bounded(st.send(vec![u8::try_from(i).unwrap()]))
            .await
            .unwrap();
        // One poll: is the message's frame already written?
        match recv_msgs(&mut ws).now_or_never() {
            Some(msgs) => {
                at_once.push(true);
                let c = count(&msgs.unwrap(), Op::MUX_CLIENT_MSG);
                if c > 0 {
                    per_frame.push(c);
                }
            }
            None => at_once.push(false),
        }
    }
    st.close_send();
    let sent: usize = per_frame.iter().sum();
    let rest = frames_until(&mut ws, mux, |all| {
        count(all, Op::MUX_CLIENT_MSG) >= BURST - sent
    })
    .await;
    per_frame.extend(
        rest.iter()
            .map(|f| count(f, Op::MUX_CLIENT_MSG))
            .filter(|&c| c > 0),
    );
    assert_eq!(
        credits_back as usize,
        if window == 1 { BURST - 1 } else { 0 }
    );
    drop(st);
    n.manager.shutdown().await;
    (per_frame, at_once)
}

#[tokio::test(start_paused = true)]
async fn a_callers_burst_leaves_in_one_frame() {
    let (per_frame, at_once) = caller_burst(16).await;
    println!("input messages per frame: {per_frame:?}");
    // The 10 messages and the end of input (an EOF message), closed before yielding.
    assert_eq!(per_frame, vec![BURST + 1]);
    // Each message waited for the sender to yield (that is how they merged).
    assert_eq!(at_once, vec![false; BURST]);
}

#[tokio::test(start_paused = true)]
async fn a_message_taking_the_last_credit_leaves_before_send_returns() {
    let (per_frame, at_once) = caller_burst(1).await;
    println!("input messages per frame: {per_frame:?}");
    assert_eq!(per_frame, vec![1; BURST]);
    assert_eq!(at_once, vec![true; BURST]);
}

/// On a quiet connection a stream's ack waits for the end of its handler's first poll, so it
/// leaves with what the handler sent meanwhile: here the whole stream (the ack, 10 messages,
/// the end and the final disconnect) is one frame, where it used to be the ack alone and
/// then the rest.
#[tokio::test(start_paused = true)]
async fn a_quiet_streams_ack_leaves_with_its_first_messages() {
    let ops = served_ops(burst_handler(16)).await;
    let mut want = vec![Op::ACK_MUX];
    want.extend([Op::MUX_SERVER_MSG; BURST + 1]);
    want.push(Op::DISCONNECT_CLIENT_MUX);
    assert_eq!(
        ops,
        vec![want],
        "one frame: the ack, the messages, the end, the final disconnect"
    );
}

/// The held ack does not wait for the handler's output: a handler whose first poll waits for
/// input (a Go caller sends none before the ack) has its ack written when that poll ends.
#[tokio::test(start_paused = true)]
async fn a_handler_waiting_for_input_is_acked_at_once() {
    let n = mem_node(Options::default(), |m: &Manager| {
        m.register_stream(HandlerId::TEST, None, common::echo_stream(4, 4))
            .unwrap();
    })
    .await;
    let mut ws = connected_peer(&n).await;
    const MUX: u64 = 9;
    open_mux(&mut ws, MUX, Flags::NONE).await;
    // Paused time: the ack must come without the clock moving (a withheld ack would wait
    // for the next timer, a ping seconds later).
    let t0 = tokio::time::Instant::now();
    let frames = frames_until(&mut ws, MUX, |all| count(all, Op::ACK_MUX) == 1).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "the ack waited for a timer");
    assert_eq!(frames.concat().len(), 1, "the ack alone: {frames:?}");
    send_mux(
        &mut ws,
        Op::MUX_CLIENT_MSG,
        MUX,
        1,
        Flags::NONE,
        Some(b"ping"),
    )
    .await;
    let echo = frames_until(&mut ws, MUX, |all| count(all, Op::MUX_SERVER_MSG) == 1).await;
    let echo = echo.concat();
    assert_eq!(echo.last().map(Got::text).as_deref(), Some("ping"));
    end_input(n, &mut ws, MUX, 2).await;
}

/// A caller's open is written once the caller yields, like a burst of input (input usually
/// follows an open at once): the open, the messages sent before yielding and the end of the
/// input leave in one frame.
#[tokio::test(start_paused = true)]
async fn a_callers_open_and_input_leave_in_one_frame() {
    let (n, mut ws, mut st) = caller_stream(16).await;
    for i in 0..BURST {
        bounded(st.send(vec![u8::try_from(i).unwrap()]))
            .await
            .unwrap();
    }
    st.close_send();
    let first = bounded(recv_msgs(&mut ws)).await.unwrap();
    let ops: Vec<Op> = first.iter().map(|m| m.op).collect();
    let mut want = vec![Op::CONNECT_MUX];
    want.extend([Op::MUX_CLIENT_MSG; BURST + 1]);
    assert_eq!(
        ops, want,
        "the open, the input and its end in the first frame"
    );
    drop(st);
    n.manager.shutdown().await;
}

/// With windows of 1 each message taken returns a credit, and in a two-way exchange the
/// taker usually answers at once. On a quiet connection the credit waits for the taker to
/// yield, so it leaves in one frame with the answer (where it used to be a frame of its own,
/// two writes per message): here an echo handler's credit and echo, three rounds.
#[tokio::test(start_paused = true)]
async fn a_served_streams_credit_leaves_with_its_answer() {
    let n = mem_node(Options::default(), |m: &Manager| {
        m.register_stream(HandlerId::TEST, None, common::echo_stream(1, 1))
            .unwrap();
    })
    .await;
    let mut ws = connected_peer(&n).await;
    const MUX: u64 = 11;
    open_mux(&mut ws, MUX, Flags::NONE).await;
    frames_until(&mut ws, MUX, |all| count(all, Op::ACK_MUX) == 1).await;
    let mut seq = 1;
    for round in 1..=3usize {
        if round > 1 {
            // The credit for the echo read, as a caller gives it back.
            send_mux(&mut ws, Op::UNBLOCK_SRV_MUX, MUX, seq, Flags::NONE, None).await;
            seq += 1;
        }
        let text = format!("m{round}");
        send_mux(
            &mut ws,
            Op::MUX_CLIENT_MSG,
            MUX,
            seq,
            Flags::NONE,
            Some(text.as_bytes()),
        )
        .await;
        seq += 1;
        let frames = frames_until(&mut ws, MUX, |all| count(all, Op::MUX_SERVER_MSG) == 1).await;
        assert_eq!(
            ops_of(&frames),
            vec![vec![Op::UNBLOCK_CL_MUX, Op::MUX_SERVER_MSG]],
            "round {round}: the credit and the echo in one frame"
        );
        assert_eq!(frames[0][1].text(), text);
    }
    send_mux(&mut ws, Op::UNBLOCK_SRV_MUX, MUX, seq, Flags::NONE, None).await;
    end_input(n, &mut ws, MUX, seq + 1).await;
}

/// The same on the calling side: the node takes an answer of a stream with windows of 1 and
/// sends its next message before yielding; the credit for the answer and the message leave
/// in one frame.
#[tokio::test(start_paused = true)]
async fn a_callers_credit_leaves_with_its_next_message() {
    use futures_util::StreamExt;
    let (n, mut ws, mut st) = caller_stream(1).await;
    bounded(st.send(b"m0".to_vec())).await.unwrap();
    let first = first_of(&mut ws, Op::MUX_CLIENT_MSG).await;
    let mux = first.mux;
    send_mux(&mut ws, Op::ACK_MUX, mux, 0, Flags::NONE, None).await;
    let mut seq = 1;
    for round in 1..=3usize {
        // The credit for the caller's message, then an answer.
        send_mux(&mut ws, Op::UNBLOCK_CL_MUX, mux, seq, Flags::NONE, None).await;
        send_mux(
            &mut ws,
            Op::MUX_SERVER_MSG,
            mux,
            seq + 1,
            Flags::NONE,
            Some(b"r"),
        )
        .await;
        seq += 2;
        let answer = bounded(st.next()).await.unwrap().unwrap();
        assert_eq!(&answer[..], b"r");
        let text = format!("m{round}");
        bounded(st.send(text.clone().into_bytes())).await.unwrap();
        let frames = frames_until(&mut ws, mux, |all| count(all, Op::MUX_CLIENT_MSG) == 1).await;
        assert_eq!(
            ops_of(&frames),
            vec![vec![Op::UNBLOCK_SRV_MUX, Op::MUX_CLIENT_MSG]],
            "round {round}: the credit and the next message in one frame"
        );
        assert_eq!(frames[0][1].text(), text);
    }
    drop(st);
    n.manager.shutdown().await;
}
