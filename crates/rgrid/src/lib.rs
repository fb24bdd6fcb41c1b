//! rgrid: fast two-way RPC between the servers of a cluster over one persistent websocket per
//! pair of servers, byte-compatible with MinIO's internode grid (protocol v1).
//!
//! # Architecture
//!
//! * [`rgrid_proto`] (re-exported as [`proto`]) is the I/O-free wire format: message tuple,
//!   merged frames, handshake maps, subroute ids, the who-dials rule.
//! * A [`Manager`] per node knows every host of the grid (itself included) and owns one
//!   [`Connection`] per remote. Which side dials is fixed by a hash of the two host names, so
//!   exactly one websocket exists per pair; the dialing side redials with jittered backoff
//!   (1–2 s after the previous attempt started) and at once after an established connection
//!   ends.
//! * Each live websocket is driven by exactly two tasks: a writer that owns the sending half
//!   and merges queued messages into `OpMerged` frames (up to 50 messages / 31 KiB), sending
//!   control messages (pongs, stream credits, pings and cancels) ahead of other calls' data
//!   while keeping each stream's own messages in sequence order, and a reader that owns the
//!   receiving half and
//!   dispatches without ever waiting: a single handler gets its first poll on the reader and
//!   moves to a task of its own if it does not answer at once
//!   ([`Options::inline_handlers`]). Everyone else holds cheap handles.
//! * The writer yields once before writing only when its previous frame merged several
//!   messages, so a lone call pays no extra wake-up and a busy connection still merges.
//! * Connection pings flow both ways every 10 s; a connection with no pong for 20 s is
//!   dropped, every call in flight on it fails with [`Error::Disconnected`], and the grid
//!   reconnects by itself.
//!
//! # Single requests: deadlines and cancellation
//!
//! [`Connection::request`] sends one payload and waits for one answer: the handler's bytes,
//! [`Error::Remote`] with the handler's error text, or a local error. The deadline (default
//! 60 s, [`Options::default_deadline`]) travels with the request; the handler is dropped when
//! it passes (its answer could not be used) and the caller gets [`Error::DeadlineExceeded`].
//! A call made while the connection is down fails at once with [`Error::Disconnected`].
//! Dropping the call's future cancels it locally at once and frees its state; a response
//! that arrives later is discarded. Like MinIO, single requests send no cancel message.
//!
//! # Streams: credits, cancellation, deadlines, liveness
//!
//! [`Manager::register_stream`] registers a [`StreamHandler`] with an input window
//! (`in_capacity`, 0 = no input) and an output window (`out_capacity`, at least 1);
//! [`Connection::open_stream`] opens a [`Stream`]. Every message needs a credit: the caller
//! sends at most `in_capacity` messages the handler has not taken yet, the handler at most
//! `out_capacity` the consumer has not taken yet, so a slow side slows its peer down instead
//! of filling memory or blocking other calls on the connection. A peer that sends beyond its
//! credits fails that stream with a protocol error. Control messages of a stream (credits,
//! pings, cancels) overtake other calls' data but never the stream's own messages.
//!
//! Dropping the stream (or its [`Responses`] half), [`Stream::cancel`], or the stream's
//! deadline cancels it on both sides; the handler's future is dropped. A lost connection
//! fails every stream on it with [`Error::Disconnected`] and cancels every handler. The
//! caller pings streams every 15 s ([`Options::stream_ping_interval`]) and fails one whose
//! handler side stayed silent for two intervals; the handler side cancels a stream not
//! pinged for four. Messages that arrived before a stream ended are always delivered before
//! its end.
//!
//! # Limits and defaults
//!
//! See [`Options`]: 64 MiB maximum message size (both directions, checked before sending and
//! by the websocket layer before allocating), 65535-message outbound queue, 10 s handshake
//! timeout (MinIO has none), 4 s write timeout, 5 minutes maximum clock skew.
//!
//! # Features
//!
//! * `test-util`: `test_util::LocalGrid` (local n-node grids, on loopback or in memory for
//!   tests on paused time) and fault hooks on [`Connection`] (`kill`, `block_inbound`). Not
//!   a stable API.

mod auth;
mod connection;
mod error;
mod handlers;
mod manager;
mod options;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod transport;
pub mod typed;

pub use rgrid_proto as proto;
pub use rgrid_proto::{HandlerId, SubrouteId};

pub use auth::{StaticToken, TokenSource, TokenValidator};
#[cfg(feature = "test-util")]
pub use connection::InboundBlock;
pub use connection::{
    ConnStats, Connection, Responses, State, Stream, StreamIn, StreamOut, StreamSender, Subroute,
};
pub use error::{Error, RemoteError};
pub use handlers::{BoxFuture, HandlerCtx, SingleHandlerFn, StreamHandler, StreamHandlerFn};
pub use manager::{HttpAuthFn, Manager, ManagerBuilder};
pub use options::{DEFAULT_ROUTE_PATH, LOCK_ROUTE_PATH, Options};
pub use transport::{ConnDialer, WebSocket, connect_ws, serve};
