//! Transports: how a websocket to a peer is obtained.
//!
//! * Dialing side: a [`ConnDialer`] opens one websocket to a remote (no retries; the manager
//!   owns the retry loop). [`connect_ws`] is the websocket dialer: plain TCP for `http://`
//!   hosts and, with the `tls` feature and a [`TlsConfig`], TLS for `https://` hosts.
//! * Accepting side: [`crate::Manager::service`] is an HTTP entry point that upgrades requests
//!   on the grid route (usable from hyper and as a tower service on axum),
//!   [`serve`] runs a standalone listener, [`serve_connection`] serves one connection of any
//!   byte-stream transport the same way, and [`crate::Manager::incoming_conn`] takes a
//!   websocket that some other transport already upgraded.
//!
//! # TLS (feature `tls`)
//!
//! The scheme of a host decides: `https://` (or `wss://`) hosts are dialed as `wss://`
//! through TLS, and a node whose own URL is `https://` serves TLS from [`serve`]. A
//! [`TlsConfig`] (set with [`crate::ManagerBuilder::tls`]) supplies the certificates.
//! There is never a plaintext fallback: dialing an `https://` host without a TLS config is
//! an error, a failed handshake is [`Error::Tls`], and [`serve`] drops clients that do not
//! complete the TLS handshake. [`crate::Manager::service`] does not terminate TLS: when it
//! is mounted on another HTTP server, that server owns TLS.

mod http;
#[cfg(feature = "tls")]
mod tls;
mod ws;

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub use self::http::{GridService, serve, serve_connection};
#[cfg(feature = "tls")]
pub use self::tls::{TlsConfig, TlsConfigBuilder};
pub use self::ws::{WsDialer, connect_ws};
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

/// Unsent bytes the kernel keeps queued on a grid socket (`TCP_NOTSENT_LOWAT`, Linux): past
/// this the socket reports "full", so the connection's scheduler decides what goes next
/// instead of a long first-in first-out socket buffer (a small call would otherwise queue
/// behind megabytes of bulk data already handed to the kernel).
pub(crate) const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Sets the socket options of a grid connection: `TCP_NODELAY`, and on Linux
/// [`NOTSENT_LOWAT`].
pub(crate) fn tune_tcp(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let lowat = std::env::var("RGRID_NOTSENT_LOWAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(NOTSENT_LOWAT);
        if lowat > 0 {
            socket2::SockRef::from(tcp).set_tcp_notsent_lowat(lowat)?;
        }
    }
    Ok(())
}
