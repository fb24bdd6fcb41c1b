//! `rgrid serve --metrics ADDR`: the library's metrics (feature `metrics` of rgrid) as
//! Prometheus text over plain HTTP/1.1.
//!
//! The exporter crate's own listener would bring an HTTP/2 stack into the binary (its
//! `http-listener` feature enables hyper's automatic HTTP/1-or-2 server), so this module
//! serves the rendered text with the HTTP/1 server the grid already uses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::node::Failure;

/// How often the recorder drains its histograms (the exporter's own default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of Prometheus' text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// Installs the Prometheus recorder as the global `metrics` recorder and serves its text on
/// `addr` (every path; `GET` and `HEAD` only) in background tasks. Call it before the node
/// starts, so that every call is counted.
pub(crate) async fn serve(addr: SocketAddr) -> Result<(), Failure> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Local(format!("--metrics {addr}: {e}")))?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Failure::Local(format!("--metrics {addr}: {e}")))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(accept(listener, handle));
    Ok(())
}

/// Serves every connection of `listener` (HTTP/1.1, keep-alive) until the process ends.
async fn accept(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                // Out of descriptors, say: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = respond(&req, &handle);
                async move { Ok::<_, Infallible>(resp) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics: connection ended with an error");
            }
        });
    }
}

/// The answer to one request: the rendered metrics for `GET`/`HEAD`, 405 otherwise.
fn respond(req: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, body) = match *req.method() {
        // hyper leaves the body out of the answer to a HEAD.
        Method::GET | Method::HEAD => (StatusCode::OK, Bytes::from(handle.render())),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"GET only\n"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(TEXT_FORMAT),
    );
    resp
}
