//! rgrid's typed payload decoding (`rgrid::typed::decode`, msgpack through rmp-serde with a
//! depth limit) of MinIO's helper types and of a nested, recursive struct.
//!
//! Input: one selector byte picking the type, then the payload. Checked: no panic, no stack
//! overflow and no huge allocation on hostile lengths or nesting (libFuzzer's malloc limit,
//! set by run.sh, turns a large allocation into a crash); for every payload that decodes,
//! encoding the value and decoding it again gives the same value, and encoding that gives
//! the same bytes (encodings are deterministic).
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use rgrid::typed::{self, Array, Json, Mss, NilBytes, NoPayload, Payload, UrlValues};
use rgrid_fuzz::Nested;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    match sel % 10 {
        0 => check::<Mss>(payload),
        1 => check::<NilBytes>(payload),
        2 => check::<UrlValues>(payload),
        3 => check::<Json<Vec<Option<String>>>>(payload),
        4 => check::<Json<BTreeMap<String, i64>>>(payload),
        5 => check::<Array<Mss>>(payload),
        6 => check::<Array<Array<u32>>>(payload),
        7 => {
            // Decodes from anything, to nothing.
            assert_eq!(typed::decode::<NoPayload>(payload).ok(), Some(NoPayload));
            assert!(typed::encode(&NoPayload).is_ok_and(|b| b.is_empty()));
        }
        8 => check::<Nested>(payload),
        _ => check::<(u8, String, Option<NilBytes>, Vec<Mss>)>(payload),
    }
});

/// Decodes a `T`; if it decodes, checks the encode/decode round trip and determinism.
fn check<T: Payload + PartialEq + Debug>(payload: &[u8]) {
    let v = match typed::decode::<T>(payload) {
        Ok(v) => v,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let first = match typed::encode(&v) {
        Ok(b) => b,
        Err(e) => panic!("a decoded value must encode: {e}; {v:?}"),
    };
    let back = match typed::decode::<T>(&first) {
        Ok(b) => b,
        Err(e) => panic!("an encoded value must decode: {e}; {v:?}"),
    };
    assert_eq!(back, v);
    let second = match typed::encode(&back) {
        Ok(b) => b,
        Err(e) => panic!("second encode failed: {e}"),
    };
    assert_eq!(first, second);
}
