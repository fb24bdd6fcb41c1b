//! Writes the seed corpus of every fuzz target into `<dir>/<target>/seed-*` (default dir
//! `fuzz/corpus`). `run.sh` calls it before fuzzing; the corpus directory is not checked in
//! (it grows while fuzzing), these seeds are.
//!
//! The seeds are the golden examples of the spec and of the crates' tests: the hand-built
//! request of spec §3.3, one message per op, a subroute with a checksum, merged frames, the
//! handshake maps, MinIO's helper-type encodings, and JWTs signed with the secret of the
//! `jwt_verify` target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rgrid::typed::{self, Array, Json, Mss, NilBytes, Payload, UrlValues};
use rgrid::{GridJwt, MinioJwt, TokenSource};
use rgrid_fuzz::{JWT_ACCESS_KEY, JWT_LOCAL, JWT_REMOTE, JWT_SECRET, Nested};
use rgrid_proto::{
    ConnectRequest, ConnectResponse, Flags, GridTime, HandlerId, Message, MuxConnectError, MuxId,
    Op, PingMsg, PongMsg, SubrouteId, encode_merged,
};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);

    let frames = frames();
    // frame_decode and merged (bit 7 clear): a limits selector byte, then a frame.
    let mut frame_seeds: Vec<Vec<u8>> = Vec::new();
    for f in &frames {
        frame_seeds.push(prefixed(0, f));
    }
    // The spec example with "exactly the frame length" as the limit.
    frame_seeds.push(prefixed(1, &frames[0]));
    write(&dir, "frame_decode", &frame_seeds);

    let mut merged_seeds = Vec::new();
    let singles: Vec<&Vec<u8>> = frames.iter().take(4).collect();
    let mut m = Vec::new();
    encode_merged(&mut m, &singles).unwrap();
    merged_seeds.push(prefixed(0, &m));
    let mut m = Vec::new();
    encode_merged(&mut m, [&frames[0]]).unwrap();
    merged_seeds.push(prefixed(0, &m));
    // Builder mode (bit 7 set): length-prefixed entries.
    let mut built = vec![0x80];
    for f in frames.iter().take(3) {
        built.push(u8::try_from(f.len()).unwrap());
        built.extend_from_slice(f);
    }
    merged_seeds.push(built);
    write(&dir, "merged", &merged_seeds);

    write(&dir, "handshake", &handshake());
    write(&dir, "typed_decode", &typed_seeds());

    // Command bytes for the pair driver (crates/rgrid-proto/tests/pair/fuzz.rs): four bytes
    // of setup, then commands. An open, a pump, sends, reads, a handler's messages and end,
    // releases, a step to the next timer.
    let mux: Vec<Vec<u8>> = vec![
        vec![0; 16],
        (0u8..=255).collect(),
        [
            [1u8, 2, 3, 4].as_slice(),
            &[4, 0, 0, 0, 0, 0, 31, 0],
            &[6, 0, 0, 3, 9, 31, 0, 20, 1, 0, 17, 1, 0, 2, 7, 31, 0],
            &[10, 0, 0, 17, 1, 0, 5, 7, 31, 0, 10, 0, 0, 24, 0, 1, 31, 0],
            &[17, 1, 0, 0, 31, 0, 14, 0, 40, 0, 22, 1, 40, 0, 31, 0],
        ]
        .concat(),
    ];
    write(&dir, "mux_state", &mux);
    write(&dir, "jwt_verify", &jwt_seeds());
}

/// Tokens signed with the target's secret (which verify, so the fuzzer starts past the
/// signature check) and a few that fail at each earlier step.
fn jwt_seeds() -> Vec<Vec<u8>> {
    let grid = GridJwt::new(JWT_SECRET, JWT_REMOTE).unwrap();
    let minio = MinioJwt::new(JWT_ACCESS_KEY, JWT_SECRET).unwrap();
    let grid_token = grid.token_for(JWT_LOCAL);
    let minio_token = minio.token();
    let mut parts = grid_token.split('.');
    let (header, claims) = (parts.next().unwrap(), parts.next().unwrap());
    // MinIO's golden node token (access key and secret minioadmin, see jwt.rs's tests).
    let golden = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.\
        eyJhY2Nlc3NLZXkiOiJtaW5pb2FkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJzdWIiOiJtaW5pb2FkbWluIn0.\
        sz1teB0uxxGT_GIoAHQ_iRazI2ATyKGAi4diiR56JaYUP_vnYD10y0fAd1EawWy7fmQOVQYPIkiPNZlY4DxXuA";
    vec![
        grid_token.as_bytes().to_vec(),
        minio_token.into_bytes(),
        golden.as_bytes().to_vec(),
        // Header and claims without a signature; an empty signature.
        format!("{header}.{claims}").into_bytes(),
        format!("{header}.{claims}.").into_bytes(),
        // alg none: {"alg":"none"}.
        format!("eyJhbGciOiJub25lIn0.{claims}.").into_bytes(),
        // Not UTF-8 in the claims segment.
        [header.as_bytes(), b".\xff\xfe.", b"AAAA"].concat(),
    ]
}

/// Golden frames (golden.rs and spec §3.3).
fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Spec §3.3: 97 05 00 cd ea 60 09 0e 03 c4 03 61 62 63 31 b4 cf c5
    out.push(vec![
        0x97, 0x05, 0x00, 0xcd, 0xea, 0x60, 0x09, 0x0e, 0x03, 0xc4, 0x03, 0x61, 0x62, 0x63, 0x31,
        0xb4, 0xcf, 0xc5,
    ]);
    // A connection ping: 97 00 00 00 00 03 00 c4 00
    out.push(Message::new(Op::PING).encode_to_vec().unwrap());
    let sub = SubrouteId::new(HandlerId(78), "subroute/1");
    let payload = [7u8; 40];
    let msgs = [
        Message {
            mux_id: MuxId(1),
            seq: 2,
            flags: Flags::EOF,
            ..Message::new(Op::MUX_CLIENT_MSG)
        },
        Message {
            mux_id: MuxId(u64::MAX),
            seq: u32::MAX,
            deadline_ms: 60_000,
            handler: HandlerId(78),
            flags: Flags::CRC,
            payload: Some(&payload),
            subroute: Some(sub),
            ..Message::new(Op::REQUEST)
        },
        Message {
            payload: Some(&[]),
            flags: Flags::PAYLOAD_IS_ERR | Flags::CRC,
            ..Message::new(Op::RESPONSE)
        },
        Message {
            mux_id: MuxId(300),
            handler: HandlerId::DISK_INFO,
            flags: Flags::STATELESS,
            payload: Some(b"\x81\xa1t\xc7\x0c\x05\x00\x00\x00\x00\x65\x53\xf1\x00\x00\x00\x00\x00"),
            ..Message::new(Op::CONNECT_MUX)
        },
    ];
    for m in msgs {
        out.push(m.encode_to_vec().unwrap());
    }
    out
}

fn handshake() -> Vec<Vec<u8>> {
    let t = GridTime {
        unix_secs: 1_700_000_000,
        nanos: 123_456_789,
    };
    let mut out = Vec::new();
    let mut v = Vec::new();
    ConnectRequest {
        id: [0x11; 16],
        host: "http://node1:9000",
        time: t,
        token: "Bearer abc",
    }
    .encode(&mut v)
    .unwrap();
    out.push(v);
    let mut v = Vec::new();
    ConnectResponse {
        id: [0x22; 16],
        accepted: false,
        rejected_reason: Cow::Borrowed("clock skew"),
    }
    .encode(&mut v)
    .unwrap();
    out.push(v);
    let mut v = Vec::new();
    MuxConnectError {
        error: Cow::Borrowed("unknown handler"),
    }
    .encode(&mut v)
    .unwrap();
    out.push(v);
    let mut v = Vec::new();
    PingMsg { t }.encode(&mut v);
    out.push(v);
    let mut v = Vec::new();
    PongMsg {
        not_found: true,
        err: Some(Cow::Borrowed("remote terminated call")),
        t: GridTime::GO_ZERO,
    }
    .encode(&mut v)
    .unwrap();
    out.push(v);
    // Standard timestamps (ext -1, 4 and 8 byte forms) and an unknown field to skip.
    out.push(vec![0x81, 0xa1, b't', 0xd6, 0xff, 0, 0, 0x03, 0xe8]);
    out.push(vec![
        0x82, 0xa1, b'X', 0x92, 0x01, 0x81, 0xa1, b'y', 0xc0, 0xa8, b'A', b'c', b'c', b'e', b'p',
        b't', b'e', b'd', 0xc3,
    ]);
    out
}

/// Selector byte (see typed_decode.rs) + the value's encoding.
fn typed_seeds() -> Vec<Vec<u8>> {
    fn enc<T: Payload>(sel: u8, v: &T) -> Vec<u8> {
        prefixed(sel, &typed::encode(v).unwrap())
    }
    let mss: Mss = [("abc", "def"), ("ghi", "jkl")].into_iter().collect();
    let mut q = UrlValues::default();
    q.add("a", "1");
    q.add("a", "2");
    let json: BTreeMap<String, i64> = [("x".to_string(), -1), ("y".to_string(), 2)].into();
    let hand_nested = b"\x8d\xa4name\xa1n\xa2id\x01\xa5delta\xff\xa4flag\xc3\xa3raw\xc4\x01z\
        \xa4data\xc0\xa4meta\x80\xa5query\x80\xa4list\x91\xc4\x00\xa4json\xc4\x02{}\
        \xa3opt\xc0\xa8children\x90\xa4next\xc0";
    typed::decode::<Nested>(hand_nested).expect("hand-written Nested seed decodes");
    vec![
        enc(0, &mss),
        enc(0, &Mss::nil()),
        enc(1, &NilBytes::new(&b"abc123123123"[..])),
        enc(1, &NilBytes::nil()),
        enc(2, &q),
        enc(3, &Json(Some(vec![Some("a".to_string()), None]))),
        enc(4, &Json(Some(json))),
        enc(5, &Array(Some(vec![Mss::nil(), Mss::new()]))),
        enc(
            6,
            &Array(Some(vec![Array(Some(vec![1u32, 300])), Array(None)])),
        ),
        prefixed(7, b"anything"),
        enc(8, &nested()),
        // The same shape written by hand, as a Go peer might: every field, in Go's order.
        prefixed(8, hand_nested),
        enc(
            9,
            &(
                7u8,
                "s".to_string(),
                Some(NilBytes::new(&b"b"[..])),
                vec![Mss::new()],
            ),
        ),
    ]
}

/// A two-level `Nested` with every field set.
fn nested() -> Nested {
    let leaf = |name: &str| Nested {
        name: name.to_string(),
        id: 300,
        delta: -5,
        flag: false,
        raw: b"raw".to_vec(),
        data: NilBytes::new(&b"data"[..]),
        meta: [("k", "v")].into_iter().collect(),
        query: UrlValues::default(),
        list: Array(Some(vec![NilBytes::nil(), NilBytes::new(&b"x"[..])])),
        json: Json(Some([("n".to_string(), vec![1, -2])].into())),
        opt: Some(9),
        children: Vec::new(),
        next: None,
    };
    let mut root = leaf("root");
    root.children.push(leaf("child"));
    root.next = Some(Box::new(leaf("next")));
    root
}

fn prefixed(sel: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 1);
    v.push(sel);
    v.extend_from_slice(body);
    v
}

fn write(dir: &Path, target: &str, seeds: &[Vec<u8>]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        fs::write(d.join(format!("seed-{i:02}")), s).unwrap();
    }
}
