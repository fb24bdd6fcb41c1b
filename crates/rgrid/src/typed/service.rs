//! Named services: an app's own calls, declared by service and method name (see [`Service`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rgrid_proto::RouteHash;

use super::{Payload, SingleHandler, StreamHandler};
use crate::codec::Msgpack;
use crate::connection::CallStream;
use crate::connection::{CallOptions, Connection, Route};
use crate::error::Error;
use crate::handlers::HandlerCtx;
use crate::handlers::{StreamIn, StreamOut};
use crate::{HandlerId, Manager, RemoteError};

/// A service: the name under which an app declares its methods.
///
/// A service is a name; each of its methods is a typed static made from it, which gives
/// both the handler registration and the typed call, so the two sides cannot disagree:
///
/// ```
/// use rgrid::typed::{Service, ServiceMethod, ServiceStream};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Lock { resource: String, owner: String }
///
/// const LOCKS: Service = Service::new("locks");
/// /// locks/lock: true if granted. Answers from memory at once, so it runs inline.
/// static LOCK: ServiceMethod<Lock, bool> = LOCKS.method("lock").inline();
/// static UNLOCK: ServiceMethod<Lock, bool> = LOCKS.method("unlock");
/// /// locks/watch: a stream of released resources, 16 messages in flight.
/// static WATCH: ServiceStream<String, (), String> = LOCKS.stream("watch").with_out_capacity(16);
/// ```
///
/// # On the wire
///
/// Every method is a grid v1 handler: [`HandlerId::SERVICE`] (128) under the static subroute
/// `service/method` (`locks/lock`), so the wire is unchanged and a method costs one hash
/// lookup like any subroute. MinIO's ids 1..=79 stay for interop with MinIO's own handlers
/// (register those with [`SingleHandler`] and [`StreamHandler`]); an app
/// should use named services rather than borrow one of them. A MinIO Go node refuses
/// id 128 like any id it does not know. Names are case-sensitive; the pair
/// (service, method) must be unique per node ([`Error::HandlerAlreadyExists`] otherwise),
/// and a call to a method the remote node did not register fails with [`Error::Remote`]
/// whose text names `service/method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    name: &'static str,
}

impl Service {
    /// The service called `name` (no `/`).
    pub const fn new(name: &'static str) -> Self {
        Service { name }
    }

    /// The service's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// A single-request method: a `Req` in, a `Resp` or a remote error out.
    pub const fn method<Req: Payload, Resp: Payload>(
        &self,
        method: &'static str,
    ) -> ServiceMethod<Req, Resp> {
        ServiceMethod {
            route: MethodRoute::new(self.name, method),
            handler: SingleHandler::new(HandlerId::SERVICE),
        }
    }

    /// A stream method: an initial payload `P`, then requests `Req` up and responses `Resp`
    /// down, with MinIO's default capacities of 1 (set them with
    /// [`ServiceStream::with_in_capacity`] and [`ServiceStream::with_out_capacity`]).
    pub const fn stream<P: Payload, Req: Payload, Resp: Payload>(
        &self,
        method: &'static str,
    ) -> ServiceStream<P, Req, Resp> {
        ServiceStream {
            route: MethodRoute::new(self.name, method),
            handler: StreamHandler::new(HandlerId::SERVICE),
        }
    }
}

/// `service/method`, its hash made once.
struct MethodRoute {
    service: &'static str,
    method: &'static str,
    made: OnceLock<Route>,
}

impl MethodRoute {
    const fn new(service: &'static str, method: &'static str) -> Self {
        MethodRoute {
            service,
            method,
            made: OnceLock::new(),
        }
    }

    fn route(&self) -> &Route {
        self.made.get_or_init(|| {
            let route = rgrid_proto::join_route(&[self.service, self.method]);
            let hash = RouteHash::new(&route);
            Route::from_parts(Arc::from(route), hash)
        })
    }

    fn text(&self) -> &str {
        self.route().as_str()
    }

    /// `options` with this route as the subroute (the method's route wins).
    fn options(&self, options: &CallOptions) -> CallOptions {
        CallOptions {
            subroute: Some(self.route().clone()),
            ..options.clone()
        }
    }
}

impl std::fmt::Debug for MethodRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.method)
    }
}

/// A single-request method of a [`Service`], typed by its request and response.
pub struct ServiceMethod<Req, Resp> {
    route: MethodRoute,
    handler: SingleHandler<Req, Resp>,
}

impl<Req, Resp> std::fmt::Debug for ServiceMethod<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMethod")
            .field("route", &self.route)
            .field("handler", &self.handler)
            .finish()
    }
}

impl<Req: Payload, Resp: Payload> ServiceMethod<Req, Resp> {
    /// The same method, its handler run inline on the connection's reader (see
    /// [`Manager::register_single_inline`]): only for handlers that never block.
    pub const fn inline(mut self) -> Self {
        self.handler = self.handler.inline();
        self
    }

    /// `service/method`.
    pub fn route(&self) -> &str {
        self.route.text()
    }

    /// Registers `f` as this method's handler on `manager`.
    pub fn register<F, Fut>(&self, manager: &Manager, f: F) -> Result<(), Error>
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RemoteError>> + Send + 'static,
    {
        self.handler.register(manager, Some(self.route()), f)
    }

    /// Like [`ServiceMethod::register`], with the call's context (caller, deadline,
    /// cancellation).
    pub fn register_with_ctx<F, Fut>(&self, manager: &Manager, f: F) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RemoteError>> + Send + 'static,
    {
        self.handler
            .register_with_ctx(manager, Some(self.route()), f)
    }

    /// Calls the method on `conn`'s node with the default deadline.
    pub async fn call(&self, conn: &Connection, req: &Req) -> Result<Resp, Error> {
        self.call_with(conn, req, &CallOptions::new()).await
    }

    /// Calls the method with [`CallOptions`] (a deadline, a priority; the subroute is the
    /// method's own).
    pub async fn call_with(
        &self,
        conn: &Connection,
        req: &Req,
        options: &CallOptions,
    ) -> Result<Resp, Error> {
        self.handler
            .call_with(conn, req, &self.route.options(options))
            .await
    }
}

/// The answers of a fan-out as they arrive ([`ServiceMethod::call_all`]): `(host, result)`.
pub type FanOut<Resp> = futures_util::stream::FuturesUnordered<
    std::pin::Pin<Box<dyn Future<Output = (String, Result<Resp, Error>)> + Send>>,
>;

/// A quorum that could not be reached ([`ServiceMethod::quorum`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumFailed {
    /// `service/method`.
    pub route: String,
    /// Successes that were needed.
    pub need: usize,
    /// Successes that arrived.
    pub succeeded: usize,
    /// Every host that failed, with its error, in the order they failed.
    pub failed: Vec<(String, Error)>,
}

impl std::fmt::Display for QuorumFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: quorum of {} not reached ({} succeeded",
            self.route, self.need, self.succeeded
        )?;
        for (host, e) in &self.failed {
            write!(f, "; {host}: {e}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for QuorumFailed {}

impl<Req: Payload, Resp: Payload> ServiceMethod<Req, Resp> {
    /// Calls the method on this node itself, without a socket: the same handler, context
    /// and deadline as a remote call (so fan-out code needs no special case for it).
    pub async fn call_local(
        &self,
        manager: &Manager,
        req: &Req,
        deadline: Duration,
    ) -> Result<Resp, Error> {
        let payload = super::encode(req)?;
        let resp = manager
            .call_local(HandlerId::SERVICE, Some(self.route()), payload, deadline)
            .await?;
        super::decode_with_depth(&resp, manager.options().max_depth)
    }

    /// Calls the method on every host of the grid, this node included (without a socket),
    /// all at once with one deadline; the returned stream yields `(host, result)` as the
    /// answers arrive. A host whose connection is down answers [`Error::Disconnected`] at
    /// once. Dropping the stream gives up on the calls still out: each is forgotten here at
    /// once, and an rgrid handler still running is cancelled (a MinIO Go handler runs on:
    /// it ignores the cancel).
    pub fn call_all(&self, manager: &Manager, req: &Req, deadline: Duration) -> FanOut<Resp> {
        let out = FanOut::new();
        let payload = match super::encode(req) {
            Ok(p) => p,
            Err(e) => {
                out.push(Box::pin(std::future::ready((
                    manager.host().to_owned(),
                    Err(e),
                ))));
                return out;
            }
        };
        let route = self.route.route();
        let depth = manager.options().max_depth;
        let local = manager.clone();
        let p = payload.clone();
        let r = route.clone();
        out.push(Box::pin(async move {
            let res = local
                .call_local(HandlerId::SERVICE, Some(r.as_str()), p, deadline)
                .await
                .and_then(|b| super::decode_with_depth(&b, depth));
            (local.host().to_owned(), res)
        }));
        let options = CallOptions::new().subroute(route).deadline(deadline);
        for conn in manager.connections() {
            let conn = conn.clone();
            let options = options.clone();
            let p = payload.clone();
            let host = conn.remote().to_owned();
            out.push(Box::pin(async move {
                let res = conn
                    .request_with(HandlerId::SERVICE, p, &options)
                    .await
                    .and_then(|b| super::decode_with_depth(&b, depth));
                (host, res)
            }));
        }
        out
    }

    /// Calls the method on every host ([`ServiceMethod::call_all`]) and returns as soon as
    /// `need` of them succeeded, with their answers in arrival order; fails as soon as
    /// `need` can no longer be reached, naming every failure. The calls still out are given
    /// up at once either way, so one hung peer costs nothing while a majority answers.
    pub async fn quorum(
        &self,
        manager: &Manager,
        req: &Req,
        need: usize,
        deadline: Duration,
    ) -> Result<Vec<(String, Resp)>, QuorumFailed> {
        use futures_util::StreamExt;
        let mut answers = self.call_all(manager, req, deadline);
        let total = answers.len();
        let mut ok = Vec::with_capacity(need);
        let mut failed = Vec::new();
        while ok.len() < need && total - failed.len() >= need {
            match answers.next().await {
                Some((host, Ok(resp))) => ok.push((host, resp)),
                Some((host, Err(e))) => failed.push((host, e)),
                None => break,
            }
        }
        if ok.len() >= need {
            return Ok(ok);
        }
        Err(QuorumFailed {
            route: self.route().to_owned(),
            need,
            succeeded: ok.len(),
            failed,
        })
    }
}

/// A stream method of a [`Service`]: initial payload `P`, requests `Req` up, responses
/// `Resp` down.
pub struct ServiceStream<P, Req, Resp> {
    route: MethodRoute,
    handler: StreamHandler<P, Req, Resp>,
}

impl<P, Req, Resp> std::fmt::Debug for ServiceStream<P, Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStream")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl<P: Payload, Req: Payload, Resp: Payload> ServiceStream<P, Req, Resp> {
    /// Requests the handler may have unread (its input window); 0 = no requests.
    pub const fn with_in_capacity(mut self, n: usize) -> Self {
        self.handler = self.handler.with_in_capacity(n);
        self
    }

    /// Responses the caller may have unread (the handler's output window).
    pub const fn with_out_capacity(mut self, n: usize) -> Self {
        self.handler = self.handler.with_out_capacity(n);
        self
    }

    /// `service/method`.
    pub fn route(&self) -> &str {
        self.route.text()
    }

    /// Registers `f` as this method's handler on `manager`. Callers need not register it:
    /// they open the stream with this static's windows (or with their own registration of
    /// it, if they have one).
    pub fn register<F, Fut>(&self, manager: &Manager, f: F) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, P, StreamIn<Msgpack<Req, Resp>>, StreamOut<Msgpack<Req, Resp>>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        self.handler.register(manager, Some(self.route()), f)
    }

    /// Registers `f` for a stream without requests.
    pub fn register_no_input<F, Fut>(&self, manager: &Manager, f: F) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, P, StreamOut<Msgpack<Req, Resp>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RemoteError>> + Send + 'static,
    {
        self.handler
            .register_no_input(manager, Some(self.route()), f)
    }

    /// Opens the stream on `conn`'s node with `payload`, without a deadline.
    pub async fn call(
        &self,
        conn: &Connection,
        payload: &P,
    ) -> Result<CallStream<Msgpack<Req, Resp>>, Error> {
        self.call_with(conn, payload, &CallOptions::new()).await
    }

    /// Opens the stream with [`CallOptions`] (a deadline for the whole stream, a priority;
    /// the subroute is the method's own).
    pub async fn call_with(
        &self,
        conn: &Connection,
        payload: &P,
        options: &CallOptions,
    ) -> Result<CallStream<Msgpack<Req, Resp>>, Error> {
        self.handler
            .call_with(conn, payload, &self.route.options(options))
            .await
    }
}
