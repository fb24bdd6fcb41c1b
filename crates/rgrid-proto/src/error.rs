//! Errors of the wire codec.

/// Why a received byte sequence could not be decoded.
///
/// Every malformed input maps to one of these variants; the decoder never panics and never
/// allocates. In the async layer a decode error of a frame closes the connection (as in MinIO,
/// where a parse error tears the connection down), while a decode error of a control payload
/// fails only the exchange it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value it announced was complete.
    #[error("truncated input: needed {needed} more bytes, {available} available")]
    Truncated {
        /// Bytes that the announced value still needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A msgpack value of another type than the one expected was found.
    #[error("expected {expected}, found msgpack marker 0x{marker:02x}")]
    UnexpectedType {
        /// What the decoder was reading.
        expected: &'static str,
        /// The lead byte that was found instead.
        marker: u8,
    },
    /// An integer did not fit the field it was decoded into (or was negative).
    #[error("integer out of range for field {field}")]
    IntegerOutOfRange {
        /// The field being decoded.
        field: &'static str,
    },
    /// The message tuple did not have exactly 7 elements.
    #[error("message must be a 7-element msgpack array, got {0} elements")]
    BadArrayLength(u32),
    /// The op code is not one of the protocol's op codes.
    #[error("unknown op code {0}")]
    UnknownOp(u8),
    /// The flags announce a trailer (subroute and/or checksum) that is not there.
    #[error("trailer missing: flags announce {want} trailer bytes, got {got}")]
    TrailerMissing {
        /// Trailer bytes announced by the flags.
        want: usize,
        /// Bytes present after the msgpack array.
        got: usize,
    },
    /// Bytes were left over after the message and its announced trailer.
    #[error("{0} unexpected trailing bytes after message")]
    TrailingBytes(usize),
    /// The xxh3 checksum trailer did not match the message.
    #[error("crc mismatch: message carries 0x{carried:08x}, computed 0x{computed:08x}")]
    ChecksumMismatch {
        /// The checksum in the trailer.
        carried: u32,
        /// The checksum computed over the received bytes.
        computed: u32,
    },
    /// The input (or a length it declares) is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The size of the input or the declared length.
        size: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// A merged container declared more inner messages than it can possibly hold.
    #[error("merged frame declares {count} messages in {available} bytes")]
    BadMergedCount {
        /// Declared count.
        count: u32,
        /// Bytes available for the inner messages.
        available: usize,
    },
    /// A merged container was found where a single message was expected (also inside another
    /// merged container, which the protocol does not allow).
    #[error("unexpected merged container")]
    UnexpectedMerged,
    /// A merged container carried a subroute trailer or a payload.
    #[error("malformed merged container: {0}")]
    BadMergedContainer(&'static str),
    /// A string field was not valid UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being decoded.
        field: &'static str,
    },
    /// A fixed-size binary field had the wrong length.
    #[error("field {field} must be {want} bytes, got {got}")]
    BadFieldLength {
        /// The field being decoded.
        field: &'static str,
        /// The required length.
        want: usize,
        /// The length found.
        got: usize,
    },
    /// A time value used an unsupported extension layout or an invalid nanosecond count.
    #[error("invalid time value: {0}")]
    BadTime(&'static str),
}

/// Why a value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload, string or batch does not fit the 32-bit length of msgpack.
    #[error("{what} of {len} elements or bytes does not fit a msgpack length")]
    TooLong {
        /// What was being encoded.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}
