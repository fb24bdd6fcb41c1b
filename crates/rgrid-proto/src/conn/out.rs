//! Owned messages on their way to the wire, and how a batch of them becomes one frame.

use bytes::{Bytes, BytesMut};

use crate::{EncodeError, Flags, HandlerId, Message, MuxId, Op, SubrouteId, put_merged_header};

/// An owned message the core hands to the writer. Payloads are [`Bytes`], so taking a
/// message out of the core never copies its payload; the writer encodes it straight into the
/// frame buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutMsg {
    /// The mux, 0 for connection-level messages.
    pub mux_id: u64,
    /// Sequence number.
    pub seq: u32,
    /// Milliseconds until the deadline, 0 for none.
    pub deadline_ms: u32,
    /// Handler id: set on requests, stream opens and replies built from a received message;
    /// 0 on a stream's follow-up messages, as Go sends them.
    pub handler: HandlerId,
    /// The operation.
    pub op: Op,
    /// Flags (the encoder derives `PAYLOAD_IS_ZERO` and `SUBROUTE`).
    pub flags: Flags,
    /// The payload; `None` is nil.
    pub payload: Option<Bytes>,
    /// The subroute, for requests and stream opens.
    pub subroute: Option<SubrouteId>,
}

impl OutMsg {
    /// A message with `op` and `flags`, everything else zero.
    pub fn new(op: Op, flags: Flags) -> Self {
        OutMsg {
            mux_id: 0,
            seq: 0,
            deadline_ms: 0,
            handler: HandlerId(0),
            op,
            flags,
            payload: None,
            subroute: None,
        }
    }

    /// The reply to `request` with another op and payload, as MinIO builds it: same mux,
    /// Seq, DeadlineMS, Handler and flags, without the subroute, plus `base` (spec §15.1,
    /// §15.3).
    pub fn reply_to(request: &Message<'_>, op: Op, base: Flags, payload: Option<Bytes>) -> Self {
        OutMsg {
            mux_id: request.mux_id.0,
            seq: request.seq,
            deadline_ms: request.deadline_ms,
            handler: request.handler,
            op,
            flags: request.flags.without(Flags::SUBROUTE).with(base),
            payload,
            subroute: None,
        }
    }

    /// The borrowed view the codec encodes.
    pub fn as_message(&self) -> Message<'_> {
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

    /// Bytes this message takes in a frame.
    pub fn encoded_len(&self) -> usize {
        self.as_message().encoded_len()
    }

    /// Payload bytes (what the outbound byte budget counts).
    pub fn payload_len(&self) -> usize {
        self.payload.as_ref().map_or(0, Bytes::len)
    }
}

/// Encodes a batch as one websocket frame: a single message, or an `OpMerged` container.
/// `frame` is cleared first. Fails only for a payload of 4 GiB or more.
pub fn encode_frame(batch: &[OutMsg], frame: &mut BytesMut) -> Result<(), EncodeError> {
    frame.clear();
    if let [only] = batch {
        frame.reserve(only.encoded_len());
        return only.as_message().encode(frame);
    }
    put_merged_header(frame, u32::try_from(batch.len()).unwrap_or(u32::MAX));
    for m in batch {
        m.as_message().encode_merged_entry(frame)?;
    }
    Ok(())
}
