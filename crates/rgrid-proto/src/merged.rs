//! Merged frames (`OpMerged`, spec §3.7) and frame-level decoding.
//!
//! A merged frame is one websocket message holding several protocol messages: a container
//! message with op [`Op::MERGED`], mux 0, flags 0, a nil payload and `Seq` = N, followed by N
//! msgpack bin values, each a complete encoded message (with its own subroute and checksum
//! trailers). The container itself carries no checksum when MinIO writes it; inner messages
//! may or may not (connection pings have none).

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::message::{
    DecodeLimits, MIN_MESSAGE_LEN, Message, apply_trailer, decode_tuple, verify_crc,
};
use crate::msgpack::{self, Reader};
use crate::op::{Flags, Op};

/// Appends the container header of a merged frame holding `count` messages.
///
/// Follow it with exactly `count` entries written by [`put_merged_entry`] or
/// [`Message::encode_merged_entry`].
pub fn put_merged_header<B: BufMut>(out: &mut B, count: u32) {
    // 97 MuxID=0 Seq=count DeadlineMS=0 Handler=0 Op=17 Flags=0 Payload=c4 00
    out.put_u8(0x97);
    out.put_u8(0);
    msgpack::put_uint(out, u64::from(count));
    out.put_slice(&[0, 0, Op::MERGED.0, 0, 0xc4, 0]);
}

/// Appends one already-encoded message as an entry of a merged frame.
pub fn put_merged_entry<B: BufMut>(out: &mut B, encoded: &[u8]) -> Result<(), EncodeError> {
    msgpack::put_bin(out, encoded)
}

/// Appends a complete merged frame holding the given encoded messages.
///
/// The count is taken from the iterator's exact length. Nothing is written if the batch or an
/// entry is too large for msgpack lengths.
pub fn encode_merged<B, I, T>(out: &mut B, messages: I) -> Result<(), EncodeError>
where
    B: BufMut,
    I: IntoIterator<Item = T>,
    I::IntoIter: ExactSizeIterator + Clone,
    T: AsRef<[u8]>,
{
    let iter = messages.into_iter();
    let count = msgpack::len_u32("merged batch", iter.len())?;
    for m in iter.clone() {
        msgpack::len_u32("merged entry", m.as_ref().len())?;
    }
    put_merged_header(out, count);
    for m in iter {
        put_merged_entry(out, m.as_ref())?;
    }
    Ok(())
}

/// A received frame: one message, or a merged container of several.
#[derive(Clone, Copy, Debug)]
pub enum Frame<'a> {
    /// A single message.
    Message(Message<'a>),
    /// A merged container; iterate it to get the inner messages.
    Merged(Merged<'a>),
}

impl<'a> Frame<'a> {
    /// Decodes one received websocket message.
    ///
    /// A merged container is validated (size, declared count against the bytes present,
    /// checksum if flagged, no subroute, no payload) but its entries are decoded lazily by
    /// [`Merged::iter`].
    pub fn decode(data: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        limits.check(data.len())?;
        let (container, array_end) = decode_tuple(data, limits)?;
        if container.op != Op::MERGED {
            return apply_trailer(data, container, array_end).map(Frame::Message);
        }
        if container.flags.contains(Flags::SUBROUTE) {
            return Err(DecodeError::BadMergedContainer("subroute flag set"));
        }
        if !container.payload_bytes().is_empty() {
            return Err(DecodeError::BadMergedContainer("non-empty payload"));
        }
        let body = if container.flags.contains(Flags::CRC) {
            verify_crc(data)?
        } else {
            data
        };
        let entries = body.get(array_end..).ok_or(DecodeError::TrailerMissing {
            want: 0,
            got: body.len().saturating_sub(array_end),
        })?;
        let count = container.seq;
        // Each entry is at least a 2-byte bin header and a minimal message.
        let min = u64::from(count) * (2 + MIN_MESSAGE_LEN as u64);
        if min > entries.len() as u64 {
            return Err(DecodeError::BadMergedCount {
                count,
                available: entries.len(),
            });
        }
        Ok(Frame::Merged(Merged {
            count,
            entries,
            limits: *limits,
        }))
    }
}

/// The entries of a received merged frame, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct Merged<'a> {
    count: u32,
    entries: &'a [u8],
    limits: DecodeLimits,
}

impl<'a> Merged<'a> {
    /// The number of inner messages the container declares.
    pub const fn len(&self) -> u32 {
        self.count
    }

    /// Whether the container declares no messages.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates the inner messages, decoding each (zero-copy).
    ///
    /// Stops after the first error; a decode error, a nested merged container or bytes left
    /// over after the declared count are reported as the last item.
    pub fn iter(&self) -> MergedIter<'a> {
        MergedIter {
            raw: self.raw_entries(),
        }
    }

    /// Iterates the raw encoded inner messages without decoding them.
    pub fn raw_entries(&self) -> RawEntries<'a> {
        RawEntries {
            rd: Reader::new(self.entries),
            left: self.count,
            limits: self.limits,
            done: false,
        }
    }
}

impl<'a> IntoIterator for Merged<'a> {
    type Item = Result<Message<'a>, DecodeError>;
    type IntoIter = MergedIter<'a>;
    fn into_iter(self) -> MergedIter<'a> {
        self.iter()
    }
}

/// Iterator over the raw entries of a merged frame.
#[derive(Clone, Debug)]
pub struct RawEntries<'a> {
    rd: Reader<'a>,
    left: u32,
    limits: DecodeLimits,
    done: bool,
}

impl<'a> Iterator for RawEntries<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            let rest = self.rd.rest().len();
            return (rest > 0).then_some(Err(DecodeError::TrailingBytes(rest)));
        }
        self.left -= 1;
        match self.rd.bin_or_nil_limited(self.limits.max_frame_size) {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                Some(Err(DecodeError::UnexpectedType {
                    expected: "merged entry bin",
                    marker: 0xc0,
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(self.left as usize + 1))
        }
    }
}

/// Iterator over the decoded inner messages of a merged frame.
#[derive(Clone, Debug)]
pub struct MergedIter<'a> {
    raw: RawEntries<'a>,
}

impl<'a> Iterator for MergedIter<'a> {
    type Item = Result<Message<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self
            .raw
            .next()?
            .and_then(|entry| Message::decode(entry, &self.raw.limits));
        if item.is_err() {
            self.raw.done = true;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.raw.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MuxId;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    #[test]
    fn single_message_frame() {
        let m = Message {
            flags: Flags::CRC,
            ..Message::new(Op::PING)
        };
        let v = m.encode_to_vec().unwrap();
        match Frame::decode(&v, &limits()).unwrap() {
            Frame::Message(got) => assert_eq!(got, m),
            Frame::Merged(_) => panic!("not merged"),
        }
    }

    #[test]
    fn in_place_entries_equal_copied_entries() {
        let msgs: Vec<Message<'_>> = (1..=3u64)
            .map(|i| Message {
                mux_id: MuxId(i),
                flags: Flags::CRC | Flags::EOF,
                payload: Some(b"payload"),
                ..Message::new(Op::MUX_SERVER_MSG)
            })
            .collect();
        let encoded: Vec<Vec<u8>> = msgs.iter().map(|m| m.encode_to_vec().unwrap()).collect();
        let mut copied = Vec::new();
        encode_merged(&mut copied, &encoded).unwrap();
        let mut in_place = Vec::new();
        put_merged_header(&mut in_place, 3);
        for m in &msgs {
            m.encode_merged_entry(&mut in_place).unwrap();
        }
        assert_eq!(copied, in_place);
        let Frame::Merged(merged) = Frame::decode(&copied, &limits()).unwrap() else {
            panic!("merged expected")
        };
        assert_eq!(merged.len(), 3);
        let got: Vec<_> = merged.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(got, msgs);
    }

    #[test]
    fn rejects_bad_containers() {
        // Count larger than the bytes can hold.
        let mut v = Vec::new();
        put_merged_header(&mut v, 1000);
        assert!(matches!(
            Frame::decode(&v, &limits()),
            Err(DecodeError::BadMergedCount { .. })
        ));

        // Nested merged container.
        let mut inner = Vec::new();
        encode_merged(
            &mut inner,
            [Message::new(Op::PING).encode_to_vec().unwrap()],
        )
        .unwrap();
        let mut outer = Vec::new();
        encode_merged(&mut outer, [&inner]).unwrap();
        let Frame::Merged(m) = Frame::decode(&outer, &limits()).unwrap() else {
            panic!()
        };
        assert_eq!(m.iter().next(), Some(Err(DecodeError::UnexpectedMerged)));

        // Trailing bytes after the declared entries.
        let mut v = Vec::new();
        encode_merged(&mut v, [Message::new(Op::PING).encode_to_vec().unwrap()]).unwrap();
        v.push(0);
        let Frame::Merged(m) = Frame::decode(&v, &limits()).unwrap() else {
            panic!()
        };
        let items: Vec<_> = m.iter().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], Err(DecodeError::TrailingBytes(1)));

        // A container with a payload.
        let c = Message {
            payload: Some(b"x"),
            ..Message::new(Op::MERGED)
        };
        let v = c.encode_to_vec().unwrap();
        assert!(matches!(
            Frame::decode(&v, &limits()),
            Err(DecodeError::BadMergedContainer(_))
        ));
    }

    #[test]
    fn container_with_checksum() {
        // MinIO never checksums the container, but one that does is verified over the frame.
        let entry = Message::new(Op::PING).encode_to_vec().unwrap();
        let mut v = Vec::new();
        v.extend_from_slice(&[0x97, 0, 1, 0, 0, 17, Flags::CRC.0, 0xc4, 0]);
        put_merged_entry(&mut v, &entry).unwrap();
        let crc = crate::message::checksum(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        let Frame::Merged(m) = Frame::decode(&v, &limits()).unwrap() else {
            panic!()
        };
        assert_eq!(
            m.iter().collect::<Result<Vec<_>, _>>().unwrap(),
            [Message::new(Op::PING)]
        );
        let n = v.len();
        v[n - 1] ^= 1;
        assert!(matches!(
            Frame::decode(&v, &limits()),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
    }
}
