//! The gRPC baseline: tonic on one HTTP/2 connection over loopback, TCP_NODELAY on both
//! sides, server and client tasks on the benchmark's runtime.
//!
//! One service, `rgrid.bench.Echo`, written by hand (no protoc, no build script) with a
//! hand-derived prost message `Msg { bytes data = 1 }`:
//!
//! * `Unary`: echoes the request (the counterpart of rgrid's `bytes` single request).
//! * `Bidi`: echoes every message of the request stream (rgrid's `twoway`: 10 × 512 B up,
//!   10 × 512 B down).
//! * `ClientStream`: counts the initial message plus 10 and answers once (rgrid's
//!   `request`).
//! * `ServerStream`: answers one request with 10 messages of one index byte plus the payload
//!   (rgrid's `responses`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, stream};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::measure::{Point, Timing, closed_loop};
use crate::streams::{MESSAGES, Shape};

/// The one message of the echo service: an opaque payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    /// The payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

/// The gRPC service name.
pub const SERVICE: &str = "rgrid.bench.Echo";
const UNARY: &str = "/rgrid.bench.Echo/Unary";
const BIDI: &str = "/rgrid.bench.Echo/Bidi";
const CLIENT_STREAM: &str = "/rgrid.bench.Echo/ClientStream";
const SERVER_STREAM: &str = "/rgrid.bench.Echo/ServerStream";

type Codec = ProstCodec<Msg, Msg>;
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send + 'static>>;

/// The baseline's system name for the tonic counterpart of an rgrid stream shape.
pub fn stream_system(shape: Shape) -> &'static str {
    match shape {
        Shape::Request => "tonic client-stream",
        Shape::Responses => "tonic server-stream",
        Shape::TwoWay => "tonic bidi",
    }
}

/// The baseline's system name for unary calls.
pub const UNARY_SYSTEM: &str = "tonic unary";

#[derive(Clone, Debug)]
struct EchoService {
    payload: Bytes,
}

impl NamedService for EchoService {
    const NAME: &'static str = SERVICE;
}

impl tonic::codegen::Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFut<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let payload = self.payload.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Codec::default());
            let resp = match req.uri().path() {
                UNARY => grpc.unary(Unary, req).await,
                BIDI => grpc.streaming(Bidi, req).await,
                CLIENT_STREAM => grpc.client_streaming(Count, req).await,
                SERVER_STREAM => grpc.server_streaming(Ten(payload), req).await,
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

struct Unary;

impl tonic::server::UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = std::future::Ready<Result<Response<Msg>, Status>>;

    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        std::future::ready(Ok(Response::new(req.into_inner())))
    }
}

struct Bidi;

impl tonic::server::StreamingService<Msg> for Bidi {
    type Response = Msg;
    type ResponseStream = Streaming<Msg>;
    type Future = std::future::Ready<Result<Response<Streaming<Msg>>, Status>>;

    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        // The request stream is the response stream: every message is echoed as it arrives.
        std::future::ready(Ok(Response::new(req.into_inner())))
    }
}

struct Count;

impl tonic::server::ClientStreamingService<Msg> for Count {
    type Response = Msg;
    type Future = BoxFut<Result<Response<Msg>, Status>>;

    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut input = req.into_inner();
            let mut n = 0;
            while input.message().await?.is_some() {
                n += 1;
            }
            if n != MESSAGES + 1 {
                return Err(Status::invalid_argument(format!(
                    "got {n} messages, want {}",
                    MESSAGES + 1
                )));
            }
            Ok(Response::new(Msg { data: Bytes::new() }))
        })
    }
}

struct Ten(Bytes);

impl tonic::server::ServerStreamingService<Msg> for Ten {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = std::future::Ready<Result<Response<MsgStream>, Status>>;

    fn call(&mut self, _: Request<Msg>) -> Self::Future {
        let payload = self.0.clone();
        let out = stream::iter((0..MESSAGES).map(move |i| {
            let mut b = Vec::with_capacity(payload.len() + 1);
            b.push(i as u8);
            b.extend_from_slice(&payload);
            Ok(Msg { data: b.into() })
        }));
        std::future::ready(Ok(Response::new(Box::pin(out) as MsgStream)))
    }
}

/// A running tonic server and one client channel (one HTTP/2 connection) to it.
#[derive(Debug)]
pub struct TonicBaseline {
    client: Arc<tonic::client::Grpc<Channel>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl TonicBaseline {
    /// Starts the echo server on `127.0.0.1:0` (TCP_NODELAY on accepted sockets) and connects
    /// one channel to it (TCP_NODELAY on). `payload` is what `ServerStream` sends.
    pub async fn start(payload: &Bytes) -> Result<TonicBaseline, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("tonic: bind: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("tonic: local addr: {e}"))?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (tx, rx) = oneshot::channel::<()>();
        let svc = EchoService {
            payload: payload.clone(),
        };
        let server = tokio::spawn(async move {
            let served = Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("tonic server: {e}");
            }
        });
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("tonic: endpoint: {e}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        let channel = match tokio::time::timeout(Duration::from_secs(10), endpoint.connect()).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                server.abort();
                return Err(format!("tonic: connect: {e}"));
            }
            Err(_) => {
                server.abort();
                return Err("tonic: connect timed out".to_owned());
            }
        };
        Ok(TonicBaseline {
            client: Arc::new(tonic::client::Grpc::new(channel)),
            shutdown: Some(tx),
            server,
        })
    }

    /// Unary echo calls of `payload` with `concurrency` client tasks.
    pub async fn unary_point(&self, concurrency: usize, payload: &Bytes, timing: Timing) -> Point {
        let payload = payload.clone();
        closed_loop(
            Arc::new(vec![self.client.clone()]),
            concurrency,
            timing,
            move |client| {
                let payload = payload.clone();
                async move {
                    let mut grpc = (*client).clone();
                    unary(&mut grpc, &payload).await.is_ok()
                }
            },
        )
        .await
    }

    /// Streams of the tonic counterpart of `shape` with `concurrency` client tasks; one
    /// operation is one stream.
    pub async fn stream_point(
        &self,
        shape: Shape,
        concurrency: usize,
        payload: &Bytes,
        timing: Timing,
    ) -> Point {
        let payload = payload.clone();
        closed_loop(
            Arc::new(vec![self.client.clone()]),
            concurrency,
            timing,
            move |client| {
                let payload = payload.clone();
                async move {
                    let mut grpc = (*client).clone();
                    let r = match shape {
                        Shape::Request => client_stream(&mut grpc, &payload).await,
                        Shape::Responses => server_stream(&mut grpc, &payload).await,
                        Shape::TwoWay => bidi(&mut grpc, &payload).await,
                    };
                    if let Err(e) = &r {
                        report_first_error(e);
                    }
                    r.is_ok()
                }
            },
        )
        .await
    }

    /// Stops the server (graceful for up to 2 s, then aborted).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        drop(self.client);
        if tokio::time::timeout(Duration::from_secs(2), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

type Grpc = tonic::client::Grpc<Channel>;

async fn ready(grpc: &mut Grpc) -> Result<(), Status> {
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))
}

async fn unary(grpc: &mut Grpc, payload: &Bytes) -> Result<(), Status> {
    ready(grpc).await?;
    let resp = grpc
        .unary(
            Request::new(Msg {
                data: payload.clone(),
            }),
            PathAndQuery::from_static(UNARY),
            Codec::default(),
        )
        .await?;
    expect_len(resp.get_ref(), payload.len())
}

async fn bidi(grpc: &mut Grpc, payload: &Bytes) -> Result<(), Status> {
    ready(grpc).await?;
    let p = payload.clone();
    let up = stream::iter((0..MESSAGES).map(move |_| Msg { data: p.clone() }));
    let mut down = grpc
        .streaming(
            Request::new(up),
            PathAndQuery::from_static(BIDI),
            Codec::default(),
        )
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(m) = down.message().await? {
        expect_len(&m, payload.len())?;
        n += 1;
    }
    expect_count(n, MESSAGES)
}

async fn client_stream(grpc: &mut Grpc, payload: &Bytes) -> Result<(), Status> {
    ready(grpc).await?;
    let p = payload.clone();
    // The initial payload (rgrid's open_stream payload) and then 10 messages.
    let up = stream::iter((0..=MESSAGES).map(move |_| Msg { data: p.clone() }));
    grpc.client_streaming(
        Request::new(up),
        PathAndQuery::from_static(CLIENT_STREAM),
        Codec::default(),
    )
    .await?;
    Ok(())
}

async fn server_stream(grpc: &mut Grpc, payload: &Bytes) -> Result<(), Status> {
    ready(grpc).await?;
    let mut down = grpc
        .server_streaming(
            Request::new(Msg {
                data: payload.clone(),
            }),
            PathAndQuery::from_static(SERVER_STREAM),
            Codec::default(),
        )
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(m) = down.message().await? {
        expect_len(&m, payload.len() + 1)?;
        n += 1;
    }
    expect_count(n, MESSAGES)
}

fn expect_len(m: &Msg, want: usize) -> Result<(), Status> {
    if m.data.len() == want {
        Ok(())
    } else {
        Err(Status::internal(format!(
            "message of {} bytes, want {want}",
            m.data.len()
        )))
    }
}

fn expect_count(n: usize, want: usize) -> Result<(), Status> {
    if n == want {
        Ok(())
    } else {
        Err(Status::internal(format!("got {n} messages, want {want}")))
    }
}

fn report_first_error(e: &Status) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("first tonic stream error: {e}"));
}
