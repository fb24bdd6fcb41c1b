//! What `serve` and `call` share: the node flags, building and starting a manager that
//! listens on its own URL's port, and the two kinds of failure with their exit codes.

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use rgrid::{DEFAULT_ROUTE_PATH, Manager, Options};
use tokio::net::TcpListener;

use crate::auth::{Auth, AuthArgs};

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
    /// This node's URL, e.g. http://127.0.0.1:9001; the node listens on its port. `serve`
    /// needs it; `call` without it joins as a client participant (it only dials, and the
    /// servers must accept clients: `serve --max-clients`).
    #[arg(long, value_name = "URL")]
    pub(crate) local: Option<String>,
    /// Client participants this node accepts at once (`rgrid call` without --local, admin
    /// tools); 0 refuses them, as a MinIO node does.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(crate) max_clients: usize,
    /// Every node of the grid, comma-separated (the local URL is added if missing).
    #[arg(
        long,
        value_name = "URL,URL,...",
        value_delimiter = ',',
        required_unless_present = "hosts_file"
    )]
    pub(crate) hosts: Vec<String>,
    /// A file listing more nodes of the grid (URLs separated by commas, spaces or lines;
    /// `#` starts a comment). `serve` re-reads it on SIGHUP and adds and removes hosts
    /// without a restart.
    #[arg(long, value_name = "FILE")]
    pub(crate) hosts_file: Option<PathBuf>,
    /// The credentials (exactly one source).
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    /// HTTP path of the websocket upgrade.
    #[arg(long, value_name = "P", default_value = DEFAULT_ROUTE_PATH)]
    pub(crate) route_path: String,
    /// This node's TLS certificate chain (PEM, leaf first); required when --local is
    /// https://. Served to peers, and shown to peers that ask for a client certificate.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that https:// peers' certificates must chain to; required when any
    /// host is https://. Peers are checked against the host name or IP of their URL. Client
    /// certificates are not required: incoming peers are judged by their credentials.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
}

impl NodeArgs {
    /// The hosts of --hosts and --hosts-file (read now) and the local URL, without
    /// duplicates.
    pub(crate) fn hosts_now(&self) -> Result<Vec<String>, Failure> {
        let mut hosts = self.all_hosts();
        if let Some(path) = &self.hosts_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Local(format!("--hosts-file {}: {e}", path.display())))?;
            for h in text
                .lines()
                .map(|l| l.split('#').next().unwrap_or_default())
                .flat_map(|l| l.split([',', ' ', '\t']))
                .map(str::trim)
                .filter(|h| !h.is_empty())
            {
                if !hosts.iter().any(|x| x == h) {
                    hosts.push(h.to_owned());
                }
            }
        }
        Ok(hosts)
    }

    /// The local URL (`serve`, and `call` as a node).
    pub(crate) fn local(&self) -> Result<&str, Failure> {
        self.local
            .as_deref()
            .ok_or_else(|| Failure::Local("--local URL is required to run a node".into()))
    }

    /// The host list with the local URL (if any) in it, in the order given, without
    /// duplicates.
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
        if let Some(local) = &self.local
            && !hosts.iter().any(|x| x == local)
        {
            hosts.push(local.clone());
        }
        hosts
    }

    /// Builds the manager with `auth` (from [`AuthArgs::resolve`]), lets `register` add
    /// handlers, listens on the local URL's port and starts dialing. The caller shuts the
    /// manager down.
    pub(crate) async fn start(
        &self,
        auth: &Auth,
        register: impl FnOnce(&Manager) -> Result<(), rgrid::Error>,
    ) -> Result<Manager, Failure> {
        let local = self.local()?;
        let addr = listen_address(local)?;
        let hosts = self.hosts_now()?;
        if let Some(h) = hosts.iter().find(|h| listen_address(h).is_err()) {
            return Err(Failure::Local(format!(
                "host {h:?} is not an http(s)://host:port URL"
            )));
        }
        let tls = self.tls_config(&hosts)?;
        let mut builder = auth.apply(Manager::builder(local, hosts).options(Options {
            route_path: self.route_path.clone(),
            max_clients: self.max_clients,
            ..Options::default()
        }));
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        let manager = builder.build()?;
        register(&manager)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::Local(format!("cannot listen on {addr}: {e}")))?;
        tokio::spawn(rgrid::serve(listener, manager.clone()));
        manager.start();
        Ok(manager)
    }

    /// Joins the grid of --hosts as a client participant named `name`: it dials every host
    /// and listens nowhere (`Manager::client_builder`).
    pub(crate) fn start_client(
        &self,
        name: &str,
        auth: &Auth,
        register: impl FnOnce(&Manager) -> Result<(), rgrid::Error>,
    ) -> Result<Manager, Failure> {
        let hosts = self.hosts_now()?;
        if let Some(h) = hosts.iter().find(|h| listen_address(h).is_err()) {
            return Err(Failure::Local(format!(
                "host {h:?} is not an http(s)://host:port URL"
            )));
        }
        let tls = self.tls_config(&hosts)?;
        let mut builder = auth.apply(Manager::client_builder(name, hosts).options(Options {
            route_path: self.route_path.clone(),
            ..Options::default()
        }));
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        let manager = builder.build()?;
        register(&manager)?;
        manager.start();
        Ok(manager)
    }
}

impl NodeArgs {
    /// The TLS config the flags ask for: `None` when every host is http://. The scheme of
    /// each URL decides (https:// hosts are dialed through TLS; an https:// --local serves
    /// TLS), and a flag that would go unused is an error rather than silently ignored.
    fn tls_config(&self, hosts: &[String]) -> Result<Option<rgrid::TlsConfig>, Failure> {
        let cert_key = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(Failure::Local(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
        };
        let local = self.local.as_deref().unwrap_or_default();
        let local_https = is_https(local);
        let remote_https = hosts.iter().any(|h| *h != local && is_https(h));
        if !local_https && !remote_https {
            if cert_key.is_some() || self.ca.is_some() {
                return Err(Failure::Local(
                    "--tls-cert, --tls-key and --ca are for https:// hosts; every host is http://"
                        .into(),
                ));
            }
            return Ok(None);
        }
        if local_https && cert_key.is_none() {
            return Err(Failure::Local(format!(
                "--local {local} is https://: give --tls-cert and --tls-key"
            )));
        }
        if !local_https && cert_key.is_some() {
            return Err(Failure::Local(format!(
                "--tls-cert/--tls-key need an https:// --local URL, not {local:?}"
            )));
        }
        let Some(ca) = &self.ca else {
            return Err(Failure::Local(
                "https:// hosts need --ca, the CA bundle that signed the nodes' certificates"
                    .into(),
            ));
        };
        let mut builder = rgrid::TlsConfig::builder().ca_file(ca);
        if let Some((cert, key)) = cert_key {
            builder = builder.identity_files(cert, key);
        }
        builder.build().map(Some).map_err(Failure::from)
    }
}

fn is_https(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("wss://")
}

/// The `host:port` a node with this URL listens on.
pub(crate) fn listen_address(url: &str) -> Result<&str, Failure> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .or_else(|| url.strip_prefix("https://"))
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| Failure::Local(format!("{url:?} is not an http(s)://host:port URL")))?;
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
        assert_eq!(
            listen_address("https://node-1:9000").unwrap(),
            "node-1:9000"
        );
        for bad in [
            "127.0.0.1:9001",
            "http://127.0.0.1",
            "http://:9000",
            "http://a:port",
            "https://a",
            "ftp://a:1",
        ] {
            assert!(listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_local_url_joins_the_host_list_once() {
        let args = NodeArgs {
            local: Some("http://127.0.0.1:2".into()),
            max_clients: 16,
            hosts: vec![
                "http://127.0.0.1:1".into(),
                " http://127.0.0.1:1".into(),
                String::new(),
            ],
            hosts_file: None,
            auth: AuthArgs::default(),
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

    fn args(local: &str, hosts: &[&str]) -> NodeArgs {
        NodeArgs {
            local: Some(local.into()),
            max_clients: 16,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            hosts_file: None,
            auth: AuthArgs::default(),
            route_path: DEFAULT_ROUTE_PATH.into(),
            tls_cert: None,
            tls_key: None,
            ca: None,
        }
    }

    #[test]
    fn tls_flags_match_the_schemes() {
        let err = |a: &NodeArgs| match a.tls_config(&a.all_hosts()) {
            Err(Failure::Local(m)) => m,
            other => panic!("want an error, got {other:?}"),
        };
        let plain = args("http://127.0.0.1:1", &["http://127.0.0.1:2"]);
        assert!(plain.tls_config(&plain.all_hosts()).unwrap().is_none());
        let with_ca = NodeArgs {
            ca: Some("ca.pem".into()),
            ..plain.clone()
        };
        assert!(err(&with_ca).contains("every host is http://"));

        let https = args("https://127.0.0.1:1", &["https://127.0.0.1:2"]);
        assert!(err(&https).contains("--tls-cert and --tls-key"));
        let half = NodeArgs {
            tls_cert: Some("c.pem".into()),
            ..https.clone()
        };
        assert!(err(&half).contains("go together"));
        let no_ca = NodeArgs {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..https.clone()
        };
        assert!(err(&no_ca).contains("--ca"));
        let missing_files = NodeArgs {
            ca: Some("/no/such/ca.pem".into()),
            ..no_ca.clone()
        };
        assert!(err(&missing_files).contains("cannot read"));

        let http_local = NodeArgs {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ca: Some("ca.pem".into()),
            ..args("http://127.0.0.1:1", &["https://127.0.0.1:2"])
        };
        assert!(err(&http_local).contains("need an https:// --local"));
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Failure::from(rgrid::Error::Disconnected).exit_code(), 2);
        let remote = Failure::from(rgrid::Error::Remote(rgrid::RemoteError::new("x")));
        assert_eq!(remote.exit_code(), 3);
        assert_eq!(remote.to_string(), "remote error: x");
    }
}
