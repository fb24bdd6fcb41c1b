//! The message tuple (spec §3.3): encode into a caller's buffer, decode from a byte slice.
//!
//! Layout of one encoded message:
//!
//! ```text
//! 0x97                      msgpack fixarray of 7
//! MuxID      uint (u64)     shortest msgpack unsigned form
//! Seq        uint (u32)
//! DeadlineMS uint (u32)
//! Handler    uint (u8)
//! Op         uint (u8)
//! Flags      uint (u8)
//! Payload    bin            a nil payload is written as an empty bin (c4 00)
//! [32 bytes subroute id]    if Flags has SUBROUTE
//! [4 bytes checksum]        if Flags has CRC: xxh3-64 low 32 bits, little-endian,
//!                           over every preceding byte of this message
//! ```

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::ids::{HandlerId, MuxId};
use crate::msgpack::{self, Reader};
use crate::op::{Flags, Op};
use crate::subroute::SubrouteId;

/// Default maximum size of one received frame: 64 MiB, the default message limit of the
/// websocket layers in common use. MinIO's Go grid has no limit at all (spec §14.9).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 << 20;

/// Length of the checksum trailer.
pub const CRC_LEN: usize = 4;

/// The smallest possible encoded message: the array header, six one-byte integers and an empty
/// bin (`97 00 00 00 00 03 00 c4 00` is a connection ping).
pub const MIN_MESSAGE_LEN: usize = 9;

/// Bounds applied while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Largest payload of one message. Declared payload lengths above it are reported as
    /// [`DecodeError::TooLarge`] before anything is read or allocated.
    pub max_message_size: usize,
    /// Largest frame (a single message, or a merged container with every message in it),
    /// checked before any field is read. [`DecodeLimits::new`] makes it equal to
    /// `max_message_size`; a reader of merged frames should allow a merge batch on top
    /// (see [`DecodeLimits::with_frame_size`]).
    pub max_frame_size: usize,
}

impl DecodeLimits {
    /// Limits with the given maximum payload size, which also bounds frames.
    pub const fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            max_frame_size: max_message_size,
        }
    }

    /// The same limits with another maximum frame size.
    #[must_use]
    pub const fn with_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Fails with [`DecodeError::TooLarge`] when a frame of `size` bytes is above the limit.
    #[inline]
    pub const fn check(&self, size: usize) -> Result<(), DecodeError> {
        if size > self.max_frame_size {
            Err(DecodeError::TooLarge {
                size,
                limit: self.max_frame_size,
            })
        } else {
            Ok(())
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

/// The checksum the protocol uses: the low 32 bits of XXH3-64 (seed 0) of `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u32 {
    xxhash_rust::xxh3::xxh3_64(data) as u32
}

/// One protocol message, borrowing its payload.
///
/// Decoding returns payloads as sub-slices of the received frame (zero-copy); a user of
/// [`bytes::Bytes`] can turn them into owned views with `Bytes::slice_ref`.
///
/// Nil and empty payloads are distinct: `None` is nil, `Some(&[])` is empty. On the wire both
/// are an empty bin; the encoder sets [`Flags::PAYLOAD_IS_ZERO`] for `Some(&[])`, and the
/// decoder restores `Some(&[])` only when that flag is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// The mux (request or stream) this message belongs to; 0 for connection-level messages.
    pub mux_id: MuxId,
    /// Per-mux, per-direction sequence number.
    pub seq: u32,
    /// Milliseconds until the deadline, 0 for none.
    pub deadline_ms: u32,
    /// Target handler (requests and mux connects).
    pub handler: HandlerId,
    /// The operation.
    pub op: Op,
    /// Flag bits. When encoding, [`Flags::PAYLOAD_IS_ZERO`] and [`Flags::SUBROUTE`] are derived
    /// from `payload` and `subroute` (see [`Message::wire_flags`]); [`Flags::CRC`] decides
    /// whether a checksum is appended. After decoding, these are the flags as received.
    pub flags: Flags,
    /// The payload; `None` is nil.
    pub payload: Option<&'a [u8]>,
    /// The subroute id, sent after the msgpack array.
    pub subroute: Option<SubrouteId>,
}

impl<'a> Message<'a> {
    /// A message with the given op and every other field zero / nil.
    pub const fn new(op: Op) -> Self {
        Message {
            mux_id: MuxId(0),
            seq: 0,
            deadline_ms: 0,
            handler: HandlerId(0),
            op,
            flags: Flags::NONE,
            payload: None,
            subroute: None,
        }
    }

    /// The flags as they go on the wire: `flags` with [`Flags::PAYLOAD_IS_ZERO`] set exactly
    /// when the payload is empty but not nil, and [`Flags::SUBROUTE`] set exactly when a
    /// subroute is present.
    #[inline]
    pub const fn wire_flags(&self) -> Flags {
        let mut f = self
            .flags
            .without(Flags(Flags::PAYLOAD_IS_ZERO.0 | Flags::SUBROUTE.0));
        if let Some(p) = self.payload
            && p.is_empty()
        {
            f = f.with(Flags::PAYLOAD_IS_ZERO);
        }
        if self.subroute.is_some() {
            f = f.with(Flags::SUBROUTE);
        }
        f
    }

    /// The payload bytes, with nil read as empty.
    #[inline]
    pub fn payload_bytes(&self) -> &'a [u8] {
        self.payload.unwrap_or_default()
    }

    /// The exact number of bytes [`Message::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let flags = self.wire_flags();
        let payload = self.payload_bytes().len();
        1 + msgpack::uint_len(self.mux_id.0)
            + msgpack::uint_len(u64::from(self.seq))
            + msgpack::uint_len(u64::from(self.deadline_ms))
            + msgpack::uint_len(u64::from(self.handler.0))
            + msgpack::uint_len(u64::from(self.op.0))
            + msgpack::uint_len(u64::from(flags.0))
            + msgpack::bin_header_len(payload)
            + payload
            + if self.subroute.is_some() {
                SubrouteId::LEN
            } else {
                0
            }
            + if flags.contains(Flags::CRC) {
                CRC_LEN
            } else {
                0
            }
    }

    /// Appends the encoded message to `out`.
    ///
    /// Fails only when the payload is 4 GiB or more (msgpack cannot express it); nothing is
    /// written then. Does not allocate when `out` has room for [`Message::encoded_len`] bytes.
    #[inline]
    pub fn encode<B: BufMut + AsRef<[u8]>>(&self, out: &mut B) -> Result<(), EncodeError> {
        let payload = self.payload_bytes();
        let payload_len = msgpack::len_u32("payload", payload.len())?;
        let flags = self.wire_flags();
        let start = out.as_ref().len();
        out.put_u8(0x97);
        msgpack::put_uint(out, self.mux_id.0);
        msgpack::put_uint(out, u64::from(self.seq));
        msgpack::put_uint(out, u64::from(self.deadline_ms));
        msgpack::put_uint(out, u64::from(self.handler.0));
        msgpack::put_uint(out, u64::from(self.op.0));
        msgpack::put_uint(out, u64::from(flags.0));
        msgpack::put_bin_header(out, payload_len);
        out.put_slice(payload);
        if let Some(sub) = &self.subroute {
            out.put_slice(&sub.0);
        }
        if flags.contains(Flags::CRC) {
            let crc = checksum(out.as_ref().get(start..).unwrap_or_default());
            out.put_u32_le(crc);
        }
        Ok(())
    }

    /// Encodes into a new vector of exactly the right capacity.
    pub fn encode_to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Appends the message as one entry of a merged frame: a bin header followed by the
    /// encoded message (see [`crate::merged`]). Encodes in place, without a scratch copy.
    pub fn encode_merged_entry<B: BufMut + AsRef<[u8]>>(
        &self,
        out: &mut B,
    ) -> Result<(), EncodeError> {
        let len = msgpack::len_u32("merged entry", self.encoded_len())?;
        msgpack::len_u32("payload", self.payload_bytes().len())?;
        msgpack::put_bin_header(out, len);
        self.encode(out)
    }

    /// Decodes one complete message from `data`.
    ///
    /// The whole slice must be the message: the msgpack array followed by exactly the trailer
    /// its flags announce. The checksum, if flagged, is verified. A merged container is
    /// rejected with [`DecodeError::UnexpectedMerged`]; use [`crate::Frame::decode`] for frames
    /// that may be merged.
    #[inline]
    pub fn decode(data: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        limits.check(data.len())?;
        let (msg, array_end) = decode_tuple(data, limits)?;
        if msg.op == Op::MERGED {
            return Err(DecodeError::UnexpectedMerged);
        }
        apply_trailer(data, msg, array_end)
    }
}

/// Decodes the msgpack array at the start of `data`. Returns the message (flags and payload
/// as received, no trailer applied) and the offset just past the array.
#[inline]
pub(crate) fn decode_tuple<'a>(
    data: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(Message<'a>, usize), DecodeError> {
    let mut rd = Reader::new(data);
    let n = rd.array_len()?;
    if n != 7 {
        return Err(DecodeError::BadArrayLength(n));
    }
    let mux_id = MuxId(rd.uint("MuxID")?);
    let seq = rd.u32("Seq")?;
    let deadline_ms = rd.u32("DeadlineMS")?;
    let handler = HandlerId(rd.u8("Handler")?);
    let op = Op(rd.u8("Op")?);
    if !op.is_known() {
        return Err(DecodeError::UnknownOp(op.0));
    }
    let flags = Flags(rd.u8("Flags")?);
    let payload = match rd.bin_or_nil_limited(limits.max_message_size)? {
        Some(p) if !p.is_empty() => Some(p),
        // Zero length: nil unless the sender marked it as empty-but-present.
        _ if flags.contains(Flags::PAYLOAD_IS_ZERO) => Some(&[][..]),
        _ => None,
    };
    let end = data.len() - rd.rest().len();
    let msg = Message {
        mux_id,
        seq,
        deadline_ms,
        handler,
        op,
        flags,
        payload,
        subroute: None,
    };
    Ok((msg, end))
}

/// Checks the trailer that follows the array at `array_end`: its length must be exactly what
/// the flags announce; the checksum must match; the subroute is extracted.
#[inline]
pub(crate) fn apply_trailer<'a>(
    data: &'a [u8],
    mut msg: Message<'a>,
    array_end: usize,
) -> Result<Message<'a>, DecodeError> {
    let has_crc = msg.flags.contains(Flags::CRC);
    let has_sub = msg.flags.contains(Flags::SUBROUTE);
    let want = if has_crc { CRC_LEN } else { 0 } + if has_sub { SubrouteId::LEN } else { 0 };
    let got = data.len().saturating_sub(array_end);
    if got < want {
        return Err(DecodeError::TrailerMissing { want, got });
    }
    if got > want {
        return Err(DecodeError::TrailingBytes(got - want));
    }
    let mut body = data;
    if has_crc {
        body = verify_crc(data)?;
    }
    if has_sub {
        let (_, sub) = body
            .split_last_chunk::<{ SubrouteId::LEN }>()
            .ok_or(DecodeError::TrailerMissing { want, got })?;
        msg.subroute = Some(SubrouteId(*sub));
    }
    Ok(msg)
}

/// Verifies the checksum trailer of `data` and returns the bytes it covers.
#[inline]
pub(crate) fn verify_crc(data: &[u8]) -> Result<&[u8], DecodeError> {
    let (body, crc) = data
        .split_last_chunk::<CRC_LEN>()
        .ok_or(DecodeError::TrailerMissing {
            want: CRC_LEN,
            got: data.len(),
        })?;
    let carried = u32::from_le_bytes(*crc);
    let computed = checksum(body);
    if carried != computed {
        return Err(DecodeError::ChecksumMismatch { carried, computed });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_is_exact() {
        let sub = SubrouteId::new(HandlerId(9), "x");
        let payload = vec![1u8; 70_000];
        for m in [
            Message::new(Op::PING),
            Message {
                payload: Some(&[]),
                ..Message::new(Op::REQUEST)
            },
            Message {
                mux_id: MuxId(u64::MAX),
                seq: u32::MAX,
                deadline_ms: 60_000,
                handler: HandlerId(200),
                flags: Flags::CRC | Flags::EOF,
                payload: Some(&payload),
                subroute: Some(sub),
                ..Message::new(Op::RESPONSE)
            },
        ] {
            let v = m.encode_to_vec().unwrap();
            assert_eq!(v.len(), m.encoded_len());
            assert_eq!(v.capacity(), m.encoded_len());
            assert_eq!(
                Message::decode(&v, &DecodeLimits::default()).unwrap(),
                Message {
                    flags: m.wire_flags(),
                    ..m
                }
            );
        }
    }

    #[test]
    fn encode_appends_after_existing_bytes() {
        // The checksum covers only this message, not what was in the buffer before.
        let m = Message {
            flags: Flags::CRC,
            ..Message::new(Op::PING)
        };
        let alone = m.encode_to_vec().unwrap();
        let mut buf = vec![0xaa, 0xbb];
        m.encode(&mut buf).unwrap();
        assert_eq!(&buf[2..], &alone[..]);
    }

    #[test]
    fn limit_checks_frame_and_declared_length() {
        let payload = [0u8; 300];
        let m = Message {
            payload: Some(&payload),
            ..Message::new(Op::REQUEST)
        };
        let v = m.encode_to_vec().unwrap();
        assert!(Message::decode(&v, &DecodeLimits::new(v.len())).is_ok());
        assert_eq!(
            Message::decode(&v, &DecodeLimits::new(v.len() - 1)),
            Err(DecodeError::TooLarge {
                size: v.len(),
                limit: v.len() - 1
            })
        );
        // A header announcing 4 GiB in a tiny frame is rejected by declared length.
        let hostile = [0x97, 0, 0, 0, 0, 14, 0, 0xc6, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Message::decode(&hostile, &DecodeLimits::default()),
            Err(DecodeError::TooLarge {
                size: u32::MAX as usize,
                limit: DEFAULT_MAX_FRAME_SIZE
            })
        );
    }
}
