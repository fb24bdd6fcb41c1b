//! Strategies shared by the property tests.

use proptest::prelude::*;
use rgrid_proto::{Flags, HandlerId, Message, MuxId, Op, SubrouteId};

/// An owned message whose borrowed view is what the codec takes.
#[derive(Clone, Debug)]
pub(crate) struct OwnedMessage {
    pub(crate) mux_id: u64,
    pub(crate) seq: u32,
    pub(crate) deadline_ms: u32,
    pub(crate) handler: u8,
    pub(crate) op: Op,
    pub(crate) flags: u8,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) subroute: Option<[u8; 32]>,
}

impl OwnedMessage {
    pub(crate) fn view(&self) -> Message<'_> {
        Message {
            mux_id: MuxId(self.mux_id),
            seq: self.seq,
            deadline_ms: self.deadline_ms,
            handler: HandlerId(self.handler),
            op: self.op,
            flags: Flags(self.flags),
            payload: self.payload.as_deref(),
            subroute: self.subroute.map(SubrouteId),
        }
    }
}

/// Integers biased towards the boundaries of msgpack's integer forms.
fn boundary_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(127),
        Just(128),
        Just(255),
        Just(256),
        Just(65_535),
        Just(65_536),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) + 1),
        Just(u64::MAX),
        any::<u64>(),
        0u64..300,
    ]
}

fn boundary_u32() -> impl Strategy<Value = u32> {
    boundary_u64().prop_map(|v| v as u32)
}

/// Any single (non-merged) message, with or without subroute and checksum.
pub(crate) fn message() -> impl Strategy<Value = OwnedMessage> {
    let ops: Vec<Op> = Op::ALL.into_iter().filter(|op| *op != Op::MERGED).collect();
    (
        boundary_u64(),
        boundary_u32(),
        boundary_u32(),
        any::<u8>(),
        proptest::sample::select(ops),
        any::<u8>(),
        proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 250..300),
            proptest::collection::vec(any::<u8>(), 65_530..65_540),
        ]),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(mux_id, seq, deadline_ms, handler, op, flags, payload, subroute)| OwnedMessage {
                mux_id,
                seq,
                deadline_ms,
                handler,
                op,
                flags,
                payload,
                subroute,
            },
        )
}
