//! TLS (feature `tls`, scenario A6): grids over https on loopback (single requests and
//! streams, every mux closed afterwards), refusals with the distinct TLS error (wrong CA,
//! host name mismatch, expired certificate), a plaintext client against the TLS listener (no
//! fallback, bounded handshake), mutual TLS, the insecure test switch, and the checksum rule
//! (no CRC only when both hosts are https).
//!
//! Certificates are generated per test with rcgen; every wait is bounded.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::bounded;
use common::raw::{TOKEN, handshake_on, raw_request, recv_frame};
use futures_util::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rgrid::proto::{DecodeLimits, Flags, Message, Op, should_dial};
use rgrid::transport::{ConnDialer, WsDialer};
use rgrid::{
    DEFAULT_ROUTE_PATH, Error, HandlerId, Manager, Options, RemoteError, State, StaticToken,
    TlsConfig, WebSocket, connect_ws, serve,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses).
    fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "grid node");
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A certificate for localhost and 127.0.0.1.
    fn node(&self) -> Leaf {
        self.leaf(&["localhost", "127.0.0.1"])
    }
}

/// A node config trusting `ca` and serving `leaf`.
fn config(ca: &Ca, leaf: &Leaf) -> TlsConfig {
    TlsConfig::builder()
        .ca_pem(ca.pem())
        .identity_pem(&leaf.cert, &leaf.key)
        .build()
        .unwrap()
}

/// A dialer (no client certificate) trusting `ca`.
fn client_only(ca: &Ca) -> TlsConfig {
    TlsConfig::builder().ca_pem(ca.pem()).build().unwrap()
}

fn dialer(tls: TlsConfig) -> WsDialer {
    connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new(TOKEN))).tls(tls)
}

/// Registers a single echo on `TEST` and an echo stream (in 1, out 1) on `TEST2`.
fn register(m: &Manager) {
    m.register_single(HandlerId::TEST, |p| async move { Ok::<_, RemoteError>(p) })
        .unwrap();
    m.register_stream(
        HandlerId::TEST2,
        None,
        rgrid::RawStreamHandler::new(1, 1, |_, _, input, out| async move {
            let Some(mut input) = input else {
                return Err(RemoteError::new("no input"));
            };
            while let Some(msg) = input.recv().await {
                out.send(msg).await?;
            }
            Ok(())
        }),
    )
    .unwrap();
}

async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let mut ls = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        hosts.push(format!("https://{}", l.local_addr().unwrap()));
        ls.push(l);
    }
    (ls, hosts)
}

/// Starts one node per listener, node `i` with `tls(i)`, serving and dialing.
fn start(
    listeners: Vec<TcpListener>,
    hosts: &[String],
    options: &Options,
    tls: impl Fn(usize) -> TlsConfig,
) -> Vec<Manager> {
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let m = Manager::builder(hosts[i].clone(), hosts.to_vec())
                .options(options.clone())
                .token(TOKEN)
                .tls(tls(i))
                .build()
                .unwrap();
            register(&m);
            tokio::spawn(serve(l, m.clone()));
            m.start();
            m
        })
        .collect()
}

async fn shutdown(nodes: &[Manager]) {
    for n in nodes {
        bounded(n.shutdown()).await;
    }
}

/// No mux left open on either side of `a`–`b` (cleanup is asynchronous: polled for up to
/// about 2 s).
async fn assert_no_open_mux(a: &Manager, b: &Manager) {
    let ab = a.connection(b.host()).unwrap();
    let ba = b.connection(a.host()).unwrap();
    for _ in 0..200 {
        let idle = [&ab, &ba].iter().all(|c| {
            let s = c.stats();
            s.incoming_muxes == 0 && s.outgoing_muxes == 0
        });
        if idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("muxes left open: {:?} / {:?}", ab.stats(), ba.stats());
}

/// One echo request and one echo stream from `a` to `b`.
async fn exercise(a: &Manager, b: &Manager) {
    let conn = a.connection(b.host()).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();
    let reply = bounded(conn.request(HandlerId::TEST, "over tls"))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"over tls");

    let mut stream = bounded(conn.open_stream(HandlerId::TEST2, ""))
        .await
        .unwrap();
    for word in ["one", "two", "three"] {
        bounded(stream.send(word)).await.unwrap();
    }
    stream.close_send();
    let mut got = Vec::new();
    while let Some(msg) = bounded(stream.next()).await {
        got.push(msg.unwrap());
    }
    assert_eq!(got, ["one", "two", "three"]);
    drop(stream);
    assert_no_open_mux(a, b).await;
}

#[tokio::test]
async fn three_https_nodes_make_requests_and_streams() {
    let ca = Ca::new("grid CA");
    let (ls, hosts) = listeners(3).await;
    let leaves: Vec<Leaf> = (0..3).map(|_| ca.node()).collect();
    let nodes = start(ls, &hosts, &Options::default(), |i| config(&ca, &leaves[i]));
    for a in &nodes {
        for b in nodes.iter().filter(|b| b.host() != a.host()) {
            exercise(a, b).await;
        }
    }
    for a in &nodes {
        for c in a.connections() {
            assert_eq!(c.state(), State::Connected);
            assert_eq!(c.stats().reconnects, 0);
        }
    }
    shutdown(&nodes).await;
}

#[tokio::test]
async fn mutual_tls_grid_works() {
    let ca = Ca::new("grid CA");
    let (ls, hosts) = listeners(2).await;
    let leaves: Vec<Leaf> = (0..2).map(|_| ca.node()).collect();
    let nodes = start(ls, &hosts, &Options::default(), |i| {
        TlsConfig::builder()
            .ca_pem(ca.pem())
            .identity_pem(&leaves[i].cert, &leaves[i].key)
            .require_client_cert()
            .build()
            .unwrap()
    });
    exercise(&nodes[0], &nodes[1]).await;
    exercise(&nodes[1], &nodes[0]).await;
    shutdown(&nodes).await;
}

/// A node serving TLS with `tls` on 127.0.0.1 (host `https://127.0.0.1:port`), whose peer
/// host names (`peer`, https) dial it.
struct TlsNode {
    manager: Manager,
    host: String,
    /// An https host name the node accepts connections from (it does not dial it).
    peer: String,
    /// An http host name the node accepts connections from.
    plain_peer: String,
}

fn accepted_name(scheme: &str, host: &str) -> String {
    (1..1000)
        .map(|i| format!("{scheme}://127.0.0.2:{i}"))
        .find(|x| should_dial(x, host))
        .unwrap()
}

async fn tls_node(tls: TlsConfig, options: Options) -> TlsNode {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("https://{}", l.local_addr().unwrap());
    let peer = accepted_name("https", &host);
    let plain_peer = accepted_name("http", &host);
    let manager = Manager::builder(host.clone(), [&host, &peer, &plain_peer].map(String::from))
        .options(options)
        .token(TOKEN)
        .tls(tls)
        .build()
        .unwrap();
    register(&manager);
    tokio::spawn(serve(l, manager.clone()));
    TlsNode {
        manager,
        host,
        peer,
        plain_peer,
    }
}

/// Dials `node` with `dialer` and completes the grid handshake as `as_host`.
async fn raw_peer(node: &TlsNode, dialer: &WsDialer, as_host: &str) -> WebSocket {
    let ws = bounded(dialer.dial(&node.host)).await.unwrap();
    let (resp, ws) = handshake_on(ws, as_host, TOKEN, SystemTime::now()).await;
    assert!(resp.accepted, "{}", resp.rejected_reason);
    let conn = node.manager.connection(as_host).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();
    ws
}

#[tokio::test]
async fn checksums_are_off_only_between_two_https_hosts() {
    let ca = Ca::new("grid CA");
    let node = tls_node(config(&ca, &ca.node()), Options::default()).await;
    let dialer = dialer(client_only(&ca));

    // https local, https remote: integrity comes from TLS, no CRC either way.
    let mut ws = raw_peer(&node, &dialer, &node.peer).await;
    let answer = raw_request(&mut ws, 1, b"hi").await;
    assert_eq!(answer.payload.as_deref(), Some(&b"hi"[..]));
    assert!(answer.flags.contains(Flags::EOF));
    assert!(!answer.flags.contains(Flags::CRC), "{:?}", answer.flags);
    let conn = node.manager.connection(&node.peer).unwrap();
    let call = tokio::spawn(async move { conn.request(HandlerId::TEST2, "x").await });
    let frame = bounded(recv_frame(&mut ws)).await.unwrap();
    let m = Message::decode(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!(m.op, Op::REQUEST);
    assert!(!m.flags.contains(Flags::CRC), "{:?}", m.flags);
    call.abort();
    drop(ws);

    // https local, http remote (over the same TLS transport): checksummed.
    let mut ws = raw_peer(&node, &dialer, &node.plain_peer).await;
    let answer = raw_request(&mut ws, 1, b"hi").await;
    assert!(
        answer.flags.contains(Flags::CRC | Flags::EOF),
        "{:?}",
        answer.flags
    );
    drop(ws);
    bounded(node.manager.shutdown()).await;

    // http local, http remote: checksummed (see also tests/handshake.rs).
    let plain = common::raw::node(Options::default(), register).await;
    let mut ws = common::raw::connected_peer(&plain).await;
    let answer = raw_request(&mut ws, 1, b"hi").await;
    assert!(
        answer.flags.contains(Flags::CRC | Flags::EOF),
        "{:?}",
        answer.flags
    );
    bounded(plain.manager.shutdown()).await;
}

#[tokio::test]
async fn http_local_with_https_remote_checksums() {
    // A mixed grid: the http node dials the https one through TLS; both directions carry the
    // CRC (only one end is https).
    let ca = Ca::new("grid CA");
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = format!("https://{}", tls_listener.local_addr().unwrap());
    // An http name that dials the https node.
    let http = (1..1000)
        .map(|i| format!("http://127.0.0.3:{i}"))
        .find(|x| should_dial(x, &https))
        .unwrap();
    let hosts = [https.clone(), http.clone()];
    let server = Manager::builder(https.clone(), hosts.clone())
        .token(TOKEN)
        .tls(config(&ca, &ca.node()))
        .build()
        .unwrap();
    register(&server);
    tokio::spawn(serve(tls_listener, server.clone()));
    let client = Manager::builder(http.clone(), hosts.clone())
        .token(TOKEN)
        .tls(client_only(&ca))
        .build()
        .unwrap();
    register(&client);
    client.start();
    let conn = client.connection(&https).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();
    let reply = bounded(conn.request(HandlerId::TEST, "mixed"))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"mixed");
    let back = server.connection(&http).unwrap();
    let reply = bounded(back.request(HandlerId::TEST, "back"))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"back");
    bounded(client.shutdown()).await;
    bounded(server.shutdown()).await;
}

/// Dials through `inner` and reports each attempt's outcome on `attempts`.
struct Reporting {
    inner: WsDialer,
    attempts: tokio::sync::mpsc::UnboundedSender<Result<(), Error>>,
}

impl ConnDialer for Reporting {
    fn dial(&self, remote: &str) -> rgrid::transport::DialFuture {
        let dial = self.inner.dial(remote);
        let attempts = self.attempts.clone();
        Box::pin(async move {
            let res = dial.await;
            let _ = attempts.send(res.as_ref().map(|_| ()).map_err(Clone::clone));
            res
        })
    }
}

/// Dials `node` and returns the error.
async fn dial_err(node: &TlsNode, dialer: &WsDialer) -> Error {
    match bounded(dialer.dial(&node.host)).await {
        Ok(_) => panic!("dial to {} succeeded", node.host),
        Err(e) => e,
    }
}

fn assert_tls(e: &Error, want: &str) {
    match e {
        Error::Tls(text) => assert!(text.text().contains(want), "{want:?} not in {text:?}"),
        other => panic!("want a TLS error with {want:?}, got {other:?}"),
    }
    assert!(e.to_string().starts_with("tls: "), "{e}");
}

#[tokio::test]
async fn wrong_ca_is_refused_and_never_connects() {
    let (ca, other) = (Ca::new("grid CA"), Ca::new("some other CA"));
    let node = tls_node(config(&ca, &ca.node()), Options::default()).await;
    let e = dial_err(&node, &dialer(client_only(&other))).await;
    assert_tls(&e, "UnknownIssuer");

    // Two managers with different CAs: whichever dials fails, and nothing ever connects.
    // Their dialers report every attempt; after two attempts have failed the TLS way,
    // neither side has ever been connected.
    let (ls, hosts) = listeners(2).await;
    let cas = [ca, other];
    let leaves = [cas[0].node(), cas[1].node()];
    let opts = Options {
        dial_timeout: Duration::from_millis(500),
        ..Options::default()
    };
    let (attempts_tx, mut attempts) = tokio::sync::mpsc::unbounded_channel();
    let nodes: Vec<Manager> = ls
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let tls = config(&cas[i], &leaves[i]);
            let m = Manager::builder(hosts[i].clone(), hosts.clone())
                .options(opts.clone())
                .token(TOKEN)
                .tls(tls.clone())
                .dialer(Reporting {
                    inner: dialer(tls).timeout(opts.dial_timeout),
                    attempts: attempts_tx.clone(),
                })
                .build()
                .unwrap();
            register(&m);
            tokio::spawn(serve(l, m.clone()));
            m.start();
            m
        })
        .collect();
    for _ in 0..2 {
        match bounded(attempts.recv()).await.unwrap() {
            Ok(()) => panic!("a dial across different CAs succeeded"),
            Err(e) => assert_tls(&e, "UnknownIssuer"),
        }
    }
    for n in &nodes {
        for c in n.connections() {
            assert_ne!(c.state(), State::Connected);
            assert_eq!(c.stats().last_connect_unix_nanos, 0);
        }
    }
    shutdown(&nodes).await;
    bounded(node.manager.shutdown()).await;
}

#[tokio::test]
async fn host_name_mismatch_is_refused() {
    let ca = Ca::new("grid CA");
    let node = tls_node(
        config(&ca, &ca.leaf(&["other.example"])),
        Options::default(),
    )
    .await;
    let e = dial_err(&node, &dialer(client_only(&ca))).await;
    assert_tls(&e, "not valid for name");

    // A certificate for "localhost" only: good for https://localhost, not for the IP.
    let node = tls_node(config(&ca, &ca.leaf(&["localhost"])), Options::default()).await;
    let d = dialer(client_only(&ca));
    assert_tls(&dial_err(&node, &d).await, "not valid for name");
    let by_name = node.host.replace("127.0.0.1", "localhost");
    bounded(d.dial(&by_name)).await.unwrap();
    bounded(node.manager.shutdown()).await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let ca = Ca::new("grid CA");
    let expired = ca.leaf_with(&["127.0.0.1"], |p| {
        p.not_before = date_time_ymd(2000, 1, 1);
        p.not_after = date_time_ymd(2001, 1, 1);
    });
    let node = tls_node(config(&ca, &expired), Options::default()).await;
    let e = dial_err(&node, &dialer(client_only(&ca))).await;
    assert_tls(&e, "certificate expired");
    bounded(node.manager.shutdown()).await;
}

#[tokio::test]
async fn plaintext_client_is_dropped_without_fallback() {
    let ca = Ca::new("grid CA");
    let options = Options {
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let node = tls_node(config(&ca, &ca.node()), options).await;
    let plain_url = node.host.replace("https://", "http://");

    // A plaintext websocket dial fails; no HTTP answer ever comes back.
    let plain = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new(TOKEN)));
    let e = bounded(plain.dial(&plain_url)).await.err().unwrap();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    let addr = node.host.trim_start_matches("https://").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /minio/grid/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = bounded(tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP"), "plaintext answer: {buf:?}");

    // A client that never starts the TLS handshake is dropped after the handshake timeout.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut byte))
        .await
        .expect("the server closes an idle client")
        .unwrap_or(0);
    assert_eq!(n, 0);

    // The node never saw a connection, and still serves TLS dialers.
    for c in node.manager.connections() {
        assert_eq!(c.stats().last_connect_unix_nanos, 0);
    }
    bounded(dialer(client_only(&ca)).dial(&node.host))
        .await
        .unwrap();
    bounded(node.manager.shutdown()).await;
}

#[tokio::test]
async fn mutual_tls_refuses_dialers_without_a_trusted_certificate() {
    let (ca, other) = (Ca::new("grid CA"), Ca::new("some other CA"));
    let server = TlsConfig::builder()
        .ca_pem(ca.pem())
        .identity_pem(ca.node().cert, ca.node().key)
        .build();
    // identity_pem above mixes two different leaves' cert and key: rustls refuses the pair.
    assert!(server.is_err());
    let leaf = ca.node();
    let server = TlsConfig::builder()
        .ca_pem(ca.pem())
        .identity_pem(&leaf.cert, &leaf.key)
        .require_client_cert()
        .build()
        .unwrap();
    let node = tls_node(server, Options::default()).await;

    // A refused client certificate shows as a TLS error (under TLS 1.3 the alert may only
    // arrive during the upgrade, or the server's close may win the race as a reset).
    let refused = |e: Error| match e {
        Error::Tls(_) => {}
        Error::Transport(t) if t.text().contains("reset") || t.text().contains("pipe") => {}
        other => panic!("want a TLS refusal, got {other:?}"),
    };
    refused(dial_err(&node, &dialer(client_only(&ca))).await);
    let stranger = other.node();
    let with_foreign_cert = TlsConfig::builder()
        .ca_pem(ca.pem())
        .identity_pem(&stranger.cert, &stranger.key)
        .build()
        .unwrap();
    refused(dial_err(&node, &dialer(with_foreign_cert)).await);

    let mine = ca.node();
    let with_cert = TlsConfig::builder()
        .ca_pem(ca.pem())
        .identity_pem(&mine.cert, &mine.key)
        .build()
        .unwrap();
    let mut ws = raw_peer(&node, &dialer(with_cert), &node.peer).await;
    let answer = raw_request(&mut ws, 1, b"mtls").await;
    assert_eq!(answer.payload.as_deref(), Some(&b"mtls"[..]));
    bounded(node.manager.shutdown()).await;
}

#[tokio::test]
async fn dangerous_switch_accepts_an_untrusted_certificate() {
    let untrusted = Ca::new("nobody trusts me");
    let expired = untrusted.leaf_with(&["other.example"], |p| {
        p.not_after = date_time_ymd(2001, 1, 1);
    });
    let node = tls_node(config(&untrusted, &expired), Options::default()).await;
    let trusting = Ca::new("grid CA");
    assert_tls(
        &dial_err(&node, &dialer(client_only(&trusting))).await,
        "invalid peer certificate",
    );
    let insecure = TlsConfig::builder()
        .dangerous_accept_any_server_cert()
        .build()
        .unwrap();
    let mut ws = raw_peer(&node, &dialer(insecure), &node.peer).await;
    let answer = raw_request(&mut ws, 1, b"trust me").await;
    assert_eq!(answer.payload.as_deref(), Some(&b"trust me"[..]));
    bounded(node.manager.shutdown()).await;
}

#[tokio::test]
async fn https_needs_a_tls_config_and_a_certificate_to_serve() {
    let hosts = ["https://127.0.0.1:1", "https://127.0.0.1:2"];
    let e = Manager::builder(hosts[0], hosts)
        .token(TOKEN)
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Config(t) if t.contains("https")),
        "{e:?}"
    );

    // The plain dialer refuses https hosts instead of dialing them in plaintext.
    let plain = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new(TOKEN)));
    let e = bounded(plain.dial(hosts[1])).await.err().unwrap();
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    // A TLS config without a certificate can dial but not serve: serve returns at once.
    let ca = Ca::new("grid CA");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = format!("https://{}", l.local_addr().unwrap());
    let m = Manager::builder(local.clone(), [local.clone(), hosts[1].to_owned()])
        .token(TOKEN)
        .tls(client_only(&ca))
        .build()
        .unwrap();
    bounded(serve(l, m.clone())).await;
    bounded(m.shutdown()).await;
}

#[tokio::test]
async fn stream_over_tls_is_cancelled_cleanly() {
    let ca = Ca::new("grid CA");
    let (ls, hosts) = listeners(2).await;
    let leaves: Vec<Leaf> = (0..2).map(|_| ca.node()).collect();
    let nodes = start(ls, &hosts, &Options::default(), |i| config(&ca, &leaves[i]));
    let conn = nodes[0].connection(nodes[1].host()).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();
    let mut stream = bounded(conn.open_stream(HandlerId::TEST2, ""))
        .await
        .unwrap();
    bounded(stream.send("first")).await.unwrap();
    assert_eq!(
        &bounded(stream.next()).await.unwrap().unwrap()[..],
        b"first"
    );
    // Dropped mid-stream: both sides forget it.
    drop(stream);
    assert_no_open_mux(&nodes[0], &nodes[1]).await;
    shutdown(&nodes).await;
}
