//! Property tests: encode→decode round trips for arbitrary messages, merged frames and control
//! payloads; arbitrary and mutated input never panics and always gives a typed result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::borrow::Cow;

use proptest::prelude::*;
use rgrid_proto::{
    ConnectRequest, ConnectResponse, DecodeLimits, Flags, Frame, GridTime, Message,
    MuxConnectError, PingMsg, PongMsg, encode_merged,
};
use support::message;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// Runs every decoder over `data`; none may panic.
fn decode_everything(data: &[u8], limits: &DecodeLimits) {
    let _ = Message::decode(data, limits);
    if let Ok(Frame::Merged(m)) = Frame::decode(data, limits) {
        for _ in m.iter() {}
        for _ in m.raw_entries() {}
    }
    let _ = ConnectRequest::decode(data);
    let _ = ConnectResponse::decode(data);
    let _ = MuxConnectError::decode(data);
    let _ = PingMsg::decode(data);
    let _ = PongMsg::decode(data);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn message_round_trips(m in message()) {
        let msg = m.view();
        let bytes = msg.encode_to_vec().unwrap();
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        let decoded = Message::decode(&bytes, &limits()).unwrap();
        prop_assert_eq!(decoded, Message { flags: msg.wire_flags(), ..msg });
        // Nil and empty payloads survive as they were.
        prop_assert_eq!(decoded.payload.is_none(), msg.payload.is_none());
        // Through the frame decoder too.
        match Frame::decode(&bytes, &limits()).unwrap() {
            Frame::Message(f) => prop_assert_eq!(f, decoded),
            Frame::Merged(_) => prop_assert!(false, "single message decoded as merged"),
        }
        // Re-encoding the decoded message gives the same bytes.
        prop_assert_eq!(decoded.encode_to_vec().unwrap(), bytes);
    }

    #[test]
    fn merged_round_trips(msgs in proptest::collection::vec(message(), 0..8)) {
        let views: Vec<Message<'_>> = msgs.iter().map(|m| m.view()).collect();
        let encoded: Vec<Vec<u8>> = views.iter().map(|m| m.encode_to_vec().unwrap()).collect();
        let mut frame = Vec::new();
        encode_merged(&mut frame, &encoded).unwrap();
        let Ok(Frame::Merged(merged)) = Frame::decode(&frame, &limits()) else {
            return Err(TestCaseError::fail("not a merged frame"));
        };
        prop_assert_eq!(merged.len() as usize, views.len());
        let decoded: Vec<Message<'_>> = merged.iter().collect::<Result<_, _>>().unwrap();
        let expected: Vec<Message<'_>> =
            views.iter().map(|m| Message { flags: m.wire_flags(), ..*m }).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn checksummed_messages_detect_corruption(
        m in message(),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let msg = Message { flags: m.view().flags | Flags::CRC, ..m.view() };
        let mut bytes = msg.encode_to_vec().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A single flipped bit never decodes into a different message.
        if let Ok(d) = Message::decode(&bytes, &limits()) {
            prop_assert_eq!(d, Message { flags: msg.wire_flags(), ..msg });
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&data, &limits());
        decode_everything(&data, &DecodeLimits::new(16));
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = m.view().encode_to_vec().unwrap();
        for (pos, byte, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = pos.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        decode_everything(&bytes, &limits());
        let mut merged = Vec::new();
        encode_merged(&mut merged, [&bytes]).unwrap();
        decode_everything(&merged, &limits());
    }

    #[test]
    fn over_limit_is_rejected_before_decoding(m in message(), limit in 0usize..400) {
        let bytes = m.view().encode_to_vec().unwrap();
        let res = Message::decode(&bytes, &DecodeLimits::new(limit));
        if bytes.len() > limit {
            let too_large = matches!(res, Err(rgrid_proto::DecodeError::TooLarge { .. }));
            prop_assert!(too_large, "{:?}", res);
        } else {
            prop_assert!(res.is_ok());
        }
    }

    #[test]
    fn control_payloads_round_trip(
        id in any::<[u8; 16]>(),
        host in ".{0,80}",
        token in ".{0,300}",
        secs in any::<i64>(),
        nanos in 0u32..1_000_000_000,
        accepted in any::<bool>(),
        reason in ".{0,40}",
        err in proptest::option::of(".{0,40}"),
    ) {
        let time = GridTime { unix_secs: secs, nanos };
        let req = ConnectRequest { id, host: &host, time, token: &token };
        let mut buf = Vec::new();
        req.encode(&mut buf).unwrap();
        prop_assert_eq!(ConnectRequest::decode(&buf).unwrap(), req);

        let resp = ConnectResponse { id, accepted, rejected_reason: Cow::Borrowed(&reason) };
        buf.clear();
        resp.encode(&mut buf).unwrap();
        prop_assert_eq!(ConnectResponse::decode(&buf).unwrap(), resp);

        let e = MuxConnectError { error: Cow::Borrowed(&reason) };
        buf.clear();
        e.encode(&mut buf).unwrap();
        prop_assert_eq!(MuxConnectError::decode(&buf).unwrap(), e);

        let ping = PingMsg { t: time };
        buf.clear();
        ping.encode(&mut buf);
        prop_assert_eq!(PingMsg::decode(&buf).unwrap(), ping);

        let pong = PongMsg { not_found: accepted, err: err.as_deref().map(Cow::Borrowed), t: time };
        buf.clear();
        pong.encode(&mut buf).unwrap();
        prop_assert_eq!(PongMsg::decode(&buf).unwrap(), pong);
    }
}
