//! The websocket dialer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Limits};

use super::{BoxedIo, ConnDialer, DialFuture, split_host};
use crate::auth::TokenSource;
use crate::error::Error;

/// The header carrying the dialer's clock (Unix nanoseconds), as MinIO sends it.
pub(crate) const TIME_HEADER: &str = "x-minio-time";

/// Dials plain-TCP websockets: `http://host:port` becomes `ws://host:port<route>`, with
/// `Authorization: Bearer <token>` and `X-Minio-Time` headers, TCP_NODELAY on, and the
/// whole attempt bounded by the dial timeout.
#[derive(Clone)]
pub struct WsDialer {
    route_path: Arc<str>,
    token: Arc<dyn TokenSource>,
    timeout: Duration,
    max_message_size: usize,
}

impl std::fmt::Debug for WsDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsDialer")
            .field("route_path", &self.route_path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A websocket dialer for `route_path` sending tokens from `token`.
pub fn connect_ws(route_path: &str, token: Arc<dyn TokenSource>) -> WsDialer {
    WsDialer {
        route_path: Arc::from(route_path),
        token,
        timeout: Duration::from_secs(2),
        max_message_size: rgrid_proto::DEFAULT_MAX_MESSAGE_SIZE,
    }
}

impl WsDialer {
    /// Sets the timeout of one attempt (TCP connect plus upgrade). Default 2 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest websocket message accepted. Default 64 MiB.
    #[must_use]
    pub fn max_message_size(mut self, size: usize) -> Self {
        self.max_message_size = size;
        self
    }

    async fn dial_inner(self, remote: String) -> Result<super::WebSocket, Error> {
        let (tls, authority) = split_host(&remote)?;
        if tls {
            return Err(Error::Config("https hosts need the TLS dialer".to_owned()));
        }
        let tcp = TcpStream::connect(authority).await?;
        tcp.set_nodelay(true)?;
        let uri = format!("ws://{authority}{}", self.route_path);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut auth =
            HeaderValue::try_from(format!("Bearer {}", self.token.token_for(&remote)))
                .map_err(|_| Error::Config("token is not a valid header value".to_owned()))?;
        auth.set_sensitive(true);
        let time = HeaderValue::try_from(now.to_string())
            .map_err(|_| Error::Config("bad time header".to_owned()))?;
        let builder = ClientBuilder::new()
            .uri(&uri)
            .map_err(|e| Error::Config(format!("bad websocket uri {uri}: {e}")))?
            .limits(Limits::default().max_payload_len(Some(self.max_message_size)))
            .add_header(http::header::AUTHORIZATION, auth)?
            .add_header(HeaderName::from_static(TIME_HEADER), time)?;
        let io: BoxedIo = Box::new(tcp);
        let (ws, _response) = builder.connect_on(io).await?;
        Ok(ws)
    }
}

impl ConnDialer for WsDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        let this = self.clone();
        let remote = remote.to_owned();
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, this.dial_inner(remote)).await {
                Ok(res) => res,
                Err(_) => Err(Error::Transport(format!(
                    "dial timed out after {timeout:?}"
                ))),
            }
        })
    }
}
