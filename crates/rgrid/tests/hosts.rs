//! Host names (issue 15, item 7): every node spells a host one way (scheme and host name in
//! lower case, no trailing `/`), so `HTTP://B:2/` and `http://b:2` are the same host in the
//! builder, in `Manager::connection` and in a peer's handshake; two spellings of one host,
//! or a host with and without its default port, are refused at `build()`; `serve_local`
//! binds the port of the node's own URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, SystemTime};

use common::bounded;
use common::raw::{TOKEN, handshake, mem_node};
use rgrid::{Error, Manager, Options, serve};

fn build(local: &str, hosts: &[&str]) -> Result<Manager, Error> {
    Manager::builder(local, hosts.iter().copied())
        .token("t")
        .build()
}

#[test]
fn every_spelling_of_a_host_is_the_same_host() {
    let m = build("HTTP://Node-A:1/", &["http://node-a:1", "http://Node-B:2/"]).unwrap();
    assert_eq!(m.host(), "http://node-a:1");
    let remotes: Vec<String> = m.remotes().collect();
    assert_eq!(remotes, ["http://node-b:2"]);
    for spelling in ["http://node-b:2", "HTTP://NODE-B:2", "http://node-b:2/"] {
        let c = m.connection(spelling).expect(spelling);
        assert_eq!(c.remote(), "http://node-b:2");
    }
    assert!(m.connection("http://node-c:3").is_none());
}

#[test]
fn ambiguous_host_lists_are_refused() {
    let e = build("http://a:1", &["http://a:1", "http://b:2", "HTTP://B:2/"]).unwrap_err();
    assert_eq!(
        e,
        Error::Config(
            "hosts \"http://b:2\" and \"HTTP://B:2/\" are the same host (http://b:2)".to_owned()
        )
    );
    let e = build("http://a:1", &["http://a:1", "http://b", "http://b:80"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"http://b\" and \"http://b:80\" are ambiguous"),
        "{e}"
    );
    let e = build("http://a:1", &["http://a:1", "http://b:2/x"]).unwrap_err();
    assert!(e.to_string().contains("has a path"), "{e}");
    let e = build("http://a:1", &["http://a:1", "http://a:1"]).unwrap_err();
    assert_eq!(e, Error::Config("host http://a:1 appears twice".to_owned()));
}

/// A peer that announces itself in another spelling is still the known host; a host that
/// is not in the list is refused with MinIO's text.
#[tokio::test(start_paused = true)]
async fn a_handshake_in_another_spelling_is_accepted() {
    let n = mem_node(Options::default(), |_| {}).await;
    let shouted = format!("{}/", n.peer.to_uppercase());
    assert_ne!(shouted, n.peer);
    let (resp, _ws) = handshake(&n, &shouted, TOKEN, SystemTime::now()).await;
    assert!(resp.accepted, "{}", resp.rejected_reason);
    let conn = n.manager.connection(&n.peer).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();

    let (resp, _ws) = handshake(&n, "http://127.0.0.3:7", TOKEN, SystemTime::now()).await;
    assert!(!resp.accepted);
    assert_eq!(resp.rejected_reason, "unknown incoming host");
    bounded(n.manager.shutdown()).await;
}

#[tokio::test]
async fn serve_local_binds_the_port_of_the_local_url() {
    // A free port for a, then b on a listener of its own.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = format!("http://127.0.0.1:{port}");
    let b = format!("http://{}", lb.local_addr().unwrap());
    let hosts = [a.as_str(), b.as_str()];
    let node_a = build(&a, &hosts).unwrap();
    let node_b = build(&b, &hosts).unwrap();
    let bound = node_a.serve_local().await.unwrap();
    assert_eq!(bound.port(), port);
    tokio::spawn(serve(lb, node_b.clone()));
    node_a.start();
    node_b.start();
    for n in [&node_a, &node_b] {
        bounded(n.wait_for_peers(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    // The port is taken now: a second node on it cannot bind.
    let again = build(&a, &hosts).unwrap();
    match again.serve_local().await {
        // The error keeps its source: the bind's own io::Error.
        Err(Error::Transport(cause)) => {
            let io = cause.downcast_ref::<std::io::Error>();
            assert_eq!(
                io.map(std::io::Error::kind),
                Some(std::io::ErrorKind::AddrInUse),
                "{cause:?}"
            );
            let e = Error::Transport(cause.clone());
            let source = std::error::Error::source(&e).and_then(|c| c.source());
            assert!(source.is_some_and(|s| s.is::<std::io::Error>()), "{e:?}");
        }
        other => panic!("want a transport error, got {other:?}"),
    }
    let no_port = build("http://a", &["http://a", "http://b:1"]).unwrap();
    assert!(matches!(no_port.serve_local().await, Err(Error::Config(_))));
    bounded(node_a.shutdown()).await;
    bounded(node_b.shutdown()).await;
}
