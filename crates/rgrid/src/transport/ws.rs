//! The websocket dialer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Limits};

use super::dial::{BoxedIo, ConnDialer, DialFuture, split_host};
use crate::auth::TokenSource;
use crate::error::Error;

/// The header carrying the dialer's clock (Unix nanoseconds), as MinIO sends it.
pub(crate) const TIME_HEADER: &str = "x-minio-time";

/// Dials websockets: `http://host:port` becomes `ws://host:port<route>`, with
/// `Authorization: Bearer <token>` and `X-Minio-Time` headers, TCP_NODELAY on, and the
/// whole attempt bounded by the dial timeout.
///
/// `https://host:port` becomes `wss://host:port<route>` over TLS when a TLS config is set
/// ([`WsDialer::tls`], feature `tls`); without one, dialing an `https://` host fails with
/// [`Error::Config`] (never a plaintext attempt). A failed TLS handshake, or a server that
/// refuses this node's client certificate, fails with [`Error::Tls`].
#[derive(Clone)]
pub struct WsDialer {
    route_path: Arc<str>,
    token: Arc<dyn TokenSource>,
    timeout: Duration,
    max_message_size: usize,
    #[cfg(feature = "tls")]
    tls: Option<super::TlsConfig>,
}

impl std::fmt::Debug for WsDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsDialer")
            .field("route_path", &self.route_path)
            .field("timeout", &self.timeout)
            .field("tls", &self.has_tls())
            .finish_non_exhaustive()
    }
}

/// A websocket dialer for `route_path` sending tokens from `token`.
pub fn connect_ws(route_path: &str, token: Arc<dyn TokenSource>) -> WsDialer {
    WsDialer {
        route_path: Arc::from(route_path),
        token,
        timeout: Duration::from_secs(2),
        max_message_size: rgrid_proto::DEFAULT_MAX_FRAME_SIZE,
        #[cfg(feature = "tls")]
        tls: None,
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

    /// Dials `https://` hosts through TLS with `config` (feature `tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls(mut self, config: super::TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    #[cfg(feature = "tls")]
    fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    fn has_tls(&self) -> bool {
        false
    }

    /// TCP (and, for `https://`, TLS) to `authority`.
    async fn open(&self, tls: bool, authority: &str, remote: &str) -> Result<BoxedIo, Error> {
        if tls && !self.has_tls() {
            return Err(Error::Config(format!(
                "{remote} is an https host but no TLS config is set{}",
                if cfg!(feature = "tls") {
                    ""
                } else {
                    " (rgrid was built without the `tls` feature)"
                }
            )));
        }
        let tcp = TcpStream::connect(authority).await?;
        super::tune_tcp(&tcp)?;
        #[cfg(feature = "tls")]
        if let (true, Some(config)) = (tls, &self.tls) {
            return Ok(Box::new(config.connect(tcp, authority).await?));
        }
        Ok(Box::new(tcp))
    }

    async fn dial_inner(self, remote: String) -> Result<super::dial::WebSocket, Error> {
        let (tls, authority) = split_host(&remote)?;
        let io = self.open(tls, authority, &remote).await?;
        let scheme = if tls { "wss" } else { "ws" };
        let uri = format!("{scheme}://{authority}{}", self.route_path);
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
        let (ws, _response) = builder
            .connect_on(io)
            .await
            .map_err(|e| upgrade_error(tls, e))?;
        Ok(ws)
    }
}

/// A failed upgrade; over TLS, a TLS alert (say, the server refused our client certificate,
/// which TLS 1.3 reports only after the handshake) is an [`Error::Tls`].
fn upgrade_error(tls: bool, e: tokio_websockets::Error) -> Error {
    #[cfg(feature = "tls")]
    if let (true, tokio_websockets::Error::Io(io)) = (tls, &e)
        && super::tls::is_tls_io_error(io)
    {
        return Error::Tls(crate::error::Cause::with_source(
            "during the websocket upgrade",
            e,
        ));
    }
    let _ = tls;
    e.into()
}

impl ConnDialer for WsDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        let this = self.clone();
        let remote = remote.to_owned();
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, this.dial_inner(remote)).await {
                Ok(res) => res,
                Err(_) => Err(Error::Transport(
                    format!("dial timed out after {timeout:?}").into(),
                )),
            }
        })
    }
}
