//! Timers: connection pings and the pong watchdog, stream keepalive, stream deadlines.

use super::*;

impl Core {
    /// When [`Core::handle_timeout`] must next be called (`None` once closed).
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let dead = self.last_heard + self.cfg.dead_after;
        let mut t = self.next_ping.min(dead).min(self.next_stream_tick);
        if let Some((at, _)) = self.deadlines.first() {
            t = t.min(*at);
        }
        Some(t)
    }

    /// Runs every timer due at `now`. `wall` is the wall-clock time to put in pings.
    pub fn handle_timeout(&mut self, now: Instant, wall: GridTime) {
        if self.closed.is_some() {
            return;
        }
        self.wall = wall;
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.cfg.dead_after {
            return self.close(CloseReason::PongTimeout { silent });
        }
        if now >= self.next_ping {
            // A new interval: the peer's ping allowance starts again.
            self.pings = 0;
            self.owe_conn_ping = true;
            self.pings_sent += 1;
            self.last_ping_sent = Some((wall, now));
            while self.next_ping <= now {
                self.next_ping += self.cfg.ping_interval;
            }
        }
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            match key.side {
                Side::Client => {
                    self.fail_client_stream(key.id, CallError::DeadlineExceeded, true);
                }
                Side::Server => self.cancel_server_stream(key.id, None),
            }
        }
        if now >= self.next_stream_tick {
            let every = self.cfg.stream_ping_interval;
            while self.next_stream_tick <= now {
                self.next_stream_tick += every;
            }
            self.stream_tick(now, every);
        }
    }

    /// Every stream ping interval: pings the streams opened here (failing those silent for
    /// two intervals) and cancels served streams not pinged for four.
    fn stream_tick(&mut self, now: Instant, every: Duration) {
        let mut silent = Vec::new();
        let mut ping = Vec::new();
        for (&id, c) in &mut self.clients {
            if let ClientKind::Stream(s) = &mut c.kind
                && s.pinged
                && !matches!(s.state, StreamState::Ended(_))
                && s.connect.is_none()
            {
                if now.saturating_duration_since(s.last_alive) > 2 * every {
                    silent.push(id);
                } else {
                    s.owe_ping = true;
                    ping.push(id);
                }
            }
        }
        for id in ping {
            self.schedule_control(Key::client(id));
        }
        for id in silent {
            self.fail_client_stream(id, CallError::Disconnected, true);
        }
        let dead_after = 4 * every;
        let unseen: Vec<u64> = self
            .servers
            .iter()
            .filter_map(|(&id, m)| match &m.kind {
                ServerKind::Stream(s)
                    if s.watched
                        && s.state == ServeState::Open
                        && now.saturating_duration_since(s.last_ping) > dead_after =>
                {
                    Some(id)
                }
                _ => None,
            })
            .collect();
        for id in unseen {
            self.cancel_server_stream(id, None);
        }
    }
}
