//! TLS and JWT authentication (feature `tls`), and how a refused node finds out why.
//!
//! Three `https://` nodes on loopback with certificates from a throw-away CA (made here with
//! rcgen; in production they come from files: `TlsConfigBuilder::ca_file` and
//! `identity_files`). TLS proves to each node that it talks to the host in its URL; the JWT
//! secret proves that the peer belongs to the cluster. Nodes A and B share the secret, node
//! C was given a wrong one: its TLS handshake succeeds (its certificate is fine), but its
//! grid handshake is refused, and both ends can read why from
//! [`Connection::last_error`](rgrid::Connection::last_error) instead of a log line.
//!
//! ```sh
//! cargo run -p rgrid --features tls --example tls_jwt
//! ```

use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rgrid::typed::{Service, ServiceMethod};
use rgrid::{ConnFailure, Connection, Error, Manager, State, TlsConfig, serve};
use tokio::net::TcpListener;

const NODES: Service = Service::new("nodes");
static HELLO: ServiceMethod<String, String> = NODES.method("hello");

const CLUSTER_SECRET: &str = "the cluster's JWT secret";

/// A test CA and a certificate for every node, valid for `127.0.0.1` (the hosts' address).
struct Certs {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Certs {
    fn new() -> Result<Certs, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "example CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Certs { ca })
    }

    /// A node's TLS config: trust the CA; serve (and show) a certificate signed by it.
    fn node_config(&self) -> Result<TlsConfig, Box<dyn std::error::Error>> {
        let key = KeyPair::generate()?;
        let cert =
            CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &self.ca)?;
        let config = TlsConfig::builder()
            .ca_pem(self.ca.pem())
            .identity_pem(cert.pem(), key.serialize_pem())
            .build()?;
        Ok(config)
    }
}

/// Polls (bounded) until `conn` has recorded why it is down.
async fn failure_of(conn: &Connection) -> Result<ConnFailure, String> {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(failure) = conn.last_error() {
            return Ok(failure);
        }
        if Instant::now() > give_up {
            return Err(format!("no failure recorded for {}", conn.remote()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let certs = Certs::new()?;
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    // `https://` hosts: dialed as `wss://`, and `serve` terminates TLS for them.
    let hosts = listeners
        .iter()
        .map(|l| Ok(format!("https://{}", l.local_addr()?)))
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    let secrets = [CLUSTER_SECRET, CLUSTER_SECRET, "not the cluster's secret"];

    let mut nodes = Vec::new();
    for ((host, listener), secret) in hosts.iter().zip(listeners).zip(secrets) {
        let node = Manager::builder(host.clone(), hosts.clone())
            .tls(certs.node_config()?)
            .jwt_secret(secret)
            .build()?;
        let me = node.host().to_owned();
        HELLO.register(&node, move |from: String| {
            let answer = format!("hello {from}, this is {me} over TLS");
            async move { Ok(answer) }
        })?;
        tokio::spawn(serve(listener, node.clone()));
        node.start();
        nodes.push(node);
    }
    let (a, c) = (&nodes[0], &nodes[2]);

    // A and C cannot connect. Whichever of the two dialed, both record the refusal: the
    // refused dialer with the refuser's reason, the refuser with `refused_here` set.
    for (from, to) in [(a, c), (c, a)] {
        let conn = from.connection(to.host()).ok_or("unknown host")?;
        let failure = failure_of(&conn).await?;
        let side = if failure.refused_here {
            "refused it"
        } else {
            "was refused"
        };
        println!(
            "{} -> {}: {side}: {}",
            from.host(),
            to.host(),
            failure.error
        );
        assert!(
            matches!(&failure.error, Error::Rejected(why) if why.starts_with("auth token")),
            "{failure:?}"
        );
        assert_ne!(conn.state(), State::Connected);
    }

    // A and B share the secret: their connection comes up, and calls work.
    let to_b = a.connection(&hosts[1]).ok_or("unknown host")?;
    tokio::time::timeout(Duration::from_secs(10), to_b.wait_for_connect()).await??;
    let answer = HELLO.call(&to_b, &a.host().to_owned()).await?;
    println!("{answer}");
    assert_eq!(
        answer,
        format!("hello {}, this is {} over TLS", hosts[0], hosts[1])
    );

    for node in &nodes {
        node.shutdown().await;
    }
    println!("tls_jwt: ok");
    Ok(())
}
