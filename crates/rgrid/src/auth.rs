//! Authentication hooks: the token a dialer sends and the check an acceptor applies.

use std::fmt;
use std::sync::Arc;

/// Produces the token sent in the upgrade request (`Authorization: Bearer`) and in the
/// connect message.
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now.
    fn token(&self) -> String;
}

/// Judges the token of an incoming connect message. The error text is sent back to the
/// dialer, prefixed with `auth token: `.
pub trait TokenValidator: Send + Sync + 'static {
    /// `Ok` when the token is acceptable.
    fn validate(&self, token: &str) -> Result<(), String>;
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
    }
}
