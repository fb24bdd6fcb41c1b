//! Testing your handlers with a local grid (feature `test-util`).
//!
//! [`LocalGrid`] starts `n` nodes in the test's process, fully meshed over loopback, and
//! returns once every connection is up; its closure registers the handlers under test on
//! each node, and `grid.conn(from, to)` is the connection to call them through.
//! `LocalGrid::start_in_memory` does the same over in-memory pipes, for tests on paused
//! tokio time (`#[tokio::test(start_paused = true)]`) where timeouts cost nothing. Under the
//! same feature, [`Connection::kill`](rgrid::Connection::kill) drops a live connection on
//! purpose, to test what callers see when the network fails.
//!
//! In your crate these would be `#[tokio::test]` functions under `tests/`, with rgrid in
//! `[dev-dependencies]` with `features = ["test-util"]`; here `main` runs them in turn.
//!
//! ```sh
//! cargo run -p rgrid --features test-util --example testing
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rgrid::test_util::LocalGrid;
use rgrid::typed::{Service, ServiceMethod};
use rgrid::{Error, Manager, RemoteError};
use tokio::sync::mpsc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// The code under test: a counter service.
const COUNTER: Service = Service::new("counter");
/// counter/add: adds to this node's counter and answers the new total; refuses overflow.
static ADD: ServiceMethod<u64, u64> = COUNTER.method("add");
/// counter/wait: never answers (a slow disk, say); tells the test when it has started.
static WAIT: ServiceMethod<(), ()> = COUNTER.method("wait");

fn register(node: &Manager, started: mpsc::UnboundedSender<()>) -> Result<(), Error> {
    let total = Arc::new(AtomicU64::new(0));
    ADD.register(node, move |n: u64| {
        let now = total.load(Ordering::SeqCst);
        let answer = match now.checked_add(n) {
            Some(sum) => {
                total.store(sum, Ordering::SeqCst);
                Ok(sum)
            }
            None => Err(RemoteError::new(format!("{now} + {n} overflows"))),
        };
        async move { answer }
    })?;
    WAIT.register(node, move |()| {
        let _ = started.send(());
        std::future::pending()
    })
}

/// The handler's answers and its error, called on another node.
async fn add_sums_and_refuses_overflow() -> TestResult {
    let (started, _) = mpsc::unbounded_channel();
    // The closure runs once per node, before any connection is made.
    let grid = LocalGrid::start(2, |_, node| {
        register(node, started.clone()).unwrap_or_else(|e| panic!("register: {e}"));
    })
    .await?;
    let to_1 = grid.conn(0, 1);
    assert_eq!(ADD.call(&to_1, &2).await?, 2);
    assert_eq!(ADD.call(&to_1, &3).await?, 5);
    // Each node has its own counter.
    assert_eq!(ADD.call(&grid.conn(1, 0), &1).await?, 1);
    match ADD.call(&to_1, &u64::MAX).await {
        Err(Error::Remote(e)) => assert_eq!(e.text(), format!("5 + {} overflows", u64::MAX)),
        other => return Err(format!("expected a remote error, got {other:?}").into()),
    }
    grid.shutdown().await;
    Ok(())
}

/// A call in flight when its connection dies fails with `Error::Disconnected` (the caller
/// cannot know whether the handler ran); the grid then reconnects by itself.
async fn a_killed_connection_fails_the_call_then_recovers() -> TestResult {
    let (started, mut handler_started) = mpsc::unbounded_channel();
    let grid = LocalGrid::start(2, |_, node| {
        register(node, started.clone()).unwrap_or_else(|e| panic!("register: {e}"));
    })
    .await?;
    let to_1 = grid.conn(0, 1);
    let call = tokio::spawn({
        let to_1 = to_1.clone();
        async move { WAIT.call(&to_1, &()).await }
    });
    // Kill the connection only once the handler runs (never sleep and hope).
    let bound = Duration::from_secs(10);
    tokio::time::timeout(bound, handler_started.recv()).await?;
    to_1.kill();
    let result = tokio::time::timeout(bound, call).await??;
    assert_eq!(result, Err(Error::Disconnected));

    // Recovery: poll, bounded, until a call goes through again.
    let recovered = tokio::time::timeout(bound, async {
        loop {
            match ADD.call(&to_1, &1).await {
                Err(Error::Disconnected) => tokio::time::sleep(Duration::from_millis(10)).await,
                other => return other,
            }
        }
    });
    assert_eq!(recovered.await??, 1);
    grid.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> TestResult {
    add_sums_and_refuses_overflow().await?;
    println!("test add_sums_and_refuses_overflow ... ok");
    a_killed_connection_fails_the_call_then_recovers().await?;
    println!("test a_killed_connection_fails_the_call_then_recovers ... ok");
    println!("testing: ok");
    Ok(())
}
