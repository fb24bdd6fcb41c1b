//! How a stream's messages are encoded: one family of stream types for raw bytes and typed
//! values.
//!
//! The caller's [`CallStream`](crate::CallStream), [`StreamSender`](crate::StreamSender) and
//! [`Responses`](crate::Responses), and the handler's [`StreamIn`](crate::StreamIn) and
//! [`StreamOut`](crate::StreamOut), take a codec parameter: [`Raw`] (the default: messages
//! are [`Bytes`]) or [`Msgpack<Req, Resp>`](Msgpack) (messages are serde values, as the
//! [typed](crate::typed) statics use). The semantics (credits, cancellation, deadlines, end
//! of stream) are the same; only `send` and what is received differ.

use std::marker::PhantomData;

use bytes::Bytes;

use crate::error::Error;
use crate::typed::Payload;

mod sealed {
    pub trait Sealed {}
}

/// A stream's message encoding: [`Raw`] or [`Msgpack`].
pub trait Codec: sealed::Sealed + Send + Sync + 'static {
    /// What the caller sends and the handler receives.
    type Req;
    /// What the handler sends and the caller receives.
    type Resp;

    /// Decodes a message received by the caller, nested at most `max_depth` levels.
    #[doc(hidden)]
    fn decode_resp(msg: Bytes, max_depth: usize) -> Result<Self::Resp, Error>;
}

/// Messages are raw [`Bytes`] both ways.
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl sealed::Sealed for Raw {}

impl Codec for Raw {
    type Req = Bytes;
    type Resp = Bytes;

    fn decode_resp(msg: Bytes, _: usize) -> Result<Bytes, Error> {
        Ok(msg)
    }
}

/// Messages are MessagePack-encoded serde values: `Req` from the caller, `Resp` from the
/// handler (see [the typed module](crate::typed) for the encoding). A message that does not
/// decode is [`Error::Decode`] for the caller, and a remote error for the handler.
pub struct Msgpack<Req, Resp>(PhantomData<fn(Req) -> Resp>);

impl<Req, Resp> std::fmt::Debug for Msgpack<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msgpack")
    }
}

impl<Req, Resp> sealed::Sealed for Msgpack<Req, Resp> {}

impl<Req: Payload, Resp: Payload> Codec for Msgpack<Req, Resp> {
    type Req = Req;
    type Resp = Resp;

    fn decode_resp(msg: Bytes, max_depth: usize) -> Result<Resp, Error> {
        crate::typed::decode_with_depth(&msg, max_depth)
    }
}
