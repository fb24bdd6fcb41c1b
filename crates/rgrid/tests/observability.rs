//! One span per call on both ends (issue 15, item 6): with `rgrid=debug`, a named method's
//! call logs a `grid.call` span on the caller and a `grid.serve` span on the handler's node
//! (streams: `grid.stream` and `grid.serve_stream`),
//! each naming the remote, the handler, the route (`service/method`) and the mux, with one
//! event for how the call ended. A global subscriber (the only test of this binary; see
//! `tests/auth.rs` for why not a scoped one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Captured, bounded, mem_grid_with};
use rgrid::Options;
use rgrid::typed::{Service, ServiceMethod, ServiceStream};

const LOCKS: Service = Service::new("locks");
static LOCK: ServiceMethod<String, bool> = LOCKS.method("lock");
static INLINE: ServiceMethod<String, bool> = LOCKS.method("peek").inline();
static WATCH: ServiceStream<u8, (), u8> = LOCKS.stream("watch").with_in_capacity(0);

#[tokio::test(start_paused = true)]
async fn every_call_has_a_span_on_both_ends() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let g = mem_grid_with(Options::default(), |_, m| {
        LOCK.register(m, |r: String| async move { Ok(r == "free") })
            .unwrap();
        INLINE
            .register(m, |r: String| async move { Ok(r.is_empty()) })
            .unwrap();
        WATCH
            .register_no_input(m, |_, n: u8, out| async move {
                out.send(&n)
                    .await
                    .map_err(|e| rgrid::RemoteError::new(e.to_string()))
            })
            .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    assert!(bounded(LOCK.call(&conn, &"free".to_owned())).await.unwrap());
    assert!(!bounded(INLINE.call(&conn, &"x".to_owned())).await.unwrap());
    let mut got = Vec::new();
    let s = bounded(WATCH.call(&conn, &7)).await.unwrap();
    bounded(s.results(|n| {
        got.push(n);
        Ok(())
    }))
    .await
    .unwrap();
    assert_eq!(got, [7]);
    common::assert_no_active(&g).await;
    g.shutdown().await;

    let text = logs.text();
    let lines = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    for route in ["locks/lock", "locks/peek"] {
        let call = format!(
            "grid.call{{remote={} handler=Service route=\"{route}\" mux=",
            g.hosts[1]
        );
        let serve = format!(
            "grid.serve{{remote={} handler=Service route=\"{route}\" mux=",
            g.hosts[0]
        );
        assert_eq!(lines(&call), 1, "{route} caller span:\n{text}");
        assert!(text.contains(&serve), "{route} handler span:\n{text}");
    }
    assert_eq!(lines("call answered"), 2, "{text}");
    // The stream: a span on each end, opened, ended by its handler, released.
    let stream = format!(
        "grid.stream{{remote={} handler=Service route=\"locks/watch\" mux=",
        g.hosts[1]
    );
    let served = format!(
        "grid.serve_stream{{remote={} handler=Service route=\"locks/watch\" mux=",
        g.hosts[0]
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&stream) && l.contains("stream opened")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&stream) && l.contains("stream released")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&served) && l.contains("handler ended the stream")),
        "{text}"
    );
    assert_eq!(lines("handler answered"), 2, "{text}");
}
