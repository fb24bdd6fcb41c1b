//! Helpers shared by the fuzz targets and the seed generator.
//!
//! The targets live in `fuzz_targets/`; `run.sh` builds and runs them. Every target asserts
//! properties of what it decoded (round trips, zero-copy borrowing, limits), not only that
//! nothing panicked.

use std::collections::BTreeMap;

use rgrid::typed::{Array, Json, Mss, NilBytes, UrlValues};
use rgrid_proto::DecodeLimits;
use serde::{Deserialize, Serialize};

/// Whether `part` lies inside `whole` (a decoded field borrowed from the input, zero-copy).
/// An empty slice counts as inside: `Some(&[])` may be a static empty slice.
pub fn is_within(part: &[u8], whole: &[u8]) -> bool {
    if part.is_empty() {
        return true;
    }
    let w = whole.as_ptr_range();
    let p = part.as_ptr_range();
    w.start <= p.start && p.end <= w.end
}

/// Decode limits chosen by a selector byte, so size checks run at small limits too:
/// the default (64 MiB), exactly the frame length, one byte below it, or the selector value.
pub fn limits_for(sel: u8, frame_len: usize) -> DecodeLimits {
    match sel % 4 {
        0 => DecodeLimits::default(),
        1 => DecodeLimits::new(frame_len),
        2 => DecodeLimits::new(frame_len.saturating_sub(1)),
        _ => DecodeLimits::new(usize::from(sel)),
    }
}

/// A struct shaped like MinIO's typed requests, nesting every helper type and itself.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Nested {
    pub name: String,
    pub id: u64,
    pub delta: i32,
    pub flag: bool,
    #[serde(with = "serde_bytes")]
    pub raw: Vec<u8>,
    pub data: NilBytes,
    pub meta: Mss,
    pub query: UrlValues,
    pub list: Array<NilBytes>,
    pub json: Json<BTreeMap<String, Vec<i64>>>,
    pub opt: Option<u16>,
    pub children: Vec<Nested>,
    pub next: Option<Box<Nested>>,
}

/// The secret of every validator in the `jwt_verify` target; the seeds are signed with it, so
/// the fuzzer starts from tokens whose signature verifies.
pub const JWT_SECRET: &str = "rgrid fuzz secret";
/// The accepting node of `jwt_verify` (the audience a grid token must name).
pub const JWT_LOCAL: &str = "http://10.0.0.2:9000";
/// The dialing node of `jwt_verify` (the issuer a grid token must name).
pub const JWT_REMOTE: &str = "http://10.0.0.1:9000";
/// The access key of the `jwt_verify` target's MinIO validator.
pub const JWT_ACCESS_KEY: &str = "minioadmin";
