//! Messages waiting in a connection's outbound queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use rgrid_proto::{Flags, HandlerId, Message, MuxId, Op, SubrouteId};

/// An owned message on its way to the writer task, which encodes it straight into the frame
/// buffer (no per-message buffer, no copy of the payload before the frame).
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(crate) mux_id: u64,
    pub(crate) seq: u32,
    pub(crate) deadline_ms: u32,
    pub(crate) handler: HandlerId,
    pub(crate) op: Op,
    pub(crate) flags: Flags,
    pub(crate) payload: Option<Bytes>,
    pub(crate) subroute: Option<SubrouteId>,
    /// For stream messages in the data queue: the stream's count of queued data messages,
    /// which the writer decrements as it takes this one (see [`Outgoing::taken`]).
    pub(crate) queued: Option<Arc<AtomicUsize>>,
}

impl Outgoing {
    /// A message with the given op and flags and everything else zero.
    pub(crate) fn new(op: Op, flags: Flags) -> Self {
        Outgoing {
            mux_id: 0,
            seq: 0,
            deadline_ms: 0,
            handler: HandlerId(0),
            op,
            flags,
            payload: None,
            subroute: None,
            queued: None,
        }
    }

    /// The writer took this message off the data queue.
    pub(crate) fn taken(&self) {
        if let Some(q) = &self.queued {
            q.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The borrowed view the codec encodes.
    pub(crate) fn as_message(&self) -> Message<'_> {
        Message {
            mux_id: MuxId(self.mux_id),
            seq: self.seq,
            deadline_ms: self.deadline_ms,
            handler: self.handler,
            op: self.op,
            flags: self.flags,
            payload: self.payload.as_deref(),
            subroute: self.subroute,
        }
    }

    /// The reply to `request` with another op and payload, as MinIO builds it: same mux, Seq,
    /// DeadlineMS, Handler and flags, without the subroute, plus the base flags (spec §15.3).
    pub(crate) fn reply_to(
        request: &Message<'_>,
        op: Op,
        base: Flags,
        payload: Option<Bytes>,
    ) -> Self {
        Outgoing {
            mux_id: request.mux_id.0,
            seq: request.seq,
            deadline_ms: request.deadline_ms,
            handler: request.handler,
            op,
            flags: request.flags.without(Flags::SUBROUTE).with(base),
            payload,
            subroute: None,
            queued: None,
        }
    }
}
