//! The connection core: the whole state of one grid connection, both directions, without I/O.
//!
//! [`Core`] owns every mux of one connection: the calls and streams this side opened
//! (numbered here) and the ones it serves for the peer (numbered by the peer). It is driven
//! by three kinds of input and produces three kinds of output, in the shape of quinn-proto's
//! `Connection`:
//!
//! | inputs | outputs |
//! |---|---|
//! | received frames: [`Core::handle_frame`] | messages to transmit, pulled by the writer: [`Core::poll_transmit`] |
//! | local commands: [`Core::start_request`], [`Core::open_stream`], [`Core::stream_send`], [`Core::stream_recv`], [`Core::serve_send`], [`Core::respond`], ... | events for the async layer: [`Core::poll_event`], and wakers to wake: [`Core::take_wakers`] |
//! | the time: every call takes `now`; [`Core::handle_timeout`] | the next timer: [`Core::next_timeout`] |
//!
//! The core never reads a clock, never blocks and never allocates without a bound on
//! peer-controlled input. Wall-clock times that go on the wire (ping payloads) are passed in
//! too ([`GridTime`]).
//!
//! # Control is state
//!
//! What a mux owes the peer (an ack, credits, a pong, an EOF, a cancel, a disconnect) is a
//! field of the mux, not a queued message. The writer turns it into messages when it next
//! transmits, in the order the protocol needs, and assigns sequence numbers at that moment,
//! so a mux's messages always leave in sequence order. Answers that belong to no live mux
//! (refusals, not-found pongs, disconnects for unknown muxes) wait in one FIFO bounded by
//! [`Config::max_stateless_answers`]; a peer that keeps sending while never reading its
//! answers is disconnected when it is full. Nothing else can fill up: legitimate traffic
//! never closes a connection.
//!
//! # Credits
//!
//! Each message a consumer takes from a stream returns one credit to the peer (one
//! `OpUnblockSrvMux` or `OpUnblockClMux`, as in Go). Credits go back in batches of half the
//! window ([`credit_batch`]: windows of one or two messages return each at once): while
//! fewer are owed, the peer still holds more than half its window, so it is never kept
//! waiting for them. Owed credits below a batch also leave with anything else the connection
//! transmits (a message of any mux, a ping, an answer), merged into the same frame, so they
//! are held at most one connection ping interval. A two-way exchange then carries each
//! credit on the next message instead of a frame of its own, and a stream read as fast as it
//! arrives sends one frame of credits per half window instead of one per message. The peer's
//! view is unchanged (a Go peer counts credits the same way); only when they arrive changes.
//! A message of [`PROMPT_CREDIT_BYTES`] or more returns its credit at once, with any held.
//!
//! A stream's input credits start full: the caller may send its window's worth of input
//! right behind the open (`OpConnectMux`, then `OpMuxClientMsg`s in the same flight) instead
//! of a round trip later, and the ack adds no credits. Go's caller waits for the ack, but its
//! handler side creates the mux and its input buffer of `InCapacity` while reading the open
//! (spec §4.1), so input that follows the open is buffered like input after the ack. The
//! window is the caller's registration of the handler, as it is for every credit in MinIO
//! (the wire carries none). If the open is refused, the caller reports the refusal, which
//! arrives first; the peer's answers to the early input (one `OpDisconnectClientMux` each,
//! for a mux it does not know) find the stream ended and change nothing.
//!
//! # Scheduling
//!
//! [`Core::poll_transmit`] fills one frame: control first (connection pings and pongs, the
//! stateless answers, then each mux's owed control, round-robin), then data by [`Class`]
//! (latency before normal before bulk), round-robin among the muxes of a class, one message
//! per turn. A lower class gets one message after [`STARVATION_LIMIT`] consecutive messages of
//! higher classes while it waits, so bulk traffic slows down under load but never stops. A
//! small call therefore waits for at most one message of each busier class.
//! A message that would take the frame past its byte limit starts the next frame, so small
//! messages ahead of a large one are not held back on the peer's side until it has read and
//! checked the large one.
//!
//! The writer's order decides only what has not reached the socket yet; what a bulk stream
//! already sent sits ahead of everything else in the kernel's buffers and the peer's reader.
//! So a bulk-class stream also yields its window (the bulk gate): while latency-class muxes
//! are live on the connection (calls in flight either way), or once a latency-class message
//! has left after its last message, it sends its next message only when the peer has consumed
//! what it sent before (a credit came back for each; for messages below
//! [`PROMPT_CREDIT_BYTES`], all but the credit batch the peer may hold back). While small
//! calls flow, a bulk stream thus keeps one message ahead of its consumer, as with a window
//! of one; when they stop, it gets its whole window back after its next credit. Only data
//! is held (never an ack, an end, an error or the final disconnect), and a held stream is
//! scheduled again by the credit it waits for, which its consumer sends on reading: a held
//! stream slows, it does not stall. (That reasoning assumes both ends register the stream
//! with the same window, as MinIO's do: a consumer with a larger window holds back more
//! credits of small messages, and a held stream then waits until the consumer's node next
//! transmits, at most a connection ping interval.) Normal and latency classes are never held.
//!
//! # Deadlines and timers
//!
//! Stream deadlines (both sides), stream keepalive (pings from the caller every
//! [`Config::stream_ping_interval`], a stream silent for two intervals fails; a served stream
//! not pinged for four is cancelled), the connection ping and the pong watchdog (a connection
//! without a pong for two ping intervals is closed) are timers of the core: the shell sleeps
//! until [`Core::next_timeout`] and calls [`Core::handle_timeout`]. A single request's own
//! deadline is the caller's timer (the shell's); the core drops an answer that a served
//! request produces after its deadline.

mod out;
mod sched;
mod state;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use self::sched::{Key, Side};
use self::state::{
    ClientKind, ClientMux, ClientStream, Connect, End, Input, OwedPong, Pace, RequestState,
    ServeState, ServedRequest, ServerKind, ServerMux, ServerStream, StreamState, push_queued,
};
use crate::{
    Credits, DecodeError, DecodeLimits, Flags, Frame, GridTime, HandlerId, Message,
    MuxConnectError, Op, PingMsg, PongMsg, RecvSeq, SendSeq, SubrouteId, Window,
};

pub use self::out::{OutMsg, encode_frame, frame_len};

/// Pongs a served stream may owe at once (one per ping, as Go answers); past it the oldest
/// owed pong is dropped. A caller pings every stream ping interval, so more than one is owed
/// only while the writer is stuck for a whole interval.
pub const MAX_OWED_PONGS: usize = 8;

/// Consecutive messages of higher classes after which a waiting lower class sends one.
pub const STARVATION_LIMIT: u32 = 32;

/// The scheduling class of a mux's data. Local only: the wire has no field for it, so peers
/// (Go nodes included) are unaffected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Small, latency-critical calls: single requests and their answers by default.
    Latency = 0,
    /// Streams by default.
    #[default]
    Normal = 1,
    /// Large transfers: opt-in per handler or per call. Sent after the other classes, and
    /// held to one message ahead of its consumer while latency-class calls are in flight
    /// (the bulk gate, see "Scheduling" in the module docs).
    Bulk = 2,
}

/// Settings of one connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// Flags added to every message but connection pings: `CRC` unless both hosts use TLS.
    pub base_flags: Flags,
    /// Largest payload accepted in a received message.
    pub max_message_size: usize,
    /// Largest received frame.
    pub max_frame_size: usize,
    /// Requests and streams served for the peer at a time; more are refused.
    pub max_incoming_muxes: usize,
    /// Pings per ping interval the peer may send that belong to no served stream.
    pub max_pings_per_interval: u32,
    /// Answers that belong to no live mux (refusals, not-found pongs, disconnects of unknown
    /// muxes) waiting for the writer. Past it the peer does not read its answers, and the
    /// connection is closed.
    pub max_stateless_answers: usize,
    /// Bounds of the outbound queue (payload bytes, messages) past which the queue counts as
    /// full: callers wait for room, and answers count against `max_pending_answers`.
    pub out_queue: (usize, usize),
    /// Answers to served requests that may wait while the outbound queue is full. Past it
    /// the peer sends requests faster than it reads the answers, and the connection is
    /// closed.
    pub max_pending_answers: usize,
    /// Connection ping interval.
    pub ping_interval: Duration,
    /// Silence (no frame at all received: no pong, no data) that closes the connection as
    /// dead. Longer than `ping_interval`, so an idle live peer is heard from (its pong) in
    /// every window.
    pub dead_after: Duration,
    /// Stream ping interval (callers ping, handlers watch).
    pub stream_ping_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_flags: Flags::CRC,
            max_message_size: 16 << 20,
            max_frame_size: (16 << 20) + (64 << 10),
            max_incoming_muxes: 16384,
            max_pings_per_interval: 1024,
            max_stateless_answers: 4096,
            out_queue: (64 << 20, 65535),
            max_pending_answers: 4096,
            ping_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(20),
            stream_ping_interval: Duration::from_secs(15),
        }
    }
}

/// Why a call or stream failed, as the core sees it (the shell maps it to its error type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The remote handler's error text, or the remote's refusal.
    Remote(String),
    /// The remote went away for this call (`OpDisconnectClientMux`, a silent stream).
    Disconnected,
    /// The connection closed.
    ConnectionClosed,
    /// The call's deadline passed.
    DeadlineExceeded,
    /// Cancelled locally.
    Cancelled,
    /// A message arrived out of sequence.
    Sequence {
        /// Expected.
        want: u32,
        /// Received.
        got: u32,
    },
    /// The peer broke the stream's rules (credits).
    Protocol(String),
    /// Misuse by the local caller (sending on a closed input, ...).
    Local(&'static str),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Remote(t) => write!(f, "remote: {t}"),
            CallError::Disconnected => f.write_str("remote disconnected"),
            CallError::ConnectionClosed => f.write_str("connection closed"),
            CallError::DeadlineExceeded => f.write_str("deadline exceeded"),
            CallError::Cancelled => f.write_str("call cancelled"),
            CallError::Sequence { want, got } => {
                write!(f, "out-of-sequence item received: want {want}, got {got}")
            }
            CallError::Protocol(t) => write!(f, "protocol error: {t}"),
            CallError::Local(t) => f.write_str(t),
        }
    }
}

/// Why the core closed the connection. Each names the rule or limit that was broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// A frame could not be decoded (bad checksum, malformed, too large).
    Decode(DecodeError),
    /// More pings in one interval than allowed.
    PingFlood {
        /// The limit per interval.
        limit: u32,
    },
    /// Too many answers to the peer wait for the writer: the peer does not read.
    UnreadAnswers {
        /// The limit.
        limit: usize,
    },
    /// No pong for this long (two ping intervals).
    PongTimeout {
        /// Time since anything was last received.
        silent: Duration,
    },
    /// Closed by the local side (I/O error, shutdown, replaced).
    Local(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Decode(e) => write!(f, "protocol error from peer: {e}"),
            CloseReason::PingFlood { limit } => write!(
                f,
                "ping flood: more than {limit} pings in one ping interval (limit max_pings_per_interval)"
            ),
            CloseReason::UnreadAnswers { limit } => write!(
                f,
                "peer does not read its answers: {limit} answers waiting (limit max_pending_replies)"
            ),
            CloseReason::PongTimeout { silent } => {
                write!(
                    f,
                    "peer silent for {silent:?} (pings unanswered): presumed dead"
                )
            }
            CloseReason::Local(t) => f.write_str(t),
        }
    }
}

/// How a served stream's handler is configured (from the local registration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRoute {
    /// Input messages the caller may send ahead (0: no input).
    pub in_capacity: u32,
    /// Output messages the handler may send ahead (at least 1).
    pub out_capacity: u32,
    /// Scheduling class of the handler's output.
    pub class: Class,
}

/// The handlers registered locally, as the core needs them to accept or refuse a call.
pub trait Routes {
    /// The class of a single-request handler, or `None` if there is none.
    fn single(&self, handler: HandlerId, subroute: Option<&SubrouteId>) -> Option<Class>;
    /// A stream handler's settings, or `None` if there is none.
    fn stream(&self, handler: HandlerId, subroute: Option<&SubrouteId>) -> Option<StreamRoute>;
}

/// Something the async layer must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Run a single-request handler, then call [`Core::respond`].
    Request {
        /// The mux to answer on.
        mux: u64,
        /// The handler id.
        handler: HandlerId,
        /// The subroute, if any.
        subroute: Option<SubrouteId>,
        /// The caller's deadline, counted from arrival; `None` if it sent none.
        deadline: Option<Instant>,
        /// The request payload.
        payload: Bytes,
    },
    /// Run a stream handler (input with [`Core::serve_recv`], output with
    /// [`Core::serve_send`], then [`Core::serve_done`]).
    Stream {
        /// The mux.
        mux: u64,
        /// The handler id.
        handler: HandlerId,
        /// The subroute, if any.
        subroute: Option<SubrouteId>,
        /// The caller's deadline; `None` if it sent none.
        deadline: Option<Instant>,
        /// The initial payload.
        payload: Bytes,
    },
    /// A served stream must stop (its caller cancelled, its deadline passed, the watchdog
    /// fired, or the peer broke its rules): call [`Core::serve_done`] when the handler ends.
    /// Or a served single request's caller gave up (an rgrid caller's
    /// `OpDisconnectServerMux`): its mux is already gone, so stop the handler; a later
    /// [`Core::respond`] for it is ignored.
    Cancel {
        /// The mux.
        mux: u64,
    },
}

/// What a served stream's handler sends: a message, or its end.
#[derive(Debug)]
pub enum ServeMsg {
    /// One message.
    Data(Bytes),
    /// The handler returned: `Ok` ends the stream cleanly, `Err` with the error text.
    End(Result<(), String>),
}

/// Counters of the connection core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Calls and streams opened here that have not ended.
    pub outgoing_muxes: usize,
    /// Requests and streams served here.
    pub incoming_muxes: usize,
    /// Messages waiting for the writer (data; owed control is not counted).
    pub queued_messages: usize,
    /// Payload bytes waiting for the writer.
    pub queued_bytes: usize,
    /// Answers to no live mux waiting for the writer.
    pub stateless_answers: usize,
    /// Bulk streams the bulk gate holds until the peer returns a credit (their data counts
    /// in `queued_messages`; see "Scheduling" in the module docs).
    pub paced_streams: usize,
    /// Last connection ping round trip.
    pub last_rtt: Option<Duration>,
    /// Largest connection ping round trip.
    pub max_rtt: Option<Duration>,
}

/// The muxes of one direction by id. Looked up several times per message, so hashed with
/// foldhash (a fraction of SipHash's cost) rather than std's default; its seed is random per
/// map, so a peer that picks its mux ids cannot aim them at one bucket.
type MuxMap<V> = HashMap<u64, V, foldhash::fast::RandomState>;

/// The state of one grid connection (see the module docs).
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    limits: DecodeLimits,
    next_mux: u64,
    clients: MuxMap<ClientMux>,
    servers: MuxMap<ServerMux>,
    /// Muxes that owe control messages.
    control: VecDeque<Key>,
    /// Streams holding back credits below their batch (see "Credits" in the module docs);
    /// each listed once (`in_held`), so bounded by the live muxes.
    held: Vec<Key>,
    /// Answers that belong to no live mux, in arrival order.
    stateless: VecDeque<OutMsg>,
    /// Muxes with data to send, per class.
    ready: [VecDeque<Key>; 3],
    /// Per class: messages of higher classes sent in a row while it waited.
    waited: [u32; 3],
    /// Latency-class muxes in `clients` and `servers`: calls in flight either way.
    latency_live: usize,
    /// Bulk-class muxes in `clients` and `servers` ([`Core::bulk_live`]).
    bulk_live: usize,
    /// Latency-class messages transmitted (wrapping): the bulk gate compares it with each
    /// bulk stream's [`Pace::mark`].
    latency_sent: u64,
    owe_conn_ping: bool,
    /// A message taken for a frame it did not fit in: the next frame starts with it (see
    /// [`Core::poll_transmit`]).
    carried: Option<OutMsg>,
    /// Pongs owed for connection pings, oldest first (at most `max_pings_per_interval`).
    owe_conn_pong: VecDeque<OutMsg>,
    events: VecDeque<Event>,
    wake: Vec<Waker>,
    /// Wakers of callers whose single request was answered (see [`Core::pop_answered`]).
    answered: VecDeque<(u64, Waker)>,
    deadlines: BTreeSet<(Instant, Key)>,
    next_ping: Instant,
    next_stream_tick: Instant,
    last_pong: Instant,
    /// When a frame was last received (any frame: the peer is alive).
    last_heard: Instant,
    pings: u32,
    /// The highest mux id the peer opened a stream with (served or refused).
    max_opened: u64,
    last_ping_sent: Option<(GridTime, Instant)>,
    /// Connection pings sent (timer and [`Core::ping_now`]), and the number of the last
    /// one a pong answered.
    pings_sent: u64,
    ping_answered: u64,
    /// Wakers of [`Core::poll_pong`] callers.
    pong_waiters: Vec<Waker>,
    wall: GridTime,
    last_rtt: Option<Duration>,
    max_rtt: Option<Duration>,
    closed: Option<CloseReason>,
    queued_bytes: usize,
    queued_msgs: usize,
    /// Answers to served requests that arrived while the outbound queue was full.
    answers_queued: usize,
}

fn wake(slot: &mut Option<Waker>, into: &mut Vec<Waker>) {
    if let Some(w) = slot.take() {
        into.push(w);
    }
}

fn set_waker(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(old) if old.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

fn deadline_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The text MinIO sends for a call to a handler that is not registered (spec §15.4): the
/// handler's name, or the subroute id as Go prints a byte array (`[78 0 ...]`).
pub fn unknown_handler_text(handler: HandlerId, subroute: Option<&SubrouteId>) -> String {
    match (subroute, handler.name()) {
        (Some(sub), _) => format!("Invalid Handler for type: {sub}"),
        (None, Some(name)) => format!("Invalid Handler for type: {name}"),
        (None, None) => "Invalid Handler".to_owned(),
    }
}

impl Core {
    /// A core for a connection that came up at `now`.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let limits = DecodeLimits::new(cfg.max_message_size).with_frame_size(cfg.max_frame_size);
        Core {
            next_ping: now + cfg.ping_interval,
            next_stream_tick: now + cfg.stream_ping_interval,
            cfg,
            limits,
            next_mux: 1,
            clients: MuxMap::default(),
            servers: MuxMap::default(),
            control: VecDeque::new(),
            held: Vec::new(),
            stateless: VecDeque::new(),
            ready: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            waited: [0; 3],
            latency_sent: 0,
            latency_live: 0,
            bulk_live: 0,
            owe_conn_ping: false,
            carried: None,
            owe_conn_pong: VecDeque::new(),
            events: VecDeque::new(),
            wake: Vec::new(),
            answered: VecDeque::new(),
            deadlines: BTreeSet::new(),
            last_pong: now,
            last_heard: now,
            pings: 0,
            max_opened: 0,
            last_ping_sent: None,
            pings_sent: 0,
            ping_answered: 0,
            pong_waiters: Vec::new(),
            wall: GridTime::default(),
            last_rtt: None,
            max_rtt: None,
            closed: None,
            queued_bytes: 0,
            queued_msgs: 0,
            answers_queued: 0,
        }
    }

    /// Whether the outbound queue is at or over its bounds ([`Config::out_queue`]).
    pub fn queue_full(&self) -> bool {
        self.queued_bytes >= self.cfg.out_queue.0.max(1)
            || self.queued_msgs >= self.cfg.out_queue.1.max(1)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.closed.as_ref()
    }

    /// How many muxes the core holds state for, both directions: calls and streams of this
    /// side not yet released, and requests and streams served here. Cheap, unlike
    /// [`Core::stats`].
    pub fn live_muxes(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Whether a bulk-class call or stream is live, either direction (until the connection
    /// closes). The async layer spends less CPU on latency then (its writer does not linger
    /// for more output: a bulk transfer keeps the machine busy anyway).
    pub fn bulk_live(&self) -> bool {
        self.bulk_live > 0
    }

    /// Counters.
    pub fn stats(&self) -> CoreStats {
        CoreStats {
            outgoing_muxes: self
                .clients
                .values()
                .filter(|m| match &m.kind {
                    ClientKind::Request(RequestState::Done(_) | RequestState::Cancelling) => false,
                    ClientKind::Request(_) => true,
                    ClientKind::Stream(s) => !matches!(s.state, StreamState::Ended(_)),
                })
                .count(),
            incoming_muxes: self.servers.len(),
            queued_messages: self.queued_msgs,
            queued_bytes: self.queued_bytes,
            stateless_answers: self.stateless.len(),
            paced_streams: self
                .clients
                .values()
                .filter(|m| matches!(&m.kind, ClientKind::Stream(s) if s.pace.gated && !s.outq.is_empty()))
                .count()
                + self
                    .servers
                    .values()
                    .filter(|m| matches!(&m.kind, ServerKind::Stream(s) if s.pace.gated && !s.outq.is_empty()))
                    .count(),
            last_rtt: self.last_rtt,
            max_rtt: self.max_rtt,
        }
    }

    /// When the last connection pong arrived (or the connection came up).
    pub fn last_pong(&self) -> Instant {
        self.last_pong
    }

    /// Payload bytes and messages of data waiting for the writer.
    pub fn queued(&self) -> (usize, usize) {
        (self.queued_bytes, self.queued_msgs)
    }

    /// The next event for the async layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the wakers of everyone whose state changed into `into`; wake them after
    /// releasing whatever lock guards the core.
    pub fn take_wakers(&mut self, into: &mut Vec<Waker>) {
        into.append(&mut self.wake);
        into.extend(self.answered.drain(..).map(|(_, w)| w));
    }

    /// One waker of someone whose state changed (see [`Core::take_wakers`]), except callers
    /// of answered single requests ([`Core::pop_answered`]); lets a caller that usually
    /// wakes one task avoid collecting into a vector.
    pub fn pop_waker(&mut self) -> Option<Waker> {
        self.wake.pop()
    }

    /// The mux id and waker of a caller whose single request was answered. These are kept apart from
    /// [`Core::pop_waker`]'s so an async layer may wake them one at a time: a
    /// multi-thread runtime wakes an idle worker thread when one task wakes several others
    /// at once, which costs more than the answers are worth at low concurrency.
    pub fn pop_answered(&mut self) -> Option<(u64, Waker)> {
        self.answered.pop_front()
    }

    /// Sends a connection ping now, besides the timer's; its pong updates the round-trip
    /// time. Returns the ping's number for [`Core::poll_pong`].
    pub fn ping_now(&mut self, now: Instant, wall: GridTime) -> u64 {
        self.wall = wall;
        self.owe_conn_ping = true;
        self.pings_sent += 1;
        self.last_ping_sent = Some((wall, now));
        self.pings_sent
    }

    /// The round-trip time once a pong answered ping number `ping` (or a later one);
    /// pending (with `waker` registered) until then; an error once the connection closed.
    pub fn poll_pong(&mut self, ping: u64, waker: &Waker) -> Poll<Result<Duration, CallError>> {
        if self.closed.is_some() {
            return Poll::Ready(Err(CallError::ConnectionClosed));
        }
        match self.last_rtt {
            Some(rtt) if self.ping_answered >= ping => Poll::Ready(Ok(rtt)),
            _ => {
                if !self.pong_waiters.iter().any(|w| w.will_wake(waker)) {
                    self.pong_waiters.push(waker.clone());
                }
                Poll::Pending
            }
        }
    }

    /// Whether anything waits to be transmitted.
    pub fn has_output(&self) -> bool {
        self.carried.is_some()
            || self.owe_conn_ping
            || !self.owe_conn_pong.is_empty()
            || !self.stateless.is_empty()
            || !self.control.is_empty()
            || self.ready.iter().any(|r| !r.is_empty())
    }

    // -----------------------------------------------------------------------------------
    // Closing

    /// Closes the connection: every call and stream opened here fails with
    /// [`CallError::ConnectionClosed`], every served stream is cancelled (one
    /// [`Event::Cancel`] each), nothing more is transmitted. The first reason wins.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        self.wake.append(&mut self.pong_waiters);
        for mux in self.clients.values_mut() {
            match &mut mux.kind {
                ClientKind::Request(st) => {
                    if !matches!(st, RequestState::Done(_) | RequestState::Cancelling) {
                        *st = RequestState::Done(Err(CallError::ConnectionClosed));
                    }
                }
                ClientKind::Stream(s) => {
                    s.outq.clear();
                    // An open that never left: nothing will send it (a released stream
                    // is forgotten only once its open is gone).
                    s.connect = None;
                    s.owe_cancel = false;
                    s.owed_credits = 0;
                    s.owe_ping = false;
                    if !matches!(s.state, StreamState::Ended(_)) {
                        s.state = StreamState::Ended(End::Failed {
                            error: CallError::ConnectionClosed,
                            delivered: false,
                        });
                    }
                }
            }
            wake(&mut mux.rx_waker, &mut self.wake);
            wake(&mut mux.tx_waker, &mut self.wake);
        }
        self.latency_live = 0; // Nothing is transmitted any more: the gate is moot.
        self.bulk_live = 0;
        self.clients.retain(|_, m| match &m.kind {
            ClientKind::Stream(s) => !s.released,
            // Nobody waits for a cancelling request, and its cancel will not be sent.
            ClientKind::Request(st) => !matches!(st, RequestState::Cancelling),
        });
        for (&id, mux) in &mut self.servers {
            if let ServerKind::Stream(s) = &mut mux.kind {
                s.outq.clear();
                wake(&mut s.in_waker, &mut self.wake);
                wake(&mut s.out_waker, &mut self.wake);
                if matches!(s.state, ServeState::Open | ServeState::Ending) {
                    self.events.push_back(Event::Cancel { mux: id });
                }
                s.state = ServeState::Cancelled;
            }
        }
        self.servers
            .retain(|_, m| matches!(&m.kind, ServerKind::Stream(s) if !s.handler_done));
        self.control.clear();
        self.stateless.clear();
        for r in &mut self.ready {
            r.clear();
        }
        self.carried = None;
        self.owe_conn_ping = false;
        self.owe_conn_pong.clear();
        self.deadlines.clear();
        self.queued_bytes = 0;
        self.queued_msgs = 0;
        self.answers_queued = 0;
    }

    // -----------------------------------------------------------------------------------
    // Scheduling helpers

    fn schedule_control(&mut self, key: Key) {
        let flag = match key.side {
            Side::Client => self.clients.get_mut(&key.id).map(|m| &mut m.in_control),
            Side::Server => self.servers.get_mut(&key.id).map(|m| &mut m.in_control),
        };
        if let Some(f) = flag
            && !*f
        {
            *f = true;
            self.control.push_back(key);
        }
    }

    /// A consumed message of stream `key` owes the peer a credit (`owed` in all now): it
    /// leaves at once when `owed` reached the batch of a `window`-message window or the
    /// message was `large` ([`PROMPT_CREDIT_BYTES`]), else it is held until then or until
    /// anything else is transmitted.
    fn owe_credit(&mut self, key: Key, owed: u32, window: u32, large: bool) {
        if large || owed >= credit_batch(window) {
            return self.schedule_control(key);
        }
        let flag = match key.side {
            Side::Client => self.clients.get_mut(&key.id).map(|m| &mut m.in_held),
            Side::Server => self.servers.get_mut(&key.id).map(|m| &mut m.in_held),
        };
        if let Some(f) = flag
            && !*f
        {
            *f = true;
            self.held.push(key);
        }
    }

    /// Moves every held credit to the control queue (something is being transmitted, so
    /// they leave with it, merged into the same frame when there is room).
    fn release_held(&mut self) {
        // Drained through a vector taken out and put back, so its room is kept.
        let mut held = std::mem::take(&mut self.held);
        for key in held.drain(..) {
            let flag = match key.side {
                Side::Client => self.clients.get_mut(&key.id).map(|m| &mut m.in_held),
                Side::Server => self.servers.get_mut(&key.id).map(|m| &mut m.in_held),
            };
            if let Some(f) = flag {
                *f = false;
                self.schedule_control(key);
            }
        }
        // Scheduling control holds nothing back, so `self.held` is still empty. Room for a
        // burst of many streams is given back.
        if held.capacity() <= KEEP_HELD_ROOM {
            self.held = held;
        }
    }

    // Every mux enters and leaves the tables here, so `latency_live` and `bulk_live` stay
    // exact (until `close`, after which they are moot).

    fn insert_client(&mut self, id: u64, m: ClientMux) {
        self.count_class(m.class, true);
        self.clients.insert(id, m);
    }

    fn remove_client(&mut self, id: u64) -> Option<ClientMux> {
        let m = self.clients.remove(&id)?;
        self.count_class(m.class, false);
        Some(m)
    }

    fn insert_server(&mut self, id: u64, m: ServerMux) {
        self.count_class(m.class, true);
        self.servers.insert(id, m);
    }

    fn remove_server(&mut self, id: u64) -> Option<ServerMux> {
        let m = self.servers.remove(&id)?;
        self.count_class(m.class, false);
        Some(m)
    }

    /// Counts a mux of `class` entering (`live`) or leaving the tables.
    fn count_class(&mut self, class: Class, live: bool) {
        let n = match class {
            Class::Latency => &mut self.latency_live,
            Class::Bulk => &mut self.bulk_live,
            Class::Normal => return,
        };
        *n = if live { *n + 1 } else { n.saturating_sub(1) };
    }

    fn schedule_data(&mut self, key: Key) {
        let slot = match key.side {
            Side::Client => self
                .clients
                .get_mut(&key.id)
                .map(|m| (&mut m.in_ready, m.class)),
            Side::Server => self
                .servers
                .get_mut(&key.id)
                .map(|m| (&mut m.in_ready, m.class)),
        };
        if let Some((f, class)) = slot
            && !*f
            && let Some(ready) = self.ready.get_mut(class as usize)
        {
            *f = true;
            ready.push_back(key);
        }
    }

    fn queue_stateless(&mut self, msg: OutMsg) {
        if self.stateless.len() >= self.cfg.max_stateless_answers {
            let limit = self.cfg.max_stateless_answers;
            self.close(CloseReason::UnreadAnswers { limit });
            return;
        }
        self.stateless.push_back(msg);
    }

    fn add_deadline(&mut self, at: Instant, key: Key) {
        self.deadlines.insert((at, key));
    }

    fn remove_deadline(&mut self, at: Option<Instant>, key: Key) {
        if let Some(at) = at {
            self.deadlines.remove(&(at, key));
        }
    }
}

mod client;
mod input;
mod output;
mod server;
mod timers;

/// Held-credit slots the core keeps allocated between releases ([`Core::release_held`]).
const KEEP_HELD_ROOM: usize = 256;

/// A consumed message of this many payload bytes or more returns its credit (and any held
/// before it) at once instead of in a batch: a frame of credits costs little next to such a
/// message, and a bulk stream held by the bulk gate waits for exactly that credit (see
/// "Scheduling" in the module docs).
pub const PROMPT_CREDIT_BYTES: usize = 16 * 1024;

/// Credits a stream returns together: half its window (one at a time for windows of one or
/// two messages, where the peer needs each credit to send at all). While fewer are owed,
/// the peer still holds more than half its window, so holding them back never stalls it.
pub fn credit_batch(window: u32) -> u32 {
    if window <= 2 { 1 } else { window / 2 }
}

#[cfg(test)]
mod tests;
