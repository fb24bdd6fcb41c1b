//! Typed handlers: serde types encoded as MessagePack, the way MinIO's generic handlers use
//! msgp.
//!
//! * [`SingleHandler<Req, Resp>`](SingleHandler): `register` a function from a request to a
//!   response, `call` it on a [`Connection`] or [`Subroute`].
//! * [`StreamHandler<P, Req, Resp>`](StreamHandler): an initial payload `P`, then requests
//!   up and responses down, with `register`, `register_no_input`, `register_no_payload` and
//!   `call`; the caller gets a [`TypedStream`] whose responses are decoded values.
//! * [`Service`]: an app's own calls by name, [`ServiceMethod`] and [`ServiceStream`]
//!   statics declared as `service/method` (see [the service docs](Service) and below).
//! * Helper types with MinIO's exact encodings: [`Mss`], [`Bytes`], [`UrlValues`],
//!   [`Json`], [`NoPayload`], [`Array`].
//!
//! # Encoding
//!
//! Every `serde` type that is `Serialize + DeserializeOwned` is a [`Payload`]: structs are
//! written as maps keyed by field name (msgp's default), so a Go node reads them with its
//! generated code and the other way round. Byte fields need `#[serde(with = "serde_bytes")]`
//! (or `serde_bytes::ByteBuf`, or this module's [`Bytes`]) to travel as msgpack `bin` as msgp
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
//! data runs out, and nesting deeper than [`max_depth`] levels (default [`MAX_DEPTH`],
//! process-wide, set with [`set_max_depth`]) is refused.
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
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::service::{FanOut, QuorumFailed, Service, ServiceMethod, ServiceStream};
pub use self::single::SingleHandler;
pub use self::stream::{
    StreamHandler, TypedIn, TypedOut, TypedResponses, TypedSender, TypedStream,
};
pub use self::types::{Array, Bytes, Json, Mss, NoPayload, UrlValues};
use crate::connection::{Connection, Stream, Subroute};
use crate::error::Error;
use crate::{HandlerId, RemoteError};

/// Default of the deepest nesting of arrays and maps a typed payload may have.
pub const MAX_DEPTH: usize = 64;

static DEPTH: AtomicUsize = AtomicUsize::new(MAX_DEPTH);

/// Sets the deepest nesting of arrays and maps (and structs, which travel as maps) that a
/// typed payload may have, for every decoder in this process. Default [`MAX_DEPTH`]. Each
/// level costs the decoder stack space, so a hostile payload nested without bound could
/// overflow the stack; keep it modest.
pub fn set_max_depth(depth: usize) {
    DEPTH.store(depth, Ordering::Relaxed);
}

/// The current nesting limit of typed payloads (see [`set_max_depth`]).
pub fn max_depth() -> usize {
    DEPTH.load(Ordering::Relaxed)
}

/// A value that travels as a typed payload. Implemented for every
/// `Serialize + DeserializeOwned` type (MessagePack, structs as maps) and for [`NoPayload`]
/// (zero bytes).
pub trait Payload: Sized + Send + 'static {
    /// Appends the encoding of `self` to `out`.
    fn encode_to(&self, out: &mut BytesMut) -> Result<(), Error>;

    /// Decodes a value from `input`; bytes after it are ignored.
    fn decode_from(input: &[u8]) -> Result<Self, Error>;
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

    fn decode_from(input: &[u8]) -> Result<Self, Error> {
        let mut de = rmp_serde::Deserializer::from_read_ref(input);
        // rmp-serde refuses the nesting level that reaches its limit: allow one more.
        de.set_max_depth(max_depth().saturating_add(1));
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

/// Decodes a `T` from `input`.
pub fn decode<T: Payload>(input: &[u8]) -> Result<T, Error> {
    T::decode_from(input)
}

/// A request that did not decode, as the remote error the caller gets.
fn bad_request(e: Error) -> RemoteError {
    RemoteError::new(format!("decode request: {e}"))
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Connection {}
    impl Sealed for crate::Subroute {}
}

/// Where a typed call goes: a [`Connection`] or a [`Subroute`] of one.
pub trait Target: sealed::Sealed + Sync {
    /// Makes a raw single request (see [`Connection::request_with_deadline`]); `None` uses
    /// the default deadline.
    fn raw_request(
        &self,
        handler: HandlerId,
        payload: bytes::Bytes,
        deadline: Option<std::time::Duration>,
    ) -> impl Future<Output = Result<bytes::Bytes, Error>> + Send;

    /// Opens a raw stream (see [`Connection::open_stream_with`]).
    fn raw_stream(
        &self,
        handler: HandlerId,
        payload: bytes::Bytes,
        options: crate::CallOptions,
    ) -> impl Future<Output = Result<Stream, Error>> + Send;
}

/// Both targets have the same raw methods; one body serves both.
macro_rules! impl_target {
    ($($t:ty),*) => {$(
        impl Target for $t {
            async fn raw_request(
                &self,
                handler: HandlerId,
                payload: bytes::Bytes,
                deadline: Option<std::time::Duration>,
            ) -> Result<bytes::Bytes, Error> {
                match deadline {
                    Some(d) => self.request_with_deadline(handler, payload, d).await,
                    None => self.request(handler, payload).await,
                }
            }

            async fn raw_stream(
                &self,
                handler: HandlerId,
                payload: bytes::Bytes,
                options: crate::CallOptions,
            ) -> Result<Stream, Error> {
                self.open_stream_with(handler, payload, options).await
            }
        }
    )*};
}

impl_target!(Connection, Subroute);
