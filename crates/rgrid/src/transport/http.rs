//! The HTTP entry point: websocket upgrades on the grid route.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;
use tokio_websockets::{Limits, ServerBuilder};

use super::BoxedIo;
use crate::manager::Manager;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The pre-auth slot [`serve`] took for a connection when it accepted it, handed to the
/// service through the request's extensions so the slot is held until the grid handshake
/// ends.
#[derive(Clone)]
struct PreauthSlot(std::sync::Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>);

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

impl GridService {
    pub(crate) fn new(manager: Manager) -> Self {
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
            .and_then(|s| crate::connection::lock(&s.0).take());
        let Some(slot) = taken.or_else(|| self.manager.preauth_slot()) else {
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
pub async fn serve(listener: TcpListener, manager: Manager) {
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
        let Some(permit) = manager.preauth_slot() else {
            tracing::debug!(%peer, "grid: too many connections in their handshake, closing one");
            drop(tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "set_nodelay failed");
        }
        let service = manager.service();
        let conn_shutdown = shutdown.clone();
        let timeout = manager.options().handshake_timeout;
        manager.spawn(async move {
            let slot = PreauthSlot(std::sync::Arc::new(std::sync::Mutex::new(Some(permit))));
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(slot.clone());
                let resp = service.handle(req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades();
            // The connection ends with the upgrade; until then it is unauthenticated and
            // gets the handshake timeout.
            tokio::select! {
                res = tokio::time::timeout(timeout, conn) => match res {
                    Ok(Err(e)) => tracing::debug!(error = %e, %peer, "grid http connection ended"),
                    Err(_) => tracing::debug!(%peer, "grid: upgrade request too slow, closed"),
                    Ok(Ok(())) => {}
                },
                _ = conn_shutdown.cancelled() => {}
            }
        });
    }
}
