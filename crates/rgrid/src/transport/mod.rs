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
/// behind megabytes of bulk data already handed to the kernel). It bounds only what waits
/// in the kernel unsent, not what is in flight, so it does not cap throughput on long links.
///
/// 32 KiB, measured with `rgrid-bench --only hol` (8 small calls next to a stream pushing
/// 256 KiB messages, 2 vCPUs, runs alternated): small-call p99 at bulk window 4 was lower
/// than with 128 KiB in 6 of 8 pairs (median 2.7x idle against 4.0x), bulk throughput no
/// lower; 16 KiB and 64 KiB measured worse. `RGRID_NOTSENT_LOWAT` (bytes; 0 leaves the kernel's
/// default) overrides it, for such measurements.
pub(crate) const NOTSENT_LOWAT: u32 = 32 * 1024;

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

#[cfg(test)]
mod tests {
    /// A grid socket gets `TCP_NODELAY` and, on Linux, the short unsent buffer (read back
    /// from the kernel).
    #[tokio::test]
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        ignore = "TCP_NOTSENT_LOWAT exists on Linux only"
    )]
    async fn grid_sockets_get_nodelay_and_a_short_unsent_buffer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (dialed, _accepted) = (dialed.unwrap(), accepted.unwrap());
        super::tune_tcp(&dialed).unwrap();
        assert!(dialed.nodelay().unwrap());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let want = std::env::var("RGRID_NOTSENT_LOWAT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(super::NOTSENT_LOWAT);
            let got = socket2::SockRef::from(&dialed).tcp_notsent_lowat().unwrap();
            assert_eq!(got, want);
            assert_eq!(super::NOTSENT_LOWAT, 32 * 1024);
        }
    }
}
