//! The few msgpack layouts the grid uses, written and read exactly as Go's msgp does.
//!
//! Writing: msgp always picks the shortest form (positive fixint, then `0xcc`/`0xcd`/`0xce`/
//! `0xcf` for unsigned integers; fixstr/str8/str16/str32; bin8/bin16/bin32; fixmap/map16/map32),
//! and the writers here do the same. They append to any [`BufMut`] that can also be read back
//! (`Vec<u8>`, `BytesMut`) and cannot fail, so the encoders have no I/O error paths.
//!
//! Reading goes through `rmp`'s slice reader and marker table. Every length is checked against
//! the bytes actually present before it is used, and nothing is allocated: strings and binaries
//! are returned as sub-slices of the input. Unknown values are skipped iteratively (no recursion),
//! so deep nesting cannot overflow the stack.

use bytes::BufMut;
use rmp::Marker;
use rmp::decode::{self, Bytes, NumValueReadError, ValueReadError};

use crate::error::{DecodeError, EncodeError};

/// msgp's private extension type for `time.Time`.
pub(crate) const TIME_EXT_TYPE: i8 = 5;
/// The msgpack standard timestamp extension type.
const STD_TIMESTAMP_EXT_TYPE: i8 = -1;

// ---------------------------------------------------------------------------------------------
// Writing

/// Appends an unsigned integer in its shortest msgpack form.
#[inline]
pub(crate) fn put_uint<B: BufMut>(out: &mut B, v: u64) {
    if v < 0x80 {
        out.put_u8(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.put_u8(0xcc);
        out.put_u8(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.put_u8(0xcd);
        out.put_u16(v as u16);
    } else if v <= u64::from(u32::MAX) {
        out.put_u8(0xce);
        out.put_u32(v as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(v);
    }
}

/// Number of bytes [`put_uint`] writes for `v`.
#[inline]
pub(crate) fn uint_len(v: u64) -> usize {
    if v < 0x80 {
        1
    } else if v <= u64::from(u8::MAX) {
        2
    } else if v <= u64::from(u16::MAX) {
        3
    } else if v <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

/// Checks that a length fits msgpack's 32-bit lengths.
#[inline]
pub(crate) fn len_u32(what: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { what, len })
}

/// Appends a bin header for `len` bytes.
#[inline]
pub(crate) fn put_bin_header<B: BufMut>(out: &mut B, len: u32) {
    if len <= u32::from(u8::MAX) {
        out.put_u8(0xc4);
        out.put_u8(len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.put_u8(0xc5);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xc6);
        out.put_u32(len);
    }
}

/// Number of bytes [`put_bin_header`] writes for `len`.
#[inline]
pub(crate) fn bin_header_len(len: usize) -> usize {
    if len <= usize::from(u8::MAX) {
        2
    } else if len <= usize::from(u16::MAX) {
        3
    } else {
        5
    }
}

/// Appends a complete bin value.
pub(crate) fn put_bin<B: BufMut>(out: &mut B, data: &[u8]) -> Result<(), EncodeError> {
    put_bin_header(out, len_u32("binary", data.len())?);
    out.put_slice(data);
    Ok(())
}

/// Appends a complete str value.
pub(crate) fn put_str<B: BufMut>(out: &mut B, s: &str) -> Result<(), EncodeError> {
    let len = len_u32("string", s.len())?;
    if len < 32 {
        out.put_u8(0xa0 | len as u8);
    } else if len <= u32::from(u8::MAX) {
        out.put_u8(0xd9);
        out.put_u8(len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.put_u8(0xda);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdb);
        out.put_u32(len);
    }
    out.put_slice(s.as_bytes());
    Ok(())
}

/// Appends a map header. The grid's control maps have at most a handful of entries.
pub(crate) fn put_fixmap_header<B: BufMut>(out: &mut B, entries: u8) {
    debug_assert!(entries < 16);
    out.put_u8(0x80 | (entries & 0x0f));
}

/// Appends a key of a control map (always a short fixstr).
pub(crate) fn put_key<B: BufMut>(out: &mut B, key: &'static str) {
    debug_assert!(key.len() < 32);
    out.put_u8(0xa0 | (key.len() as u8 & 0x1f));
    out.put_slice(key.as_bytes());
}

/// Appends a bool.
pub(crate) fn put_bool<B: BufMut>(out: &mut B, v: bool) {
    out.put_u8(if v { 0xc3 } else { 0xc2 });
}

/// Appends nil.
pub(crate) fn put_nil<B: BufMut>(out: &mut B) {
    out.put_u8(0xc0);
}

/// Appends a time as msgp's extension 5: `c7 0c 05`, seconds as big-endian i64, nanoseconds as
/// big-endian i32.
pub(crate) fn put_time<B: BufMut>(out: &mut B, unix_secs: i64, nanos: u32) {
    out.put_u8(0xc7);
    out.put_u8(12);
    out.put_i8(TIME_EXT_TYPE);
    out.put_i64(unix_secs);
    out.put_u32(nanos);
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A bounds-checked, allocation-free msgpack reader over a byte slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    rd: Bytes<'a>,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            rd: Bytes::new(buf),
        }
    }

    /// The bytes not read yet.
    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rd.remaining_slice()
    }

    /// Reads any msgpack integer form and checks that it is non-negative and fits `u64`.
    #[inline]
    pub(crate) fn uint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        // A positive fixint (one byte, 0x00..=0x7f) is most fields of a message; every other
        // form goes through rmp, with its checks.
        if let [b @ 0..=0x7f, tail @ ..] = self.rest() {
            self.rd = Bytes::new(tail);
            return Ok(u64::from(*b));
        }
        decode::read_int::<u64, _>(&mut self.rd).map_err(|e| num_err(e, field))
    }

    /// Reads an unsigned integer that must fit `u32`.
    #[inline]
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.uint(field)?).map_err(|_| DecodeError::IntegerOutOfRange { field })
    }

    /// Reads an unsigned integer that must fit `u8`.
    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        u8::try_from(self.uint(field)?).map_err(|_| DecodeError::IntegerOutOfRange { field })
    }

    /// Reads an array header.
    #[inline]
    pub(crate) fn array_len(&mut self) -> Result<u32, DecodeError> {
        decode::read_array_len(&mut self.rd).map_err(|e| value_err(e, "array"))
    }

    /// Reads a map header.
    pub(crate) fn map_len(&mut self) -> Result<u32, DecodeError> {
        decode::read_map_len(&mut self.rd).map_err(|e| value_err(e, "map"))
    }

    /// Reads a bin value, or nil (as `None`). Returns a sub-slice of the input.
    #[inline]
    pub(crate) fn bin_or_nil(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let marker = self.peek_marker()?;
        let len = match marker {
            Marker::Null => {
                self.skip(1)?;
                return Ok(None);
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                decode::read_bin_len(&mut self.rd).map_err(|e| value_err(e, "bin"))?
            }
            other => return Err(unexpected("bin", other)),
        };
        self.take(len as usize).map(Some)
    }

    /// Reads the payload bin (or nil), rejecting declared lengths above `limit` before looking
    /// for the bytes.
    #[inline]
    pub(crate) fn bin_or_nil_limited(
        &mut self,
        limit: usize,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        let declared = match self.rest() {
            [0xc5, a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            [0xc6, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
            _ => 0,
        };
        if declared > limit {
            return Err(DecodeError::TooLarge {
                size: declared,
                limit,
            });
        }
        self.bin_or_nil()
    }

    /// Reads a string-like value (str or bin) as raw bytes; nil reads as `None`.
    pub(crate) fn str_bytes_or_nil(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let marker = self.peek_marker()?;
        match marker {
            Marker::Null => {
                self.skip(1)?;
                Ok(None)
            }
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let len = decode::read_str_len(&mut self.rd).map_err(|e| value_err(e, "str"))?;
                self.take(len as usize).map(Some)
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => self.bin_or_nil(),
            other => Err(unexpected("str", other)),
        }
    }

    /// Reads a string field as UTF-8; nil reads as the empty string.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let raw = self.str_bytes_or_nil()?.unwrap_or_default();
        std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// Reads a bool; nil reads as `false`.
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.peek_marker()? {
            Marker::True => self.skip(1).map(|()| true),
            Marker::False | Marker::Null => self.skip(1).map(|()| false),
            other => Err(unexpected("bool", other)),
        }
    }

    /// Reads a time: msgp's extension 5 (12 bytes), the msgpack standard timestamp (extension
    /// −1 in its 4, 8 and 12 byte forms), or nil (Go's zero time). Returns (Unix seconds, nanos).
    pub(crate) fn time(&mut self) -> Result<Option<(i64, u32)>, DecodeError> {
        if self.peek_marker()? == Marker::Null {
            self.skip(1)?;
            return Ok(None);
        }
        let meta = decode::read_ext_meta(&mut self.rd).map_err(|e| value_err(e, "time"))?;
        let body = self.take(meta.size as usize)?;
        let (secs, nanos) = match (meta.typeid, body) {
            (TIME_EXT_TYPE, &[s0, s1, s2, s3, s4, s5, s6, s7, n0, n1, n2, n3]) => (
                i64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
                i32::from_be_bytes([n0, n1, n2, n3]),
            ),
            (TIME_EXT_TYPE, _) => return Err(DecodeError::BadTime("extension 5 must be 12 bytes")),
            (STD_TIMESTAMP_EXT_TYPE, &[s0, s1, s2, s3]) => {
                (i64::from(u32::from_be_bytes([s0, s1, s2, s3])), 0)
            }
            (STD_TIMESTAMP_EXT_TYPE, &[b0, b1, b2, b3, b4, b5, b6, b7]) => {
                let v = u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
                // 30 bits of nanoseconds, 34 bits of seconds.
                ((v & 0x3_ffff_ffff) as i64, (v >> 34) as i32)
            }
            (STD_TIMESTAMP_EXT_TYPE, &[n0, n1, n2, n3, s0, s1, s2, s3, s4, s5, s6, s7]) => (
                i64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
                i32::from_be_bytes([n0, n1, n2, n3]),
            ),
            (STD_TIMESTAMP_EXT_TYPE, _) => {
                return Err(DecodeError::BadTime("timestamp must be 4, 8 or 12 bytes"));
            }
            _ => return Err(DecodeError::BadTime("unknown extension type")),
        };
        match u32::try_from(nanos) {
            Ok(n) if n < 1_000_000_000 => Ok(Some((secs, n))),
            _ => Err(DecodeError::BadTime("nanoseconds out of range")),
        }
    }

    /// Skips one complete value of any type, including nested arrays and maps, without
    /// recursion. Work is linear in the input size.
    pub(crate) fn skip_value(&mut self) -> Result<(), DecodeError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker = decode::read_marker(&mut self.rd).map_err(|e| marker_err(e.0))?;
            match marker {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => {}
                Marker::U8 | Marker::I8 => self.skip(1)?,
                Marker::U16 | Marker::I16 => self.skip(2)?,
                Marker::U32 | Marker::I32 | Marker::F32 => self.skip(4)?,
                Marker::U64 | Marker::I64 | Marker::F64 => self.skip(8)?,
                Marker::FixStr(n) => self.skip(usize::from(n))?,
                Marker::Str8 | Marker::Bin8 => {
                    let n = self.be_len(1)?;
                    self.skip(n)?;
                }
                Marker::Str16 | Marker::Bin16 => {
                    let n = self.be_len(2)?;
                    self.skip(n)?;
                }
                Marker::Str32 | Marker::Bin32 => {
                    let n = self.be_len(4)?;
                    self.skip(n)?;
                }
                Marker::FixArray(n) => pending += u64::from(n),
                Marker::Array16 => pending += self.be_len(2)? as u64,
                Marker::Array32 => pending += self.be_len(4)? as u64,
                Marker::FixMap(n) => pending += 2 * u64::from(n),
                Marker::Map16 => pending += 2 * self.be_len(2)? as u64,
                Marker::Map32 => pending += 2 * self.be_len(4)? as u64,
                Marker::FixExt1 => self.skip(2)?,
                Marker::FixExt2 => self.skip(3)?,
                Marker::FixExt4 => self.skip(5)?,
                Marker::FixExt8 => self.skip(9)?,
                Marker::FixExt16 => self.skip(17)?,
                Marker::Ext8 => {
                    let n = self.be_len(1)?;
                    self.skip(n + 1)?;
                }
                Marker::Ext16 => {
                    let n = self.be_len(2)?;
                    self.skip(n + 1)?;
                }
                Marker::Ext32 => {
                    let n = self.be_len(4)?;
                    self.skip(n + 1)?;
                }
                Marker::Reserved => return Err(unexpected("msgpack value", Marker::Reserved)),
            }
            // Every pending value needs at least one byte: fail early on absurd counts.
            let available = self.rest().len();
            if pending > available as u64 {
                return Err(DecodeError::Truncated {
                    needed: usize::try_from(pending).unwrap_or(usize::MAX),
                    available,
                });
            }
        }
        Ok(())
    }

    /// Returns the next `n` bytes as a sub-slice and advances past them.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.rest();
        match rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rd = Bytes::new(tail);
                Ok(head)
            }
            None => Err(DecodeError::Truncated {
                needed: n,
                available: rest.len(),
            }),
        }
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    /// Reads a big-endian length of `width` (1, 2 or 4) bytes.
    fn be_len(&mut self, width: usize) -> Result<usize, DecodeError> {
        let b = self.take(width)?;
        Ok(b.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
    }

    #[inline]
    fn peek_marker(&self) -> Result<Marker, DecodeError> {
        match self.rest().first() {
            Some(&b) => Ok(Marker::from_u8(b)),
            None => Err(DecodeError::Truncated {
                needed: 1,
                available: 0,
            }),
        }
    }
}

/// Error for a value of the wrong type.
#[inline]
pub(crate) fn unexpected(expected: &'static str, marker: Marker) -> DecodeError {
    DecodeError::UnexpectedType {
        expected,
        marker: marker.to_u8(),
    }
}

fn marker_err(e: decode::bytes::BytesReadError) -> DecodeError {
    match e {
        decode::bytes::BytesReadError::InsufficientBytes {
            expected, actual, ..
        } => DecodeError::Truncated {
            needed: expected,
            available: actual,
        },
        #[allow(unreachable_patterns)] // the enum is non_exhaustive
        _ => DecodeError::Truncated {
            needed: 1,
            available: 0,
        },
    }
}

#[cold]
fn value_err(
    e: ValueReadError<decode::bytes::BytesReadError>,
    expected: &'static str,
) -> DecodeError {
    match e {
        ValueReadError::InvalidMarkerRead(e) | ValueReadError::InvalidDataRead(e) => marker_err(e),
        ValueReadError::TypeMismatch(m) => unexpected(expected, m),
    }
}

#[cold]
fn num_err(
    e: NumValueReadError<decode::bytes::BytesReadError>,
    field: &'static str,
) -> DecodeError {
    match e {
        NumValueReadError::InvalidMarkerRead(e) | NumValueReadError::InvalidDataRead(e) => {
            marker_err(e)
        }
        NumValueReadError::TypeMismatch(m) => unexpected(field, m),
        NumValueReadError::OutOfRange => DecodeError::IntegerOutOfRange { field },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_uint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uint(&mut out, v);
        assert_eq!(out.len(), uint_len(v));
        out
    }

    #[test]
    fn uint_uses_shortest_form() {
        assert_eq!(encoded_uint(0), [0x00]);
        assert_eq!(encoded_uint(127), [0x7f]);
        assert_eq!(encoded_uint(128), [0xcc, 0x80]);
        assert_eq!(encoded_uint(255), [0xcc, 0xff]);
        assert_eq!(encoded_uint(256), [0xcd, 0x01, 0x00]);
        assert_eq!(encoded_uint(65535), [0xcd, 0xff, 0xff]);
        assert_eq!(encoded_uint(65536), [0xce, 0x00, 0x01, 0x00, 0x00]);
        assert_eq!(
            encoded_uint(u64::from(u32::MAX)),
            [0xce, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(encoded_uint(1 << 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn str_and_bin_headers() {
        let mut out = Vec::new();
        put_str(&mut out, "ab").unwrap();
        assert_eq!(out, [0xa2, b'a', b'b']);
        out.clear();
        put_str(&mut out, &"x".repeat(32)).unwrap();
        assert_eq!(&out[..2], [0xd9, 32]);
        out.clear();
        put_str(&mut out, &"x".repeat(256)).unwrap();
        assert_eq!(&out[..3], [0xda, 1, 0]);
        out.clear();
        put_bin(&mut out, &[7; 300]).unwrap();
        assert_eq!(&out[..3], [0xc5, 1, 44]);
        assert_eq!(bin_header_len(300), 3);
        out.clear();
        put_bin(&mut out, &vec![7; 70_000]).unwrap();
        assert_eq!(&out[..5], [0xc6, 0, 1, 0x11, 0x70]);
        assert_eq!(bin_header_len(70_000), 5);
    }

    #[test]
    fn skip_handles_nesting_without_recursion() {
        // 100k nested single-element arrays then a nil: must not overflow the stack.
        let mut deep = vec![0x91u8; 100_000];
        deep.push(0xc0);
        let mut rd = Reader::new(&deep);
        rd.skip_value().unwrap();
        assert!(rd.rest().is_empty());
    }

    #[test]
    fn skip_rejects_absurd_counts_early() {
        // array32 claiming 4 billion elements in 5 bytes.
        let input = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Reader::new(&input).skip_value(),
            Err(DecodeError::Truncated { .. })
        ));
        // map16 claiming more entries than bytes.
        let input = [0xde, 0x00, 0x10, 0x01];
        assert!(Reader::new(&input).skip_value().is_err());
    }

    #[test]
    fn skip_every_kind() {
        let input: &[u8] = &[
            0x85, // map of 5
            0xa1, b'a', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, // f64
            0xa1, b'b', 0xd4, 1, 2, // fixext1
            0xa1, b'c', 0xc7, 2, 9, 1, 2, // ext8
            0xa1, b'd', 0x92, 0xd0, 0xff, 0xc5, 0, 1, 9, // [i8, bin16]
            0xa1, b'e', 0xd9, 1, b'z', // str8
            0x01, // next value, not skipped
        ];
        let mut rd = Reader::new(input);
        rd.skip_value().unwrap();
        assert_eq!(rd.rest(), [0x01]);
    }

    #[test]
    fn uint_accepts_all_widths_and_rejects_negatives() {
        for (bytes, v) in [
            (&[0x05][..], 5u64),
            (&[0xcc, 0x05][..], 5),
            (&[0xcd, 0x00, 0x05][..], 5),
            (&[0xce, 0, 0, 0, 5][..], 5),
            (&[0xcf, 0, 0, 0, 0, 0, 0, 0, 5][..], 5),
            (&[0xd0, 0x05][..], 5),
            (&[0xd1, 0, 5][..], 5),
            (&[0xd2, 0, 0, 0, 5][..], 5),
            (&[0xd3, 0, 0, 0, 0, 0, 0, 0, 5][..], 5),
        ] {
            assert_eq!(Reader::new(bytes).uint("x").unwrap(), v, "{bytes:02x?}");
        }
        assert_eq!(
            Reader::new(&[0xff]).uint("x"),
            Err(DecodeError::IntegerOutOfRange { field: "x" })
        );
        assert_eq!(
            Reader::new(&[0xd0, 0x80]).uint("x"),
            Err(DecodeError::IntegerOutOfRange { field: "x" })
        );
        assert!(matches!(
            Reader::new(&[0xcd, 0x01]).uint("x"),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xc4, 0x00]).uint("x"),
            Err(DecodeError::UnexpectedType { .. })
        ));
        // A fixint takes one byte, at both ends of its range; nothing to read is an error.
        for b in [0x00u8, 0x7f] {
            let input = [b, 0x01];
            let mut rd = Reader::new(&input);
            assert_eq!(rd.uint("x"), Ok(u64::from(b)));
            assert_eq!(rd.rest(), [0x01]);
        }
        assert!(matches!(
            Reader::new(&[]).uint("x"),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
