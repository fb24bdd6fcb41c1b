//! Dead-peer detection meets the contract bound `2 × ping_interval + write_timeout`
//! (reliability guide §2.7, C5), on paused time over in-memory pipes.
//!
//! Found by the fault simulation (`tests/sim.rs`): when the pong age was only judged on the
//! writer's ping tick, a peer that fell silent just after a pong was dropped only on the third
//! tick, up to `3 × ping_interval` later, whatever the write timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{mem_grid_with, within};
use rgrid::{Options, State};

#[tokio::test(start_paused = true)]
async fn silence_right_after_a_pong_is_detected_within_the_bound() {
    let ping = Duration::from_secs(1);
    let options = Options {
        ping_interval: ping,
        dead_after: ping * 2,
        write_timeout: Duration::from_millis(400),
        ..Options::default()
    };
    let bound = 2 * options.ping_interval + options.write_timeout;
    let g = mem_grid_with(options, |_, _| {}).await;
    let conn = g.conn(0, 1);
    // Let a few ping/pong rounds pass, then fall silent just after a pong arrived: node 0 stops
    // reading (pongs stay unread) 10 ms after its ping tick.
    tokio::time::sleep(3 * ping + Duration::from_millis(10)).await;
    assert_eq!(conn.state(), State::Connected);
    let before = conn.stats().reconnects;
    let t0 = tokio::time::Instant::now();
    let block = conn.block_inbound();
    within(Duration::from_secs(30), async {
        while conn.state() == State::Connected && conn.stats().reconnects == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let detected = t0.elapsed();
    drop(block);
    assert!(
        detected <= bound,
        "silent peer detected after {detected:?}, bound 2 × ping + write timeout = {bound:?}"
    );
    g.shutdown().await;
}
