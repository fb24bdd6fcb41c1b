//! Helpers shared by the integration tests: bounded waits, two-node grids, the no-open-mux
//! check, and a raw protocol peer.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod heap;
pub mod hostile;
pub mod raw;

use std::time::Duration;

use rgrid::test_util::LocalGrid;
use rgrid::{HandlerId, Manager, Options, RawStreamHandler, StreamIn, StreamOut};
use tokio::sync::mpsc;

/// Log output captured in memory: the writer of a `tracing_subscriber::fmt` subscriber.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Awaits `f` for at most 10 s, so a hang fails the test instead of blocking CI.
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("hung")
}

/// Polls `cond` every 5 ms until it holds, for at most 10 s (of virtual time on paused
/// time); panics naming `what` if it never does. For conditions that become true
/// asynchronously (cleanup after a cancel, a counter catching up): never sleep and then
/// assert.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after 10 s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Builds `builder`'s manager, registers `HandlerId::TEST` answering with the node's own
/// host name, serves it on `listener` and starts it (a real node on loopback).
pub fn start_named_node(
    builder: rgrid::ManagerBuilder,
    listener: tokio::net::TcpListener,
) -> Manager {
    let m = builder.build().unwrap();
    let me = m.host().to_owned();
    m.register_single(HandlerId::TEST, move |_: bytes::Bytes| {
        let me = me.clone();
        async move { Ok(bytes::Bytes::from(me)) }
    })
    .unwrap();
    tokio::spawn(rgrid::serve(listener, m.clone()));
    m.start();
    m
}

/// A connected two-node grid with `options`; `register` adds handlers to each node.
pub async fn grid_with(options: Options, register: impl Fn(usize, &Manager)) -> LocalGrid {
    bounded(LocalGrid::start_with(2, options, register))
        .await
        .unwrap()
}

/// Awaits `f` for at most `limit` (on paused time, a hang fails as soon as every task idles).
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.expect("hung")
}

/// A connected two-node grid over in-memory pipes, for tests on paused time.
pub async fn mem_grid_with(options: Options, register: impl Fn(usize, &Manager)) -> LocalGrid {
    bounded(LocalGrid::start_in_memory(2, options, register))
        .await
        .unwrap()
}

/// MinIO's assertNoActive, both directions of a two-node grid: no incoming or outgoing mux
/// left (retries for about a second, as cleanup is asynchronous).
pub async fn assert_no_active(g: &LocalGrid) {
    for _ in 0..100 {
        let busy = [(0, 1), (1, 0)].iter().any(|&(a, b)| {
            let s = g.conn(a, b).stats();
            s.incoming_muxes != 0 || s.outgoing_muxes != 0
        });
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "muxes left open: 0->1 {:?}, 1->0 {:?}",
        g.conn(0, 1).stats(),
        g.conn(1, 0).stats()
    );
}

/// Sends "dropped" when dropped: a handler's future is dropped when its call is cancelled.
pub struct DropSignal(pub Option<mpsc::UnboundedSender<&'static str>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send("dropped");
        }
    }
}

/// Registers on `HandlerId::TEST` a stream handler (in and out capacity 1) that echoes each
/// input message.
pub fn register_echo_stream(m: &Manager) {
    register_echo_stream_on(m, HandlerId::TEST);
}

/// Registers on `id` a stream handler (in and out capacity 1) that echoes each input message.
pub fn register_echo_stream_on(m: &Manager, id: HandlerId) {
    m.register_stream(id, None, echo_stream(1, 1)).unwrap();
}

/// A stream handler with the given capacities that echoes each input message.
pub fn echo_stream(in_cap: usize, out_cap: usize) -> RawStreamHandler {
    RawStreamHandler::new(
        in_cap,
        out_cap,
        |_, _, input: Option<StreamIn>, out: StreamOut| async move {
            let mut input = input.unwrap();
            while let Some(msg) = input.recv().await {
                out.send(msg).await?;
            }
            Ok(())
        },
    )
}

pub use rgrid::test_util::{TestRequest, TestResponse};

/// Payloads no decoder may trust: an invalid marker, a str32 and a bin32 declaring 4 GiB
/// inside a `testRequest`, an array declaring 4 billion elements, and nesting 100,000 deep.
pub const HOSTILE_PAYLOADS: [&[u8]; 5] = [
    b"\xc1",
    b"\x82\xa3Num\x01\xa6String\xdb\xff\xff\xff\xff",
    b"\x82\xa3Num\x01\xa6String\xc6\xff\xff\xff\xff",
    b"\xdd\xff\xff\xff\xff\x01",
    &[0x91; 100_000],
];

/// A stream handler that sends "started", never reads or writes, and sends "dropped" when
/// its future is dropped (cancelled).
pub fn waiting_stream(in_cap: usize, tx: mpsc::UnboundedSender<&'static str>) -> RawStreamHandler {
    RawStreamHandler::new(in_cap, 1, move |ctx: rgrid::HandlerCtx, _, _, _| {
        let tx = tx.clone();
        async move {
            let _guard = DropSignal(Some(tx.clone()));
            let _ = tx.send("started");
            ctx.cancelled().await;
            Ok(())
        }
    })
}
