//! A raw protocol peer: a real node, and a websocket that speaks the wire protocol message by
//! message, so tests can send what no well-behaved rgrid node would.
//!
//! The node serves either on loopback TCP ([`node`], [`node_with`]: real sockets, real time)
//! or in memory ([`mem_node`], [`mem_node_with`]): each raw connection is then a
//! `tokio::io::duplex` pipe handed to [`rgrid::serve_connection`], so it still goes through
//! the production accept path (HTTP upgrade, pre-auth slot, grid handshake) but does no real
//! I/O, and tests can run on paused time (`#[tokio::test(start_paused = true)]`), where a
//! window like "nothing arrives within 100 ms" ([`quiet_for`]) is exact: time only moves when
//! every task is idle.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rgrid::proto::{
    ConnectRequest, ConnectResponse, DecodeLimits, Flags, Frame, GridTime, Message, MuxId, Op,
    should_dial,
};
use rgrid::transport::{BoxedIo, ConnDialer, DialFuture};
use rgrid::{
    DEFAULT_ROUTE_PATH, HandlerId, Manager, ManagerBuilder, Options, StaticToken, WebSocket,
    connect_ws, serve, serve_connection,
};
use tokio::net::TcpListener;
use tokio_websockets::{ClientBuilder, Limits};

use super::bounded;

/// The token every raw-test node accepts.
pub const TOKEN: &str = "debug";

/// Bytes each direction of an in-memory raw connection buffers (as the in-memory grid's
/// pipes do).
pub const PIPE_BYTES: usize = 256 * 1024;

/// A node serving on loopback or in memory, with host names it accepts connections from.
pub struct Node {
    pub manager: Manager,
    pub host: String,
    /// A host name the node accepts connections from (it must not dial it).
    pub peer: String,
    /// A second host name the node accepts connections from.
    pub peer2: String,
    /// A host name the node itself must dial.
    pub dialed: String,
    /// Opens a websocket to the node (upgraded, before the grid handshake): over TCP for a
    /// loopback node, over a fresh in-memory pipe for an in-memory one.
    pub dialer: Arc<dyn ConnDialer>,
}

/// Picks the `nth` host name `x` for which `should_dial(x, host) == want`.
pub fn host_where(host: &str, want: bool, nth: usize) -> String {
    (1..1000)
        .map(|i| format!("http://127.0.0.2:{i}"))
        .filter(|x| should_dial(x, host) == want)
        .nth(nth)
        .unwrap()
}

/// Starts a node with `options` accepting the static token [`TOKEN`]; `register` adds its
/// handlers.
pub async fn node(options: Options, register: impl FnOnce(&Manager)) -> Node {
    node_with(options, |b| b.token(TOKEN), register).await
}

/// Starts a node with `options` whose authentication `auth` sets on the builder.
pub async fn node_with(
    options: Options,
    auth: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
    register: impl FnOnce(&Manager),
) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let dialer = Arc::new(connect_ws(
        DEFAULT_ROUTE_PATH,
        Arc::new(StaticToken::new(TOKEN)),
    ));
    let node = build_node(host, options, auth, register, |_| dialer);
    tokio::spawn(serve(listener, node.manager.clone()));
    node
}

/// Starts a node with `options` accepting the static token [`TOKEN`], reached over in-memory
/// pipes (see the module doc); `register` adds its handlers.
pub async fn mem_node(options: Options, register: impl FnOnce(&Manager)) -> Node {
    mem_node_with(options, |b| b.token(TOKEN), register).await
}

/// Like [`node_with`], but reached over in-memory pipes: every dial of [`Node::dialer`]
/// creates a `tokio::io::duplex` pipe, serves its far end with [`rgrid::serve_connection`]
/// (HTTP upgrade on the grid route, one pre-auth slot, the handshake timeout) and upgrades
/// the near end as a client, with the headers the production dialer sends.
pub async fn mem_node_with(
    options: Options,
    auth: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
    register: impl FnOnce(&Manager),
) -> Node {
    build_node(
        "http://mem-node:9000".to_owned(),
        options,
        auth,
        register,
        |manager| {
            Arc::new(MemDialer {
                manager: manager.clone(),
            })
        },
    )
}

/// A node named `host` with its accepted and dialed peer names; `dialer` makes the raw
/// peer's dialer for the built manager.
fn build_node(
    host: String,
    options: Options,
    auth: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
    register: impl FnOnce(&Manager),
    dialer: impl FnOnce(&Manager) -> Arc<dyn ConnDialer>,
) -> Node {
    let peer = host_where(&host, true, 0);
    let peer2 = host_where(&host, true, 1);
    let dialed = host_where(&host, false, 0);
    let builder = Manager::builder(
        host.clone(),
        [host.clone(), peer.clone(), peer2.clone(), dialed.clone()],
    )
    .options(options);
    let manager = auth(builder).build().unwrap();
    register(&manager);
    let dialer = dialer(&manager);
    Node {
        manager,
        host,
        peer,
        peer2,
        dialed,
        dialer,
    }
}

/// The raw peer's dialer for an in-memory node (see [`mem_node_with`]).
struct MemDialer {
    manager: Manager,
}

impl ConnDialer for MemDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        let manager = self.manager.clone();
        let authority = remote.strip_prefix("http://").unwrap_or(remote).to_owned();
        Box::pin(async move {
            let (near, far) = tokio::io::duplex(PIPE_BYTES);
            let uri = format!("ws://{authority}{}", manager.options().route_path);
            tokio::spawn(serve_connection(far, manager));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let near: BoxedIo = Box::new(near);
            let (ws, _) = ClientBuilder::new()
                .uri(&uri)
                .unwrap()
                .limits(Limits::unlimited())
                .add_header(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
                )?
                .add_header(
                    http::HeaderName::from_static("x-minio-time"),
                    http::HeaderValue::try_from(now.to_string()).unwrap(),
                )?
                .connect_on(near)
                .await?;
            Ok(ws)
        })
    }
}

/// Opens a websocket to `node` (upgraded, no grid handshake yet), within 10 s.
pub async fn dial(node: &Node) -> WebSocket {
    bounded(node.dialer.dial(&node.host)).await.unwrap()
}

/// Sends one message in its own frame.
pub async fn send(ws: &mut WebSocket, m: Message<'_>) {
    let bytes = m.encode_to_vec().unwrap();
    ws.send(tokio_websockets::Message::binary(Bytes::from(bytes)))
        .await
        .unwrap();
}

/// The next binary frame, or `None` once the socket is closed.
pub async fn recv_frame(ws: &mut WebSocket) -> Option<Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(m)) if m.is_binary() => return Some(Bytes::from(m.into_payload())),
            Some(Ok(m)) if m.is_close() => return None,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// Dials `node` as `host` and sends a connect message; returns the answer and the socket.
pub async fn handshake(
    node: &Node,
    host: &str,
    token: &str,
    time: SystemTime,
) -> (ConnectResponse<'static>, WebSocket) {
    let ws = dial(node).await;
    handshake_on(ws, host, token, time).await
}

/// Sends a connect message as `host` on an already-dialed websocket; returns the answer and
/// the socket.
pub async fn handshake_on(
    mut ws: WebSocket,
    host: &str,
    token: &str,
    time: SystemTime,
) -> (ConnectResponse<'static>, WebSocket) {
    let mut payload = Vec::new();
    ConnectRequest {
        id: [7; 16],
        host,
        time: GridTime::from_system_time(time),
        token,
    }
    .encode(&mut payload)
    .unwrap();
    send(
        &mut ws,
        Message {
            payload: Some(&payload),
            ..Message::new(Op::CONNECT)
        },
    )
    .await;
    let frame = bounded(recv_frame(&mut ws)).await.expect("an answer");
    let msg = Message::decode(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!(msg.op, Op::CONNECT_RESPONSE);
    assert_eq!(
        msg.flags,
        Flags::NONE,
        "handshake messages carry no checksum"
    );
    let resp = ConnectResponse::decode(msg.payload_bytes()).unwrap();
    let resp = ConnectResponse {
        id: resp.id,
        accepted: resp.accepted,
        rejected_reason: resp.rejected_reason.into_owned().into(),
    };
    (resp, ws)
}

/// Connects to `node` as its accepted peer `node.peer` and waits until the node sees the
/// connection up.
pub async fn connected_peer(node: &Node) -> WebSocket {
    let (resp, ws) = handshake(node, &node.peer, TOKEN, SystemTime::now()).await;
    assert!(resp.accepted, "{}", resp.rejected_reason);
    let conn = node.manager.connection(&node.peer).unwrap();
    bounded(conn.wait_for_connect()).await.unwrap();
    ws
}

/// One received message, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub op: Op,
    pub mux: u64,
    pub seq: u32,
    pub handler: HandlerId,
    pub deadline_ms: u32,
    pub flags: Flags,
    pub payload: Option<Vec<u8>>,
}

impl Got {
    /// The payload as text (empty if none).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Every message of the next binary frame (a merged frame yields several), or `None` once
/// the socket is closed.
pub async fn recv_msgs(ws: &mut WebSocket) -> Option<Vec<Got>> {
    let frame = recv_frame(ws).await?;
    let own = |m: Message<'_>| Got {
        op: m.op,
        mux: m.mux_id.0,
        seq: m.seq,
        handler: m.handler,
        deadline_ms: m.deadline_ms,
        flags: m.flags,
        payload: m.payload.map(<[u8]>::to_vec),
    };
    Some(
        match Frame::decode(&frame, &DecodeLimits::default()).unwrap() {
            Frame::Message(m) => vec![own(m)],
            Frame::Merged(ms) => ms.iter().map(|m| own(m.unwrap())).collect(),
        },
    )
}

/// Returns the first message with `op` for `mux`: from `pending` if one is there, otherwise
/// read from the socket (within 10 s), keeping the other messages read in `pending`.
pub async fn expect(ws: &mut WebSocket, op: Op, mux: u64, pending: &mut Vec<Got>) -> Got {
    if let Some(i) = pending.iter().position(|m| m.op == op && m.mux == mux) {
        return pending.remove(i);
    }
    bounded(async {
        loop {
            let msgs = recv_msgs(ws).await.expect("socket closed");
            let mut found = None;
            for m in msgs {
                if found.is_none() && m.op == op && m.mux == mux {
                    found = Some(m);
                } else {
                    pending.push(m);
                }
            }
            if let Some(m) = found {
                return m;
            }
        }
    })
    .await
}

/// Collects every message that arrives within `window` (connection pings excluded).
pub async fn quiet_for(ws: &mut WebSocket, window: Duration) -> Vec<Got> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(window, async {
        while let Some(msgs) = recv_msgs(ws).await {
            got.extend(msgs.into_iter().filter(|m| m.mux != 0));
        }
    })
    .await;
    got
}

/// Sends a checksummed single request to `HandlerId::TEST` and returns the response message.
pub async fn raw_request(ws: &mut WebSocket, mux: u64, payload: &[u8]) -> Got {
    send(
        ws,
        Message {
            mux_id: MuxId(mux),
            deadline_ms: 5000,
            handler: HandlerId::TEST,
            flags: Flags::CRC | Flags::EOF,
            payload: Some(payload),
            ..Message::new(Op::REQUEST)
        },
    )
    .await;
    expect(ws, Op::RESPONSE, mux, &mut Vec::new()).await
}

/// Sends a checksummed stream message `op` for `mux` with `seq`.
pub async fn send_mux(
    ws: &mut WebSocket,
    op: Op,
    mux: u64,
    seq: u32,
    flags: Flags,
    payload: Option<&[u8]>,
) {
    send(
        ws,
        Message {
            mux_id: MuxId(mux),
            seq,
            handler: HandlerId::TEST,
            flags: Flags::CRC | flags,
            payload,
            ..Message::new(op)
        },
    )
    .await;
}

/// No mux left open on any of `node`'s connections, in either direction (MinIO's
/// assertNoActive for a raw peer's node; retries for about a second, as cleanup is
/// asynchronous).
pub async fn assert_no_active(node: &Node) {
    let busy = || {
        node.manager
            .connections()
            .map(|c| (c.remote().to_owned(), c.stats()))
            .filter(|(_, s)| s.incoming_muxes != 0 || s.outgoing_muxes != 0)
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if busy().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("muxes left open: {:?}", busy());
}
