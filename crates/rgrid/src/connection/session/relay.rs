//! Waking answered callers one at a time.
//!
//! When a task wakes a second task while the first one it woke has not run yet, tokio's
//! multi-thread runtime wakes an idle worker thread to share the work. For a reader that
//! just handled a frame with two answers, that wake-up (a futex call and a context switch,
//! tens of microseconds on a small machine) costs more than the answers are worth, and made
//! two calls in flight slower than one. So the reader wakes one answered caller, and that
//! caller, once it has taken its answer (or given up), wakes the next: each runs on the
//! worker that is already awake. Many answers at once ([`WAKE_ALL`]) are woken together, as
//! the workers are then busy anyway and the callers run in parallel.
//!
//! Invariant: while anyone waits in the relay, one woken caller holds the turn and has not
//! finished. A woken caller normally finishes at once (its answer is there), but its task may
//! be busy elsewhere and keep the call's future without polling it. So a turn lasts one pass
//! of the reader: when the reader comes back after waiting for the socket, the tasks it woke
//! before have had their chance to run ([`Relay::new_pass`]), and a turn still held is void —
//! everyone waiting is woken, and answers arriving from then on are not queued behind it. A
//! caller that does not poll its answered call thus holds up only the answers that arrived in
//! the same pass as its own, and only until the connection's next frame (at the latest the
//! pong of the next connection ping). Callers that finish while still waiting leave the
//! relay.

use std::collections::VecDeque;
use std::task::Waker;

/// Answered callers waiting from which all are woken at once.
pub(super) const WAKE_ALL: usize = 4;

/// Answered callers not woken yet, and who holds the turn.
#[derive(Default)]
pub(crate) struct Relay {
    waiting: VecDeque<(u64, Waker)>,
    turn: Option<u64>,
}

impl Relay {
    /// Adds the caller of request `mux`, whose answer arrived.
    pub(super) fn push(&mut self, mux: u64, waker: Waker) {
        self.waiting.push_back((mux, waker));
    }

    /// Who to wake after new answers were pushed: nobody if a woken caller holds the turn,
    /// else the next caller (who gets the turn), or everyone when many wait.
    pub(super) fn wake_after_push(&mut self, into: &mut impl Extend<Waker>) {
        if self.waiting.len() >= WAKE_ALL {
            into.extend(self.waiting.drain(..).map(|(_, w)| w));
        } else if self.turn.is_none() {
            into.extend(self.pass());
        }
    }

    /// The caller of request `mux` took its answer or gave up: it leaves the relay, and if
    /// it held the turn, the next waiting caller gets it (its waker is returned).
    pub(crate) fn done(&mut self, mux: u64) -> Option<Waker> {
        if let Some(i) = self.waiting.iter().position(|(m, _)| *m == mux) {
            self.waiting.remove(i);
        }
        if self.turn != Some(mux) {
            return None;
        }
        self.turn = None;
        self.pass()
    }

    /// The reader handles a frame after waiting for the socket: the callers it woke before
    /// had their chance to run. A turn still held is void (its holder is not polling its
    /// call); everyone waiting behind it goes into `into`. The holder finishes whenever it
    /// is polled again, and its [`Relay::done`] then wakes nobody.
    pub(super) fn new_pass(&mut self, into: &mut impl Extend<Waker>) {
        if self.turn.take().is_some() && !self.waiting.is_empty() {
            into.extend(self.waiting.drain(..).map(|(_, w)| w));
        }
    }

    /// Everyone waiting (the connection closed).
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = Waker> + use<> {
        self.turn = None;
        std::mem::take(&mut self.waiting)
            .into_iter()
            .map(|(_, w)| w)
    }

    fn pass(&mut self) -> Option<Waker> {
        let (mux, w) = self.waiting.pop_front()?;
        self.turn = Some(mux);
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    use super::*;

    /// A waker that records the mux it belongs to in a shared set when woken.
    struct Rec(u64, Arc<Mutex<BTreeSet<u64>>>);
    impl Wake for Rec {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().insert(self.0);
        }
    }

    /// Random schedules of answers arriving in batches, woken callers finishing, waiting
    /// callers finishing early (a spurious poll) and callers giving up: nobody is ever left
    /// waiting without a woken caller that will pass the turn on.
    #[test]
    fn nobody_is_stranded() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut stranded_checks = 0u32;
        for _ in 0..2_000 {
            let woken = Arc::new(Mutex::new(BTreeSet::new()));
            let mut relay = Relay::default();
            // Callers whose answer arrived and who have not finished.
            let mut answered: BTreeSet<u64> = BTreeSet::new();
            let mut next = 0u64;
            for _ in 0..rng.usize(1..40) {
                match rng.u8(0..3) {
                    0 => {
                        let mut wake = Vec::new();
                        for _ in 0..rng.usize(1..6) {
                            relay.push(next, Waker::from(Arc::new(Rec(next, woken.clone()))));
                            answered.insert(next);
                            next += 1;
                        }
                        relay.wake_after_push(&mut wake);
                        wake.into_iter().for_each(Waker::wake);
                    }
                    // A woken caller runs and finishes.
                    1 => {
                        let w: Vec<u64> = woken
                            .lock()
                            .unwrap()
                            .intersection(&answered)
                            .copied()
                            .collect();
                        if !w.is_empty() {
                            let m = w[rng.usize(..w.len())];
                            answered.remove(&m);
                            if let Some(x) = relay.done(m) {
                                x.wake();
                            }
                        }
                    }
                    // Any answered caller finishes (spurious poll) or gives up.
                    _ => {
                        let a: Vec<u64> = answered.iter().copied().collect();
                        if !a.is_empty() {
                            let m = a[rng.usize(..a.len())];
                            answered.remove(&m);
                            if let Some(x) = relay.done(m) {
                                x.wake();
                            }
                        }
                    }
                }
                // Someone waits unwoken => some woken caller is still to finish.
                let w = woken.lock().unwrap();
                let waiting_unwoken = answered.iter().any(|m| !w.contains(m));
                if waiting_unwoken {
                    stranded_checks += 1;
                    assert!(
                        answered.iter().any(|m| w.contains(m)),
                        "callers {answered:?} wait, none of them woken ({w:?})"
                    );
                }
            }
            // Draining: woken callers finish one by one until nobody is left.
            loop {
                let m = {
                    let w = woken.lock().unwrap();
                    answered.iter().copied().find(|m| w.contains(m))
                };
                let Some(m) = m else { break };
                answered.remove(&m);
                if let Some(x) = relay.done(m) {
                    x.wake();
                }
            }
            assert!(answered.is_empty(), "stranded: {answered:?}");
        }
        // The property was exercised, not vacuous.
        assert!(stranded_checks > 1_000, "{stranded_checks}");
    }

    /// Without passing the turn on, the same schedule strands a caller: the check above
    /// can fail.
    #[test]
    fn a_turn_not_passed_on_strands_callers() {
        let woken = Arc::new(Mutex::new(BTreeSet::new()));
        let mut relay = Relay::default();
        let mut wake = Vec::new();
        for m in 0..2 {
            relay.push(m, Waker::from(Arc::new(Rec(m, woken.clone()))));
        }
        relay.wake_after_push(&mut wake);
        wake.into_iter().for_each(Waker::wake);
        assert_eq!(*woken.lock().unwrap(), BTreeSet::from([0]));
        // Caller 0 finishes but "forgets" to wake the next: 1 is stranded.
        let _ = relay.done(0);
        assert_eq!(*woken.lock().unwrap(), BTreeSet::from([0]));
    }

    /// A woken caller that does not take its answer (its task polls something else) holds
    /// the turn only until the reader's next pass: then everyone waiting behind it is woken,
    /// new answers are not queued behind it, and its own finish later wakes nobody. A turn
    /// passed on in time is kept.
    #[test]
    fn a_turn_lasts_one_pass_of_the_reader() {
        let woken = Arc::new(Mutex::new(BTreeSet::new()));
        let waker = |m: u64| Waker::from(Arc::new(Rec(m, woken.clone())));
        let mut relay = Relay::default();
        let mut wake = Vec::new();
        for m in 0..3 {
            relay.push(m, waker(m));
        }
        relay.wake_after_push(&mut wake);
        wake.drain(..).for_each(Waker::wake);
        // Caller 0 finished in time and passed the turn to 1, which does not finish.
        if let Some(w) = relay.done(0) {
            w.wake();
        }
        assert_eq!(*woken.lock().unwrap(), BTreeSet::from([0, 1]));
        relay.new_pass(&mut wake);
        assert_eq!(wake.len(), 1, "caller 2 no longer waits for 1");
        wake.drain(..).for_each(Waker::wake);
        assert_eq!(*woken.lock().unwrap(), BTreeSet::from([0, 1, 2]));
        // A new answer is not queued behind 1 either.
        relay.push(3, waker(3));
        relay.wake_after_push(&mut wake);
        assert_eq!(wake.len(), 1);
        wake.drain(..).for_each(Waker::wake);
        assert!(woken.lock().unwrap().contains(&3));
        assert!(relay.done(1).is_none() && relay.done(2).is_none());
        // Without a new pass, answers behind a holder wait for it (the optimization).
        relay.push(4, waker(4));
        relay.wake_after_push(&mut wake);
        assert!(wake.is_empty(), "4 waits for 3 in the same pass");
        assert!(relay.done(3).is_some(), "3 finishing hands the turn to 4");
    }

    #[test]
    fn many_answers_wake_everyone() {
        let woken = Arc::new(Mutex::new(BTreeSet::new()));
        let mut relay = Relay::default();
        let mut wake = Vec::new();
        for m in 0..WAKE_ALL as u64 {
            relay.push(m, Waker::from(Arc::new(Rec(m, woken.clone()))));
        }
        relay.wake_after_push(&mut wake);
        assert_eq!(wake.len(), WAKE_ALL);
    }
}
