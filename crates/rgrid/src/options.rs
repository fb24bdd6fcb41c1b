//! Timings and limits of a manager, with MinIO's defaults.

use std::time::Duration;

use rgrid_proto::DEFAULT_MAX_MESSAGE_SIZE;

/// The route MinIO's grid is mounted on.
pub const DEFAULT_ROUTE_PATH: &str = "/minio/grid/v1";
/// The route of MinIO's separate lock grid.
pub const LOCK_ROUTE_PATH: &str = "/minio/grid/lock/v1";

/// Timings and limits. Every field has a default; change them with struct update syntax on
/// [`Options::default`].
#[derive(Clone, Debug)]
pub struct Options {
    /// HTTP path of the websocket upgrade. Default `/minio/grid/v1`.
    pub route_path: String,
    /// Timeout of one dial attempt, TCP connect plus websocket upgrade. Default 2 s (MinIO).
    /// Also the base of the reconnect backoff: the next attempt starts 1–2 s (half of
    /// `dial_timeout + rand[0, dial_timeout)`) after the previous one started.
    pub dial_timeout: Duration,
    /// How long either side waits for the other's handshake message. Default 10 s. MinIO has
    /// no such timeout, so a peer that upgrades and then stays silent stalls its dial loop.
    pub handshake_timeout: Duration,
    /// How long one websocket write may take before the connection is dropped. Default 4 s
    /// (MinIO: 3 s + 1 s).
    pub write_timeout: Duration,
    /// Interval of connection pings, sent by both sides. A connection without a pong for twice
    /// this long is dropped. Default 10 s.
    pub ping_interval: Duration,
    /// Largest payload sent or accepted, and largest websocket message read. Default 64 MiB.
    pub max_message_size: usize,
    /// Capacity of a connection's outbound queue, in messages. Default 65535 (MinIO).
    pub out_queue: usize,
    /// Capacity of the separate control queue (pongs) that is written before data. Default 1024.
    pub control_queue: usize,
    /// Largest accepted clock difference in the handshake. Default 5 minutes.
    pub max_clock_skew: Duration,
    /// Deadline of a single request made without one. Default 60 s.
    pub default_deadline: Duration,
    /// Run a single handler's first poll on the connection's reader task, and give it a task
    /// of its own only if it does not finish at once. Default `true`: a handler that answers
    /// without waiting (locks, in-memory metadata) then costs no task spawn and no extra
    /// wake-up. The catch: code before the handler's first `.await` delays the reading of
    /// that connection, so handlers that block or burn CPU should move that work to
    /// `spawn_blocking` or set this to `false`.
    pub inline_handlers: bool,
    /// Interval of stream pings (spec §3.12). The caller pings each of its streams that has
    /// no deadline or one longer than this, and fails a stream whose handler side has been
    /// silent for two intervals with `Disconnected`; the handler side cancels a stream not
    /// pinged for four intervals (if its deadline is longer than that). Default 15 s.
    pub stream_ping_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            route_path: DEFAULT_ROUTE_PATH.to_owned(),
            dial_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(4),
            ping_interval: Duration::from_secs(10),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            out_queue: 65_535,
            control_queue: 1024,
            max_clock_skew: Duration::from_secs(5 * 60),
            default_deadline: Duration::from_secs(60),
            inline_handlers: true,
            stream_ping_interval: Duration::from_secs(15),
        }
    }
}

/// Merge limits of the writer (spec §3.7): at most this many queued messages per frame ...
pub(crate) const MAX_MERGE_MESSAGES: usize = 50;
/// ... and below this many bytes (32 KiB − 1024).
pub(crate) const MAX_MERGE_BYTES: usize = 32 * 1024 - 1024;
