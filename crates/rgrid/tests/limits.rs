//! Every configurable limit at its boundary (limit − 1, limit, limit + 1): message size in both
//! directions and on the receiving side, incoming muxes per connection, pings per interval,
//! connections in their handshake, the handshake message size, the outbound byte budget and
//! the typed decoders' nesting depth. Over a limit, the call or the connection fails with a
//! clear error as documented on `Options`; the node keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::raw::{self, Node, connected_peer, recv_frame, send};
use common::{assert_no_active, bounded, grid_with};
use futures_util::{SinkExt, StreamExt};
use rgrid::proto::{ConnectRequest, Flags, GridTime, Message, MuxId, Op, PingMsg};
use rgrid::transport::ConnDialer;
use rgrid::{
    DEFAULT_ROUTE_PATH, Error, HandlerId, MAX_HANDSHAKE_MESSAGE_SIZE, Options, RawStreamHandler,
    RemoteError, StaticToken, StreamIn, StreamOut, connect_ws,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const LIMIT: usize = 64 * 1024;

/// Registers on `HandlerId::TEST` a single handler answering with as many bytes as the
/// request's text says, and on `HandlerId::TEST2` a stream that answers its payload's length
/// in bytes, then echoes its input.
fn register_sized(m: &rgrid::Manager) {
    m.register_single(HandlerId::TEST, |p: Bytes| async move {
        let n: usize = std::str::from_utf8(&p)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(p.len());
        Ok::<_, RemoteError>(Bytes::from(vec![7u8; n]))
    })
    .unwrap();
    m.register_stream(
        HandlerId::TEST2,
        None,
        RawStreamHandler::new(
            1,
            1,
            |_, p: Bytes, input: Option<StreamIn>, out: StreamOut| async move {
                let n: usize = std::str::from_utf8(&p).unwrap().parse().unwrap();
                out.send(vec![1u8; n]).await?;
                let mut input = input.unwrap();
                while let Some(m) = input.recv().await {
                    out.send(m).await?;
                }
                Ok(())
            },
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_limit_in_both_directions() {
    let opts = Options {
        max_message_size: LIMIT,
        ..Options::default()
    };
    let g = grid_with(opts, |_, m| register_sized(m)).await;
    let c = g.conn(0, 1);

    // Requests: the caller refuses an oversized payload before sending it.
    for n in [LIMIT - 1, LIMIT] {
        let got = bounded(c.request(HandlerId::TEST, vec![b'x'; n])).await;
        assert_eq!(got.unwrap().len(), n);
    }
    match bounded(c.request(HandlerId::TEST, vec![b'x'; LIMIT + 1])).await {
        Err(Error::MessageTooLarge { size, limit }) => {
            assert_eq!((size, limit), (LIMIT + 1, LIMIT));
        }
        other => panic!("{other:?}"),
    }
    // Responses: an oversized answer becomes a remote error naming the limit.
    for n in [LIMIT - 1, LIMIT] {
        let got = bounded(c.request(HandlerId::TEST, n.to_string())).await;
        assert_eq!(got.unwrap().len(), n);
    }
    match bounded(c.request(HandlerId::TEST, (LIMIT + 1).to_string())).await {
        Err(Error::Remote(e)) => assert!(e.text().contains("exceeds the limit"), "{e}"),
        other => panic!("{other:?}"),
    }

    // Streams: the caller's input and the handler's output.
    for n in [LIMIT - 1, LIMIT] {
        let mut st = bounded(c.open_stream(HandlerId::TEST2, n.to_string()))
            .await
            .unwrap();
        let first = bounded(st.next()).await.unwrap().unwrap();
        assert_eq!(first.len(), n);
        st.send(vec![2u8; n]).await.unwrap();
        assert_eq!(bounded(st.next()).await.unwrap().unwrap().len(), n);
        match st.send(vec![2u8; LIMIT + 1]).await {
            Err(Error::MessageTooLarge { size, .. }) => assert_eq!(size, LIMIT + 1),
            other => panic!("{other:?}"),
        }
        st.close_send();
        assert!(bounded(st.next()).await.is_none());
    }
    let mut st = bounded(c.open_stream(HandlerId::TEST2, (LIMIT + 1).to_string()))
        .await
        .unwrap();
    match bounded(st.next()).await {
        Some(Err(Error::Remote(e))) => assert!(e.text().contains("exceeds the limit"), "{e}"),
        other => panic!("{other:?}"),
    }
    // The stream's initial payload is checked like a request.
    match c.open_stream(HandlerId::TEST2, vec![b'1'; LIMIT + 1]).await {
        Err(Error::MessageTooLarge { .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(st);
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// A raw peer connected to a node with a 64 KiB limit.
async fn limited_node(opts: Options) -> Node {
    raw::node(opts, register_sized).await
}

fn request(mux: u64, payload: &[u8]) -> Message<'_> {
    Message {
        mux_id: MuxId(mux),
        deadline_ms: 5000,
        handler: HandlerId::TEST,
        flags: Flags::CRC | Flags::EOF,
        payload: Some(payload),
        ..Message::new(Op::REQUEST)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_over_the_limit_loses_its_connection() {
    let node = limited_node(Options {
        max_message_size: LIMIT,
        ..Options::default()
    })
    .await;
    let mut ws = connected_peer(&node).await;
    // limit − 1 and limit are served (each answer is the request's length in bytes).
    for (mux, n) in [(1, LIMIT - 1), (2, LIMIT)] {
        let got = raw::raw_request(&mut ws, mux, &vec![b'x'; n]).await;
        assert_eq!(got.payload.unwrap().len(), n);
    }
    // A merged frame may carry small messages ahead of a full-size one (frame slack).
    let small = request(3, b"1");
    let big_payload = vec![b'y'; LIMIT];
    let big = request(4, &big_payload);
    let mut frame = bytes::BytesMut::new();
    rgrid::proto::put_merged_header(&mut frame, 2);
    small.encode_merged_entry(&mut frame).unwrap();
    big.encode_merged_entry(&mut frame).unwrap();
    ws.send(tokio_websockets::Message::binary(frame.freeze()))
        .await
        .unwrap();
    let mut pending = Vec::new();
    let a = raw::expect(&mut ws, Op::RESPONSE, 3, &mut pending).await;
    let b = raw::expect(&mut ws, Op::RESPONSE, 4, &mut pending).await;
    assert_eq!(a.payload.unwrap().len(), 1);
    assert_eq!(b.payload.unwrap().len(), LIMIT);
    // limit + 1 breaks the agreement: the node closes the connection (within the bound)
    // without answering it.
    send(&mut ws, request(5, &vec![b'x'; LIMIT + 1])).await;
    let before_close = bounded(async {
        let mut got = Vec::new();
        while let Some(msgs) = raw::recv_msgs(&mut ws).await {
            got.extend(msgs);
        }
        got
    })
    .await;
    assert!(
        before_close.iter().all(|m| m.mux != 5),
        "the oversized request was answered: {before_close:?}"
    );
    let conn = node.manager.connection(&node.peer).unwrap();
    common::eventually("the node drops the connection", || !conn.stats().connected).await;
    // The node still accepts the peer again.
    let mut ws = connected_peer(&node).await;
    let got = raw::raw_request(&mut ws, 1, b"5").await;
    assert_eq!(got.payload.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_mux_limit_refuses_opens_and_keeps_the_connection() {
    const MAX: usize = 4;
    let gate = Arc::new(Semaphore::new(0));
    let opts = Options {
        max_incoming_muxes: MAX,
        ..Options::default()
    };
    let g = grid_with(opts, |_, m| {
        let gate = gate.clone();
        m.register_single(HandlerId::TEST, move |p: Bytes| {
            let gate = gate.clone();
            async move {
                let _permit = gate.acquire().await.unwrap();
                Ok::<_, RemoteError>(p)
            }
        })
        .unwrap();
        common::register_echo_stream_on(m, HandlerId::TEST2);
    })
    .await;
    let c = g.conn(0, 1);
    let mut calls = Vec::new();
    for i in 0..MAX {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            c.request(HandlerId::TEST, format!("call {i}")).await
        }));
        // limit − 1 open, then limit: both admitted.
        bounded(async {
            while g.conn(1, 0).stats().incoming_muxes < i + 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
    // limit + 1: refused, for a request and for a stream, with the limit named.
    match bounded(c.request(HandlerId::TEST, "one too many")).await {
        Err(Error::Remote(e)) => assert!(e.text().contains("limit 4"), "{e}"),
        other => panic!("{other:?}"),
    }
    let mut st = bounded(c.open_stream(HandlerId::TEST2, "")).await.unwrap();
    match bounded(st.next()).await {
        Some(Err(Error::Remote(e))) => assert!(e.text().contains("limit 4"), "{e}"),
        other => panic!("{other:?}"),
    }
    drop(st);
    // The connection lived through it: the admitted calls finish once released.
    assert_eq!(c.stats().reconnects, 0);
    assert!(c.stats().connected);
    gate.add_permits(MAX + 1);
    for (i, call) in calls.into_iter().enumerate() {
        let got = bounded(call).await.unwrap().unwrap();
        assert_eq!(got, format!("call {i}").as_bytes());
    }
    let mut st = bounded(c.open_stream(HandlerId::TEST2, "")).await.unwrap();
    st.send("again").await.unwrap();
    assert_eq!(bounded(st.next()).await.unwrap().unwrap(), "again");
    st.close_send();
    assert!(bounded(st.next()).await.is_none());
    assert_no_active(&g).await;
    g.shutdown().await;
}

fn conn_ping() -> Vec<u8> {
    let mut payload = bytes::BytesMut::new();
    PingMsg {
        t: GridTime::from_system_time(SystemTime::now()),
    }
    .encode(&mut payload);
    Message {
        deadline_ms: 10_000,
        payload: Some(&payload),
        ..Message::new(Op::PING)
    }
    .encode_to_vec()
    .unwrap()
}

/// Sends `n` connection pings; returns how many pongs came back before the socket closed
/// (or a quiet second passed).
async fn pings_answered(ws: &mut rgrid::WebSocket, n: usize) -> (usize, bool) {
    let ping = Bytes::from(conn_ping());
    for _ in 0..n {
        ws.send(tokio_websockets::Message::binary(ping.clone()))
            .await
            .unwrap();
    }
    let mut pongs = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), raw::recv_msgs(ws)).await {
            Err(_) => return (pongs, false),
            Ok(None) => return (pongs, true),
            Ok(Some(msgs)) => pongs += msgs.iter().filter(|m| m.op == Op::PONG).count(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_limit() {
    const MAX: u32 = 10;
    let opts = Options {
        max_pings_per_interval: MAX,
        // No interval boundary (which resets the count) during the test.
        ping_interval: Duration::from_secs(120),
        dead_after: Duration::from_secs(120) * 2,
        ..Options::default()
    };
    let node = limited_node(opts).await;
    for (n, closed) in [(MAX - 1, false), (MAX, false), (MAX + 1, true)] {
        let mut ws = connected_peer(&node).await;
        let (pongs, was_closed) = pings_answered(&mut ws, n as usize).await;
        assert_eq!(was_closed, closed, "{n} pings");
        if closed {
            // Pongs still queued when the node gave up may never be written.
            assert!(pongs <= MAX as usize, "{pongs} pongs for {n} pings");
        } else {
            assert_eq!(pongs, n as usize, "{n} pings");
        }
    }
}

/// Waits (at most `wait`) for the node to close `tcp`, which sends nothing; reports whether
/// it did.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Whether `tcp` is open right now, without waiting: a non-blocking read straight on the
/// socket (not through tokio's cached readiness) would block instead of seeing the node's
/// close.
fn open_now(tcp: TcpStream) -> (TcpStream, bool) {
    let std = tcp.into_std().unwrap();
    let mut buf = [0u8; 64];
    let open = matches!(
        std::io::Read::read(&mut &std, &mut buf),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    (TcpStream::from_std(std).unwrap(), open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preauth_connection_limit_and_timeout() {
    const MAX: usize = 3;
    let opts = Options {
        max_preauth_conns: MAX,
        handshake_timeout: Duration::from_millis(1500),
        ..Options::default()
    };
    let node = limited_node(opts).await;
    // A peer connected before the flood keeps working through it.
    let mut established = connected_peer(&node).await;
    let addr = node.host.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    // limit − 1 and limit silent connections are held open...
    for _ in 0..MAX {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // ... limit + 1 takes the slot of the oldest, which is closed (the table is full: the
    // oldest unauthenticated connection makes room; 127.0.0.1 is a known host's address,
    // so the per-address limit does not apply). The bound only guards against a hang.
    let extra = TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut held[0], Duration::from_secs(10)).await);
    let got = raw::raw_request(&mut established, 9, b"3").await;
    assert_eq!(got.payload.unwrap().len(), 3);
    // The node accepts in order: it had taken every socket before the oldest's close
    // arrived, and a round trip has passed since. The others are open until the handshake
    // timeout (1.5 s).
    held.remove(0);
    held.push(extra);
    for (i, tcp) in std::mem::take(&mut held).into_iter().enumerate() {
        let (tcp, open) = open_now(tcp);
        assert!(open, "held connection {i} of {MAX} was closed");
        held.push(tcp);
    }
    // The handshake timeout frees the slots: the silent ones are closed ...
    for tcp in &mut held {
        assert!(closed_within(tcp, Duration::from_secs(10)).await);
    }
    // ... and a real peer gets in again.
    let mut ws = connected_peer(&node).await;
    let got = raw::raw_request(&mut ws, 1, b"2").await;
    assert_eq!(got.payload.unwrap().len(), 2);
}

/// On paused time, over an in-memory pipe served like an accepted socket
/// (`serve_connection`, the upgrade deadline `serve` uses too): the cut comes exactly at the
/// handshake timeout.
#[tokio::test(start_paused = true)]
async fn slowloris_upgrade_is_cut_by_the_handshake_timeout() {
    let limit = Duration::from_millis(800);
    let host = "http://127.0.0.1:9000";
    let manager = rgrid::Manager::builder(host, [host, "http://127.0.0.1:9001"])
        .options(Options {
            handshake_timeout: limit,
            ..Options::default()
        })
        .token(raw::TOKEN)
        .build()
        .unwrap();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(rgrid::serve_connection(server, manager.clone()));
    let request = format!(
        "GET {DEFAULT_ROUTE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    );
    let started = tokio::time::Instant::now();
    let mut cut = false;
    // One byte every 50 ms: 400 bytes would take 20 s.
    for b in request.as_bytes().iter().cycle().take(400) {
        if client.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf)).await
        {
            cut = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(cut, "a byte-by-byte upgrade request was never cut off");
    assert!(
        took >= limit && took <= limit + Duration::from_millis(1),
        "cut off after {took:?}, handshake timeout {limit:?}"
    );
    manager.shutdown().await;
}

/// Dials the node and sends a connect message whose frame is exactly `size` bytes (the
/// token pads it). Returns the answer's acceptance and reason, or `None` if the node closed
/// the socket without answering.
async fn connect_frame_of(node: &Node, size: usize) -> Option<String> {
    let dialer = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new(raw::TOKEN)));
    let mut ws = bounded(dialer.dial(&node.host)).await.unwrap();
    let encode = |token: &str| {
        let mut payload = Vec::new();
        ConnectRequest {
            id: [7; 16],
            host: &node.peer,
            time: GridTime::from_system_time(SystemTime::now()),
            token,
        }
        .encode(&mut payload)
        .unwrap();
        Message {
            payload: Some(&payload),
            ..Message::new(Op::CONNECT)
        }
        .encode_to_vec()
        .unwrap()
    };
    let base = encode("").len();
    assert!(base < size);
    // The token's length prefix grows with it: adjust until the frame is exactly `size`.
    let mut pad = size - base;
    let frame = loop {
        let f = encode(&"t".repeat(pad));
        match f.len().cmp(&size) {
            std::cmp::Ordering::Equal => break f,
            std::cmp::Ordering::Greater => pad -= f.len() - size,
            std::cmp::Ordering::Less => pad += size - f.len(),
        }
    };
    ws.send(tokio_websockets::Message::binary(Bytes::from(frame)))
        .await
        .ok()?;
    let answer = bounded(recv_frame(&mut ws)).await?;
    let msg = Message::decode(&answer, &Default::default()).unwrap();
    let resp = rgrid::proto::ConnectResponse::decode(msg.payload_bytes()).unwrap();
    Some(resp.rejected_reason.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_message_size_limit() {
    let node = limited_node(Options::default()).await;
    // Up to the limit the message is read and judged (the padded token is wrong) ...
    for size in [MAX_HANDSHAKE_MESSAGE_SIZE - 1, MAX_HANDSHAKE_MESSAGE_SIZE] {
        let reason = connect_frame_of(&node, size).await;
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.starts_with("auth token")),
            "{size}: {reason:?}"
        );
    }
    // ... one byte more and the node drops the socket without reading it.
    assert_eq!(
        connect_frame_of(&node, MAX_HANDSHAKE_MESSAGE_SIZE + 1).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_byte_budget_holds_while_the_peer_does_not_read() {
    const BUDGET: usize = 1 << 20;
    const SIZE: usize = 64 * 1024;
    let opts = Options {
        out_queue_bytes: BUDGET,
        write_timeout: Duration::from_secs(30),
        ..Options::default()
    };
    let node = limited_node(opts).await;
    // The raw peer never reads: the node's writer stalls once the socket buffers are full.
    let ws = connected_peer(&node).await;
    let c = node.manager.connection(&node.peer).unwrap();
    let mut calls = Vec::new();
    for _ in 0..400 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            c.request_with(
                HandlerId::TEST,
                vec![0u8; SIZE],
                &rgrid::CallOptions::new().deadline(Duration::from_secs(20)),
            )
            .await
        }));
    }
    let mut max_seen = 0;
    let mut waiting = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let s = c.stats();
        max_seen = max_seen.max(s.out_queue_bytes);
        waiting = calls.iter().filter(|t| !t.is_finished()).count();
    }
    // Every sender that got in saw the queue below the budget: at most one message over.
    assert!(
        max_seen >= BUDGET,
        "the writer never stalled ({max_seen} bytes queued)"
    );
    assert!(
        max_seen <= BUDGET + 2 * SIZE,
        "{max_seen} bytes queued, budget {BUDGET}"
    );
    assert_eq!(waiting, 400, "no call may finish: the peer answers nothing");
    // Other traffic still flows: the node keeps answering the peer (control lane).
    drop(ws);
    for t in calls {
        match bounded(t).await.unwrap() {
            Err(Error::Disconnected | Error::DeadlineExceeded) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// `depth` nested arrays, the innermost empty.
fn nested(depth: usize) -> serde_json::Value {
    (1..depth).fold(serde_json::json!([]), |inner, _| serde_json::json!([inner]))
}

#[test]
fn typed_nesting_depth_limit() {
    use rgrid::typed::{Payload, decode, decode_with_depth};
    assert_eq!(Options::default().max_depth, rgrid::typed::MAX_DEPTH);
    for limit in [8, rgrid::typed::MAX_DEPTH] {
        for (depth, ok) in [(limit - 1, true), (limit, true), (limit + 1, false)] {
            let mut buf = bytes::BytesMut::new();
            nested(depth).encode_to(&mut buf).unwrap();
            let got = decode_with_depth::<serde_json::Value>(&buf, limit);
            assert_eq!(got.is_ok(), ok, "limit {limit}, depth {depth}: {got:?}");
            if !ok {
                assert!(matches!(got, Err(Error::Decode(_))));
            }
            if limit == rgrid::typed::MAX_DEPTH {
                assert_eq!(decode::<serde_json::Value>(&buf).is_ok(), ok);
            }
        }
    }
}

/// Connects a raw peer to `node` and stops the node's writer towards it: from then on
/// everything the node sends stays queued.
async fn peer_with_stalled_node(node: &Node) -> (rgrid::WebSocket, rgrid::OutboundBlock) {
    let ws = connected_peer(node).await;
    let block = node
        .manager
        .connection(&node.peer)
        .unwrap()
        .block_outbound();
    bounded(block.parked()).await;
    (ws, block)
}

/// Waits until the node has read `n` more messages from the peer than `before`.
async fn node_read(c: &rgrid::Connection, before: u64, n: u64) {
    bounded(async {
        while c.stats().incoming_messages < before + n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_replies_limit() {
    const QUEUE: usize = 4;
    const MAX: usize = 8;
    let opts = Options {
        out_queue: QUEUE,
        max_pending_replies: MAX,
        ping_interval: Duration::from_secs(120),
        dead_after: Duration::from_secs(120) * 2,
        ..Options::default()
    };
    let node = limited_node(opts).await;
    let c = node.manager.connection(&node.peer).unwrap();
    // The writer is stopped: answers fill the queue (4), then wait in tasks (8); one more
    // and the node gives up on a peer that does not read.
    for (requests, alive) in [
        (QUEUE + MAX - 1, true),
        (QUEUE + MAX, true),
        (QUEUE + MAX + 1, false),
    ] {
        let (mut ws, block) = peer_with_stalled_node(&node).await;
        let before = c.stats().incoming_messages;
        for mux in 1..=requests as u64 {
            send(&mut ws, request(mux, b"1")).await;
        }
        if alive {
            // A connection ping after the requests: the node reads one message at a time and
            // answers a request before it reads the next, so once it has read the ping every
            // answer is queued or waiting for room (and one too many would have closed the
            // connection).
            ws.send(tokio_websockets::Message::binary(Bytes::from(conn_ping())))
                .await
                .unwrap();
            node_read(&c, before, requests as u64 + 1).await;
            assert!(c.stats().connected, "{requests} requests");
            // Released, every answer arrives.
            drop(block);
            let mut pending = Vec::new();
            for mux in 1..=requests as u64 {
                raw::expect(&mut ws, Op::RESPONSE, mux, &mut pending).await;
            }
        } else {
            bounded(async {
                while c.stats().connected {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await;
            drop(block);
        }
    }
}

/// On paused time, over in-memory pipes: once every task idles, each of the 20 callers has a
/// place in the queue or waits for one, so the counts are final.
#[tokio::test(start_paused = true)]
async fn outbound_queue_limits_in_messages_and_bytes() {
    const SIZE: usize = 1000;
    // (queue in messages, budget in bytes, calls that get in): the message bound, then the
    // byte bound at budget − 1, budget and budget + 1 (a sender gets in while the queue is
    // below the budget).
    let cases = [
        (4, 1 << 20, 4),
        (64, 10 * SIZE - 1, 10),
        (64, 10 * SIZE, 10),
        (64, 10 * SIZE + 1, 11),
    ];
    for (queue, budget, admitted) in cases {
        let opts = Options {
            out_queue: queue,
            out_queue_bytes: budget,
            ping_interval: Duration::from_secs(120),
            dead_after: Duration::from_secs(120) * 2,
            ..Options::default()
        };
        let g = common::mem_grid_with(opts, |_, m| register_sized(m)).await;
        let c = g.conn(0, 1);
        // Node 0's writer stops: everything it sends to node 1 stays queued.
        let block = c.block_outbound();
        bounded(block.parked()).await;
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.request(HandlerId::TEST, vec![0u8; SIZE]).await })
            })
            .collect();
        // Paused time moves only once every task idles.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let s = c.stats();
        assert_eq!(s.out_queue, admitted, "queue {queue}, budget {budget}");
        if queue > 20 {
            // (Calls waiting for a place in a full queue have their bytes charged already.)
            assert_eq!(s.out_queue_bytes, admitted * SIZE, "budget {budget}");
        }
        assert!(calls.iter().all(|t| !t.is_finished()), "the others wait");
        c.kill();
        drop(block);
        for t in calls {
            assert_eq!(bounded(t).await.unwrap(), Err(Error::Disconnected));
        }
        g.shutdown().await;
    }
}
