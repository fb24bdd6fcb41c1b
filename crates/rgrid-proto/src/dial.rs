//! Which side of a pair dials (spec §3.14).
//!
//! Both ends must reach opposite answers without talking to each other, and a mixed cluster of
//! rgrid and Go nodes must agree, so this is MinIO's rule exactly: hash both concatenations of
//! the two host names (as they appear in the host list, scheme included) with XXH3-64, and the
//! side whose `local + remote` hash is smaller dials. Equal hashes fall back to comparing the
//! names as byte strings.

use xxhash_rust::xxh3::Xxh3Default;

/// Whether the node `local` should dial `remote` (otherwise it waits for `remote` to dial).
///
/// For any two distinct names exactly one of `should_dial(a, b)` and `should_dial(b, a)` is
/// true. The result for `local == remote` is meaningless (a node never connects to itself).
pub fn should_dial(local: &str, remote: &str) -> bool {
    let h0 = concat_hash(local, remote);
    let h1 = concat_hash(remote, local);
    if h0 == h1 { local < remote } else { h0 < h1 }
}

/// XXH3-64 of `a` followed by `b`, without building the concatenated string.
fn concat_hash(a: &str, b: &str) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(a.as_bytes());
    h.update(b.as_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_hash_equals_one_shot() {
        let joined = "http://127.0.0.1:9001http://127.0.0.1:9002";
        assert_eq!(
            concat_hash("http://127.0.0.1:9001", "http://127.0.0.1:9002"),
            xxhash_rust::xxh3::xxh3_64(joined.as_bytes())
        );
    }
}
