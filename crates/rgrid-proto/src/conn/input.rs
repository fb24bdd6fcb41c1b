//! Received frames: decoding and the rules for every op.

use super::*;

impl Core {
    /// Handles one received websocket frame (a message or a merged container). Payloads
    /// handed on are zero-copy slices of `frame`. A frame that breaks the protocol closes
    /// the connection; the reason is returned (and kept, see [`Core::close_reason`]).
    /// Returns the number of messages the frame held.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &Bytes,
        routes: &dyn Routes,
    ) -> Result<u32, CloseReason> {
        if let Some(r) = &self.closed {
            return Err(r.clone());
        }
        let decoded = match Frame::decode(frame, &self.limits) {
            Ok(f) => f,
            Err(e) => return Err(self.fail_decode(e)),
        };
        self.last_heard = now;
        match decoded {
            Frame::Message(m) => {
                self.handle_message(now, &m, frame, routes);
                Ok(1)
            }
            Frame::Merged(merged) => {
                let n = merged.len();
                for m in merged {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => return Err(self.fail_decode(e)),
                    };
                    self.handle_message(now, &m, frame, routes);
                    if let Some(r) = &self.closed {
                        return Err(r.clone());
                    }
                }
                Ok(n)
            }
        }
        .and_then(|n| match &self.closed {
            Some(r) => Err(r.clone()),
            None => Ok(n),
        })
    }

    fn fail_decode(&mut self, e: DecodeError) -> CloseReason {
        let r = CloseReason::Decode(e);
        self.close(r.clone());
        r
    }

    /// Handles one decoded message; `frame` holds its payload.
    pub fn handle_message(
        &mut self,
        now: Instant,
        m: &Message<'_>,
        frame: &Bytes,
        routes: &dyn Routes,
    ) {
        if self.closed.is_some() {
            return;
        }
        let payload = m.payload.map(|p| frame.slice_ref(p));
        let id = m.mux_id.0;
        match m.op {
            Op::REQUEST => self.on_request(now, m, payload, routes),
            Op::CONNECT_MUX => self.on_connect_mux(now, m, payload, routes),
            Op::RESPONSE => self.on_response(m, payload),
            Op::ACK_MUX | Op::MUX_SERVER_MSG | Op::UNBLOCK_CL_MUX | Op::DISCONNECT_CLIENT_MUX => {
                if matches!(
                    self.clients.get(&id).map(|c| &c.kind),
                    Some(ClientKind::Stream(_))
                ) {
                    self.on_client_stream_msg(now, m, payload);
                } else if matches!(m.op, Op::ACK_MUX | Op::MUX_SERVER_MSG)
                    && !m.flags.contains(Flags::EOF)
                {
                    // A stream this side no longer has: tell the handler side to stop. (Go
                    // answers OpDisconnectClientMux, which targets the peer's *client*
                    // table, spec §14.2.)
                    // Handler 0, as Go sends every stream follow-up.
                    let msg = OutMsg {
                        mux_id: id,
                        ..OutMsg::new(Op::DISCONNECT_SERVER_MUX, self.cfg.base_flags)
                    };
                    self.queue_stateless(msg);
                }
            }
            Op::MUX_CLIENT_MSG | Op::UNBLOCK_SRV_MUX | Op::DISCONNECT_SERVER_MUX => {
                match self.servers.get(&id).map(|s| &s.kind) {
                    Some(ServerKind::Stream(_)) => return self.on_server_stream_msg(m, payload),
                    Some(ServerKind::Request(r))
                        if m.op == Op::DISCONNECT_SERVER_MUX && r.answer.is_none() =>
                    {
                        // The caller gave up on a single request (an rgrid caller says so;
                        // MinIO's never does): its handler is told to stop, and its answer
                        // will find no mux.
                        self.remove_server(id);
                        self.events.push_back(Event::Cancel { mux: id });
                        return;
                    }
                    _ => {}
                }
                if m.op == Op::MUX_CLIENT_MSG {
                    let msg = OutMsg {
                        mux_id: id,
                        ..OutMsg::new(Op::DISCONNECT_CLIENT_MUX, self.cfg.base_flags)
                    };
                    self.queue_stateless(msg);
                }
            }
            Op::MUX_CONNECT_ERROR => {
                let text = match MuxConnectError::decode(payload.as_deref().unwrap_or_default()) {
                    Ok(e) => e.error.into_owned(),
                    Err(e) => format!("malformed mux connect error: {e}"),
                };
                match self.clients.get_mut(&id).map(|c| &mut c.kind) {
                    Some(ClientKind::Stream(_)) => {
                        self.fail_client_stream(id, CallError::Remote(text), false);
                    }
                    Some(ClientKind::Request(st)) => {
                        // Only an answer to a request that left (one still queued keeps
                        // its payload counted until it is sent).
                        if matches!(st, RequestState::Sent) {
                            *st = RequestState::Done(Err(CallError::Remote(text)));
                            if let Some(c) = self.clients.get_mut(&id)
                                && let Some(w) = c.rx_waker.take()
                            {
                                self.answered.push_back((id, w));
                            }
                        }
                    }
                    None => {}
                }
            }
            Op::PING => self.on_ping(now, m, payload),
            Op::PONG if id != 0 => self.on_stream_pong(now, id, payload),
            Op::PONG => {
                self.last_pong = now;
                if let Ok(pong) = PongMsg::decode(payload.as_deref().unwrap_or_default())
                    && let Some((t, sent)) = self.last_ping_sent
                    && pong.t == t
                {
                    let rtt = now.saturating_duration_since(sent);
                    self.last_rtt = Some(rtt);
                    self.max_rtt = Some(self.max_rtt.map_or(rtt, |m| m.max(rtt)));
                    self.ping_answered = self.pings_sent;
                    self.wake.append(&mut self.pong_waiters);
                }
            }
            // Connect, ConnectResponse and Disconnect after the handshake, and unknown ops,
            // are ignored like MinIO does.
            _ => {}
        }
    }

    fn over_mux_limit(&self) -> Option<String> {
        let max = self.cfg.max_incoming_muxes;
        (self.servers.len() >= max)
            .then(|| format!("grid: too many requests and streams in progress (limit {max})"))
    }

    fn refuse(&mut self, m: &Message<'_>, text: String) {
        let mut payload = BytesMut::new();
        if (MuxConnectError { error: text.into() })
            .encode(&mut payload)
            .is_ok()
        {
            let reply = OutMsg::reply_to(
                m,
                Op::MUX_CONNECT_ERROR,
                self.cfg.base_flags,
                Some(payload.freeze()),
            );
            self.queue_stateless(reply);
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        m: &Message<'_>,
        payload: Option<Bytes>,
        routes: &dyn Routes,
    ) {
        if let Some(text) = self.over_mux_limit() {
            return self.refuse(m, text);
        }
        let Some(class) = routes.single(m.handler, m.subroute.as_ref()) else {
            return self.refuse(m, unknown_handler_text(m.handler, m.subroute.as_ref()));
        };
        let id = m.mux_id.0;
        if self.servers.contains_key(&id) {
            // A duplicate of a mux id in use: ignored, like a duplicate connect.
            return;
        }
        let deadline =
            (m.deadline_ms > 0).then(|| now + Duration::from_millis(u64::from(m.deadline_ms)));
        self.insert_server(
            id,
            ServerMux {
                class,
                deadline,
                send_seq: SendSeq::new(m.seq),
                recv_seq: RecvSeq::new(m.seq.wrapping_add(1)),
                kind: ServerKind::Request(ServedRequest {
                    seq: m.seq,
                    answer: None,
                }),
                in_control: false,
                in_held: false,
                in_ready: false,
            },
        );
        self.events.push_back(Event::Request {
            mux: id,
            handler: m.handler,
            subroute: m.subroute,
            deadline,
            payload: payload.unwrap_or_default(),
        });
    }

    fn on_connect_mux(
        &mut self,
        now: Instant,
        m: &Message<'_>,
        payload: Option<Bytes>,
        routes: &dyn Routes,
    ) {
        self.max_opened = self.max_opened.max(m.mux_id.0);
        if m.flags.contains(Flags::STATELESS) {
            return self.refuse(m, "Stateless streams not supported".to_owned());
        }
        if let Some(text) = self.over_mux_limit() {
            return self.refuse(m, text);
        }
        let Some(route) = routes.stream(m.handler, m.subroute.as_ref()) else {
            return self.refuse(m, unknown_handler_text(m.handler, m.subroute.as_ref()));
        };
        let id = m.mux_id.0;
        if self.servers.contains_key(&id) {
            // A second connect for a mux id that is open: ignored like MinIO does.
            return;
        }
        let deadline = (m.deadline_ms > 0).then(|| Duration::from_millis(u64::from(m.deadline_ms)));
        let watch_after = self.cfg.stream_ping_interval * 4;
        let out_cap = route.out_capacity.max(1);
        let stream = ServerStream {
            state: ServeState::Open,
            in_capacity: route.in_capacity,
            inbound: VecDeque::new(),
            window: Window::new(route.in_capacity),
            // The caller's EOF on the open means it sends no input (Go ignores the flag,
            // spec §14.6; honouring it ends the handler's input at once).
            input_closed: route.in_capacity == 0 || m.flags.contains(Flags::EOF),
            credits: Credits::new(out_cap, out_cap),
            outq: VecDeque::new(),
            owe_ack: true,
            owed_credits: 0,
            owe_pong: VecDeque::new(),
            handler_done: false,
            last_ping: now,
            watched: deadline.is_none_or(|d| d > watch_after),
            in_waker: None,
            out_waker: None,
            pace: Pace::default(),
        };
        let at = deadline.map(|d| now + d);
        self.insert_server(
            id,
            ServerMux {
                class: route.class,
                deadline: at,
                send_seq: SendSeq::new(m.seq),
                recv_seq: RecvSeq::new(m.seq.wrapping_add(1)),
                kind: ServerKind::Stream(Box::new(stream)),
                in_control: false,
                in_held: false,
                in_ready: false,
            },
        );
        if let Some(at) = at {
            self.add_deadline(at, Key::server(id));
        }
        self.schedule_control(Key::server(id));
        self.events.push_back(Event::Stream {
            mux: id,
            handler: m.handler,
            subroute: m.subroute,
            deadline: at,
            payload: payload.unwrap_or_default(),
        });
    }

    fn on_response(&mut self, m: &Message<'_>, payload: Option<Bytes>) {
        let Some(c) = self.clients.get_mut(&m.mux_id.0) else {
            // A late answer to a call that gave up: dropped.
            return;
        };
        let ClientKind::Request(st) = &mut c.kind else {
            return;
        };
        if !matches!(st, RequestState::Sent) {
            return;
        }
        let res = if m.seq != 0 {
            Err(CallError::Sequence {
                want: 0,
                got: m.seq,
            })
        } else if m.flags.contains(Flags::PAYLOAD_IS_ERR) {
            Err(CallError::Remote(
                String::from_utf8_lossy(payload.as_deref().unwrap_or_default()).into_owned(),
            ))
        } else {
            Ok(payload.unwrap_or_default())
        };
        *st = RequestState::Done(res);
        if let Some(w) = c.rx_waker.take() {
            self.answered.push_back((m.mux_id.0, w));
        }
    }

    fn on_client_stream_msg(&mut self, now: Instant, m: &Message<'_>, payload: Option<Bytes>) {
        let id = m.mux_id.0;
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let ClientKind::Stream(s) = &mut c.kind else {
            return;
        };
        if matches!(s.state, StreamState::Ended(_)) {
            return;
        }
        if m.op != Op::DISCONNECT_CLIENT_MUX {
            if let Err(e) = c.recv_seq.check(m.seq) {
                let err = CallError::Sequence {
                    want: e.want,
                    got: e.got,
                };
                return self.fail_client_stream(id, err, true);
            }
            s.last_alive = now;
        }
        match m.op {
            Op::ACK_MUX => {
                if matches!(s.state, StreamState::Connecting) {
                    // The credits were there from the start: the ack adds none.
                    s.state = StreamState::Open;
                }
            }
            Op::UNBLOCK_CL_MUX => {
                // A credit beyond the window is ignored (MinIO logs "overflow").
                let _ = s.credits.grant();
                wake(&mut c.tx_waker, &mut self.wake);
                if s.pace.credited() {
                    // Held by the bulk gate: it may send again.
                    self.schedule_data(Key::client(id));
                }
            }
            Op::DISCONNECT_CLIENT_MUX => {
                let err = if m.flags.contains(Flags::PAYLOAD_IS_ERR) {
                    CallError::Remote(
                        String::from_utf8_lossy(payload.as_deref().unwrap_or_default())
                            .into_owned(),
                    )
                } else {
                    CallError::Disconnected
                };
                self.fail_client_stream(id, err, false);
            }
            Op::MUX_SERVER_MSG => {
                if m.flags.contains(Flags::PAYLOAD_IS_ERR) {
                    let text = String::from_utf8_lossy(payload.as_deref().unwrap_or_default())
                        .into_owned();
                    return self.fail_client_stream(id, CallError::Remote(text), false);
                }
                let eof = m.flags.contains(Flags::EOF);
                if let Some(p) = payload
                    && !(eof && p.is_empty())
                {
                    if s.window.accept().is_err() {
                        let err = CallError::Protocol(format!(
                            "handler sent more than its {} credits (likely cause: its \
                             out_capacity on the remote node is larger than this caller's; \
                             declare the same capacities on both nodes)",
                            s.window.buffered()
                        ));
                        return self.fail_client_stream(id, err, true);
                    }
                    push_queued(&mut s.responses, p, s.window.size());
                    wake(&mut c.rx_waker, &mut self.wake);
                }
                if eof {
                    self.end_client_stream(id, End::Eof, false);
                }
            }
            _ => {}
        }
    }

    fn on_stream_pong(&mut self, now: Instant, id: u64, payload: Option<Bytes>) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let ClientKind::Stream(s) = &mut c.kind else {
            return;
        };
        match PongMsg::decode(payload.as_deref().unwrap_or_default()) {
            Ok(p) if p.not_found => self.fail_client_stream(
                id,
                CallError::Remote("remote terminated call".to_owned()),
                false,
            ),
            Ok(PongMsg { err: Some(e), .. }) => self.fail_client_stream(
                id,
                CallError::Remote(format!("remote pong failed: {e}")),
                false,
            ),
            _ => s.last_alive = now,
        }
    }

    fn on_server_stream_msg(&mut self, m: &Message<'_>, payload: Option<Bytes>) {
        let id = m.mux_id.0;
        let Some(sm) = self.servers.get_mut(&id) else {
            return;
        };
        let ServerKind::Stream(s) = &mut sm.kind else {
            return;
        };
        if m.op == Op::DISCONNECT_SERVER_MUX {
            return self.cancel_server_stream(id, None);
        }
        if s.state != ServeState::Open {
            return;
        }
        if let Err(e) = sm.recv_seq.check(m.seq) {
            return self.cancel_server_stream(id, Some(e.to_string()));
        }
        match m.op {
            Op::UNBLOCK_SRV_MUX => {
                let _ = s.credits.grant();
                wake(&mut s.out_waker, &mut self.wake);
                if s.pace.credited() {
                    // Held by the bulk gate: it may send again.
                    self.schedule_data(Key::server(id));
                }
            }
            Op::MUX_CLIENT_MSG => {
                if s.in_capacity == 0 {
                    return self.cancel_server_stream(
                        id,
                        Some("did not expect inbound message".to_owned()),
                    );
                }
                let eof = m.flags.contains(Flags::EOF);
                if let Some(p) = payload
                    && !(eof && p.is_empty())
                {
                    if s.input_closed || s.window.accept().is_err() {
                        return self.cancel_server_stream(id, Some("handler blocked".to_owned()));
                    }
                    push_queued(&mut s.inbound, p, s.window.size());
                }
                if eof {
                    s.input_closed = true;
                }
                wake(&mut s.in_waker, &mut self.wake);
            }
            _ => {}
        }
    }

    fn on_ping(&mut self, now: Instant, m: &Message<'_>, payload: Option<Bytes>) {
        let id = m.mux_id.0;
        let ping = PingMsg::decode(payload.as_deref().unwrap_or_default()).unwrap_or_default();
        if id != 0
            && let Some(sm) = self.servers.get_mut(&id)
            && let ServerKind::Stream(s) = &mut sm.kind
        {
            let err = match sm.recv_seq.check(m.seq) {
                Err(e) => Some(e.to_string()),
                Ok(()) if s.state == ServeState::Cancelled => Some("stream cancelled".to_owned()),
                Ok(()) => None,
            };
            s.last_ping = now;
            if s.owe_pong.len() >= MAX_OWED_PONGS {
                s.owe_pong.pop_front();
            }
            s.owe_pong.push_back(OwedPong {
                seq: m.seq,
                deadline_ms: m.deadline_ms,
                handler: m.handler,
                flags: m.flags,
                t: ping.t,
                err: err.clone(),
            });
            self.schedule_control(Key::server(id));
            if let Some(text) = err {
                self.cancel_server_stream(id, Some(text));
            }
            return;
        }
        // A ping for a stream that ended here (or was refused) crossed the final message on
        // the wire: it is answered "not found" like Go does (the caller, which got the end
        // first, ignores it) but not counted as a flood, since many streams can end just as
        // the caller's tick fires. A connection ping, or one for a stream the peer never
        // opened, counts.
        if id == 0 || id > self.max_opened {
            let max = self.cfg.max_pings_per_interval;
            self.pings = self.pings.saturating_add(1);
            if self.pings > max {
                return self.close(CloseReason::PingFlood { limit: max });
            }
        }
        let pong = PongMsg {
            not_found: id != 0,
            err: None,
            t: ping.t,
        };
        let mut buf = BytesMut::with_capacity(32);
        if pong.encode(&mut buf).is_err() {
            return;
        }
        let reply = OutMsg::reply_to(m, Op::PONG, self.cfg.base_flags, Some(buf.freeze()));
        if id == 0 {
            // One pong per connection ping, like Go. The ping limit bounds them; past it
            // (pings of several intervals while the writer is behind) the oldest is dropped.
            let max = usize::try_from(self.cfg.max_pings_per_interval)
                .unwrap_or(usize::MAX)
                .max(1);
            if self.owe_conn_pong.len() >= max {
                self.owe_conn_pong.pop_front();
            }
            self.owe_conn_pong.push_back(reply);
        } else {
            self.queue_stateless(reply);
        }
    }
}
