//! Typed single requests.

use std::marker::PhantomData;

use super::{Payload, bad_request, decode_with_depth, encode};
use crate::HandlerId;
use crate::connection::{CallOptions, Connection};
use crate::error::{Error, RemoteError};
use crate::handlers::HandlerCtx;
use crate::manager::Manager;

/// A typed single-request handler: `Req` in, `Resp` out, both encoded as MessagePack (see
/// the [module docs](super)). A `const` value names the handler on both sides:
///
/// ```
/// use rgrid::HandlerId;
/// use rgrid::typed::{Mss, SingleHandler};
///
/// static DISK_INFO: SingleHandler<Mss, Mss> = SingleHandler::new(HandlerId::DISK_INFO);
/// ```
pub struct SingleHandler<Req, Resp> {
    id: HandlerId,
    inline: bool,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> std::fmt::Debug for SingleHandler<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleHandler")
            .field("id", &self.id)
            .field("inline", &self.inline)
            .finish()
    }
}

impl<Req: Payload, Resp: Payload> SingleHandler<Req, Resp> {
    /// The handler with id `id`.
    pub const fn new(id: HandlerId) -> Self {
        SingleHandler {
            id,
            inline: false,
            _types: PhantomData,
        }
    }

    /// The same handler, registered to run its first poll on the connection's reader
    /// (see [`Manager::register_single_inline`]): for handlers that answer without blocking,
    /// such as lock tables and in-memory lookups. Callers are unaffected.
    ///
    /// ```
    /// use rgrid::HandlerId;
    /// use rgrid::typed::{Mss, SingleHandler};
    ///
    /// static LOCK: SingleHandler<Mss, Mss> = SingleHandler::new(HandlerId::LOCK_LOCK).inline();
    /// ```
    pub const fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    /// The handler id.
    pub const fn id(&self) -> HandlerId {
        self.id
    }

    /// Registers `f` on `manager` under this id and, optionally, a static subroute.
    pub fn register<F, Fut>(
        &self,
        manager: &Manager,
        subroute: Option<&str>,
        f: F,
    ) -> Result<(), Error>
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RemoteError>> + Send + 'static,
    {
        self.register_with_ctx(manager, subroute, move |_, req| f(req))
    }

    /// Like [`SingleHandler::register`], with the call's context (caller, deadline,
    /// cancellation).
    pub fn register_with_ctx<F, Fut>(
        &self,
        manager: &Manager,
        subroute: Option<&str>,
        f: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RemoteError>> + Send + 'static,
    {
        let depth = manager.options().max_depth;
        let handler = move |ctx, payload: bytes::Bytes| {
            let call = decode_with_depth::<Req>(&payload, depth).map(|req| f(ctx, req));
            async move {
                let resp = call.map_err(bad_request)?.await?;
                encode(&resp).map_err(|e| RemoteError::new(e.to_string()))
            }
        };
        if self.inline {
            manager.register_single_inline(self.id, subroute, handler)
        } else {
            manager.register_single_with_ctx(self.id, subroute, handler)
        }
    }

    /// Calls the handler on `conn`'s node with the default deadline. A response that does
    /// not decode is [`Error::Decode`].
    pub async fn call(&self, conn: &Connection, req: &Req) -> Result<Resp, Error> {
        self.call_with(conn, req, &CallOptions::new()).await
    }

    /// Calls the handler with [`CallOptions`] (a subroute, a deadline, a priority).
    pub async fn call_with(
        &self,
        conn: &Connection,
        req: &Req,
        options: &CallOptions,
    ) -> Result<Resp, Error> {
        let payload = encode(req)?;
        let resp = conn.request_with(self.id, payload, options).await?;
        decode_with_depth(&resp, conn.max_depth())
    }
}
