//! What `serve` and `call` share: the node flags, building and starting a manager that
//! listens on its own URL's port, and the two kinds of failure with their exit codes.

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use rgrid::{DEFAULT_ROUTE_PATH, Manager, Options};
use tokio::net::TcpListener;

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad flags, no connection, a transport or deadline error: exit code 2.
    Local(String),
    /// The remote handler answered with an error: exit code 3.
    Remote(String),
}

impl Failure {
    /// The process exit code (DESIGN.md §4).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Local(_) => 2,
            Failure::Remote(_) => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Local(m) => write!(f, "rgrid: {m}"),
            Failure::Remote(m) => write!(f, "remote error: {m}"),
        }
    }
}

impl From<rgrid::Error> for Failure {
    fn from(e: rgrid::Error) -> Self {
        match e {
            rgrid::Error::Remote(r) => Failure::Remote(r.text().to_owned()),
            other => Failure::Local(other.to_string()),
        }
    }
}

/// The flags that make a process a node of a grid.
#[derive(Args, Debug, Clone)]
pub(crate) struct NodeArgs {
    /// This node's URL, e.g. http://127.0.0.1:9001; the node listens on its port.
    #[arg(long, value_name = "URL")]
    pub(crate) local: String,
    /// Every node of the grid, comma-separated (the local URL is added if missing).
    #[arg(
        long,
        value_name = "URL,URL,...",
        value_delimiter = ',',
        required = true
    )]
    pub(crate) hosts: Vec<String>,
    /// The shared secret: sent when dialing, required of every incoming connection.
    #[arg(long, value_name = "T", env = "RGRID_TOKEN", hide_env_values = true)]
    pub(crate) token: String,
    /// HTTP path of the websocket upgrade.
    #[arg(long, value_name = "P", default_value = DEFAULT_ROUTE_PATH)]
    pub(crate) route_path: String,
    /// TLS certificate (PEM). Not available yet: TLS arrives with the security work.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM). Not available yet.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA bundle (PEM) to verify peers. Not available yet.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
}

impl NodeArgs {
    /// The host list with the local URL in it, in the order given, without duplicates.
    pub(crate) fn all_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::with_capacity(self.hosts.len() + 1);
        for h in self
            .hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
        {
            if !hosts.iter().any(|x| x == h) {
                hosts.push(h.to_owned());
            }
        }
        if !hosts.iter().any(|x| x == &self.local) {
            hosts.push(self.local.clone());
        }
        hosts
    }

    /// Builds the manager, lets `register` add handlers, listens on the local URL's port and
    /// starts dialing. The caller shuts the manager down.
    pub(crate) async fn start(
        &self,
        register: impl FnOnce(&Manager) -> Result<(), rgrid::Error>,
    ) -> Result<Manager, Failure> {
        if self.tls_cert.is_some() || self.tls_key.is_some() || self.ca.is_some() {
            return Err(Failure::Local(
                "TLS (--tls-cert, --tls-key, --ca) is not supported by this build yet".into(),
            ));
        }
        let addr = listen_address(&self.local)?;
        let hosts = self.all_hosts();
        if let Some(h) = hosts.iter().find(|h| listen_address(h).is_err()) {
            return Err(Failure::Local(format!(
                "host {h:?} is not an http://host:port URL"
            )));
        }
        let manager = Manager::builder(self.local.clone(), hosts)
            .options(Options {
                route_path: self.route_path.clone(),
                ..Options::default()
            })
            .token(self.token.clone())
            .build()?;
        register(&manager)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::Local(format!("cannot listen on {addr}: {e}")))?;
        tokio::spawn(rgrid::serve(listener, manager.clone()));
        manager.start();
        Ok(manager)
    }
}

/// The `host:port` a node with this URL listens on.
pub(crate) fn listen_address(url: &str) -> Result<&str, Failure> {
    if url.starts_with("https://") || url.starts_with("wss://") {
        return Err(Failure::Local(format!(
            "{url}: TLS hosts are not supported by this build yet"
        )));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| Failure::Local(format!("{url:?} is not an http://host:port URL")))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(authority),
        _ => Err(Failure::Local(format!(
            "{url:?} needs an explicit host and port, like http://127.0.0.1:9001"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn listen_address_takes_the_authority_and_refuses_the_rest() {
        assert_eq!(
            listen_address("http://127.0.0.1:9001").unwrap(),
            "127.0.0.1:9001"
        );
        assert_eq!(
            listen_address("http://node-1:9000/ignored").unwrap(),
            "node-1:9000"
        );
        assert_eq!(listen_address("ws://[::1]:80").unwrap(), "[::1]:80");
        for bad in [
            "127.0.0.1:9001",
            "http://127.0.0.1",
            "http://:9000",
            "http://a:port",
            "https://a:1",
        ] {
            assert!(listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_local_url_joins_the_host_list_once() {
        let args = NodeArgs {
            local: "http://127.0.0.1:2".into(),
            hosts: vec![
                "http://127.0.0.1:1".into(),
                " http://127.0.0.1:1".into(),
                String::new(),
            ],
            token: "t".into(),
            route_path: DEFAULT_ROUTE_PATH.into(),
            tls_cert: None,
            tls_key: None,
            ca: None,
        };
        assert_eq!(
            args.all_hosts(),
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Failure::from(rgrid::Error::Disconnected).exit_code(), 2);
        let remote = Failure::from(rgrid::Error::Remote(rgrid::RemoteError::new("x")));
        assert_eq!(remote.exit_code(), 3);
        assert_eq!(remote.to_string(), "remote error: x");
    }
}
