//! A quorum lock service (dsync-style) on a grid of processes: typed `lock`/`unlock`, a
//! majority lock with a deadline, a server stream of lock events, a two-way stream, and the
//! connections' stats in the log. Run one process per node (a 3-node grid on loopback):
//!
//! ```sh
//! H=http://127.0.0.1:9101,http://127.0.0.1:9102,http://127.0.0.1:9103
//! for p in 9101 9102 9103; do
//!   cargo run --example quorum_lock -- http://127.0.0.1:$p $H 50 &
//! done
//! ```
//!
//! Each round locks a resource of this node by majority and frees it; a dead node costs a vote.
#![allow(clippy::print_stdout, clippy::unit_arg)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rgrid::typed::{Service, ServiceMethod, ServiceStream};
use rgrid::{Error, Manager, RemoteError, State};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Lock {
    resource: String,
    owner: String,
}

const LOCKS: Service = Service::new("locks");
// The lock table answers from memory: these may run inline on the reader.
static LOCK: ServiceMethod<Lock, bool> = LOCKS.method("lock").inline();
static UNLOCK: ServiceMethod<Lock, bool> = LOCKS.method("unlock").inline();
/// Lock events (payload: how many), no requests.
static EVENTS: ServiceStream<u32, (), String> = LOCKS.stream("ev").with_in_capacity(0);
/// Two-way: resource names up, "name: holder" down.
static WHO: ServiceStream<(), String, String> = LOCKS.stream("who").with_out_capacity(4);

type Table = Arc<Mutex<HashMap<String, String>>>;
/// When a peer last asked this node for a lock.
static LAST_LOCK: Mutex<Option<Instant>> = Mutex::new(None);

fn rows(t: &Table) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

fn remote(e: Error) -> RemoteError {
    RemoteError::new(e.to_string())
}

fn register(m: &Manager, table: &Table, ev: &broadcast::Sender<String>) -> Result<(), Error> {
    let (t, events) = (table.clone(), ev.clone());
    LOCK.register(m, move |l: Lock| {
        *LAST_LOCK.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let mut t = rows(&t);
        let free = !t.contains_key(&l.resource);
        if free {
            let _ = events.send(format!("{} locked {}", l.owner, l.resource));
            t.insert(l.resource, l.owner);
        }
        std::future::ready(Ok(free))
    })?;
    let t = table.clone();
    UNLOCK.register(m, move |l: Lock| {
        let mut t = rows(&t);
        let held = t.get(&l.resource) == Some(&l.owner);
        if held {
            t.remove(&l.resource);
        }
        std::future::ready(Ok(held))
    })?;
    let ev = ev.clone();
    EVENTS.register_no_input(m, move |_, n: u32, out| {
        let mut rx = ev.subscribe();
        async move {
            for _ in 0..n {
                let Ok(e) = rx.recv().await else { break };
                out.send(&e).await.map_err(remote)?;
            }
            Ok(())
        }
    })?;
    let t = table.clone();
    WHO.register(m, move |_, (), mut names, out| {
        let t = t.clone();
        async move {
            while let Some(name) = names.recv().await {
                let name = name?;
                let holder = rows(&t).get(&name).cloned();
                let line = format!("{name}: {}", holder.as_deref().unwrap_or("free"));
                out.send(&line).await.map_err(remote)?;
            }
            Ok(())
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [local, hosts, rounds] = &args[..] else {
        return Err("usage: quorum_lock LOCAL_URL URL,URL,... ROUNDS".into());
    };
    let rounds: u32 = rounds.parse()?;
    let hosts: Vec<&str> = hosts.split(',').collect();
    let node = Manager::builder(local.as_str(), hosts.iter().copied())
        .jwt_secret("example cluster secret")
        .build()?;
    let table = Table::default();
    let (events, _) = broadcast::channel(64);
    register(&node, &table, &events)?;
    node.serve_local().await?;
    node.start();
    if let Err(down) = node.wait_for_peers(Duration::from_secs(10)).await {
        println!("{}: starting without them: {down}", node.host());
    }

    // Watch a peer's lock events (a server stream) while locking.
    let peer = node.connections().next().ok_or("no peer")?.clone();
    let _watch = tokio::spawn(async move {
        let host = peer.remote().to_owned();
        let watch = |e: String| Ok(println!("{host} says: {e}"));
        EVENTS.call(&peer, &3).await?.results(watch).await
    });

    let need = hosts.len() / 2 + 1;
    let (mut locked, mut failed) = (0, 0);
    for i in 0..rounds {
        let (resource, owner) = (format!("{}/r{i}", node.host()), node.host().to_owned());
        let l = Lock { resource, owner };
        let (host, deadline) = (node.host(), Duration::from_secs(2));
        match LOCK.quorum(&node, &l, need, deadline).await {
            Ok(votes) => {
                locked += 1;
                println!("{host}: locked {} ({} votes)", l.resource, votes.len());
                let acks = UNLOCK.call_all(&node, &l, deadline);
                futures_util::StreamExt::collect::<Vec<_>>(acks).await;
            }
            Err(e) => {
                failed += 1;
                println!("{host}: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ask a live peer who holds two resources, over a two-way stream.
    let live = node.connections().find(|c| c.state() == State::Connected);
    if let Some(c) = live {
        let host = node.host();
        let asked = async {
            let mut who = WHO.call(&c, &()).await?;
            for name in ["a", "b"] {
                who.send(&name.to_owned()).await?;
            }
            who.close_send();
            who.results(|line| Ok(println!("{host}: {line}"))).await
        };
        if let Err(e) = asked.await {
            println!("{host}: who: {e}");
        }
    }
    for c in node.connections() {
        let rtt = c.ping().await.ok();
        let sent = c.stats().outgoing_messages;
        let (host, to, state) = (node.host(), c.remote(), c.state());
        println!("{host}: -> {to} {state} rtt {rtt:?} sent {sent} msgs");
    }
    println!("{}: done: locked {locked}, failed {failed}", node.host());
    // Keep serving while peers still lock (up to 10 s): they need this node's vote.
    for _ in 0..100 {
        let last = *LAST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.shutdown().await;
    Ok(())
}
