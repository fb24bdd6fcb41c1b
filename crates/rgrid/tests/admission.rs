//! Admission that cannot be starved (issue 17, item 1): while a slowloris (hundreds of idle
//! TCP connections, refilled as the node drops them) and a garbage flood run against a node
//! from other addresses, a peer that restarts reconnects within a dial attempt or two and
//! calls flow. Before the per-address limit and eviction, the flood held every pre-auth slot
//! and the restarted peer stayed out until it stopped.
//!
//! Real sockets on loopback: the floods come from 127.0.0.2 and 127.0.0.3 (Linux routes all
//! of 127/8 to loopback; where binding them fails the test says so and stops).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::bounded;
use rgrid::{HandlerId, Manager, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const IDLE: usize = 300;

async fn connect_from(src: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{src}:0").parse().unwrap())?;
    s.connect(to).await
}

fn node(local: &str, hosts: &[String], options: Options) -> Manager {
    let m = Manager::builder(local, hosts.iter().cloned())
        .options(options)
        .token("t")
        .build()
        .unwrap();
    m.register_single(HandlerId::TEST, |p: Bytes| async move { Ok(p) })
        .unwrap();
    m.start();
    m
}

/// `IDLE` idle connections from `src`, each reopened as soon as the node drops it; counts
/// the drops.
fn slowloris(src: &'static str, to: SocketAddr, stop: Arc<AtomicBool>, drops: Arc<AtomicU64>) {
    for _ in 0..IDLE {
        let (stop, drops) = (stop.clone(), drops.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = connect_from(src, to).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let mut buf = [0u8; 64];
                // Say nothing; wait until the node closes the socket (or the test ends).
                let closed = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await;
                if matches!(closed, Ok(Ok(0) | Err(_))) {
                    drops.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Connections from `src` that send garbage in a loop.
fn garbage(src: &'static str, to: SocketAddr, stop: Arc<AtomicBool>) {
    for _ in 0..4 {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut s) = connect_from(src, to).await {
                    let _ = s
                        .write_all(b"GET /minio/grid/v1 HTTP/1.1\r\nxx\r\n\r\n\x00\xff")
                        .await;
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), s.read(&mut [0; 64])).await;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_gets_in_during_a_slowloris() {
    if TcpSocket::new_v4()
        .and_then(|s| s.bind("127.0.0.2:0".parse().unwrap()))
        .is_err()
    {
        eprintln!("NOT RUN: this platform cannot bind 127.0.0.2 (Linux routes 127/8 to loopback)");
        return;
    }
    let mut listeners = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        hosts.push(format!("http://{}", l.local_addr().unwrap()));
        listeners.push(l);
    }
    let options = Options {
        handshake_timeout: Duration::from_secs(10),
        ..Options::default()
    };
    let a = node(&hosts[0], &hosts, options.clone());
    let b = node(&hosts[1], &hosts, options.clone());
    // Whoever accepts is flooded; whoever dials restarts.
    let (acceptor, acc_host, dialer_host) = if a.connection(&hosts[1]).unwrap().dials() {
        (b.clone(), 1, 0)
    } else {
        (a.clone(), 0, 1)
    };
    let mut ls = listeners.into_iter();
    let (l0, l1) = (ls.next().unwrap(), ls.next().unwrap());
    let target = if acc_host == 0 {
        l0.local_addr().unwrap()
    } else {
        l1.local_addr().unwrap()
    };
    tokio::spawn(rgrid::serve(l0, a.clone()));
    tokio::spawn(rgrid::serve(l1, b.clone()));
    for m in [&a, &b] {
        bounded(m.wait_for_peers(Duration::from_secs(10)))
            .await
            .unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicU64::new(0));
    slowloris("127.0.0.2", target, stop.clone(), drops.clone());
    garbage("127.0.0.3", target, stop.clone());
    // The flood is on: the node is dropping the slowloris' surplus.
    common::eventually("the node sheds the flood", || {
        drops.load(Ordering::Relaxed) > 100
    })
    .await;

    // The dialing peer restarts.
    let old = if dialer_host == 0 { a } else { b };
    bounded(old.shutdown()).await;
    let started = Instant::now();
    let again = node(&hosts[dialer_host], &hosts, options.clone());
    // It gets in within a couple of dial attempts (1–2 s apart), not after the flood.
    bounded(again.wait_for_peers(Duration::from_secs(8)))
        .await
        .unwrap_or_else(|e| panic!("the restarted peer stayed out during the flood: {e}"));
    let took = started.elapsed();
    eprintln!(
        "restarted peer reconnected after {took:?}; the node dropped {} flood connections",
        drops.load(Ordering::Relaxed)
    );
    // Calls flow both ways while the flood goes on.
    for (from, to) in [(&again, &hosts[acc_host]), (&acceptor, &hosts[dialer_host])] {
        for i in 0..100u32 {
            let conn = from.connection(to).unwrap();
            let got = bounded(conn.request(HandlerId::TEST, i.to_string()))
                .await
                .unwrap();
            assert_eq!(got, Bytes::from(i.to_string()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    bounded(again.shutdown()).await;
    bounded(acceptor.shutdown()).await;
}
