//! The manager: one per node; owns every connection, the handler registry, the dial loops and
//! the accepting side of the handshake.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rgrid_proto::{
    ConnectRequest, ConnectResponse, DecodeLimits, Flags, GridTime, HandlerId, Message, Op,
    SubrouteId,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{
    GridJwt, HttpAuthFn, MinioJwt, PeerInfo, StaticToken, TokenSource, TokenValidator,
};
use crate::connection::{ConnShared, Connection, Session, State};
use crate::ctx::ManagerCtx;
use crate::error::{Error, PeerDown, PeersDown, RemoteError};
use crate::handlers::{HandlerCtx, RawStreamHandler, Registry, single_ctx_fn, single_fn};
use crate::options::{MAX_HANDSHAKE_MESSAGE_SIZE, Options};
use crate::transport::dial::{
    ConnDialer, WebSocket, default_port_twin, normalize_host, split_host,
};
#[cfg(feature = "tls")]
use crate::transport::tls::TlsConfig;
use crate::transport::ws::connect_ws;
use crate::util::lock;

/// Builds a [`Manager`].
pub struct ManagerBuilder {
    local: String,
    hosts: Vec<String>,
    options: Options,
    token: Option<Arc<dyn TokenSource>>,
    validator: Option<Arc<dyn TokenValidator>>,
    dialer: Option<Arc<dyn ConnDialer>>,
    http_auth: Option<HttpAuthFn>,
    /// A bad authentication setting, reported by `build`.
    auth_error: Option<String>,
    /// A client participant ([`Manager::client_builder`]).
    client: bool,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl std::fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("local", &self.local)
            .field("hosts", &self.hosts)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ManagerBuilder {
    /// Sets timings and limits.
    #[must_use]
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Uses one shared secret both as the token sent and as the only token accepted
    /// ([`StaticToken`]). Simplest, but the secret itself travels on every connection and a
    /// captured one works forever against every node; prefer [`ManagerBuilder::jwt_secret`].
    #[must_use]
    pub fn token(self, token: impl Into<String>) -> Self {
        let t = StaticToken::new(token);
        self.auth(t)
    }

    /// Authenticates with short-lived, audience-bound [`GridJwt`] tokens signed with
    /// `secret`, which every node of the grid shares: the recommended setting for grids of
    /// rgrid nodes only. The secret never travels; a token names the dialing and the dialed
    /// host and lives 5 minutes, so a captured one cannot be used against another node, nor
    /// for long. Use [`ManagerBuilder::auth`] with a configured [`GridJwt`] for other
    /// lifetimes or clock skew. An empty secret makes [`ManagerBuilder::build`] fail.
    ///
    /// No authentication is set by default: [`ManagerBuilder::build`] fails until one of
    /// these methods (or a token source and validator) is called.
    #[must_use]
    pub fn jwt_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        match GridJwt::new(secret, self.local.clone()) {
            Ok(jwt) => self.auth(jwt),
            Err(e) => {
                self.auth_error = Some(e.to_string());
                self
            }
        }
    }

    /// Authenticates with MinIO's node token ([`MinioJwt`]) for the root credentials
    /// `access_key` / `secret_key`: what a grid shared with MinIO servers needs. MinIO's
    /// tokens last 100 years and name no host, so prefer [`ManagerBuilder::jwt_secret`] when
    /// no MinIO server takes part. Empty credentials make [`ManagerBuilder::build`] fail.
    #[must_use]
    pub fn minio_jwt(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl AsRef<[u8]>,
    ) -> Self {
        match MinioJwt::new(access_key, secret_key) {
            Ok(jwt) => self.auth(jwt),
            Err(e) => {
                self.auth_error = Some(e.to_string());
                self
            }
        }
    }

    /// Uses `auth` both as the token source and as the token validator.
    #[must_use]
    pub fn auth<A: TokenSource + TokenValidator + Clone>(self, auth: A) -> Self {
        self.token_source(auth.clone()).token_validator(auth)
    }

    /// Sets where the token sent to peers comes from.
    #[must_use]
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.token = Some(Arc::new(source));
        self
    }

    /// Sets how tokens of incoming connections are judged.
    #[must_use]
    pub fn token_validator(mut self, validator: impl TokenValidator) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// Sets the dialer. Default: [`connect_ws`] on the route path with the token source (and
    /// the TLS config set with `tls`, feature `tls`). A custom dialer handles `https://`
    /// hosts itself; the TLS config then only serves.
    #[must_use]
    pub fn dialer(mut self, dialer: impl ConnDialer) -> Self {
        self.dialer = Some(Arc::new(dialer));
        self
    }

    /// Uses TLS (feature `tls`): the default dialer dials `https://` remotes through it, and
    /// [`crate::serve`] terminates TLS with it when the local host is `https://`.
    ///
    /// The scheme of each URL decides, so in a grid that mixes schemes `http://` remotes are
    /// still dialed in plaintext, and a node whose own URL is `http://` serves plaintext even
    /// with a TLS config. Without a TLS config, [`build`](Self::build) refuses `https://`
    /// remotes (unless a custom dialer is set): there is no plaintext fallback.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Sets an HTTP-level check for upgrade requests (403 when it fails). Default: none; the
    /// token is judged on the connect message, so a refused dialer learns why. The reason is
    /// logged at debug level: it must never quote the token. [`GridJwt::check_upgrade`] and
    /// [`MinioJwt::check_upgrade`] are ready-made checks.
    #[must_use]
    pub fn http_auth(
        mut self,
        check: impl Fn(&http::HeaderMap) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.http_auth = Some(Arc::new(check));
        self
    }

    /// Checks the configuration and creates the manager with one connection per remote host.
    /// No dialing happens until [`Manager::start`].
    pub fn build(mut self) -> Result<Manager, Error> {
        if let Some(e) = self.auth_error {
            return Err(Error::Config(e));
        }
        let token = self
            .token
            .ok_or_else(|| Error::Config("no token source".to_owned()))?;
        let validator = self
            .validator
            .ok_or_else(|| Error::Config("no token validator".to_owned()))?;
        // One spelling per host (see `normalize_host`): `HTTP://A:1/` and `http://a:1` are
        // the same host; two spellings of one host in the list are refused.
        let given_local = std::mem::take(&mut self.local);
        self.local = if self.client {
            client_name(&given_local)?
        } else {
            normalize_host(&given_local)?
        };
        let mut seen: HashMap<String, String> = HashMap::new();
        for h in std::mem::take(&mut self.hosts) {
            let n = normalize_host(&h)?;
            if let Some(first) = seen.get(&n) {
                return Err(Error::Config(if *first == h {
                    format!("host {h} appears twice")
                } else {
                    format!("hosts {first:?} and {h:?} are the same host ({n})")
                }));
            }
            if let Some(twin) = default_port_twin(&n)
                && let Some(first) = seen.get(&twin)
            {
                return Err(Error::Config(format!(
                    "hosts {first:?} and {h:?} are ambiguous: one names the default port, \
                     the other leaves it out; spell every host the same way"
                )));
            }
            split_host(&n)?;
            seen.insert(n.clone(), h);
            self.hosts.push(n);
        }
        if self.client && seen.contains_key(&self.local) {
            return Err(Error::Config(format!(
                "client name {given_local} is one of the servers' hosts"
            )));
        }
        if !self.client && !seen.contains_key(&self.local) {
            return Err(Error::Config(format!(
                "local host {given_local} is not in the host list"
            )));
        }
        if self.options.ping_interval.is_zero() || self.options.dial_timeout.is_zero() {
            return Err(Error::Config(
                "ping interval and dial timeout must be positive".to_owned(),
            ));
        }
        if self.options.dead_after <= self.options.ping_interval {
            return Err(Error::Config(format!(
                "dead_after ({:?}) must exceed the ping interval ({:?}), or live peers are \
                 dropped between two pings",
                self.options.dead_after, self.options.ping_interval
            )));
        }
        #[cfg(feature = "tls")]
        let tls = self.tls;
        #[cfg(not(feature = "tls"))]
        let tls: Option<std::convert::Infallible> = None;
        if self.dialer.is_none()
            && tls.is_none()
            && let Some(h) = self
                .hosts
                .iter()
                .find(|h| **h != self.local && split_host(h).is_ok_and(|(https, _)| https))
        {
            return Err(Error::Config(format!(
                "remote {h} is an https host: set a TLS config{}",
                if cfg!(feature = "tls") {
                    " (ManagerBuilder::tls)"
                } else {
                    " (rgrid is built without its `tls` feature)"
                }
            )));
        }
        let dialer = self.dialer.unwrap_or_else(|| {
            let ws = connect_ws(&self.options.route_path, token.clone())
                .timeout(self.options.dial_timeout)
                .max_message_size(self.options.frame_limit());
            #[cfg(feature = "tls")]
            let ws = match &tls {
                Some(config) => ws.tls(config.clone()),
                None => ws,
            };
            Arc::new(ws)
        });
        let preauth = self.options.max_preauth_conns;
        let per_addr = self.options.max_preauth_per_addr;
        // The hosts' addresses (IP literals; names are not resolved) go first in admission.
        let known_addrs = self
            .hosts
            .iter()
            .filter_map(|h| split_host(h).ok())
            .filter_map(|(_, authority)| {
                let host = match authority.rsplit_once(':') {
                    Some((h, p)) if !p.ends_with(']') => h,
                    _ => authority,
                };
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .ok()
            })
            .collect();
        let ctx = Arc::new(ManagerCtx {
            options: self.options,
            registry: RwLock::new(Registry::default()),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            id: *uuid::Uuid::new_v4().as_bytes(),
            local: self.local.clone(),
            client: self.client,
            token,
            validator,
            dialer,
            http_auth: self.http_auth,
            #[cfg(feature = "tls")]
            tls,
            rejections_logged: Mutex::new(HashSet::new()),
            preauth: Arc::new(crate::admission::Admission::new(
                preauth,
                per_addr,
                known_addrs,
            )),
        });
        let conns = self
            .hosts
            .iter()
            .filter(|h| **h != self.local)
            .map(|h| {
                let shared = if self.client {
                    // A client dials every server, whatever the who-dials rule says.
                    ConnShared::with_role(ctx.clone(), &self.local, h, true)
                } else {
                    ConnShared::new(ctx.clone(), &self.local, h)
                };
                let conn = Connection {
                    inner: Arc::new(shared),
                };
                (h.clone(), conn)
            })
            .collect();
        Ok(Manager {
            inner: Arc::new(ManagerInner {
                ctx,
                conns: RwLock::new(conns),
                client: self.client,
                clients: Mutex::new(HashMap::new()),
                started: AtomicBool::new(false),
                runtime: std::sync::OnceLock::new(),
            }),
        })
    }
}

/// The refusal of a handshake from a host not in the host list (MinIO's text).
const UNKNOWN_HOST: &str = "unknown incoming host";

/// Longest client name.
const MAX_CLIENT_NAME: usize = 256;

/// A client participant's name: any short printable text without spaces (a URL-like
/// `client://admin-1` reads best); an `http(s)://` URL is normalized like a host.
fn client_name(name: &str) -> Result<String, Error> {
    if name.is_empty()
        || name.len() > MAX_CLIENT_NAME
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Config(format!(
            "client name {name:?}: 1 to {MAX_CLIENT_NAME} printable characters without spaces"
        )));
    }
    let scheme = name.get(..8).unwrap_or(name).to_ascii_lowercase();
    if scheme.starts_with("http://") || scheme.starts_with("https://") {
        normalize_host(name)
    } else {
        Ok(name.to_owned())
    }
}

struct ManagerInner {
    ctx: Arc<ManagerCtx>,
    /// The host list's remotes (the servers, for a client); hosts come and go at run time
    /// ([`Manager::add_host`], [`Manager::remove_host`]).
    conns: RwLock<HashMap<String, Connection>>,
    /// This node is a client participant.
    client: bool,
    /// Client participants connected here, by name (see [`Options::max_clients`]).
    clients: Mutex<HashMap<String, Connection>>,
    started: AtomicBool,
    /// The runtime [`Manager::start`] ran in: hosts added later dial from it, whatever
    /// thread adds them.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl ManagerInner {
    /// Forgets a client whose session `ended`, unless it reconnected meanwhile (its
    /// connection then has another session).
    fn forget_client(&self, name: &str, conn: &Arc<ConnShared>, ended: &Arc<Session>) {
        let mut clients = lock(&self.clients);
        if clients.get(name).is_some_and(|c| {
            Arc::ptr_eq(&c.inner, conn) && c.inner.session().is_none_or(|s| Arc::ptr_eq(&s, ended))
        }) {
            clients.remove(name);
            tracing::info!(client = %name, "grid: client left");
        }
    }
}

/// One node's view of the grid. Cheap to clone.
///
/// ```no_run
/// # async fn example() -> Result<(), rgrid::Error> {
/// use rgrid::{HandlerId, Manager, RemoteError};
///
/// let hosts = ["http://10.0.0.1:9000", "http://10.0.0.2:9000"];
/// let manager = Manager::builder(hosts[0], hosts).token("secret").build()?;
/// manager.register_single(HandlerId::TEST, |payload| async move {
///     Ok::<_, RemoteError>(payload) // echo
/// })?;
/// let listener = tokio::net::TcpListener::bind("10.0.0.1:9000").await?;
/// tokio::spawn(rgrid::serve(listener, manager.clone()));
/// manager.start();
///
/// let conn = manager.connection(hosts[1]).expect("known host");
/// conn.wait_for_connect().await?;
/// let reply = conn.request(HandlerId::TEST, "hello").await?;
/// assert_eq!(&reply[..], b"hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Manager {
    inner: Arc<ManagerInner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("local", &self.inner.ctx.local)
            .field("remotes", &self.remotes().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Starts building a manager for `local`, one of `hosts` (all hosts of the grid, each with
    /// its scheme, e.g. `http://10.0.0.1:9000`).
    pub fn builder<I, S>(local: impl Into<String>, hosts: I) -> ManagerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ManagerBuilder {
            local: local.into(),
            hosts: hosts.into_iter().map(Into::into).collect(),
            options: Options::default(),
            token: None,
            validator: None,
            dialer: None,
            http_auth: None,
            auth_error: None,
            client: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Starts building a client participant named `name` that joins the grid of `servers`
    /// (every host of the grid) without being one of its hosts: it dials every server
    /// (whatever the who-dials rule says), listens nowhere, and may call and be called back
    /// over those connections. The servers must accept clients
    /// ([`Options::max_clients`]); they authenticate it like any peer and forget it when it
    /// leaves. Use it for admin tools and one-shot callers (`rgrid call` joins this way).
    ///
    /// `name` identifies the client in the handshake and in the servers' logs and tokens:
    /// printable text without spaces, such as `client://backup-7`; make it unique per
    /// process (a second client of the same name replaces the first's connection). On the
    /// wire this is grid v1: a MinIO Go node refuses it as an `unknown incoming host`.
    pub fn client_builder<I, S>(name: impl Into<String>, servers: I) -> ManagerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ManagerBuilder {
            client: true,
            ..Manager::builder(name, servers)
        }
    }

    /// Binds the port of this node's own URL ([`Manager::host`]) on every IPv4 interface and
    /// serves the grid there in a task of its own ([`crate::serve`]) until shutdown, so an
    /// app need not parse its own URL. The port must be in the URL; for another address or
    /// a listener of your own, call [`crate::serve`].
    pub async fn serve_local(&self) -> Result<std::net::SocketAddr, Error> {
        if self.inner.client {
            return Err(Error::Config(
                "a client participant listens nowhere: it only dials".to_owned(),
            ));
        }
        let (_, authority) = split_host(self.host())?;
        let port = authority
            .rsplit_once(':')
            .filter(|(_, p)| !p.ends_with(']'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::Config(format!("local host {} has no port to bind", self.host()))
            })?;
        // Every IPv4 interface (the grid's URLs are IPv4 or names in practice); for IPv6 or
        // a specific address, bind a listener of your own and call `serve`.
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
            .await
            .map_err(|e| {
                Error::Transport(crate::error::Cause::with_source(
                    format_args!("bind port {port}"),
                    e,
                ))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Transport(crate::error::Cause::from_error(e)))?;
        self.inner
            .ctx
            .tracker
            .spawn(crate::transport::serve(listener, self.clone()));
        Ok(addr)
    }

    /// Calls this node's own single handler `handler` (under `subroute`) without a socket:
    /// the same handler, context (the caller is this host) and deadline as a remote call.
    pub(crate) async fn call_local(
        &self,
        handler: HandlerId,
        subroute: Option<&str>,
        payload: Bytes,
        deadline: std::time::Duration,
    ) -> Result<Bytes, Error> {
        let sub = subroute.map(|r| SubrouteId::new(handler, r));
        let Some(entry) = self.inner.ctx.registry().single(handler, sub.as_ref()) else {
            let what = match subroute {
                Some(r) if handler == HandlerId::SERVICE => format!("method {r:?}"),
                Some(r) => format!("handler {handler} for route {r:?}"),
                None => format!("handler {handler}"),
            };
            return Err(Error::Remote(RemoteError::new(format!(
                "this node has no {what}: not registered here"
            ))));
        };
        let at = Instant::now() + deadline;
        let ctx = HandlerCtx::new(
            Arc::from(self.host()),
            handler,
            sub,
            Some(at),
            self.inner.ctx.shutdown.child_token(),
        );
        let run = std::panic::AssertUnwindSafe((entry.f)(ctx, payload));
        match tokio::time::timeout_at(at, futures_util::FutureExt::catch_unwind(run)).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(e))) => Err(Error::Remote(e)),
            Ok(Err(panic)) => Err(Error::Remote(RemoteError::new(format!(
                "handleMessages: panic recovered: {}",
                crate::handlers::panic_text(&*panic)
            )))),
            Err(_) => Err(Error::DeadlineExceeded),
        }
    }

    /// The local host, as the grid spells it (scheme and host name in lower case, no
    /// trailing `/`).
    pub fn host(&self) -> &str {
        &self.inner.ctx.local
    }

    /// The remote hosts (a snapshot: hosts may be added and removed at run time).
    pub fn remotes(&self) -> impl Iterator<Item = String> {
        let hosts: Vec<String> = self.conns().keys().cloned().collect();
        hosts.into_iter()
    }

    /// The connection to `host`, or `None` if it is not a remote of this grid. A client
    /// participant connected here is found by its name too (see [`Manager::clients`]).
    pub fn connection(&self, host: &str) -> Option<Connection> {
        self.find_conn(host)
            .or_else(|| lock(&self.inner.clients).get(host).cloned())
    }

    /// The client participants connected here now ([`Options::max_clients`]), to call them
    /// back. They are not in [`Manager::connections`]: fan-out and quorums are over the
    /// grid's hosts only.
    pub fn clients(&self) -> Vec<Connection> {
        lock(&self.inner.clients).values().cloned().collect()
    }

    /// Whether this node is a client participant ([`Manager::client_builder`]).
    pub fn is_client(&self) -> bool {
        self.inner.client
    }

    fn conns(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Connection>> {
        self.inner
            .conns
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conns_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Connection>> {
        self.inner
            .conns
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection to `host` in any spelling of it (see [`ManagerBuilder::build`]).
    fn find_conn(&self, host: &str) -> Option<Connection> {
        let conns = self.conns();
        match conns.get(host) {
            Some(c) => Some(c.clone()),
            None => conns.get(&normalize_host(host).ok()?).cloned(),
        }
    }

    /// Every connection to a host of the grid (a snapshot).
    pub fn connections(&self) -> impl Iterator<Item = Connection> {
        let conns: Vec<Connection> = self.conns().values().cloned().collect();
        conns.into_iter()
    }

    /// Adds `host` to the grid at run time and returns its connection. The who-dials rule
    /// decides as for the hosts given at build: if this side dials, it starts dialing now
    /// (once [`Manager::start`] ran); otherwise it waits for `host` to dial, which it does
    /// once `host` has this node in its own list. Fails with [`Error::Config`] for a
    /// malformed host, this node itself, or a host already in the grid (in any spelling).
    pub fn add_host(&self, host: &str) -> Result<Connection, Error> {
        let host = normalize_host(host)?;
        split_host(&host)?;
        if host == self.inner.ctx.local {
            return Err(Error::Config(format!("{host} is this node")));
        }
        let conn = {
            let mut conns = self.conns_mut();
            if conns.contains_key(&host)
                || default_port_twin(&host).is_some_and(|t| conns.contains_key(&t))
            {
                return Err(Error::Config(format!("host {host} is already in the grid")));
            }
            let shared = if self.inner.client {
                ConnShared::with_role(self.inner.ctx.clone(), &self.inner.ctx.local, &host, true)
            } else {
                ConnShared::new(self.inner.ctx.clone(), &self.inner.ctx.local, &host)
            };
            let conn = Connection {
                inner: Arc::new(shared),
            };
            conns.insert(host.clone(), conn.clone());
            (conn, self.inner.runtime.get().cloned())
        };
        let (conn, runtime) = conn;
        // Connected as a client participant until now: that session ends, so the host
        // redials and is taken as a host.
        if let Some(client) = lock(&self.inner.clients).remove(&host) {
            client.inner.remove();
        }
        if conn.inner.dials
            && let Some(rt) = runtime
        {
            self.inner
                .ctx
                .tracker
                .spawn_on(dial_loop(conn.inner.clone()), &rt);
        }
        tracing::info!(remote = %host, "grid: host added");
        Ok(conn)
    }

    /// Removes `host` from the grid at run time: its dial loop stops, calls in flight to it
    /// fail with [`Error::Disconnected`] (the outcome unknown, as for any lost connection),
    /// and later calls on a handle kept from before fail with [`Error::UnknownHost`]. A
    /// connection attempt from it is refused as an unknown host (or taken as a client
    /// participant, where clients are accepted). Fails with [`Error::UnknownHost`] when it
    /// is not in the grid.
    pub fn remove_host(&self, host: &str) -> Result<(), Error> {
        let key = normalize_host(host)?;
        let conn = self
            .conns_mut()
            .remove(&key)
            .ok_or_else(|| Error::UnknownHost(host.to_owned()))?;
        conn.inner.remove();
        tracing::info!(remote = %key, "grid: host removed");
        Ok(())
    }

    /// Waits until the connection to every other host is up, for at most `timeout`: a
    /// start-up barrier. On timeout (or shutdown) the error lists every host still down,
    /// with its state and why ([`Connection::last_error`]).
    pub async fn wait_for_peers(&self, timeout: std::time::Duration) -> Result<(), PeersDown> {
        let all = async {
            for conn in self.connections() {
                conn.wait_for_connect().await?;
            }
            Ok::<(), Error>(())
        };
        if let Ok(Ok(())) = tokio::time::timeout(timeout, all).await {
            return Ok(());
        }
        let mut down: Vec<PeerDown> = self
            .connections()
            .filter(|c| c.state() != State::Connected)
            .map(|c| PeerDown {
                host: c.remote().to_owned(),
                state: c.state(),
                last_error: c.last_error(),
            })
            .collect();
        down.sort_by(|a, b| a.host.cmp(&b.host));
        Err(PeersDown { down })
    }

    /// The manager's options.
    pub fn options(&self) -> &Options {
        &self.inner.ctx.options
    }

    pub(crate) fn http_auth(&self) -> Option<&HttpAuthFn> {
        self.inner.ctx.http_auth.as_ref()
    }

    /// The TLS config set with [`ManagerBuilder::tls`].
    #[cfg(feature = "tls")]
    pub(crate) fn tls(&self) -> Option<&TlsConfig> {
        self.inner.ctx.tls.as_ref()
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.ctx.shutdown.clone()
    }

    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.inner.ctx.tracker.spawn(fut);
    }

    /// Takes one of the slots for connections not yet through the handshake, if one is free.
    pub(crate) fn preauth_slot(
        &self,
        addr: Option<std::net::IpAddr>,
    ) -> Option<crate::admission::Slot> {
        self.inner.ctx.preauth.admit(addr)
    }

    /// Registers a single-request handler under `id`.
    ///
    /// The handler gets the request payload and returns the response payload or a
    /// [`RemoteError`] whose text the caller receives. A panic becomes a remote error and the
    /// node keeps serving. The handler is cancelled (its future dropped) when the caller's
    /// deadline passes or the connection is lost, since nobody could receive its answer.
    pub fn register_single<F, Fut>(&self, id: HandlerId, handler: F) -> Result<(), Error>
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
    {
        self.registry_mut()
            .add_single(id, None, single_fn(handler), false)
    }

    /// Registers a single-request handler under `id` and a static subroute.
    pub fn register_single_subroute<F, Fut>(
        &self,
        id: HandlerId,
        subroute: &str,
        handler: F,
    ) -> Result<(), Error>
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
    {
        self.registry_mut()
            .add_single(id, Some(subroute), single_fn(handler), false)
    }

    /// Registers a stream handler under `id` and an optional static subroute.
    ///
    /// The handler gets its context, the initial payload, its input (`None` when
    /// `in_capacity` is 0) and its output; what it returns ends the stream (an error reaches
    /// the caller as [`Error::Remote`]). When the stream is cancelled (caller cancel or drop,
    /// deadline, lost connection) the handler's future is dropped at its next await: put
    /// cleanup in `Drop`, and use [`HandlerCtx::cancelled`] in tasks it spawned.
    pub fn register_stream(
        &self,
        id: HandlerId,
        subroute: Option<&str>,
        handler: RawStreamHandler,
    ) -> Result<(), Error> {
        self.registry_mut().add_stream(id, subroute, handler)
    }

    /// Registers a single-request handler that also receives the call's [`HandlerCtx`]
    /// (caller, deadline, cancellation), under `id` and an optional static subroute.
    ///
    /// ```
    /// # use rgrid::{HandlerCtx, HandlerId, Manager, RemoteError};
    /// # use bytes::Bytes;
    /// # let manager = Manager::builder("http://a:1", ["http://a:1", "http://b:1"]).token("t").build()?;
    /// manager.register_single_with_ctx(HandlerId::TEST, None, |ctx: HandlerCtx, payload: Bytes| async move {
    ///     match ctx.remaining() {
    ///         Some(left) if left.as_millis() < 10 => Err(RemoteError::new("not enough time")),
    ///         _ => Ok(payload),
    ///     }
    /// })?;
    /// # Ok::<(), rgrid::Error>(())
    /// ```
    pub fn register_single_with_ctx<F, Fut>(
        &self,
        id: HandlerId,
        subroute: Option<&str>,
        handler: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
    {
        self.registry_mut()
            .add_single(id, subroute, single_ctx_fn(handler), false)
    }

    /// Registers a single-request handler that runs its first poll on the connection's
    /// reader, under `id` and an optional static subroute.
    ///
    /// Handlers registered otherwise each run in a task of their own, so a handler that
    /// blocks or burns CPU delays nobody else. An *inline* handler saves that task (one
    /// spawn and one wake-up per call, see the benchmark's `rgrid bytes` rows against
    /// `rgrid bytes spawned`): if it finishes without waiting, as lock tables and
    /// in-memory metadata lookups do, its answer leaves with the reader's next write; if it
    /// waits, it moves to a task of its own at its first `.await`. The price: everything it
    /// does before its first `.await` holds up the reading of its whole connection, every
    /// call and stream on it. Opt in only for handlers that never block
    /// ([`crate::Options::inline_handlers`] turns the fast path off for all of them).
    ///
    /// ```
    /// # use rgrid::{HandlerCtx, HandlerId, Manager, RemoteError};
    /// # use bytes::Bytes;
    /// # let manager = Manager::builder("http://a:1", ["http://a:1", "http://b:1"]).token("t").build()?;
    /// // An echo answers at once: worth running inline.
    /// manager.register_single_inline(HandlerId::TEST, None, |_: HandlerCtx, payload: Bytes| async move {
    ///     Ok::<_, RemoteError>(payload)
    /// })?;
    /// # Ok::<(), rgrid::Error>(())
    /// ```
    pub fn register_single_inline<F, Fut>(
        &self,
        id: HandlerId,
        subroute: Option<&str>,
        handler: F,
    ) -> Result<(), Error>
    where
        F: Fn(HandlerCtx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
    {
        self.registry_mut()
            .add_single(id, subroute, single_ctx_fn(handler), true)
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner.ctx.registry_mut()
    }

    /// Starts a dial loop for every remote this node must dial. Idempotent. Must be called
    /// within a tokio runtime.
    pub fn start(&self) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        // Under the hosts' lock, so that a host added meanwhile is dialed exactly once: by
        // this loop, or by `add_host` once the runtime is known.
        let dial: Vec<Arc<ConnShared>> = {
            let conns = self.conns_mut();
            let _ = self.inner.runtime.set(tokio::runtime::Handle::current());
            conns
                .values()
                .filter(|c| c.inner.dials)
                .map(|c| c.inner.clone())
                .collect()
        };
        for inner in dial {
            self.inner.ctx.tracker.spawn(dial_loop(inner));
        }
    }

    /// Runs the accepting half of the handshake on an already-upgraded websocket (from any
    /// transport) and, if the peer is accepted, serves it as that peer's connection. Returns
    /// once the handshake is over; the connection keeps running in the background.
    ///
    /// The handshake takes one of [`Options::max_preauth_conns`] slots (the websocket is
    /// dropped at once when none is free), must complete within
    /// [`Options::handshake_timeout`], and its message may be at most
    /// [`MAX_HANDSHAKE_MESSAGE_SIZE`] bytes.
    pub async fn incoming_conn(&self, ws: WebSocket) {
        let Some(slot) = self.preauth_slot(None) else {
            tracing::debug!("grid: too many connections in their handshake, dropping one");
            return;
        };
        self.incoming_conn_in_slot(ws, slot).await;
    }

    /// [`Manager::incoming_conn`] for a connection that already holds a pre-auth slot.
    pub(crate) async fn incoming_conn_in_slot(
        &self,
        mut ws: WebSocket,
        slot: crate::admission::Slot,
    ) {
        let ctx = &self.inner.ctx;
        ws.limits_mut()
            .set_max_payload_len(Some(MAX_HANDSHAKE_MESSAGE_SIZE));
        let evicted = slot.eviction();
        let read = tokio::time::timeout(ctx.options.handshake_timeout, read_binary(&mut ws));
        let read = tokio::select! {
            r = read => r,
            () = evicted.cancelled() => {
                tracing::debug!("grid: pre-auth table full, an old handshake evicted");
                return;
            }
        };
        let outcome = read
            .map_err(|_| Error::Protocol("handshake timed out".to_owned()))
            .and_then(|r| r)
            .map_err(|e| (None, e.to_string()))
            .and_then(|frame| self.check_connect(&frame));
        let (conn, remote_id, client) = match outcome {
            Ok(ok) => ok,
            Err((remote, reason)) => {
                self.log_rejection(remote.as_deref(), &reason);
                let resp = ConnectResponse {
                    id: ctx.id,
                    accepted: false,
                    rejected_reason: reason.as_str().into(),
                };
                let _ = send_control(&mut ws, Op::CONNECT_RESPONSE, |b| resp.encode(b), ctx).await;
                let _ = tokio::time::timeout(ctx.options.write_timeout, ws.close()).await;
                return;
            }
        };
        let resp = ConnectResponse {
            id: ctx.id,
            accepted: true,
            rejected_reason: "".into(),
        };
        if let Err(e) = send_control(&mut ws, Op::CONNECT_RESPONSE, |b| resp.encode(b), ctx).await {
            tracing::debug!(remote = %conn.remote, error = %e, "grid: handshake answer failed");
            return;
        }
        ws.limits_mut()
            .set_max_payload_len(Some(ctx.options.frame_limit()));
        // Authenticated: the slot is free again before the connection counts as up.
        drop(slot);
        match conn.attach(ws, remote_id, false) {
            None => {
                tracing::debug!(remote = %conn.remote, "grid: connection refused during shutdown")
            }
            Some(session) if client => {
                // A client is forgotten once it leaves (unless it reconnected meanwhile).
                let inner = self.inner.clone();
                self.inner.ctx.tracker.spawn(async move {
                    session.closed().await;
                    inner.forget_client(&conn.remote, &conn, &session);
                });
            }
            Some(_) => {}
        }
    }

    /// The accepting side's checks, in MinIO's order. On failure returns the remote (if known)
    /// and the reason sent back.
    fn check_connect(&self, frame: &Bytes) -> Result<(Arc<ConnShared>, [u8; 16], bool), Rejection> {
        let ctx = &self.inner.ctx;
        let limits = DecodeLimits::new(ctx.options.max_message_size);
        let msg = Message::decode(frame, &limits).map_err(|e| (None, e.to_string()))?;
        if msg.op != Op::CONNECT {
            return Err((None, format!("unexpected op {} in handshake", msg.op)));
        }
        let req = ConnectRequest::decode(msg.payload_bytes()).map_err(|e| (None, e.to_string()))?;
        let remote = Some(req.host.to_owned());
        if self.inner.client {
            return Err((
                remote,
                "this node is a client: it accepts no connections".to_owned(),
            ));
        }
        let known = self.find_conn(req.host);
        if known.is_none() && ctx.options.max_clients == 0 {
            return Err((remote, UNKNOWN_HOST.to_owned()));
        }
        let now = GridTime::from_system_time(SystemTime::now());
        if now.abs_diff(req.time) > ctx.options.max_clock_skew {
            return Err((
                remote,
                "time difference too large between servers".to_owned(),
            ));
        }
        if let Err(e) = ctx
            .validator
            .validate_peer(req.token, &PeerInfo::new(&ctx.local, req.host))
        {
            return Err((remote, format!("auth token: {e}")));
        }
        let Some(conn) = known else {
            // Authenticated, not a host of the grid: a client participant.
            return self
                .admit_client(req.host)
                .map(|c| (c, req.id, true))
                .map_err(|why| (remote, why));
        };
        if conn.inner.dials {
            return Err((
                remote,
                "grid: expected to be client side, not server side".to_owned(),
            ));
        }
        Ok((conn.inner.clone(), req.id, false))
    }

    /// The connection of the authenticated client `name`: its current one (a reconnect
    /// replaces the session), or a new one if fewer than [`Options::max_clients`] are here.
    fn admit_client(&self, name: &str) -> Result<Arc<ConnShared>, String> {
        let ctx = &self.inner.ctx;
        let mut clients = lock(&self.inner.clients);
        if let Some(c) = clients.get(name) {
            return Ok(c.inner.clone());
        }
        let max = ctx.options.max_clients;
        if clients.len() >= max {
            return Err(format!("too many clients (limit {max})"));
        }
        let shared = Arc::new(ConnShared::with_role(ctx.clone(), &ctx.local, name, false));
        clients.insert(
            name.to_owned(),
            Connection {
                inner: shared.clone(),
            },
        );
        tracing::info!(client = %name, "grid: client joined");
        Ok(shared)
    }

    fn log_rejection(&self, remote: Option<&str>, reason: &str) {
        // The peer gets the bare reason; the log says which spellings were expected.
        let expected;
        let reason = if reason == UNKNOWN_HOST {
            let mut known: Vec<String> = self.remotes().collect();
            known.sort_unstable();
            expected = format!("{reason} (expected one of: {})", known.join(", "));
            expected.as_str()
        } else {
            reason
        };
        if let Some(conn) = remote.and_then(|r| self.find_conn(r))
            && conn.state() != State::Connected
        {
            conn.inner
                .record_failure(Error::Rejected(reason.to_owned()), true, 1);
        }
        let key = remote.unwrap_or("<unknown>").to_owned();
        if lock(&self.inner.ctx.rejections_logged).insert(key.clone()) {
            tracing::warn!(remote = %key, %reason, "grid: rejected incoming connection");
        } else {
            tracing::debug!(remote = %key, %reason, "grid: rejected incoming connection");
        }
    }

    /// Shuts down: every connection goes to [`State::Shutdown`], calls in flight end with
    /// [`Error::Shutdown`], dial loops and connection tasks stop and sockets close. Waits for
    /// the manager's tasks to finish.
    pub async fn shutdown(&self) {
        self.inner.ctx.shutdown.cancel();
        for conn in self.connections() {
            conn.inner.shutdown();
        }
        for conn in self.clients() {
            conn.inner.shutdown();
        }
        self.inner.ctx.tracker.close();
        self.inner.ctx.tracker.wait().await;
    }
}

/// Why an incoming connection was refused: the remote (when known) and the reason sent back.
type Rejection = (Option<String>, String);

/// Reads the next binary websocket message.
async fn read_binary(ws: &mut WebSocket) -> Result<Bytes, Error> {
    loop {
        match ws.next().await {
            None => return Err(Error::Disconnected),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) if m.is_binary() => return Ok(Bytes::from(m.into_payload())),
            Some(Ok(m)) if m.is_close() => return Err(Error::Disconnected),
            Some(Ok(_)) => {}
        }
    }
}

/// Sends one handshake message (flags 0, no checksum) with the write timeout.
async fn send_control<F>(
    ws: &mut WebSocket,
    op: Op,
    payload: F,
    ctx: &ManagerCtx,
) -> Result<(), Error>
where
    F: FnOnce(&mut BytesMut) -> Result<(), rgrid_proto::EncodeError>,
{
    let mut body = BytesMut::with_capacity(128);
    payload(&mut body).map_err(|e| Error::Protocol(e.to_string()))?;
    let msg = Message {
        payload: Some(&body),
        flags: Flags::NONE,
        ..Message::new(op)
    };
    let mut frame = BytesMut::with_capacity(msg.encoded_len());
    msg.encode(&mut frame)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    let send = ws.send(tokio_websockets::Message::binary(frame.freeze()));
    match tokio::time::timeout(ctx.options.write_timeout, send).await {
        Ok(res) => res.map_err(Error::from),
        Err(_) => Err(Error::Transport("handshake write timed out".into())),
    }
}

/// Dials `conn.remote` until shutdown, serving each established connection until it ends.
async fn dial_loop(conn: Arc<ConnShared>) {
    let ctx = conn.ctx.clone();
    let base = ctx.options.dial_timeout;
    conn.set_state(State::Connecting);
    let mut failures: u64 = 0;
    let mut last_warn: Option<Instant> = None;
    loop {
        if conn.stop.is_cancelled() {
            return;
        }
        let started = Instant::now();
        let attempt = tokio::select! {
            _ = conn.stop.cancelled() => return,
            res = connect_once(&conn) => res,
        };
        match attempt {
            Ok(session) => {
                failures = 0;
                tokio::select! {
                    _ = conn.stop.cancelled() => return,
                    _ = session.closed() => {}
                }
                // An established connection ended: redial at once (MinIO does the same).
            }
            Err(e) => {
                failures += 1;
                conn.record_failure(e.clone(), false, failures);
                conn.set_state(State::ConnectionError);
                // Log the first failure after a success once (a refusal by the peer or a
                // failed TLS handshake at once: retrying will not fix a wrong token or an
                // untrusted certificate), then at most once per hour.
                let hourly = last_warn.is_none_or(|t| t.elapsed().as_secs() >= 3600);
                if (failures > 1 || matches!(e, Error::Rejected(_) | Error::Tls(_))) && hourly {
                    last_warn = Some(Instant::now());
                    tracing::warn!(local = %conn.local, remote = %conn.remote, error = %e,
                        "grid: cannot connect, retrying");
                } else {
                    tracing::debug!(local = %conn.local, remote = %conn.remote, error = %e,
                        "grid: connect attempt failed");
                }
                // Next attempt 1-2 s (with the default 2 s dial timeout) after this one
                // started: (base + rand[0, base)) / 2.
                let jitter = base.mul_f64(fastrand::f64());
                let wake = started + (base + jitter) / 2;
                tokio::select! {
                    _ = conn.stop.cancelled() => return,
                    _ = tokio::time::sleep_until(wake) => {}
                }
            }
        }
    }
}

/// One dial attempt: websocket, connect message, answer, then attach.
async fn connect_once(conn: &Arc<ConnShared>) -> Result<Arc<Session>, Error> {
    let ctx = &conn.ctx;
    let mut ws = ctx.dialer.dial(&conn.remote).await?;
    ws.limits_mut()
        .set_max_payload_len(Some(MAX_HANDSHAKE_MESSAGE_SIZE));
    let token = ctx.token.token_for(&conn.remote);
    let req = ConnectRequest {
        id: ctx.id,
        host: &conn.local,
        time: GridTime::from_system_time(SystemTime::now()),
        token: &token,
    };
    send_control(&mut ws, Op::CONNECT, |b| req.encode(b), ctx).await?;
    let frame = tokio::time::timeout(ctx.options.handshake_timeout, read_binary(&mut ws))
        .await
        .map_err(|_| Error::Protocol("timed out waiting for the handshake answer".to_owned()))??;
    let msg = Message::decode(&frame, &DecodeLimits::new(ctx.options.max_message_size))?;
    if msg.op != Op::CONNECT_RESPONSE {
        return Err(Error::Protocol(format!(
            "unexpected op {} in handshake answer",
            msg.op
        )));
    }
    let resp = ConnectResponse::decode(msg.payload_bytes())?;
    if !resp.accepted {
        let mut why = resp.rejected_reason.into_owned();
        if ctx.client && why == UNKNOWN_HOST {
            why.push_str(
                " (this node joined as a client: the server must accept clients, \
                 Options::max_clients; a MinIO node never does)",
            );
        }
        return Err(Error::Rejected(why));
    }
    ws.limits_mut()
        .set_max_payload_len(Some(ctx.options.frame_limit()));
    conn.attach(ws, resp.id, true).ok_or(Error::Shutdown)
}
