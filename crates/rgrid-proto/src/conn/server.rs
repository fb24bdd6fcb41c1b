//! Commands of the serving side: answers to single requests, stream handlers' input and
//! output.

use super::*;

impl Core {
    /// The answer of a served single request: `Some(Ok(payload))`, `Some(Err(text))` for a
    /// remote error, or `None` when there is nothing to send (the handler was dropped at its
    /// deadline). An answer produced after the caller's deadline is dropped, as MinIO does.
    pub fn respond(&mut self, now: Instant, mux: u64, answer: Option<Result<Bytes, String>>) {
        let Some(m) = self.servers.get_mut(&mux) else {
            return;
        };
        let ServerKind::Request(r) = &mut m.kind else {
            return;
        };
        if r.answer.is_some() {
            return;
        }
        let late = m.deadline.is_some_and(|at| now > at);
        let (flags, payload) = match answer {
            Some(_) if late => {
                self.remove_server(mux);
                return;
            }
            None => {
                self.remove_server(mux);
                return;
            }
            Some(Ok(body)) if body.len() > self.cfg.max_message_size => (
                Flags::PAYLOAD_IS_ERR,
                Bytes::from(format!(
                    "response of {} bytes exceeds the limit of {}",
                    body.len(),
                    self.cfg.max_message_size
                )),
            ),
            Some(Ok(body)) => (Flags::NONE, body),
            Some(Err(text)) => (Flags::PAYLOAD_IS_ERR, Bytes::from(text)),
        };
        let payload_len = payload.len();
        r.answer = Some((flags, payload));
        let full = self.queue_full();
        self.queued_bytes += payload_len;
        self.queued_msgs += 1;
        self.schedule_data(Key::server(mux));
        if full {
            // Answers never wait for room, but a peer whose answers keep arriving while the
            // queue is full is not reading them.
            self.answers_queued += 1;
            if self.answers_queued > self.cfg.max_pending_answers {
                let limit = self.cfg.max_pending_answers;
                self.close(CloseReason::UnreadAnswers { limit });
            }
        }
    }

    fn server_stream_mut(servers: &mut MuxMap<ServerMux>, mux: u64) -> Option<&mut ServerStream> {
        match &mut servers.get_mut(&mux)?.kind {
            ServerKind::Stream(s) => Some(s),
            ServerKind::Request(_) => None,
        }
    }

    /// The next input message of a served stream, or `None` once the caller closed its
    /// input or the stream was cancelled. Taking a message returns a credit to the caller.
    pub fn serve_recv(&mut self, mux: u64, waker: &Waker) -> Poll<Option<Bytes>> {
        let Some(s) = Self::server_stream_mut(&mut self.servers, mux) else {
            return Poll::Ready(None);
        };
        if s.state == ServeState::Cancelled {
            return Poll::Ready(None);
        }
        if let Some(msg) = s.inbound.pop_front() {
            // No credit once the caller closed its input: it sends nothing more.
            let credit = s.window.release() && s.state == ServeState::Open && !s.input_closed;
            if credit {
                s.owed_credits += 1;
                let (owed, window) = (s.owed_credits, s.window.size());
                let large = msg.len() >= PROMPT_CREDIT_BYTES;
                self.owe_credit(Key::server(mux), owed, window, large);
            }
            return Poll::Ready(Some(msg));
        }
        if s.input_closed || s.state != ServeState::Open {
            return Poll::Ready(None);
        }
        set_waker(&mut s.in_waker, waker);
        Poll::Pending
    }

    /// Sends a served stream's message or its end, if an output credit is available (the
    /// end takes one like every message, so a caller never holds more than its window):
    /// `msg` is taken. Fails with [`CallError::Cancelled`] once the stream is cancelled.
    pub fn serve_send(
        &mut self,
        mux: u64,
        msg: &mut Option<ServeMsg>,
        waker: &Waker,
    ) -> Poll<Result<(), CallError>> {
        let Some(s) = Self::server_stream_mut(&mut self.servers, mux) else {
            return Poll::Ready(Err(CallError::Cancelled));
        };
        if s.state != ServeState::Open {
            return Poll::Ready(Err(CallError::Cancelled));
        }
        if msg.is_none() {
            // Already sent: no credit is spent.
            return Poll::Ready(Ok(()));
        }
        if !s.credits.try_take() {
            set_waker(&mut s.out_waker, waker);
            return Poll::Pending;
        }
        let (flags, payload) = match msg.take() {
            None => return Poll::Ready(Ok(())),
            Some(ServeMsg::Data(p)) => (Flags::NONE, Some(p)),
            Some(ServeMsg::End(Ok(()))) => (Flags::EOF, None),
            Some(ServeMsg::End(Err(text))) => {
                (Flags::EOF | Flags::PAYLOAD_IS_ERR, Some(Bytes::from(text)))
            }
        };
        if flags.contains(Flags::EOF) {
            s.state = ServeState::Ending;
            s.handler_done = true;
            wake(&mut s.in_waker, &mut self.wake);
        }
        self.queued_bytes += payload.as_ref().map_or(0, Bytes::len);
        self.queued_msgs += 1;
        push_queued(&mut s.outq, (flags, payload), s.credits.window());
        self.schedule_data(Key::server(mux));
        Poll::Ready(Ok(()))
    }

    /// Output credits a served stream has left now: how many more messages
    /// [`Core::serve_send`] would take at once (0 for an unknown mux or one not open).
    pub fn serve_credits(&self, mux: u64) -> u32 {
        match self.servers.get(&mux).map(|m| &m.kind) {
            Some(ServerKind::Stream(s)) if s.state == ServeState::Open => s.credits.available(),
            _ => 0,
        }
    }

    /// Whether a served stream was cancelled (or is gone).
    pub fn serve_is_cancelled(&self, mux: u64) -> bool {
        match self.servers.get(&mux).map(|m| &m.kind) {
            Some(ServerKind::Stream(s)) => s.state == ServeState::Cancelled,
            _ => true,
        }
    }

    /// A served stream's handler has ended (after its end was sent, or after it was
    /// cancelled): the final `OpDisconnectClientMux` is owed once its output is out.
    pub fn serve_done(&mut self, mux: u64) {
        let Some(s) = Self::server_stream_mut(&mut self.servers, mux) else {
            return;
        };
        s.handler_done = true;
        let closing = match s.state {
            ServeState::Open | ServeState::Cancelled => {
                s.state = ServeState::Closing;
                true
            }
            ServeState::Ending | ServeState::Closing => false,
        };
        wake(&mut s.in_waker, &mut self.wake);
        wake(&mut s.out_waker, &mut self.wake);
        if self.closed.is_some() {
            // Nothing is transmitted any more: forget it (and queue no key for it).
            self.remove_server(mux);
        } else if closing {
            self.schedule_data(Key::server(mux));
        }
    }

    /// Cancels a served stream: the handler is told to stop ([`Event::Cancel`]); with
    /// `error`, the caller gets that text as the stream's error (sent at once, without a
    /// credit); without, its unsent output is dropped.
    pub(super) fn cancel_server_stream(&mut self, mux: u64, error: Option<String>) {
        let Some(m) = self.servers.get_mut(&mux) else {
            return;
        };
        let ServerKind::Stream(s) = &mut m.kind else {
            return;
        };
        if !matches!(s.state, ServeState::Open | ServeState::Ending) {
            return;
        }
        let was_open = s.state == ServeState::Open;
        let mut dropped = (0, 0);
        if let Some(text) = error {
            if was_open {
                let p = Bytes::from(text);
                self.queued_bytes += p.len();
                self.queued_msgs += 1;
                s.outq
                    .push_back((Flags::EOF | Flags::PAYLOAD_IS_ERR, Some(p)));
            }
        } else {
            for (_, p) in s.outq.drain(..) {
                dropped.0 += p.map_or(0, |p| p.len());
                dropped.1 += 1;
            }
        }
        s.state = if s.handler_done {
            ServeState::Closing
        } else {
            ServeState::Cancelled
        };
        s.owed_credits = 0;
        wake(&mut s.in_waker, &mut self.wake);
        wake(&mut s.out_waker, &mut self.wake);
        let at = m.deadline.take();
        self.queued_bytes -= dropped.0;
        self.queued_msgs -= dropped.1;
        self.remove_deadline(at, Key::server(mux));
        if was_open {
            self.events.push_back(Event::Cancel { mux });
        }
        self.schedule_data(Key::server(mux));
    }
}
