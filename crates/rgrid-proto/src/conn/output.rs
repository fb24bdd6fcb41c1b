//! The scheduler: what the writer transmits next.

use super::*;

impl Core {
    /// Fills `out` with the next messages to transmit, in order, until it holds `max_msgs`
    /// messages or `max_bytes` encoded bytes (one frame: merge them with [`encode_frame`]).
    /// Control first, then data by class, round-robin within a class (see the module docs).
    /// Sequence numbers are assigned here, so each mux's messages leave in sequence order.
    /// Returns the number of messages added.
    ///
    /// A message that would take the frame past `max_bytes` is not merged: it is carried to
    /// the next call, which returns it first (so the order stays the one above). A frame is
    /// read and checked whole before any of its messages is handled, so a small answer
    /// merged in front of a large message would wait for all of it; on its own frame it is
    /// handled as soon as its bytes arrive. A message larger than `max_bytes` has a frame of
    /// its own.
    pub fn poll_transmit(
        &mut self,
        out: &mut Vec<OutMsg>,
        max_msgs: usize,
        max_bytes: usize,
    ) -> usize {
        if !self.held.is_empty() && self.has_output() {
            self.release_held();
        }
        let start = out.len();
        let mut bytes = 0;
        while out.len() - start < max_msgs.max(1) && bytes < max_bytes {
            let Some(m) = self
                .carried
                .take()
                .or_else(|| self.next_control())
                .or_else(|| self.next_data())
            else {
                break;
            };
            let len = m.encoded_len();
            if out.len() > start && bytes + len > max_bytes {
                self.carried = Some(m);
                break;
            }
            bytes += len;
            out.push(m);
        }
        out.len() - start
    }

    fn next_control(&mut self) -> Option<OutMsg> {
        if self.closed.is_some() {
            return None;
        }
        if self.owe_conn_ping {
            self.owe_conn_ping = false;
            let mut payload = BytesMut::with_capacity(24);
            PingMsg { t: self.wall }.encode(&mut payload);
            return Some(OutMsg {
                deadline_ms: deadline_ms(self.cfg.ping_interval),
                payload: Some(payload.freeze()),
                ..OutMsg::new(Op::PING, Flags::NONE)
            });
        }
        if let Some(p) = self.owe_conn_pong.pop_front() {
            return Some(p);
        }
        if let Some(m) = self.stateless.pop_front() {
            return Some(m);
        }
        while let Some(key) = self.control.pop_front() {
            let (msg, more) = match key.side {
                Side::Client => self.client_control(key.id),
                Side::Server => self.server_control(key.id),
            };
            let flag = match key.side {
                Side::Client => self.clients.get_mut(&key.id).map(|m| &mut m.in_control),
                Side::Server => self.servers.get_mut(&key.id).map(|m| &mut m.in_control),
            };
            if let Some(f) = flag {
                *f = more;
                if more {
                    self.control.push_back(key);
                }
            }
            if let Some(m) = msg {
                return Some(m);
            }
        }
        None
    }

    /// One owed control message of a stream opened here, and whether more are owed.
    fn client_control(&mut self, id: u64) -> (Option<OutMsg>, bool) {
        let base = self.cfg.base_flags;
        let Some(c) = self.clients.get_mut(&id) else {
            return (None, false);
        };
        let follow = |op: Op, seq: u32, flags: Flags| OutMsg {
            mux_id: id,
            seq,
            ..OutMsg::new(op, base | flags)
        };
        let s = match &mut c.kind {
            ClientKind::Stream(s) => s,
            ClientKind::Request(RequestState::Cancelling) => {
                let msg = follow(Op::DISCONNECT_SERVER_MUX, c.send_seq.advance(), Flags::NONE);
                self.remove_client(id);
                return (Some(msg), false);
            }
            ClientKind::Request(_) => return (None, false),
        };
        if s.connect.is_some() {
            // Nothing of a stream leaves before its open (which is data); its owed
            // control waits for the data turn to send it.
            return (None, false);
        }
        if s.owe_cancel {
            s.owe_cancel = false;
            s.owed_credits = 0;
            s.owe_ping = false;
            let msg = follow(Op::DISCONNECT_SERVER_MUX, c.send_seq.advance(), Flags::NONE);
            self.gc_client(id);
            return (Some(msg), false);
        }
        let msg = if s.owed_credits > 0 {
            s.owed_credits -= 1;
            follow(Op::UNBLOCK_SRV_MUX, c.send_seq.advance(), Flags::NONE)
        } else if s.owe_ping {
            s.owe_ping = false;
            let mut payload = BytesMut::with_capacity(24);
            PingMsg { t: self.wall }.encode(&mut payload);
            OutMsg {
                payload: Some(payload.freeze()),
                ..follow(Op::PING, c.send_seq.advance(), Flags::NONE)
            }
        } else {
            return (None, false);
        };
        let more = s.owed_credits > 0 || s.owe_ping || s.owe_cancel;
        (Some(msg), more)
    }

    /// One owed control message of a stream served here, and whether more are owed.
    fn server_control(&mut self, id: u64) -> (Option<OutMsg>, bool) {
        let base = self.cfg.base_flags;
        let Some(sm) = self.servers.get_mut(&id) else {
            return (None, false);
        };
        let ServerKind::Stream(s) = &mut sm.kind else {
            return (None, false);
        };
        let msg = if s.owe_ack {
            s.owe_ack = false;
            OutMsg {
                mux_id: id,
                seq: sm.send_seq.advance(),
                ..OutMsg::new(Op::ACK_MUX, base)
            }
        } else if let Some(p) = {
            // A pong with an error follows the stream's queued output, which holds the
            // error message itself (MinIO queues that before the pong, spec §3.11).
            let flushed = s.outq.is_empty();
            if s.owe_pong
                .front()
                .is_some_and(|p| p.err.is_none() || flushed)
            {
                s.owe_pong.pop_front()
            } else {
                None
            }
        } {
            let pong = PongMsg {
                not_found: false,
                err: p.err.map(Into::into),
                t: p.t,
            };
            let mut buf = BytesMut::with_capacity(48);
            // Encoding a pong fails only for an error text of 4 GiB.
            let payload = pong.encode(&mut buf).ok().map(|()| buf.freeze());
            OutMsg {
                mux_id: id,
                seq: p.seq,
                deadline_ms: p.deadline_ms,
                handler: p.handler,
                op: Op::PONG,
                flags: p.flags.without(Flags::SUBROUTE).with(base),
                payload,
                subroute: None,
            }
        } else if s.owed_credits > 0 && s.state == ServeState::Open {
            s.owed_credits -= 1;
            OutMsg {
                mux_id: id,
                seq: sm.send_seq.advance(),
                ..OutMsg::new(Op::UNBLOCK_CL_MUX, base)
            }
        } else {
            return (None, false);
        };
        let more = s
            .owe_pong
            .front()
            .is_some_and(|p| p.err.is_none() || s.outq.is_empty())
            || (s.owed_credits > 0 && s.state == ServeState::Open);
        (Some(msg), more)
    }

    fn next_data(&mut self) -> Option<OutMsg> {
        if self.closed.is_some() {
            return None;
        }
        loop {
            // The highest class with work, unless a lower one has waited too long (the one
            // that waited longest, the higher one on a tie). Each waiting class counts for
            // itself, so with three busy classes the lowest is not starved by the middle.
            let mut class = self.ready.iter().position(|r| !r.is_empty())?;
            let mut starved: Option<(u32, usize)> = None;
            for (c, (r, &w)) in self.ready.iter().zip(&self.waited).enumerate() {
                if c > class
                    && !r.is_empty()
                    && w >= STARVATION_LIMIT
                    && starved.is_none_or(|(most, _)| w > most)
                {
                    starved = Some((w, c));
                }
            }
            if let Some((_, c)) = starved {
                class = c;
            }
            for (c, (r, w)) in self.ready.iter().zip(&mut self.waited).enumerate() {
                if c == class || (c > class && r.is_empty()) {
                    *w = 0;
                } else if c > class {
                    *w = w.saturating_add(1);
                }
            }
            let key = self.ready.get_mut(class)?.pop_front()?;
            if class == Class::Bulk as usize && self.gate(key) {
                continue;
            }
            let (msg, more) = match key.side {
                Side::Client => self.client_data(key.id),
                Side::Server => self.server_data(key.id),
            };
            let flag = match key.side {
                Side::Client => self.clients.get_mut(&key.id).map(|m| &mut m.in_ready),
                Side::Server => self.servers.get_mut(&key.id).map(|m| &mut m.in_ready),
            };
            if let Some(f) = flag {
                *f = more;
                if more && let Some(r) = self.ready.get_mut(class) {
                    r.push_back(key);
                }
            }
            if let Some(m) = msg {
                if class == Class::Latency as usize {
                    self.latency_sent = self.latency_sent.wrapping_add(1);
                }
                return Some(m);
            }
        }
    }

    /// The bulk gate (see "Scheduling" in the module docs): whether the stream of `key` must
    /// wait for a credit before its next message. A held stream leaves the ready queue; the
    /// credit puts it back (`on_client_stream_msg`, `on_server_stream_msg`).
    fn gate(&mut self, key: Key) -> bool {
        let (latency_sent, latency_live) = (self.latency_sent, self.latency_live > 0);
        let (pace, in_ready, window) = match key.side {
            Side::Client => match self.clients.get_mut(&key.id) {
                Some(ClientMux {
                    kind: ClientKind::Stream(s),
                    in_ready,
                    ..
                }) if matches!(s.state, StreamState::Open)
                    && s.connect.is_none()
                    && !s.outq.is_empty() =>
                {
                    (&mut s.pace, in_ready, s.credits.window())
                }
                _ => return false,
            },
            Side::Server => match self.servers.get_mut(&key.id) {
                Some(ServerMux {
                    kind: ServerKind::Stream(s),
                    in_ready,
                    ..
                }) if s.state == ServeState::Open
                    && !s.owe_ack
                    && s.outq.front().is_some_and(|(f, _)| *f == Flags::NONE) =>
                {
                    (&mut s.pace, in_ready, s.credits.window())
                }
                _ => return false,
            },
        };
        if !pace.holds(latency_live, latency_sent, window) {
            return false;
        }
        pace.gated = true;
        *in_ready = false;
        true
    }

    fn dequeued(&mut self, payload: usize) {
        self.queued_bytes -= payload;
        self.queued_msgs -= 1;
    }

    /// The next data message of a call or stream opened here, and whether more wait.
    fn client_data(&mut self, id: u64) -> (Option<OutMsg>, bool) {
        let base = self.cfg.base_flags;
        let Some(c) = self.clients.get_mut(&id) else {
            return (None, false);
        };
        match &mut c.kind {
            ClientKind::Request(st) => {
                let RequestState::Queued { .. } = st else {
                    return (None, false);
                };
                let RequestState::Queued {
                    payload,
                    subroute,
                    deadline_ms,
                } = std::mem::replace(st, RequestState::Sent)
                else {
                    return (None, false);
                };
                let msg = OutMsg {
                    mux_id: id,
                    seq: c.send_seq.advance(),
                    deadline_ms,
                    handler: c.handler,
                    payload: Some(payload),
                    subroute,
                    ..OutMsg::new(Op::REQUEST, base | Flags::EOF)
                };
                self.dequeued(msg.payload_len());
                (Some(msg), false)
            }
            ClientKind::Stream(s) => {
                if let Some(open) = s.connect.take() {
                    let eof = if s.input == Input::Closed {
                        Flags::EOF
                    } else {
                        Flags::NONE
                    };
                    let msg = OutMsg {
                        mux_id: id,
                        seq: c.send_seq.advance(),
                        deadline_ms: open.deadline_ms,
                        handler: c.handler,
                        payload: Some(open.payload),
                        subroute: open.subroute,
                        ..OutMsg::new(Op::CONNECT_MUX, base | eof)
                    };
                    let more = !s.outq.is_empty() || s.input == Input::Closing;
                    let control = s.owed_credits > 0 || s.owe_ping || s.owe_cancel;
                    self.dequeued(msg.payload_len());
                    if control {
                        self.schedule_control(Key::client(id));
                    }
                    return (Some(msg), more);
                }
                if let Some(p) = s.outq.pop_front() {
                    s.pace.sent(self.latency_sent, p.len());
                    let msg = OutMsg {
                        mux_id: id,
                        seq: c.send_seq.advance(),
                        payload: Some(p),
                        ..OutMsg::new(Op::MUX_CLIENT_MSG, base)
                    };
                    let more = !s.outq.is_empty() || s.input == Input::Closing;
                    self.dequeued(msg.payload_len());
                    return (Some(msg), more);
                }
                if s.input == Input::Closing && !matches!(s.state, StreamState::Ended(_)) {
                    s.input = Input::Closed;
                    let msg = OutMsg {
                        mux_id: id,
                        seq: c.send_seq.advance(),
                        ..OutMsg::new(Op::MUX_CLIENT_MSG, base | Flags::EOF)
                    };
                    return (Some(msg), false);
                }
                (None, false)
            }
        }
    }

    /// The next data message of a call or stream served here, and whether more wait.
    fn server_data(&mut self, id: u64) -> (Option<OutMsg>, bool) {
        let base = self.cfg.base_flags;
        let Some(sm) = self.servers.get_mut(&id) else {
            return (None, false);
        };
        match &mut sm.kind {
            ServerKind::Request(r) => {
                let Some((flags, payload)) = r.answer.take() else {
                    return (None, false);
                };
                let msg = OutMsg {
                    mux_id: id,
                    seq: r.seq,
                    payload: Some(payload),
                    ..OutMsg::new(Op::RESPONSE, base | Flags::EOF | flags)
                };
                self.remove_server(id);
                self.answers_queued = self.answers_queued.saturating_sub(1);
                self.dequeued(msg.payload_len());
                (Some(msg), false)
            }
            ServerKind::Stream(s) => {
                if s.owe_ack {
                    // The ack leaves before any output of the mux.
                    s.owe_ack = false;
                    let msg = OutMsg {
                        mux_id: id,
                        seq: sm.send_seq.advance(),
                        ..OutMsg::new(Op::ACK_MUX, base)
                    };
                    return (Some(msg), true);
                }
                if let Some((flags, payload)) = s.outq.pop_front() {
                    if flags == Flags::NONE {
                        s.pace
                            .sent(self.latency_sent, payload.as_ref().map_or(0, Bytes::len));
                    }
                    let msg = OutMsg {
                        mux_id: id,
                        seq: sm.send_seq.advance(),
                        payload,
                        ..OutMsg::new(Op::MUX_SERVER_MSG, base | flags)
                    };
                    if flags.contains(Flags::EOF) && s.state == ServeState::Ending {
                        s.state = ServeState::Closing;
                    }
                    let more = !s.outq.is_empty() || s.state == ServeState::Closing;
                    let pong_waits = s.outq.is_empty() && !s.owe_pong.is_empty();
                    self.dequeued(msg.payload_len());
                    if pong_waits {
                        self.schedule_control(Key::server(id));
                    }
                    return (Some(msg), more);
                }
                if s.state == ServeState::Closing && s.handler_done {
                    // After the final message (spec §15.6), with Seq 0.
                    let msg = OutMsg {
                        mux_id: id,
                        ..OutMsg::new(Op::DISCONNECT_CLIENT_MUX, base)
                    };
                    if let Some(sm) = self.remove_server(id) {
                        self.remove_deadline(sm.deadline, Key::server(id));
                    }
                    return (Some(msg), false);
                }
                (None, false)
            }
        }
    }
}
