//! Timings and limits of a manager, with MinIO's defaults.

use std::time::Duration;

/// The route MinIO's grid is mounted on.
pub const DEFAULT_ROUTE_PATH: &str = "/minio/grid/v1";
/// The route of MinIO's separate lock grid.
pub const LOCK_ROUTE_PATH: &str = "/minio/grid/lock/v1";

/// Default of [`Options::max_message_size`]: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Largest handshake message (connect request or answer) accepted before the peer is
/// authenticated: 64 KiB. Until then the websocket layer refuses bigger frames, so an
/// unauthenticated peer cannot make a node buffer more than this per connection.
pub const MAX_HANDSHAKE_MESSAGE_SIZE: usize = 64 * 1024;

/// Bytes a received frame may have beyond [`Options::max_message_size`]: a merged frame
/// carries up to 32 KiB of small messages before a full-size one, plus message headers.
pub const FRAME_SLACK: usize = 64 * 1024;

/// Timings and limits. Every field has a default; change them with struct update syntax on
/// [`Options::default`].
///
/// # Limits and what they bound
///
/// Memory a peer can make this node hold for one connection is bounded by these limits: one
/// frame being read (`max_message_size` + [`FRAME_SLACK`]), the outbound queue
/// (`out_queue_bytes` and `out_queue` messages), answers waiting for room in it
/// (`max_pending_replies`), served requests and streams (`max_incoming_muxes`, each holding
/// at most its handler's `in_capacity` messages), and before authentication
/// `max_preauth_conns` × [`MAX_HANDSHAKE_MESSAGE_SIZE`]. Control owed to the peer (acks,
/// credits, pongs, cancels) is not queued: it is state of the live requests and streams,
/// sent ahead of data when the writer next runs, so it is bounded by them
/// (`max_incoming_muxes` on the serving side); answers that belong to no live one
/// (refusals, pongs for unknown streams) count against `max_pending_replies`. Every node of
/// a cluster should use the same `max_message_size`: a peer that sends a bigger message has
/// broken the agreement, and the connection is closed (the sender's own check makes that a
/// local [`crate::Error::MessageTooLarge`] first).
#[derive(Clone, Debug)]
pub struct Options {
    /// HTTP path of the websocket upgrade. Default `/minio/grid/v1`.
    pub route_path: String,
    /// Timeout of one dial attempt, TCP connect plus websocket upgrade. Default 2 s (MinIO).
    /// Also the base of the reconnect backoff: the next attempt starts 1–2 s (half of
    /// `dial_timeout + rand[0, dial_timeout)`) after the previous one started.
    pub dial_timeout: Duration,
    /// How long either side waits for the other's handshake message, and how long an
    /// accepted connection may take to send its HTTP upgrade request (and TLS handshake).
    /// Default 10 s. MinIO has no such timeout, so a peer that upgrades and then stays silent
    /// stalls its dial loop, and a slow client holds a socket forever.
    pub handshake_timeout: Duration,
    /// How long one websocket write may take before the connection is dropped. Default 4 s
    /// (MinIO: 3 s + 1 s).
    pub write_timeout: Duration,
    /// Interval of connection pings sent by this side. Default 1 s (MinIO pings every 10 s;
    /// a Go peer answers every ping, whatever the interval). Also the period of a peer's
    /// ping allowance ([`Options::max_pings_per_interval`]).
    pub ping_interval: Duration,
    /// Silence from the peer (nothing received: no pong, no data) after which the connection
    /// is presumed dead and dropped: every call and stream on it fails with
    /// [`crate::Error::Disconnected`] and the dialing side redials. Default 2.5 s, so a
    /// partitioned, frozen or powered-off peer is found within 2.5 s, while a live one
    /// answers a ping every [`Options::ping_interval`]. Must exceed the ping interval; raise
    /// both on links with long stalls (MinIO's Go grid waits 20 s).
    pub dead_after: Duration,
    /// Largest payload sent or accepted. Default 16 MiB ([`DEFAULT_MAX_MESSAGE_SIZE`]); the
    /// grid is meant for small messages (MinIO has no limit). A call or stream message above
    /// it fails with [`crate::Error::MessageTooLarge`] before it is sent, a handler's answer
    /// above it reaches the caller as a remote error, and a peer that sends a bigger one
    /// has its connection closed. Websocket frames are accepted up to this plus
    /// [`FRAME_SLACK`] (a merged frame).
    pub max_message_size: usize,
    /// The deepest nesting of arrays and maps (and structs, which travel as maps) that a
    /// typed payload received by this node may have. Default
    /// [`typed::MAX_DEPTH`](crate::typed::MAX_DEPTH) (64). Each level costs the decoder stack
    /// space, so a hostile payload nested without bound could overflow the stack; keep it
    /// modest.
    pub max_depth: usize,
    /// Capacity of a connection's outbound queue, in messages. Default 65535 (MinIO).
    pub out_queue: usize,
    /// Bound of a connection's outbound queue in payload bytes. Default 64 MiB. Calls and
    /// stream messages wait for room while the queued payloads add up to this or more (each
    /// waiting sender may add one message once there is room, so the queue can exceed it by
    /// one message per sender). Answers to the peer never wait: they are bounded by
    /// `max_incoming_muxes` and `max_pending_replies`.
    pub out_queue_bytes: usize,
    /// Most requests and streams served for one peer at a time, counting handlers that
    /// still run after their caller cancelled. Default 16384. An open above it is refused
    /// with a mux connect error (the caller sees a remote error naming the limit); the
    /// connection stays up. This also bounds the bookkeeping a rapid open-and-cancel flood
    /// can create.
    pub max_incoming_muxes: usize,
    /// Most answers (responses, refusals) that may wait for room in a full outbound queue,
    /// per connection. Default 4096. Past it the peer is sending requests faster than it
    /// reads the answers, and the connection is closed.
    pub max_pending_replies: usize,
    /// Most pings per ping interval a peer may send that do not belong to a stream served
    /// here (connection pings and pings for unknown streams). Default 1024; a well-behaved
    /// peer sends one connection ping per interval. Past it the connection is closed.
    pub max_pings_per_interval: u32,
    /// Most connections between TCP accept (or websocket upgrade) and a validated connect
    /// message at a time. Default 64. Others are dropped at once; each is also bounded by
    /// `handshake_timeout`.
    pub max_preauth_conns: usize,
    /// Most connections from one source address that is not a known host's (an IP literal
    /// in the host list) between accept and a validated connect message ([`crate::serve`]
    /// knows the address; a mounted service or custom transport counts only against the
    /// total). Default 8. When the total is reached, the oldest such
    /// connection from an address that is not a known host's (an IP literal in the host
    /// list) is dropped to make room, so neither one address nor many can keep a
    /// restarting peer out.
    pub max_preauth_per_addr: usize,
    /// Client participants this node accepts at once: nodes that join only to dial (an admin
    /// tool, `rgrid call`, see [`crate::Manager::client_builder`]), not in this node's host
    /// list. They authenticate like any peer, get the same per-connection limits, are never
    /// dialed back and are forgotten when they leave. Default 0: a host not in the list is
    /// refused with MinIO's "unknown incoming host" (a MinIO node always refuses clients).
    pub max_clients: usize,
    /// Largest accepted clock difference in the handshake. Default 5 minutes.
    pub max_clock_skew: Duration,
    /// Deadline of a single request made without one. Default 60 s.
    pub default_deadline: Duration,
    /// Let single handlers registered with [`crate::Manager::register_single_inline`] (or
    /// a typed [`crate::typed::SingleHandler::inline`]) run their first poll on the
    /// connection's reader task, so that one that answers without waiting costs no task.
    /// Default `true`; `false` gives every handler a task of its own. Handlers registered
    /// otherwise always run in a task of their own, so one that blocks cannot stall its
    /// connection.
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
            ping_interval: Duration::from_secs(1),
            dead_after: Duration::from_millis(2500),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_depth: crate::typed::MAX_DEPTH,
            out_queue: 65_535,
            out_queue_bytes: 64 << 20,
            max_incoming_muxes: 16_384,
            max_pending_replies: 4096,
            max_pings_per_interval: 1024,
            max_preauth_conns: 64,
            max_preauth_per_addr: 8,
            max_clients: 0,
            max_clock_skew: Duration::from_secs(5 * 60),
            default_deadline: Duration::from_secs(60),
            inline_handlers: true,
            stream_ping_interval: Duration::from_secs(15),
        }
    }
}

impl Options {
    /// Largest websocket frame accepted once a connection is authenticated.
    pub(crate) fn frame_limit(&self) -> usize {
        self.max_message_size.saturating_add(FRAME_SLACK)
    }
}

/// Merge limits of the writer (spec §3.7): at most this many queued messages per frame ...
pub(crate) const MAX_MERGE_MESSAGES: usize = 50;
/// ... and at most this many bytes (32 KiB − 1024); a message that would cross it starts
/// the next frame, and a larger one has a frame of its own (`Core::poll_transmit`).
pub(crate) const MAX_MERGE_BYTES: usize = 32 * 1024 - 1024;
