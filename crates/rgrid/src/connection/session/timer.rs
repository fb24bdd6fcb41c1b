//! The timer task: sleeps until the core's next timer (pings, the pong watchdog, stream
//! keepalive and deadlines) and runs it.

use std::sync::Arc;

use rgrid_proto::GridTime;

use super::{Session, now};

pub(super) async fn run(session: Arc<Session>) {
    loop {
        let at = {
            let mut g = session.lock();
            let at = g.core.next_timeout();
            g.timer_at = at;
            at
        };
        let Some(at) = at else { break };
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(at));
        tokio::select! {
            biased;
            () = session.cancel.cancelled() => break,
            () = session.timer_wake.notified() => continue,
            () = sleep => {}
        }
        let wall = GridTime::from_system_time(std::time::SystemTime::now());
        let t = now();
        let done = {
            let mut g = session.lock();
            g.core.handle_timeout(t, wall);
            session.collect(&mut g)
        };
        session.act(done);
        if session.cancel.is_cancelled() {
            break;
        }
    }
    session.conn.session_ended(&session);
}
