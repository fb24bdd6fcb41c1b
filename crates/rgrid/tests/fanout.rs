//! Fan-out and quorum (issue 15, item 3): a named method called on every host, this node
//! included without a socket, answers yielded as they arrive; a quorum returns as soon as a
//! majority answered, even with a peer that never does, and fails as soon as it cannot be
//! reached, naming every failure. Three nodes in memory on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::bounded;
use futures_util::StreamExt;
use rgrid::test_util::LocalGrid;
use rgrid::tokio_util::sync::CancellationToken;
use rgrid::typed::{Service, ServiceMethod};
use rgrid::{Error, HandlerCtx, Manager, Options, RemoteError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

const LOCKS: Service = Service::new("locks");
/// Node 2 never answers it (a hung peer, its connection up).
static LOCK: ServiceMethod<String, String> = LOCKS.method("lock");
/// Nodes 1 and 2 refuse it.
static STRICT: ServiceMethod<String, String> = LOCKS.method("strict");

/// What node 2's hung handler saw of each request: its payload, its context's token, and
/// whether the handler (its future) was dropped.
static HUNG: Mutex<Vec<(String, CancellationToken, Arc<AtomicBool>)>> = Mutex::new(Vec::new());

/// Sets its flag when the handler holding it is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn register(i: usize, m: &Manager) {
    let me = m.host().to_owned();
    LOCK.register_with_ctx(m, move |ctx: HandlerCtx, r: String| {
        let me = me.clone();
        async move {
            if i == 2 {
                let dropped = Arc::new(AtomicBool::new(false));
                let flag = DropFlag(dropped.clone());
                let token = ctx.cancellation_token().clone();
                HUNG.lock().unwrap().push((r.clone(), token, dropped));
                std::future::pending::<()>().await;
                drop(flag);
            }
            Ok(format!("{me} locked {r}"))
        }
    })
    .unwrap();
    STRICT
        .register(m, move |r: String| async move {
            if i == 0 {
                Ok(r)
            } else {
                Err(RemoteError::new(format!("node {i} refuses")))
            }
        })
        .unwrap();
}

async fn grid() -> LocalGrid {
    let g = bounded(LocalGrid::start_in_memory(3, Options::default(), register))
        .await
        .unwrap();
    bounded(g.wait_all_connected(Duration::from_secs(10)))
        .await
        .unwrap();
    g
}

#[tokio::test(start_paused = true)]
async fn call_all_reaches_every_host_including_this_one() {
    let g = grid().await;
    let m = &g.managers[0];
    let deadline = Duration::from_secs(5);
    let t0 = Instant::now();
    let mut answers = LOCK.call_all(m, &"disk1".to_owned(), deadline);
    let mut ok = BTreeSet::new();
    let mut hung = Vec::new();
    while let Some((host, r)) = bounded(answers.next()).await {
        match r {
            Ok(text) => {
                assert_eq!(text, format!("{host} locked disk1"));
                ok.insert(host);
            }
            Err(e) => hung.push((host, e, t0.elapsed())),
        }
    }
    // This node (without a socket) and node 1 answered; node 2 hit the deadline.
    assert_eq!(ok, BTreeSet::from([g.hosts[0].clone(), g.hosts[1].clone()]));
    assert_eq!(hung.len(), 1);
    assert_eq!(hung[0].0, g.hosts[2]);
    assert_eq!(hung[0].1, Error::DeadlineExceeded);
    assert!(hung[0].2 >= deadline, "{:?}", hung[0].2);

    // The local call alone.
    let r = bounded(LOCK.call_local(m, &"x".to_owned(), deadline)).await;
    assert_eq!(r.unwrap(), format!("{} locked x", g.hosts[0]));
    g.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_quorum_does_not_wait_for_a_hung_peer() {
    let g = grid().await;
    let m = &g.managers[0];
    let deadline = Duration::from_secs(20);
    let t0 = Instant::now();
    let got = bounded(LOCK.quorum(m, &"quorum-disk".to_owned(), 2, deadline))
        .await
        .unwrap();
    // In memory on paused time a round trip takes no virtual time: the quorum returned
    // long before the hung peer's deadline.
    assert!(
        t0.elapsed() < Duration::from_millis(10),
        "{:?}",
        t0.elapsed()
    );
    let hosts: BTreeSet<String> = got.iter().map(|(h, _)| h.clone()).collect();
    assert_eq!(
        hosts,
        BTreeSet::from([g.hosts[0].clone(), g.hosts[1].clone()])
    );
    // The hung call was given up here: no request is left open on node 0's side.
    common::eventually("the hung call is forgotten", || {
        g.conn(0, 2).stats().outgoing_muxes == 0
    })
    .await;
    // ... and its cancel reached node 2: the hung handler's context is cancelled, the
    // handler dropped, the request forgotten there too, all long before the deadline.
    let seen = || {
        let hung = HUNG.lock().unwrap();
        let (_, token, dropped) = hung.iter().find(|(r, _, _)| r == "quorum-disk").unwrap();
        (token.is_cancelled(), dropped.load(Ordering::SeqCst))
    };
    common::eventually("the hung handler sees the cancel", || {
        seen() == (true, true) && g.conn(2, 0).stats().incoming_muxes == 0
    })
    .await;
    assert!(t0.elapsed() < deadline / 2, "{:?}", t0.elapsed());

    // Two of three refuse: the quorum fails at once, naming both.
    let t0 = Instant::now();
    let e = bounded(STRICT.quorum(m, &"x".to_owned(), 2, deadline))
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_millis(10));
    assert_eq!((e.need, e.succeeded, e.failed.len()), (2, 1, 2), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("locks/strict: quorum of 2 not reached (1 succeeded")
            && text.contains("node 1 refuses")
            && text.contains("node 2 refuses"),
        "{text}"
    );
    g.shutdown().await;
}
