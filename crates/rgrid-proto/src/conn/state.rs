//! The lifecycle of each mux, one enum per kind, and the per-mux records the core keeps.
//!
//! A mux is one call on the connection: a single request or a stream, seen from the side
//! that made it (the *client* side, muxes numbered by this side) or from the side that
//! serves it (the *server* side, muxes numbered by the peer). The two id spaces are
//! independent, so the core keeps them in two tables.
//!
//! What a mux owes the peer (an ack, credits, a pong, an EOF, a cancel, the final
//! disconnect) is recorded here as state, not queued as messages: the writer turns it into
//! messages when it next transmits (see the scheduler in [`super::sched`]). So memory for
//! control traffic is bounded by the number of live muxes, whatever the traffic pattern.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;

use super::{CallError, Class};
use crate::{Credits, GridTime, HandlerId, RecvSeq, SendSeq, SubrouteId, Window};

/// A single request made from this side.
///
/// ```text
///   start_request ──> Queued ──(writer takes it)──> Sent ──(OpResponse / connect error)──> Done
///        │               │                            │                                    │
///        │               │                         abandon                   poll_response ──┘
///        │               │                            v
///        │               │                       Cancelling ──(writer sends OpDisconnectServerMux)──┐
///        └───────────────┴──── abandon / connection closed ─────────────────────> (removed) <──────┘
/// ```
/// A request abandoned after it left owes the handler side an `OpDisconnectServerMux`, so an
/// rgrid handler is cancelled. MinIO sends nothing here (single requests have no cancel) and
/// a Go peer ignores a disconnect for a mux it does not stream, so this stays grid v1. A late
/// response finds no mux (or a cancelling one) and is dropped.
#[derive(Debug)]
pub(crate) enum RequestState {
    /// Waiting for the writer: the request message itself.
    Queued {
        payload: Bytes,
        subroute: Option<SubrouteId>,
        deadline_ms: u32,
    },
    /// On the wire; waiting for the answer.
    Sent,
    /// Abandoned after it left: owes the handler side an `OpDisconnectServerMux` (control),
    /// then is forgotten.
    Cancelling,
    /// The outcome, until the caller polls it.
    Done(Result<Bytes, CallError>),
}

/// The caller's side of a stream.
///
/// ```text
///                 open_stream
///                      │
///                      v
///               ┌────────────┐  OpAckMux   ┌──────┐
///               │ Connecting │ ──────────> │ Open │
///               └────────────┘             └──────┘
///                      │  connect error,       │  final OpMuxServerMsg (EOF, maybe ERR),
///                      │  cancel, deadline,    │  OpDisconnectClientMux, cancel, deadline,
///                      │  ping timeout         │  ping timeout, sequence or credit error
///                      v                       v
///               ┌──────────────────────────────────┐
///               │ Ended(Eof | Failed)              │ buffered responses are still read,
///               └──────────────────────────────────┘ then the end is reported once
///                      │  released by the caller's handle, nothing owed
///                      v
///                  (removed)
/// ```
/// The input half has its own small lifecycle ([`Input`]).
#[derive(Debug)]
pub(crate) enum StreamState {
    /// `OpConnectMux` queued or sent, no ack yet: no input may be sent.
    Connecting,
    /// Acked: input flows within its credits.
    Open,
    /// Ended; see [`End`].
    Ended(End),
}

/// How a stream ended, as the caller sees it.
#[derive(Debug)]
pub(crate) enum End {
    /// The handler finished without error.
    Eof,
    /// The stream failed; `delivered` once the consumer saw the error.
    Failed { error: CallError, delivered: bool },
}

/// The caller's input half of a stream.
///
/// ```text
///   Open ──close_send──> Closing ──(queued input sent, EOF sent)──> Closed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// Messages may be sent.
    Open,
    /// Closed by the caller: the EOF goes out after the messages already queued.
    Closing,
    /// The EOF was sent (or the handler takes no input).
    Closed,
}

/// The opening message of a stream, until the writer takes it.
#[derive(Debug)]
pub(crate) struct Connect {
    pub(crate) payload: Bytes,
    pub(crate) subroute: Option<SubrouteId>,
    pub(crate) deadline_ms: u32,
}

/// How far a stream's output runs ahead of the peer's consumer: what the bulk gate reads
/// (see "Scheduling" in the module docs).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Messages that took a credit, were transmitted, and were not credited back yet.
    pub(crate) unacked: u32,
    /// [`super::Core`]'s count of latency-class messages sent when the last one left.
    pub(crate) mark: u64,
    /// Held back by the gate and out of the ready queue until a credit comes back.
    pub(crate) gated: bool,
    /// Whether the last message sent was large enough for the peer to credit it back at
    /// once ([`super::PROMPT_CREDIT_BYTES`]), with every credit it held before.
    pub(crate) last_large: bool,
}

impl Pace {
    /// A message of `len` payload bytes that took a credit was transmitted.
    pub(crate) fn sent(&mut self, latency_sent: u64, len: usize) {
        self.unacked = self.unacked.saturating_add(1);
        self.mark = latency_sent;
        self.last_large = len >= super::PROMPT_CREDIT_BYTES;
    }

    /// A credit came back; whether the stream was held back by the gate (it must be
    /// scheduled again).
    pub(crate) fn credited(&mut self) -> bool {
        self.unacked = self.unacked.saturating_sub(1);
        std::mem::take(&mut self.gated)
    }

    /// Whether the gate holds the next message of a stream of `window` credits: small calls
    /// flow (`latency_live`, or a latency-class message left since the last one), and a
    /// message is not credited back yet. The peer returns the credit of a large last message
    /// at once, with all it held; after a small one it may hold up to a credit batch less one
    /// ([`super::credit_batch`]), so the gate then holds only at a whole batch (holding at
    /// fewer could wait for nothing).
    pub(crate) fn holds(&self, latency_live: bool, latency_sent: u64, window: u32) -> bool {
        let limit = if self.last_large {
            1
        } else {
            super::credit_batch(window)
        };
        (latency_live || self.mark != latency_sent) && self.unacked >= limit
    }
}

/// A stream opened from this side.
#[derive(Debug)]
pub(crate) struct ClientStream {
    pub(crate) state: StreamState,
    pub(crate) input: Input,
    pub(crate) connect: Option<Connect>,
    /// Input messages waiting for the writer (bounded by the credits).
    pub(crate) outq: VecDeque<Bytes>,
    /// Responses waiting for the consumer (bounded by the window).
    pub(crate) responses: VecDeque<Bytes>,
    pub(crate) credits: Credits,
    pub(crate) window: Window,
    /// Owed: `OpUnblockSrvMux` messages, one per response consumed.
    pub(crate) owed_credits: u32,
    /// Owed: a stream ping.
    pub(crate) owe_ping: bool,
    /// Owed: `OpDisconnectServerMux` (the caller cancelled or gave up).
    pub(crate) owe_cancel: bool,
    /// Whether the handle was released (nothing will read the rest).
    pub(crate) released: bool,
    /// When the handler side last showed it is alive.
    pub(crate) last_alive: Instant,
    /// Whether the keepalive pings this stream (no deadline, or a long one).
    pub(crate) pinged: bool,
    /// Input sent ahead of the handler (the bulk gate).
    pub(crate) pace: Pace,
}

/// A mux opened from this side.
#[derive(Debug)]
pub(crate) struct ClientMux {
    pub(crate) handler: HandlerId,
    pub(crate) class: Class,
    pub(crate) deadline: Option<Instant>,
    pub(crate) send_seq: SendSeq,
    pub(crate) recv_seq: RecvSeq,
    pub(crate) kind: ClientKind,
    pub(crate) in_control: bool,
    /// Listed in [`super::Core`]'s held credits.
    pub(crate) in_held: bool,
    pub(crate) in_ready: bool,
    /// The consumer (or the waiting caller of a single request).
    pub(crate) rx_waker: Option<Waker>,
    /// A sender waiting for a credit.
    pub(crate) tx_waker: Option<Waker>,
}

#[derive(Debug)]
pub(crate) enum ClientKind {
    Request(RequestState),
    Stream(Box<ClientStream>),
}

/// A stream served on this side.
///
/// ```text
///   OpConnectMux ──> Open ──handler returned, final message queued──> Ending
///                     │                                                  │ final message sent
///                     │ OpDisconnectServerMux, deadline, watchdog,       v
///                     │ sequence or credit error                      Closing ──> (removed once
///                     v                                                  ^   OpDisconnectClientMux
///                 Cancelled ──────────── handler done ───────────────────┘   is sent)
/// ```
/// The ack is owed from the start and leaves before anything else of the mux. While
/// `Cancelled`, nothing but an error message already queued and the final disconnect is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServeState {
    /// The handler runs.
    Open,
    /// The handler returned; its final message is queued.
    Ending,
    /// The handler was told to stop; waiting for it to finish.
    Cancelled,
    /// Owes `OpDisconnectClientMux` once the queue is empty, then is removed.
    Closing,
}

/// A pong owed for a stream ping.
#[derive(Debug, Clone)]
pub(crate) struct OwedPong {
    pub(crate) seq: u32,
    pub(crate) deadline_ms: u32,
    pub(crate) handler: HandlerId,
    pub(crate) flags: crate::Flags,
    pub(crate) t: GridTime,
    pub(crate) err: Option<String>,
}

/// A stream served here.
#[derive(Debug)]
pub(crate) struct ServerStream {
    pub(crate) state: ServeState,
    pub(crate) in_capacity: u32,
    /// Caller messages waiting for the handler (bounded by the window).
    pub(crate) inbound: VecDeque<Bytes>,
    pub(crate) window: Window,
    pub(crate) input_closed: bool,
    /// Output credits.
    pub(crate) credits: Credits,
    /// Output waiting for the writer: flags and payload of `OpMuxServerMsg`s.
    pub(crate) outq: VecDeque<(crate::Flags, Option<Bytes>)>,
    pub(crate) owe_ack: bool,
    pub(crate) owed_credits: u32,
    /// Pongs owed, one per ping like Go; at most [`super::MAX_OWED_PONGS`] (the oldest
    /// is dropped past that, so a ping flood on one stream holds bounded memory).
    pub(crate) owe_pong: VecDeque<OwedPong>,
    pub(crate) handler_done: bool,
    pub(crate) last_ping: Instant,
    pub(crate) watched: bool,
    pub(crate) in_waker: Option<Waker>,
    pub(crate) out_waker: Option<Waker>,
    /// Output sent ahead of the caller (the bulk gate).
    pub(crate) pace: Pace,
}

/// A single request served here, until its answer is sent.
#[derive(Debug)]
pub(crate) struct ServedRequest {
    pub(crate) seq: u32,
    /// The answer: extra flags and payload.
    pub(crate) answer: Option<(crate::Flags, Bytes)>,
}

/// A mux served on this side.
#[derive(Debug)]
pub(crate) struct ServerMux {
    pub(crate) class: Class,
    pub(crate) deadline: Option<Instant>,
    pub(crate) send_seq: SendSeq,
    pub(crate) recv_seq: RecvSeq,
    pub(crate) kind: ServerKind,
    pub(crate) in_control: bool,
    /// Listed in [`super::Core`]'s held credits.
    pub(crate) in_held: bool,
    pub(crate) in_ready: bool,
}

#[derive(Debug)]
pub(crate) enum ServerKind {
    Request(ServedRequest),
    Stream(Box<ServerStream>),
}

/// Slots a stream's message queue reserves at its first message: its window, up to this.
/// Each queue holds at most a window of messages (the sender's credits, or the window the
/// peer's sends are checked against), so reserving it at once replaces the growth from 4 to
/// 8 to 16 slots (a reallocation and a copy each) with one allocation, and an idle stream
/// still allocates nothing. Larger windows grow past this as messages arrive.
const FIRST_RESERVE: u32 = 16;

/// Appends `item` to a stream's message queue, bounded by `window` messages: the first
/// message reserves the window's slots (up to [`FIRST_RESERVE`]).
pub(crate) fn push_queued<T>(q: &mut VecDeque<T>, item: T, window: u32) {
    if q.capacity() == 0 {
        q.reserve_exact(window.clamp(1, FIRST_RESERVE) as usize);
    }
    q.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first message reserves the window (up to `FIRST_RESERVE`), so a window's worth of
    /// messages never regrows the queue; nothing is reserved before it.
    #[test]
    fn a_queue_reserves_its_window_at_the_first_message() {
        for window in [1u32, 2, 16] {
            let mut q: VecDeque<u32> = VecDeque::new();
            assert_eq!(q.capacity(), 0, "an idle stream allocates nothing");
            push_queued(&mut q, 0, window);
            let cap = q.capacity();
            assert!(cap >= window as usize, "window {window}: room for {cap}");
            for i in 1..window {
                push_queued(&mut q, i, window);
            }
            assert_eq!(q.capacity(), cap, "window {window}: the queue grew");
        }
        // A larger window reserves `FIRST_RESERVE` and grows past it as needed.
        let mut q: VecDeque<u32> = VecDeque::new();
        for i in 0..100 {
            push_queued(&mut q, i, 1000);
        }
        assert_eq!(q.len(), 100);
        assert!(q.iter().copied().eq(0..100));
    }
}
