//! A scripted hostile peer: a list of steps (messages, raw frames, floods, expectations) played
//! against a node over a real websocket, so a test reads as the attack it describes. The node
//! is on loopback ([`echo_node`]) or in memory ([`mem_echo_node`], for scripts on paused time,
//! where the windows of [`Step::Quiet`] and [`Step::ExpectClosedWithin`] are exact).

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use rgrid::WebSocket;
use rgrid::proto::{Flags, GridTime, HandlerId, Message, MuxId, Op, PingMsg};

use bytes::Bytes as Payload;
use rgrid::{Manager, Options, RemoteError};
use tokio::sync::mpsc;

use super::raw::{self, Got, Node, connected_peer};
use super::waiting_stream;

/// One message the peer sends, owned.
#[derive(Clone, Debug)]
pub struct Msg {
    pub op: Op,
    pub mux: u64,
    pub seq: u32,
    pub handler: HandlerId,
    pub flags: Flags,
    pub deadline_ms: u32,
    pub payload: Option<Vec<u8>>,
}

impl Msg {
    /// A checksummed message for `HandlerId::TEST`.
    pub fn new(op: Op, mux: u64, seq: u32) -> Self {
        Msg {
            op,
            mux,
            seq,
            handler: HandlerId::TEST,
            flags: Flags::CRC,
            deadline_ms: 0,
            payload: None,
        }
    }

    /// A single request with `payload`.
    pub fn request(mux: u64, payload: &[u8]) -> Self {
        Msg {
            flags: Flags::CRC | Flags::EOF,
            deadline_ms: 5000,
            payload: Some(payload.to_vec()),
            ..Msg::new(Op::REQUEST, mux, 0)
        }
    }

    /// A connection-level ping (no checksum, as Go sends it).
    pub fn conn_ping() -> Self {
        let mut payload = BytesMut::new();
        PingMsg {
            t: GridTime::from_system_time(SystemTime::now()),
        }
        .encode(&mut payload);
        Msg {
            flags: Flags::NONE,
            deadline_ms: 10_000,
            payload: Some(payload.to_vec()),
            ..Msg::new(Op::PING, 0, 0)
        }
    }

    pub fn handler(mut self, h: HandlerId) -> Self {
        self.handler = h;
        self
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(
            Message {
                mux_id: MuxId(self.mux),
                seq: self.seq,
                deadline_ms: self.deadline_ms,
                handler: self.handler,
                op: self.op,
                flags: self.flags,
                payload: self.payload.as_deref(),
                subroute: None,
            }
            .encode_to_vec()
            .unwrap(),
        )
    }
}

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Send a message in a frame of its own.
    Send(Msg),
    /// Send a websocket text frame.
    Text(String),
    /// Send a binary frame with these bytes as they are.
    Raw(Vec<u8>),
    /// Send `n` frames built by calling the function with 0..n (without reading in between).
    Flood(usize, fn(usize) -> Msg),
    /// Wait for a message with this op for this mux (other messages are kept for later).
    Expect(Op, u64),
    /// The node closes the socket within 10 s (messages still arriving are skipped).
    ExpectClosed,
    /// The node closes the socket within this window (messages still arriving are skipped).
    /// On paused time the window is exact: a close that needs a timer longer than the window
    /// to fire fails the step.
    ExpectClosedWithin(Duration),
    /// No message except connection pings arrives within this window (exact on paused time).
    Quiet(Duration),
    /// A single request to `HandlerId::TEST` round-trips (the connection still works).
    ExpectAlive,
    /// Wait.
    Sleep(Duration),
}

/// Plays `steps` on `ws`; returns every message received that no `Expect` consumed.
pub async fn play(ws: &mut WebSocket, steps: &[Step]) -> Vec<Got> {
    let mut pending = Vec::new();
    let mut alive_mux = 1u64 << 40;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Send(m) => {
                ws.send(tokio_websockets::Message::binary(m.encode()))
                    .await
                    .unwrap_or_else(|e| panic!("step {i}: send failed: {e}"));
            }
            Step::Text(t) => {
                ws.send(tokio_websockets::Message::text(t.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("step {i}: send failed: {e}"));
            }
            Step::Raw(b) => {
                ws.send(tokio_websockets::Message::binary(Bytes::from(b.clone())))
                    .await
                    .unwrap_or_else(|e| panic!("step {i}: send failed: {e}"));
            }
            Step::Flood(n, f) => {
                for k in 0..*n {
                    if ws
                        .feed(tokio_websockets::Message::binary(f(k).encode()))
                        .await
                        .is_err()
                    {
                        // The node may hang up mid-flood; a later step says whether it should.
                        break;
                    }
                }
                let _ = ws.flush().await;
            }
            Step::Expect(op, mux) => {
                raw::expect(ws, *op, *mux, &mut pending).await;
            }
            Step::ExpectClosed => expect_closed(ws, Duration::from_secs(10), i).await,
            Step::ExpectClosedWithin(window) => expect_closed(ws, *window, i).await,
            Step::Quiet(window) => {
                let got = raw::quiet_for(ws, *window).await;
                assert!(got.is_empty(), "step {i}: got within {window:?}: {got:?}");
            }
            Step::ExpectAlive => {
                alive_mux += 1;
                let payload = b"still there";
                ws.send(tokio_websockets::Message::binary(
                    Msg::request(alive_mux, payload).encode(),
                ))
                .await
                .unwrap_or_else(|e| panic!("step {i}: send failed: {e}"));
                let got = raw::expect(ws, Op::RESPONSE, alive_mux, &mut pending).await;
                assert_eq!(got.payload.as_deref(), Some(&payload[..]), "step {i}");
            }
            Step::Sleep(d) => tokio::time::sleep(*d).await,
        }
    }
    pending
}

/// Reads until the node closes `ws`, which must happen within `window`.
async fn expect_closed(ws: &mut WebSocket, window: Duration, step: usize) {
    let closed = tokio::time::timeout(window, async {
        while raw::recv_msgs(ws).await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "step {step}: the node kept the connection open for {window:?}"
    );
}

/// A node whose `HandlerId::TEST` echoes and whose `HandlerId::TEST2` is a stream (no input)
/// that waits for its cancellation, reporting "started" and "dropped".
pub async fn echo_node(opts: Options) -> (Node, mpsc::UnboundedReceiver<&'static str>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let node = raw::node(opts, |m| register_echo(m, tx)).await;
    (node, rx)
}

/// [`echo_node`] in memory: for scripts on paused time.
pub async fn mem_echo_node(opts: Options) -> (Node, mpsc::UnboundedReceiver<&'static str>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let node = raw::mem_node(opts, |m| register_echo(m, tx)).await;
    (node, rx)
}

fn register_echo(m: &Manager, tx: mpsc::UnboundedSender<&'static str>) {
    m.register_single(HandlerId::TEST, |p: Payload| async move {
        Ok::<_, RemoteError>(p)
    })
    .unwrap();
    m.register_stream(HandlerId::TEST2, None, waiting_stream(0, tx))
        .unwrap();
}

/// The node accepts the peer again and serves it.
pub async fn accepts_again(node: &Node) {
    let mut ws = connected_peer(node).await;
    play(&mut ws, &[Step::ExpectAlive]).await;
}
