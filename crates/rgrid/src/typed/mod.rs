//! Typed handlers: serde types encoded as MessagePack, the way MinIO's generic handlers use
//! msgp.
//!
//! * [`SingleHandler<Req, Resp>`](SingleHandler): `register` a function from a request to a
//!   response, `call` it on a [`Connection`](crate::Connection) (`call_with` takes
//!   [`CallOptions`](crate::CallOptions): a subroute, a deadline).
//! * [`StreamHandler<P, Req, Resp>`](StreamHandler): an initial payload `P`, then requests
//!   up and responses down, with `register`, `register_no_input`, `register_no_payload` and
//!   `call`; the caller gets a [`CallStream`](crate::CallStream) over the
//!   [`Msgpack`](crate::codec::Msgpack) codec, whose responses are decoded values, and the
//!   handler a [`StreamIn`](crate::StreamIn) and a [`StreamOut`](crate::StreamOut) over it.
//! * [`Service`]: an app's own calls by name, [`ServiceMethod`] and [`ServiceStream`]
//!   statics declared as `service/method` (see [the service docs](Service) and below).
//! * Helper types with MinIO's exact encodings: [`Mss`], [`NilBytes`], [`UrlValues`],
//!   [`Json`], [`NoPayload`], [`Array`].
//!
//! # Encoding
//!
//! Every `serde` type that is `Serialize + DeserializeOwned` is a [`Payload`]: structs are
//! written as maps keyed by field name (msgp's default), so a Go node reads them with its
//! generated code and the other way round. Byte fields need `#[serde(with = "serde_bytes")]`
//! (or `serde_bytes::ByteBuf`, or this module's [`NilBytes`]) to travel as msgpack `bin` as msgp
//! writes them; a plain `Vec<u8>` would be an array of integers. Integers are written in
//! their smallest form; msgp writes positive values above 127 with signed markers, and both
//! sides read either. Bytes after the value are ignored, as msgp does.
//!
//! # Errors and limits
//!
//! A request that does not decode becomes a remote error for that call ("decode request:
//! ..."); a response that does not decode becomes [`Error::Decode`] for the caller. Nothing
//! panics. Decoding borrows from the received frame: a string or byte field whose declared
//! length runs past the frame fails before anything is allocated, a collection's declared
//! length reserves at most 1 MiB up front (serde's cautious size hint) and fails when the
//! data runs out, and nesting deeper than [`Options::max_depth`](crate::Options::max_depth)
//! levels (default [`MAX_DEPTH`], per manager) is refused.
//!
//! # Allocations
//!
//! Encoding writes into a per-thread buffer that is handed out in slices and reclaimed once
//! every slice is dropped (the writer drops them as soon as it has framed them), so a typed
//! call adds no buffer allocation on either side; what remains are the values themselves
//! (a decoded `String` is one allocation). Requests and responses are owned values: the
//! handler owns its request, the wrapper consumes the response it returns, so nothing can
//! alias a recycled object and MinIO's `WithSharedResponse` opt-out has no counterpart here.

mod service;
mod single;
mod stream;
mod types;

use std::cell::RefCell;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::service::{FanOut, QuorumFailed, Service, ServiceMethod, ServiceStream};
pub use self::single::SingleHandler;
pub use self::stream::StreamHandler;
pub use self::types::{Array, Json, Mss, NilBytes, NoPayload, UrlValues};
use crate::RemoteError;
use crate::error::Error;

/// Default of the deepest nesting of arrays and maps a typed payload may have.
pub const MAX_DEPTH: usize = 64;

/// A value that travels as a typed payload. Implemented for every
/// `Serialize + DeserializeOwned` type (MessagePack, structs as maps) and for [`NoPayload`]
/// (zero bytes).
pub trait Payload: Sized + Send + 'static {
    /// Appends the encoding of `self` to `out`.
    fn encode_to(&self, out: &mut BytesMut) -> Result<(), Error>;

    /// Decodes a value from `input`, nested at most `max_depth` levels; bytes after it are
    /// ignored.
    fn decode_from(input: &[u8], max_depth: usize) -> Result<Self, Error>;
}

impl<T> Payload for T
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn encode_to(&self, out: &mut BytesMut) -> Result<(), Error> {
        let mut w = out.writer();
        let mut ser = rmp_serde::Serializer::new(&mut w).with_struct_map();
        self.serialize(&mut ser)
            .map_err(|e| Error::Encode(e.to_string()))
    }

    fn decode_from(input: &[u8], max_depth: usize) -> Result<Self, Error> {
        let mut de = rmp_serde::Deserializer::from_read_ref(input);
        // rmp-serde refuses the nesting level that reaches its limit: allow one more.
        de.set_max_depth(max_depth.saturating_add(1));
        T::deserialize(&mut de).map_err(|e| Error::Decode(e.to_string()))
    }
}

/// Size of the per-thread encode buffer's chunks.
const ARENA_CHUNK: usize = 64 * 1024;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Encodes `value` into a slice of the per-thread encode buffer.
pub fn encode<T: Payload>(value: &T) -> Result<bytes::Bytes, Error> {
    ARENA.with_borrow_mut(|buf| {
        if buf.capacity() - buf.len() < ARENA_CHUNK / 16 {
            // Reclaims the chunk in place when every slice of it was dropped.
            buf.reserve(ARENA_CHUNK);
        }
        match value.encode_to(buf) {
            Ok(()) => Ok(buf.split().freeze()),
            Err(e) => {
                buf.clear();
                Err(e)
            }
        }
    })
}

/// Decodes a `T` from `input`, nested at most [`MAX_DEPTH`] levels (the grid itself uses
/// [`Options::max_depth`](crate::Options::max_depth)).
pub fn decode<T: Payload>(input: &[u8]) -> Result<T, Error> {
    T::decode_from(input, MAX_DEPTH)
}

/// Decodes a `T` from `input`, nested at most `max_depth` levels.
pub fn decode_with_depth<T: Payload>(input: &[u8], max_depth: usize) -> Result<T, Error> {
    T::decode_from(input, max_depth)
}

/// A request that did not decode, as the remote error the caller gets.
fn bad_request(e: Error) -> RemoteError {
    RemoteError::new(format!("decode request: {e}"))
}
