//! Client participants (issue 16, item 2): a node that only dials joins a grid it is not a
//! host of, when the servers accept clients. It is authenticated like any peer, calls and is
//! called back, is never dialed, counts against `Options::max_clients`, and is forgotten
//! when it leaves. Servers that do not accept clients (and MinIO nodes, which never do)
//! refuse it with MinIO's "unknown incoming host", which the client reports with a hint.
//! Real sockets on loopback; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::{bounded, eventually};
use rgrid::{Error, HandlerId, Manager, Options, State};
use tokio::net::TcpListener;

/// Two servers on loopback accepting `max_clients` clients, each answering `HandlerId::TEST`
/// with its own host name.
async fn servers(max_clients: usize, secret: &str) -> (Vec<Manager>, Vec<String>) {
    let mut listeners = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        hosts.push(format!("http://{}", l.local_addr().unwrap()));
        listeners.push(l);
    }
    let mut managers = Vec::new();
    for (l, host) in listeners.into_iter().zip(&hosts) {
        let options = Options {
            max_clients,
            ..Options::default()
        };
        let builder = Manager::builder(host.clone(), hosts.clone())
            .options(options)
            .jwt_secret(secret);
        managers.push(common::start_named_node(builder, l));
    }
    for m in &managers {
        bounded(m.wait_for_peers(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    (managers, hosts)
}

/// A client named `name` of `hosts`, answering `HandlerId::TEST2` with its name.
fn client(name: &str, hosts: &[String], secret: &str) -> Manager {
    let c = Manager::client_builder(name, hosts.iter().cloned())
        .jwt_secret(secret)
        .build()
        .unwrap();
    let me = name.to_owned();
    c.register_single(HandlerId::TEST2, move |_: Bytes| {
        let me = me.clone();
        async move { Ok(Bytes::from(me)) }
    })
    .unwrap();
    c.start();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joins_calls_is_called_back_and_is_forgotten() {
    let (servers, hosts) = servers(2, "s3cret").await;
    let c = client("client://admin-1", &hosts, "s3cret");
    assert!(c.is_client());
    // It dials every server, whatever the who-dials rule would say.
    assert!(c.connections().all(|conn| conn.dials()));
    bounded(c.wait_for_peers(Duration::from_secs(10)))
        .await
        .unwrap();
    for (i, host) in hosts.iter().enumerate() {
        let conn = c.connection(host).unwrap();
        let got = bounded(conn.request(HandlerId::TEST, "")).await.unwrap();
        assert_eq!(got, Bytes::from(host.clone()));
        // Each server sees the client (not among its hosts) and calls it back.
        let s = &servers[i];
        let back = s
            .connection("client://admin-1")
            .expect("the client is known");
        assert!(!back.dials(), "a server never dials a client");
        assert!(s.connections().all(|x| x.remote() != "client://admin-1"));
        assert_eq!(s.clients().len(), 1);
        let got = bounded(back.request(HandlerId::TEST2, "")).await.unwrap();
        assert_eq!(&got[..], b"client://admin-1");
    }
    // A client listens nowhere and refuses connections.
    assert!(matches!(c.serve_local().await, Err(Error::Config(_))));

    // It leaves: every server forgets it, and nobody redials it.
    bounded(c.shutdown()).await;
    for s in &servers {
        eventually("the server forgets the client", || s.clients().is_empty()).await;
        assert!(s.connection("client://admin-1").is_none());
    }
    for s in &servers {
        bounded(s.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_count_against_the_limit_and_authenticate() {
    let (servers, hosts) = servers(1, "s3cret").await;
    let one = client("client://one", &hosts, "s3cret");
    bounded(one.wait_for_peers(Duration::from_secs(10)))
        .await
        .unwrap();
    // A second client is over the limit of one: refused, with the reason.
    let two = client("client://two", &hosts, "s3cret");
    let conn = two.connection(&hosts[0]).unwrap();
    eventually("the second client is refused", || {
        conn.last_error().is_some()
    })
    .await;
    let e = conn.last_error().unwrap().error;
    assert_eq!(e, Error::Rejected("too many clients (limit 1)".to_owned()));
    assert_eq!(conn.state(), State::ConnectionError);
    // A wrong secret is refused before any client state exists.
    let bad = client("client://bad", &hosts, "wrong");
    let conn = bad.connection(&hosts[1]).unwrap();
    eventually("the bad client is refused", || conn.last_error().is_some()).await;
    let e = conn.last_error().unwrap().error.to_string();
    assert!(e.contains("auth token"), "{e}");
    for s in &servers {
        let names: Vec<String> = s.clients().iter().map(|c| c.remote().to_owned()).collect();
        assert_eq!(names, ["client://one"]);
    }
    // When the first leaves, its slot is free again: the second gets in by itself.
    bounded(one.shutdown()).await;
    bounded(two.wait_for_peers(Duration::from_secs(10)))
        .await
        .unwrap();
    for m in [&two, &bad] {
        bounded(m.shutdown()).await;
    }
    for s in &servers {
        bounded(s.shutdown()).await;
    }
}

/// A grid that does not accept clients (MinIO's never do) refuses one as an unknown host,
/// within one dial attempt; the client's error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_take_no_clients_refuse_them_by_name() {
    let (servers, hosts) = servers(0, "s3cret").await;
    let c = client("client://admin", &hosts, "s3cret");
    let conn = c.connection(&hosts[0]).unwrap();
    eventually("the client is refused", || conn.last_error().is_some()).await;
    let failure = conn.last_error().unwrap();
    assert_eq!(failure.attempts, 1);
    let text = failure.error.to_string();
    assert!(
        text.starts_with(
            "connection rejected: unknown incoming host (this node joined as a client"
        ),
        "{text}"
    );
    assert!(servers[0].clients().is_empty());
    bounded(c.shutdown()).await;
    for s in &servers {
        bounded(s.shutdown()).await;
    }
}

#[test]
fn client_names_are_checked() {
    let hosts = ["http://a:1", "http://b:2"];
    let build = |name: &str| Manager::client_builder(name, hosts).token("t").build();
    assert!(build("client://ok-1").is_ok());
    assert!(matches!(build("has space"), Err(Error::Config(_))));
    assert!(matches!(build(""), Err(Error::Config(_))));
    let e = build("HTTP://A:1/").unwrap_err();
    assert_eq!(
        e,
        Error::Config("client name HTTP://A:1/ is one of the servers' hosts".to_owned())
    );
}
