//! Per-call and per-stream metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`); the names and labels are in the crate docs ("Observability").
//! Without the feature every type here is empty and every function does nothing.
//!
//! The handles of each (side, route) are registered once and cached, so a call, a stream or
//! a message records without allocating (dynamic labels would build a new key each time).
//! They are taken from the recorder installed when a route is first used: install the
//! recorder before starting the node. Calls and streams have separate caches, so a route
//! shows only the series of its kind.

use rgrid_proto::HandlerId;

use crate::error::Error;

/// Which end of a call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Call = 0,
    Serve = 1,
}

/// How a call or a stream ended: the `outcome` label, the same for calls and streams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Ok = 0,
    /// The handler failed (on the caller: [`Error::Remote`]).
    Remote = 1,
    Disconnected = 2,
    Deadline = 3,
    Cancelled = 4,
    /// Any other error (protocol, local misuse, shutdown, ...).
    Error = 5,
}

impl Outcome {
    /// The outcome of a caller's result.
    pub(crate) fn of(res: Result<(), &Error>) -> Self {
        match res {
            Ok(()) => Outcome::Ok,
            Err(Error::Remote(_)) => Outcome::Remote,
            Err(Error::Disconnected) => Outcome::Disconnected,
            Err(Error::DeadlineExceeded) => Outcome::Deadline,
            Err(Error::Cancelled) => Outcome::Cancelled,
            Err(_) => Outcome::Error,
        }
    }
}

/// The route label: the subroute's name (`service/method` for named methods), else the
/// handler's name.
pub(crate) fn label(route: Option<&str>, handler: HandlerId) -> &str {
    route.unwrap_or_else(|| handler.name().unwrap_or("unknown"))
}

#[cfg(feature = "metrics")]
mod handles {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};

    use super::Side;

    /// The `outcome` labels, indexed by [`super::Outcome`].
    const OUTCOMES: [&str; 6] = [
        "ok",
        "remote",
        "disconnected",
        "deadline",
        "cancelled",
        "error",
    ];

    /// `rgrid_bytes_total` of one (side, route): payload bytes sent and received.
    pub(super) struct Bytes {
        pub(super) sent: metrics::Counter,
        pub(super) received: metrics::Counter,
    }

    impl Bytes {
        fn new(side: &'static str, route: &str) -> Self {
            let dir = |d: &'static str| {
                metrics::counter!("rgrid_bytes_total", "side" => side,
                    "route" => route.to_owned(), "direction" => d)
            };
            Bytes {
                sent: dir("sent"),
                received: dir("received"),
            }
        }
    }

    /// The registered series of the single calls of one (side, route).
    pub(super) struct Calls {
        pub(super) outcomes: [metrics::Counter; 6],
        pub(super) seconds: metrics::Histogram,
        pub(super) in_flight: metrics::Gauge,
        pub(super) bytes: Bytes,
    }

    impl Calls {
        fn new(side: &'static str, route: &str) -> Self {
            Calls {
                outcomes: OUTCOMES.map(|o| {
                    metrics::counter!("rgrid_calls_total", "side" => side,
                        "route" => route.to_owned(), "outcome" => o)
                }),
                seconds: metrics::histogram!("rgrid_call_seconds", "side" => side,
                    "route" => route.to_owned()),
                in_flight: metrics::gauge!("rgrid_calls_in_flight", "side" => side,
                    "route" => route.to_owned()),
                bytes: Bytes::new(side, route),
            }
        }
    }

    /// The registered series of the streams of one (side, route).
    pub(super) struct Streams {
        pub(super) opened: metrics::Counter,
        pub(super) outcomes: [metrics::Counter; 6],
        pub(super) seconds: metrics::Histogram,
        pub(super) in_flight: metrics::Gauge,
        pub(super) messages_sent: metrics::Counter,
        pub(super) messages_received: metrics::Counter,
        pub(super) bytes: Bytes,
    }

    impl Streams {
        fn new(side: &'static str, route: &str) -> Self {
            let messages = |d: &'static str| {
                metrics::counter!("rgrid_stream_messages_total", "side" => side,
                    "route" => route.to_owned(), "direction" => d)
            };
            Streams {
                opened: metrics::counter!("rgrid_streams_opened_total", "side" => side,
                    "route" => route.to_owned()),
                outcomes: OUTCOMES.map(|o| {
                    metrics::counter!("rgrid_streams_total", "side" => side,
                        "route" => route.to_owned(), "outcome" => o)
                }),
                seconds: metrics::histogram!("rgrid_stream_seconds", "side" => side,
                    "route" => route.to_owned()),
                in_flight: metrics::gauge!("rgrid_streams_in_flight", "side" => side,
                    "route" => route.to_owned()),
                messages_sent: messages("sent"),
                messages_received: messages("received"),
                bytes: Bytes::new(side, route),
            }
        }
    }

    /// Per side (call, serve): the handles by route.
    type Cache<T> = [RwLock<HashMap<Arc<str>, Arc<T>>>; 2];

    /// The cached handles of (side, route), registered by `make` on first use.
    fn get<T>(
        cache: &Cache<T>,
        side: Side,
        route: &str,
        make: fn(&'static str, &str) -> T,
    ) -> Arc<T> {
        let map = &cache[side as usize];
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
        let h = Arc::new(make(side_label, route));
        map.write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(Arc::from(route))
            .or_insert(h)
            .clone()
    }

    pub(super) fn calls(side: Side, route: &str) -> Arc<Calls> {
        static CACHE: OnceLock<Cache<Calls>> = OnceLock::new();
        get(CACHE.get_or_init(Cache::default), side, route, Calls::new)
    }

    pub(super) fn streams(side: Side, route: &str) -> Arc<Streams> {
        static CACHE: OnceLock<Cache<Streams>> = OnceLock::new();
        get(CACHE.get_or_init(Cache::default), side, route, Streams::new)
    }
}

/// The clock of calls and streams (tokio's, so paused test time drives it).
#[cfg(feature = "metrics")]
type Instant = tokio::time::Instant;

/// One single call on one side: in flight from [`Call::start`] until dropped, counted once
/// by [`Call::finish`], or as cancelled when dropped without (a caller that gave up).
pub(crate) struct Call {
    #[cfg(feature = "metrics")]
    handles: std::sync::Arc<handles::Calls>,
    #[cfg(feature = "metrics")]
    started: Instant,
    #[cfg(feature = "metrics")]
    finished: bool,
}

impl Call {
    pub(crate) fn start(side: Side, route: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let handles = handles::calls(side, route);
            handles.in_flight.increment(1.0);
            Call {
                handles,
                started: Instant::now(),
                finished: false,
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (side, route);
            Call {}
        }
    }

    /// Counts `bytes` of payload sent.
    pub(crate) fn sent(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        self.handles.bytes.sent.increment(bytes as u64);
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// Counts `bytes` of payload received.
    pub(crate) fn received(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        self.handles.bytes.received.increment(bytes as u64);
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// Counts the call's end and its duration (once; the call stays in flight until
    /// dropped).
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        #[cfg(feature = "metrics")]
        if !std::mem::replace(&mut self.finished, true) {
            self.handles.outcomes[outcome as usize].increment(1);
            self.handles
                .seconds
                .record(self.started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        {
            self.finish(Outcome::Cancelled);
            self.handles.in_flight.decrement(1.0);
        }
    }
}

/// One stream on one side: opened and in flight from [`Stream::open`] until
/// [`Stream::end`] (or, without, until dropped: then counted as cancelled).
#[derive(Debug)]
pub(crate) struct Stream {
    #[cfg(feature = "metrics")]
    handles: std::sync::Arc<handles::Streams>,
    #[cfg(feature = "metrics")]
    started: Instant,
    #[cfg(feature = "metrics")]
    ended: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "metrics")]
impl std::fmt::Debug for handles::Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

impl Stream {
    /// Counts a stream opened with a first payload of `payload` bytes (sent by the caller,
    /// received by the handler's side).
    pub(crate) fn open(side: Side, route: &str, payload: usize) -> Self {
        #[cfg(feature = "metrics")]
        {
            let handles = handles::streams(side, route);
            handles.opened.increment(1);
            handles.in_flight.increment(1.0);
            let bytes = match side {
                Side::Call => &handles.bytes.sent,
                Side::Serve => &handles.bytes.received,
            };
            bytes.increment(payload as u64);
            Stream {
                handles,
                started: Instant::now(),
                ended: std::sync::atomic::AtomicBool::new(false),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (side, route, payload);
            Stream {}
        }
    }

    /// Counts one message of `bytes` sent.
    pub(crate) fn sent(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.handles.messages_sent.increment(1);
            self.handles.bytes.sent.increment(bytes as u64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// Counts one message of `bytes` received.
    pub(crate) fn received(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.handles.messages_received.increment(1);
            self.handles.bytes.received.increment(bytes as u64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// Whether the stream still waits for its end to be counted (always `false` without
    /// the feature, so callers skip working out the outcome).
    pub(crate) fn pending(&self) -> bool {
        #[cfg(feature = "metrics")]
        {
            !self.ended.load(std::sync::atomic::Ordering::Relaxed)
        }
        #[cfg(not(feature = "metrics"))]
        {
            false
        }
    }

    /// Counts the stream's end: the first call counts, later ones do nothing.
    pub(crate) fn end(&self, outcome: Outcome) {
        #[cfg(feature = "metrics")]
        if !self.ended.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.handles.outcomes[outcome as usize].increment(1);
            self.handles
                .seconds
                .record(self.started.elapsed().as_secs_f64());
            self.handles.in_flight.decrement(1.0);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
    }
}

#[cfg(feature = "metrics")]
impl Drop for Stream {
    fn drop(&mut self) {
        self.end(Outcome::Cancelled);
    }
}

/// Counts a connection re-established with `remote` (rare: registered each time).
pub(crate) fn reconnected(remote: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("rgrid_reconnects_total", "remote" => remote.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = remote;
}
