//! Handshake and control payloads on arbitrary bytes: `ConnectRequest`, `ConnectResponse`,
//! `MuxConnectError`, `PingMsg` and `PongMsg` all decode the same input.
//!
//! Checked for every payload that decodes: strings are borrowed from the payload (or are
//! lossy replacements), times are valid and convert to and from `SystemTime` without loss or
//! panic, re-encoding decodes to the same value and encodes to the same bytes again, and a
//! byte appended after the map is refused.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use rgrid_fuzz::is_within;
use rgrid_proto::{
    ConnectRequest, ConnectResponse, EncodeError, GridTime, MuxConnectError, PingMsg, PongMsg,
};

/// Encodes `$v` with `$encode`, decodes it back with `$decode` (equal), and encodes the
/// result again (same bytes). A macro because the decoded value borrows from the new bytes.
macro_rules! round_trip {
    ($v:expr, $encode:expr, $decode:expr) => {{
        let v = $v;
        let encode = $encode;
        let mut first = Vec::new();
        if let Err(e) = encode(v, &mut first) {
            panic!("a decoded value must re-encode: {e}; {v:?}");
        }
        let back = match $decode(&first) {
            Ok(b) => b,
            Err(e) => panic!("re-encoded value does not decode: {e}; {v:?}"),
        };
        assert_eq!(&back, v);
        let mut second = Vec::new();
        if let Err(e) = encode(&back, &mut second) {
            panic!("second encode failed: {e}");
        }
        assert_eq!(first, second);
    }};
}

fuzz_target!(|data: &[u8]| {
    let mut longer = data.to_vec();
    longer.push(0);

    if let Ok(v) = ConnectRequest::decode(data) {
        assert!(is_within(v.host.as_bytes(), data));
        assert!(is_within(v.token.as_bytes(), data));
        check_time(v.time);
        round_trip!(
            &v,
            |v: &ConnectRequest<'_>, out: &mut Vec<u8>| v.encode(out),
            ConnectRequest::decode
        );
        assert!(ConnectRequest::decode(&longer).is_err());
    }
    if let Ok(v) = ConnectResponse::decode(data) {
        check_lossy(&v.rejected_reason, data);
        round_trip!(
            &v,
            |v: &ConnectResponse<'_>, out: &mut Vec<u8>| v.encode(out),
            ConnectResponse::decode
        );
        assert!(ConnectResponse::decode(&longer).is_err());
    }
    if let Ok(v) = MuxConnectError::decode(data) {
        check_lossy(&v.error, data);
        round_trip!(
            &v,
            |v: &MuxConnectError<'_>, out: &mut Vec<u8>| v.encode(out),
            MuxConnectError::decode
        );
        assert!(MuxConnectError::decode(&longer).is_err());
    }
    if let Ok(v) = PingMsg::decode(data) {
        check_time(v.t);
        round_trip!(
            &v,
            |v: &PingMsg, out: &mut Vec<u8>| -> Result<(), EncodeError> {
                v.encode(out);
                Ok(())
            },
            PingMsg::decode
        );
        assert!(PingMsg::decode(&longer).is_err());
    }
    if let Ok(v) = PongMsg::decode(data) {
        if let Some(e) = &v.err {
            check_lossy(e, data);
        }
        check_time(v.t);
        round_trip!(
            &v,
            |v: &PongMsg<'_>, out: &mut Vec<u8>| v.encode(out),
            PongMsg::decode
        );
        assert!(PongMsg::decode(&longer).is_err());
    }
});

/// A lossy string is borrowed from the payload, an owned replacement of invalid UTF-8, or the
/// (owned, empty) default of a missing field.
#[allow(clippy::ptr_arg)] // Borrowed vs owned is what is checked.
fn check_lossy(s: &Cow<'_, str>, payload: &[u8]) {
    match s {
        Cow::Borrowed(b) => assert!(is_within(b.as_bytes(), payload)),
        Cow::Owned(o) => assert!(o.is_empty() || o.contains('\u{FFFD}')),
    }
}

/// A decoded time is valid and survives the conversions the connection layer makes.
fn check_time(t: GridTime) {
    assert!(t.nanos < 1_000_000_000);
    if let Some(st) = t.to_system_time() {
        assert_eq!(GridTime::from_system_time(st), t);
    }
    for other in [GridTime::GO_ZERO, GridTime::UNIX_EPOCH] {
        assert_eq!(t.abs_diff(other), other.abs_diff(t));
        assert_eq!(t.cmp(&other), t.unix_nanos().cmp(&other.unix_nanos()));
    }
    assert_eq!(t.abs_diff(t).as_nanos(), 0);
}
