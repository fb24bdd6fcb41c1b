//! Merged frames (`OpMerged`): `Frame::decode` then iteration, on arbitrary bytes; and the
//! builders (`encode_merged`, `put_merged_header` + `encode_merged_entry`) on entries cut
//! from the input.
//!
//! Input: one selector byte. Bit 7 clear: the rest is a received frame, decoded with the
//! limits `rgrid_fuzz::limits_for` picks. Bit 7 set: the rest is cut into entries (a length
//! byte, then that many bytes, repeated) that are merged, and the merged frame must decode
//! back to exactly those entries.
//!
//! Checked for a decoded container: iteration stops (at most count + 1 items, nothing after
//! an error), every inner message is borrowed from the frame and is not itself merged,
//! `iter()` and `raw_entries()` agree, `size_hint` holds, and a fully valid container
//! rebuilt from its raw entries or from its decoded messages decodes to the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgrid_fuzz::{is_within, limits_for};
use rgrid_proto::{
    DecodeError, DecodeLimits, Frame, Merged, Message, Op, encode_merged, put_merged_header,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 0x80 == 0 {
        decode_received(rest, &limits_for(sel, rest.len()));
    } else {
        build_and_decode(rest);
    }
});

fn decode_received(frame: &[u8], limits: &DecodeLimits) {
    let merged = match Frame::decode(frame, limits) {
        Ok(Frame::Merged(m)) => m,
        Ok(Frame::Message(m)) => {
            assert_ne!(m.op, Op::MERGED);
            assert_eq!(Message::decode(frame, limits), Ok(m));
            return;
        }
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(frame.len() <= limits.max_message_size);
    // The container's count was checked against the bytes present.
    assert!(u64::from(merged.len()) * 11 <= frame.len() as u64);

    let (messages, complete) = check_iteration(&merged, frame, limits);
    if !complete {
        return;
    }

    // Rebuilt from the raw entries: the same messages.
    let raw: Vec<&[u8]> = merged
        .raw_entries()
        .map(|r| r.unwrap_or_default())
        .collect();
    let mut rebuilt = Vec::new();
    if let Err(e) = encode_merged(&mut rebuilt, &raw) {
        panic!("rebuilding a decoded merged frame failed: {e}");
    }
    // Shortest forms: only a nil container payload (c0) grows, to an empty bin (c4 00).
    assert!(rebuilt.len() <= frame.len() + 1);
    assert_eq!(decode_all(&rebuilt), messages);

    // Rebuilt in place from the decoded messages: the same messages, with the flags the
    // encoder puts on the wire.
    let mut in_place = Vec::new();
    put_merged_header(&mut in_place, merged.len());
    for m in &messages {
        if let Err(e) = m.encode_merged_entry(&mut in_place) {
            panic!("re-encoding an inner message failed: {e}");
        }
    }
    let wire: Vec<Message<'_>> = messages
        .iter()
        .map(|m| Message {
            flags: m.wire_flags(),
            ..*m
        })
        .collect();
    assert_eq!(decode_all(&in_place), wire);
}

/// Iterates `merged` both ways and checks they agree. Returns the decoded messages and
/// whether every declared entry decoded with nothing left over.
fn check_iteration<'a>(
    merged: &Merged<'a>,
    frame: &'a [u8],
    limits: &DecodeLimits,
) -> (Vec<Message<'a>>, bool) {
    let count = merged.len() as usize;
    let mut iter = merged.iter();
    let (_, upper) = iter.size_hint();
    let Some(upper) = upper else {
        panic!("merged iterator without an upper bound")
    };
    assert!(upper <= count + 1);

    let mut items = Vec::new();
    for item in iter.by_ref() {
        assert!(items.len() < upper, "more items than size_hint promised");
        assert!(
            items.last().is_none_or(Result::is_ok),
            "an item after an error"
        );
        if let Ok(m) = &item {
            assert_ne!(m.op, Op::MERGED);
            assert!(is_within(m.payload_bytes(), frame));
        }
        items.push(item);
    }
    // Fused once it has ended.
    assert!(iter.next().is_none());
    assert!(items.len() <= count + 1);

    // iter() is raw_entries() with each entry decoded by Message::decode under the same
    // limits, stopping at the first error.
    let raw: Vec<Result<&[u8], DecodeError>> = merged.raw_entries().collect();
    let raw_ok = raw.iter().take_while(|r| r.is_ok()).count();
    assert!(raw.len() <= raw_ok + 1, "raw entries go on after an error");
    for (i, item) in items.iter().enumerate() {
        let expected = match raw.get(i) {
            Some(Ok(entry)) => {
                assert!(is_within(entry, frame));
                Message::decode(entry, limits)
            }
            Some(Err(e)) => Err(e.clone()),
            None => panic!("iter() yielded item {i} but raw_entries() ended"),
        };
        assert_eq!(item, &expected);
    }
    let failed = items.last().is_some_and(Result::is_err);
    if !failed {
        assert_eq!(raw.len(), items.len());
    }
    let messages: Vec<Message<'a>> = items.into_iter().filter_map(Result::ok).collect();
    let complete = !failed && messages.len() == count;
    assert!(failed || complete, "iteration ended early without an error");
    (messages, complete)
}

/// Decodes a merged frame fully; panics on any error.
fn decode_all(frame: &[u8]) -> Vec<Message<'_>> {
    match Frame::decode(frame, &DecodeLimits::default()) {
        Ok(Frame::Merged(m)) => match m.iter().collect::<Result<Vec<_>, DecodeError>>() {
            Ok(v) => v,
            Err(e) => panic!("rebuilt merged frame does not iterate: {e}"),
        },
        other => panic!("rebuilt merged frame does not decode as merged: {other:?}"),
    }
}

/// Cuts `input` into entries (length byte + bytes), merges them and checks the result.
fn build_and_decode(mut input: &[u8]) {
    let mut entries: Vec<&[u8]> = Vec::new();
    while let Some((&len, rest)) = input.split_first() {
        let (entry, tail) = rest.split_at(usize::from(len).min(rest.len()));
        entries.push(entry);
        input = tail;
    }
    let mut frame = Vec::new();
    if let Err(e) = encode_merged(&mut frame, &entries) {
        panic!("encode_merged failed on small entries: {e}");
    }
    match Frame::decode(&frame, &DecodeLimits::default()) {
        Ok(Frame::Merged(m)) => {
            assert_eq!(m.len() as usize, entries.len());
            let raw: Result<Vec<&[u8]>, DecodeError> = m.raw_entries().collect();
            assert_eq!(raw.as_deref(), Ok(&entries[..]));
            // Each decoded inner message is what Message::decode says about its entry.
            for (item, entry) in m.iter().zip(&entries) {
                let direct = Message::decode(entry, &DecodeLimits::default());
                assert_eq!(item, direct);
                if item.is_err() {
                    break;
                }
            }
        }
        Ok(Frame::Message(msg)) => panic!("encode_merged produced a single message: {msg:?}"),
        Err(DecodeError::BadMergedCount { .. }) => {
            // Entries shorter than the smallest message: the count check refuses the frame
            // before any entry is read. Only possible when some entry is that short.
            assert!(entries.iter().any(|e| e.len() < 9));
        }
        Err(e) => panic!("encode_merged produced an undecodable frame: {e}"),
    }
}
