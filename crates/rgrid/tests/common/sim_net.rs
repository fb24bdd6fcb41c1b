//! The grid on turmoil's simulated network: a [`ConnDialer`] that opens a
//! `turmoil::net::TcpStream` and upgrades it to a client websocket, and an accept loop that
//! serves the manager's HTTP entry point (hyper, with upgrades) on a
//! `turmoil::net::TcpListener`. Everything above the byte stream is the production code.

use std::time::Duration;

use http::{HeaderValue, header};
use rgrid::transport::{BoxedIo, ConnDialer, DialFuture};
use rgrid::{Error, Manager};
use tokio_websockets::ClientBuilder;

/// Dials peers over turmoil TCP. Each attempt (connect plus upgrade) is bounded by `timeout`:
/// a SYN into a partition is never answered in turmoil.
#[derive(Clone, Debug)]
pub(crate) struct SimDialer {
    /// Route of the websocket upgrade.
    pub(crate) route: String,
    /// Token sent in the `Authorization` header.
    pub(crate) token: String,
    /// Bound of one attempt.
    pub(crate) timeout: Duration,
}

impl ConnDialer for SimDialer {
    fn dial(&self, remote: &str) -> DialFuture {
        let authority = remote.strip_prefix("http://").unwrap_or(remote).to_owned();
        let uri = format!("ws://{authority}{}", self.route);
        let auth = format!("Bearer {}", self.token);
        let timeout = self.timeout;
        Box::pin(async move {
            let attempt = async {
                let tcp = turmoil::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|e| Error::Transport(format!("connect {authority}: {e}").into()))?;
                let builder = ClientBuilder::new()
                    .uri(&uri)
                    .map_err(|e| Error::Config(e.to_string()))?
                    .add_header(
                        header::AUTHORIZATION,
                        HeaderValue::try_from(auth).map_err(|e| Error::Config(e.to_string()))?,
                    )
                    .map_err(|e| Error::Config(e.to_string()))?;
                let io: BoxedIo = Box::new(tcp);
                let (ws, _resp) = builder
                    .connect_on(io)
                    .await
                    .map_err(|e| Error::Transport(e.to_string().into()))?;
                Ok(ws)
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(res) => res,
                Err(_) => Err(Error::Transport("dial timed out".into())),
            }
        })
    }
}

/// Accepts turmoil TCP connections on `port` forever and serves each with
/// [`rgrid::serve_connection`]: the production accept path (pre-auth slots, upgrade deadline,
/// the manager's HTTP entry point) on a simulated socket.
pub(crate) async fn serve_sim(port: u16, manager: Manager) {
    let listener = turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
        .await
        .expect("bind");
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(rgrid::serve_connection(tcp, manager.clone()));
    }
}
