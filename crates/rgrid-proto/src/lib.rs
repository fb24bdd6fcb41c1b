//! The I/O-free core of rgrid: MinIO's grid protocol v1 on the wire.
//!
//! This crate turns protocol values into bytes and bytes into protocol values, and holds the
//! whole state machine of a connection ([`conn::Core`]). It has no sockets, no async runtime
//! and never reads a clock, so everything in it can be driven by tests, property tests and
//! fuzzers directly. The `rgrid` crate is a thin async shell around it: I/O, timers, the
//! manager and the transports.
//!
//! # What is here
//!
//! | module | contents |
//! |---|---|
//! | [`conn`] | the connection core: every mux's lifecycle, credits, sequence numbers, pings, watchdog, deadlines, what is owed to the peer, and the scheduler that decides what is sent next |
//! | [`op`] | [`Op`] codes and [`Flags`] bits, `u8` newtypes with every value of the spec |
//! | [`ids`] | [`HandlerId`] (with MinIO's names) and [`MuxId`] |
//! | [`message`] | the 7-field [`Message`] tuple with its subroute and checksum trailers |
//! | [`merged`] | `OpMerged` frames: building them and iterating them zero-copy ([`Frame`]) |
//! | [`control`] | handshake and control maps: [`ConnectRequest`], [`ConnectResponse`], [`PingMsg`], [`PongMsg`], [`MuxConnectError`], [`GridTime`] |
//! | [`subroute`] | [`SubrouteId`]: SHA-256 of the route, byte 0 = handler id, byte 1 = 0 |
//! | [`dial`] | [`should_dial`]: MinIO's rule for which side of a pair dials |
//!
//! # Compatibility
//!
//! Every encoding is byte-for-byte what MinIO's Go grid (tinylib/msgp) writes: shortest integer
//! forms, payloads as `bin` (nil written as an empty bin, with [`Flags::PAYLOAD_IS_ZERO`] keeping
//! nil and empty apart), the 32-byte subroute and 4-byte xxh3 trailers after the msgpack array,
//! control maps with MinIO's field names in Go's field order, and times as msgp extension 5.
//! Golden-bytes tests written from the specification pin all of it.
//!
//! # Robustness
//!
//! Decoding never panics and never allocates: payloads, strings and merged entries are
//! sub-slices of the input. Every length is checked against the bytes present (and payload
//! lengths against [`DecodeLimits::max_message_size`], default
//! [`DEFAULT_MAX_FRAME_SIZE`]) before it is used, unknown map fields are skipped without
//! recursion, and every malformed input maps to a [`DecodeError`] variant. Where the Go
//! implementation is lenient in a way that can hide corruption, this crate is strict: a frame
//! must be exactly the array plus the trailer its flags announce.
//!
//! # Example
//!
//! ```
//! use rgrid_proto::{DecodeLimits, Flags, HandlerId, Message, MuxId, Op};
//!
//! // A single request on mux 5 to DiskInfo with a 60 s deadline and a checksum.
//! let request = Message {
//!     mux_id: MuxId(5),
//!     deadline_ms: 60_000,
//!     handler: HandlerId::DISK_INFO,
//!     flags: Flags::CRC | Flags::EOF,
//!     payload: Some(b"abc"),
//!     ..Message::new(Op::REQUEST)
//! };
//! let mut frame = Vec::new();
//! request.encode(&mut frame)?;
//! assert_eq!(&frame[..14], b"\x97\x05\x00\xcd\xea\x60\x09\x0e\x03\xc4\x03abc");
//!
//! let decoded = Message::decode(&frame, &DecodeLimits::default())?;
//! assert_eq!(decoded.payload, Some(&b"abc"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)
)]

pub mod conn;
pub mod control;
pub mod dial;
pub mod error;
pub mod ids;
pub mod merged;
pub mod message;
mod msgpack;
pub mod mux;
pub mod op;
pub mod subroute;

pub use control::{ConnectRequest, ConnectResponse, GridTime, MuxConnectError, PingMsg, PongMsg};
pub use dial::should_dial;
pub use error::{DecodeError, EncodeError};
pub use ids::{HandlerId, MuxId};
pub use merged::{
    Frame, Merged, MergedIter, RawEntries, encode_merged, put_merged_entry, put_merged_header,
};
pub use message::{CRC_LEN, DEFAULT_MAX_FRAME_SIZE, DecodeLimits, Message, checksum};
pub use mux::{CreditOverflow, Credits, RecvSeq, SendSeq, SeqMismatch, Window, WindowExceeded};
pub use op::{Flags, Op};
pub use subroute::{RouteHash, SubrouteId, join_route};
