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

/// The exact number of bytes [`encode_frame`] writes for `batch`, so a writer can size a
/// buffer of its own for a large frame (one allocation, no growth).
pub fn frame_len(batch: &[OutMsg]) -> usize {
    if let [only] = batch {
        return only.encoded_len();
    }
    // The merged header: a 7-element array, MuxID 0, Seq = count, then 6 fixed bytes.
    let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
    let header = 2 + crate::msgpack::uint_len(count) + 6;
    batch.iter().fold(header, |n, m| {
        let len = m.encoded_len();
        n + crate::msgpack::bin_header_len(len) + len
    })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn msg(mux_id: u64, payload: Option<usize>, subroute: bool) -> OutMsg {
        OutMsg {
            mux_id,
            seq: 3,
            deadline_ms: 60_000,
            handler: HandlerId(9),
            op: Op::REQUEST,
            flags: Flags(0),
            payload: payload.map(|n| Bytes::from(vec![7u8; n])),
            subroute: subroute.then(|| SubrouteId::new(HandlerId(9), "x")),
        }
    }

    #[test]
    fn frame_len_is_exact_for_single_and_merged_frames() {
        let sizes = [
            None,
            Some(0),
            Some(1),
            Some(200),
            Some(70_000),
            Some(300_000),
        ];
        let mut frame = BytesMut::new();
        for count in [1usize, 2, 3, 127, 128, 300] {
            let batch: Vec<OutMsg> = (0..count)
                .map(|i| msg(i as u64 * 1_000_003, sizes[i % sizes.len()], i % 2 == 0))
                .collect();
            encode_frame(&batch, &mut frame).unwrap();
            assert_eq!(frame_len(&batch), frame.len(), "{count} messages");
        }
    }
}
