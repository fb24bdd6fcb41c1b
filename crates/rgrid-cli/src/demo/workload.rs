//! What the demo runs: its handlers (registered on every node), the kinds of call, and one
//! call of each kind with its result checked.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rgrid::typed::SingleHandler;
use rgrid::{Connection, HandlerId, Manager, RawStreamHandler, RemoteError, StreamIn, StreamOut};
use serde::{Deserialize, Serialize};

/// A disk-info query, like the small metadata calls between storage nodes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DiskInfoRequest {
    disk: String,
    metrics: bool,
}

/// The answer to a [`DiskInfoRequest`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DiskInfo {
    disk: String,
    total: u64,
    free: u64,
    used_inodes: u64,
    healing: bool,
    endpoint: String,
}

const ECHO: HandlerId = HandlerId::TEST;
/// Answers at once from memory, so it opts in to running inline (no task per call).
static DISK_INFO: SingleHandler<DiskInfoRequest, DiskInfo> =
    SingleHandler::new(HandlerId::TEST2).inline();
/// Messages each way in the stream shapes.
const STREAM_MESSAGES: usize = 10;
/// Deadline of every demo call: nothing may hang the demo.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The kinds of call the workload makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Single,
    Typed,
    StreamRequest,
    StreamResponses,
    StreamTwoway,
}

impl Kind {
    pub(super) const ALL: [Kind; 5] = [
        Kind::Single,
        Kind::Typed,
        Kind::StreamRequest,
        Kind::StreamResponses,
        Kind::StreamTwoway,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Typed => "typed",
            Kind::StreamRequest => "stream-request",
            Kind::StreamResponses => "stream-responses",
            Kind::StreamTwoway => "stream-twoway",
        }
    }

    pub(super) fn what(self) -> &'static str {
        match self {
            Kind::Single => "512 B echo",
            Kind::Typed => "DiskInfo msgpack",
            Kind::StreamRequest => "10 msgs in, 1 out",
            Kind::StreamResponses => "1 in, 10 msgs out",
            Kind::StreamTwoway => "10 msgs each way",
        }
    }

    fn subroute(self) -> Option<&'static str> {
        match self {
            Kind::Single | Kind::Typed => None,
            Kind::StreamRequest => Some("demo/request"),
            Kind::StreamResponses => Some("demo/responses"),
            Kind::StreamTwoway => Some("demo/twoway"),
        }
    }

    /// Concurrent callers of this kind.
    pub(super) fn workers(self) -> usize {
        match self {
            Kind::Single | Kind::Typed => 8,
            _ => 2,
        }
    }
}

fn send_err(e: rgrid::Error) -> RemoteError {
    RemoteError::new(e.to_string())
}

/// Registers the demo's handlers on one node.
pub(super) fn register(index: usize, m: &Manager) -> Result<(), rgrid::Error> {
    // Answers at once: inline. Handlers that may block keep the default (a task per call).
    m.register_single_inline(ECHO, None, |_, payload: Bytes| async move { Ok(payload) })?;
    let endpoint = m.host().to_owned();
    DISK_INFO.register(m, None, move |req: DiskInfoRequest| {
        let endpoint = endpoint.clone();
        async move {
            Ok(DiskInfo {
                total: 4 << 40,
                free: (3 << 40) + index as u64,
                used_inodes: if req.metrics { 1_234_567 } else { 0 },
                healing: false,
                disk: req.disk,
                endpoint,
            })
        }
    })?;
    let request = RawStreamHandler::new(
        1,
        1,
        |_, _, input: Option<StreamIn>, out: StreamOut| async move {
            let mut input = input.ok_or_else(|| RemoteError::new("no input"))?;
            let (mut n, mut bytes) = (0u64, 0u64);
            while let Some(msg) = input.recv().await {
                n += 1;
                bytes += msg.len() as u64;
            }
            out.send(Bytes::from(format!("{n} messages, {bytes} bytes")))
                .await
                .map_err(send_err)
        },
    );
    let responses =
        RawStreamHandler::new(0, 1, |_, payload: Bytes, _, out: StreamOut| async move {
            for _ in 0..STREAM_MESSAGES {
                out.send(payload.clone()).await.map_err(send_err)?;
            }
            Ok(())
        });
    let twoway = RawStreamHandler::new(
        1,
        1,
        |_, _, input: Option<StreamIn>, out: StreamOut| async move {
            let mut input = input.ok_or_else(|| RemoteError::new("no input"))?;
            while let Some(msg) = input.recv().await {
                out.send(msg).await.map_err(send_err)?;
            }
            Ok(())
        },
    );
    for (kind, handler) in [
        (Kind::StreamRequest, request),
        (Kind::StreamResponses, responses),
        (Kind::StreamTwoway, twoway),
    ] {
        m.register_stream(ECHO, kind.subroute(), handler)?;
    }
    Ok(())
}

/// One call of `kind` on `conn`; `Err` carries the error text.
pub(super) async fn one_call(kind: Kind, conn: &Connection, payload: &Bytes) -> Result<(), String> {
    let e = |e: rgrid::Error| e.to_string();
    match kind {
        Kind::Single => {
            let got = conn
                .request_with(
                    ECHO,
                    payload.clone(),
                    &rgrid::CallOptions::new().deadline(CALL_DEADLINE),
                )
                .await
                .map_err(e)?;
            if got != *payload {
                return Err("echo answered different bytes".into());
            }
        }
        Kind::Typed => {
            let req = DiskInfoRequest {
                disk: "/mnt/disk1".into(),
                metrics: true,
            };
            let info = DISK_INFO
                .call_with(
                    conn,
                    &req,
                    &rgrid::CallOptions::new().deadline(CALL_DEADLINE),
                )
                .await
                .map_err(e)?;
            if info.disk != req.disk || info.endpoint != conn.remote() {
                return Err(format!("unexpected disk info {info:?}"));
            }
        }
        Kind::StreamRequest | Kind::StreamResponses | Kind::StreamTwoway => {
            let options = rgrid::CallOptions::new()
                .subroute(kind.subroute().unwrap_or_default())
                .deadline(CALL_DEADLINE);
            let mut stream = conn
                .open_stream_with(ECHO, payload.clone(), &options)
                .await
                .map_err(e)?;
            let mut received = 0;
            if kind == Kind::StreamResponses {
                while let Some(msg) = stream.next().await {
                    msg.map_err(e)?;
                    received += 1;
                }
            } else {
                for _ in 0..STREAM_MESSAGES {
                    stream.send(payload.clone()).await.map_err(e)?;
                    if kind == Kind::StreamTwoway {
                        match stream.next().await {
                            Some(msg) if msg.as_ref().map_err(|e| e.to_string())? == payload => {
                                received += 1;
                            }
                            Some(_) => return Err("echo answered different bytes".into()),
                            None => return Err("stream ended early".into()),
                        }
                    }
                }
                stream.close_send();
                while let Some(msg) = stream.next().await {
                    msg.map_err(e)?;
                    received += 1;
                }
            }
            let want = if kind == Kind::StreamRequest {
                1
            } else {
                STREAM_MESSAGES
            };
            if received != want {
                return Err(format!("{received} messages received, want {want}"));
            }
        }
    }
    Ok(())
}
