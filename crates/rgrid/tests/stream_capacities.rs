//! Streams without local registration (issue 15, item 4): typed statics carry their
//! windows, the raw API takes them at open (`CallOptions::capacities`), a raw open with
//! neither says what to do, and windows that differ between the nodes fail with an error
//! naming the likely cause. Node 1 serves; node 0 registers nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use bytes::Bytes;
use common::{assert_no_active, bounded, mem_grid_with};
use futures_util::StreamExt;
use rgrid::typed::{Service, ServiceStream};
use rgrid::{
    CallOptions, Error, HandlerId, Manager, Options, RawStreamHandler, RemoteError, StreamOut,
};

const FILES: Service = Service::new("files");
/// files/walk: a prefix in, the names under it out, 4 in flight; no requests (a caller
/// that does not register it learns that from here).
static WALK: ServiceStream<String, (), String> = FILES
    .stream("walk")
    .with_in_capacity(0)
    .with_out_capacity(4);

/// A raw stream sending `n` messages as fast as its 4 credits allow.
fn burst(n: u8) -> RawStreamHandler {
    RawStreamHandler::new(0, 4, move |_, _, _, out: StreamOut| async move {
        for i in 0..n {
            out.send(Bytes::from(vec![i]))
                .await
                .map_err(|e| RemoteError::new(e.to_string()))?;
        }
        Ok(())
    })
}

fn serve_on_node_1(i: usize, m: &Manager) {
    if i != 1 {
        return;
    }
    WALK.register_no_input(m, |_, prefix: String, out| async move {
        for name in ["a", "b", "c"] {
            out.send(&format!("{prefix}{name}"))
                .await
                .map_err(|e| RemoteError::new(e.to_string()))?;
        }
        Ok(())
    })
    .unwrap();
    m.register_stream(HandlerId::TEST, None, burst(8)).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_caller_needs_no_registration_of_its_own() {
    let g = mem_grid_with(Options::default(), serve_on_node_1).await;
    let conn = g.conn(0, 1);

    // Typed: the static's windows.
    let s = bounded(WALK.call(&conn, &"/d/".to_owned())).await.unwrap();
    let mut got = Vec::new();
    bounded(s.results(|n| {
        got.push(n);
        Ok(())
    }))
    .await
    .unwrap();
    assert_eq!(got, ["/d/a", "/d/b", "/d/c"]);

    // Raw with the windows given.
    let mut s = bounded(conn.open_stream_with(
        HandlerId::TEST,
        Bytes::new(),
        &CallOptions::new().capacities(0, 4),
    ))
    .await
    .unwrap();
    let mut n = 0;
    while let Some(m) = bounded(s.next()).await {
        assert_eq!(m.unwrap()[..], [n]);
        n += 1;
    }
    assert_eq!(n, 8);

    // Raw with neither: a local error that says what to do.
    let e = bounded(conn.open_stream(HandlerId::TEST, Bytes::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Config(t) if t.contains("not registered on this node") && t.contains("CallOptions::capacities")),
        "{e}"
    );
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// The caller claims a window of 1 while the handler was registered with 4 and sends as
/// fast as that allows: the caller's error names the likely cause.
#[tokio::test(start_paused = true)]
async fn windows_that_differ_between_nodes_name_the_cause() {
    let g = mem_grid_with(Options::default(), serve_on_node_1).await;
    let conn = g.conn(0, 1);
    let mut s = bounded(conn.open_stream_with(
        HandlerId::TEST,
        Bytes::new(),
        &CallOptions::new().capacities(0, 1),
    ))
    .await
    .unwrap();
    let mut err = None;
    while let Some(m) = bounded(s.next()).await {
        if let Err(e) = m {
            err = Some(e);
        }
    }
    let e = err.expect("the extra messages break the caller's window");
    assert!(
        e.to_string()
            .contains("out_capacity on the remote node is larger than this caller's"),
        "{e}"
    );
    assert_no_active(&g).await;
    g.shutdown().await;
}
