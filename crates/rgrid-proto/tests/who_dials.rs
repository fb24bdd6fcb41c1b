//! The "who dials" rule (spec §3.14): both sides of every pair agree without talking, and the
//! dialing work is spread over the hosts. A port of MinIO's TestShouldConnect, plus expected
//! answers computed with an independent XXH3 implementation so a mixed Go/Rust cluster agrees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rgrid_proto::should_dial;

/// MinIO's TestShouldConnect host names: "a".."z" without "w", then "0".."9".
fn minio_test_hosts() -> Vec<String> {
    ('a'..='z')
        .filter(|&c| c != 'w')
        .chain('0'..='9')
        .map(String::from)
        .collect()
}

#[test]
fn exactly_one_side_of_every_pair_dials_and_work_is_balanced() {
    let hosts = minio_test_hosts();
    assert_eq!(hosts.len(), 35);
    for x in &hosts {
        let mut dials = 0;
        for y in hosts.iter().filter(|y| *y != x) {
            let forward = should_dial(x, y);
            assert_ne!(
                forward,
                should_dial(y, x),
                "{x} <-> {y}: both or neither dial"
            );
            dials += usize::from(forward);
        }
        assert!(dials >= 10, "{x} dials only {dials} of 34 peers");
    }
}

#[test]
fn answers_match_an_independent_xxh3() {
    // Computed with Python's `xxhash.xxh3_64_intdigest` over the concatenated names.
    let a_dials: &str = "0001111001100111111110100001111100";
    let peers: Vec<String> = minio_test_hosts()
        .into_iter()
        .filter(|h| h != "a")
        .collect();
    let got: String = peers
        .iter()
        .map(|p| if should_dial("a", p) { '1' } else { '0' })
        .collect();
    assert_eq!(got, a_dials);

    let hosts = [
        "http://127.0.0.1:9001",
        "http://127.0.0.1:9002",
        "http://127.0.0.1:9003",
    ];
    assert!(should_dial(hosts[0], hosts[1]));
    assert!(!should_dial(hosts[0], hosts[2]));
    assert!(!should_dial(hosts[1], hosts[2]));
    assert!(should_dial(hosts[2], hosts[0]));
}
