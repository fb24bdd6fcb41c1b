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
//! an error, a failed handshake is [`crate::Error::Tls`], and [`serve`] drops clients that do not
//! complete the TLS handshake. [`crate::Manager::service`] does not terminate TLS: when it
//! is mounted on another HTTP server, that server owns TLS.

pub(crate) mod dial;
mod http;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod ws;

pub use self::dial::{BoxedIo, ConnDialer, DialFuture, Io, WebSocket, normalize_host};
pub use self::http::{GridService, serve, serve_connection};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use self::tls::{TlsConfig, TlsConfigBuilder};
pub use self::ws::{WsDialer, connect_ws};
/// The websocket crate of [`WebSocket`], for custom dialers and servers.
pub use tokio_websockets;

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
