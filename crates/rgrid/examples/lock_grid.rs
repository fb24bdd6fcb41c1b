//! A separate lock grid next to the main grid, as MinIO runs them.
//!
//! MinIO opens two grids between every pair of servers: the main one on
//! [`DEFAULT_ROUTE_PATH`] (`/minio/grid/v1`) for storage and peer calls, and one for its
//! distributed locks on [`LOCK_ROUTE_PATH`] (`/minio/grid/lock/v1`), so lock traffic never
//! queues behind bulk storage traffic on a shared websocket. Each grid is its own
//! [`Manager`] with its own handlers and connections; both are mounted on the server's one
//! HTTP port (axum here). The lock handlers use MinIO's handler ids
//! ([`HandlerId::LOCK_LOCK`], [`HandlerId::LOCK_UNLOCK`]) and messages shaped like MinIO's
//! `dsync.LockArgs` / `dsync.LockResp`; both grids authenticate with MinIO's node token
//! ([`ManagerBuilder::minio_jwt`](rgrid::ManagerBuilder::minio_jwt)), as a MinIO server does.
//!
//! ```sh
//! cargo run -p rgrid --example lock_grid
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use rgrid::typed::{Service, ServiceMethod, SingleHandler};
use rgrid::{DEFAULT_ROUTE_PATH, Error, HandlerId, LOCK_ROUTE_PATH, Manager, Options};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// A lock request with the field names of MinIO's `dsync.LockArgs` (msgp writes structs as
/// maps keyed by field name; so does rgrid's typed layer).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LockArgs {
    #[serde(rename = "UID")]
    uid: String,
    resources: Vec<String>,
    owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quorum: Option<i64>,
}

/// MinIO's `dsync.LockResp`: a response code and an error text.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LockResp {
    code: u8,
    err: String,
}

/// `dsync.ResponseCode` values used here.
const RESP_OK: u8 = 0;
const RESP_LOCK_CONFLICT: u8 = 1;
const RESP_LOCK_NOT_FOUND: u8 = 3;

// The lock grid's handlers: MinIO's ids, typed. Lock tables answer from memory, so they run
// inline on the connection's reader.
static LOCK: SingleHandler<LockArgs, LockResp> = SingleHandler::new(HandlerId::LOCK_LOCK).inline();
static UNLOCK: SingleHandler<LockArgs, LockResp> =
    SingleHandler::new(HandlerId::LOCK_UNLOCK).inline();

// The main grid carries everything else; here one named method.
const NODES: Service = Service::new("nodes");
static DESCRIBE: ServiceMethod<(), String> = NODES.method("describe");

/// resource -> UID of the lock holding it.
type Table = Arc<Mutex<HashMap<String, String>>>;

fn register_locks(grid: &Manager) -> Result<(), Error> {
    let table = Table::default();
    let t = table.clone();
    LOCK.register(grid, None, move |args: LockArgs| {
        let mut t = t.lock().unwrap_or_else(PoisonError::into_inner);
        let free = args.resources.iter().all(|r| !t.contains_key(r));
        if free {
            for r in &args.resources {
                t.insert(r.clone(), args.uid.clone());
            }
        }
        let code = if free { RESP_OK } else { RESP_LOCK_CONFLICT };
        async move {
            Ok(LockResp {
                code,
                err: String::new(),
            })
        }
    })?;
    UNLOCK.register(grid, None, move |args: LockArgs| {
        let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
        let held = args.resources.iter().all(|r| t.get(r) == Some(&args.uid));
        if held {
            for r in &args.resources {
                t.remove(r);
            }
        }
        let code = if held { RESP_OK } else { RESP_LOCK_NOT_FOUND };
        async move {
            Ok(LockResp {
                code,
                err: String::new(),
            })
        }
    })
}

fn lock_args(uid: &str, owner: &str) -> LockArgs {
    LockArgs {
        uid: uid.to_owned(),
        resources: vec!["bucket/object".to_owned()],
        owner: owner.to_owned(),
        source: "lock_grid.rs".to_owned(),
        quorum: Some(2),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listener_a, listener_b) = (
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    );
    let hosts = [
        format!("http://{}", listener_a.local_addr()?),
        format!("http://{}", listener_b.local_addr()?),
    ];
    // The lock grid differs from the main grid by its route path only.
    let lock_options = Options {
        route_path: LOCK_ROUTE_PATH.to_owned(),
        ..Options::default()
    };

    let (mut mains, mut locks) = (Vec::new(), Vec::new());
    for (host, listener) in hosts.iter().zip([listener_a, listener_b]) {
        let main_grid = Manager::builder(host.clone(), hosts.clone())
            .minio_jwt("minioadmin", "minioadmin-secret")
            .build()?;
        let lock_grid = Manager::builder(host.clone(), hosts.clone())
            .options(lock_options.clone())
            .minio_jwt("minioadmin", "minioadmin-secret")
            .build()?;
        let me = host.clone();
        DESCRIBE.register(&main_grid, move |()| {
            let me = me.clone();
            async move { Ok(format!("{me}: main grid")) }
        })?;
        register_locks(&lock_grid)?;

        // One HTTP server, two grid routes.
        let app = Router::new()
            .route_service(DEFAULT_ROUTE_PATH, main_grid.service())
            .route_service(LOCK_ROUTE_PATH, lock_grid.service());
        tokio::spawn(async move { axum::serve(listener, app).await });
        main_grid.start();
        lock_grid.start();
        mains.push(main_grid);
        locks.push(lock_grid);
    }
    for grid in mains.iter().chain(&locks) {
        grid.wait_for_peers(Duration::from_secs(5)).await?;
    }
    let main_to_b = mains[0].connection(&hosts[1]).ok_or("unknown host")?;
    let lock_to_b = locks[0].connection(&hosts[1]).ok_or("unknown host")?;

    // Two websockets between A and B now: one per grid.
    println!("main grid: {}", DESCRIBE.call(&main_to_b, &()).await?);

    // Locking on B through the lock grid: granted, then a conflict for another UID, then
    // granted again once the first holder unlocked.
    let (first, second) = (lock_args("uid-1", "node-a"), lock_args("uid-2", "node-a"));
    let codes = [
        LOCK.call(&lock_to_b, &first).await?.code,
        LOCK.call(&lock_to_b, &second).await?.code,
        UNLOCK.call(&lock_to_b, &first).await?.code,
        LOCK.call(&lock_to_b, &second).await?.code,
        UNLOCK.call(&lock_to_b, &first).await?.code,
    ];
    println!("lock grid: lock, conflicting lock, unlock, lock, stale unlock -> codes {codes:?}");
    assert_eq!(
        codes,
        [
            RESP_OK,
            RESP_LOCK_CONFLICT,
            RESP_OK,
            RESP_OK,
            RESP_LOCK_NOT_FOUND
        ]
    );

    // The grids are separate: the main grid has no lock handlers.
    match LOCK.call(&main_to_b, &first).await {
        Err(Error::Remote(e)) => println!("lock call on the main grid: {e}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    for grid in mains.iter().chain(&locks) {
        grid.shutdown().await;
    }
    println!("lock_grid: ok");
    Ok(())
}
