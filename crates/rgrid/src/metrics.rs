//! Per-call metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`), so any exporter works (the CLI's `serve --metrics ADDR` uses Prometheus).
//! Without the feature every function here is empty.
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `rgrid_calls_total` | counter | `side` (`call` or `serve`), `route` (`service/method`, or the handler's name), `outcome` (`ok`, `remote`, `disconnected`, `deadline`, `cancelled`, `error`) |
//! | `rgrid_call_seconds` | histogram | `side`, `route` |
//! | `rgrid_calls_in_flight` | gauge | `side`, `route` |
//! | `rgrid_reconnects_total` | counter | `remote` |
//!
//! Single requests only; labels are bounded by the registered routes and the host list.

use std::time::Duration;

use crate::error::Error;

/// Which end of a call.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Call,
    Serve,
}

#[cfg(feature = "metrics")]
impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Call => "call",
            Side::Serve => "serve",
        }
    }
}

/// The outcome label of a caller's result.
#[cfg(feature = "metrics")]
fn outcome(res: Result<(), &Error>) -> &'static str {
    match res {
        Ok(()) => "ok",
        Err(Error::Remote(_)) => "remote",
        Err(Error::Disconnected) => "disconnected",
        Err(Error::DeadlineExceeded) => "deadline",
        Err(Error::Cancelled) => "cancelled",
        Err(_) => "error",
    }
}

/// Counts a finished call: `res` is `Ok` or the caller's error; a handler's failure is
/// `remote`.
pub(crate) fn call_done(side: Side, route: &str, res: Result<(), &Error>, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let (side, route) = (side.label(), route.to_owned());
        metrics::counter!("rgrid_calls_total", "side" => side, "route" => route.clone(),
            "outcome" => outcome(res))
        .increment(1);
        metrics::histogram!("rgrid_call_seconds", "side" => side, "route" => route)
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (side, route, res, took);
}

/// Counts a handler's failure as a `remote` outcome.
pub(crate) fn served(route: &str, failed: bool, took: Duration) {
    let remote = Error::Remote(crate::RemoteError::new(""));
    call_done(
        Side::Serve,
        route,
        if failed { Err(&remote) } else { Ok(()) },
        took,
    );
}

/// Counts a call in flight until dropped.
pub(crate) struct InFlight {
    #[cfg(feature = "metrics")]
    gauge: metrics::Gauge,
}

impl InFlight {
    pub(crate) fn new(side: Side, route: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let gauge = metrics::gauge!("rgrid_calls_in_flight", "side" => side.label(),
                "route" => route.to_owned());
            gauge.increment(1.0);
            InFlight { gauge }
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
        self.gauge.decrement(1.0);
    }
}

/// Counts a connection re-established with `remote`.
pub(crate) fn reconnected(remote: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("rgrid_reconnects_total", "remote" => remote.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = remote;
}
