//! Per-mux accounting of streams, without I/O: sequence numbers (spec §3.11) and message
//! credits (spec §4.2).
//!
//! The async layer keeps one of each per open stream, behind the stream's lock, and turns
//! every error here into the end of that stream (never of the connection).

use core::fmt;

/// The sequence number the next message sent on a mux gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendSeq(u32);

impl SendSeq {
    /// Starts at `first`.
    pub const fn new(first: u32) -> Self {
        SendSeq(first)
    }

    /// Returns the number for the next message and advances (wrapping like Go's uint32).
    pub fn advance(&mut self) -> u32 {
        let n = self.0;
        self.0 = self.0.wrapping_add(1);
        n
    }
}

/// The sequence number the next checked message received on a mux must carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvSeq(u32);

/// A message arrived out of sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqMismatch {
    /// The sequence number expected.
    pub want: u32,
    /// The sequence number received.
    pub got: u32,
}

impl fmt::Display for SeqMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // MinIO's text, so a Go peer's logs read the same.
        write!(
            f,
            "receive sequence number mismatch. want {}, got {}",
            self.want, self.got
        )
    }
}

impl RecvSeq {
    /// Expects `first` next.
    pub const fn new(first: u32) -> Self {
        RecvSeq(first)
    }

    /// Checks `got` and advances. On a mismatch nothing advances: the mux must end.
    pub fn check(&mut self, got: u32) -> Result<(), SeqMismatch> {
        if got != self.0 {
            return Err(SeqMismatch { want: self.0, got });
        }
        self.0 = self.0.wrapping_add(1);
        Ok(())
    }
}

/// Send credits of one direction of a stream: how many messages may be sent before the peer
/// returns a credit. Never exceeds its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credits {
    available: u32,
    window: u32,
}

/// A peer returned more credits than it was ever given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditOverflow;

impl Credits {
    /// `available` credits now, at most `window` ever.
    pub fn new(available: u32, window: u32) -> Self {
        Credits {
            available: available.min(window),
            window,
        }
    }

    /// Credits that can be spent now.
    pub fn available(&self) -> u32 {
        self.available
    }

    /// The window size.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Spends one credit if there is one.
    pub fn try_take(&mut self) -> bool {
        if self.available == 0 {
            return false;
        }
        self.available -= 1;
        true
    }

    /// Gives back one credit. More than the window is an overflow and changes nothing.
    pub fn grant(&mut self) -> Result<(), CreditOverflow> {
        if self.available >= self.window {
            return Err(CreditOverflow);
        }
        self.available += 1;
        Ok(())
    }

    /// Fills the window (the caller's request credits when the ack arrives).
    pub fn fill(&mut self) {
        self.available = self.window;
    }
}

/// The receiving side of a credit window: messages the peer may still send before this side
/// gives a credit back. A message beyond the window is a protocol violation by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    buffered: u32,
    window: u32,
}

/// The peer sent more messages than it had credits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowExceeded {
    /// The window size.
    pub window: u32,
}

impl Window {
    /// A window of `window` messages, empty.
    pub fn new(window: u32) -> Self {
        Window {
            buffered: 0,
            window,
        }
    }

    /// The window, in messages.
    pub fn size(&self) -> u32 {
        self.window
    }

    /// Messages received and not yet released.
    pub fn buffered(&self) -> u32 {
        self.buffered
    }

    /// Accounts for one received message.
    pub fn accept(&mut self) -> Result<(), WindowExceeded> {
        if self.buffered >= self.window {
            return Err(WindowExceeded {
                window: self.window,
            });
        }
        self.buffered += 1;
        Ok(())
    }

    /// One message was consumed: a credit goes back to the peer. Returns false if nothing
    /// was buffered (no credit to return).
    pub fn release(&mut self) -> bool {
        if self.buffered == 0 {
            return false;
        }
        self.buffered -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_advance_and_detect_gaps() {
        let mut s = SendSeq::new(0);
        assert_eq!((s.advance(), s.advance(), s.advance()), (0, 1, 2));
        let mut r = RecvSeq::new(1);
        assert_eq!(r.check(1), Ok(()));
        assert_eq!(r.check(3), Err(SeqMismatch { want: 2, got: 3 }));
        // Nothing advanced on the mismatch.
        assert_eq!(r.check(2), Ok(()));
        let mut w = SendSeq::new(u32::MAX);
        assert_eq!((w.advance(), w.advance()), (u32::MAX, 0));
        assert_eq!(
            SeqMismatch { want: 2, got: 3 }.to_string(),
            "receive sequence number mismatch. want 2, got 3"
        );
    }

    #[test]
    fn credits_never_exceed_their_window() {
        let mut c = Credits::new(0, 2);
        assert!(!c.try_take());
        c.fill();
        assert!(c.try_take() && c.try_take() && !c.try_take());
        assert_eq!(c.grant(), Ok(()));
        assert_eq!(c.grant(), Ok(()));
        assert_eq!(c.grant(), Err(CreditOverflow));
        assert_eq!(c.available(), 2);
        assert_eq!(Credits::new(9, 1).available(), 1);
    }

    #[test]
    fn window_rejects_messages_beyond_credit() {
        let mut w = Window::new(1);
        assert_eq!(w.accept(), Ok(()));
        assert_eq!(w.accept(), Err(WindowExceeded { window: 1 }));
        assert!(w.release());
        assert!(!w.release());
        assert_eq!(w.accept(), Ok(()));
        let mut zero = Window::new(0);
        assert_eq!(zero.accept(), Err(WindowExceeded { window: 0 }));
    }
}
