//! The HTTP entry point: websocket upgrades on the grid route.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_websockets::{Limits, ServerBuilder};

use super::dial::BoxedIo;
use crate::admission::Slot;
use crate::manager::Manager;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The pre-auth slot [`serve`] took for a connection when it accepted it, handed to the
/// service through the request's extensions so the slot is held until the grid handshake
/// ends.
#[derive(Clone)]
struct PreauthSlot(std::sync::Arc<std::sync::Mutex<Option<Slot>>>);

/// The grid's HTTP entry point as a cloneable service.
///
/// It answers a websocket upgrade on the manager's route path: the HTTP auth hook runs first
/// (403 when it refuses), then the upgrade headers are checked (426 when they are missing),
/// then the connection is switched to a websocket and handed to the manager, which runs the
/// grid handshake on it. Other paths get 404.
///
/// It implements `tower_service::Service`, so it mounts on axum with
/// `Router::new().route_service(path, manager.service())`; with plain hyper wrap it in
/// `hyper_util::service::TowerToHyperService` and serve the connection with upgrades enabled.
#[derive(Clone, Debug)]
pub struct GridService {
    manager: Manager,
}

// Here rather than in manager.rs, so that the manager does not depend on the HTTP side.
impl Manager {
    /// The HTTP entry point (a tower service) for websocket upgrades on the route path.
    pub fn service(&self) -> GridService {
        GridService::new(self.clone())
    }
}

impl GridService {
    fn new(manager: Manager) -> Self {
        GridService { manager }
    }

    /// Handles one request. An upgrade takes one of the manager's pre-auth slots
    /// ([`crate::Options::max_preauth_conns`]) until the grid handshake ends; when none is
    /// free the answer is 503.
    pub fn handle<B>(&self, mut req: Request<B>) -> Response<Empty<Bytes>> {
        let opts = self.manager.options();
        if req.uri().path() != opts.route_path {
            return status(StatusCode::NOT_FOUND);
        }
        if let Some(hook) = self.manager.http_auth()
            && let Err(reason) = hook(req.headers())
        {
            tracing::debug!(remote = ?req.headers().get(header::HOST), %reason, "grid upgrade refused");
            return status(StatusCode::FORBIDDEN);
        }
        let Some(accept) = websocket_accept(&req) else {
            return status(StatusCode::UPGRADE_REQUIRED);
        };
        let taken = req
            .extensions()
            .get::<PreauthSlot>()
            .and_then(|s| crate::util::lock(&s.0).take());
        let Some(slot) = taken.or_else(|| self.manager.preauth_slot(None)) else {
            tracing::debug!("grid: too many connections in their handshake, upgrade refused");
            return status(StatusCode::SERVICE_UNAVAILABLE);
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let manager = self.manager.clone();
        let limits = Limits::default().max_payload_len(Some(crate::MAX_HANDSHAKE_MESSAGE_SIZE));
        let timeout = opts.handshake_timeout;
        self.manager.spawn(async move {
            match tokio::time::timeout(timeout, on_upgrade).await {
                Err(_) => tracing::debug!("grid upgrade timed out"),
                Ok(Ok(upgraded)) => {
                    let io: BoxedIo = Box::new(TokioIo::new(upgraded));
                    let ws = ServerBuilder::new().limits(limits).serve(io);
                    manager.incoming_conn_in_slot(ws, slot).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "grid upgrade failed"),
            }
        });
        let mut resp = Response::new(Empty::new());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::try_from(accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        resp
    }
}

impl<B> tower_service::Service<Request<B>> for GridService {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.handle(req)))
    }
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = code;
    resp
}

/// Checks the websocket upgrade headers and computes `Sec-WebSocket-Accept`.
fn websocket_accept<B>(req: &Request<B>) -> Option<String> {
    let h = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if req.method() != http::Method::GET
        || !has(header::UPGRADE, "websocket")
        || !has(header::CONNECTION, "upgrade")
        || h.get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
    {
        return None;
    }
    let key = h.get(header::SEC_WEBSOCKET_KEY)?;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes()))
}

/// Serves the grid on `listener` until the manager shuts down: every accepted socket gets
/// TCP_NODELAY and an HTTP/1.1 connection with upgrades enabled, answered by the manager's
/// [`GridService`].
///
/// Before authentication a connection holds one of [`crate::Options::max_preauth_conns`]
/// slots (a socket accepted when none is free is closed at once) and must send its upgrade
/// request within [`crate::Options::handshake_timeout`] (slow senders are dropped), then its
/// connect message within the same time again.
///
/// When the manager's own host is `https://`, every socket first completes a TLS handshake
/// with the manager's TLS config (feature `tls`, [`crate::ManagerBuilder::tls`]), bounded by
/// [`crate::Options::handshake_timeout`]; a client that fails it (plaintext, untrusted or
/// missing client certificate under mutual TLS, too slow) is logged at debug level and
/// dropped. A manager with an `https://` host but no TLS certificate to serve with does not
/// serve at all: it logs an error and returns at once (never plaintext on an https URL).
pub async fn serve(listener: TcpListener, manager: Manager) {
    let Ok(tls) = acceptor(&manager) else {
        return;
    };
    let shutdown = manager.shutdown_token();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            res = listener.accept() => match res {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "grid accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = manager.preauth_slot(Some(peer.ip())) else {
            tracing::debug!(%peer, "grid: too many connections in their handshake (from this \
                address or in all), closing one");
            drop(tcp);
            continue;
        };
        if let Err(e) = super::tune_tcp(&tcp) {
            tracing::debug!(error = %e, %peer, "tuning the accepted socket failed");
        }
        // TLS handshake and upgrade request share one deadline.
        let pre = PreAuth {
            slot: permit,
            deadline: Instant::now() + manager.options().handshake_timeout,
        };
        match &tls {
            Some(acceptor) => spawn_tls(&manager, acceptor, tcp, peer, pre),
            None => manager.spawn(serve_http(
                tcp,
                Some(peer),
                manager.clone(),
                shutdown.clone(),
                pre,
            )),
        }
    }
}

/// What an accepted connection holds until it is authenticated: its pre-auth slot, and the
/// deadline for its TLS handshake and upgrade request.
struct PreAuth {
    slot: Slot,
    deadline: Instant,
}

/// What terminates TLS in `serve` (nothing can without the `tls` feature).
#[cfg(feature = "tls")]
type Acceptor = tokio_rustls::TlsAcceptor;
#[cfg(not(feature = "tls"))]
type Acceptor = Infallible;

/// Runs the TLS handshake on `tcp` (bounded by the handshake timeout), then HTTP on top; a
/// client that fails or stalls the handshake is dropped.
#[cfg(feature = "tls")]
fn spawn_tls(
    manager: &Manager,
    acceptor: &Acceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    pre: PreAuth,
) {
    let acceptor = acceptor.clone();
    let limit = manager.options().handshake_timeout;
    let shutdown = manager.shutdown_token();
    let conn_manager = manager.clone();
    manager.spawn(async move {
        let evicted = pre.slot.eviction();
        let accepted = tokio::select! {
            res = tokio::time::timeout_at(pre.deadline, acceptor.accept(tcp)) => res,
            _ = shutdown.cancelled() => return,
            () = evicted.cancelled() => return,
        };
        match accepted {
            Ok(Ok(stream)) => serve_http(stream, Some(peer), conn_manager, shutdown, pre).await,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "grid: TLS handshake failed, dropped");
            }
            Err(_) => {
                tracing::debug!(%peer, ?limit, "grid: TLS handshake timed out, dropped");
            }
        }
    });
}

#[cfg(not(feature = "tls"))]
fn spawn_tls(_: &Manager, acceptor: &Acceptor, _: TcpStream, _: SocketAddr, _: PreAuth) {
    match *acceptor {}
}

/// The TLS acceptor `serve` needs: `None` for an `http://` host; `Err` (logged) when the host
/// is `https://` and there is no certificate to serve with.
#[cfg(feature = "tls")]
fn acceptor(manager: &Manager) -> Result<Option<Acceptor>, ()> {
    if !local_is_https(manager) {
        return Ok(None);
    }
    match manager
        .tls()
        .and_then(crate::transport::TlsConfig::acceptor)
    {
        Some(acceptor) => Ok(Some(acceptor)),
        None => {
            tracing::error!(
                local = manager.host(),
                "grid: not serving: the local host is https but the TLS config has no certificate \
                 (ManagerBuilder::tls with an identity)"
            );
            Err(())
        }
    }
}

#[cfg(not(feature = "tls"))]
fn acceptor(manager: &Manager) -> Result<Option<Acceptor>, ()> {
    if local_is_https(manager) {
        tracing::error!(
            local = manager.host(),
            "grid: not serving: the local host is https and rgrid is built without `tls`"
        );
        return Err(());
    }
    Ok(None)
}

fn local_is_https(manager: &Manager) -> bool {
    super::dial::split_host(manager.host()).is_ok_and(|(https, _)| https)
}

/// Serves one already-accepted connection of any transport (a Unix socket, an in-process
/// pipe, a simulated network) the way [`serve`] serves a TCP connection, TLS aside: an
/// HTTP/1.1 connection with upgrades answered by the manager's [`GridService`], holding one
/// of [`crate::Options::max_preauth_conns`] slots until the grid handshake ends (the
/// connection is dropped at once when none is free), with the upgrade request due within
/// [`crate::Options::handshake_timeout`]. Returns when the connection has been upgraded (the
/// grid connection then runs in the background) or has ended.
pub async fn serve_connection<I>(io: I, manager: Manager)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(slot) = manager.preauth_slot(None) else {
        tracing::debug!("grid: too many connections in their handshake, closing one");
        return;
    };
    let pre = PreAuth {
        slot,
        deadline: Instant::now() + manager.options().handshake_timeout,
    };
    let shutdown = manager.shutdown_token();
    serve_http(io, None, manager, shutdown, pre).await;
}

/// One HTTP/1.1 connection with upgrades, answered by the manager's [`GridService`]. The
/// connection ends with the upgrade; until then it is unauthenticated, holds its pre-auth
/// slot (handed on to the grid handshake through the request) and must meet its deadline.
async fn serve_http<I>(
    io: I,
    peer: Option<SocketAddr>,
    manager: Manager,
    shutdown: CancellationToken,
    pre: PreAuth,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = manager.service();
    let evicted = pre.slot.eviction();
    let slot = PreauthSlot(std::sync::Arc::new(std::sync::Mutex::new(Some(pre.slot))));
    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(slot.clone());
        let resp = service.handle(req);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        res = tokio::time::timeout_at(pre.deadline, conn) => match res {
            Ok(Err(e)) => tracing::debug!(error = %e, ?peer, "grid http connection ended"),
            Err(_) => tracing::debug!(?peer, "grid: upgrade request too slow, closed"),
            Ok(Ok(())) => {}
        },
        _ = shutdown.cancelled() => {}
        // The table was full and this connection was the oldest unauthenticated one.
        () = evicted.cancelled() => tracing::debug!(?peer, "grid: evicted before its upgrade"),
    }
}
