//! Static subroutes (spec §6.3).
//!
//! A subroute tags a request or stream with a static route string, e.g. one per local disk
//! (MinIO uses the disk path). On the wire it travels as a 32-byte id after the msgpack array:
//! SHA-256 of the route bytes with byte 0 replaced by the handler id and byte 1 set to 0.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::ids::HandlerId;

/// The 32-byte wire id of a (handler, subroute) pair.
#[derive(Clone, Copy, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SubrouteId(pub [u8; 32]);

impl SubrouteId {
    /// Length of the id on the wire.
    pub const LEN: usize = 32;

    /// The id of `route` for `handler`.
    pub fn new(handler: HandlerId, route: &str) -> Self {
        Self::from_route_hash(RouteHash::new(route), handler)
    }

    /// The "zero" id of a handler: the handler byte followed by 31 zero bytes. MinIO registers
    /// every subrouted handler under it too, so a caller can look up capacities for any
    /// subroute of a handler.
    pub const fn zero(handler: HandlerId) -> Self {
        let mut id = [0u8; 32];
        id[0] = handler.0;
        SubrouteId(id)
    }

    /// Combines a precomputed route hash with a handler id.
    #[inline]
    pub const fn from_route_hash(hash: RouteHash, handler: HandlerId) -> Self {
        let mut id = hash.0;
        id[0] = handler.0;
        id[1] = 0;
        SubrouteId(id)
    }

    /// The handler id stored in byte 0.
    #[inline]
    pub const fn handler(&self) -> HandlerId {
        HandlerId(self.0[0])
    }

    /// The raw bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SubrouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubrouteId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for SubrouteId {
    /// Prints the bytes as a list of decimals, like MinIO's "Invalid Handler" message does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go prints a byte array as `[78 0 12 ...]`.
        f.write_str("[")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b}")?;
        }
        f.write_str("]")
    }
}

/// SHA-256 of a route string with byte 0 left at zero: what a caller-side subroute handle
/// stores, so the handler byte can be filled in per call without hashing again.
#[derive(Clone, Copy, Eq, Hash, PartialEq)]
pub struct RouteHash(pub [u8; 32]);

impl RouteHash {
    /// Hashes `route`.
    pub fn new(route: &str) -> Self {
        let mut id: [u8; 32] = Sha256::digest(route.as_bytes()).into();
        id[0] = 0;
        id[1] = 0;
        RouteHash(id)
    }
}

impl fmt::Debug for RouteHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouteHash(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Joins subroute parts with `/`, as MinIO does for `Register*(.., "a", "b")` and for
/// `Subroute("a").Subroute("b")`. No normalisation: the result must match exactly.
pub fn join_route<S: AsRef<str>>(parts: &[S]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(p.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_matches_minio() {
        assert_eq!(join_route(&["subroute", "1"]), "subroute/1");
        assert_eq!(join_route(&["a"]), "a");
        assert_eq!(join_route::<&str>(&[]), "");
        assert_eq!(join_route(&["/mnt/disk1", "x"]), "/mnt/disk1/x");
    }

    #[test]
    fn zero_and_handler_byte() {
        let z = SubrouteId::zero(HandlerId(78));
        assert_eq!(z.0[0], 78);
        assert!(z.0[1..].iter().all(|&b| b == 0));
        let id = SubrouteId::new(HandlerId(9), "x");
        assert_eq!(id.handler(), HandlerId(9));
        assert_eq!(id.0[1], 0);
        assert_eq!(
            SubrouteId::from_route_hash(RouteHash::new("x"), HandlerId(9)),
            id
        );
    }
}
