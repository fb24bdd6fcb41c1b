//! JWT verification before authentication: the token of a connect message and the bearer
//! token of an upgrade request, judged by `GridJwt` and `MinioJwt` (fixed secret
//! `JWT_SECRET`) through the public API.
//!
//! Input: the token, as bytes. A connect message's token is a msgpack string that decodes
//! only as UTF-8 (the handshake target covers that), so the validators see the input as a
//! lossily converted `&str`; the raw bytes, UTF-8 or not, also go into an `Authorization:
//! Bearer` header for `check_upgrade`.
//!
//! Checked on every input: no panic; a token that is accepted has three segments and is at
//! most `MAX_TOKEN_LEN` bytes; a longer one is refused; `GridJwt::validate_peer` accepts only
//! what `validate` (the same checks without the issuer) accepts; `check_upgrade` agrees with
//! `validate` on a header that is a visible-ASCII string and refuses every other; refusal
//! texts are never empty and never repeat the token. Then three strings drawn from the input
//! (issuer, audience, access key) make validly signed tokens, which must be accepted by a
//! fresh validator with the same secret (when no longer than `MAX_TOKEN_LEN`) and refused
//! with another issuer, audience, access key or secret.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rgrid::{GridJwt, MAX_TOKEN_LEN, MinioJwt, PeerInfo, TokenSource, TokenValidator};
use rgrid_fuzz::{JWT_ACCESS_KEY, JWT_LOCAL, JWT_REMOTE, JWT_SECRET};

struct Validators {
    grid: GridJwt,
    minio: MinioJwt,
}

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| Validators {
        grid: GridJwt::new(JWT_SECRET, JWT_LOCAL).expect("non-empty secret"),
        minio: MinioJwt::new(JWT_ACCESS_KEY, JWT_SECRET).expect("non-empty credentials"),
    })
}

fuzz_target!(|data: &[u8]| {
    let v = validators();
    let token = String::from_utf8_lossy(data);
    let peer = PeerInfo::new(JWT_LOCAL, JWT_REMOTE);

    let grid_peer = v.grid.validate_peer(&token, &peer);
    let grid = v.grid.validate(&token);
    let minio = v.minio.validate(&token);
    for r in [&grid_peer, &grid, &minio] {
        check_outcome(r, &token);
    }
    // validate_peer checks what validate checks and the issuer. The clock moves between the
    // calls: if validate refused what validate_peer accepted, the token expired in between,
    // and validate_peer refuses it now too.
    if grid_peer.is_ok() && grid.is_err() {
        assert!(
            v.grid.validate_peer(&token, &peer).is_err(),
            "validate_peer accepts what validate refuses: {grid:?}"
        );
    }

    // The upgrade request's bearer token, from the raw bytes.
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(data);
    if let Some(headers) = upgrade_headers(&value) {
        let visible = headers
            .get(http::header::AUTHORIZATION)
            .is_some_and(|h| h.to_str().is_ok());
        for (upgrade, validator) in [
            (
                v.grid.check_upgrade(&headers),
                &v.grid as &dyn TokenValidator,
            ),
            (v.minio.check_upgrade(&headers), &v.minio),
        ] {
            if let Err(e) = &upgrade {
                assert!(!e.is_empty());
            }
            if !visible {
                assert!(upgrade.is_err(), "a non-visible-ASCII header is accepted");
            } else if upgrade.is_ok() != validator.validate(&token).is_ok() {
                // As above: only a token crossing a validity boundary between the two calls
                // may differ, and then the validator agrees when asked again.
                assert_eq!(
                    upgrade.is_ok(),
                    validator.validate(&token).is_ok(),
                    "check_upgrade and validate disagree"
                );
            }
        }
    }

    round_trip(data);
});

/// An accepted token is well formed; a refusal has a text that does not contain the token.
fn check_outcome(r: &Result<(), String>, token: &str) {
    match r {
        Ok(()) => {
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(token.split('.').count(), 3);
        }
        Err(e) => {
            assert!(!e.is_empty());
            // Longer than every refusal text, so containment would mean a copy of the token.
            if token.len() > 64 {
                assert!(!e.contains(token), "refusal repeats the token");
            }
        }
    }
    if token.len() > MAX_TOKEN_LEN {
        assert!(r.is_err(), "token longer than MAX_TOKEN_LEN accepted");
    }
}

/// An upgrade request's headers with `authorization` as given (None when it is no valid
/// header value) and the current time.
fn upgrade_headers(authorization: &[u8]) -> Option<http::HeaderMap> {
    let auth = http::HeaderValue::from_bytes(authorization).ok()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = http::HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, auth);
    h.insert(
        "x-minio-time",
        http::HeaderValue::from_str(&nanos.to_string()).expect("digits"),
    );
    Some(h)
}

/// Tokens signed here for claims drawn from the input are accepted by a fresh validator with
/// the same secret (if they fit in MAX_TOKEN_LEN) and refused with any claim or the secret
/// changed.
fn round_trip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(iss), Ok(aud), Ok(access_key)) = (
        String::arbitrary(&mut u),
        String::arbitrary(&mut u),
        String::arbitrary(&mut u),
    ) else {
        return;
    };
    let other = |s: &str| format!("{s}x");

    // Grid token from `iss` to `aud`.
    let token = GridJwt::new(JWT_SECRET, iss.as_str())
        .expect("non-empty secret")
        .token_for(&aud);
    let fits = token.len() <= MAX_TOKEN_LEN;
    let at_aud = GridJwt::new(JWT_SECRET, aud.as_str()).expect("non-empty secret");
    let r = at_aud.validate_peer(&token, &PeerInfo::new(&aud, &iss));
    assert_eq!(r.is_ok(), fits, "grid token from {iss:?} to {aud:?}: {r:?}");
    assert_eq!(at_aud.validate(&token).is_ok(), fits);
    let wrong_iss = other(&iss);
    assert!(
        at_aud
            .validate_peer(&token, &PeerInfo::new(&aud, &wrong_iss))
            .is_err()
    );
    let wrong_aud = other(&aud);
    let at_other = GridJwt::new(JWT_SECRET, wrong_aud.as_str()).expect("non-empty secret");
    assert!(at_other.validate(&token).is_err());
    assert!(
        at_other
            .validate_peer(&token, &PeerInfo::new(&wrong_aud, &iss))
            .is_err()
    );
    let other_secret = GridJwt::new(other(JWT_SECRET), aud.as_str()).expect("non-empty secret");
    assert!(
        other_secret
            .validate_peer(&token, &PeerInfo::new(&aud, &iss))
            .is_err()
    );

    // MinIO node token for `access_key`.
    let Ok(source) = MinioJwt::new(access_key.as_str(), JWT_SECRET) else {
        assert!(
            access_key.is_empty(),
            "MinioJwt::new refused {access_key:?}"
        );
        return;
    };
    let token = source.token();
    let fits = token.len() <= MAX_TOKEN_LEN;
    let fresh = MinioJwt::new(access_key.as_str(), JWT_SECRET).expect("accepted above");
    let r = fresh.validate(&token);
    assert_eq!(r.is_ok(), fits, "MinIO token for {access_key:?}: {r:?}");
    let headers =
        upgrade_headers(format!("Bearer {token}").as_bytes()).expect("base64url is a header");
    assert_eq!(fresh.check_upgrade(&headers).is_ok(), fits);
    let wrong_key = MinioJwt::new(other(&access_key), JWT_SECRET).expect("non-empty");
    assert!(wrong_key.validate(&token).is_err());
    let wrong_secret = MinioJwt::new(access_key.as_str(), other(JWT_SECRET)).expect("non-empty");
    assert!(wrong_secret.validate(&token).is_err());
}
