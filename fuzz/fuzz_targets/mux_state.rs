//! The per-mux accounting of `rgrid_proto::mux` (`SendSeq`, `RecvSeq`, `Credits`, `Window`)
//! driven by an arbitrary sequence of operations on one stream, both directions, with an
//! honest wire in between and a hostile peer that can inject messages and credits.
//!
//! Each direction is one sender (`SendSeq` + `Credits`, window W) and one receiver
//! (`RecvSeq` + `Window`, window W), wired the way the connection layer wires them: a sent
//! message carries the next sequence number and costs a credit; the receiver checks the
//! sequence and accounts the message in its window; consuming it releases the window slot
//! and a credit travels back; an ack fills the caller's credits once.
//!
//! Checked after every operation, against a plain-integer reference model of each struct:
//! * every result (taken / granted / accepted / released / sequence check) is what the model
//!   says, and a failed operation changes nothing ("on a mismatch nothing advances",
//!   "overflow changes nothing");
//! * credits never exceed the window, the receive buffer never exceeds the window;
//! * sequence numbers handed out are consecutive (wrapping like Go's uint32);
//! * while the peer has been honest in a direction: no honest operation ever fails, and
//!   credits + messages in flight + buffered + credits in flight back == W (conservation).
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rgrid_proto::{CreditOverflow, Credits, RecvSeq, SendSeq, SeqMismatch, Window, WindowExceeded};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dir {
    /// Caller to handler (requests).
    Up,
    /// Handler to caller (responses).
    Down,
}

#[derive(Arbitrary, Debug)]
enum Action {
    /// The sender sends one message if it has a credit.
    Send(Dir),
    /// The wire delivers the oldest message in flight.
    Deliver(Dir),
    /// The receiving application consumes one buffered message; a credit goes back.
    Consume(Dir),
    /// The wire delivers one returned credit to the sender.
    ReturnCredit(Dir),
    /// The mux ack arrives: the caller's request credits fill (once, before any send).
    Ack,
    /// Hostile: a message with an arbitrary sequence number, outside the credit window.
    InjectMessage(Dir, u32),
    /// Hostile: a credit that was never owed.
    InjectCredit(Dir),
    /// A fresh `Credits::new(available, window)` must clamp.
    NewCredits(u32, u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// First sequence number of each direction (near `u32::MAX` exercises the wrap).
    first_seq: [u32; 2],
    /// Windows (in and out capacity); small, like MinIO's.
    window: [u8; 2],
    actions: Vec<Action>,
}

/// One direction of a stream plus a reference model of each struct.
struct Lane {
    window: u32,
    // Real state.
    send_seq: SendSeq,
    credits: Credits,
    recv_seq: RecvSeq,
    recv_window: Window,
    // The wire.
    in_flight: VecDeque<u32>,
    credits_back: u32,
    // Reference model.
    model_next_send: u32,
    model_available: u32,
    model_next_recv: u32,
    model_buffered: u32,
    last_sent: Option<u32>,
    /// Waiting for the ack before any credit exists (the caller's request direction).
    awaiting_ack: bool,
    /// The peer misbehaved here; conservation no longer applies.
    tainted: bool,
}

impl Lane {
    fn new(first_seq: u32, window: u8, awaiting_ack: bool) -> Self {
        let window = u32::from(window);
        let available = if awaiting_ack { 0 } else { window };
        let credits = Credits::new(available, window);
        assert_eq!((credits.available(), credits.window()), (available, window));
        Lane {
            window,
            send_seq: SendSeq::new(first_seq),
            credits,
            recv_seq: RecvSeq::new(first_seq),
            recv_window: Window::new(window),
            in_flight: VecDeque::new(),
            credits_back: 0,
            model_next_send: first_seq,
            model_available: available,
            model_next_recv: first_seq,
            model_buffered: 0,
            last_sent: None,
            awaiting_ack,
            tainted: false,
        }
    }

    fn send(&mut self) {
        let took = self.credits.try_take();
        assert_eq!(took, self.model_available > 0);
        if !took {
            return;
        }
        self.model_available -= 1;
        let seq = self.send_seq.advance();
        assert_eq!(seq, self.model_next_send);
        if let Some(prev) = self.last_sent {
            assert_eq!(
                seq,
                prev.wrapping_add(1),
                "sequence numbers must be consecutive"
            );
        }
        self.last_sent = Some(seq);
        self.model_next_send = seq.wrapping_add(1);
        self.in_flight.push_back(seq);
    }

    /// The receiver's handling of one message with sequence `seq`: sequence first, then the
    /// window (the order the connection layer uses). Returns whether it was accepted.
    fn receive(&mut self, seq: u32) -> bool {
        match self.recv_seq.check(seq) {
            Ok(()) => {
                assert_eq!(seq, self.model_next_recv);
                self.model_next_recv = seq.wrapping_add(1);
            }
            Err(SeqMismatch { want, got }) => {
                assert_eq!((want, got), (self.model_next_recv, seq));
                assert_ne!(want, got);
                // Nothing advanced: the expected number is still expected.
                let mut probe = self.recv_seq;
                assert!(probe.check(want).is_ok());
                return false;
            }
        }
        match self.recv_window.accept() {
            Ok(()) => {
                assert!(self.model_buffered < self.window);
                self.model_buffered += 1;
                true
            }
            Err(WindowExceeded { window }) => {
                assert_eq!(window, self.window);
                assert_eq!(self.model_buffered, self.window);
                false
            }
        }
    }

    fn deliver(&mut self) {
        if let Some(seq) = self.in_flight.pop_front() {
            let ok = self.receive(seq);
            if !self.tainted {
                assert!(ok, "an honest message was refused");
            }
        }
    }

    fn consume(&mut self) {
        let released = self.recv_window.release();
        assert_eq!(released, self.model_buffered > 0);
        if released {
            self.model_buffered -= 1;
            self.credits_back += 1;
        }
    }

    fn return_credit(&mut self) {
        if self.credits_back == 0 {
            return;
        }
        self.credits_back -= 1;
        let ok = self.grant();
        if !self.tainted {
            assert!(ok, "an honest credit overflowed");
        }
    }

    fn grant(&mut self) -> bool {
        match self.credits.grant() {
            Ok(()) => {
                assert!(self.model_available < self.window);
                self.model_available += 1;
                true
            }
            Err(CreditOverflow) => {
                assert_eq!(self.model_available, self.window);
                false
            }
        }
    }

    fn ack(&mut self) {
        // The connection layer fills once, when the ack arrives before anything was sent.
        if !self.awaiting_ack {
            return;
        }
        self.awaiting_ack = false;
        self.credits.fill();
        self.model_available = self.window;
    }

    fn inject_message(&mut self, seq: u32) {
        // Past the sequence check it consumed a number (even if the window then refused it):
        // the honest messages behind it can no longer line up.
        let in_sequence = seq == self.model_next_recv;
        self.receive(seq);
        if in_sequence {
            self.tainted = true;
        }
    }

    fn inject_credit(&mut self) {
        if self.grant() {
            self.tainted = true;
        }
    }

    fn check_invariants(&self) {
        assert_eq!(self.credits.available(), self.model_available);
        assert_eq!(self.credits.window(), self.window);
        assert!(self.credits.available() <= self.credits.window());
        assert_eq!(self.recv_window.buffered(), self.model_buffered);
        assert!(self.recv_window.buffered() <= self.window);
        assert_eq!(self.send_seq, SendSeq::new(self.model_next_send));
        assert_eq!(self.recv_seq, RecvSeq::new(self.model_next_recv));
        if !self.tainted {
            let outstanding = u64::from(self.credits.available())
                + self.in_flight.len() as u64
                + u64::from(self.recv_window.buffered())
                + u64::from(self.credits_back);
            let expected = if self.awaiting_ack {
                0
            } else {
                u64::from(self.window)
            };
            assert_eq!(outstanding, expected, "credits were created or lost");
            // The receiver expects exactly the oldest message still on the wire.
            let next = self
                .in_flight
                .front()
                .copied()
                .unwrap_or(self.model_next_send);
            assert_eq!(self.model_next_recv, next);
        }
    }
}

fuzz_target!(|input: Input| {
    // Up: the caller's requests wait for the ack; Down: the handler starts with full credits.
    let mut lanes = [
        Lane::new(input.first_seq[0], input.window[0], true),
        Lane::new(input.first_seq[1], input.window[1], false),
    ];
    let lane = |d: Dir| match d {
        Dir::Up => 0,
        Dir::Down => 1,
    };
    for action in input.actions {
        match action {
            Action::Send(d) => lanes[lane(d)].send(),
            Action::Deliver(d) => lanes[lane(d)].deliver(),
            Action::Consume(d) => lanes[lane(d)].consume(),
            Action::ReturnCredit(d) => lanes[lane(d)].return_credit(),
            Action::Ack => lanes[0].ack(),
            Action::InjectMessage(d, seq) => lanes[lane(d)].inject_message(seq),
            Action::InjectCredit(d) => lanes[lane(d)].inject_credit(),
            Action::NewCredits(available, window) => {
                let c = Credits::new(available, window);
                assert_eq!(c.available(), available.min(window));
                assert_eq!(c.window(), window);
            }
        }
        for l in &lanes {
            l.check_invariants();
        }
    }
});
