//! Streams over rgrid: MinIO's BenchmarkStream shapes (`request`, `responses`, `twoway`),
//! handler subroute `some-subroute`, one stream per operation, with MinIO's in/out capacities
//! of 1 ([`MINIO_WINDOW`]) or a wider window (see [`Shape::capacities`]).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use rgrid::test_util::LocalGrid;
use rgrid::{
    CallOptions, CallStream, Connection, Error, HandlerCtx, HandlerId, RawStreamHandler,
    RemoteError, StreamIn, StreamOut,
};

use crate::measure::{Point, Timing, closed_loop};

/// The subroute MinIO's stream benchmark registers its handler on.
pub const SUBROUTE: &str = "some-subroute";

/// Messages each way per stream.
pub const MESSAGES: usize = 10;

/// MinIO's stream window: in and out capacity 1.
pub const MINIO_WINDOW: usize = 1;

/// The wide window of issue 14's stream variants: in and out capacity 16.
pub const WIDE_WINDOW: usize = 16;

/// The three stream shapes of MinIO's BenchmarkStream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The caller sends 10 messages and closes; the handler checks it got exactly 10.
    Request,
    /// The handler sends 10 messages of one index byte plus the payload.
    Responses,
    /// The caller sends 10 messages from a separate task; the handler echoes each one.
    TwoWay,
}

impl Shape {
    /// All shapes, in MinIO's order.
    pub const ALL: [Shape; 3] = [Shape::Request, Shape::Responses, Shape::TwoWay];

    /// MinIO's name for the shape.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Request => "request",
            Shape::Responses => "responses",
            Shape::TwoWay => "twoway",
        }
    }

    /// Messages one stream carries (MinIO's `ops` per stream).
    pub fn messages_per_stream(self) -> usize {
        match self {
            Shape::Request | Shape::Responses => MESSAGES,
            Shape::TwoWay => 2 * MESSAGES,
        }
    }

    /// The handler's (in, out) capacities with a window of `window` messages: `window` each
    /// way, except `responses`, which has no input (in capacity 0, as in MinIO). With
    /// [`MINIO_WINDOW`] these are MinIO's capacities.
    pub fn capacities(self, window: usize) -> (usize, usize) {
        let window = window.max(1);
        match self {
            Shape::Request | Shape::TwoWay => (window, window),
            Shape::Responses => (0, window),
        }
    }

    fn handler(self, window: usize, payload: Bytes) -> RawStreamHandler {
        let (cap_in, cap_out) = self.capacities(window);
        match self {
            Shape::Request => RawStreamHandler::new(cap_in, cap_out, request_handler),
            Shape::Responses => {
                RawStreamHandler::new(cap_in, cap_out, move |ctx, p, input, out| {
                    responses_handler(ctx, p, input, out, payload.clone())
                })
            }
            Shape::TwoWay => RawStreamHandler::new(cap_in, cap_out, twoway_handler),
        }
    }
}

async fn request_handler(
    _: HandlerCtx,
    _: Bytes,
    input: Option<StreamIn>,
    _: StreamOut,
) -> Result<(), RemoteError> {
    let mut input = input.ok_or_else(|| RemoteError::new("no input"))?;
    let mut n = 0;
    while input.recv().await.is_some() {
        n += 1;
    }
    if n != MESSAGES {
        return Err(RemoteError::new(format!(
            "got {n} messages, want {MESSAGES}"
        )));
    }
    Ok(())
}

async fn responses_handler(
    _: HandlerCtx,
    _: Bytes,
    _: Option<StreamIn>,
    out: StreamOut,
    payload: Bytes,
) -> Result<(), RemoteError> {
    for i in 0..MESSAGES {
        let mut b = Vec::with_capacity(payload.len() + 1);
        b.push(i as u8);
        b.extend_from_slice(&payload);
        out.send(b).await?;
    }
    Ok(())
}

/// The `twoway` handler: echoes every input message, then ends.
pub async fn twoway_handler(
    _: HandlerCtx,
    _: Bytes,
    input: Option<StreamIn>,
    out: StreamOut,
) -> Result<(), RemoteError> {
    let mut input = input.ok_or_else(|| RemoteError::new("no input"))?;
    while let Some(msg) = input.recv().await {
        out.send(msg).await?;
    }
    Ok(())
}

/// A local grid of `servers` nodes with the handler of `shape` (capacities for `window`, see
/// [`Shape::capacities`]) on `HandlerId::TEST` and subroute [`SUBROUTE`].
pub async fn stream_grid(
    servers: usize,
    shape: Shape,
    window: usize,
    payload: &Bytes,
) -> Result<LocalGrid, Error> {
    let payload = payload.clone();
    let grid = LocalGrid::start(servers, move |_, m| {
        let _ = m.register_stream(
            HandlerId::TEST,
            Some(SUBROUTE),
            shape.handler(window, payload.clone()),
        );
    })
    .await?;
    grid.wait_all_connected(std::time::Duration::from_secs(10))
        .await?;
    Ok(grid)
}

/// Every ordered pair (src, dst) of distinct nodes, as subroute handles.
fn pairs(grid: &LocalGrid) -> Vec<Arc<(Connection, CallOptions)>> {
    let n = grid.hosts.len();
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                let route = CallOptions::new().subroute(SUBROUTE);
                out.push(Arc::new((grid.conn(a, b), route)));
            }
        }
    }
    out
}

/// Runs one stream of `shape`; returns whether it completed as MinIO's benchmark expects.
async fn one_stream(
    (conn, route): &(Connection, CallOptions),
    shape: Shape,
    payload: &Bytes,
) -> Result<(), Error> {
    let mut st = conn
        .open_stream_with(HandlerId::TEST, payload.clone(), route)
        .await?;
    match shape {
        Shape::Request => {
            for _ in 0..MESSAGES {
                st.send(payload.clone()).await?;
            }
            st.results(|_| Ok(())).await
        }
        Shape::Responses => {
            let mut n = 0;
            st.results(|m| {
                if m.len() != payload.len() + 1 {
                    return Err(Error::Protocol(format!("response of {} bytes", m.len())));
                }
                n += 1;
                Ok(())
            })
            .await?;
            expect_count(n)
        }
        Shape::TwoWay => twoway(st, payload).await,
    }
}

/// The `twoway` exchange on an open stream: sends [`MESSAGES`] copies of `payload` and
/// closes the input while receiving every echo; fails unless exactly [`MESSAGES`] came
/// back. Sending and receiving run side by side in the calling task: no task per stream and
/// no extra wake-up of another task per message.
pub async fn twoway(st: CallStream, payload: &Bytes) -> Result<(), Error> {
    let (sender, mut responses) = st.split();
    let mut sender =
        sender.ok_or_else(|| Error::Protocol("twoway stream takes no input".into()))?;
    let send = async move {
        for _ in 0..MESSAGES {
            sender.send(payload.clone()).await?;
        }
        sender.close();
        Ok::<(), Error>(())
    };
    let receive = async {
        let mut n = 0;
        while let Some(m) = responses.next().await {
            m?;
            n += 1;
        }
        Ok::<usize, Error>(n)
    };
    let (sent, n) = tokio::join!(send, receive);
    let n = n?;
    sent?;
    expect_count(n)
}

fn expect_count(n: usize) -> Result<(), Error> {
    if n == MESSAGES {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "got {n} messages, want {MESSAGES}"
        )))
    }
}

/// `concurrency` client tasks, each running streams of `shape` to random pairs in a loop.
/// Operations are streams; multiply `ops_per_sec` by [`Shape::messages_per_stream`] for
/// messages per second.
pub async fn stream_point(
    grid: &LocalGrid,
    shape: Shape,
    concurrency: usize,
    payload: &Bytes,
    timing: Timing,
) -> Point {
    let payload = payload.clone();
    closed_loop(Arc::new(pairs(grid)), concurrency, timing, move |route| {
        let payload = payload.clone();
        async move {
            let r = one_stream(&route, shape, &payload).await;
            if let Err(e) = &r {
                report_first_error(e);
            }
            r.is_ok()
        }
    })
    .await
}

fn report_first_error(e: &Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("first stream error: {e}"));
}
