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

/// A websocket over any byte stream, as the grid uses it: tokio-websockets'
/// [`WebSocketStream`](tokio_websockets::WebSocketStream), re-exported as
/// [`crate::transport::tokio_websockets`] so a custom dialer builds one with the same
/// version (its client [`Builder`](tokio_websockets::ClientBuilder) upgrades any byte
/// stream). The grid depends on tokio-websockets 0.13; a new major version of it is a new
/// major version of rgrid.
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

/// The one spelling of a host URL the grid uses: scheme and host name in lower case, no
/// trailing `/`. So `HTTP://Node1:9000/` and `http://node1:9000` are the same host on every
/// node (the who-dials rule hashes this string). A host with a path, a query, user info or
/// an empty address is refused, as is a port that is not a number.
///
/// The default port is kept as written: `http://h` and `http://h:80` stay different strings
/// (a MinIO node announces the exact string of its configuration), and a host list holding
/// both is refused at build time as ambiguous (`default_port_twin`).
pub fn normalize_host(host: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::Config(format!("host {host:?} {why}"));
    let (scheme, rest) = host
        .split_once("://")
        .ok_or_else(|| bad("has no http:// or https:// scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "ws" | "wss") {
        return Err(bad("has no http:// or https:// scheme"));
    }
    let authority = match rest.split_once('/') {
        Some((a, "")) => a,
        Some(_) => return Err(bad("has a path (a grid host is scheme://address:port)")),
        None => rest,
    };
    if authority.is_empty() {
        return Err(bad("has no address"));
    }
    if authority.contains(['?', '#', '@']) {
        return Err(bad("has a query, fragment or user info"));
    }
    // The port: after the last ':' unless that is inside an IPv6 literal.
    if let Some((_, port)) = authority.rsplit_once(':')
        && !port.ends_with(']')
        && !port.is_empty()
        && port.parse::<u16>().is_err()
    {
        return Err(bad("has a port that is not a number"));
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// The same host with its default port made explicit or removed (`http://h` <->
/// `http://h:80`), or `None` if the other spelling does not exist. For refusing host lists
/// that hold both.
pub(crate) fn default_port_twin(normalized: &str) -> Option<String> {
    let (scheme, authority) = normalized.split_once("://")?;
    let default = match scheme {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return None,
    };
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.ends_with(']') => (p == default).then(|| format!("{scheme}://{h}")),
        _ => Some(format!("{scheme}://{authority}:{default}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_have_one_spelling() {
        for (given, want) in [
            ("http://a:1", "http://a:1"),
            ("http://a:1/", "http://a:1"),
            ("HTTP://Node1.Example:9000/", "http://node1.example:9000"),
            ("https://[::1]:9000", "https://[::1]:9000"),
            ("http://h", "http://h"),
        ] {
            assert_eq!(normalize_host(given).unwrap(), want, "{given}");
        }
        for bad in [
            "a:1",
            "ftp://a:1",
            "http://",
            "http:///",
            "http://a:1/path",
            "http://a:x",
            "http://u@a:1",
            "http://a:1?q",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_ports_have_a_twin() {
        assert_eq!(
            default_port_twin("http://h").as_deref(),
            Some("http://h:80")
        );
        assert_eq!(
            default_port_twin("http://h:80").as_deref(),
            Some("http://h")
        );
        assert_eq!(
            default_port_twin("https://h:443").as_deref(),
            Some("https://h")
        );
        assert_eq!(default_port_twin("http://h:9000"), None);
        assert_eq!(
            default_port_twin("https://[::1]").as_deref(),
            Some("https://[::1]:443")
        );
    }
}
