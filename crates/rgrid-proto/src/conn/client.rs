//! Commands of the calling side: single requests and the streams this side opens.

use super::*;

impl Core {
    fn new_client_id(&mut self) -> u64 {
        let id = self.next_mux;
        self.next_mux += 1;
        id
    }

    fn check_open(&self) -> Result<(), CallError> {
        if self.closed.is_some() {
            Err(CallError::ConnectionClosed)
        } else {
            Ok(())
        }
    }

    /// Starts a single request; returns its mux id. The request leaves with the next
    /// transmit; poll the answer with [`Core::poll_response`]. `deadline` travels with it
    /// (the caller's own timer enforces it locally).
    pub fn start_request(
        &mut self,
        handler: HandlerId,
        subroute: Option<SubrouteId>,
        payload: Bytes,
        deadline: Duration,
        class: Class,
    ) -> Result<u64, CallError> {
        self.check_open()?;
        let deadline_ms = deadline_ms(deadline);
        if deadline_ms == 0 {
            return Err(CallError::DeadlineExceeded);
        }
        let id = self.new_client_id();
        self.queued_bytes += payload.len();
        self.queued_msgs += 1;
        self.insert_client(
            id,
            ClientMux {
                handler,
                class,
                deadline: None,
                send_seq: SendSeq::new(0),
                recv_seq: RecvSeq::new(0),
                kind: ClientKind::Request(RequestState::Queued {
                    payload,
                    subroute,
                    deadline_ms,
                }),
                in_control: false,
                in_held: false,
                in_ready: false,
                rx_waker: None,
                tx_waker: None,
            },
        );
        self.schedule_data(Key::client(id));
        Ok(id)
    }

    /// The answer of a single request: ready once it arrived (or failed); the request is
    /// then forgotten. Pending registers `waker`.
    pub fn poll_response(&mut self, mux: u64, waker: &Waker) -> Poll<Result<Bytes, CallError>> {
        let Some(m) = self.clients.get_mut(&mux) else {
            return Poll::Ready(Err(if self.closed.is_some() {
                CallError::ConnectionClosed
            } else {
                CallError::Local("unknown request")
            }));
        };
        match &m.kind {
            ClientKind::Request(RequestState::Done(_)) => {}
            ClientKind::Request(_) => {
                set_waker(&mut m.rx_waker, waker);
                return Poll::Pending;
            }
            ClientKind::Stream(_) => return Poll::Ready(Err(CallError::Local("not a request"))),
        }
        match self.remove_client(mux).map(|m| m.kind) {
            Some(ClientKind::Request(RequestState::Done(res))) => Poll::Ready(res),
            _ => Poll::Ready(Err(CallError::Local("unknown request"))),
        }
    }

    /// The caller gave up on a single request (dropped, cancelled, or its deadline passed).
    /// One still queued is removed from the queue and never sent. One on the wire owes the
    /// handler side an `OpDisconnectServerMux` (sent ahead of data), which cancels an rgrid
    /// handler; a Go peer ignores it (MinIO has no cancel for single requests). Its late
    /// answer is dropped.
    pub fn abandon_request(&mut self, mux: u64) {
        let Some(m) = self.clients.get_mut(&mux) else {
            return;
        };
        match &mut m.kind {
            ClientKind::Request(st @ RequestState::Sent) if self.closed.is_none() => {
                *st = RequestState::Cancelling;
                m.rx_waker = None;
                self.schedule_control(Key::client(mux));
            }
            ClientKind::Request(RequestState::Cancelling) => {}
            ClientKind::Request(_) => {
                if let Some(ClientMux {
                    kind: ClientKind::Request(RequestState::Queued { payload, .. }),
                    ..
                }) = self.remove_client(mux)
                {
                    self.queued_bytes -= payload.len();
                    self.queued_msgs -= 1;
                }
            }
            ClientKind::Stream(_) => {}
        }
    }

    /// Opens a stream; returns its mux id. `route` gives the windows (the caller sizes them
    /// from its own registration, like MinIO) and the class.
    pub fn open_stream(
        &mut self,
        now: Instant,
        handler: HandlerId,
        subroute: Option<SubrouteId>,
        payload: Bytes,
        deadline: Option<Duration>,
        route: StreamRoute,
    ) -> Result<u64, CallError> {
        self.check_open()?;
        let deadline_ms = match deadline {
            Some(d) => match deadline_ms(d) {
                0 => return Err(CallError::DeadlineExceeded),
                ms => ms,
            },
            None => 0,
        };
        let id = self.new_client_id();
        let at = deadline.map(|d| now + d);
        let in_cap = route.in_capacity;
        self.queued_bytes += payload.len();
        self.queued_msgs += 1;
        let stream = ClientStream {
            state: StreamState::Connecting,
            input: if in_cap == 0 {
                Input::Closed
            } else {
                Input::Open
            },
            connect: Some(Connect {
                payload,
                subroute,
                deadline_ms,
            }),
            outq: VecDeque::new(),
            responses: VecDeque::new(),
            // The handler's window is the registration's, so input may leave right behind the
            // open instead of a round trip later (see "Streams" in the module docs).
            credits: Credits::new(in_cap, in_cap),
            window: Window::new(route.out_capacity.max(1)),
            owed_credits: 0,
            owe_ping: false,
            owe_cancel: false,
            released: false,
            last_alive: now,
            pinged: deadline.is_none_or(|d| d > self.cfg.stream_ping_interval),
            pace: Pace::default(),
        };
        self.insert_client(
            id,
            ClientMux {
                handler,
                class: route.class,
                deadline: at,
                send_seq: SendSeq::new(0),
                recv_seq: RecvSeq::new(0),
                kind: ClientKind::Stream(Box::new(stream)),
                in_control: false,
                in_held: false,
                in_ready: false,
                rx_waker: None,
                tx_waker: None,
            },
        );
        if let Some(at) = at {
            self.add_deadline(at, Key::client(id));
        }
        self.schedule_data(Key::client(id));
        Ok(id)
    }

    /// Sends one input message on a stream, if a credit is available: `payload` is taken
    /// and the message queued. Pending (payload kept, `waker` registered) while the handler
    /// has not acked or is behind.
    pub fn stream_send(
        &mut self,
        mux: u64,
        payload: &mut Option<Bytes>,
        waker: &Waker,
    ) -> Poll<Result<(), CallError>> {
        let Some(m) = self.clients.get_mut(&mux) else {
            return Poll::Ready(Err(CallError::ConnectionClosed));
        };
        let ClientKind::Stream(s) = &mut m.kind else {
            return Poll::Ready(Err(CallError::Local("not a stream")));
        };
        match &s.state {
            StreamState::Ended(End::Failed { error, .. }) => {
                return Poll::Ready(Err(error.clone()));
            }
            StreamState::Ended(End::Eof) => {
                return Poll::Ready(Err(CallError::Local("stream already ended")));
            }
            // Input may follow the open before the ack (see "Streams" in the module docs).
            StreamState::Connecting | StreamState::Open => {}
        }
        if s.input != Input::Open {
            return Poll::Ready(Err(CallError::Local("stream input already closed")));
        }
        if payload.is_none() {
            // Already sent (a poll after completion): no credit is spent.
            return Poll::Ready(Ok(()));
        }
        if !s.credits.try_take() {
            set_waker(&mut m.tx_waker, waker);
            return Poll::Pending;
        }
        let Some(p) = payload.take() else {
            return Poll::Ready(Ok(()));
        };
        self.queued_bytes += p.len();
        self.queued_msgs += 1;
        push_queued(&mut s.outq, p, s.credits.window());
        self.schedule_data(Key::client(mux));
        Poll::Ready(Ok(()))
    }

    /// Input credits a stream has left now: how many more messages [`Core::stream_send`]
    /// would take at once (0 for an unknown mux or one that is not open).
    pub fn stream_credits(&self, mux: u64) -> u32 {
        match self.clients.get(&mux).map(|m| &m.kind) {
            Some(ClientKind::Stream(s))
                if matches!(s.state, StreamState::Connecting | StreamState::Open)
                    && s.input == Input::Open =>
            {
                s.credits.available()
            }
            _ => 0,
        }
    }

    /// Closes a stream's input: the EOF leaves after the messages already queued.
    /// Idempotent.
    pub fn stream_close_send(&mut self, mux: u64) {
        let Some(m) = self.clients.get_mut(&mux) else {
            return;
        };
        let ClientKind::Stream(s) = &mut m.kind else {
            return;
        };
        if s.input != Input::Open || matches!(s.state, StreamState::Ended(_)) {
            return;
        }
        s.input = Input::Closing;
        // The EOF is emitted by the data turn once the queue (and the open) is out.
        self.schedule_data(Key::client(mux));
    }

    /// The next response of a stream: a message, then after the last one either `None`
    /// (the handler finished cleanly) or one error and then `None`. Taking a message
    /// returns a credit to the handler. Pending registers `waker`.
    pub fn stream_recv(
        &mut self,
        mux: u64,
        waker: &Waker,
    ) -> Poll<Option<Result<Bytes, CallError>>> {
        let Some(m) = self.clients.get_mut(&mux) else {
            return Poll::Ready(None);
        };
        let ClientKind::Stream(s) = &mut m.kind else {
            return Poll::Ready(None);
        };
        if let Some(msg) = s.responses.pop_front() {
            if s.window.release() && !matches!(s.state, StreamState::Ended(_)) {
                s.owed_credits += 1;
                let (owed, window) = (s.owed_credits, s.window.size());
                let large = msg.len() >= PROMPT_CREDIT_BYTES;
                self.owe_credit(Key::client(mux), owed, window, large);
            }
            return Poll::Ready(Some(Ok(msg)));
        }
        match &mut s.state {
            StreamState::Ended(End::Eof) => Poll::Ready(None),
            StreamState::Ended(End::Failed { error, delivered }) => {
                if *delivered {
                    Poll::Ready(None)
                } else {
                    *delivered = true;
                    Poll::Ready(Some(Err(error.clone())))
                }
            }
            _ => {
                set_waker(&mut m.rx_waker, waker);
                Poll::Pending
            }
        }
    }

    /// Whether a stream has ended (buffered responses may still be read).
    pub fn stream_is_ended(&self, mux: u64) -> bool {
        match self.clients.get(&mux).map(|m| &m.kind) {
            Some(ClientKind::Stream(s)) => matches!(s.state, StreamState::Ended(_)),
            _ => true,
        }
    }

    /// How a stream ended, whether or not its consumer has read that far: `None` while it
    /// runs (or for an unknown mux), `Some(Ok(()))` when the handler finished cleanly, else
    /// the stream's error.
    pub fn stream_end(&self, mux: u64) -> Option<Result<(), CallError>> {
        match self.clients.get(&mux).map(|m| &m.kind) {
            Some(ClientKind::Stream(s)) => match &s.state {
                StreamState::Ended(End::Eof) => Some(Ok(())),
                StreamState::Ended(End::Failed { error, .. }) => Some(Err(error.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    /// Cancels a stream locally with `error` (the consumer sees it after the buffered
    /// messages): the handler side is told to stop.
    pub fn stream_cancel(&mut self, mux: u64, error: CallError) {
        self.fail_client_stream(mux, error, true);
    }

    /// The caller's handle is gone: the stream is cancelled if it has not ended, and
    /// forgotten once nothing is owed to the peer.
    pub fn stream_release(&mut self, mux: u64) {
        self.fail_client_stream(mux, CallError::Cancelled, true);
        if let Some(m) = self.clients.get_mut(&mux)
            && let ClientKind::Stream(s) = &mut m.kind
        {
            s.released = true;
            s.responses.clear();
        }
        self.gc_client(mux);
    }

    /// Removes a released, ended stream that owes nothing.
    pub(super) fn gc_client(&mut self, mux: u64) {
        let remove = match self.clients.get(&mux) {
            Some(ClientMux {
                kind: ClientKind::Stream(s),
                ..
            }) => {
                s.released
                    && matches!(s.state, StreamState::Ended(_))
                    && !s.owe_cancel
                    && s.connect.is_none()
                    && s.outq.is_empty()
            }
            _ => false,
        };
        if remove && let Some(m) = self.remove_client(mux) {
            self.remove_deadline(m.deadline, Key::client(mux));
        }
    }

    /// Ends a stream opened here (first end wins): drops its unsent input, tells the
    /// handler side to stop when `cancel_remote` and the open has left, wakes both halves.
    pub(super) fn fail_client_stream(&mut self, mux: u64, error: CallError, cancel_remote: bool) {
        self.end_client_stream(
            mux,
            End::Failed {
                error,
                delivered: false,
            },
            cancel_remote,
        );
    }

    pub(super) fn end_client_stream(&mut self, mux: u64, end: End, cancel_remote: bool) {
        let Some(m) = self.clients.get_mut(&mux) else {
            return;
        };
        let ClientKind::Stream(s) = &mut m.kind else {
            return;
        };
        if matches!(s.state, StreamState::Ended(_)) {
            return;
        }
        let mut dropped_bytes = 0;
        let mut dropped_msgs = s.outq.len();
        for p in s.outq.drain(..) {
            dropped_bytes += p.len();
        }
        let connect_sent = match s.connect.take() {
            Some(c) => {
                dropped_bytes += c.payload.len();
                dropped_msgs += 1;
                false
            }
            None => true,
        };
        s.state = StreamState::Ended(end);
        s.input = Input::Closed;
        s.owe_ping = false;
        s.owed_credits = 0;
        let owe_cancel = cancel_remote && connect_sent;
        s.owe_cancel = owe_cancel;
        wake(&mut m.rx_waker, &mut self.wake);
        wake(&mut m.tx_waker, &mut self.wake);
        let at = m.deadline.take();
        self.queued_bytes -= dropped_bytes;
        self.queued_msgs -= dropped_msgs;
        self.remove_deadline(at, Key::client(mux));
        if owe_cancel {
            self.schedule_control(Key::client(mux));
        }
        self.gc_client(mux);
    }
}
