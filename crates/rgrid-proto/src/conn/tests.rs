//! Smoke tests of the core on a pair wired in memory (the full rule suite is in
//! `tests/pair.rs`).

use std::task::Waker;

use super::*;

struct AllRoutes;

impl Routes for AllRoutes {
    fn single(&self, h: HandlerId, _: Option<&SubrouteId>) -> Option<Class> {
        (h.0 == 78).then_some(Class::Latency)
    }
    fn stream(&self, h: HandlerId, _: Option<&SubrouteId>) -> Option<StreamRoute> {
        (h.0 == 78).then_some(StreamRoute {
            in_capacity: 1,
            out_capacity: 1,
            class: Class::Normal,
        })
    }
}

/// Moves every frame from `from` to `to`; returns how many messages moved.
fn pump(from: &mut Core, to: &mut Core, now: Instant) -> usize {
    let mut moved = 0;
    let mut batch = Vec::new();
    let mut frame = BytesMut::new();
    loop {
        batch.clear();
        if from.poll_transmit(&mut batch, 50, 32 * 1024) == 0 {
            return moved;
        }
        moved += batch.len();
        encode_frame(&batch, &mut frame).unwrap();
        to.handle_frame(now, &frame.split().freeze(), &AllRoutes)
            .unwrap();
    }
}

#[test]
fn a_request_round_trips() {
    let now = Instant::now();
    let (mut a, mut b) = (
        Core::new(Config::default(), now),
        Core::new(Config::default(), now),
    );
    let id = a
        .start_request(
            HandlerId(78),
            None,
            Bytes::from_static(b"hi"),
            Duration::from_secs(60),
            Class::Latency,
        )
        .unwrap();
    assert!(a.poll_response(id, Waker::noop()).is_pending());
    assert_eq!(pump(&mut a, &mut b, now), 1);
    let Some(Event::Request { mux, payload, .. }) = b.poll_event() else {
        panic!("no request event");
    };
    assert_eq!(payload, Bytes::from_static(b"hi"));
    b.respond(now, mux, Some(Ok(Bytes::from_static(b"ho"))));
    assert_eq!(pump(&mut b, &mut a, now), 1);
    assert_eq!(
        a.poll_response(id, Waker::noop()),
        Poll::Ready(Ok(Bytes::from_static(b"ho")))
    );
    assert_eq!(a.stats().outgoing_muxes, 0);
    assert_eq!(b.stats().incoming_muxes, 0);
}

#[test]
fn subroute_ids_print_like_go() {
    let sub = SubrouteId::new(HandlerId(78), "echo");
    let text = unknown_handler_text(HandlerId(78), Some(&sub));
    assert!(
        text.starts_with("Invalid Handler for type: [78 0 "),
        "{text}"
    );
    assert!(text.ends_with(']') && !text.contains(','), "{text}");
}
