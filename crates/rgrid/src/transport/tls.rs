//! TLS for the grid (feature `tls`): rustls with the ring provider.
//!
//! A [`TlsConfig`] holds both halves a node needs:
//!
//! * the **client** half, used to dial `https://` (or `wss://`) hosts: it verifies the
//!   server's certificate against the configured CA roots and the host name (or IP address)
//!   of the remote's URL, and presents the node's own certificate when the server asks for
//!   one (mutual TLS);
//! * the **server** half, used by [`crate::serve`] when the local host is `https://`: it
//!   presents the node's certificate and, with [`TlsConfigBuilder::require_client_cert`],
//!   refuses dialers without a certificate signed by one of the CA roots.
//!
//! Every rustls config built here uses [`rustls::crypto::ring::default_provider`]
//! explicitly; the process-wide default provider is never consulted or installed. Configs
//! built by the caller ([`TlsConfig::from_rustls`]) are used as they are.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::Error;

/// TLS settings of a grid node: how it dials `https://` hosts and how it serves TLS.
///
/// Cheap to clone. Build one from PEM with [`TlsConfig::builder`], or wrap ready rustls
/// configs with [`TlsConfig::from_rustls`]; hand it to [`crate::ManagerBuilder::tls`] (the
/// default dialer and [`crate::serve`] use it) or to [`crate::transport::WsDialer::tls`].
///
/// ```no_run
/// # fn example() -> Result<(), rgrid::Error> {
/// use rgrid::transport::TlsConfig;
///
/// let tls = TlsConfig::builder()
///     .ca_file("/etc/grid/ca.pem")
///     .identity_files("/etc/grid/node.pem", "/etc/grid/node.key")
///     .require_client_cert() // optional: mutual TLS
///     .build()?;
/// let hosts = ["https://10.0.0.1:9000", "https://10.0.0.2:9000"];
/// let manager = rgrid::Manager::builder(hosts[0], hosts)
///     .token("secret")
///     .tls(tls)
///     .build()?;
/// # let _ = manager; Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Clone)]
pub struct TlsConfig {
    connector: TlsConnector,
    client: Arc<ClientConfig>,
    server: Option<Arc<ServerConfig>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("serves_tls", &self.server.is_some())
            .field(
                "client_cert",
                &self.client.client_auth_cert_resolver.has_certs(),
            )
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Starts building a config from PEM certificates and keys.
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder::default()
    }

    /// Wraps ready rustls configs: `client` for dialing, `server` (if any) for serving.
    ///
    /// They are used as given (their crypto provider, verifiers and ALPN settings included);
    /// the websocket runs HTTP/1.1 on top, so do not restrict ALPN to other protocols.
    pub fn from_rustls(client: Arc<ClientConfig>, server: Option<Arc<ServerConfig>>) -> Self {
        TlsConfig {
            connector: TlsConnector::from(client.clone()),
            client,
            server,
        }
    }

    /// The rustls config used when dialing.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.client
    }

    /// The rustls config used when serving, if this config can serve (it has a certificate).
    pub fn server_config(&self) -> Option<&Arc<ServerConfig>> {
        self.server.as_ref()
    }

    /// The acceptor for incoming connections, if this config can serve.
    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.server.clone().map(TlsAcceptor::from)
    }

    /// Runs the client handshake on `tcp` for `authority` (`host:port` from the URL); the
    /// server is verified against `host`.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        authority: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        let name = server_name(authority)?;
        self.connector.connect(name, tcp).await.map_err(|e| {
            Error::Tls(crate::error::Cause::with_source(
                format_args!("handshake with {authority} failed"),
                e,
            ))
        })
    }
}

/// The host part of `host:port` (`[v6]:port` too) as a TLS server name.
fn server_name(authority: &str) -> Result<ServerName<'static>, Error> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host)
    };
    ServerName::try_from(host.to_owned())
        .map_err(|e| Error::Config(format!("{host:?} is not a valid TLS server name: {e}")))
}

/// Whether an I/O error came out of rustls (a TLS alert or a TLS protocol failure) rather
/// than from the socket.
pub(crate) fn is_tls_io_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// Builds a [`TlsConfig`] from PEM data. Errors (unreadable files, bad PEM) are reported by
/// [`TlsConfigBuilder::build`].
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Default)]
pub struct TlsConfigBuilder {
    roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    require_client_cert: bool,
    accept_any_server_cert: bool,
    error: Option<Error>,
}

impl fmt::Debug for TlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsConfigBuilder")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.is_some())
            .field("require_client_cert", &self.require_client_cert)
            .field("accept_any_server_cert", &self.accept_any_server_cert)
            .finish_non_exhaustive()
    }
}

impl TlsConfigBuilder {
    /// Trusts every certificate in `pem` (one or more `CERTIFICATE` blocks) as a CA root:
    /// servers this node dials must chain to one of them, and so must client certificates
    /// when [`require_client_cert`](Self::require_client_cert) is on. There are no built-in
    /// or system roots.
    #[must_use]
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        match parse_certs(pem.as_ref(), "CA") {
            Ok(certs) => self.roots.extend(certs),
            Err(e) => self.fail(e),
        }
        self
    }

    /// Like [`ca_pem`](Self::ca_pem), reading the PEM from a file.
    #[must_use]
    pub fn ca_file(self, path: impl AsRef<Path>) -> Self {
        match read(path.as_ref()) {
            Ok(pem) => self.ca_pem(pem),
            Err(e) => self.failed(e),
        }
    }

    /// This node's certificate chain (leaf first) and private key (PKCS#8, PKCS#1 or SEC1),
    /// in PEM. It is served to dialers, and presented as the client certificate when a server
    /// asks for one (mutual TLS).
    #[must_use]
    pub fn identity_pem(mut self, cert_chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Self {
        let chain = match parse_certs(cert_chain.as_ref(), "certificate") {
            Ok(c) => c,
            Err(e) => return self.failed(e),
        };
        match PrivateKeyDer::from_pem_slice(key.as_ref()) {
            Ok(key) => self.identity = Some((chain, key)),
            Err(e) => self.fail(Error::Config(format!("no usable private key in PEM: {e}"))),
        }
        self
    }

    /// Like [`identity_pem`](Self::identity_pem), reading both from files.
    #[must_use]
    pub fn identity_files(self, cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        match (read(cert_chain.as_ref()), read(key.as_ref())) {
            (Ok(c), Ok(k)) => self.identity_pem(c, k),
            (Err(e), _) | (_, Err(e)) => self.failed(e),
        }
    }

    /// Mutual TLS: when serving, require every dialer to present a certificate that chains to
    /// one of the CA roots, and refuse the connection otherwise. Off by default (dialers are
    /// then judged by the grid token only).
    #[must_use]
    pub fn require_client_cert(mut self) -> Self {
        self.require_client_cert = true;
        self
    }

    /// **Dangerous, for test set-ups only.** When dialing, accept any server certificate:
    /// untrusted, expired, or for another name. The handshake signature is still checked, but
    /// anyone on the network path can impersonate the server. A warning is logged when a
    /// config with this switch is built.
    #[must_use]
    pub fn dangerous_accept_any_server_cert(mut self) -> Self {
        self.accept_any_server_cert = true;
        self
    }

    /// Checks the settings and builds the rustls configs (ring provider, TLS 1.2 and 1.3).
    ///
    /// Fails with [`Error::Config`] on unreadable files or bad PEM, when there are no CA
    /// roots (unless the dangerous switch is on), or when client certificates are required
    /// without a certificate to serve.
    pub fn build(self) -> Result<TlsConfig, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = {
            let mut store = RootCertStore::empty();
            for cert in &self.roots {
                store
                    .add(cert.clone())
                    .map_err(|e| Error::Config(format!("unusable CA certificate: {e}")))?;
            }
            Arc::new(store)
        };
        let tls_err = |e: rustls::Error| Error::Config(format!("TLS config: {e}"));

        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let client = if self.accept_any_server_cert {
            tracing::warn!(
                "grid TLS: server certificates are NOT verified (dangerous_accept_any_server_cert); \
                 use this in tests only"
            );
            client
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else {
            if roots.is_empty() {
                return Err(Error::Config(
                    "TLS config has no CA roots to verify servers (ca_pem / ca_file)".to_owned(),
                ));
            }
            client.with_root_certificates(roots.clone())
        };
        let client = match &self.identity {
            Some((chain, key)) => client
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(tls_err)?,
            None => client.with_no_client_auth(),
        };

        let server = match self.identity {
            Some((chain, key)) => {
                let server = ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(tls_err)?;
                let server = if self.require_client_cert {
                    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| Error::Config(format!("client certificate verifier: {e}")))?;
                    server.with_client_cert_verifier(verifier)
                } else {
                    server.with_no_client_auth()
                };
                Some(Arc::new(
                    server.with_single_cert(chain, key).map_err(tls_err)?,
                ))
            }
            None if self.require_client_cert => {
                return Err(Error::Config(
                    "require_client_cert needs a certificate and key to serve with".to_owned(),
                ));
            }
            None => None,
        };
        Ok(TlsConfig::from_rustls(Arc::new(client), server))
    }

    fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    fn failed(mut self, e: Error) -> Self {
        self.fail(e);
        self
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("bad {what} PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("no {what} certificate in PEM")));
    }
    Ok(certs)
}

/// The verifier behind [`TlsConfigBuilder::dangerous_accept_any_server_cert`]: any
/// certificate is accepted; handshake signatures are still verified with the provider's
/// algorithms.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn server_names_come_from_the_authority() {
        let name = |a: &str| server_name(a).unwrap().to_str().into_owned();
        assert_eq!(name("localhost:9000"), "localhost");
        assert_eq!(name("127.0.0.1:9000"), "127.0.0.1");
        assert_eq!(name("[::1]:9000"), "::1");
        assert_eq!(name("node-1"), "node-1");
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn builder_reports_bad_input() {
        let err = |b: TlsConfigBuilder| b.build().unwrap_err().to_string();
        assert!(err(TlsConfig::builder()).contains("no CA roots"));
        assert!(err(TlsConfig::builder().ca_pem("not pem")).contains("no CA certificate"));
        assert!(err(TlsConfig::builder().ca_file("/no/such/file")).contains("cannot read"));
        assert!(
            err(TlsConfig::builder()
                .dangerous_accept_any_server_cert()
                .require_client_cert())
            .contains("needs a certificate")
        );
    }
}
