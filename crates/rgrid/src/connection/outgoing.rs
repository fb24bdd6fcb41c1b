//! Messages waiting in a connection's outbound queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

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
    /// For a stream's message in the data lane: the stream's count of such messages, which
    /// the writer decrements once it has placed this one (see [`Outgoing::taken`]).
    pub(crate) queued: Option<Arc<Queued>>,
    /// Payload bytes charged to the connection's outbound byte budget, given back when the
    /// writer takes the message (0 for answers, which never wait for the budget).
    pub(crate) charged: usize,
}

/// The connection's two outbound queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Calls' requests and streams' data, bounded, with back-pressure.
    Data,
    /// Small control messages, taken by the writer before any data.
    Control,
}

/// How many of one stream's messages wait in the data lane, not yet placed by the writer.
///
/// A stream's messages carry sequence numbers, so they must leave in the order they were
/// queued, even though its control messages (credits, pings, cancels) may take the control
/// lane to overtake other calls' data. Two rules keep that order:
/// * a stream's control message takes the control lane only while none of the stream's
///   messages waits in the data lane ([`Queued::lane_for_control`]); otherwise it queues
///   behind them;
/// * the writer, having taken a message off the data lane, first moves everything already
///   in the control lane ahead of it, and only then counts it as placed. The writer cannot
///   look at both lanes at once, so a control message queued just after it found the control
///   lane empty is still placed ahead of the data message queued after it.
#[derive(Debug, Default)]
pub(crate) struct Queued(AtomicUsize);

impl Queued {
    /// The lane the stream's next control message must take.
    pub(crate) fn lane_for_control(&self) -> Lane {
        if self.0.load(Ordering::Acquire) == 0 {
            Lane::Control
        } else {
            Lane::Data
        }
    }

    /// Marks `msg` as one of the stream's messages in the data lane.
    pub(crate) fn enter(self: &Arc<Self>, msg: &mut Outgoing) {
        self.0.fetch_add(1, Ordering::AcqRel);
        msg.queued = Some(self.clone());
    }

    /// Undoes [`Queued::enter`] (the message was placed, or did not make it into the lane).
    pub(crate) fn leave(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outbound queue's bound in payload bytes.
///
/// A sender may add a message while the queued bytes are below the budget, so the queue
/// holds at most the budget plus one message per sender that got in just below it. The
/// writer gives the bytes back as it takes messages, and wakes waiting senders when the
/// queue drops below the budget.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    queued: AtomicUsize,
    max: usize,
    room: Notify,
}

impl ByteBudget {
    pub(crate) fn new(max: usize) -> Self {
        ByteBudget {
            queued: AtomicUsize::new(0),
            max: max.max(1),
            room: Notify::new(),
        }
    }

    /// Charges `bytes` at once if the queue is below the budget; false otherwise.
    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        if self.queued.load(Ordering::Acquire) < self.max {
            self.queued.fetch_add(bytes, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// Waits until the queue is below the budget, then charges `bytes`.
    pub(crate) async fn charge(&self, bytes: usize) {
        loop {
            if self.try_charge(bytes) {
                return;
            }
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_charge(bytes) {
                return;
            }
            room.await;
        }
    }

    /// Gives `bytes` back, waking waiting senders when the queue drops below the budget.
    pub(crate) fn release(&self, bytes: usize) {
        let before = self.queued.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.max && before - bytes < self.max {
            self.room.notify_waiters();
        }
    }

    /// Bytes charged and not given back.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
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
            charged: 0,
        }
    }

    /// The writer placed this message in a frame, behind everything that was in the control
    /// lane when it took the message.
    pub(crate) fn taken(&self) {
        if let Some(q) = &self.queued {
            q.leave();
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
            charged: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A model of the writer against one stream's producer, under random interleavings. The
    /// writer looks at the control lane, then at the data lane, in separate steps; with
    /// `drain_first` it then moves the control lane ahead of the data message it took, one
    /// step per message, before placing it. Returns whether every run delivered the stream's
    /// messages in order.
    fn in_order_under_interleavings(drain_first: bool) -> bool {
        #[derive(Clone, Copy)]
        enum Step {
            LookControl,
            LookData,
            Drain,
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let queued = Arc::new(Queued::default());
            let mut control: VecDeque<Outgoing> = VecDeque::new();
            let mut data: VecDeque<Outgoing> = VecDeque::new();
            let mut held: Option<Outgoing> = None;
            let (mut next_seq, mut want) = (0u32, 0u32);
            let mut step = Step::LookControl;
            // Places a message; false if it is out of order.
            let place = |m: Outgoing, want: &mut u32| {
                m.taken();
                let ok = m.seq == *want;
                *want += 1;
                ok
            };
            while want < 40 {
                if next_seq < 40 && rng.bool() {
                    let mut msg = Outgoing::new(Op::MUX_SERVER_MSG, Flags::NONE);
                    msg.seq = next_seq;
                    next_seq += 1;
                    if rng.bool() && queued.lane_for_control() == Lane::Control {
                        control.push_back(msg);
                    } else {
                        queued.enter(&mut msg);
                        data.push_back(msg);
                    }
                    continue;
                }
                let (placed, next) = match step {
                    Step::LookControl => match control.pop_front() {
                        Some(m) => (Some(m), Step::LookControl),
                        None => (None, Step::LookData),
                    },
                    Step::LookData => match data.pop_front() {
                        Some(m) if drain_first => {
                            held = Some(m);
                            (None, Step::Drain)
                        }
                        other => (other, Step::LookControl),
                    },
                    Step::Drain => match control.pop_front() {
                        Some(m) => (Some(m), Step::Drain),
                        None => (held.take(), Step::LookControl),
                    },
                };
                if let Some(m) = placed
                    && !place(m, &mut want)
                {
                    return false;
                }
                step = next;
            }
        }
        true
    }

    /// With messages of `size` bytes and the writer stalled, how many get into a queue
    /// whose byte budget is `budget`.
    fn admitted(budget: usize, size: usize) -> usize {
        let b = ByteBudget::new(budget);
        let mut n = 0;
        while b.try_charge(size) {
            n += 1;
        }
        n
    }

    #[test]
    fn byte_budget_boundaries() {
        // 10 messages of 100 bytes fill a budget of 1000 exactly; one byte less still takes
        // the tenth (the queue was below the budget when it came), one byte more an eleventh.
        assert_eq!(admitted(999, 100), 10);
        assert_eq!(admitted(1000, 100), 10);
        assert_eq!(admitted(1001, 100), 11);
    }

    #[tokio::test]
    async fn byte_budget_wakes_a_waiting_sender_when_room_appears() {
        let b = Arc::new(ByteBudget::new(100));
        assert!(b.try_charge(100));
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.charge(50).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        b.release(1);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(b.queued(), 149);
    }

    #[test]
    fn a_streams_messages_leave_in_sequence_order() {
        assert!(in_order_under_interleavings(true));
    }

    #[test]
    fn the_model_catches_placing_data_without_draining_control_first() {
        // The first writer placed a data message as soon as it took it. The benchmark hit the
        // resulting reorder once in about 40,000 two-way streams.
        assert!(!in_order_under_interleavings(false));
    }
}
