//! A hostile but authenticated peer, played from scripts (`common::hostile`): text frames,
//! oversized frames, ping floods, silence after the upgrade, floods of opens beyond the mux
//! limit, requests sent by a peer that never reads its answers, and rapid open-and-cancel.
//! Each attack costs the attacker its stream or its connection, never the node: the node keeps
//! serving and accepts the peer again. Credit abuse, sequence gaps, duplicate mux ids and
//! messages for unknown muxes, in both directions, are in `stream_wire.rs` (same raw peer).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bounded;
use common::hostile::{Msg, Step, accepts_again, echo_node, play};
use common::raw::{self, connected_peer};
use rgrid::proto::{Flags, HandlerId, Op};
use rgrid::transport::ConnDialer;
use rgrid::{DEFAULT_ROUTE_PATH, Options, StaticToken, connect_ws};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frames_are_ignored() {
    let (node, _) = echo_node(Options::default()).await;
    let mut ws = connected_peer(&node).await;
    let mut script = vec![Step::Text("not the protocol".into()); 100];
    script.push(Step::ExpectAlive);
    play(&mut ws, &script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_connection() {
    let opts = Options {
        max_message_size: 64 * 1024,
        ..Options::default()
    };
    let frame_limit = 64 * 1024 + rgrid::FRAME_SLACK;
    let (node, _) = echo_node(opts).await;
    let mut ws = connected_peer(&node).await;
    play(
        &mut ws,
        &[
            Step::ExpectAlive,
            Step::Raw(vec![0x97; frame_limit + 1]),
            Step::ExpectClosed,
        ],
    )
    .await;
    accepts_again(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_closes_the_connection() {
    let (node, _) = echo_node(Options::default()).await;
    let mut ws = connected_peer(&node).await;
    let limit = Options::default().max_pings_per_interval as usize;
    play(
        &mut ws,
        &[
            Step::Flood(limit * 10, |_| Msg::conn_ping()),
            Step::ExpectClosed,
        ],
    )
    .await;
    accepts_again(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_after_the_upgrade_is_cut_by_the_handshake_timeout() {
    let opts = Options {
        handshake_timeout: Duration::from_millis(500),
        ..Options::default()
    };
    let (node, _) = echo_node(opts).await;
    let dialer = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new(raw::TOKEN)));
    let mut ws = bounded(dialer.dial(&node.host)).await.unwrap();
    let started = Instant::now();
    // No connect message: the node answers with a refusal naming the timeout, then closes.
    let frame = bounded(raw::recv_frame(&mut ws)).await;
    if let Some(frame) = frame {
        let msg = rgrid::proto::Message::decode(&frame, &Default::default()).unwrap();
        let resp = rgrid::proto::ConnectResponse::decode(msg.payload_bytes()).unwrap();
        assert!(!resp.accepted);
        assert!(resp.rejected_reason.contains("timed out"), "{resp:?}");
    }
    play(&mut ws, &[Step::ExpectClosed]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    accepts_again(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_beyond_the_mux_limit_are_refused_and_the_connection_lives() {
    const MAX: usize = 10;
    let opts = Options {
        max_incoming_muxes: MAX,
        ..Options::default()
    };
    let (node, mut events) = echo_node(opts).await;
    let mut ws = connected_peer(&node).await;
    // 100 opens of a stream that never ends: 10 are served, 90 refused.
    let pending = play(
        &mut ws,
        &[
            Step::Flood(100, |k| {
                Msg {
                    flags: Flags::CRC | Flags::EOF,
                    ..Msg::new(Op::CONNECT_MUX, k as u64 + 1, 0)
                }
                .handler(HandlerId::TEST2)
            }),
            Step::Sleep(Duration::from_millis(300)),
        ],
    )
    .await;
    let mut got = pending;
    got.extend(raw::quiet_for(&mut ws, Duration::from_millis(300)).await);
    let acks = got.iter().filter(|m| m.op == Op::ACK_MUX).count();
    let refused: Vec<_> = got
        .iter()
        .filter(|m| m.op == Op::MUX_CONNECT_ERROR)
        .collect();
    assert_eq!(acks, MAX);
    assert_eq!(refused.len(), 100 - MAX);
    assert!(refused.iter().all(|m| m.text().contains("limit 10")));
    let conn = node.manager.connection(&node.peer).unwrap();
    assert_eq!(conn.stats().incoming_muxes, MAX);
    // Cancelling them frees the slots (once their handlers have wound down, which happens
    // in their own tasks); the connection lived through it.
    let script: Vec<Step> = (1..=MAX as u64)
        .map(|mux| Step::Send(Msg::new(Op::DISCONNECT_SERVER_MUX, mux, 1)))
        .collect();
    play(&mut ws, &script).await;
    bounded(async {
        while conn.stats().incoming_muxes != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    play(&mut ws, &[Step::ExpectAlive]).await;
    let mut started = 0;
    while let Ok(e) = events.try_recv() {
        started += usize::from(e == "started");
    }
    assert_eq!(started, MAX, "refused opens never reach the handler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_its_answers_is_disconnected() {
    let opts = Options {
        out_queue: 16,
        max_pending_replies: 32,
        write_timeout: Duration::from_secs(30),
        ..Options::default()
    };
    let (node, _) = echo_node(opts).await;
    let conn = node.manager.connection(&node.peer).unwrap();
    let mut ws = connected_peer(&node).await;
    let started = Instant::now();
    // 64 MiB of requests whose answers the peer never reads: the node's socket buffers, then
    // its queue, then its pending-reply allowance fill up, and it hangs up.
    play(
        &mut ws,
        &[Step::Flood(1024, |k| {
            Msg::request(k as u64 + 1, &[7u8; 64 * 1024])
        })],
    )
    .await;
    bounded(async {
        while conn.stats().connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The node hung up at once (not after its 30 s write timeout): the flood's writes failed.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(ws);
    accepts_again(&node).await;
}
