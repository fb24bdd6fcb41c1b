//! A raw protocol peer: a real node on loopback, and a websocket that speaks the wire protocol
//! message by message, so tests can send what no well-behaved rgrid node would.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rgrid::proto::{
    ConnectRequest, ConnectResponse, DecodeLimits, Flags, Frame, GridTime, Message, MuxId, Op,
    should_dial,
};
use rgrid::transport::ConnDialer;
use rgrid::{
    DEFAULT_ROUTE_PATH, HandlerId, Manager, ManagerBuilder, Options, StaticToken, WebSocket,
    connect_ws, serve,
};
use tokio::net::TcpListener;

use super::bounded;

/// The token every raw-test node accepts.
pub const TOKEN: &str = "debug";

/// A node serving on loopback, with host names it accepts connections from.
pub struct Node {
    pub manager: Manager,
    pub host: String,
    /// A host name the node accepts connections from (it must not dial it).
    pub peer: String,
    /// A second host name the node accepts connections from.
    pub peer2: String,
    /// A host name the node itself must dial.
    pub dialed: String,
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
    tokio::spawn(serve(listener, manager.clone()));
    Node {
        manager,
        host,
        peer,
        peer2,
        dialed,
    }
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
    let dialer = connect_ws(DEFAULT_ROUTE_PATH, Arc::new(StaticToken::new(TOKEN)));
    let ws = bounded(dialer.dial(&node.host)).await.unwrap();
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
