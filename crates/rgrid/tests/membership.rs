//! Membership at run time (issue 17, item 3): hosts added to and removed from running
//! managers. A new host connects by the who-dials rule, calls flow both ways, calls between
//! the other nodes never fail meanwhile, and calls to a removed host fail with a clear error.
//! Real sockets on loopback; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{bounded, eventually};
use rgrid::{Error, HandlerId, Manager, State};
use tokio::net::TcpListener;

async fn node(host: &str, hosts: &[&String], l: TcpListener) -> Manager {
    let builder = Manager::builder(host, hosts.iter().map(|h| h.as_str())).token("t");
    common::start_named_node(builder, l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_join_and_leave_a_running_grid_without_losing_calls() {
    let mut ls = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", l.local_addr().unwrap()));
        ls.push(l);
    }
    let (a_url, b_url, c_url) = (&urls[0], &urls[1], &urls[2]);
    let mut ls = ls.into_iter();
    let a = node(a_url, &[a_url, b_url], ls.next().unwrap()).await;
    let b = node(b_url, &[a_url, b_url], ls.next().unwrap()).await;
    // C starts with the whole grid in its list; A and B learn of it at run time.
    let c = node(c_url, &[a_url, b_url, c_url], ls.next().unwrap()).await;
    bounded(a.wait_for_peers(Duration::from_secs(10)))
        .await
        .unwrap();

    // Load between A and B the whole time: not one call may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = tokio::spawn({
        let (a, b_url) = (a.clone(), b_url.clone());
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        async move {
            let conn = a.connection(&b_url).unwrap();
            while !stop.load(Ordering::Relaxed) {
                match conn.request(HandlerId::TEST, "").await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });

    // Join.
    let to_c = a.add_host(c_url).unwrap();
    b.add_host(&c_url.to_uppercase().replace("HTTP", "http"))
        .unwrap();
    assert!(a.remotes().any(|h| h == *c_url));
    for m in [&a, &b, &c] {
        bounded(m.wait_for_peers(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    let got = bounded(to_c.request(HandlerId::TEST, "")).await.unwrap();
    assert_eq!(got, Bytes::from(c_url.clone()));
    let back = c.connection(a_url).unwrap();
    assert_eq!(
        bounded(back.request(HandlerId::TEST, "")).await.unwrap(),
        Bytes::from(a_url.clone())
    );
    // The same host twice, this node, or a malformed URL are refused.
    assert!(matches!(a.add_host(c_url), Err(Error::Config(_))));
    assert!(matches!(a.add_host(a_url), Err(Error::Config(_))));
    assert!(matches!(
        a.add_host("http://x:1/path"),
        Err(Error::Config(_))
    ));

    // Leave: A forgets C.
    a.remove_host(c_url).unwrap();
    assert!(a.connection(c_url).is_none());
    assert!(a.remotes().all(|h| h != *c_url));
    assert_eq!(
        bounded(to_c.request(HandlerId::TEST, "")).await,
        Err(Error::UnknownHost(c_url.clone()))
    );
    assert_eq!(to_c.state(), State::Shutdown);
    // C can no longer reach A (A refuses it, or no longer dials it).
    eventually("C loses A", || back.state() != State::Connected).await;
    assert_eq!(a.remove_host(c_url), Err(Error::UnknownHost(c_url.clone())));
    // B still has C.
    let b_to_c = b.connection(c_url).unwrap();
    assert_eq!(
        bounded(b_to_c.request(HandlerId::TEST, "")).await.unwrap(),
        Bytes::from(c_url.clone())
    );

    // And back again: C rejoins A.
    let to_c = a.add_host(c_url).unwrap();
    bounded(to_c.wait_for_connect()).await.unwrap();
    bounded(to_c.request(HandlerId::TEST, "")).await.unwrap();

    stop.store(true, Ordering::Relaxed);
    bounded(load).await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 0);
    assert_eq!(failed, 0, "{failed} of {} calls A -> B failed", ok + failed);
    for m in [&a, &b, &c] {
        bounded(m.shutdown()).await;
    }
}
