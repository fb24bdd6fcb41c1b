//! Wire details found against MinIO's Go grid (issue 14, item 5), checked message by message
//! with the raw protocol peer:
//!
//! * a stream or request to an unknown subroute is refused with Go's text (the 32-byte id as
//!   decimal bytes), the refusal keeping the request's handler, Seq and EOF (spec §15.3,
//!   §15.4), and a stream refused in the same merged frame as its input's EOF gets the
//!   refusal before the disconnect that answers the EOF;
//! * a stream's follow-up messages carry handler 0, as Go's do, in both directions, with
//!   consecutive sequence numbers (spec §3.11), while replies built from a received message
//!   (pongs, mux connect errors) keep that message's handler (spec §15.1, §15.3);
//! * under load (many streams whose output waits behind an unread socket, then pinged) each
//!   mux's messages still arrive in sequence order and every pong echoes its ping's Seq.
//!
//! The node is in memory on paused time (see `common::raw`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use common::raw::{
    Got, Node, assert_no_active, connected_peer, expect, mem_node, quiet_for, raw_request,
    recv_msgs,
};
use common::{bounded, echo_stream};
use futures_util::{SinkExt, StreamExt};
use rgrid::proto::{
    Flags, HandlerId, Message, MuxConnectError, MuxId, Op, PongMsg, SubrouteId, put_merged_entry,
    put_merged_header,
};
use rgrid::{Manager, Options, RawStreamHandler, RemoteError, State, StreamOut, WebSocket};

/// One message from the raw peer; `handler` and `subroute` as given (a Go caller's stream
/// follow-ups carry handler 0).
#[allow(clippy::too_many_arguments)]
fn encode(
    op: Op,
    mux: u64,
    seq: u32,
    handler: HandlerId,
    flags: Flags,
    deadline_ms: u32,
    payload: Option<&[u8]>,
    subroute: Option<SubrouteId>,
) -> Vec<u8> {
    Message {
        mux_id: MuxId(mux),
        seq,
        deadline_ms,
        handler,
        op,
        flags,
        payload,
        subroute,
    }
    .encode_to_vec()
    .unwrap()
}

async fn send_frame(ws: &mut WebSocket, frame: Vec<u8>) {
    ws.send(tokio_websockets::Message::binary(bytes::Bytes::from(frame)))
        .await
        .unwrap();
}

/// Sends a checksummed stream message with an explicit handler id.
async fn send_h(
    ws: &mut WebSocket,
    op: Op,
    mux: u64,
    seq: u32,
    handler: HandlerId,
    flags: Flags,
    payload: Option<&[u8]>,
) {
    let m = encode(op, mux, seq, handler, Flags::CRC | flags, 0, payload, None);
    send_frame(ws, m).await;
}

/// Reads frames, keeping every message for a mux (connection-level ones dropped) in
/// arrival order in `log`, until `done(log)` holds (within 10 s).
async fn read_until(ws: &mut WebSocket, log: &mut Vec<Got>, done: impl Fn(&[Got]) -> bool) {
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !done(log) {
            let msgs = recv_msgs(ws).await.expect("socket closed");
            log.extend(msgs.into_iter().filter(|m| m.mux != 0));
        }
    })
    .await;
    if read.is_err() {
        panic!("hung; received by mux: {:?}", summary(log));
    }
}

/// Per mux, the ops received (with their Seq), for failure messages.
fn summary(log: &[Got]) -> BTreeMap<u64, Vec<(Op, u32)>> {
    let mut per_mux: BTreeMap<u64, Vec<(Op, u32)>> = BTreeMap::new();
    for m in log {
        per_mux.entry(m.mux).or_default().push((m.op, m.seq));
    }
    per_mux
}

fn count(log: &[Got], mux: u64, op: Op) -> usize {
    log.iter().filter(|m| m.mux == mux && m.op == op).count()
}

/// The text Go prints for an unknown subroute: `Invalid Handler for type: ` and the 32-byte
/// id as `fmt` prints a byte array (decimal bytes, space-separated, in brackets). Spelled
/// out here, independently of the library's formatter.
fn go_invalid_handler_text(id: &[u8; 32]) -> String {
    let bytes: Vec<String> = id.iter().map(u8::to_string).collect();
    format!("Invalid Handler for type: [{}]", bytes.join(" "))
}

/// The node still answers calls on this socket, never reconnected, and has no mux open.
async fn healthy(n: &Node, ws: &mut WebSocket, call: u64) {
    let answer = raw_request(ws, call, b"still here").await;
    assert_eq!(answer.payload.as_deref(), Some(&b"still here"[..]));
    let conn = n.manager.connection(&n.peer).unwrap();
    assert_eq!(conn.state(), State::Connected);
    assert_eq!(conn.stats().reconnects, 0);
    assert_no_active(n).await;
}

/// A node with an echo single handler on TEST, and on TEST's subroute "echo" a single and a
/// stream handler: handler 78 is served, only not under the subroute the tests use.
async fn subroute_node() -> Node {
    mem_node(Options::default(), |m: &Manager| {
        m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
        m.register_single_subroute(HandlerId::TEST, "echo", |p| async move {
            Ok::<_, RemoteError>(p)
        })
        .unwrap();
        m.register_stream(HandlerId::TEST, Some("echo"), echo_stream(1, 1))
            .unwrap();
    })
    .await
}

/// A Go caller opens a stream to an unknown subroute and closes its input at once: the
/// connect and the input's EOF arrive in one merged frame. The node refuses the stream with
/// Go's text, then answers the EOF (input for a mux it does not serve) with a disconnect:
/// the refusal must come first, or the caller would see "disconnected" instead of why.
#[tokio::test(start_paused = true)]
async fn a_stream_to_an_unknown_subroute_is_refused_before_its_eof_is_answered() {
    let n = subroute_node().await;
    let mut ws = connected_peer(&n).await;
    let sub = SubrouteId::new(HandlerId::TEST, "no/such/disk");
    assert_ne!(sub, SubrouteId::new(HandlerId::TEST, "echo"));
    let connect = encode(
        Op::CONNECT_MUX,
        9,
        0,
        HandlerId::TEST,
        Flags::CRC,
        0,
        Some(b"init"),
        Some(sub),
    );
    // Go's EOF on a closed request stream: handler 0, Seq 1, nil payload.
    let eof = encode(
        Op::MUX_CLIENT_MSG,
        9,
        1,
        HandlerId(0),
        Flags::CRC | Flags::EOF,
        0,
        None,
        None,
    );
    let mut frame = BytesMut::new();
    put_merged_header(&mut frame, 2);
    put_merged_entry(&mut frame, &connect).unwrap();
    put_merged_entry(&mut frame, &eof).unwrap();
    send_frame(&mut ws, frame.to_vec()).await;

    let mut log = Vec::new();
    read_until(&mut ws, &mut log, |l| {
        count(l, 9, Op::MUX_CONNECT_ERROR) >= 1 && count(l, 9, Op::DISCONNECT_CLIENT_MUX) >= 1
    })
    .await;
    // Nothing else for the mux comes later (exact on paused time).
    log.extend(quiet_for(&mut ws, Duration::from_millis(100)).await);
    let ops: Vec<Op> = log.iter().filter(|m| m.mux == 9).map(|m| m.op).collect();
    assert_eq!(
        ops,
        [Op::MUX_CONNECT_ERROR, Op::DISCONNECT_CLIENT_MUX],
        "{log:?}"
    );
    let refusal = log.iter().find(|m| m.op == Op::MUX_CONNECT_ERROR).unwrap();
    // The disconnect is a fresh message, as Go builds it: Seq 0, handler 0 (not the EOF's
    // Seq 1).
    let disconnect = log
        .iter()
        .find(|m| m.op == Op::DISCONNECT_CLIENT_MUX)
        .unwrap();
    assert_eq!((disconnect.seq, disconnect.handler), (0, HandlerId(0)));
    let text = MuxConnectError::decode(refusal.payload.as_deref().unwrap())
        .unwrap()
        .error
        .into_owned();
    assert_eq!(text, go_invalid_handler_text(sub.as_bytes()));
    assert!(
        text.starts_with("Invalid Handler for type: [78 0 "),
        "{text}"
    );
    // The refusal is the connect sent back (spec §15.3): its handler and Seq, the base flags
    // (CRC), no subroute.
    assert_eq!(
        (refusal.handler, refusal.seq, refusal.flags),
        (HandlerId::TEST, 0, Flags::CRC),
        "{refusal:?}"
    );
    healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

/// A single request to an unknown subroute: refused with Go's text, the refusal keeping the
/// request's handler, Seq, deadline and EOF (spec §15.3), without the subroute flag.
#[tokio::test(start_paused = true)]
async fn a_request_to_an_unknown_subroute_is_refused_with_gos_text_and_keeps_eof() {
    let n = subroute_node().await;
    let mut ws = connected_peer(&n).await;
    let sub = SubrouteId::new(HandlerId::TEST, "no/such/disk");
    let request = encode(
        Op::REQUEST,
        11,
        0,
        HandlerId::TEST,
        Flags::CRC | Flags::EOF,
        5000,
        Some(b"hello"),
        Some(sub),
    );
    send_frame(&mut ws, request).await;
    let refusal = expect(&mut ws, Op::MUX_CONNECT_ERROR, 11, &mut Vec::new()).await;
    let text = MuxConnectError::decode(refusal.payload.as_deref().unwrap())
        .unwrap()
        .error
        .into_owned();
    assert_eq!(text, go_invalid_handler_text(sub.as_bytes()));
    assert_eq!(
        (
            refusal.handler,
            refusal.seq,
            refusal.deadline_ms,
            refusal.flags
        ),
        (HandlerId::TEST, 0, 5000, Flags::CRC | Flags::EOF),
        "{refusal:?}"
    );
    // The registered subroute of the same handler is served.
    let ok = encode(
        Op::REQUEST,
        12,
        0,
        HandlerId::TEST,
        Flags::CRC | Flags::EOF,
        5000,
        Some(b"hello"),
        Some(SubrouteId::new(HandlerId::TEST, "echo")),
    );
    send_frame(&mut ws, ok).await;
    let answer = expect(&mut ws, Op::RESPONSE, 12, &mut Vec::new()).await;
    assert_eq!(answer.payload.as_deref(), Some(&b"hello"[..]));
    healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

/// Ops the caller checks the Seq of (spec §3.11).
fn seq_checked_by_caller(op: Op) -> bool {
    matches!(
        op,
        Op::ACK_MUX | Op::MUX_SERVER_MSG | Op::UNBLOCK_CL_MUX | Op::RESPONSE
    )
}

/// The raw peer calls a two-way echo stream like a Go caller (follow-ups with handler 0):
/// everything the node sends for the stream (ack, messages, credits, the final disconnect)
/// carries handler 0, with the checked Seqs consecutive from 0; a pong keeps its ping's
/// handler and Seq.
#[tokio::test(start_paused = true)]
async fn a_served_streams_follow_ups_carry_handler_0_and_pongs_echo_the_ping() {
    let n = mem_node(Options::default(), |m: &Manager| {
        m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
        m.register_stream(HandlerId::TEST, None, echo_stream(1, 1))
            .unwrap();
    })
    .await;
    let mut ws = connected_peer(&n).await;
    const MUX: u64 = 5;
    let none = HandlerId(0);
    send_h(
        &mut ws,
        Op::CONNECT_MUX,
        MUX,
        0,
        HandlerId::TEST,
        Flags::NONE,
        Some(b"init"),
    )
    .await;
    let mut seq = 1;
    let mut log = Vec::new();
    // Pings sent (seq, handler): a Go caller's pings carry handler 0; these carry 78 and 79
    // so the pong's handler shows it is echoed, not a constant.
    let mut pings = Vec::new();
    for i in 0..3u8 {
        send_h(
            &mut ws,
            Op::MUX_CLIENT_MSG,
            MUX,
            seq,
            none,
            Flags::NONE,
            Some(&[i]),
        )
        .await;
        seq += 1;
        let k = usize::from(i) + 1;
        read_until(&mut ws, &mut log, |l| {
            count(l, MUX, Op::MUX_SERVER_MSG) >= k && count(l, MUX, Op::UNBLOCK_CL_MUX) >= k
        })
        .await;
        // The echo took the handler's only output credit: return it.
        send_h(
            &mut ws,
            Op::UNBLOCK_SRV_MUX,
            MUX,
            seq,
            none,
            Flags::NONE,
            None,
        )
        .await;
        seq += 1;
        if i > 0 {
            let handler = [HandlerId::TEST, HandlerId::TEST2][usize::from(i) - 1];
            send_h(&mut ws, Op::PING, MUX, seq, handler, Flags::NONE, Some(b"")).await;
            pings.push((seq, handler));
            seq += 1;
            read_until(&mut ws, &mut log, |l| {
                count(l, MUX, Op::PONG) >= pings.len()
            })
            .await;
        }
    }
    send_h(
        &mut ws,
        Op::MUX_CLIENT_MSG,
        MUX,
        seq,
        none,
        Flags::EOF,
        None,
    )
    .await;
    read_until(&mut ws, &mut log, |l| {
        count(l, MUX, Op::DISCONNECT_CLIENT_MUX) >= 1
    })
    .await;
    log.extend(quiet_for(&mut ws, Duration::from_millis(100)).await);
    let log: Vec<Got> = log.into_iter().filter(|m| m.mux == MUX).collect();

    // What the stream sent: the ack, three echoes and the EOF, three credits (none for the
    // EOF), two pongs, then the disconnect (with Seq 0, spec §15.6).
    for (op, want) in [
        (Op::ACK_MUX, 1),
        (Op::MUX_SERVER_MSG, 4),
        (Op::UNBLOCK_CL_MUX, 3),
        (Op::PONG, 2),
        (Op::DISCONNECT_CLIENT_MUX, 1),
    ] {
        assert_eq!(count(&log, MUX, op), want, "{op}: {log:?}");
    }
    assert_eq!(log.len(), 11, "{log:?}");
    let last = log.last().unwrap();
    assert_eq!(
        (last.op, last.seq, last.handler),
        (Op::DISCONNECT_CLIENT_MUX, 0, none),
        "{log:?}"
    );
    let echoes: Vec<(Option<Vec<u8>>, bool)> = log
        .iter()
        .filter(|m| m.op == Op::MUX_SERVER_MSG)
        .map(|m| (m.payload.clone(), m.flags.contains(Flags::EOF)))
        .collect();
    assert_eq!(
        echoes,
        [
            (Some(vec![0]), false),
            (Some(vec![1]), false),
            (Some(vec![2]), false),
            (None, true),
        ]
    );
    // Follow-ups carry handler 0, like Go's.
    for m in log.iter().filter(|m| m.op != Op::PONG) {
        assert_eq!(m.handler, none, "{m:?}");
    }
    // Checked Seqs: 0 (the ack), then one more for each message, in send order.
    let seqs: Vec<u32> = log
        .iter()
        .filter(|m| seq_checked_by_caller(m.op))
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (0..8).collect::<Vec<u32>>(), "{log:?}");
    // Pongs: the ping sent back (spec §15.1): its Seq and handler, found, no error.
    let pongs: Vec<(u32, HandlerId)> = log
        .iter()
        .filter(|m| m.op == Op::PONG)
        .map(|m| (m.seq, m.handler))
        .collect();
    assert_eq!(pongs, pings);
    for p in log.iter().filter(|m| m.op == Op::PONG) {
        let pong = PongMsg::decode(p.payload.as_deref().unwrap_or_default()).unwrap();
        assert!(!pong.not_found && pong.err.is_none(), "{pong:?}");
    }
    healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

/// The node calls a stream the raw peer serves: the open carries the handler, and every
/// follow-up (input, its EOF, credits, pings, the cancel) carries handler 0, with Seqs
/// consecutive from the open's 0 (spec §3.11: every caller message takes the next Seq).
#[tokio::test(start_paused = true)]
async fn a_calling_nodes_follow_ups_carry_handler_0() {
    let every = Duration::from_secs(1);
    let n = mem_node(
        Options {
            stream_ping_interval: every,
            ..Options::default()
        },
        |m: &Manager| {
            m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
                .unwrap();
            // Sizes the caller's windows (the raw peer plays the handler).
            m.register_stream(HandlerId::TEST, None, echo_stream(1, 1))
                .unwrap();
        },
    )
    .await;
    let mut ws = connected_peer(&n).await;
    let conn = n.manager.connection(&n.peer).unwrap();
    let none = HandlerId(0);
    let mut st = bounded(conn.open_stream(HandlerId::TEST, "hi"))
        .await
        .unwrap();
    let mut log = Vec::new();
    read_until(&mut ws, &mut log, |l| {
        l.iter().any(|m| m.op == Op::CONNECT_MUX)
    })
    .await;
    let mux = log.iter().find(|m| m.op == Op::CONNECT_MUX).unwrap().mux;
    // The raw peer answers like a Go handler side: follow-ups with handler 0.
    send_h(&mut ws, Op::ACK_MUX, mux, 0, none, Flags::NONE, None).await;
    bounded(st.send("a")).await.unwrap();
    read_until(&mut ws, &mut log, |l| {
        count(l, mux, Op::MUX_CLIENT_MSG) >= 1
    })
    .await;
    send_h(&mut ws, Op::UNBLOCK_CL_MUX, mux, 1, none, Flags::NONE, None).await;
    send_h(
        &mut ws,
        Op::MUX_SERVER_MSG,
        mux,
        2,
        none,
        Flags::NONE,
        Some(b"A"),
    )
    .await;
    assert_eq!(&bounded(st.next()).await.unwrap().unwrap()[..], b"A");
    read_until(&mut ws, &mut log, |l| {
        count(l, mux, Op::UNBLOCK_SRV_MUX) >= 1
    })
    .await;
    // A stream ping (within one interval on paused time), answered like Go: the ping back.
    read_until(&mut ws, &mut log, |l| count(l, mux, Op::PING) >= 1).await;
    let ping = log.iter().find(|m| m.op == Op::PING).unwrap().clone();
    let mut pong = BytesMut::new();
    PongMsg::default().encode(&mut pong).unwrap();
    send_h(
        &mut ws,
        Op::PONG,
        mux,
        ping.seq,
        ping.handler,
        Flags::NONE,
        Some(&pong),
    )
    .await;
    st.close_send();
    read_until(&mut ws, &mut log, |l| {
        count(l, mux, Op::MUX_CLIENT_MSG) >= 2
    })
    .await;
    st.cancel();
    read_until(&mut ws, &mut log, |l| {
        count(l, mux, Op::DISCONNECT_SERVER_MUX) >= 1
    })
    .await;
    log.extend(quiet_for(&mut ws, Duration::from_millis(100)).await);
    let log: Vec<Got> = log.into_iter().filter(|m| m.mux == mux).collect();
    // Pings come every interval; the rest in this order (with EOF on the input's end).
    let no_pings: Vec<(Op, bool)> = log
        .iter()
        .filter(|m| m.op != Op::PING)
        .map(|m| (m.op, m.flags.contains(Flags::EOF)))
        .collect();
    assert_eq!(
        no_pings,
        [
            (Op::CONNECT_MUX, false),
            (Op::MUX_CLIENT_MSG, false),
            (Op::UNBLOCK_SRV_MUX, false),
            (Op::MUX_CLIENT_MSG, true),
            (Op::DISCONNECT_SERVER_MUX, false),
        ],
        "{log:?}"
    );
    assert!(
        log.iter().any(|m| m.op == Op::PING),
        "no stream ping: {log:?}"
    );
    assert_eq!(
        log[0].handler,
        HandlerId::TEST,
        "the open names the handler"
    );
    for m in &log[1..] {
        assert_eq!(m.handler, none, "{m:?}");
    }
    let seqs: Vec<u32> = log.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (0..u32::try_from(log.len()).unwrap()).collect::<Vec<u32>>(),
        "{log:?}"
    );
    assert!(bounded(st.next()).await.is_none_or(|r| r.is_err()));
    healthy(&n, &mut ws, 100).await;
    n.manager.shutdown().await;
}

const STREAMS: u64 = 32;
const MESSAGES: u8 = 8;
const SIZE: usize = 8 << 10;
/// Output credits of the load test's handler: half its messages, so it also waits for the
/// caller's credits.
const OUT_CAP: usize = 4;

/// Many served streams whose output waits behind a socket the peer does not read, then
/// `pings` pings for each. Then the peer reads everything, returning a credit for each
/// message like a Go caller: every mux's messages are in Seq order (consecutive from the
/// ack's 0, payloads in send order, the EOF last, then the disconnect) and its pongs echo
/// its pings' Seqs, in ping order.
async fn load_then_ping(pings: u32) {
    let n = mem_node(Options::default(), move |m: &Manager| {
        m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
            .unwrap();
        m.register_stream(
            HandlerId::TEST,
            None,
            RawStreamHandler::new(0, OUT_CAP, move |_, _, _, out: StreamOut| async move {
                for i in 0..MESSAGES {
                    out.send(vec![i; SIZE])
                        .await
                        .map_err(|e| RemoteError::new(e.to_string()))?;
                }
                Ok(())
            }),
        )
        .unwrap();
    })
    .await;
    let mut ws = connected_peer(&n).await;
    let conn = n.manager.connection(&n.peer).unwrap();
    let none = HandlerId(0);
    for mux in 1..=STREAMS {
        send_h(
            &mut ws,
            Op::CONNECT_MUX,
            mux,
            0,
            HandlerId::TEST,
            Flags::NONE,
            Some(b"go"),
        )
        .await;
    }
    // On paused time this returns once every task is idle: the handlers have sent what
    // their credits allow, and the output waits behind the unread socket.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let total = STREAMS * u64::from(MESSAGES) * SIZE as u64;
    let before = conn.stats();
    assert!(before.outgoing_bytes < total / 4, "{before:?}");
    assert_eq!(before.incoming_muxes, STREAMS as usize, "{before:?}");
    for ping in 1..=pings {
        for mux in 1..=STREAMS {
            send_h(&mut ws, Op::PING, mux, ping, none, Flags::NONE, Some(b"")).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = conn.stats();
    assert_eq!(
        after.incoming_messages,
        before.incoming_messages + u64::from(pings) * STREAMS,
        "the node read the pings: {after:?}"
    );
    assert!(
        after.outgoing_bytes < total / 4,
        "the output still waits: {after:?}"
    );

    // Read everything, returning a credit for each message (Seqs after the pings).
    let mut log: Vec<Got> = Vec::new();
    let mut next_seq: BTreeMap<u64, u32> = (1..=STREAMS).map(|m| (m, pings + 1)).collect();
    let want_pongs = pings as usize;
    // Until every stream has ended; pongs not in by then come in the quiet window below.
    let all_done =
        |l: &[Got]| (1..=STREAMS).all(|mux| count(l, mux, Op::DISCONNECT_CLIENT_MUX) >= 1);
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !all_done(&log) {
            let msgs = recv_msgs(&mut ws).await.expect("socket closed");
            for m in msgs.into_iter().filter(|m| m.mux != 0) {
                if m.op == Op::MUX_SERVER_MSG && !m.flags.contains(Flags::EOF) {
                    let seq = next_seq.get_mut(&m.mux).unwrap();
                    send_h(
                        &mut ws,
                        Op::UNBLOCK_SRV_MUX,
                        m.mux,
                        *seq,
                        none,
                        Flags::NONE,
                        None,
                    )
                    .await;
                    *seq += 1;
                }
                log.push(m);
            }
        }
    })
    .await;
    if read.is_err() {
        panic!("hung; received by mux: {:?}", summary(&log));
    }
    log.extend(quiet_for(&mut ws, Duration::from_millis(100)).await);
    let mut per_mux: BTreeMap<u64, Vec<&Got>> = BTreeMap::new();
    for m in &log {
        per_mux.entry(m.mux).or_default().push(m);
    }
    assert_eq!(
        per_mux.keys().copied().collect::<Vec<u64>>(),
        (1..=STREAMS).collect::<Vec<u64>>()
    );
    for (mux, msgs) in &per_mux {
        // Seq order: the ack, the messages, the EOF; consecutive from 0.
        let checked: Vec<(Op, u32)> = msgs
            .iter()
            .filter(|m| seq_checked_by_caller(m.op))
            .map(|m| (m.op, m.seq))
            .collect();
        let mut want = vec![(Op::ACK_MUX, 0)];
        want.extend((1..=u32::from(MESSAGES) + 1).map(|s| (Op::MUX_SERVER_MSG, s)));
        assert_eq!(checked, want, "mux {mux}");
        let payloads: Vec<Option<u8>> = msgs
            .iter()
            .filter(|m| m.op == Op::MUX_SERVER_MSG)
            .map(|m| {
                let p = m.payload.as_deref().unwrap_or_default();
                assert!(p.is_empty() || p.len() == SIZE, "mux {mux}");
                p.first().copied()
            })
            .collect();
        let mut want: Vec<Option<u8>> = (0..MESSAGES).map(Some).collect();
        want.push(None);
        assert_eq!(payloads, want, "mux {mux}");
        // The EOF is the last server message; after the disconnect, at most pongs.
        let eof = msgs
            .iter()
            .position(|m| m.flags.contains(Flags::EOF))
            .unwrap();
        let disc = msgs
            .iter()
            .position(|m| m.op == Op::DISCONNECT_CLIENT_MUX)
            .unwrap();
        assert!(eof < disc, "mux {mux}: {msgs:?}");
        assert!(
            msgs[disc + 1..].iter().all(|m| m.op == Op::PONG),
            "mux {mux}: {msgs:?}"
        );
        // Each pong echoes its ping's Seq, in ping order; the stream was still served.
        let pongs: Vec<u32> = msgs
            .iter()
            .filter(|m| m.op == Op::PONG)
            .map(|m| m.seq)
            .collect();
        assert_eq!(pongs, (1..=pings).collect::<Vec<u32>>(), "mux {mux}");
        for p in msgs.iter().filter(|m| m.op == Op::PONG) {
            let pong = PongMsg::decode(p.payload.as_deref().unwrap_or_default()).unwrap();
            assert!(!pong.not_found && pong.err.is_none(), "mux {mux}: {pong:?}");
        }
        assert_eq!(
            msgs.len(),
            usize::from(MESSAGES) + 3 + want_pongs,
            "mux {mux}: ack, messages, EOF, disconnect, pongs: {msgs:?}"
        );
    }
    healthy(&n, &mut ws, 1000).await;
    n.manager.shutdown().await;
}

/// Item 3 of issue 14.5: one ping per stream while its output waits.
#[tokio::test(start_paused = true)]
async fn under_load_each_mux_stays_in_sequence_and_its_pong_echoes_the_ping() {
    load_then_ping(1).await;
}

/// Two pings per stream while its output waits: Go answers every ping (`handlePing` queues
/// one pong per ping, spec §3.12, §15.1), so the caller gets two pongs, Seq 1 then Seq 2.
///
/// FAILS against the library as of this commit (kept on purpose, issue 14.5): a served
/// stream owes at most one pong (`ServerStream::owe_pong` in rgrid-proto's conn core), so a
/// second ping that arrives before the first pong is written replaces it, and only the pong
/// for Seq 2 is sent (`left: [2], right: [1, 2]`).
#[tokio::test(start_paused = true)]
async fn under_load_every_stream_ping_gets_its_own_pong() {
    load_then_ping(2).await;
}
