//! A hostile but authenticated peer, played from scripts (`common::hostile`): text frames,
//! oversized frames, ping floods, silence after the upgrade, floods of opens beyond the mux
//! limit, requests sent by a peer that never reads its answers, and rapid open-and-cancel.
//! Each attack costs the attacker its stream or its connection, never the node: the node keeps
//! serving and accepts the peer again. Credit abuse, sequence gaps, duplicate mux ids and
//! messages for unknown muxes, in both directions, are in `stream_wire.rs` (same raw peer).
//!
//! Every script runs against an in-memory node (through the production accept path) on paused
//! time: "closed at once", "nothing more within 1 s" and "refused after exactly the handshake
//! timeout" are exact, not guesses about a loaded machine. Time only moves when every task is
//! idle, so a window of 1 ms means "without waiting for any timer", and every timer the node
//! has in these tests is at least 500 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::bounded;
use common::hostile::{Msg, Step, accepts_again, mem_echo_node, play};
use common::raw::{self, Got, assert_no_active, connected_peer};
use rgrid::Options;
use rgrid::proto::{
    ConnectResponse, DecodeLimits, Flags, HandlerId, Message, Op, put_merged_entry,
    put_merged_header,
};
use tokio::time::Instant;

/// "At once": a close or an answer that needs no timer (on paused time, the clock only
/// reaches 1 ms once every task waits for one).
const AT_ONCE: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn text_frames_are_ignored() {
    let (node, _) = mem_echo_node(Options::default()).await;
    let mut ws = connected_peer(&node).await;
    let mut script = vec![Step::Text("not the protocol".into()); 100];
    script.push(Step::ExpectAlive);
    script.push(Step::Quiet(Duration::from_secs(1)));
    play(&mut ws, &script).await;
    assert_no_active(&node).await;
}

/// A merged frame of exactly `len` bytes (about 120 KiB or more) holding three echo requests,
/// on muxes `mux`, `mux + 1` and `mux + 2`, each well below 64 KiB.
fn merged_requests(len: usize, mux: u64) -> Vec<u8> {
    let build = |last: usize| {
        let mut frame = Vec::new();
        put_merged_header(&mut frame, 3);
        for (i, n) in [60_000, 60_000, last].into_iter().enumerate() {
            let m = Msg::request(mux + i as u64, &vec![b'x'; n]).encode();
            put_merged_entry(&mut frame, &m).unwrap();
        }
        frame
    };
    // From 256 to 65,535 bytes of payload the length headers keep their size, so the frame
    // grows byte for byte with the last payload.
    let frame = build(256 + len - build(256).len());
    assert_eq!(frame.len(), len);
    frame
}

#[tokio::test(start_paused = true)]
async fn an_oversized_frame_closes_only_that_connection() {
    let opts = Options {
        max_message_size: 64 * 1024,
        ..Options::default()
    };
    let frame_limit = 64 * 1024 + rgrid::FRAME_SLACK;
    let (node, _) = mem_echo_node(opts).await;
    let mut ws = connected_peer(&node).await;
    play(
        &mut ws,
        &[
            Step::ExpectAlive,
            // The largest frame allowed is served ...
            Step::Raw(merged_requests(frame_limit, 10)),
            Step::Expect(Op::RESPONSE, 10),
            Step::Expect(Op::RESPONSE, 11),
            Step::Expect(Op::RESPONSE, 12),
            // ... one byte more closes the connection at once.
            Step::Raw(merged_requests(frame_limit + 1, 20)),
            Step::ExpectClosedWithin(AT_ONCE),
        ],
    )
    .await;
    accepts_again(&node).await;
    assert_no_active(&node).await;
}

#[tokio::test(start_paused = true)]
async fn a_ping_flood_closes_the_connection() {
    let (node, _) = mem_echo_node(Options::default()).await;
    let mut ws = connected_peer(&node).await;
    let limit = Options::default().max_pings_per_interval as usize;
    // All within one ping interval (no time passes while the flood is sent).
    play(
        &mut ws,
        &[
            Step::Flood(limit * 10, |_| Msg::conn_ping()),
            Step::ExpectClosedWithin(AT_ONCE),
        ],
    )
    .await;
    accepts_again(&node).await;
    assert_no_active(&node).await;
}

#[tokio::test(start_paused = true)]
async fn silence_after_the_upgrade_is_cut_by_the_handshake_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let opts = Options {
        handshake_timeout: TIMEOUT,
        ..Options::default()
    };
    let (node, _) = mem_echo_node(opts).await;
    let started = Instant::now();
    let mut ws = raw::dial(&node).await;
    // No connect message: nothing for as long as the timeout runs, then a refusal naming it,
    // then the close.
    let early = tokio::time::timeout(TIMEOUT - AT_ONCE, raw::recv_frame(&mut ws)).await;
    assert!(early.is_err(), "answered before the timeout: {early:?}");
    let frame = bounded(raw::recv_frame(&mut ws))
        .await
        .expect("a refusal before the close");
    let took = started.elapsed();
    assert!(
        (TIMEOUT..TIMEOUT + AT_ONCE).contains(&took),
        "refused after {took:?}"
    );
    let msg = Message::decode(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!(msg.op, Op::CONNECT_RESPONSE);
    let resp = ConnectResponse::decode(msg.payload_bytes()).unwrap();
    assert!(!resp.accepted);
    assert!(resp.rejected_reason.contains("timed out"), "{resp:?}");
    play(&mut ws, &[Step::ExpectClosedWithin(AT_ONCE)]).await;
    accepts_again(&node).await;
    assert_no_active(&node).await;
}

#[tokio::test(start_paused = true)]
async fn opens_beyond_the_mux_limit_are_refused_and_the_connection_lives() {
    const MAX: usize = 10;
    const OPENS: u64 = 100;
    let opts = Options {
        max_incoming_muxes: MAX,
        ..Options::default()
    };
    let (node, mut events) = mem_echo_node(opts).await;
    let mut ws = connected_peer(&node).await;
    // 100 opens of a stream that never ends: 10 are served, 90 refused.
    let pending = play(
        &mut ws,
        &[Step::Flood(OPENS as usize, |k| {
            Msg {
                flags: Flags::CRC | Flags::EOF,
                ..Msg::new(Op::CONNECT_MUX, k as u64 + 1, 0)
            }
            .handler(HandlerId::TEST2)
        })],
    )
    .await;
    assert!(pending.is_empty(), "{pending:?}");
    // Every open gets exactly one answer, and nothing follows them.
    let mut answers: BTreeMap<u64, Got> = BTreeMap::new();
    bounded(async {
        while answers.len() < OPENS as usize {
            for m in raw::recv_msgs(&mut ws).await.expect("socket closed") {
                if m.mux != 0 {
                    let mux = m.mux;
                    if let Some(old) = answers.insert(mux, m) {
                        panic!("two answers for mux {mux}: {old:?}, {:?}", answers[&mux]);
                    }
                }
            }
        }
    })
    .await;
    play(&mut ws, &[Step::Quiet(Duration::from_secs(1))]).await;
    assert!(
        answers.keys().copied().eq(1..=OPENS),
        "{:?}",
        answers.keys()
    );
    let acked: Vec<u64> = answers
        .values()
        .filter(|m| m.op == Op::ACK_MUX)
        .map(|m| m.mux)
        .collect();
    assert_eq!(
        acked,
        (1..=MAX as u64).collect::<Vec<_>>(),
        "the first opens are served"
    );
    for m in answers.values().filter(|m| m.op != Op::ACK_MUX) {
        assert_eq!(m.op, Op::MUX_CONNECT_ERROR, "{m:?}");
        assert!(m.text().contains("limit 10"), "{m:?}");
    }
    let conn = node.manager.connection(&node.peer).unwrap();
    assert_eq!(conn.stats().incoming_muxes, MAX);
    for _ in 0..MAX {
        assert_eq!(bounded(events.recv()).await, Some("started"));
    }
    // Cancelling them frees the slots (once their handlers have wound down, which happens
    // in their own tasks); the connection lived through it.
    let script: Vec<Step> = (1..=MAX as u64)
        .map(|mux| Step::Send(Msg::new(Op::DISCONNECT_SERVER_MUX, mux, 1)))
        .collect();
    play(&mut ws, &script).await;
    for _ in 0..MAX {
        assert_eq!(bounded(events.recv()).await, Some("dropped"));
    }
    assert_no_active(&node).await;
    play(&mut ws, &[Step::ExpectAlive]).await;
    assert!(
        events.try_recv().is_err(),
        "refused opens never reach the handler"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_its_answers_is_disconnected() {
    let opts = Options {
        out_queue: 16,
        max_pending_replies: 32,
        write_timeout: Duration::from_secs(30),
        ..Options::default()
    };
    let (node, _) = mem_echo_node(opts).await;
    let conn = node.manager.connection(&node.peer).unwrap();
    let mut ws = connected_peer(&node).await;
    let started = Instant::now();
    // 64 MiB of requests whose answers the peer never reads: the pipe to the peer, then the
    // node's queue, then its pending-reply allowance fill up, and it hangs up.
    play(
        &mut ws,
        &[Step::Flood(1024, |k| {
            Msg::request(k as u64 + 1, &[7u8; 64 * 1024])
        })],
    )
    .await;
    bounded(async {
        while conn.stats().connected {
            tokio::time::sleep(AT_ONCE).await;
        }
    })
    .await;
    // The node hung up at once: not after its 30 s write timeout, nor after its 10 s ping
    // interval (on paused time, reaching either would have taken that long).
    let took = started.elapsed();
    assert!(took <= AT_ONCE, "took {took:?}");
    drop(ws);
    accepts_again(&node).await;
    assert_no_active(&node).await;
}
