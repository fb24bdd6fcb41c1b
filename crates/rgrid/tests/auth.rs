//! Authentication end to end on loopback: two-node grids on `GridJwt` and `MinioJwt`, a node
//! with the wrong secret refused with an `auth token:` reason, audience-bound tokens replayed
//! by a third party (scenarios A1, A2, A5), and no token ever in the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::raw::{Node, handshake, node_with};
use common::{Captured, bounded};
use hmac::{Hmac, KeyInit, Mac};
use rgrid::{
    GridJwt, HandlerId, Manager, ManagerBuilder, MinioJwt, Options, RemoteError, State,
    TokenSource, serve,
};
use sha2::Sha512;
use tokio::net::TcpListener;

const SECRET: &str = "an rgrid cluster secret for tests";

/// Two loopback listeners and their hosts.
async fn two_hosts() -> (Vec<TcpListener>, Vec<String>) {
    let mut listeners = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        hosts.push(format!("http://{}", l.local_addr().unwrap()));
        listeners.push(l);
    }
    (listeners, hosts)
}

/// Starts node `i` of `hosts` on `listener` with an echo handler on `HandlerId::TEST`;
/// `auth` sets its authentication.
fn start(
    i: usize,
    hosts: &[String],
    listener: TcpListener,
    auth: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
) -> Manager {
    let builder = Manager::builder(hosts[i].clone(), hosts.to_vec()).options(Options::default());
    let m = auth(builder).build().unwrap();
    m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
        .unwrap();
    tokio::spawn(serve(listener, m.clone()));
    m.start();
    m
}

/// Both connections up and a call each way answered.
async fn assert_serving(a: &Manager, b: &Manager) {
    for (from, to) in [(a, b), (b, a)] {
        let conn = from.connection(to.host()).unwrap();
        bounded(conn.wait_for_connect()).await.unwrap();
        let reply = bounded(conn.request(HandlerId::TEST, "hello"))
            .await
            .unwrap();
        assert_eq!(&reply[..], b"hello");
    }
}

async fn shutdown(nodes: &[&Manager]) {
    for n in nodes {
        bounded(n.shutdown()).await;
    }
}

#[tokio::test]
async fn grid_jwt_nodes_connect_and_serve() {
    let (mut ls, hosts) = two_hosts().await;
    let b = start(1, &hosts, ls.pop().unwrap(), |m| m.jwt_secret(SECRET));
    let a = start(0, &hosts, ls.pop().unwrap(), |m| m.jwt_secret(SECRET));
    assert_serving(&a, &b).await;
    shutdown(&[&a, &b]).await;
}

#[tokio::test]
async fn configured_grid_jwt_with_http_check_connects() {
    let (mut ls, hosts) = two_hosts().await;
    let mut nodes = Vec::new();
    for (i, l) in ls.drain(..).enumerate() {
        let jwt = GridJwt::new(SECRET, hosts[i].clone())
            .unwrap()
            .lifetime(Duration::from_secs(60))
            .clock_skew(Duration::from_secs(30));
        let check = jwt.clone();
        nodes.push(start(i, &hosts, l, move |m| {
            m.auth(jwt)
                .http_auth(move |headers| check.check_upgrade(headers))
        }));
    }
    assert_serving(&nodes[0], &nodes[1]).await;
    shutdown(&[&nodes[0], &nodes[1]]).await;
}

#[tokio::test]
async fn minio_jwt_nodes_connect_and_serve() {
    let (mut ls, hosts) = two_hosts().await;
    let mut nodes = Vec::new();
    for (i, l) in ls.drain(..).enumerate() {
        // With MinIO's HTTP-level check as well, as MinIO mounts the grid.
        let check = MinioJwt::new("minioadmin", "minio secret key").unwrap();
        nodes.push(start(i, &hosts, l, move |m| {
            m.minio_jwt("minioadmin", "minio secret key")
                .http_auth(move |headers| check.check_upgrade(headers))
        }));
    }
    assert_serving(&nodes[0], &nodes[1]).await;
    shutdown(&[&nodes[0], &nodes[1]]).await;
}

#[tokio::test]
async fn bad_credentials_fail_the_build() {
    let hosts = ["http://a:1", "http://b:1"];
    let err = Manager::builder(hosts[0], hosts)
        .jwt_secret("")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("secret"), "{err}");
    let err = Manager::builder(hosts[0], hosts)
        .minio_jwt("", "sk")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("access key"), "{err}");
    // Setting a good one afterwards does not hide the mistake.
    assert!(
        Manager::builder(hosts[0], hosts)
            .jwt_secret("")
            .token("t")
            .build()
            .is_err()
    );
}

/// A node on loopback authenticating with `GridJwt` on `SECRET`, with host names it accepts
/// connections from.
async fn jwt_node() -> Node {
    node_with(
        Options::default(),
        |b| b.jwt_secret(SECRET),
        |m| {
            m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
                .unwrap();
        },
    )
    .await
}

/// An HS512 token over `claims`, signed here with the `hmac` crate.
fn forge(secret: &str, claims: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn refused_tokens_name_the_reason_and_never_connect() {
    let n = jwt_node().await;
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let from_peer = GridJwt::new(SECRET, n.peer.clone()).unwrap();
    let from_peer2 = GridJwt::new(SECRET, n.peer2.clone()).unwrap();
    // A token from peer to this node with the given times, signed with the right secret.
    let timed = |iat: u64, exp: u64| {
        let claims = format!(
            r#"{{"iss":"{}","aud":"{}","iat":{iat},"exp":{exp}}}"#,
            n.peer, n.host
        );
        forge(SECRET, &claims)
    };
    let wrong_secret = GridJwt::new("not the cluster secret", n.peer.clone()).unwrap();
    let minio = MinioJwt::new("minioadmin", SECRET).unwrap();
    // (claimed host, token, expected reason)
    let cases = [
        // A1: wrong secret, missing, malformed, another scheme's token.
        (
            n.peer.clone(),
            wrong_secret.token_for(&n.host),
            "auth token: invalid token signature",
        ),
        (n.peer.clone(), String::new(), "auth token: malformed token"),
        (
            n.peer.clone(),
            "not.a.jwt".to_owned(),
            "auth token: malformed token",
        ),
        (
            n.peer.clone(),
            "x".repeat(rgrid::MAX_TOKEN_LEN + 1),
            "auth token: token too long",
        ),
        (
            n.peer.clone(),
            minio.token(),
            "auth token: token lacks a required claim",
        ),
        // A2/A5: a token peer made for another host (peer2), replayed here by a third party
        // claiming to be peer: wrong audience.
        (
            n.peer.clone(),
            from_peer.token_for(&n.peer2),
            "auth token: token audience is not this host",
        ),
        // A token made for this node by peer2, replayed by someone claiming to be peer.
        (
            n.peer.clone(),
            from_peer2.token_for(&n.host),
            "auth token: token issuer is not the connecting host",
        ),
        // A2: expired (an hour old, 10 minutes lifetime).
        (
            n.peer.clone(),
            timed(secs - 3600, secs - 3000),
            "auth token: token expired",
        ),
        // Signed for the far future.
        (
            n.peer.clone(),
            timed(secs, secs + 100 * 365 * 86400),
            "auth token: token lifetime out of bounds",
        ),
    ];
    for (host, token, reason) in &cases {
        let (resp, _ws) = handshake(&n, host, token, now).await;
        assert!(!resp.accepted, "{reason}: accepted");
        assert_eq!(resp.rejected_reason, *reason);
        assert!(!resp.rejected_reason.contains(token.as_str()) || token.is_empty());
    }
    let conn = n.manager.connection(&n.peer).unwrap();
    assert_ne!(conn.state(), State::Connected);
    // The same peer with its own token for this node gets in.
    let (resp, _ws) = handshake(&n, &n.peer, &from_peer.token_for(&n.host), now).await;
    assert!(resp.accepted, "{}", resp.rejected_reason);
    bounded(conn.wait_for_connect()).await.unwrap();
    bounded(n.manager.shutdown()).await;
}

/// Captures every event (all levels) of the process. A global subscriber, not a
/// thread-local one: with scoped subscribers, tracing's per-callsite interest cache can be
/// computed by another test's thread while no capturing subscriber is registered, and this
/// test's events are then skipped (rarely, under load). Only one test calls this.
fn capture_logs() -> Captured {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    logs
}

/// Waits until the logs contain `needle`.
/// Waits until a log line mentions `needle` and one of `hosts` (other tests log too).
async fn logged(logs: &Captured, needle: &str, hosts: &[String]) {
    let addrs: Vec<&str> = hosts
        .iter()
        .map(|h| h.trim_start_matches("http://"))
        .collect();
    let seen = || {
        logs.text()
            .lines()
            .any(|l| l.contains(needle) && addrs.iter().any(|a| l.contains(a)))
    };
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{needle:?} never logged; the logs:\n{}",
        logs.text()
    );
}

fn assert_absent(logs: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!logs.contains(s), "a secret or token was logged: {logs}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_secret_is_refused_and_no_token_is_ever_logged() {
    let logs = capture_logs();
    let (mut ls, hosts) = two_hosts().await;
    let jwt_b = GridJwt::new(SECRET, hosts[1].clone()).unwrap();
    let jwt_a = GridJwt::new("another secret", hosts[0].clone()).unwrap();
    let b = start(1, &hosts, ls.pop().unwrap(), {
        let j = jwt_b.clone();
        |m| m.auth(j)
    });
    let a = start(0, &hosts, ls.pop().unwrap(), {
        let j = jwt_a.clone();
        |m| m.auth(j)
    });
    // The acceptor logs the refusal, the dialer logs the reason it got back.
    logged(&logs, "rejected incoming connection", &hosts).await;
    logged(
        &logs,
        "connection rejected: auth token: invalid token signature",
        &hosts,
    )
    .await;
    for (from, to) in [(&a, &b), (&b, &a)] {
        assert_ne!(
            from.connection(to.host()).unwrap().state(),
            State::Connected
        );
    }
    // The clones share the sources' caches: these are the tokens that were sent.
    let sent = [jwt_a.token_for(&hosts[1]), jwt_b.token_for(&hosts[0])];
    let text = logs.text();
    for t in &sent {
        let sig = t.rsplit('.').next().unwrap();
        assert_absent(&text, &[t, sig, SECRET, "another secret"]);
    }
    shutdown(&[&a, &b]).await;

    // Refused at the HTTP level (403) by MinIO's upgrade check.
    let (mut ls, hosts) = two_hosts().await;
    let minio_b = MinioJwt::new("minioadmin", "right secret").unwrap();
    let minio_a = MinioJwt::new("minioadmin", "wrong secret").unwrap();
    let b = start(1, &hosts, ls.pop().unwrap(), {
        let (j, check) = (minio_b.clone(), minio_b.clone());
        move |m| {
            m.auth(j)
                .http_auth(move |headers| check.check_upgrade(headers))
        }
    });
    let a = start(0, &hosts, ls.pop().unwrap(), {
        let (j, check) = (minio_a.clone(), minio_a.clone());
        move |m| {
            m.auth(j)
                .http_auth(move |headers| check.check_upgrade(headers))
        }
    });
    logged(&logs, "grid upgrade refused", &hosts).await;
    logged(&logs, "403", &hosts).await;
    shutdown(&[&a, &b]).await;
    let text = logs.text();
    assert_absent(
        &text,
        &[
            &minio_a.token(),
            &minio_b.token(),
            "right secret",
            "wrong secret",
        ],
    );
    for t in [minio_a.token(), minio_b.token()] {
        assert_absent(&text, &[t.rsplit('.').next().unwrap()]);
    }

    // Accepted handshakes with each kind of token: no token in the logs either.
    let static_token = "s3cr3t-static-token-that-must-not-leak";
    let minio_secret = "minio-secret-key-that-must-not-leak";
    let minio = MinioJwt::new("minioadmin", minio_secret).unwrap();
    let (mut ls, hosts) = two_hosts().await;
    let grid: Vec<GridJwt> = hosts
        .iter()
        .map(|h| GridJwt::new(SECRET, h.clone()).unwrap())
        .collect();
    let b = start(1, &hosts, ls.pop().unwrap(), |m| m.auth(grid[1].clone()));
    let a = start(0, &hosts, ls.pop().unwrap(), |m| m.auth(grid[0].clone()));
    assert_serving(&a, &b).await;
    shutdown(&[&a, &b]).await;
    let grid_sent = [grid[0].token_for(&hosts[1]), grid[1].token_for(&hosts[0])];
    for use_minio in [false, true] {
        let (mut ls, hosts) = two_hosts().await;
        let auth = |m: ManagerBuilder| {
            if use_minio {
                m.auth(minio.clone())
            } else {
                m.token(static_token)
            }
        };
        let b = start(1, &hosts, ls.pop().unwrap(), auth);
        let a = start(0, &hosts, ls.pop().unwrap(), auth);
        assert_serving(&a, &b).await;
        shutdown(&[&a, &b]).await;
    }
    let text = logs.text();
    assert!(text.contains("grid"), "logs were captured: {text}");
    let minio_token = minio.token();
    let mut secrets = vec![static_token, minio_secret, SECRET, minio_token.as_str()];
    for t in grid_sent.iter().chain([&minio_token]) {
        // The signature and the claims segment too, not only the whole token.
        let mut parts = t.split('.').skip(1);
        secrets.extend([parts.next().unwrap(), parts.next().unwrap()]);
        secrets.push(t);
    }
    assert_absent(&text, &secrets);
}
