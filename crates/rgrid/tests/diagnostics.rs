//! Why a connection is down is visible to code (issue 15, item 5): a wrong secret and an
//! unknown host each surface as a typed reason from `Connection::last_error` after the
//! first dial attempt, on the dialing side and (for the refusal) on the refusing side; a
//! lost connection records why; `Manager::wait_for_peers` names each peer still down and
//! why; `watch_state` sees the changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{bounded, eventually};
use rgrid::proto::should_dial;
use rgrid::{Error, GridJwt, Manager, ManagerBuilder, Options, State, serve};
use tokio::net::TcpListener;

const SECRET: &str = "an rgrid cluster secret for tests";

/// Two loopback listeners, the first one's host dialing the second's (the who-dials rule).
async fn dialer_and_acceptor() -> ((TcpListener, String), (TcpListener, String)) {
    let mut v = Vec::new();
    for _ in 0..2 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h = format!("http://{}", l.local_addr().unwrap());
        v.push((l, h));
    }
    let b = v.pop().unwrap();
    let a = v.pop().unwrap();
    if should_dial(&a.1, &b.1) {
        (a, b)
    } else {
        (b, a)
    }
}

/// A node on `listener` knowing `hosts`; `auth` sets its credentials. A long dial timeout
/// puts the second attempt at least 5 s after the first, so what the tests read after a
/// failure is the first attempt's.
fn start(
    listener: TcpListener,
    host: &str,
    hosts: &[&str],
    auth: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
) -> Manager {
    let options = Options {
        dial_timeout: Duration::from_secs(10),
        ..Options::default()
    };
    let builder = Manager::builder(host, hosts.iter().copied()).options(options);
    let m = auth(builder).build().unwrap();
    tokio::spawn(serve(listener, m.clone()));
    m.start();
    m
}

async fn failure_of(m: &Manager, host: &str) -> rgrid::ConnFailure {
    let conn = m.connection(host).unwrap();
    eventually("a failure is recorded", || conn.last_error().is_some()).await;
    conn.last_error().unwrap()
}

#[tokio::test]
async fn a_wrong_secret_surfaces_on_both_sides_after_one_attempt() {
    let ((la, a), (lb, b)) = dialer_and_acceptor().await;
    let hosts = [a.as_str(), b.as_str()];
    let jwt_a = GridJwt::new("not the cluster secret", a.clone()).unwrap();
    let jwt_b = GridJwt::new(SECRET, b.clone()).unwrap();
    let node_b = start(lb, &b, &hosts, |m| m.auth(jwt_b));
    let node_a = start(la, &a, &hosts, |m| m.auth(jwt_a));

    // The dialer got the refusal and its reason, on its first attempt.
    let f = failure_of(&node_a, &b).await;
    assert_eq!(
        f.error,
        Error::Rejected("auth token: invalid token signature".to_owned())
    );
    assert!(!f.refused_here);
    assert_eq!(f.attempts, 1);
    // The acceptor refused it, and says so.
    let f = failure_of(&node_b, &a).await;
    assert_eq!(
        f.error,
        Error::Rejected("auth token: invalid token signature".to_owned())
    );
    assert!(f.refused_here);

    // The start-up barrier gives up and names the peer and why.
    let down = node_a
        .wait_for_peers(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(down.down.len(), 1, "{down}");
    assert_eq!(down.down[0].host, b);
    assert_eq!(down.down[0].state, State::ConnectionError);
    assert_eq!(
        down.to_string(),
        format!(
            "1 peer(s) not connected: {b} (ConnectionError: connection rejected: auth token: invalid token signature)"
        )
    );
    bounded(node_a.shutdown()).await;
    bounded(node_b.shutdown()).await;
}

#[tokio::test]
async fn an_unknown_host_surfaces_as_the_refusal() {
    let ((la, a), (lb, b)) = dialer_and_acceptor().await;
    // b does not know a.
    let stranger = "http://127.0.0.9:9";
    let node_b = start(lb, &b, &[b.as_str(), stranger], |m| m.token("t"));
    let node_a = start(la, &a, &[a.as_str(), b.as_str()], |m| m.token("t"));
    let f = failure_of(&node_a, &b).await;
    assert_eq!(f.error, Error::Rejected("unknown incoming host".to_owned()));
    assert_eq!((f.refused_here, f.attempts), (false, 1));
    assert_eq!(
        node_a.connection(&b).unwrap().state(),
        State::ConnectionError
    );
    bounded(node_a.shutdown()).await;
    bounded(node_b.shutdown()).await;
}

#[tokio::test]
async fn a_lost_connection_records_why_and_the_barrier_passes_once_all_are_up() {
    let ((la, a), (lb, b)) = dialer_and_acceptor().await;
    let hosts = [a.as_str(), b.as_str()];
    let node_b = start(lb, &b, &hosts, |m| m.token("t"));
    let node_a = start(la, &a, &hosts, |m| m.token("t"));
    let conn = node_b.connection(&a).unwrap();
    let mut states = conn.watch_state();
    bounded(node_a.wait_for_peers(Duration::from_secs(10)))
        .await
        .unwrap();
    bounded(node_b.wait_for_peers(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(conn.last_error(), None);
    bounded(states.wait_for(|s| *s == State::Connected))
        .await
        .unwrap();

    bounded(node_a.shutdown()).await;
    bounded(states.wait_for(|s| *s != State::Connected))
        .await
        .unwrap();
    let f = conn.last_error().expect("the loss is recorded");
    assert_eq!(
        f.error,
        Error::Lost("the peer closed the connection".to_owned())
    );
    assert_eq!((f.refused_here, f.attempts), (false, 0));
    bounded(node_b.shutdown()).await;
}

/// RTTs read `None` until measured; `ping()` measures one on demand, and fails at once on a
/// connection that is down.
#[tokio::test(start_paused = true)]
async fn ping_measures_the_round_trip_on_demand() {
    let g = common::mem_grid_with(Options::default(), |_, _| {}).await;
    let conn = g.conn(0, 1);
    // Connected before the first ping interval: nothing measured yet.
    let s = conn.stats();
    assert_eq!(
        (s.last_rtt, s.max_rtt, s.last_ping_rtt_micros),
        (None, None, 0)
    );
    let rtt = bounded(conn.ping()).await.unwrap();
    let s = conn.stats();
    assert_eq!(s.last_rtt, Some(rtt));
    assert_eq!(s.max_rtt, Some(rtt));
    // Twice in a row: each ping waits for its own pong.
    let again = bounded(conn.ping()).await.unwrap();
    assert_eq!(conn.stats().last_rtt, Some(again));
    g.shutdown().await;
    assert_eq!(bounded(conn.ping()).await, Err(Error::Disconnected));
}
