//! Per-call metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`); the names and labels are in the crate docs ("Observability"). Without the
//! feature every function here is empty.
//!
//! The handles of each (side, route) are registered once and cached, so a call records
//! without allocating (dynamic labels would build a new key per call). They are taken from
//! the recorder installed when a route is first used: install the recorder before starting
//! the node.

use std::time::Duration;

use crate::error::Error;

/// Which end of a call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Call = 0,
    Serve = 1,
}

#[cfg(feature = "metrics")]
mod handles {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};

    use super::Side;

    pub(super) const OUTCOMES: [&str; 6] = [
        "ok",
        "remote",
        "disconnected",
        "deadline",
        "cancelled",
        "error",
    ];

    /// The registered series of one (side, route).
    pub(super) struct Handles {
        pub(super) outcomes: [metrics::Counter; 6],
        pub(super) seconds: metrics::Histogram,
        pub(super) in_flight: metrics::Gauge,
    }

    /// Per side (call, serve): the handles by route.
    type Cache = [RwLock<HashMap<Arc<str>, Arc<Handles>>>; 2];

    fn cache() -> &'static Cache {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        CACHE.get_or_init(Cache::default)
    }

    pub(super) fn get(side: Side, route: &str) -> Arc<Handles> {
        let map = &cache()[side as usize];
        if let Some(h) = map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
        {
            return h.clone();
        }
        let side_label = match side {
            Side::Call => "call",
            Side::Serve => "serve",
        };
        let r: Arc<str> = Arc::from(route);
        let outcomes = OUTCOMES.map(|o| {
            metrics::counter!("rgrid_calls_total", "side" => side_label,
                "route" => r.to_string(), "outcome" => o)
        });
        let h = Arc::new(Handles {
            outcomes,
            seconds: metrics::histogram!("rgrid_call_seconds", "side" => side_label,
                "route" => r.to_string()),
            in_flight: metrics::gauge!("rgrid_calls_in_flight", "side" => side_label,
                "route" => r.to_string()),
        });
        map.write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(r)
            .or_insert(h)
            .clone()
    }
}

/// The index of a result's outcome in the outcome labels.
#[cfg(feature = "metrics")]
fn outcome(res: Result<(), &Error>) -> usize {
    match res {
        Ok(()) => 0,
        Err(Error::Remote(_)) => 1,
        Err(Error::Disconnected) => 2,
        Err(Error::DeadlineExceeded) => 3,
        Err(Error::Cancelled) => 4,
        Err(_) => 5,
    }
}

/// Counts a finished call: `res` is `Ok` or the caller's error.
pub(crate) fn call_done(side: Side, route: &str, res: Result<(), &Error>, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let h = handles::get(side, route);
        h.outcomes[outcome(res)].increment(1);
        h.seconds.record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (side, route, res, took);
}

/// Counts a served call; a handler's failure is a `remote` outcome.
pub(crate) fn served(route: &str, failed: bool, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let h = handles::get(Side::Serve, route);
        h.outcomes[usize::from(failed)].increment(1);
        h.seconds.record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (route, failed, took);
}

/// Counts a call in flight until dropped.
pub(crate) struct InFlight {
    #[cfg(feature = "metrics")]
    handles: std::sync::Arc<handles::Handles>,
}

impl InFlight {
    pub(crate) fn new(side: Side, route: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let handles = handles::get(side, route);
            handles.in_flight.increment(1.0);
            InFlight { handles }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (side, route);
            InFlight {}
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.handles.in_flight.decrement(1.0);
    }
}

/// Counts a connection re-established with `remote` (rare: registered each time).
pub(crate) fn reconnected(remote: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("rgrid_reconnects_total", "remote" => remote.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = remote;
}
