//! `Message::decode` (and `Frame::decode` for single messages) on arbitrary bytes.
//!
//! Input: one selector byte choosing the [`DecodeLimits`] (see `rgrid_fuzz::limits_for`), then
//! the frame. Checked on every input: no panic; `Frame::decode` agrees with `Message::decode`.
//! Checked on every frame that decodes: the limits held, the payload is borrowed from the
//! frame, the flag-derived fields are consistent, the checksum is right, re-encoding decodes
//! to the same message (`decode(encode(m)) == m` with the flags the encoder puts on the wire),
//! `encoded_len` is exact, encoding is canonical and idempotent, and the frame with one byte
//! removed or added no longer decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgrid_fuzz::{is_within, limits_for};
use rgrid_proto::{
    CRC_LEN, DecodeError, DecodeLimits, Flags, Frame, Message, Op, SubrouteId, checksum,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let limits = limits_for(sel, frame.len());
    let decoded = Message::decode(frame, &limits);
    let as_frame = Frame::decode(frame, &limits);

    let m = match decoded {
        Ok(m) => m,
        Err(DecodeError::UnexpectedMerged) => {
            // Only a container is refused this way, and Frame::decode never calls it a
            // single message.
            assert!(!matches!(as_frame, Ok(Frame::Message(_))));
            return;
        }
        Err(e) => {
            // Errors are rendered in logs; rendering must not panic.
            let _ = e.to_string();
            // Before the op is known the two decoders take the same path.
            match as_frame {
                Err(fe) => assert_eq!(fe, e),
                Ok(f) => panic!("Message::decode failed with {e:?} but Frame::decode gave {f:?}"),
            }
            return;
        }
    };

    match as_frame {
        Ok(Frame::Message(fm)) => assert_eq!(fm, m),
        other => panic!("Frame::decode disagrees with Message::decode: {other:?} vs {m:?}"),
    }

    // Limits and zero-copy.
    assert!(frame.len() <= limits.max_message_size);
    assert!(m.payload_bytes().len() <= limits.max_message_size);
    assert!(is_within(m.payload_bytes(), frame));
    assert!(m.op.is_known() && m.op != Op::MERGED);

    // Flag-derived fields.
    assert_eq!(m.subroute.is_some(), m.flags.contains(Flags::SUBROUTE));
    if m.payload == Some(&[]) {
        assert!(m.flags.contains(Flags::PAYLOAD_IS_ZERO));
    }
    if let Some(sub) = &m.subroute {
        let trailer_start = frame.len()
            - SubrouteId::LEN
            - if m.flags.contains(Flags::CRC) {
                CRC_LEN
            } else {
                0
            };
        assert_eq!(
            &frame[trailer_start..trailer_start + SubrouteId::LEN],
            &sub.0
        );
    }
    if m.flags.contains(Flags::CRC) {
        let (body, crc) = frame.split_at(frame.len() - CRC_LEN);
        assert_eq!(checksum(body).to_le_bytes(), crc);
    }

    // Round trip.
    let encoded = match m.encode_to_vec() {
        Ok(v) => v,
        Err(e) => panic!("a decoded message must re-encode: {e}"),
    };
    assert_eq!(encoded.len(), m.encoded_len());
    // Shortest forms everywhere: only a nil payload (c0) grows, to an empty bin (c4 00).
    assert!(encoded.len() <= frame.len() + 1);
    let wire = Message {
        flags: m.wire_flags(),
        ..m
    };
    match Message::decode(&encoded, &DecodeLimits::new(encoded.len())) {
        Ok(back) => assert_eq!(back, wire),
        Err(e) => panic!("re-encoded message does not decode: {e}; {m:?}"),
    }
    // Encoding is idempotent and appends without touching what was there.
    let mut again = vec![0xee];
    if let Err(e) = wire.encode(&mut again) {
        panic!("re-encode failed: {e}");
    }
    assert_eq!(&again[1..], &encoded[..]);

    // The frame is exactly the message: a byte less or a byte more does not decode.
    if let Some((_, shorter)) = frame.split_last() {
        assert!(Message::decode(shorter, &limits).is_err());
    }
    let mut longer = frame.to_vec();
    longer.push(0);
    assert!(Message::decode(&longer, &DecodeLimits::default()).is_err());
});
