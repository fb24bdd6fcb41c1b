//! Handler registries.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use rgrid_proto::{HandlerId, SubrouteId};

use crate::error::{Error, RemoteError};

/// A boxed future returned by type-erased handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A type-erased single-request handler: request payload in, response payload or remote
/// error out.
pub type SingleHandlerFn =
    Arc<dyn Fn(Bytes) -> BoxFuture<Result<Bytes, RemoteError>> + Send + Sync>;

/// Wraps an async function as a [`SingleHandlerFn`].
pub(crate) fn single_fn<F, Fut>(f: F) -> SingleHandlerFn
where
    F: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
{
    Arc::new(move |payload| Box::pin(f(payload)))
}

/// All handlers of a manager, by id and by subroute id.
#[derive(Default)]
pub(crate) struct Registry {
    single: HashMap<HandlerId, SingleHandlerFn>,
    single_sub: HashMap<SubrouteId, SingleHandlerFn>,
}

impl Registry {
    /// Registers a single handler under `id`, or under `(id, subroute)`.
    pub(crate) fn add_single(
        &mut self,
        id: HandlerId,
        subroute: Option<&str>,
        f: SingleHandlerFn,
    ) -> Result<(), Error> {
        if !id.is_valid() {
            return Err(Error::UnknownHandler(id));
        }
        let exists = match subroute {
            None => self.single.contains_key(&id),
            Some(route) => self.single_sub.contains_key(&SubrouteId::new(id, route)),
        };
        // MinIO lets tests re-register the two test ids.
        if exists && !id.is_test() {
            return Err(Error::HandlerAlreadyExists(id));
        }
        match subroute {
            None => {
                self.single.insert(id, f);
            }
            Some(route) => {
                self.single_sub.insert(SubrouteId::new(id, route), f);
            }
        }
        Ok(())
    }

    /// The single handler for a request to `id` with an optional subroute id.
    pub(crate) fn single(
        &self,
        id: HandlerId,
        subroute: Option<&SubrouteId>,
    ) -> Option<SingleHandlerFn> {
        match subroute {
            None => self.single.get(&id).cloned(),
            Some(sub) => self.single_sub.get(sub).cloned(),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("single", &self.single.keys().collect::<Vec<_>>())
            .field("single_sub", &self.single_sub.len())
            .finish()
    }
}
