//! HS512 JSON Web Tokens for node authentication: MinIO's node token ([`MinioJwt`]) and the
//! stricter short-lived, audience-bound grid token ([`GridJwt`]).
//!
//! Crate choice: HMAC-SHA512 is RustCrypto's `hmac` 0.13 over `sha2` 0.11 (already used by
//! `rgrid-proto`; both on `digest` 0.11); base64url and JSON come from `base64` and
//! `serde_json`, already dependencies. `jsonwebtoken` is not used: its current releases need
//! a crypto backend feature, either `aws_lc_rs` (a C build) or `rust_crypto` (which also
//! pulls RSA, P-256/P-384 and Ed25519 stacks), for what is here one HMAC and two base64
//! fields. Tags are checked with `Mac::verify_slice`, which compares in constant time
//! (`ctutils`/`cmov`, pure Rust, pulled in by `digest`).
//!
//! Tokens are parsed defensively: longer than [`MAX_TOKEN_LEN`] is refused before decoding;
//! exactly three base64url segments (no padding); the header must say `"alg":"HS512"` (so
//! `none`, `HS256` and every other algorithm are refused); the signature is checked before
//! the claims are parsed; time arithmetic saturates.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use super::{PeerInfo, TokenSource, TokenValidator, constant_time_eq};
use crate::error::Error;

type HmacSha512 = Hmac<Sha512>;

/// The longest token accepted, in bytes. Longer ones are refused before any decoding (a
/// MinIO node token is about 200 bytes, a [`GridJwt`] token about 250 plus the host names).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The JOSE header of every token made here, `{"alg":"HS512","typ":"JWT"}` (keys in the
/// order MinIO's Go JWT library writes them), in base64url without padding.
const HEADER_B64: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9";

/// The only algorithm accepted.
const ALG: &str = "HS512";

/// The header MinIO's dialer puts its clock in (Unix nanoseconds).
const TIME_HEADER: &str = "x-minio-time";

/// How far `X-Minio-Time` may be from the local clock on an upgrade request (MinIO's
/// `DefaultSkewTime`).
const UPGRADE_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a token was refused. The text is sent to the dialer after `auth token: ` and logged,
/// so it never contains the token or any claim value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    TooLong,
    Malformed,
    Algorithm,
    Signature,
    MissingClaim,
    Expired,
    NotYetValid,
    Lifetime,
    Audience,
    Issuer,
    AccessKey,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::TooLong => "token too long",
            Refusal::Malformed => "malformed token",
            Refusal::Algorithm => "unsupported token algorithm (HS512 required)",
            Refusal::Signature => "invalid token signature",
            Refusal::MissingClaim => "token lacks a required claim",
            Refusal::Expired => "token expired",
            Refusal::NotYetValid => "token not yet valid (issued in the future)",
            Refusal::Lifetime => "token lifetime out of bounds",
            Refusal::Audience => "token audience is not this host",
            Refusal::Issuer => "token issuer is not the connecting host",
            Refusal::AccessKey => "token access key does not match",
        })
    }
}

/// An HMAC-SHA512 key.
#[derive(Clone)]
struct Key(HmacSha512);

impl Key {
    fn new(secret: &[u8]) -> Result<Self, Error> {
        if secret.is_empty() {
            return Err(Error::Config("empty JWT secret".to_owned()));
        }
        HmacSha512::new_from_slice(secret)
            .map(Key)
            .map_err(|_| Error::Config("unusable JWT secret".to_owned()))
    }

    /// `header.claims.signature` for `claims`.
    fn sign(&self, claims: &impl Serialize) -> String {
        // Serializing these plain structs cannot fail; an empty claims segment would only
        // make a token every validator refuses.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = String::with_capacity(HEADER_B64.len() + json.len() * 4 / 3 + 96);
        out.push_str(HEADER_B64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&json, &mut out);
        let mut mac = self.0.clone();
        mac.update(out.as_bytes());
        let tag = mac.finalize().into_bytes();
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }

    /// Checks the token's form, algorithm and signature, then parses its claims.
    fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let header: Header = decode_json(header_b64)?;
        if header.alg != ALG {
            return Err(Refusal::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| Refusal::Malformed)?;
        // `header.claims`, the signed part.
        let signed = token
            .as_bytes()
            .get(..header_b64.len() + 1 + claims_b64.len())
            .ok_or(Refusal::Malformed)?;
        let mut mac = self.0.clone();
        mac.update(signed);
        mac.verify_slice(&sig).map_err(|_| Refusal::Signature)?;
        decode_json(claims_b64)
    }
}

fn decode_json<T: DeserializeOwned>(segment: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Seconds since the Unix epoch (0 for a clock before it).
fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, secs)
}

/// Whole seconds of `d`, saturating.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A JSON number as whole seconds: integers as they are, finite floats truncated (Go's
/// `MapClaims` write floats), anything else refused.
fn numeric_date(n: &serde_json::Number) -> Result<i64, Refusal> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => Ok(f as i64),
        _ => Err(Refusal::Malformed),
    }
}

/// The bearer token of an upgrade request and its `X-Minio-Time` check, as MinIO's
/// `storageServerRequestValidate` does them.
fn upgrade_bearer(headers: &http::HeaderMap) -> Result<&str, String> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| "JWT token missing".to_owned())?
        .to_str()
        .map_err(|_| "malformed authentication input".to_owned())?;
    let token = match value.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => value.get(7..).unwrap_or_default(),
        _ => return Err("malformed authentication input".to_owned()),
    };
    let nanos: i128 = headers
        .get(TIME_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "malformed authentication input".to_owned())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    if now.abs_diff(nanos) > UPGRADE_SKEW.as_nanos() {
        return Err("skewed authentication date/time".to_owned());
    }
    Ok(token)
}

// ---------------------------------------------------------------------------------------------
// MinIO's node token.

/// The claims MinIO's node token carries, in the order Go writes them.
#[derive(Serialize)]
struct MinioClaimsOut<'a> {
    #[serde(rename = "accessKey")]
    access_key: &'a str,
    exp: i64,
    sub: &'a str,
}

/// The claims read from a MinIO-style token; others are ignored.
#[derive(Deserialize, Debug, PartialEq)]
struct MinioClaimsIn {
    #[serde(rename = "accessKey", default)]
    access_key: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
}

/// MinIO's internode token, for grids shared with MinIO servers: an HS512 JWT signed with
/// the root secret key whose claims are `{"accessKey": <root access key>, "exp": <now + 100
/// years>, "sub": <root access key>}` (MinIO's `authenticateNode`, sent as
/// `globalNodeAuthToken`).
///
/// As a [`TokenSource`] it sends one such token, made when created (as MinIO does at
/// startup). As a [`TokenValidator`] it accepts what MinIO's `validateStorageRequestToken`
/// accepts, a little more strictly: `alg` must be `HS512` (MinIO also takes HS256/HS384,
/// which MinIO never makes), the signature must verify with the secret key, `exp` must be
/// present and not passed, `iat`/`nbf` (when present) not in the future beyond the clock
/// skew, and `accessKey` or `sub` must equal the access key.
///
/// The token is valid for a century and names no host: whoever captures it (TLS is what
/// prevents that) can replay it to any node. Prefer [`GridJwt`] when no MinIO server is in
/// the grid.
///
/// ```
/// use rgrid::{MinioJwt, TokenSource, TokenValidator};
/// let jwt = MinioJwt::new("minioadmin", "minioadmin")?;
/// assert!(jwt.validate(&jwt.token()).is_ok());
/// # Ok::<(), rgrid::Error>(())
/// ```
#[derive(Clone)]
pub struct MinioJwt {
    access_key: Arc<str>,
    key: Key,
    token: Arc<str>,
    skew: Duration,
}

impl fmt::Debug for MinioJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret or the token.
        f.debug_struct("MinioJwt")
            .field("access_key", &self.access_key)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl MinioJwt {
    /// The lifetime of the token MinIO makes for its nodes (100 × 365 days).
    pub const NODE_TOKEN_EXPIRY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// Tokens for `access_key`, signed with `secret_key` (MinIO's root credentials). Fails
    /// when either is empty.
    pub fn new(access_key: impl Into<String>, secret_key: impl AsRef<[u8]>) -> Result<Self, Error> {
        let access_key: String = access_key.into();
        if access_key.is_empty() {
            return Err(Error::Config("empty access key".to_owned()));
        }
        let key = Key::new(secret_key.as_ref())?;
        let exp = now_secs().saturating_add(secs(Self::NODE_TOKEN_EXPIRY));
        let token = Arc::from(Self::sign_with(&key, &access_key, exp));
        Ok(MinioJwt {
            access_key: Arc::from(access_key),
            key,
            token,
            skew: GridJwt::DEFAULT_CLOCK_SKEW,
        })
    }

    /// Sets how far in the future `iat`/`nbf` and how far in the past `exp` may be. Default
    /// 5 minutes (MinIO has none; its node token carries neither `iat` nor `nbf`).
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The access key the tokens carry.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// MinIO's HTTP-level check of a grid upgrade request (`storageServerRequestValidate`):
    /// an `Authorization: Bearer` token this validator accepts and an `X-Minio-Time` within
    /// 15 minutes of the local clock. For [`crate::ManagerBuilder::http_auth`]:
    ///
    /// ```
    /// # use rgrid::{Manager, MinioJwt};
    /// let jwt = MinioJwt::new("minioadmin", "minioadmin")?;
    /// let check = jwt.clone();
    /// let m = Manager::builder("http://a:9000", ["http://a:9000", "http://b:9000"])
    ///     .auth(jwt)
    ///     .http_auth(move |headers| check.check_upgrade(headers))
    ///     .build()?;
    /// # Ok::<(), rgrid::Error>(())
    /// ```
    pub fn check_upgrade(&self, headers: &http::HeaderMap) -> Result<(), String> {
        self.validate(upgrade_bearer(headers)?)
    }

    fn sign_with(key: &Key, access_key: &str, exp: i64) -> String {
        key.sign(&MinioClaimsOut {
            access_key,
            exp,
            sub: access_key,
        })
    }

    fn check_at(&self, token: &str, now: i64) -> Result<(), Refusal> {
        let claims: MinioClaimsIn = self.key.verify(token)?;
        let skew = secs(self.skew);
        let exp = numeric_date(claims.exp.as_ref().ok_or(Refusal::MissingClaim)?)?;
        if now >= exp.saturating_add(skew) {
            return Err(Refusal::Expired);
        }
        for t in [&claims.iat, &claims.nbf].into_iter().flatten() {
            if numeric_date(t)? > now.saturating_add(skew) {
                return Err(Refusal::NotYetValid);
            }
        }
        if claims.access_key.is_none() && claims.sub.is_none() {
            return Err(Refusal::MissingClaim);
        }
        let mine = self.access_key.as_bytes();
        let owner = [&claims.access_key, &claims.sub]
            .into_iter()
            .flatten()
            .any(|k| constant_time_eq(k.as_bytes(), mine));
        if owner {
            Ok(())
        } else {
            Err(Refusal::AccessKey)
        }
    }
}

impl TokenSource for MinioJwt {
    fn token(&self) -> String {
        self.token.to_string()
    }
}

impl TokenValidator for MinioJwt {
    fn validate(&self, token: &str) -> Result<(), String> {
        self.check_at(token, now_secs()).map_err(|r| r.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The audience-bound grid token.

/// The claims of a grid token.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct GridClaims {
    /// The dialing host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// The dialed host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

/// At most this many audiences keep a cached token (a grid has one per remote host).
const MAX_CACHED_AUDIENCES: usize = 1024;

#[derive(Clone)]
struct Cached {
    token: String,
    iat: i64,
}

/// Short-lived, audience-bound HS512 JWTs: the recommended authentication for grids of rgrid
/// nodes only (not understood by MinIO servers; use [`MinioJwt`] for those).
///
/// A token sent from host A to host B carries `{"iss": A, "aud": B, "iat": now, "exp": now +
/// lifetime}` (hosts exactly as in the host list), signed with the cluster secret. The
/// validator on B accepts it only if the signature verifies (constant time), `alg` is
/// `HS512`, `aud` is B, `iss` is the host the connect message claims, `iat` is not in the
/// future and `exp` not in the past (both with the clock skew tolerance), and the lifetime
/// `exp - iat` is positive and at most the maximum lifetime (also measured from now), so a
/// token signed for the far future is refused.
///
/// Compared with MinIO's token, a captured token is useless against any other host (wrong
/// audience) and only reusable for minutes (lifetime plus clock skew, 10 minutes with the
/// defaults) against its audience. It carries no nonce: within that window a third party
/// able to capture it could still replay it to the same audience (TLS prevents the capture).
///
/// As a source it signs one token per audience and reuses it until half its lifetime has
/// passed (a fresh one is signed before the old one gets close to expiry, or at once if the
/// clock went back). [`TokenSource::token`], which names no audience, gives a token with an
/// empty audience that no validator accepts; the grid always calls
/// [`TokenSource::token_for`].
///
/// ```
/// use rgrid::{GridJwt, PeerInfo, TokenSource, TokenValidator};
/// let a = GridJwt::new("cluster secret", "http://10.0.0.1:9000")?;
/// let b = GridJwt::new("cluster secret", "http://10.0.0.2:9000")?;
/// let token = a.token_for("http://10.0.0.2:9000");
/// assert!(b.validate_peer(&token, &PeerInfo::new("http://10.0.0.2:9000", "http://10.0.0.1:9000")).is_ok());
/// // Replayed to a third host, it is refused.
/// let c = GridJwt::new("cluster secret", "http://10.0.0.3:9000")?;
/// assert!(c.validate_peer(&token, &PeerInfo::new("http://10.0.0.3:9000", "http://10.0.0.1:9000")).is_err());
/// # Ok::<(), rgrid::Error>(())
/// ```
#[derive(Clone)]
pub struct GridJwt {
    key: Key,
    local: Arc<str>,
    lifetime: Duration,
    max_lifetime: Duration,
    skew: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl fmt::Debug for GridJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret or a token.
        f.debug_struct("GridJwt")
            .field("local", &self.local)
            .field("lifetime", &self.lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl GridJwt {
    /// Default lifetime of the tokens made: 5 minutes.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
    /// Default longest lifetime accepted: 15 minutes.
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(15 * 60);
    /// Default clock skew tolerance: 5 minutes, as the grid's own clock check on the connect
    /// message ([`crate::Options::max_clock_skew`]), so a peer that passes that check is not
    /// refused by the token check for its clock alone.
    pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

    /// Tokens issued by `local_host` (this node, exactly as in the host list), signed with
    /// `secret`, the secret every node of the grid shares (use at least 32 random bytes).
    /// Fails when the secret is empty.
    pub fn new(secret: impl AsRef<[u8]>, local_host: impl Into<String>) -> Result<Self, Error> {
        Ok(GridJwt {
            key: Key::new(secret.as_ref())?,
            local: Arc::from(local_host.into()),
            lifetime: Self::DEFAULT_LIFETIME,
            max_lifetime: Self::DEFAULT_MAX_LIFETIME,
            skew: Self::DEFAULT_CLOCK_SKEW,
            cache: Arc::default(),
        })
    }

    /// Sets the lifetime of the tokens made (at least 1 s; raises the maximum lifetime
    /// accepted if it is lower). Default [`GridJwt::DEFAULT_LIFETIME`].
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::from_secs(1));
        self.max_lifetime = self.max_lifetime.max(self.lifetime);
        self.cache = Arc::default();
        self
    }

    /// Sets the longest lifetime accepted (`exp - iat`, and `exp - now`). Every node must
    /// accept the lifetime the others make. Default [`GridJwt::DEFAULT_MAX_LIFETIME`].
    #[must_use]
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Sets the clock skew tolerated on `iat`, `nbf` and `exp`. Default
    /// [`GridJwt::DEFAULT_CLOCK_SKEW`].
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The host tokens are issued by (and, with [`TokenValidator::validate`], the audience
    /// required).
    pub fn local_host(&self) -> &str {
        &self.local
    }

    /// The HTTP-level check of an upgrade request, as MinIO does it: an `Authorization:
    /// Bearer` token for this host ([`TokenValidator::validate`]: everything but the issuer,
    /// which the upgrade request does not name) and an `X-Minio-Time` within 15 minutes. For
    /// [`crate::ManagerBuilder::http_auth`].
    pub fn check_upgrade(&self, headers: &http::HeaderMap) -> Result<(), String> {
        self.validate(upgrade_bearer(headers)?)
    }

    fn sign_at(&self, audience: &str, now: i64) -> String {
        self.key.sign(&GridClaims {
            iss: Some(self.local.to_string()),
            aud: Some(audience.to_owned()),
            iat: Some(now),
            exp: Some(now.saturating_add(secs(self.lifetime))),
            nbf: None,
        })
    }

    fn token_at(&self, audience: &str, now: i64) -> String {
        let half = secs(self.lifetime) / 2;
        let mut cache = crate::util::lock(&self.cache);
        if let Some(c) = cache.get(audience)
            && now >= c.iat
            && now < c.iat.saturating_add(half)
        {
            return c.token.clone();
        }
        let token = self.sign_at(audience, now);
        if cache.len() >= MAX_CACHED_AUDIENCES {
            cache.clear();
        }
        cache.insert(
            audience.to_owned(),
            Cached {
                token: token.clone(),
                iat: now,
            },
        );
        token
    }

    fn check_at(
        &self,
        token: &str,
        audience: &str,
        issuer: Option<&str>,
        now: i64,
    ) -> Result<(), Refusal> {
        let c: GridClaims = self.key.verify(token)?;
        let (Some(iss), Some(aud), Some(iat), Some(exp)) = (c.iss, c.aud, c.iat, c.exp) else {
            return Err(Refusal::MissingClaim);
        };
        let skew = secs(self.skew);
        let max = secs(self.max_lifetime);
        if exp <= iat
            || exp.saturating_sub(iat) > max
            || exp.saturating_sub(now) > max.saturating_add(skew)
        {
            return Err(Refusal::Lifetime);
        }
        if iat > now.saturating_add(skew) || c.nbf.is_some_and(|n| n > now.saturating_add(skew)) {
            return Err(Refusal::NotYetValid);
        }
        if now >= exp.saturating_add(skew) {
            return Err(Refusal::Expired);
        }
        if aud != audience {
            return Err(Refusal::Audience);
        }
        if issuer.is_some_and(|i| i != iss) {
            return Err(Refusal::Issuer);
        }
        Ok(())
    }
}

impl TokenSource for GridJwt {
    /// A token with an empty audience, which no validator accepts: grid tokens need the
    /// target, see [`TokenSource::token_for`].
    fn token(&self) -> String {
        self.token_for("")
    }

    fn token_for(&self, remote: &str) -> String {
        self.token_at(remote, now_secs())
    }
}

impl TokenValidator for GridJwt {
    /// Everything but the issuer: the audience must be this value's local host.
    fn validate(&self, token: &str) -> Result<(), String> {
        self.check_at(token, &self.local, None, now_secs())
            .map_err(|r| r.to_string())
    }

    /// Everything: the audience must be `peer.local` and the issuer `peer.remote`.
    fn validate_peer(&self, token: &str, peer: &PeerInfo<'_>) -> Result<(), String> {
        self.check_at(token, peer.local, Some(peer.remote), now_secs())
            .map_err(|r| r.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &str = "rgrid test secret";
    const A: &str = "http://10.0.0.1:9000";
    const B: &str = "http://10.0.0.2:9000";
    const C: &str = "http://10.0.0.3:9000";
    /// 2024-01-01T00:00:00Z.
    const NOW: i64 = 1_704_067_200;

    fn b64(data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(data)
    }

    /// A token over arbitrary header and claims JSON, signed with `secret` straight through
    /// the `hmac` crate (not through [`Key`]).
    fn forge(secret: &[u8], header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let mut mac = HmacSha512::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn grid(local: &str) -> GridJwt {
        GridJwt::new(SECRET, local).unwrap()
    }

    fn grid_claims(iss: &str, aud: &str, iat: i64, exp: i64) -> String {
        format!(r#"{{"iss":"{iss}","aud":"{aud}","iat":{iat},"exp":{exp}}}"#)
    }

    const HS512: &str = r#"{"alg":"HS512","typ":"JWT"}"#;

    #[test]
    fn hmac_sha512_known_answer() {
        // RFC 4231, test case 2.
        let mut mac = HmacSha512::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(HEADER_B64, b64(HS512.as_bytes()));
    }

    /// A MinIO node token for access key `minioadmin`, secret `minioadmin`, expiring
    /// 2100-01-01, computed outside this crate (Python's `hmac`/`hashlib`/`base64` over the
    /// JSON Go's `encoding/json` writes for MinIO's claims).
    const MINIO_GOLDEN: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.\
        eyJhY2Nlc3NLZXkiOiJtaW5pb2FkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJzdWIiOiJtaW5pb2FkbWluIn0.\
        sz1teB0uxxGT_GIoAHQ_iRazI2ATyKGAi4diiR56JaYUP_vnYD10y0fAd1EawWy7fmQOVQYPIkiPNZlY4DxXuA";

    #[test]
    fn minio_golden_vector_validates_and_matches_ours() {
        let jwt = MinioJwt::new("minioadmin", "minioadmin").unwrap();
        assert_eq!(jwt.check_at(MINIO_GOLDEN, NOW), Ok(()));
        assert!(jwt.validate(MINIO_GOLDEN).is_ok());
        // Ours is byte for byte the same for the same expiry.
        assert_eq!(
            MinioJwt::sign_with(&jwt.key, "minioadmin", 4_102_444_800),
            MINIO_GOLDEN
        );
        // And the same token built here through the hmac crate directly.
        let forged = forge(
            b"minioadmin",
            HS512,
            r#"{"accessKey":"minioadmin","exp":4102444800,"sub":"minioadmin"}"#,
        );
        assert_eq!(forged, MINIO_GOLDEN);
        // Another access key or secret refuses it.
        let other = MinioJwt::new("someone", "minioadmin").unwrap();
        assert_eq!(other.check_at(MINIO_GOLDEN, NOW), Err(Refusal::AccessKey));
        let other = MinioJwt::new("minioadmin", "other secret").unwrap();
        assert_eq!(other.check_at(MINIO_GOLDEN, NOW), Err(Refusal::Signature));
    }

    #[test]
    fn minio_token_decodes_to_minio_claims() {
        let jwt = MinioJwt::new("AKIA", "secret key").unwrap();
        let token = jwt.token();
        assert_eq!(token, jwt.token_for(B), "no audience in MinIO tokens");
        assert!(token.starts_with(HEADER_B64));
        let claims: MinioClaimsIn = jwt.key.verify(&token).unwrap();
        assert_eq!(claims.access_key.as_deref(), Some("AKIA"));
        assert_eq!(claims.sub.as_deref(), Some("AKIA"));
        assert_eq!((claims.iat, claims.nbf), (None, None));
        let exp = numeric_date(&claims.exp.unwrap()).unwrap();
        let want = now_secs() + secs(MinioJwt::NODE_TOKEN_EXPIRY);
        assert!((want - exp).abs() <= 5, "{exp} vs {want}");
        // Exactly MinIO's claim set, in Go's order.
        let json = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!(r#"{{"accessKey":"AKIA","exp":{exp},"sub":"AKIA"}}"#)
        );
        assert!(jwt.validate(&token).is_ok());
    }

    #[test]
    fn minio_claim_rules() {
        let jwt = MinioJwt::new("ak", "sk").unwrap();
        let check = |claims: &str| jwt.check_at(&forge(b"sk", HS512, claims), NOW);
        // Access key or subject suffices (MinIO's owner check); floats are fine (MapClaims).
        assert_eq!(check(r#"{"sub":"ak","exp":4102444800}"#), Ok(()));
        assert_eq!(check(r#"{"accessKey":"ak","exp":4.1e9}"#), Ok(()));
        assert_eq!(
            check(r#"{"accessKey":"x","sub":"ak","exp":4102444800}"#),
            Ok(())
        );
        assert_eq!(
            check(r#"{"accessKey":"x","exp":4102444800}"#),
            Err(Refusal::AccessKey)
        );
        assert_eq!(check(r#"{"exp":4102444800}"#), Err(Refusal::MissingClaim));
        assert_eq!(check(r#"{"accessKey":"ak"}"#), Err(Refusal::MissingClaim));
        let expired = format!(r#"{{"accessKey":"ak","exp":{}}}"#, NOW - 301);
        assert_eq!(check(&expired), Err(Refusal::Expired));
        let future = format!(
            r#"{{"accessKey":"ak","exp":4102444800,"iat":{}}}"#,
            NOW + 301
        );
        assert_eq!(check(&future), Err(Refusal::NotYetValid));
        let future = format!(
            r#"{{"accessKey":"ak","exp":4102444800,"nbf":{}}}"#,
            NOW + 301
        );
        assert_eq!(check(&future), Err(Refusal::NotYetValid));
        assert_eq!(
            check(r#"{"accessKey":"ak","exp":"soon"}"#),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            check(r#"{"accessKey":"ak","exp":1e999}"#),
            Err(Refusal::Malformed)
        );
        // Extreme values do not overflow.
        assert_eq!(
            check(r#"{"accessKey":"ak","exp":9223372036854775807,"iat":-9223372036854775808}"#),
            Ok(())
        );
        let hs256 = forge(
            b"sk",
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"ak","exp":4102444800}"#,
        );
        assert_eq!(jwt.check_at(&hs256, NOW), Err(Refusal::Algorithm));
    }

    #[test]
    fn grid_round_trip_and_claims() {
        let (a, b) = (grid(A), grid(B));
        let token = a.sign_at(B, NOW);
        assert_eq!(b.check_at(&token, B, Some(A), NOW), Ok(()));
        assert_eq!(b.check_at(&token, B, None, NOW + 299), Ok(()));
        let claims: GridClaims = b.key.verify(&token).unwrap();
        assert_eq!(
            claims,
            GridClaims {
                iss: Some(A.to_owned()),
                aud: Some(B.to_owned()),
                iat: Some(NOW),
                exp: Some(NOW + 300),
                nbf: None,
            }
        );
        // Through the public API, on the real clock.
        let token = a.token_for(B);
        assert!(b.validate_peer(&token, &PeerInfo::new(B, A)).is_ok());
        assert!(b.validate(&token).is_ok());
        assert!(a.validate(&token).is_err(), "audience is B, not A");
        // Issued by a forger with the key is accepted: the key is the trust boundary.
        let forged = forge(SECRET.as_bytes(), HS512, &grid_claims(A, B, NOW, NOW + 60));
        assert_eq!(b.check_at(&forged, B, Some(A), NOW), Ok(()));
    }

    #[test]
    fn grid_time_rules() {
        let (a, b) = (grid(A), grid(B));
        let token = a.sign_at(B, NOW);
        // Expired: lifetime 300 s + skew 300 s.
        assert_eq!(b.check_at(&token, B, Some(A), NOW + 599), Ok(()));
        assert_eq!(
            b.check_at(&token, B, Some(A), NOW + 600),
            Err(Refusal::Expired)
        );
        // Issued in the future beyond the skew.
        assert_eq!(b.check_at(&token, B, Some(A), NOW - 300), Ok(()));
        assert_eq!(
            b.check_at(&token, B, Some(A), NOW - 301),
            Err(Refusal::NotYetValid)
        );
        let strict = grid(B).clock_skew(Duration::ZERO);
        assert_eq!(
            strict.check_at(&token, B, Some(A), NOW + 300),
            Err(Refusal::Expired)
        );
        assert_eq!(
            strict.check_at(&token, B, Some(A), NOW - 1),
            Err(Refusal::NotYetValid)
        );
        let check =
            |claims: &str| b.check_at(&forge(SECRET.as_bytes(), HS512, claims), B, Some(A), NOW);
        // nbf in the future.
        let nbf = format!(
            r#"{{"iss":"{A}","aud":"{B}","iat":{NOW},"exp":{},"nbf":{}}}"#,
            NOW + 60,
            NOW + 301
        );
        assert_eq!(check(&nbf), Err(Refusal::NotYetValid));
        // Lifetime bounds: too long, far-future expiry, exp before iat, extremes.
        assert_eq!(
            check(&grid_claims(A, B, NOW, NOW + 901)),
            Err(Refusal::Lifetime)
        );
        assert_eq!(check(&grid_claims(A, B, NOW, NOW + 900)), Ok(()));
        assert_eq!(
            check(&grid_claims(A, B, NOW + 100_000, NOW + 100_060)),
            Err(Refusal::Lifetime)
        );
        assert_eq!(check(&grid_claims(A, B, NOW, NOW)), Err(Refusal::Lifetime));
        assert_eq!(
            check(&grid_claims(A, B, i64::MIN, i64::MAX)),
            Err(Refusal::Lifetime)
        );
        assert_eq!(
            check(&grid_claims(A, B, i64::MAX - 1, i64::MAX)),
            Err(Refusal::Lifetime)
        );
        assert_eq!(
            check(&grid_claims(A, B, i64::MIN, i64::MIN + 1)),
            Err(Refusal::Expired)
        );
        // Missing claims.
        let no_iss = format!(r#"{{"aud":"{B}","iat":{NOW},"exp":{}}}"#, NOW + 60);
        assert_eq!(check(&no_iss), Err(Refusal::MissingClaim));
        let no_exp = format!(r#"{{"iss":"{A}","aud":"{B}","iat":{NOW}}}"#);
        assert_eq!(check(&no_exp), Err(Refusal::MissingClaim));
        // Wrong types.
        let float = format!(
            r#"{{"iss":"{A}","aud":"{B}","iat":{NOW}.5,"exp":{}}}"#,
            NOW + 60
        );
        assert_eq!(check(&float), Err(Refusal::Malformed));
        let aud_array = format!(
            r#"{{"iss":"{A}","aud":["{B}"],"iat":{NOW},"exp":{}}}"#,
            NOW + 60
        );
        assert_eq!(check(&aud_array), Err(Refusal::Malformed));
    }

    #[test]
    fn grid_audience_issuer_and_secret() {
        let (a, b, c) = (grid(A), grid(B), grid(C));
        let to_b = a.sign_at(B, NOW);
        // Replayed to C (even claiming to be A): wrong audience.
        assert_eq!(c.check_at(&to_b, C, Some(A), NOW), Err(Refusal::Audience));
        // Presented to B by someone claiming to be C: wrong issuer.
        assert_eq!(b.check_at(&to_b, B, Some(C), NOW), Err(Refusal::Issuer));
        // Another secret.
        let other = GridJwt::new("another secret", B).unwrap();
        assert_eq!(
            other.check_at(&to_b, B, Some(A), NOW),
            Err(Refusal::Signature)
        );
        // A MinIO token with the same secret is no grid token.
        let minio = MinioJwt::new("ak", SECRET).unwrap();
        assert_eq!(
            b.check_at(&minio.token(), B, Some(A), NOW),
            Err(Refusal::MissingClaim)
        );
        assert!(GridJwt::new("", A).is_err());
        assert!(MinioJwt::new("ak", "").is_err());
        assert!(MinioJwt::new("", "sk").is_err());
    }

    #[test]
    fn tampering_and_algorithms_are_refused() {
        let (a, b) = (grid(A), grid(B));
        let token = a.sign_at(B, NOW);
        let parts: Vec<&str> = token.split('.').collect();
        let check = |t: &str| b.check_at(t, B, Some(A), NOW);
        // Tampered payload: claims re-encoded with another audience, old signature.
        let evil = b64(grid_claims(A, B, NOW, NOW + 900_000).as_bytes());
        assert_eq!(
            check(&format!("{}.{evil}.{}", parts[0], parts[2])),
            Err(Refusal::Signature)
        );
        // One character of the payload changed.
        let mut p = parts[1].to_owned().into_bytes();
        p[5] = if p[5] == b'A' { b'B' } else { b'A' };
        let p = String::from_utf8(p).unwrap();
        assert_ne!(check(&format!("{}.{p}.{}", parts[0], parts[2])), Ok(()));
        // Tampered signature: one bit, truncated, empty, extended.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        assert_eq!(
            check(&format!("{}.{}.{}", parts[0], parts[1], b64(&sig))),
            Err(Refusal::Signature)
        );
        assert_eq!(
            check(&format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..32]))),
            Err(Refusal::Signature)
        );
        assert_eq!(
            check(&format!("{}.{}.", parts[0], parts[1])),
            Err(Refusal::Signature)
        );
        sig[10] ^= 1;
        sig.push(0);
        assert_eq!(
            check(&format!("{}.{}.{}", parts[0], parts[1], b64(&sig))),
            Err(Refusal::Signature)
        );
        // alg none (empty signature), HS256 with the same secret, other algorithms.
        let claims = grid_claims(A, B, NOW, NOW + 60);
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims.as_bytes())
        );
        assert_eq!(check(&none), Err(Refusal::Algorithm));
        for alg in ["HS256", "HS384", "RS512", "hs512", ""] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let t = forge(SECRET.as_bytes(), &header, &claims);
            assert_eq!(check(&t), Err(Refusal::Algorithm), "{alg}");
        }
        let no_alg = forge(SECRET.as_bytes(), r#"{"typ":"JWT"}"#, &claims);
        assert_eq!(check(&no_alg), Err(Refusal::Malformed));
        let dup_alg = forge(
            SECRET.as_bytes(),
            r#"{"alg":"HS512","alg":"none"}"#,
            &claims,
        );
        assert_eq!(check(&dup_alg), Err(Refusal::Malformed));
        // Header without typ is fine (only alg matters).
        let bare = forge(SECRET.as_bytes(), r#"{"alg":"HS512"}"#, &claims);
        assert_eq!(check(&bare), Ok(()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let b = grid(B);
        let check = |t: &str| b.check_at(t, B, Some(A), NOW);
        let good = grid(A).sign_at(B, NOW);
        let parts: Vec<&str> = good.split('.').collect();
        let non_json = b64(b"not json");
        let cases = [
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            "...".to_owned(),
            "abc".to_owned(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.{}", parts[2]),
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], "!!!", parts[2]),
            format!("{}.{}.{}", "***", parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], "+/+/"),
            format!("{non_json}.{}.{}", parts[1], parts[2]),
            format!("{}.{}.{}", b64(b"[]"), parts[1], parts[2]),
            format!("{}.{}.{}", b64(b"\xff\xfe"), parts[1], parts[2]),
            "é.é.é".to_owned(),
        ];
        for t in &cases {
            let r = check(t);
            assert!(
                matches!(r, Err(Refusal::Malformed | Refusal::Signature)),
                "{t:?}: {r:?}"
            );
        }
        // Non-JSON claims under a valid signature.
        let t = forge(SECRET.as_bytes(), HS512, "not json");
        assert_eq!(check(&t), Err(Refusal::Malformed));
        let t = forge(SECRET.as_bytes(), HS512, "[1,2]");
        assert_eq!(check(&t), Err(Refusal::Malformed));
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let t = forge(SECRET.as_bytes(), HS512, &deep);
        assert_eq!(check(&t), Err(Refusal::Malformed));
        // Huge input: refused by length, whatever it holds.
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(check(&huge), Err(Refusal::TooLong));
        let huge = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(check(&huge), Err(Refusal::TooLong));
        let big_aud = "x".repeat(MAX_TOKEN_LEN);
        let t = grid(A).sign_at(&big_aud, NOW);
        assert_eq!(
            b.check_at(&t, &big_aud, Some(A), NOW),
            Err(Refusal::TooLong)
        );
        let jwt = MinioJwt::new("ak", "sk").unwrap();
        assert_eq!(jwt.check_at(&huge, NOW), Err(Refusal::TooLong));
        assert_eq!(jwt.check_at("x.y", NOW), Err(Refusal::Malformed));
    }

    #[test]
    fn grid_source_caches_per_audience_and_resigns() {
        let a = grid(A);
        let t1 = a.token_at(B, NOW);
        assert_eq!(
            a.token_at(B, NOW + 149),
            t1,
            "reused within half the lifetime"
        );
        assert_ne!(a.token_at(C, NOW + 149), t1, "one token per audience");
        let t2 = a.token_at(B, NOW + 150);
        assert_ne!(t2, t1, "re-signed at half the lifetime");
        let claims: GridClaims = a.key.verify(&t2).unwrap();
        assert_eq!(claims.iat, Some(NOW + 150));
        // The clock went back: a fresh token, not one issued in the future.
        let t3 = a.token_at(B, NOW);
        let claims: GridClaims = a.key.verify(&t3).unwrap();
        assert_eq!(claims.iat, Some(NOW));
        // Bounded cache.
        for i in 0..(MAX_CACHED_AUDIENCES + 10) {
            a.token_at(&format!("http://h{i}:1"), NOW);
        }
        assert!(crate::util::lock(&a.cache).len() <= MAX_CACHED_AUDIENCES);
        // The clones share the cache; builder methods start a new one.
        let clone = a.clone();
        assert_eq!(clone.token_at(B, NOW), a.token_at(B, NOW));
        let longer = a.clone().lifetime(Duration::from_secs(3600));
        assert_eq!(longer.max_lifetime, Duration::from_secs(3600));
        let t = longer.token_at(B, NOW);
        let claims: GridClaims = a.key.verify(&t).unwrap();
        assert_eq!(claims.exp, Some(NOW + 3600));
        assert!(crate::util::lock(&longer.cache).len() == 1);
        // The audience-less token is refused everywhere.
        let b = grid(B);
        assert!(b.validate(&a.token()).is_err());
    }

    #[test]
    fn debug_never_shows_secrets_or_tokens() {
        let g = grid(A);
        let token = g.token_for(B);
        let s = format!("{g:?}");
        assert!(!s.contains(SECRET) && !s.contains(&token), "{s}");
        assert!(s.contains(A));
        let m = MinioJwt::new("ak", "very secret").unwrap();
        let s = format!("{m:?}");
        assert!(!s.contains("very secret") && !s.contains(&m.token()), "{s}");
        // Refusal texts carry no claim values.
        for r in [
            Refusal::Audience,
            Refusal::Issuer,
            Refusal::AccessKey,
            Refusal::Malformed,
        ] {
            assert!(!r.to_string().contains("http"));
        }
    }

    #[test]
    fn upgrade_checks() {
        let m = MinioJwt::new("ak", "sk").unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let headers = |auth: &str, time: i128| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
            h.insert(TIME_HEADER, time.to_string().parse().unwrap());
            h
        };
        let now = now as i128;
        let bearer = format!("Bearer {}", m.token());
        assert_eq!(m.check_upgrade(&headers(&bearer, now)), Ok(()));
        let lower = format!("bearer {}", m.token());
        assert_eq!(m.check_upgrade(&headers(&lower, now)), Ok(()));
        let skew = 16 * 60 * 1_000_000_000;
        assert!(m.check_upgrade(&headers(&bearer, now - skew)).is_err());
        assert!(m.check_upgrade(&headers(&bearer, now + skew)).is_err());
        assert!(m.check_upgrade(&headers(&m.token(), now)).is_err());
        assert!(m.check_upgrade(&headers("Bearer x.y.z", now)).is_err());
        assert!(m.check_upgrade(&http::HeaderMap::new()).is_err());
        let g = grid(B);
        let bearer = format!("Bearer {}", grid(A).token_for(B));
        assert_eq!(g.check_upgrade(&headers(&bearer, now)), Ok(()));
        let bearer = format!("Bearer {}", grid(A).token_for(C));
        assert!(g.check_upgrade(&headers(&bearer, now)).is_err());
    }
}
