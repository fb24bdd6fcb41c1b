//! Authentication hooks: the token a dialer sends and the check an acceptor applies.
//!
//! Three implementations come with the crate:
//!
//! * [`GridJwt`]: short-lived, audience-bound HS512 JWTs (issuer = dialing host, audience =
//!   target host, minutes of lifetime). The recommended choice for rgrid-only clusters.
//! * [`MinioJwt`]: MinIO's node token (HS512 JWT carrying the access key, 100-year expiry),
//!   for grids shared with MinIO servers.
//! * [`StaticToken`]: one shared string, sent as is and compared in constant time.
//!
//! Closures work too: `Fn() -> String` is a [`TokenSource`] and
//! `Fn(&str) -> Result<(), String>` a [`TokenValidator`].

use std::fmt;
use std::sync::Arc;

mod jwt;

pub use jwt::{GridJwt, MAX_TOKEN_LEN, MinioJwt};

/// An HTTP-level check run on every upgrade request before the websocket is accepted (MinIO's
/// `authReq`), given the request headers; an `Err` answers 403. Set it with
/// [`crate::ManagerBuilder::http_auth`].
pub type HttpAuthFn = Arc<dyn Fn(&http::HeaderMap) -> Result<(), String> + Send + Sync>;

/// Produces the token sent in the upgrade request (`Authorization: Bearer`) and in the
/// connect message.
///
/// Implementations must never log the tokens they make.
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now, when the target is not known.
    fn token(&self) -> String;

    /// The token to send now to `remote` (the host being dialed, exactly as in the host
    /// list, e.g. `http://10.0.0.2:9000`): the audience of an audience-bound token. The grid
    /// always calls this one. Default: [`TokenSource::token`].
    fn token_for(&self, remote: &str) -> String {
        let _ = remote;
        self.token()
    }
}

/// What the accepting side knows about a peer when it judges its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo<'a> {
    /// This node's host (the audience an audience-bound token must name).
    pub local: &'a str,
    /// The host the peer claims to be in its connect message (the issuer an audience-bound
    /// token must name). Already checked to be a host of the grid.
    pub remote: &'a str,
}

impl<'a> PeerInfo<'a> {
    /// A peer claiming to be `remote`, connecting to `local`.
    pub fn new(local: &'a str, remote: &'a str) -> Self {
        PeerInfo { local, remote }
    }
}

/// Judges the token of an incoming connect message. The error text is sent back to the
/// dialer, prefixed with `auth token: `, and logged: it must never contain the token.
pub trait TokenValidator: Send + Sync + 'static {
    /// `Ok` when the token is acceptable, with no knowledge of the peer (also usable on the
    /// upgrade request's bearer token, e.g. in [`crate::ManagerBuilder::http_auth`]).
    fn validate(&self, token: &str) -> Result<(), String>;

    /// `Ok` when the token is acceptable from `peer`. The grid always calls this one.
    /// Default: [`TokenValidator::validate`].
    fn validate_peer(&self, token: &str, peer: &PeerInfo<'_>) -> Result<(), String> {
        let _ = peer;
        self.validate(token)
    }
}

impl<F: Fn() -> String + Send + Sync + 'static> TokenSource for F {
    fn token(&self) -> String {
        self()
    }
}

impl<F: Fn(&str) -> Result<(), String> + Send + Sync + 'static> TokenValidator for F {
    fn validate(&self, token: &str) -> Result<(), String> {
        self(token)
    }
}

/// A shared secret token: sent as is, and accepted only when equal (compared in constant
/// time).
#[derive(Clone)]
pub struct StaticToken(Arc<str>);

impl StaticToken {
    /// A token with the given value.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(Arc::from(token.into()))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.write_str("StaticToken(..)")
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> String {
        self.0.to_string()
    }
}

impl TokenValidator for StaticToken {
    fn validate(&self, token: &str) -> Result<(), String> {
        if constant_time_eq(token.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err("invalid token".to_owned())
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_token() {
        let t = StaticToken::new("debug");
        assert_eq!(t.token(), "debug");
        assert!(t.validate("debug").is_ok());
        assert!(t.validate("debuG").is_err());
        assert!(t.validate("").is_err());
        assert_eq!(format!("{t:?}"), "StaticToken(..)");
        // The audience-aware calls fall back to the plain ones.
        assert_eq!(t.token_for("http://b:1"), "debug");
        let peer = PeerInfo::new("http://a:1", "http://b:1");
        assert!(t.validate_peer("debug", &peer).is_ok());
        assert!(t.validate_peer("nope", &peer).is_err());
    }

    #[test]
    fn closures_are_sources_and_validators() {
        fn source(s: &dyn TokenSource) -> String {
            s.token_for("http://b:1")
        }
        fn validator(v: &dyn TokenValidator, token: &str) -> Result<(), String> {
            v.validate_peer(token, &PeerInfo::new("http://a:1", "http://b:1"))
        }
        assert_eq!(source(&|| "abc".to_owned()), "abc");
        let v = |t: &str| {
            if t == "abc" {
                Ok(())
            } else {
                Err("no".to_owned())
            }
        };
        assert_eq!(validator(&v, "abc"), Ok(()));
        assert_eq!(validator(&v, "abd"), Err("no".to_owned()));
    }
}
