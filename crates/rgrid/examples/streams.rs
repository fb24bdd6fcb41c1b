//! Streams: a server stream, a two-way stream, how a stream ends, and cancellation.
//!
//! A stream method is a [`ServiceStream<P, Req, Resp>`] static: the caller opens it with an
//! initial payload `P`, may then send requests `Req`, and receives responses `Resp`. Every
//! message needs a credit from the other side (the capacities below), so a slow reader
//! slows the writer down instead of filling memory. A stream ends when:
//!
//! * the handler returns `Ok(())`: the caller's `next()` yields `None` (end of stream);
//! * the handler returns `Err(..)`: the caller gets `Error::Remote` as the last item;
//! * the caller drops (or cancels) it: the handler's future is dropped at its next `.await`.
//!
//! The caller closes its request side with `close_send()` (or by dropping the sender): the
//! handler's `recv()` then yields `None`.
//!
//! ```sh
//! cargo run -p rgrid --example streams
//! ```

use std::time::Duration;

use rgrid::futures_util::StreamExt;
use rgrid::typed::{Service, ServiceStream};
use rgrid::{Error, Manager, RemoteError, serve};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const FEED: Service = Service::new("feed");
/// A server stream: the payload says how many items; no requests (in capacity 0); up to 8
/// items may be on their way before the caller reads them.
static COUNT: ServiceStream<u32, (), String> = FEED
    .stream("count")
    .with_in_capacity(0)
    .with_out_capacity(8);
/// A two-way stream: the payload is a prefix, requests are words, responses the words
/// upper-cased behind the prefix. An empty word fails the stream.
static SHOUT: ServiceStream<String, String, String> = FEED.stream("shout").with_in_capacity(4);
/// An endless server stream of numbers, to show cancellation.
static TICKS: ServiceStream<(), (), u64> = FEED.stream("ticks").with_in_capacity(0);

/// Reports how far the ticks handler got when it is dropped: a handler's future is dropped
/// when its stream is cancelled, so cleanup belongs in `Drop`.
struct OnStop {
    sent: u64,
    report: mpsc::UnboundedSender<u64>,
}

impl Drop for OnStop {
    fn drop(&mut self) {
        let _ = self.report.send(self.sent);
    }
}

fn register(node: &Manager, stopped: mpsc::UnboundedSender<u64>) -> Result<(), Error> {
    COUNT.register_no_input(node, |_ctx, n: u32, out| async move {
        for i in 1..=n {
            // `send` waits for a credit; it fails once the caller is gone.
            out.send(&format!("item {i} of {n}")).await?;
        }
        Ok(()) // the end of the stream
    })?;
    SHOUT.register(node, |_ctx, prefix: String, mut words, out| async move {
        // `None` once the caller closed its side: then the handler finishes.
        while let Some(word) = words.recv().await {
            let word = word?;
            if word.is_empty() {
                return Err(RemoteError::new("empty word"));
            }
            out.send(&format!("{prefix}{}", word.to_uppercase()))
                .await?;
        }
        Ok(())
    })?;
    TICKS.register_no_input(node, move |_ctx, (), out| {
        let report = stopped.clone();
        async move {
            // Made inside the future, so that it lives (and is dropped) with it.
            let mut guard = OnStop { sent: 0, report };
            for tick in 0u64.. {
                out.send(&tick).await?;
                guard.sent = tick + 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        }
    })
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
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
    let mut nodes = Vec::new();
    for (host, listener) in hosts.iter().zip([listener_a, listener_b]) {
        let node = Manager::builder(host.clone(), hosts.clone())
            .jwt_secret("streams example secret")
            .build()?;
        register(&node, stopped_tx.clone())?;
        tokio::spawn(serve(listener, node.clone()));
        node.start();
        nodes.push(node);
    }
    nodes[0].wait_for_peers(Duration::from_secs(5)).await?;
    let to_b = nodes[0]
        .connection(&hosts[1])
        .ok_or("B is not in A's grid")?;

    // 1. Server stream: read until `None`, the handler's `Ok(())`.
    let mut count = COUNT.call(&to_b, &3).await?;
    let mut items = Vec::new();
    while let Some(item) = count.next().await {
        items.push(item?);
    }
    println!("count: {items:?}");
    assert_eq!(items, ["item 1 of 3", "item 2 of 3", "item 3 of 3"]);

    // 2. Two-way stream. Send and receive at the same time (credits are few: a caller that
    // only reads after sending everything can wait forever), so split the handle and send
    // from a task of its own. Dropping the sender at the end closes the request side.
    let shout = SHOUT.call(&to_b, &"> ".to_owned()).await?;
    let (sender, mut responses) = shout.split();
    let mut sender = sender.ok_or("the stream takes requests")?;
    let sending = tokio::spawn(async move {
        for word in ["streams", "are", "two", "way"] {
            sender.send(&word.to_owned()).await?;
        }
        Ok::<_, Error>(())
    });
    let mut shouted = Vec::new();
    while let Some(line) = responses.next().await {
        shouted.push(line?);
    }
    sending.await??;
    println!("shout: {shouted:?}");
    assert_eq!(shouted, ["> STREAMS", "> ARE", "> TWO", "> WAY"]);

    // 3. The handler fails the stream: the caller's last item is `Error::Remote`.
    let mut shout = SHOUT.call(&to_b, &"> ".to_owned()).await?;
    shout.send(&String::new()).await?;
    shout.close_send();
    match shout.next().await {
        Some(Err(Error::Remote(e))) => println!("shout failed remotely: {e}"),
        other => return Err(format!("expected a remote error, got {other:?}").into()),
    }

    // 4. Cancellation: take three ticks, then drop the stream. The handler on B is dropped
    // (its `OnStop` reports), and the stream's state is freed on both nodes.
    let mut ticks = TICKS.call(&to_b, &()).await?;
    for want in 0..3 {
        let tick = ticks.next().await.ok_or("ticks ended early")??;
        assert_eq!(tick, want);
    }
    drop(ticks);
    let sent = tokio::time::timeout(Duration::from_secs(5), stopped.recv())
        .await?
        .ok_or("the handler never stopped")?;
    println!("ticks: the handler stopped after {sent} ticks");
    assert!(sent >= 3);

    for node in &nodes {
        node.shutdown().await;
    }
    println!("streams: ok");
    Ok(())
}
