//! The accepting side of the handshake and hostile peers, driven by a raw protocol client:
//! token, unknown host, clock skew and dial-direction checks (with the reason sent back),
//! a silent peer that never answers, and garbage from a connected peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::bounded;
use common::raw::{Node, TOKEN, handshake, host_where, raw_request, recv_frame, send};
use futures_util::SinkExt;
use rgrid::proto::{DecodeLimits, Flags, Message, Op};
use rgrid::transport::ConnDialer;
use rgrid::{
    DEFAULT_ROUTE_PATH, HandlerId, Manager, Options, RemoteError, State, StaticToken, connect_ws,
    serve,
};
use tokio::net::TcpListener;

/// A node whose `HandlerId::TEST` echoes and counts its calls.
async fn node() -> (Node, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let n = common::raw::node(Options::default(), move |m| {
        m.register_single(HandlerId::TEST, move |p| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, RemoteError>(p) }
        })
        .unwrap();
    })
    .await;
    (n, calls)
}

#[tokio::test]
async fn accepted_peer_can_call_with_checksums() {
    let (n, calls) = node().await;
    let (resp, mut ws) = handshake(&n, &n.peer, TOKEN, SystemTime::now()).await;
    assert!(resp.accepted, "{}", resp.rejected_reason);
    assert_eq!(resp.rejected_reason, "");
    let conn = n.manager.connection(&n.peer).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();
    let answer = raw_request(&mut ws, 1, b"hi").await;
    assert_eq!(answer.mux, 1);
    assert_eq!(answer.payload.as_deref(), Some(&b"hi"[..]));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(answer.flags.contains(Flags::CRC | Flags::EOF));
    // The node calls back over the same socket: its request arrives here.
    let back = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request(HandlerId::TEST2, "ping").await }
    });
    let frame = bounded(recv_frame(&mut ws)).await.unwrap();
    let m = Message::decode(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (m.op, m.handler, m.deadline_ms),
        (Op::REQUEST, HandlerId::TEST2, 60_000)
    );
    assert!(m.flags.contains(Flags::CRC | Flags::EOF));
    send(
        &mut ws,
        Message {
            mux_id: m.mux_id,
            flags: Flags::CRC | Flags::EOF,
            payload: Some(b"pong"),
            ..Message::new(Op::RESPONSE)
        },
    )
    .await;
    assert_eq!(&bounded(back).await.unwrap().unwrap()[..], b"pong");
    n.manager.shutdown().await;
}

#[tokio::test]
async fn refusals_carry_their_reason_and_run_no_handler() {
    let (n, calls) = node().await;
    let now = SystemTime::now();
    let cases = [
        (n.peer.clone(), "wrong", now, "auth token: "),
        (
            "http://10.9.9.9:1".to_owned(),
            TOKEN,
            now,
            "unknown incoming host",
        ),
        (
            n.peer.clone(),
            TOKEN,
            now - Duration::from_secs(301),
            "time difference too large",
        ),
        (
            n.peer.clone(),
            TOKEN,
            now + Duration::from_secs(301),
            "time difference too large",
        ),
        (
            n.dialed.clone(),
            TOKEN,
            now,
            "expected to be client side, not server side",
        ),
    ];
    for (host, token, time, reason) in cases {
        let (resp, mut ws) = handshake(&n, &host, token, time).await;
        assert!(!resp.accepted, "{host} {token} accepted");
        assert!(
            resp.rejected_reason.contains(reason),
            "{}",
            resp.rejected_reason
        );
        // The node closes the socket; a request sent anyway is never handled.
        let _ = ws
            .send(tokio_websockets::Message::binary(Bytes::from_static(b"x")))
            .await;
        assert!(bounded(recv_frame(&mut ws)).await.is_none());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_ne!(
        n.manager.connection(&n.peer).unwrap().state(),
        State::Connected
    );
    // 4 min 59 s of skew is fine.
    let (resp, _ws) = handshake(&n, &n.peer, TOKEN, now - Duration::from_secs(299)).await;
    assert!(resp.accepted, "{}", resp.rejected_reason);
    n.manager.shutdown().await;
}

#[tokio::test]
async fn bad_input_closes_only_that_connection_and_the_peer_can_reconnect() {
    let (n, calls) = node().await;
    let conn = n.manager.connection(&n.peer).unwrap();
    // A second peer whose connection must live through all of it.
    let (resp, mut other) = handshake(&n, &n.peer2, TOKEN, SystemTime::now()).await;
    assert!(resp.accepted);
    let other_conn = n.manager.connection(&n.peer2).unwrap();
    bounded(other_conn.wait_for_connect()).await.unwrap();
    let garbage: [&[u8]; 4] = [
        b"\xff\xff\xff\xff",
        // A checksummed request whose checksum is wrong.
        b"\x97\x05\x00\xcd\xea\x60\x4e\x0e\x03\xc4\x03abc\x00\x00\x00\x00",
        // Truncated.
        b"\x97\x05\x00\xcd\xea",
        // Declares a payload far above the limit.
        b"\x97\x05\x00\x00\x4e\x0e\x02\xc6\xff\xff\xff\xff",
    ];
    for (i, bad) in garbage.into_iter().enumerate() {
        let (resp, mut ws) = handshake(&n, &n.peer, TOKEN, SystemTime::now()).await;
        assert!(resp.accepted);
        bounded(conn.wait_for_connect()).await.unwrap();
        // A good call works on this connection ...
        let ok = raw_request(&mut ws, 100 + i as u64, b"ok").await;
        assert_eq!(ok.payload.as_deref(), Some(&b"ok"[..]));
        // ... then garbage closes it.
        ws.send(tokio_websockets::Message::binary(Bytes::copy_from_slice(
            bad,
        )))
        .await
        .unwrap();
        assert!(
            bounded(recv_frame(&mut ws)).await.is_none(),
            "case {i}: socket still open"
        );
        bounded(async {
            while conn.state() == State::Connected {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        // The other connection is untouched and still serves calls.
        assert_eq!(other_conn.state(), State::Connected);
        let ok = raw_request(&mut other, 200 + i as u64, b"still here").await;
        assert_eq!(ok.payload.as_deref(), Some(&b"still here"[..]));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        8,
        "every good call ran exactly once"
    );
    assert_eq!(conn.stats().reconnects, 3);
    assert_eq!(other_conn.stats().reconnects, 0);
    n.manager.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_answers_the_handshake_does_not_stall_the_dialer() {
    // A server that upgrades to a websocket and then says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_host = format!("http://{}", silent.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            if let Ok((_, ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await {
                held.push(ws); // never read, never answer
            }
        }
    });
    // A local host name that dials the silent one.
    let local = host_where(&silent_host, true, 0);
    let options = Options {
        handshake_timeout: Duration::from_millis(200),
        dial_timeout: Duration::from_millis(400),
        ..Options::default()
    };
    let m = Manager::builder(local.clone(), [local.clone(), silent_host.clone()])
        .options(options)
        .token(TOKEN)
        .build()
        .unwrap();
    m.start();
    // Attempts keep coming: the dial loop is not stuck on the first silent handshake.
    bounded(async {
        while accepted.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_ne!(
        m.connection(&silent_host).unwrap().state(),
        State::Connected
    );
    bounded(m.shutdown()).await;
}

#[tokio::test]
async fn http_auth_hook_answers_403_before_the_upgrade() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let peer = host_where(&host, true, 0);
    let m = Manager::builder(host.clone(), [host.clone(), peer])
        .token(TOKEN)
        .http_auth(|headers| match headers.get("authorization") {
            Some(v) if v == "Bearer letmein" => Ok(()),
            _ => Err("bad bearer".to_owned()),
        })
        .build()
        .unwrap();
    tokio::spawn(serve(listener, m.clone()));
    let dialer = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new("nope")));
    let Err(err) = bounded(dialer.dial(&host)).await else {
        panic!("dial should fail")
    };
    assert!(err.to_string().contains("403"), "{err}");
    let dialer = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new("letmein")));
    assert!(bounded(dialer.dial(&host)).await.is_ok());
    let dialer = connect_ws("/wrong/path", Arc::new(StaticToken::new("letmein")));
    let Err(err) = bounded(dialer.dial(&host)).await else {
        panic!("dial should fail")
    };
    assert!(err.to_string().contains("404"), "{err}");
    m.shutdown().await;
}
