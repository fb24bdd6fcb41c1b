//! Golden bytes: every encoding pinned to bytes written by hand from the specification
//! (`shared/spec/minio-grid-v1.md` §3.3–§3.7, §3.16, §6.3) and the msgpack format.
//!
//! Checksums (xxh3-64 low 32 bits, little-endian) and SHA-256 subroute hashes were computed with
//! independent implementations (Python's `xxhash` and `hashlib`), never with the code under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use rgrid_proto::{
    ConnectRequest, ConnectResponse, DecodeError, DecodeLimits, Flags, Frame, GridTime, HandlerId,
    Message, MuxConnectError, MuxId, Op, PingMsg, PongMsg, SubrouteId, encode_merged,
    put_merged_header,
};

/// Parses space-separated hex ("97 05 00"), the notation the spec uses.
fn h(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// Encodes `m`, compares with `expected`, and decodes `expected` back to `m` (with the flags
/// the encoder put on the wire).
fn assert_golden(m: Message<'_>, expected: &[u8]) {
    let encoded = m.encode_to_vec().unwrap();
    assert_eq!(encoded, expected, "encoding of {m:?}");
    assert_eq!(m.encoded_len(), expected.len());
    let decoded = Message::decode(expected, &limits()).unwrap();
    assert_eq!(
        decoded,
        Message {
            flags: m.wire_flags(),
            ..m
        }
    );
}

/// SHA-256("subroute/1") with byte 0 = 78 and byte 1 = 0.
const SUBROUTE_1_H78: &str = "4e 00 13 d0 69 cc 3d d3 7b c0 09 3a 9c db 03 ee \
                              fc a2 25 ab ed d6 43 84 64 ed a4 73 21 ed ee cb";

#[test]
fn spec_hand_built_example_with_checksum() {
    // §3.3: single request, MuxID 5, 60 s deadline, handler 9 (DiskInfo), payload "abc",
    // CRC|EOF, no subroute.
    let expected = h("97 05 00 cd ea 60 09 0e 03 c4 03 61 62 63 31 b4 cf c5");
    let m = Message {
        mux_id: MuxId(5),
        seq: 0,
        deadline_ms: 60_000,
        handler: HandlerId::DISK_INFO,
        op: Op::REQUEST,
        flags: Flags::CRC | Flags::EOF,
        payload: Some(b"abc"),
        subroute: None,
    };
    assert_golden(m, &expected);

    // Any flipped bit is caught by the checksum (or makes the frame undecodable).
    for i in 0..expected.len() {
        for bit in 0..8 {
            let mut bad = expected.clone();
            bad[i] ^= 1 << bit;
            assert!(
                Message::decode(&bad, &limits()).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
    let mut bad = expected.clone();
    bad[12] = b'X';
    assert!(matches!(
        Message::decode(&bad, &limits()),
        Err(DecodeError::ChecksumMismatch {
            carried: 0xc5cf_b431,
            ..
        })
    ));
}

#[test]
fn every_op() {
    // MuxID 1, Seq 2, no deadline, handler 0, flags EOF, nil payload.
    let table: [(Op, &str); 16] = [
        (Op::CONNECT, "97 01 02 00 00 01 02 c4 00"),
        (Op::CONNECT_RESPONSE, "97 01 02 00 00 02 02 c4 00"),
        (Op::PING, "97 01 02 00 00 03 02 c4 00"),
        (Op::PONG, "97 01 02 00 00 04 02 c4 00"),
        (Op::CONNECT_MUX, "97 01 02 00 00 05 02 c4 00"),
        (Op::MUX_CONNECT_ERROR, "97 01 02 00 00 06 02 c4 00"),
        (Op::DISCONNECT_CLIENT_MUX, "97 01 02 00 00 07 02 c4 00"),
        (Op::DISCONNECT_SERVER_MUX, "97 01 02 00 00 08 02 c4 00"),
        (Op::MUX_CLIENT_MSG, "97 01 02 00 00 09 02 c4 00"),
        (Op::MUX_SERVER_MSG, "97 01 02 00 00 0a 02 c4 00"),
        (Op::UNBLOCK_SRV_MUX, "97 01 02 00 00 0b 02 c4 00"),
        (Op::UNBLOCK_CL_MUX, "97 01 02 00 00 0c 02 c4 00"),
        (Op::ACK_MUX, "97 01 02 00 00 0d 02 c4 00"),
        (Op::REQUEST, "97 01 02 00 00 0e 02 c4 00"),
        (Op::RESPONSE, "97 01 02 00 00 0f 02 c4 00"),
        (Op::DISCONNECT, "97 01 02 00 00 10 02 c4 00"),
    ];
    for (op, hex) in table {
        let m = Message {
            mux_id: MuxId(1),
            seq: 2,
            flags: Flags::EOF,
            ..Message::new(op)
        };
        assert_golden(m, &h(hex));
    }
    // Op 17 is the merged container: an empty one.
    let mut v = Vec::new();
    put_merged_header(&mut v, 0);
    assert_eq!(v, h("97 00 00 00 00 11 00 c4 00"));
    assert!(matches!(Frame::decode(&v, &limits()).unwrap(), Frame::Merged(m) if m.is_empty()));
    // Op 0 and anything above 17 are not ops.
    for op in [0x00u8, 0x12, 0x7f] {
        let bad = [0x97, 1, 2, 0, 0, op, 2, 0xc4, 0];
        assert_eq!(
            Message::decode(&bad, &limits()),
            Err(DecodeError::UnknownOp(op))
        );
    }
}

#[test]
fn every_flag() {
    let base = Message {
        mux_id: MuxId(1),
        ..Message::new(Op::MUX_SERVER_MSG)
    };
    // CRC: checksum over the 10 preceding bytes.
    assert_golden(
        Message {
            flags: Flags::CRC,
            payload: Some(b"x"),
            ..base
        },
        &h("97 01 00 00 00 0a 01 c4 01 78 23 af 1e b4"),
    );
    assert_golden(
        Message {
            flags: Flags::EOF,
            ..base
        },
        &h("97 01 00 00 00 0a 02 c4 00"),
    );
    assert_golden(
        Message {
            flags: Flags::STATELESS,
            ..Message::new(Op::CONNECT_MUX)
        },
        &h("97 00 00 00 00 05 04 c4 00"),
    );
    assert_golden(
        Message {
            flags: Flags::PAYLOAD_IS_ERR | Flags::EOF,
            payload: Some(b"boom"),
            ..base
        },
        &h("97 01 00 00 00 0a 0a c4 04 62 6f 6f 6d"),
    );
    // ZERO is derived from an empty, non-nil payload.
    assert_golden(
        Message {
            payload: Some(b""),
            ..base
        },
        &h("97 01 00 00 00 0a 10 c4 00"),
    );
    // SUB is derived from the subroute.
    let sub = SubrouteId::new(HandlerId::TEST, "subroute/1");
    let mut expected = h("97 01 00 00 00 0a 20 c4 00");
    expected.extend(h(SUBROUTE_1_H78));
    assert_golden(
        Message {
            subroute: Some(sub),
            ..base
        },
        &expected,
    );
    // Setting ZERO or SUB by hand without the matching payload/subroute does not leak out.
    let m = Message {
        flags: Flags::PAYLOAD_IS_ZERO | Flags::SUBROUTE,
        ..base
    };
    assert_eq!(m.encode_to_vec().unwrap(), h("97 01 00 00 00 0a 00 c4 00"));
}

#[test]
fn nil_and_empty_payloads_stay_distinct() {
    let nil = Message::new(Op::RESPONSE);
    let empty = Message {
        payload: Some(b""),
        ..nil
    };
    let nil_bytes = h("97 00 00 00 00 0f 00 c4 00");
    let empty_bytes = h("97 00 00 00 00 0f 10 c4 00");
    assert_golden(nil, &nil_bytes);
    assert_golden(empty, &empty_bytes);
    assert_eq!(
        Message::decode(&nil_bytes, &limits()).unwrap().payload,
        None
    );
    assert_eq!(
        Message::decode(&empty_bytes, &limits()).unwrap().payload,
        Some(&b""[..])
    );
    // A nil marker instead of an empty bin (not what msgp writes, but valid msgpack) is nil.
    let nil_marker = h("97 00 00 00 00 0f 00 c0");
    assert_eq!(
        Message::decode(&nil_marker, &limits()).unwrap().payload,
        None
    );
    let nil_marker_zero = h("97 00 00 00 00 0f 10 c0");
    assert_eq!(
        Message::decode(&nil_marker_zero, &limits())
            .unwrap()
            .payload,
        Some(&b""[..])
    );
}

#[test]
fn integers_encode_in_shortest_form() {
    let m = Message {
        mux_id: MuxId(1 << 40),
        seq: 65_536,
        deadline_ms: 300,
        handler: HandlerId(200),
        op: Op::REQUEST,
        flags: Flags::EOF,
        payload: None,
        subroute: None,
    };
    assert_golden(
        m,
        &h("97 cf 00 00 01 00 00 00 00 00 ce 00 01 00 00 cd 01 2c cc c8 0e 02 c4 00"),
    );
    let m = Message {
        mux_id: MuxId(u64::MAX),
        seq: u32::MAX,
        deadline_ms: 127,
        ..m
    };
    assert_golden(
        m,
        &h("97 cf ff ff ff ff ff ff ff ff ce ff ff ff ff 7f cc c8 0e 02 c4 00"),
    );
}

#[test]
fn every_integer_width_decodes() {
    let expected = Message {
        mux_id: MuxId(5),
        seq: 1,
        deadline_ms: 2,
        handler: HandlerId(9),
        op: Op::REQUEST,
        flags: Flags::EOF,
        payload: None,
        subroute: None,
    };
    // Each field in a different, non-minimal width: uint64, uint32, uint16, uint8, int8,
    // int16 ...
    let wide =
        h("97 cf 00 00 00 00 00 00 00 05 ce 00 00 00 01 cd 00 02 cc 09 d0 0e d1 00 02 c4 00");
    assert_eq!(Message::decode(&wide, &limits()).unwrap(), expected);
    // ... and int32, int64, positive fixint, int8, uint8, uint16.
    let wide = h("97 d2 00 00 00 05 d3 00 00 00 00 00 00 00 01 02 d0 09 cc 0e cd 00 02 c4 00");
    assert_eq!(Message::decode(&wide, &limits()).unwrap(), expected);
    // Array header in its 16-bit form.
    let wide = h("dc 00 07 05 01 02 09 0e 02 c4 00");
    assert_eq!(Message::decode(&wide, &limits()).unwrap(), expected);
    // Bin payload in its 16- and 32-bit forms.
    let bin16 = h("97 00 00 00 00 0f 00 c5 00 02 61 62");
    assert_eq!(
        Message::decode(&bin16, &limits()).unwrap().payload,
        Some(&b"ab"[..])
    );
    let bin32 = h("97 00 00 00 00 0f 00 c6 00 00 00 02 61 62");
    assert_eq!(
        Message::decode(&bin32, &limits()).unwrap().payload,
        Some(&b"ab"[..])
    );

    // Values that do not fit their field, or are negative.
    let cases = [
        (
            "97 00 cf 00 00 00 01 00 00 00 00 00 00 00 0e 02 c4 00",
            "Seq",
        ),
        (
            "97 00 00 cf 00 00 00 01 00 00 00 00 00 0e 02 c4 00",
            "DeadlineMS",
        ),
        ("97 00 00 00 cd 01 00 0e 02 c4 00", "Handler"),
        ("97 00 00 00 00 cd 01 0e 02 c4 00", "Op"),
        ("97 00 00 00 00 0e cd 01 00 c4 00", "Flags"),
        ("97 ff 00 00 00 0e 02 c4 00", "MuxID"),
        (
            "97 d3 ff ff ff ff ff ff ff ff 00 00 00 0e 02 c4 00",
            "MuxID",
        ),
    ];
    for (hex, field) in cases {
        let bytes = h(hex);
        let got = Message::decode(&bytes, &limits());
        assert_eq!(got, Err(DecodeError::IntegerOutOfRange { field }), "{hex}");
    }
    // Array lengths other than 7.
    for (hex, n) in [
        ("96 00 00 00 00 0e 02", 6),
        ("98 00 00 00 00 0e 02 c4 00 00", 8),
    ] {
        assert_eq!(
            Message::decode(&h(hex), &limits()),
            Err(DecodeError::BadArrayLength(n))
        );
    }
    // A string where an integer belongs.
    assert!(matches!(
        Message::decode(&h("97 a1 61 00 00 00 0e 02 c4 00"), &limits()),
        Err(DecodeError::UnexpectedType { marker: 0xa1, .. })
    ));
}

#[test]
fn subroute_message_without_and_with_checksum() {
    let sub = SubrouteId::new(HandlerId::TEST, "subroute/1");
    assert_eq!(sub.0.to_vec(), h(SUBROUTE_1_H78));
    let m = Message {
        mux_id: MuxId(7),
        deadline_ms: 60_000,
        handler: HandlerId::TEST,
        op: Op::REQUEST,
        flags: Flags::EOF,
        payload: Some(b"hi"),
        subroute: Some(sub),
        ..Message::default()
    };
    let mut plain = h("97 07 00 cd ea 60 4e 0e 22 c4 02 68 69");
    plain.extend(h(SUBROUTE_1_H78));
    assert_golden(m, &plain);

    let mut with_crc = h("97 07 00 cd ea 60 4e 0e 23 c4 02 68 69");
    with_crc.extend(h(SUBROUTE_1_H78));
    with_crc.extend(h("12 b6 04 4b"));
    assert_golden(
        Message {
            flags: Flags::EOF | Flags::CRC,
            ..m
        },
        &with_crc,
    );

    // Trailer problems.
    let short = &with_crc[..with_crc.len() - 5];
    assert_eq!(
        Message::decode(short, &limits()),
        Err(DecodeError::TrailerMissing { want: 36, got: 31 })
    );
    let mut long = plain.clone();
    long.push(0);
    assert_eq!(
        Message::decode(&long, &limits()),
        Err(DecodeError::TrailingBytes(1))
    );
    let no_trailer = h("97 07 00 cd ea 60 4e 0e 22 c4 02 68 69");
    assert_eq!(
        Message::decode(&no_trailer, &limits()),
        Err(DecodeError::TrailerMissing { want: 32, got: 0 })
    );
}

#[test]
fn subroute_ids() {
    // SHA-256("") = e3b0c442..., then byte 0 = handler, byte 1 = 0.
    let id = SubrouteId::new(HandlerId(9), "");
    assert_eq!(&id.0[..4], &[0x09, 0x00, 0xc4, 0x42]);
    assert_eq!(&id.0[28..], &[0x78, 0x52, 0xb8, 0x55]);
    // The subroute MinIO's stream benchmark uses.
    let id = SubrouteId::new(HandlerId::TEST, "some-subroute");
    assert_eq!(
        id.0.to_vec(),
        h(
            "4e 00 9a 66 21 c5 98 f8 aa a3 b0 f2 70 11 1b ab 3c 6c 46 3e 5d 28 86 95 9f 7c 26 e0 ac 9c 6c 48"
        )
    );
    assert_eq!(SubrouteId::zero(HandlerId(78)).0[..2], [78, 0]);
}

#[test]
fn merged_frame_of_three_messages() {
    // 1: mux 1, seq 1, MuxServerMsg, CRC|EOF, payload "a"         (14 bytes)
    // 2: mux 2, UnblockClMux, CRC, nil payload                     (13 bytes)
    // 3: connection ping, deadline 10000, flags 0, no CRC (§15.5)  (11 bytes)
    let inner1 = h("97 01 01 00 00 0a 03 c4 01 61 63 51 56 f1");
    let inner2 = h("97 02 00 00 00 0c 01 c4 00 e5 70 a1 43");
    let inner3 = h("97 00 00 cd 27 10 00 03 00 c4 00");
    let mut expected = h("97 00 03 00 00 11 00 c4 00");
    expected.extend(h("c4 0e"));
    expected.extend(&inner1);
    expected.extend(h("c4 0d"));
    expected.extend(&inner2);
    expected.extend(h("c4 0b"));
    expected.extend(&inner3);

    let msgs = [
        Message {
            mux_id: MuxId(1),
            seq: 1,
            flags: Flags::CRC | Flags::EOF,
            payload: Some(b"a"),
            ..Message::new(Op::MUX_SERVER_MSG)
        },
        Message {
            mux_id: MuxId(2),
            flags: Flags::CRC,
            ..Message::new(Op::UNBLOCK_CL_MUX)
        },
        Message {
            deadline_ms: 10_000,
            ..Message::new(Op::PING)
        },
    ];
    for (m, inner) in msgs.iter().zip([&inner1, &inner2, &inner3]) {
        assert_eq!(&m.encode_to_vec().unwrap(), inner);
    }

    // Built from encoded messages ...
    let mut built = Vec::new();
    encode_merged(&mut built, [&inner1, &inner2, &inner3]).unwrap();
    assert_eq!(built, expected);
    // ... and encoded in place.
    let mut in_place = Vec::new();
    put_merged_header(&mut in_place, 3);
    for m in &msgs {
        m.encode_merged_entry(&mut in_place).unwrap();
    }
    assert_eq!(in_place, expected);

    let Frame::Merged(merged) = Frame::decode(&expected, &limits()).unwrap() else {
        panic!("expected a merged frame");
    };
    assert_eq!(merged.len(), 3);
    let raw: Vec<&[u8]> = merged.raw_entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(raw, [&inner1[..], &inner2[..], &inner3[..]]);
    // Zero-copy: entries point into the frame.
    let range = expected.as_ptr_range();
    assert!(raw.iter().all(|e| range.contains(&e.as_ptr())));
    let decoded: Vec<Message<'_>> = merged.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded, msgs);

    // A corrupted inner checksum is reported for that entry.
    let mut bad = expected.clone();
    bad[9 + 2 + 9] ^= 0xff; // the payload byte of inner 1
    let Frame::Merged(merged) = Frame::decode(&bad, &limits()).unwrap() else {
        panic!()
    };
    assert!(matches!(
        merged.iter().next(),
        Some(Err(DecodeError::ChecksumMismatch { .. }))
    ));
}

const ID: &str = "01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10";
/// Time extension for 1700000000 s + 123456789 ns.
const TIME_EXT: &str = "c7 0c 05 00 00 00 00 65 53 f1 00 07 5b cd 15";
const TIME: GridTime = GridTime {
    unix_secs: 1_700_000_000,
    nanos: 123_456_789,
};

fn id() -> [u8; 16] {
    h(ID).try_into().unwrap()
}

#[test]
fn connect_request() {
    let req = ConnectRequest {
        id: id(),
        host: "http://127.0.0.1:9001",
        time: TIME,
        token: "debug",
    };
    let expected = [
        "84",
        "a2 49 44",
        "c4 10",
        ID,
        "a4 48 6f 73 74",
        "b5 68 74 74 70 3a 2f 2f 31 32 37 2e 30 2e 30 2e 31 3a 39 30 30 31",
        "a4 54 69 6d 65",
        TIME_EXT,
        "a5 54 6f 6b 65 6e",
        "a5 64 65 62 75 67",
    ]
    .map(h)
    .concat();
    let mut out = Vec::new();
    req.encode(&mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(ConnectRequest::decode(&expected).unwrap(), req);

    // The whole handshake frame: Op Connect, flags 0, payload = the map
    // (1 + 5+16 + 5+22 + 5+15 + 6+6 = 81 bytes).
    let frame = Message {
        payload: Some(&expected),
        ..Message::new(Op::CONNECT)
    };
    let mut want = h("97 00 00 00 00 01 00 c4 51");
    want.extend(&expected);
    assert_eq!(frame.encode_to_vec().unwrap(), want);

    // Fields in another order plus an unknown field decode the same.
    let reordered = [
        "85",
        "a5 54 6f 6b 65 6e",
        "a5 64 65 62 75 67",
        "a7 55 6e 6b 6e 6f 77 6e", // "Unknown": {"a": [1, 2]}
        "81 a1 61 92 01 02",
        "a4 54 69 6d 65",
        TIME_EXT,
        "a4 48 6f 73 74",
        "b5 68 74 74 70 3a 2f 2f 31 32 37 2e 30 2e 30 2e 31 3a 39 30 30 31",
        "a2 49 44",
        "c4 10",
        ID,
    ]
    .map(h)
    .concat();
    assert_eq!(ConnectRequest::decode(&reordered).unwrap(), req);
}

#[test]
fn connect_response() {
    let accepted = ConnectResponse {
        id: id(),
        accepted: true,
        rejected_reason: Cow::Borrowed(""),
    };
    let expected = [
        "83",
        "a2 49 44 c4 10",
        ID,
        "a8 41 63 63 65 70 74 65 64 c3",
        "ae 52 65 6a 65 63 74 65 64 52 65 61 73 6f 6e a0",
    ]
    .map(h)
    .concat();
    let mut out = Vec::new();
    accepted.encode(&mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(ConnectResponse::decode(&expected).unwrap(), accepted);

    let rejected = ConnectResponse {
        id: id(),
        accepted: false,
        rejected_reason: Cow::Borrowed("unknown incoming host"),
    };
    let expected = [
        "83",
        "a2 49 44 c4 10",
        ID,
        "a8 41 63 63 65 70 74 65 64 c2",
        "ae 52 65 6a 65 63 74 65 64 52 65 61 73 6f 6e",
        "b5 75 6e 6b 6e 6f 77 6e 20 69 6e 63 6f 6d 69 6e 67 20 68 6f 73 74",
    ]
    .map(h)
    .concat();
    let mut out = Vec::new();
    rejected.encode(&mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(ConnectResponse::decode(&expected).unwrap(), rejected);
}

#[test]
fn ping_and_pong() {
    let ping = PingMsg { t: TIME };
    let expected = [&*h("81 a1 74"), &h(TIME_EXT)].concat();
    let mut out = Vec::new();
    ping.encode(&mut out);
    assert_eq!(out, expected);
    assert_eq!(PingMsg::decode(&expected).unwrap(), ping);
    // Empty ping payloads (Go mux pings) read as Go's zero time.
    assert_eq!(PingMsg::decode(&[]).unwrap().t, GridTime::GO_ZERO);

    // A connection ping frame as the writer sends it: mux 0, DeadlineMS 10000, flags 0.
    let frame = Message {
        deadline_ms: 10_000,
        payload: Some(&expected),
        ..Message::new(Op::PING)
    };
    let mut want = h("97 00 00 cd 27 10 00 03 00 c4 12");
    want.extend(&expected);
    assert_eq!(frame.encode_to_vec().unwrap(), want);

    let pong = PongMsg {
        not_found: false,
        err: None,
        t: TIME,
    };
    let expected = [&*h("83 a2 6e 66 c2 a1 65 c0 a1 74"), &h(TIME_EXT)].concat();
    let mut out = Vec::new();
    pong.encode(&mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(PongMsg::decode(&expected).unwrap(), pong);

    // Pong to an empty Go ping (§15.2): Go's zero time, seconds -62135596800.
    let go_zero = PongMsg {
        not_found: true,
        err: Some(Cow::Borrowed("x")),
        t: GridTime::GO_ZERO,
    };
    let expected =
        h("83 a2 6e 66 c3 a1 65 a1 78 a1 74 c7 0c 05 ff ff ff f1 88 6e 09 00 00 00 00 00");
    let mut out = Vec::new();
    go_zero.encode(&mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(PongMsg::decode(&expected).unwrap(), go_zero);
}

#[test]
fn mux_connect_error() {
    let e = MuxConnectError {
        error: Cow::Borrowed("Invalid Handler for type: CheckParts3"),
    };
    let expected = [
        "81 a5 45 72 72 6f 72",
        "d9 25",
        "49 6e 76 61 6c 69 64 20 48 61 6e 64 6c 65 72 20 66 6f 72 20 74 79 70 65 3a 20",
        "43 68 65 63 6b 50 61 72 74 73 33",
    ]
    .map(h)
    .concat();
    let mut out = Vec::new();
    e.encode(&mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(MuxConnectError::decode(&expected).unwrap(), e);
    // Invalid UTF-8 in an error text is replaced, not rejected.
    let lossy = h("81 a5 45 72 72 6f 72 a2 61 ff");
    assert_eq!(MuxConnectError::decode(&lossy).unwrap().error, "a\u{fffd}");
}
