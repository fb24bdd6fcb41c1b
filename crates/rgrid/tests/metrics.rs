//! Metrics of calls and streams on both ends (issue 15, item 6), read from a recorder of
//! this test's own: every series of a route with its exact labels and value (calls, streams
//! opened and ended by outcome, in flight, messages and payload bytes each way). The
//! recorder is global (the library caches its handles process-wide), so each test uses
//! routes of its own. Feature `metrics` only.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::{DropSignal, bounded, eventually, mem_grid_with};
use futures_util::StreamExt;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use rgrid::{
    CallOptions, Error, HandlerCtx, HandlerId, Options, RawStreamHandler, RemoteError, StreamIn,
    StreamOut,
};
use tokio::sync::mpsc;

/// A registered series' storage.
#[derive(Clone)]
enum Series {
    Counter(Arc<AtomicU64>),
    /// The gauge's `f64` bits (as `metrics` stores them in an `AtomicU64`).
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Samples>),
}

/// A histogram's recorded values.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// A series' name and its labels, sorted.
type SeriesKey = (String, Vec<(String, String)>);

/// Every series registered, by name and labels. Registering a key twice returns the same
/// storage.
#[derive(Default)]
struct Recorder(Mutex<BTreeMap<SeriesKey, Series>>);

impl Recorder {
    fn series(&self, key: &Key, make: fn() -> Series) -> Series {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        self.0
            .lock()
            .unwrap()
            .entry((key.name().to_owned(), labels))
            .or_insert_with(make)
            .clone()
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.series(key, || Series::Counter(Arc::default())) {
            Series::Counter(c) => Counter::from_arc(c),
            _ => panic!("{key:?} registered as another kind"),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.series(key, || Series::Gauge(Arc::default())) {
            Series::Gauge(g) => Gauge::from_arc(g),
            _ => panic!("{key:?} registered as another kind"),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.series(key, || Series::Histogram(Arc::default())) {
            Series::Histogram(h) => Histogram::from_arc(h),
            _ => panic!("{key:?} registered as another kind"),
        }
    }
}

/// The recorder, installed as the global one on first use (before any grid starts).
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let r: &'static Recorder = Box::leak(Box::default());
        metrics::set_global_recorder(r).expect("another recorder");
        r
    })
}

/// The series of `route` that are not zero, as `name{labels}` (without the route label) →
/// value; a histogram's value is its number of samples.
fn series(route: &str) -> BTreeMap<String, f64> {
    let all = recorder().0.lock().unwrap();
    let mut out = BTreeMap::new();
    for ((name, labels), s) in all.iter() {
        if !labels.iter().any(|(k, v)| k == "route" && v == route) {
            continue;
        }
        let value = match s {
            Series::Counter(c) => c.load(Ordering::Relaxed) as f64,
            Series::Gauge(g) => f64::from_bits(g.load(Ordering::Relaxed)),
            Series::Histogram(h) => h.0.lock().unwrap().len() as f64,
        };
        if value == 0.0 {
            continue;
        }
        let labels: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k != "route")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.insert(format!("{name}{{{}}}", labels.join(",")), value);
    }
    out
}

/// `(series, value)` pairs as [`series`] returns them.
fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
}

/// Waits (bounded, on paused time) until `route`'s series are `want`, then asserts them.
async fn assert_series(route: &str, want: &[(&str, f64)]) {
    let want = expect(want);
    // The handler's side counts after the caller may already have seen the end.
    let mut seen = BTreeMap::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < give_up {
        seen = series(route);
        if seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, want, "series of {route}");
}

/// A handler that echoes each input message.
fn echo() -> RawStreamHandler {
    RawStreamHandler::new(
        1,
        1,
        |_, _, input: Option<StreamIn>, out: StreamOut| async move {
            let mut input = input.unwrap();
            while let Some(msg) = input.recv().await {
                out.send(msg).await?;
            }
            Ok(())
        },
    )
}

/// A handler that sends one message and then fails.
fn fail_after_one() -> RawStreamHandler {
    RawStreamHandler::new(0, 1, |_, _, _, out: StreamOut| async move {
        out.send("partial").await?;
        Err(RemoteError::new("boom"))
    })
}

/// A handler that says "started" and waits to be cancelled; "dropped" when it is.
fn waiting(tx: mpsc::UnboundedSender<&'static str>) -> RawStreamHandler {
    RawStreamHandler::new(0, 1, move |ctx: HandlerCtx, _, _, _| {
        let tx = tx.clone();
        async move {
            let _guard = DropSignal(Some(tx.clone()));
            let _ = tx.send("started");
            ctx.cancelled().await;
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_stream_counts_its_messages_and_bytes_and_ends_ok() {
    recorder();
    const ROUTE: &str = "metrics/echo";
    let g = mem_grid_with(Options::default(), |_, m| {
        m.register_stream(HandlerId::TEST, Some(ROUTE), echo())
            .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let opts = CallOptions::new().subroute(ROUTE);
    let mut s = bounded(conn.open_stream_with(HandlerId::TEST, "hello", &opts))
        .await
        .unwrap();
    for i in 0..5 {
        let msg = format!("message-{i}");
        bounded(s.send(msg.clone())).await.unwrap();
        let got = bounded(s.next()).await.unwrap().unwrap();
        assert_eq!(got, Bytes::from(msg));
    }
    // Open on both ends meanwhile.
    let mid = series(ROUTE);
    assert_eq!(mid["rgrid_streams_in_flight{side=call}"], 1.0, "{mid:?}");
    assert_eq!(mid["rgrid_streams_in_flight{side=serve}"], 1.0, "{mid:?}");
    s.close_send();
    assert!(bounded(s.next()).await.is_none());
    drop(s);
    // 5 messages of 9 bytes each way; the open's 5-byte payload counts as bytes only.
    assert_series(
        ROUTE,
        &[
            ("rgrid_bytes_total{direction=received,side=call}", 45.0),
            ("rgrid_bytes_total{direction=received,side=serve}", 50.0),
            ("rgrid_bytes_total{direction=sent,side=call}", 50.0),
            ("rgrid_bytes_total{direction=sent,side=serve}", 45.0),
            (
                "rgrid_stream_messages_total{direction=received,side=call}",
                5.0,
            ),
            (
                "rgrid_stream_messages_total{direction=received,side=serve}",
                5.0,
            ),
            ("rgrid_stream_messages_total{direction=sent,side=call}", 5.0),
            (
                "rgrid_stream_messages_total{direction=sent,side=serve}",
                5.0,
            ),
            ("rgrid_stream_seconds{side=call}", 1.0),
            ("rgrid_stream_seconds{side=serve}", 1.0),
            ("rgrid_streams_opened_total{side=call}", 1.0),
            ("rgrid_streams_opened_total{side=serve}", 1.0),
            ("rgrid_streams_total{outcome=ok,side=call}", 1.0),
            ("rgrid_streams_total{outcome=ok,side=serve}", 1.0),
        ],
    )
    .await;
    g.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_the_handler_fails_ends_remote_on_both_ends() {
    recorder();
    const ROUTE: &str = "metrics/fail";
    let g = mem_grid_with(Options::default(), |_, m| {
        m.register_stream(HandlerId::TEST, Some(ROUTE), fail_after_one())
            .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let opts = CallOptions::new().subroute(ROUTE);
    let s = bounded(conn.open_stream_with(HandlerId::TEST, "", &opts))
        .await
        .unwrap();
    let mut got = Vec::new();
    let res = bounded(s.results(|m| {
        got.push(m);
        Ok(())
    }))
    .await;
    assert_eq!(got, [Bytes::from("partial")]);
    assert!(
        matches!(&res, Err(Error::Remote(e)) if e.text() == "boom"),
        "{res:?}"
    );
    assert_series(
        ROUTE,
        &[
            ("rgrid_bytes_total{direction=received,side=call}", 7.0),
            ("rgrid_bytes_total{direction=sent,side=serve}", 7.0),
            (
                "rgrid_stream_messages_total{direction=received,side=call}",
                1.0,
            ),
            (
                "rgrid_stream_messages_total{direction=sent,side=serve}",
                1.0,
            ),
            ("rgrid_stream_seconds{side=call}", 1.0),
            ("rgrid_stream_seconds{side=serve}", 1.0),
            ("rgrid_streams_opened_total{side=call}", 1.0),
            ("rgrid_streams_opened_total{side=serve}", 1.0),
            ("rgrid_streams_total{outcome=remote,side=call}", 1.0),
            ("rgrid_streams_total{outcome=remote,side=serve}", 1.0),
        ],
    )
    .await;
    g.shutdown().await;
}

/// How a test ends a stream whose handler waits until cancelled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// `CallStream::cancel`.
    Cancel,
    /// Dropping the caller's handle.
    Drop,
    /// A deadline of 1 s.
    Deadline,
    /// The connection dies under it.
    Kill,
}

/// A stream whose handler waits until cancelled, ended by `end`: both ends count `outcome`.
async fn stream_ends_with(route: &'static str, end: End, outcome: &str) {
    recorder();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let g = mem_grid_with(Options::default(), move |_, m| {
        m.register_stream(HandlerId::TEST, Some(route), waiting(tx.clone()))
            .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let mut opts = CallOptions::new().subroute(route);
    if end == End::Deadline {
        opts = opts.deadline(Duration::from_secs(1));
    }
    let mut s = bounded(conn.open_stream_with(HandlerId::TEST, "", &opts))
        .await
        .unwrap();
    assert_eq!(bounded(rx.recv()).await, Some("started"));
    let mid = series(route);
    assert_eq!(mid["rgrid_streams_in_flight{side=call}"], 1.0, "{mid:?}");
    assert_eq!(mid["rgrid_streams_in_flight{side=serve}"], 1.0, "{mid:?}");
    match end {
        End::Cancel => s.cancel(),
        End::Kill => g.conn(0, 1).kill(),
        End::Drop | End::Deadline => {}
    }
    if end != End::Drop {
        let end = bounded(s.next()).await.unwrap();
        assert!(end.is_err(), "{end:?}");
        assert!(bounded(s.next()).await.is_none());
    }
    drop(s);
    assert_eq!(bounded(rx.recv()).await, Some("dropped"));
    let call = format!("rgrid_streams_total{{outcome={outcome},side=call}}");
    let serve = format!("rgrid_streams_total{{outcome={outcome},side=serve}}");
    assert_series(
        route,
        &[
            ("rgrid_stream_seconds{side=call}", 1.0),
            ("rgrid_stream_seconds{side=serve}", 1.0),
            ("rgrid_streams_opened_total{side=call}", 1.0),
            ("rgrid_streams_opened_total{side=serve}", 1.0),
            (&call, 1.0),
            (&serve, 1.0),
        ],
    )
    .await;
    eventually("no mux left", || {
        let s = g.conn(0, 1).stats();
        s.outgoing_muxes == 0 && g.conn(1, 0).stats().incoming_muxes == 0
    })
    .await;
    g.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_stream_ends_cancelled_on_both_ends() {
    stream_ends_with("metrics/cancel", End::Cancel, "cancelled").await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_ends_cancelled_on_both_ends() {
    stream_ends_with("metrics/drop", End::Drop, "cancelled").await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_past_its_deadline_ends_deadline_on_both_ends() {
    stream_ends_with("metrics/deadline", End::Deadline, "deadline").await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_on_a_dying_connection_ends_disconnected_on_both_ends() {
    stream_ends_with("metrics/kill", End::Kill, "disconnected").await;
}

#[tokio::test(start_paused = true)]
async fn single_calls_count_outcomes_and_bytes_on_both_ends() {
    recorder();
    const ROUTE: &str = "metrics/single";
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let g = mem_grid_with(Options::default(), move |_, m| {
        let tx = tx.clone();
        m.register_single_subroute(HandlerId::TEST2, ROUTE, move |p: Bytes| {
            let tx = tx.clone();
            async move {
                match &p[..] {
                    b"fail" => Err(RemoteError::new("no")),
                    b"wait" => {
                        let _guard = DropSignal(Some(tx.clone()));
                        let _ = tx.send("started");
                        std::future::pending::<Result<Bytes, RemoteError>>().await
                    }
                    _ => Ok(Bytes::from_static(b"answer")),
                }
            }
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let opts = CallOptions::new().subroute(ROUTE);
    let answer = bounded(conn.request_with(HandlerId::TEST2, "question", &opts)).await;
    assert_eq!(answer.unwrap(), "answer");
    let failed = bounded(conn.request_with(HandlerId::TEST2, "fail", &opts)).await;
    assert!(matches!(failed, Err(Error::Remote(_))), "{failed:?}");
    // A caller that gives up: its future is dropped once the handler runs.
    let call = conn.request_with(HandlerId::TEST2, "wait", &opts);
    tokio::select! {
        _ = call => panic!("answered"),
        started = rx.recv() => assert_eq!(started, Some("started")),
    }
    assert_eq!(bounded(rx.recv()).await, Some("dropped"));
    assert_series(
        ROUTE,
        &[
            // "question", "fail" and "wait"; only the first is answered with bytes.
            ("rgrid_bytes_total{direction=received,side=call}", 6.0),
            ("rgrid_bytes_total{direction=received,side=serve}", 16.0),
            ("rgrid_bytes_total{direction=sent,side=call}", 16.0),
            ("rgrid_bytes_total{direction=sent,side=serve}", 6.0),
            ("rgrid_call_seconds{side=call}", 3.0),
            ("rgrid_call_seconds{side=serve}", 3.0),
            ("rgrid_calls_total{outcome=cancelled,side=call}", 1.0),
            ("rgrid_calls_total{outcome=cancelled,side=serve}", 1.0),
            ("rgrid_calls_total{outcome=ok,side=call}", 1.0),
            ("rgrid_calls_total{outcome=ok,side=serve}", 1.0),
            ("rgrid_calls_total{outcome=remote,side=call}", 1.0),
            ("rgrid_calls_total{outcome=remote,side=serve}", 1.0),
        ],
    )
    .await;
    g.shutdown().await;
}
