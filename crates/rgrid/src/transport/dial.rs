//! What a dialer hands over: the byte stream, the websocket on it, the dialer trait, and the
//! host-URL parsing every transport shares. A leaf: it depends on the crate's errors only.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;

/// A byte stream a websocket can run on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream.
pub type BoxedIo = Box<dyn Io>;

/// A websocket over any byte stream, as the grid uses it.
pub type WebSocket = tokio_websockets::WebSocketStream<BoxedIo>;

/// The future a dialer returns.
pub type DialFuture = Pin<Box<dyn Future<Output = Result<WebSocket, Error>> + Send + 'static>>;

/// Opens one websocket connection to a remote host.
///
/// A dialer should not retry and should give up after about two seconds; the manager calls it
/// again with jittered backoff. The returned websocket must be a client-side (masking)
/// stream whose upgrade request carried the authentication headers.
pub trait ConnDialer: Send + Sync + 'static {
    /// Dials `remote` (a host as it appears in the host list, e.g. `http://10.0.0.2:9000`).
    fn dial(&self, remote: &str) -> DialFuture;
}

/// Splits `http://host:port` into whether it uses TLS and the `host:port` part.
pub(crate) fn split_host(host: &str) -> Result<(bool, &str), Error> {
    let (tls, rest) = if let Some(rest) = host.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = host.strip_prefix("ws://") {
        (false, rest)
    } else if let Some(rest) = host.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = host.strip_prefix("wss://") {
        (true, rest)
    } else {
        return Err(Error::Config(format!(
            "host {host:?} has no http:// or https:// scheme"
        )));
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        return Err(Error::Config(format!("host {host:?} has no address")));
    }
    Ok((tls, authority))
}
