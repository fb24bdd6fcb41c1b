//! What the connections of a manager share ([`ManagerCtx`]): options, the handler registry,
//! the shutdown signal and task tracker, the node's identity, and its authentication,
//! dialing and TLS settings. The manager builds it; connections and sessions read it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{HttpAuthFn, TokenSource, TokenValidator};
use crate::handlers::Registry;
use crate::options::Options;
use crate::transport::dial::ConnDialer;
#[cfg(feature = "tls")]
use crate::transport::tls::TlsConfig;

/// What the connections of a manager share.
pub(crate) struct ManagerCtx {
    pub(crate) options: Options,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) id: [u8; 16],
    pub(crate) local: String,
    /// This node is a client participant.
    pub(crate) client: bool,
    pub(crate) token: Arc<dyn TokenSource>,
    pub(crate) validator: Arc<dyn TokenValidator>,
    pub(crate) dialer: Arc<dyn ConnDialer>,
    pub(crate) http_auth: Option<HttpAuthFn>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
    /// Remotes whose rejection was already logged (logged once each).
    pub(crate) rejections_logged: Mutex<HashSet<String>>,
    /// Slots for connections that have not completed the handshake
    /// ([`Options::max_preauth_conns`]).
    pub(crate) preauth: Arc<crate::admission::Admission>,
}

impl ManagerCtx {
    /// The handler registry, for lookups (a poisoned lock is recovered: every write leaves
    /// it consistent).
    pub(crate) fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The handler registry, for registrations (a poisoned lock is recovered).
    pub(crate) fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
