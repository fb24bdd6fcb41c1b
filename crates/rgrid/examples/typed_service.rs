//! Your own service: a tiny key-value store on three nodes, with typed methods.
//!
//! A [`Service`] is a name; each method is a `static` made from it with its request and
//! response types (any serde types, sent as MessagePack). The same static registers the
//! handler on the serving node and makes the typed call on the calling node, so the two
//! sides cannot disagree about names or types. The example shows:
//!
//! * registering handlers that share state, and calling them on another node;
//! * a handler's own error (`Err(RemoteError)`) arriving as [`Error::Remote`];
//! * a call to a method the other node never registered (its error names the method);
//! * a fan-out: one method called on every node at once, this node included.
//!
//! ```sh
//! cargo run -p rgrid --example typed_service
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rgrid::futures_util::StreamExt;
use rgrid::typed::{Service, ServiceMethod};
use rgrid::{Error, Manager, RemoteError, serve};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// A request: set `key` to `value`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Put {
    key: String,
    value: String,
}

/// An answer: the value of a key and how often it was written.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    value: String,
    version: u64,
}

// The service and its methods: the declaration both sides share.
const KV: Service = Service::new("kv");
/// kv/put: stores a value, answers its new version.
static PUT: ServiceMethod<Put, u64> = KV.method("put");
/// kv/get: a lookup in memory that never blocks, so it may run inline on the connection's
/// reader (skipping a task per call). Only opt in for handlers that cannot stall.
static GET: ServiceMethod<String, Entry> = KV.method("get").inline();
/// kv/delete: declared here but registered on no node, to show what callers then get.
static DELETE: ServiceMethod<String, bool> = KV.method("delete");

/// A node's data: key -> (value, version).
type Store = Arc<Mutex<HashMap<String, (String, u64)>>>;

fn table(store: &Store) -> MutexGuard<'_, HashMap<String, (String, u64)>> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register(node: &Manager, store: &Store) -> Result<(), Error> {
    let s = store.clone();
    PUT.register(node, move |put: Put| {
        // Work on the lock before the `async` block: never hold a std lock across `.await`.
        let mut t = table(&s);
        let version = t.get(&put.key).map_or(1, |(_, v)| v + 1);
        t.insert(put.key, (put.value, version));
        async move { Ok(version) }
    })?;
    let s = store.clone();
    GET.register(node, move |key: String| {
        let found = table(&s).get(&key).cloned();
        async move {
            match found {
                Some((value, version)) => Ok(Entry { value, version }),
                // The handler's own error: its text travels to the caller.
                None => Err(RemoteError::new(format!("no key {key:?}"))),
            }
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Three nodes on loopback, each with its own store.
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let hosts = listeners
        .iter()
        .map(|l| Ok(format!("http://{}", l.local_addr()?)))
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    let mut nodes = Vec::new();
    for (host, listener) in hosts.iter().zip(listeners) {
        let node = Manager::builder(host.clone(), hosts.clone())
            .jwt_secret("typed example secret")
            .build()?;
        register(&node, &Store::default())?;
        tokio::spawn(serve(listener, node.clone()));
        node.start();
        nodes.push(node);
    }
    let a = &nodes[0];
    a.wait_for_peers(Duration::from_secs(5)).await?;
    let to_b = a.connection(&hosts[1]).ok_or("B is not in A's grid")?;

    // Typed calls: the request is encoded, the answer decoded, errors are `rgrid::Error`.
    let put = Put {
        key: "color".into(),
        value: "blue".into(),
    };
    assert_eq!(PUT.call(&to_b, &put).await?, 1);
    assert_eq!(PUT.call(&to_b, &put).await?, 2);
    let entry = GET.call(&to_b, &"color".to_owned()).await?;
    println!("B has color = {entry:?}");
    assert_eq!(entry.value, "blue");

    // The handler refused: `Error::Remote` carries its text.
    match GET.call(&to_b, &"size".to_owned()).await {
        Err(Error::Remote(e)) => {
            println!("remote error: {e}");
            assert_eq!(e.text(), "no key \"size\"");
        }
        other => return Err(format!("expected a remote error, got {other:?}").into()),
    }

    // A method B never registered: also `Error::Remote`, and the text names it.
    match DELETE.call(&to_b, &"color".to_owned()).await {
        Err(Error::Remote(e)) if e.text().contains("kv/delete") => {
            println!("unknown method: {e}");
        }
        other => return Err(format!("expected an unknown-method error, got {other:?}").into()),
    }

    // Fan-out: `call_all` calls every host of the grid (A itself through its own handlers,
    // without a socket) with one deadline, and yields `(host, result)` as answers arrive.
    let everywhere = Put {
        key: "everywhere".into(),
        value: "yes".into(),
    };
    let mut answers = PUT.call_all(a, &everywhere, Duration::from_secs(2));
    let mut stored = 0;
    while let Some((host, version)) = answers.next().await {
        println!("{host} stored `everywhere`: version {}", version?);
        stored += 1;
    }
    assert_eq!(stored, 3);

    for node in &nodes {
        node.shutdown().await;
    }
    println!("typed_service: ok");
    Ok(())
}
