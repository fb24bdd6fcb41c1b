//! The connection core's rules, one test each, on a pair of cores wired in memory with virtual
//! time (the harness is in `pair/harness.rs`): single requests, streams (open, credits, EOF,
//! errors, cancel, release), sequence and credit violations, answers to unknown muxes, stream
//! and connection keepalive, deadlines, close, the scheduler, and a pair serving 16,384
//! streams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::harness;

use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use harness::{
    A, B, Pair, TestRoutes, counting_waker, expect_request, expect_stream, msg, tables_empty,
};
use rgrid_proto::conn::{
    CallError, Class, CloseReason, Config, Event, PROMPT_CREDIT_BYTES, STARVATION_LIMIT, ServeMsg,
};
use rgrid_proto::{
    DecodeError, Flags, GridTime, HandlerId, MuxConnectError, Op, PingMsg, PongMsg, SubrouteId,
};

/// The routes both nodes register unless a test says otherwise.
fn routes() -> TestRoutes {
    TestRoutes::default()
        .single(78, Class::Latency)
        .single_sub(78, "count", Class::Latency)
        .stream(78, 2, 2, Class::Normal)
        .stream(79, 0, 1, Class::Normal)
        .stream(10, 0, 64, Class::Bulk)
}

fn pair() -> Pair {
    Pair::new(routes())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ok(b: &[u8]) -> Poll<Option<Result<Bytes, CallError>>> {
    Poll::Ready(Some(Ok(Bytes::copy_from_slice(b))))
}

fn failed(e: CallError) -> Poll<Option<Result<Bytes, CallError>>> {
    Poll::Ready(Some(Err(e)))
}

const ENDED: Poll<Option<Result<Bytes, CallError>>> = Poll::Ready(None);

/// A stream from A to B on `h`, opened and acked; returns its mux id (the same on both
/// sides).
fn open_acked(p: &mut Pair, h: u8) -> u64 {
    let s = p.open(A, h, b"open");
    p.pump();
    let (mux, payload) = expect_stream(p, B);
    assert_eq!((mux, &payload[..]), (s, &b"open"[..]));
    s
}

/// A pair with a stream of windows `w` both ways, acked, whose caller sent its whole input
/// window (one byte each: 0, 1, ...).
fn window_of_input_sent(w: u32) -> (Pair, u64) {
    let routes = TestRoutes::default().stream(78, w, w, Class::Normal);
    let mut p = Pair::new(routes);
    let s = open_acked(&mut p, 78);
    for i in 0..w as u8 {
        assert!(p.send(A, s, &[i]).is_ready());
    }
    (p, s)
}

fn remote(t: &str) -> CallError {
    CallError::Remote(t.to_owned())
}

fn assert_quiet_and_empty(p: &mut Pair) {
    p.pump();
    for node in [A, B] {
        assert_eq!(
            p.core(node).queued(),
            (0, 0),
            "node {node}: data still queued"
        );
        tables_empty(p.core(node)).unwrap();
        assert_eq!(p.core(node).close_reason(), None);
    }
}

// =========================================================================================
// Single requests

#[test]
fn request_round_trip_wakes_the_caller() {
    let mut p = pair();
    let (w, woken) = counting_waker();
    let id = p.request(A, 78, b"ping");
    assert!(p.a().poll_response(id, &w).is_pending());
    p.pump();
    let (mux, payload) = expect_request(&mut p, B);
    assert_eq!((mux, &payload[..]), (id, &b"ping"[..]));
    let req = &p.sent_on(A, id)[0];
    assert_eq!(
        (req.op, req.seq, req.deadline_ms, req.handler, req.flags),
        (
            Op::REQUEST,
            0,
            60_000,
            HandlerId(78),
            Flags::CRC | Flags::EOF
        )
    );
    assert_eq!(woken.get(), 0);
    p.respond(B, mux, Some(Ok(b"pong")));
    p.pump();
    assert_eq!(
        woken.get(),
        1,
        "the waiting caller is woken when the answer arrives"
    );
    let resp = &p.sent_on(B, id)[0];
    assert_eq!(
        (resp.op, resp.seq, resp.flags),
        (Op::RESPONSE, 0, Flags::CRC | Flags::EOF)
    );
    assert_eq!(
        p.a().poll_response(id, &w),
        Poll::Ready(Ok(Bytes::from_static(b"pong")))
    );
    assert_quiet_and_empty(&mut p);
}

#[test]
fn request_remote_error() {
    let mut p = pair();
    let id = p.request(A, 78, b"x");
    p.pump();
    let (mux, _) = expect_request(&mut p, B);
    p.respond(B, mux, Some(Err("disk not found")));
    p.pump();
    let resp = &p.sent_on(B, id)[0];
    assert_eq!(resp.flags, Flags::CRC | Flags::EOF | Flags::PAYLOAD_IS_ERR);
    assert_eq!(
        p.response(A, id),
        Poll::Ready(Err(remote("disk not found")))
    );
    assert_quiet_and_empty(&mut p);
}

#[test]
fn unknown_handler_is_refused_with_its_name() {
    let mut p = pair();
    // A request to a handler B does not have (77 = CheckParts3).
    let id = p.request(A, 77, b"x");
    // A stream to one either.
    let s = p.open(A, 77, b"y");
    // And an id without a name.
    let unnamed = p.request(A, 200, b"z");
    p.pump();
    assert!(
        p.events(B).is_empty(),
        "nothing runs for an unknown handler"
    );
    let refusal = &p.sent_on(B, id)[0];
    // The reply is the request re-sent with the new op (spec §15.3): same Seq, DeadlineMS,
    // Handler and flags.
    assert_eq!(
        (
            refusal.op,
            refusal.seq,
            refusal.deadline_ms,
            refusal.handler,
            refusal.flags
        ),
        (
            Op::MUX_CONNECT_ERROR,
            0,
            60_000,
            HandlerId(77),
            Flags::CRC | Flags::EOF
        )
    );
    let text = MuxConnectError::decode(refusal.payload.as_deref().unwrap())
        .unwrap()
        .error
        .into_owned();
    assert_eq!(text, "Invalid Handler for type: CheckParts3");
    assert_eq!(p.response(A, id), Poll::Ready(Err(remote(&text))));
    assert_eq!(p.recv(A, s), failed(remote(&text)));
    assert_eq!(p.recv(A, s), ENDED);
    assert_eq!(
        p.response(A, unnamed),
        Poll::Ready(Err(remote("Invalid Handler")))
    );
    p.a().stream_release(s);
    assert_quiet_and_empty(&mut p);
}

#[test]
fn unknown_subroute_is_refused_with_go_byte_list() {
    let mut p = pair();
    let echo = SubrouteId::new(HandlerId(78), "echo");
    let count = SubrouteId::new(HandlerId(78), "count");
    let call = |p: &mut Pair, sub| {
        p.a()
            .start_request(
                HandlerId(78),
                Some(sub),
                Bytes::from_static(b"q"),
                secs(60),
                Class::Latency,
            )
            .unwrap()
    };
    let bad = call(&mut p, echo);
    let good = call(&mut p, count);
    p.pump();
    // The registered subroute runs, with its id.
    match p.events(B).as_slice() {
        [Event::Request { mux, subroute, .. }] => {
            assert_eq!((mux, subroute), (&good, &Some(count)));
        }
        other => panic!("{other:?}"),
    }
    let refusal = &p.sent_on(B, bad)[0];
    assert!(
        !refusal.flags.contains(Flags::SUBROUTE) && refusal.subroute.is_none(),
        "a reply never carries the subroute"
    );
    // Go prints a [32]byte as `[78 0 12 ...]`.
    let bytes: Vec<String> = echo.0.iter().map(u8::to_string).collect();
    let want = format!("Invalid Handler for type: [{}]", bytes.join(" "));
    assert!(want.starts_with("Invalid Handler for type: [78 0 "));
    assert_eq!(p.response(A, bad), Poll::Ready(Err(remote(&want))));
}

#[test]
fn mux_limit_refuses_and_the_connection_survives() {
    let cfg_b = Config {
        max_incoming_muxes: 2,
        ..Config::default()
    };
    let mut p = Pair::with(Config::default(), cfg_b, routes(), routes());
    let s1 = open_acked(&mut p, 78);
    let _s2 = open_acked(&mut p, 78);
    let s3 = p.open(A, 78, b"");
    let r = p.request(A, 78, b"");
    p.pump();
    assert!(p.events(B).is_empty());
    let want = "grid: too many requests and streams in progress (limit 2)";
    assert_eq!(p.recv(A, s3), failed(remote(want)));
    assert_eq!(p.response(A, r), Poll::Ready(Err(remote(want))));
    assert_eq!(p.b().stats().incoming_muxes, 2);
    // One stream ends: a new call is served on the same connection.
    assert!(p.serve_send(B, s1, ServeMsg::End(Ok(()))).is_ready());
    p.pump();
    assert_eq!(p.recv(A, s1), ENDED);
    let r = p.request(A, 78, b"again");
    p.pump();
    let (mux, _) = expect_request(&mut p, B);
    p.respond(B, mux, Some(Ok(b"served")));
    p.pump();
    assert_eq!(
        p.response(A, r),
        Poll::Ready(Ok(Bytes::from_static(b"served")))
    );
    assert_eq!(p.a().close_reason(), None);
    assert_eq!(p.b().close_reason(), None);
}

#[test]
fn an_answer_after_the_deadline_is_dropped() {
    let mut p = pair();
    let late = p
        .a()
        .start_request(HandlerId(78), None, Bytes::new(), secs(1), Class::Latency)
        .unwrap();
    let on_time = p
        .a()
        .start_request(HandlerId(78), None, Bytes::new(), secs(1), Class::Latency)
        .unwrap();
    p.pump();
    let (m1, _) = expect_request(&mut p, B);
    let (m2, _) = expect_request(&mut p, B);
    assert_eq!((m1, m2), (late, on_time));
    // Exactly at the deadline the answer still goes.
    p.now += secs(1);
    p.respond(B, on_time, Some(Ok(b"in time")));
    p.now += Duration::from_millis(1);
    p.respond(B, late, Some(Ok(b"too late")));
    p.pump();
    assert_eq!(p.ops_on(B, on_time), [Op::RESPONSE]);
    assert_eq!(p.ops_on(B, late), [], "the late answer is never sent");
    assert_eq!(p.b().stats().incoming_muxes, 0);
    // The caller's own timer gives up on it.
    assert!(p.response(A, late).is_pending());
    p.a().abandon_request(late);
    assert_eq!(
        p.response(A, on_time),
        Poll::Ready(Ok(Bytes::from_static(b"in time")))
    );
    assert_quiet_and_empty(&mut p);
}

#[test]
fn an_abandoned_requests_late_answer_is_dropped() {
    let mut p = pair();
    let id = p.request(A, 78, b"slow");
    p.pump();
    let (mux, _) = expect_request(&mut p, B);
    // The handler answers, but the caller gives up before the answer arrives.
    p.respond(B, mux, Some(Ok(b"late")));
    p.a().abandon_request(id);
    assert_eq!(p.a().stats().outgoing_muxes, 0);
    p.clear_log();
    p.pump();
    assert_eq!(p.ops_on(B, id), [Op::RESPONSE]);
    assert_eq!(
        p.ops_on(A, id),
        [Op::DISCONNECT_SERVER_MUX],
        "the caller's cancel crossed the answer"
    );
    assert_eq!(p.events(B), [], "an answered request has nothing to cancel");
    assert!(
        p.sent_by(A).len() == 1,
        "nothing answers a dropped late answer"
    );
    // Abandoned before it left: nothing goes on the wire at all.
    let id = p.request(A, 78, b"never");
    p.a().abandon_request(id);
    assert_eq!(p.a().queued(), (0, 0));
    assert_eq!(p.transmit_all(A), 0);
    assert_quiet_and_empty(&mut p);
}

/// A single request abandoned while its handler runs cancels that handler: the caller sends
/// `OpDisconnectServerMux` (MinIO sends nothing, and a Go peer ignores it), the handler side
/// forgets the mux and reports `Event::Cancel`, and the handler's answer is never sent.
#[test]
fn an_abandoned_request_cancels_its_handler() {
    let mut p = pair();
    let id = p.request(A, 78, b"hung");
    p.pump();
    let (mux, _) = expect_request(&mut p, B);
    assert_eq!(p.b().stats().incoming_muxes, 1);
    p.a().abandon_request(id);
    p.a().abandon_request(id);
    p.clear_log();
    p.pump();
    assert_eq!(
        p.ops_on(A, id),
        [Op::DISCONNECT_SERVER_MUX],
        "one cancel, once"
    );
    assert_eq!(p.events(B), [Event::Cancel { mux }]);
    assert_eq!(p.b().stats().incoming_muxes, 0);
    p.clear_log();
    p.respond(B, mux, Some(Ok(b"too late")));
    p.pump();
    assert!(
        p.sent_by(B).is_empty(),
        "a cancelled request's answer is dropped"
    );
    // A cancel for a request that is no longer served (or never was) is ignored.
    p.inject(
        B,
        &[msg(Op::DISCONNECT_SERVER_MUX, mux, 1, Flags::NONE, None)],
    )
    .unwrap();
    p.pump();
    assert!(p.sent_by(B).is_empty());
    assert_quiet_and_empty(&mut p);
}

/// A connection that closes while a cancel is owed forgets the request (nobody waits for it).
#[test]
fn a_cancelling_request_is_forgotten_when_the_connection_closes() {
    let mut p = pair();
    let id = p.request(A, 78, b"hung");
    p.pump();
    p.a().abandon_request(id);
    p.a().close(CloseReason::Local("shutdown".to_owned()));
    assert_eq!(p.transmit_all(A), 0);
    tables_empty(p.a()).unwrap();
}

// =========================================================================================
// Streams

/// Input may follow the open at once, up to the handler's window (the registration's, like
/// every credit), without waiting a round trip for the ack; the ack adds no credits.
#[test]
fn stream_input_follows_the_open_before_the_ack() {
    let mut p = pair();
    let (w, woken) = counting_waker();
    let s = p.open(A, 78, b"init");
    // Window 2 (route 78): two messages go at once, the third waits for a credit.
    for m in [&b"in1"[..], b"in2"] {
        let mut input = Some(Bytes::copy_from_slice(m));
        assert_eq!(p.a().stream_send(s, &mut input, &w), Poll::Ready(Ok(())));
    }
    let mut third = Some(Bytes::from_static(b"in3"));
    assert!(p.a().stream_send(s, &mut third, &w).is_pending());
    assert!(third.is_some(), "a pending send keeps its payload");
    p.transmit_all(A);
    let wire: Vec<(Op, u32, HandlerId, Flags, u32)> = p
        .sent_on(A, s)
        .iter()
        .map(|m| (m.op, m.seq, m.handler, m.flags, m.deadline_ms))
        .collect();
    assert_eq!(
        wire,
        [
            (Op::CONNECT_MUX, 0, HandlerId(78), Flags::CRC, 0),
            (Op::MUX_CLIENT_MSG, 1, HandlerId(0), Flags::CRC, 0),
            (Op::MUX_CLIENT_MSG, 2, HandlerId(0), Flags::CRC, 0),
        ],
        "the open, then the input, in one flight"
    );
    p.deliver_all(A);
    let (mux, payload) = expect_stream(&mut p, B);
    assert_eq!((mux, &payload[..]), (s, &b"init"[..]));
    assert_eq!(
        p.serve_recv(B, s),
        Poll::Ready(Some(Bytes::from_static(b"in1")))
    );
    p.pump();
    let ack = &p.sent_on(B, s)[0];
    assert_eq!(
        (ack.op, ack.seq, ack.handler),
        (Op::ACK_MUX, 0, HandlerId(0))
    );
    assert_eq!(woken.get(), 1, "the first credit wakes the waiting sender");
    assert_eq!(p.a().stream_send(s, &mut third, &w), Poll::Ready(Ok(())));
    let mut fourth = Some(Bytes::from_static(b"in4"));
    assert!(
        p.a().stream_send(s, &mut fourth, &w).is_pending(),
        "the ack added no credit: still one per message read"
    );
    p.pump();
    assert_eq!(
        p.serve_recv(B, s),
        Poll::Ready(Some(Bytes::from_static(b"in2")))
    );
    assert_eq!(
        p.serve_recv(B, s),
        Poll::Ready(Some(Bytes::from_static(b"in3")))
    );
}

/// Input that followed the open of a stream the handler side refuses: the caller reports the
/// refusal (not a disconnect), and the answers to the early input (one `OpDisconnectClientMux`
/// each, as Go answers input for an unknown mux) end nothing else and start no exchange.
#[test]
fn early_input_to_a_refused_stream_reports_the_refusal() {
    let mut p = pair();
    // Route 78 on A only: B has no stream handler 78.
    p.nodes[B].routes = TestRoutes::default().single(78, Class::Latency);
    let s = p.open(A, 78, b"init");
    for m in [&b"in1"[..], b"in2"] {
        assert_eq!(p.send(A, s, m), Poll::Ready(Ok(())));
    }
    p.pump();
    let answers: Vec<Op> = p.sent_by(B).iter().map(|m| m.op).collect();
    assert_eq!(
        answers,
        [
            Op::MUX_CONNECT_ERROR,
            Op::DISCONNECT_CLIENT_MUX,
            Op::DISCONNECT_CLIENT_MUX
        ]
    );
    let got = p.recv(A, s);
    let Poll::Ready(Some(Err(CallError::Remote(e)))) = &got else {
        panic!("expected the refusal, got {got:?}");
    };
    assert!(e.starts_with("Invalid Handler for type: "), "{e}");
    assert_eq!(p.recv(A, s), ENDED);
    p.a().stream_release(s);
    assert_quiet_and_empty(&mut p);
}

#[test]
fn the_ack_leaves_before_output_queued_with_it() {
    let mut p = pair();
    let s = p.open(A, 78, b"");
    p.transmit_all(A);
    p.deliver_all(A);
    let _ = expect_stream(&mut p, B);
    // The handler answers before anything of the stream was transmitted.
    assert!(p.serve_data(B, s, b"first").is_ready());
    assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_ready());
    p.pump();
    let wire: Vec<(Op, u32)> = p.sent_on(B, s).iter().map(|m| (m.op, m.seq)).collect();
    assert_eq!(
        wire,
        [
            (Op::ACK_MUX, 0),
            (Op::MUX_SERVER_MSG, 1),
            (Op::MUX_SERVER_MSG, 2),
            (Op::DISCONNECT_CLIENT_MUX, 0)
        ]
    );
    assert_eq!(p.recv(A, s), ok(b"first"));
    assert_eq!(p.recv(A, s), ENDED);
}

/// Sends `n` messages from A's caller to B's handler, which reads one per round: the
/// messages sent and not yet read never exceed the window, and the window is used fully.
#[test]
fn caller_credits_bound_messages_in_flight() {
    const W: u32 = 3;
    const N: usize = 20;
    let routes = TestRoutes::default().stream(78, W, 1, Class::Normal);
    let mut p = Pair::new(routes);
    let s = open_acked(&mut p, 78);
    let (w, woken) = counting_waker();
    let (mut sent, mut read, mut max_in_flight) = (0usize, 0usize, 0usize);
    let mut pending = 0;
    while read < N {
        while sent < N {
            let mut m = Some(Bytes::from(sent.to_string()));
            match p.a().stream_send(s, &mut m, &w) {
                Poll::Ready(Ok(())) => sent += 1,
                Poll::Pending => {
                    pending += 1;
                    break;
                }
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
        }
        p.pump();
        let on_wire = p
            .sent_on(A, s)
            .iter()
            .filter(|m| m.op == Op::MUX_CLIENT_MSG)
            .count();
        assert_eq!(on_wire, sent, "every accepted message left");
        max_in_flight = max_in_flight.max(sent - read);
        assert!(
            sent - read <= W as usize,
            "{} in flight, window {W}",
            sent - read
        );
        let before = woken.get();
        match p.serve_recv(B, s) {
            Poll::Ready(Some(m)) => assert_eq!(m, read.to_string()),
            other => panic!("{other:?}"),
        }
        read += 1;
        p.pump();
        if sent < N && sent - (read - 1) == W as usize {
            assert_eq!(
                woken.get(),
                before + 1,
                "the credit wakes the sender that waited for it"
            );
        }
    }
    assert_eq!(max_in_flight, W as usize);
    assert!(pending > 0);
    assert!(!p.b().serve_is_cancelled(s));
    // The credits went back one by one, in sequence after the ack.
    let seqs: Vec<u32> = p
        .sent_on(B, s)
        .iter()
        .filter(|m| m.op == Op::UNBLOCK_CL_MUX)
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=N as u32).collect::<Vec<_>>());
}

/// A window of 16 returns its credits in batches of 8 (half the window: the sender still
/// holds the other half, so it never waits for the batch), or with any other message of the
/// connection, merged into its frame. Both directions: the handler's input and the caller's
/// responses.
#[test]
fn credits_return_in_batches_of_half_the_window_or_with_other_output() {
    const W: u32 = 16;
    let (mut p, s) = window_of_input_sent(W);
    assert!(
        p.send(A, s, b"over").is_pending(),
        "the caller used its window"
    );
    p.pump();
    p.clear_log();
    for i in 0..7u8 {
        assert_eq!(p.serve_recv(B, s), Poll::Ready(Some(Bytes::from(vec![i]))));
    }
    p.pump();
    assert_eq!(p.ops_on(B, s), [], "7 credits are held");
    assert_eq!(p.serve_recv(B, s), Poll::Ready(Some(Bytes::from(vec![7]))));
    assert_eq!(
        p.transmit(B),
        8,
        "the 8th read sends the batch, in one frame"
    );
    assert_eq!(p.ops_on(B, s), [Op::UNBLOCK_CL_MUX; 8]);
    p.pump();
    assert!(
        p.send(A, s, b"more").is_ready(),
        "the caller got its credits back"
    );
    // A held credit leaves with other output, in the same frame.
    p.clear_log();
    assert!(p.serve_recv(B, s).is_ready());
    p.pump();
    assert_eq!(p.ops_on(B, s), []);
    assert!(p.serve_data(B, s, b"answer").is_ready());
    assert_eq!(p.transmit(B), 2);
    assert_eq!(p.ops_on(B, s), [Op::UNBLOCK_CL_MUX, Op::MUX_SERVER_MSG]);
    p.pump();

    // The caller's side: responses read return credits to the handler the same way.
    p.clear_log();
    for i in 1..W as u8 {
        assert!(p.serve_data(B, s, &[i]).is_ready());
    }
    p.pump();
    assert_eq!(p.recv(A, s), ok(b"answer"));
    for i in 1..7u8 {
        assert_eq!(p.recv(A, s), ok(&[i]));
    }
    p.pump();
    assert_eq!(p.ops_on(A, s), [], "7 credits are held");
    assert_eq!(p.recv(A, s), ok(&[7]));
    assert_eq!(p.transmit(A), 8);
    assert_eq!(p.ops_on(A, s), [Op::UNBLOCK_SRV_MUX; 8]);
}

/// Once the caller closed its input, the handler side returns no more credits for it: the
/// caller sends nothing more, so they would only cost the caller's node a frame to read.
/// Credits for messages read before the end arrived still go.
#[test]
fn no_credits_return_once_the_callers_input_ended() {
    const W: u32 = 16;
    let (mut p, s) = window_of_input_sent(W);
    p.pump();
    p.clear_log();
    // Eight read while the input is open: the batch goes.
    for i in 0..8u8 {
        assert_eq!(p.serve_recv(B, s), Poll::Ready(Some(Bytes::from(vec![i]))));
    }
    p.pump();
    assert_eq!(p.ops_on(B, s), [Op::UNBLOCK_CL_MUX; 8]);
    p.clear_log();
    p.a().stream_close_send(s);
    p.pump();
    // The other eight and the end, read after the end arrived: no credit at all, not even
    // with other output of the stream.
    for i in 8..W as u8 {
        assert_eq!(p.serve_recv(B, s), Poll::Ready(Some(Bytes::from(vec![i]))));
    }
    assert_eq!(p.serve_recv(B, s), Poll::Ready(None), "the input ended");
    assert!(p.serve_data(B, s, b"answer").is_ready());
    p.pump();
    assert_eq!(p.ops_on(B, s), [Op::MUX_SERVER_MSG]);
    assert_eq!(p.recv(A, s), ok(b"answer"));
}

/// Windows of one or two messages return each credit at once: the peer needs it to send.
#[test]
fn small_windows_return_each_credit_at_once() {
    for w in [1u32, 2] {
        let routes = TestRoutes::default().stream(78, w, w, Class::Normal);
        let mut p = Pair::new(routes);
        let s = open_acked(&mut p, 78);
        assert!(p.send(A, s, b"in").is_ready());
        assert!(p.serve_data(B, s, b"out").is_ready());
        p.pump();
        p.clear_log();
        assert!(p.serve_recv(B, s).is_ready());
        assert_eq!(p.recv(A, s), ok(b"out"));
        p.pump();
        assert_eq!(p.ops_on(B, s), [Op::UNBLOCK_CL_MUX], "window {w}");
        assert_eq!(p.ops_on(A, s), [Op::UNBLOCK_SRV_MUX], "window {w}");
    }
}

#[test]
fn handler_credits_bound_messages_in_flight() {
    const W: u32 = 2;
    const N: usize = 20;
    let routes = TestRoutes::default().stream(79, 0, W, Class::Normal);
    let mut p = Pair::new(routes);
    let s = open_acked(&mut p, 79);
    assert_eq!(
        p.serve_recv(B, s),
        Poll::Ready(None),
        "a stream without input"
    );
    let (w, woken) = counting_waker();
    let (mut sent, mut read, mut max_in_flight) = (0usize, 0usize, 0usize);
    while read < N {
        while sent < N {
            let mut m = Some(ServeMsg::Data(Bytes::from(sent.to_string())));
            match p.b().serve_send(s, &mut m, &w) {
                Poll::Ready(Ok(())) => sent += 1,
                Poll::Pending => break,
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
        }
        p.pump();
        max_in_flight = max_in_flight.max(sent - read);
        assert!(sent - read <= W as usize);
        let before = woken.get();
        assert_eq!(p.recv(A, s), ok(read.to_string().as_bytes()));
        read += 1;
        p.pump();
        if sent < N && sent - (read - 1) == W as usize {
            assert_eq!(woken.get(), before + 1, "a credit wakes the handler");
        }
    }
    assert_eq!(max_in_flight, W as usize);
    // The end takes a credit too.
    let mut end = Some(ServeMsg::End(Ok(())));
    assert_eq!(p.b().serve_send(s, &mut end, &w), Poll::Ready(Ok(())));
    p.pump();
    assert_eq!(p.recv(A, s), ENDED);
    p.a().stream_release(s);
    assert_quiet_and_empty(&mut p);
}

#[test]
fn eof_from_the_caller() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    assert!(p.send(A, s, b"a").is_ready());
    assert!(p.send(A, s, b"b").is_ready());
    p.a().stream_close_send(s);
    assert_eq!(
        p.send(A, s, b"c"),
        Poll::Ready(Err(CallError::Local("stream input already closed")))
    );
    p.pump();
    let wire: Vec<(u32, Flags, Option<Bytes>)> = p
        .sent_on(A, s)
        .iter()
        .filter(|m| m.op == Op::MUX_CLIENT_MSG)
        .map(|m| (m.seq, m.flags, m.payload.clone()))
        .collect();
    assert_eq!(
        wire,
        [
            (1, Flags::CRC, Some(Bytes::from_static(b"a"))),
            (2, Flags::CRC, Some(Bytes::from_static(b"b"))),
            (3, Flags::CRC | Flags::EOF, None),
        ]
    );
    assert_eq!(
        p.serve_recv(B, s),
        Poll::Ready(Some(Bytes::from_static(b"a")))
    );
    assert_eq!(
        p.serve_recv(B, s),
        Poll::Ready(Some(Bytes::from_static(b"b")))
    );
    assert_eq!(p.serve_recv(B, s), Poll::Ready(None));
    // A caller without input says so on the open.
    let s2 = p.open(A, 79, b"");
    p.pump();
    assert_eq!(p.sent_on(A, s2)[0].flags, Flags::CRC | Flags::EOF);
    let (m, _) = expect_stream(&mut p, B);
    assert_eq!(p.serve_recv(B, m), Poll::Ready(None));
}

#[test]
fn eof_from_the_handler() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    let (w, woken) = counting_waker();
    assert!(p.a().stream_recv(s, &w).is_pending());
    assert!(p.serve_data(B, s, b"r1").is_ready());
    p.pump();
    assert_eq!(
        woken.get(),
        1,
        "the waiting consumer is woken when a message arrives"
    );
    assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_ready());
    assert_eq!(
        p.serve_data(B, s, b"more"),
        Poll::Ready(Err(CallError::Cancelled)),
        "nothing after the end"
    );
    p.pump();
    let wire: Vec<(Op, u32, Flags)> = p
        .sent_on(B, s)
        .iter()
        .map(|m| (m.op, m.seq, m.flags))
        .collect();
    assert_eq!(
        wire,
        [
            (Op::ACK_MUX, 0, Flags::CRC),
            (Op::MUX_SERVER_MSG, 1, Flags::CRC),
            (Op::MUX_SERVER_MSG, 2, Flags::CRC | Flags::EOF),
            // After the final message, with Seq 0 (spec §15.6).
            (Op::DISCONNECT_CLIENT_MUX, 0, Flags::CRC),
        ]
    );
    assert_eq!(p.b().stats().incoming_muxes, 0);
    assert!(p.a().stream_is_ended(s));
    assert_eq!(
        p.a().stream_end(s),
        Some(Ok(())),
        "ended, with r1 still unread"
    );
    assert_eq!(p.recv(A, s), ok(b"r1"));
    assert_eq!(p.recv(A, s), ENDED);
    p.serve_done(B, s);
    p.a().stream_release(s);
    assert_quiet_and_empty(&mut p);
    assert!(
        !p.ops_on(A, s).contains(&Op::DISCONNECT_SERVER_MUX),
        "an ended stream is not cancelled"
    );
}

#[test]
fn handler_error_ends_the_stream_after_its_messages() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    assert!(p.serve_data(B, s, b"r1").is_ready());
    assert!(
        p.serve_send(B, s, ServeMsg::End(Err("bad thing".to_owned())))
            .is_ready()
    );
    p.pump();
    let last = p
        .sent_on(B, s)
        .into_iter()
        .find(|m| m.op == Op::MUX_SERVER_MSG && m.flags.contains(Flags::EOF))
        .unwrap();
    assert_eq!(last.flags, Flags::CRC | Flags::EOF | Flags::PAYLOAD_IS_ERR);
    let error = Some(Err(remote("bad thing")));
    assert_eq!(
        p.a().stream_end(s),
        error,
        "the end is known before it is read"
    );
    assert_eq!(p.recv(A, s), ok(b"r1"));
    assert_eq!(p.recv(A, s), failed(remote("bad thing")));
    assert_eq!(p.recv(A, s), ENDED);
    assert_eq!(p.a().stream_end(s), error, "and after");
}

#[test]
fn cancel_by_the_caller_reaches_the_handler() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    let (w, woken) = counting_waker();
    assert!(p.a().stream_recv(s, &w).is_pending());
    p.a().stream_cancel(s, CallError::Cancelled);
    p.collect(A);
    assert_eq!(woken.get(), 1, "the consumer learns of the cancel");
    p.transmit_all(A);
    p.deliver_all(A);
    let dsm = p.sent_on(A, s).pop().unwrap();
    assert_eq!(
        (dsm.op, dsm.seq, dsm.handler),
        (Op::DISCONNECT_SERVER_MUX, 1, HandlerId(0))
    );
    assert_eq!(p.events(B), [Event::Cancel { mux: s }]);
    assert_eq!(
        p.serve_data(B, s, b"x"),
        Poll::Ready(Err(CallError::Cancelled))
    );
    assert_eq!(p.serve_recv(B, s), Poll::Ready(None));
    assert!(p.b().serve_is_cancelled(s));
    // Nothing more of the mux until the handler is done, then the final disconnect.
    assert_eq!(p.transmit_all(B), 0);
    p.serve_done(B, s);
    p.pump();
    assert_eq!(p.ops_on(B, s), [Op::ACK_MUX, Op::DISCONNECT_CLIENT_MUX]);
    assert_eq!(p.recv(A, s), failed(CallError::Cancelled));
    assert_eq!(p.recv(A, s), ENDED);
    p.a().stream_release(s);
    assert_quiet_and_empty(&mut p);
}

#[test]
fn releasing_an_unended_stream_cancels_it() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    assert!(p.serve_data(B, s, b"unread").is_ready());
    p.pump();
    p.a().stream_release(s);
    p.pump();
    assert_eq!(p.ops_on(A, s).last(), Some(&Op::DISCONNECT_SERVER_MUX));
    assert_eq!(p.events(B), [Event::Cancel { mux: s }]);
    p.serve_done(B, s);
    assert_quiet_and_empty(&mut p);
    // Released before its open left: nothing goes on the wire.
    let s = p.open(A, 78, b"never");
    p.a().stream_release(s);
    assert_eq!(p.transmit_all(A), 0);
    assert_quiet_and_empty(&mut p);
}

#[test]
fn sequence_mismatch_at_the_handler() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.inject(B, &[msg(Op::MUX_CLIENT_MSG, s, 5, Flags::NONE, Some(b"x"))])
        .unwrap();
    let text = "receive sequence number mismatch. want 1, got 5";
    assert_eq!(p.events(B), [Event::Cancel { mux: s }]);
    p.pump();
    let err = p.sent_on(B, s).pop().unwrap();
    assert_eq!(
        (err.op, err.flags, err.payload.as_deref()),
        (
            Op::MUX_SERVER_MSG,
            Flags::CRC | Flags::EOF | Flags::PAYLOAD_IS_ERR,
            Some(text.as_bytes())
        )
    );
    assert_eq!(p.recv(A, s), failed(remote(text)));
    p.serve_done(B, s);
    p.pump();
    assert_eq!(p.ops_on(B, s).last(), Some(&Op::DISCONNECT_CLIENT_MUX));

    // A stream ping out of sequence: the pong carries the text too.
    let s = open_acked(&mut p, 78);
    p.inject(B, &[msg(Op::PING, s, 7, Flags::NONE, None)])
        .unwrap();
    p.pump();
    let pong = p
        .sent_on(B, s)
        .into_iter()
        .find(|m| m.op == Op::PONG)
        .unwrap();
    assert_eq!(pong.seq, 7);
    let decoded = PongMsg::decode(pong.payload.as_deref().unwrap()).unwrap();
    let text = "receive sequence number mismatch. want 1, got 7";
    assert_eq!(decoded.err.as_deref(), Some(text));
    assert!(!decoded.not_found);
    assert_eq!(p.recv(A, s), failed(remote(text)));
}

#[test]
fn sequence_mismatch_at_the_caller() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.inject(A, &[msg(Op::MUX_SERVER_MSG, s, 4, Flags::NONE, Some(b"x"))])
        .unwrap();
    let e = CallError::Sequence { want: 1, got: 4 };
    assert!(e.to_string().starts_with("out-of-sequence item received"));
    assert_eq!(p.recv(A, s), failed(e));
    p.pump();
    assert_eq!(
        p.ops_on(A, s).last(),
        Some(&Op::DISCONNECT_SERVER_MUX),
        "the handler side is told to stop"
    );
    assert_eq!(p.events(B), [Event::Cancel { mux: s }]);
}

#[test]
fn a_credit_beyond_the_window_is_ignored() {
    // At the caller: window 2, one credit too many (in sequence).
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.inject(A, &[msg(Op::UNBLOCK_CL_MUX, s, 1, Flags::NONE, None)])
        .unwrap();
    assert!(!p.a().stream_is_ended(s));
    assert_eq!(p.a().stream_end(s), None);
    assert!(p.send(A, s, b"1").is_ready());
    assert!(p.send(A, s, b"2").is_ready());
    assert!(p.send(A, s, b"3").is_pending(), "still a window of 2");
    // At the handler: output window 2.
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.inject(B, &[msg(Op::UNBLOCK_SRV_MUX, s, 1, Flags::NONE, None)])
        .unwrap();
    assert!(!p.b().serve_is_cancelled(s));
    assert!(p.serve_data(B, s, b"1").is_ready());
    assert!(p.serve_data(B, s, b"2").is_ready());
    assert!(p.serve_data(B, s, b"3").is_pending());
    p.pump();
    assert_eq!(p.recv(A, s), ok(b"1"));
}

#[test]
fn a_caller_sending_beyond_its_credits_is_refused() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    let over: Vec<_> = (1..=3)
        .map(|seq| msg(Op::MUX_CLIENT_MSG, s, seq, Flags::NONE, Some(b"m")))
        .collect();
    p.inject(B, &over).unwrap();
    assert_eq!(p.events(B), [Event::Cancel { mux: s }]);
    p.pump();
    assert_eq!(p.recv(A, s), failed(remote("handler blocked")));
    // A handler without input gets none.
    let s = open_acked(&mut p, 79);
    p.inject(B, &[msg(Op::MUX_CLIENT_MSG, s, 1, Flags::NONE, Some(b"m"))])
        .unwrap();
    p.pump();
    assert_eq!(
        p.recv(A, s),
        failed(remote("did not expect inbound message"))
    );
}

#[test]
fn a_handler_sending_beyond_its_credits_is_refused() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    let over: Vec<_> = (1..=3)
        .map(|seq| msg(Op::MUX_SERVER_MSG, s, seq, Flags::NONE, Some(b"m")))
        .collect();
    p.inject(A, &over).unwrap();
    assert_eq!(p.recv(A, s), ok(b"m"));
    assert_eq!(p.recv(A, s), ok(b"m"));
    assert_eq!(
        p.recv(A, s),
        failed(CallError::Protocol(
            "handler sent more than its 2 credits (likely cause: its out_capacity on the \
             remote node is larger than this caller's; declare the same capacities on both \
             nodes)"
                .to_owned()
        ))
    );
    assert_eq!(p.recv(A, s), ENDED);
    p.pump();
    assert_eq!(p.ops_on(A, s).last(), Some(&Op::DISCONNECT_SERVER_MUX));
}

#[test]
fn answers_to_unknown_muxes() {
    let mut p = pair();
    let to_a = [
        msg(Op::ACK_MUX, 42, 0, Flags::NONE, None),
        msg(Op::MUX_SERVER_MSG, 43, 1, Flags::NONE, Some(b"x")),
        msg(Op::MUX_SERVER_MSG, 44, 1, Flags::EOF, None),
        msg(Op::UNBLOCK_CL_MUX, 45, 1, Flags::NONE, None),
        msg(Op::DISCONNECT_CLIENT_MUX, 46, 0, Flags::NONE, None),
        msg(Op::RESPONSE, 47, 0, Flags::EOF, Some(b"late")),
    ];
    p.inject(A, &to_a).unwrap();
    let to_b = [
        msg(Op::MUX_CLIENT_MSG, 50, 1, Flags::NONE, Some(b"x")),
        msg(Op::UNBLOCK_SRV_MUX, 51, 1, Flags::NONE, None),
        msg(Op::DISCONNECT_SERVER_MUX, 52, 1, Flags::NONE, None),
    ];
    p.inject(B, &to_b).unwrap();
    p.transmit_all(A);
    p.transmit_all(B);
    let from_a: Vec<(Op, u64)> = p.sent_by(A).iter().map(|m| (m.op, m.mux_id)).collect();
    // An ack or message for a stream this side does not have: the handler side must stop
    // (Go answers OpDisconnectClientMux here, which lands in the wrong table, spec §14.2).
    assert_eq!(
        from_a,
        [
            (Op::DISCONNECT_SERVER_MUX, 42),
            (Op::DISCONNECT_SERVER_MUX, 43)
        ]
    );
    let from_b: Vec<(Op, u64)> = p.sent_by(B).iter().map(|m| (m.op, m.mux_id)).collect();
    assert_eq!(from_b, [(Op::DISCONNECT_CLIENT_MUX, 50)]);
    p.pump();
    assert_eq!(p.a().close_reason(), None);
    assert_eq!(p.b().close_reason(), None);
    assert_quiet_and_empty(&mut p);
}

#[test]
fn stream_pings_are_answered() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.advance_to(secs(15), true);
    let ping = p
        .sent_on(A, s)
        .into_iter()
        .find(|m| m.op == Op::PING)
        .unwrap();
    assert_eq!((ping.seq, ping.handler), (1, HandlerId(0)));
    let t = PingMsg::decode(ping.payload.as_deref().unwrap()).unwrap().t;
    assert_eq!(t, harness::wall(secs(15)));
    let pong = p
        .sent_on(B, s)
        .into_iter()
        .find(|m| m.op == Op::PONG)
        .unwrap();
    assert_eq!(pong.seq, 1, "a pong echoes the ping's Seq");
    let decoded = PongMsg::decode(pong.payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        (decoded.not_found, decoded.err, decoded.t),
        (false, None, t)
    );
    // A quiet stream lives on as long as it is pinged.
    p.advance_to(secs(300), true);
    assert!(!p.a().stream_is_ended(s));
    assert!(p.events(B).is_empty());
    let pings = p.ops_on(A, s).iter().filter(|&&o| o == Op::PING).count();
    assert_eq!(pings, 20, "one ping per 15 s");
    // A Go caller pings with an empty payload: the pong carries Go's zero time (spec §15.2).
    let mut p = pair();
    p.inject(B, &[raw_open(7, 0), msg(Op::PING, 7, 1, Flags::NONE, None)])
        .unwrap();
    p.transmit_all(B);
    let pong = p.sent_on(B, 7).pop().unwrap();
    assert_eq!((pong.op, pong.seq), (Op::PONG, 1));
    let decoded = PongMsg::decode(pong.payload.as_deref().unwrap()).unwrap();
    assert_eq!((decoded.err, decoded.t), (None, GridTime::GO_ZERO));
}

#[test]
fn a_not_found_pong_fails_the_stream() {
    let mut p = pair();
    // The handler side never saw the open (a peer that lost it).
    let s = p.open(A, 78, b"");
    p.transmit_all(A);
    p.lose_in_flight(A);
    p.advance_to(secs(15), true);
    let pong = p
        .sent_on(B, s)
        .into_iter()
        .find(|m| m.op == Op::PONG)
        .unwrap();
    assert!(
        PongMsg::decode(pong.payload.as_deref().unwrap())
            .unwrap()
            .not_found
    );
    assert_eq!(p.recv(A, s), failed(remote("remote terminated call")));
}

#[test]
fn an_error_pong_fails_the_stream() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    let mut payload = BytesMut::new();
    PongMsg {
        err: Some("gone".into()),
        ..PongMsg::default()
    }
    .encode(&mut payload)
    .unwrap();
    p.inject(A, &[msg(Op::PONG, s, 1, Flags::NONE, Some(&payload))])
        .unwrap();
    assert_eq!(p.recv(A, s), failed(remote("remote pong failed: gone")));
}

#[test]
fn a_silent_caller_stream_fails_after_two_intervals() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    // Stream pongs are lost (connection pongs are not).
    p.drop_from[B] = Some(Box::new(|m| m.op == Op::PONG && m.mux_id != 0));
    p.advance_to(secs(44), true);
    assert!(
        !p.a().stream_is_ended(s),
        "silent for 30 s at the 30 s tick: alive"
    );
    p.advance_to(secs(45), true);
    assert_eq!(p.recv(A, s), failed(CallError::Disconnected));
    assert_eq!(p.ops_on(A, s).last(), Some(&Op::DISCONNECT_SERVER_MUX));
    assert_eq!(p.events(B), [Event::Cancel { mux: s }]);
    assert_eq!(p.a().close_reason(), None);
    // A message from the handler counts as alive too.
    let s = open_acked(&mut p, 79);
    let start = p.elapsed();
    for i in 1..=8 {
        p.advance_to(start + secs(10 * i), true);
        assert!(p.serve_data(B, s, b"tick").is_ready());
        p.pump();
        assert_eq!(p.recv(A, s), ok(b"tick"));
    }
    assert!(!p.a().stream_is_ended(s));
}

#[test]
fn a_served_stream_not_pinged_is_cancelled_after_four_intervals() {
    let mut p = pair();
    // A caller that opens a stream and never pings it (it never sees the ack either).
    p.inject(B, &[raw_open(7, 0)]).unwrap();
    assert!(matches!(
        p.events(B).as_slice(),
        [Event::Stream { mux: 7, .. }]
    ));
    p.drop_from[B] = Some(Box::new(|m| m.mux_id == 7));
    p.advance_to(secs(60), true);
    assert!(
        p.events(B).is_empty(),
        "60 s without a ping is not more than 60 s"
    );
    assert!(!p.b().serve_is_cancelled(7));
    p.advance_to(secs(75), true);
    assert_eq!(p.events(B), [Event::Cancel { mux: 7 }]);
    p.serve_done(B, 7);
    p.pump();
    assert_eq!(p.ops_on(B, 7), [Op::ACK_MUX, Op::DISCONNECT_CLIENT_MUX]);
    // A pinged stream is not cancelled.
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.advance_to(secs(300), true);
    assert!(p.events(B).is_empty());
    assert!(!p.a().stream_is_ended(s));
}

/// `OpConnectMux` for handler 78 as a peer sends it.
fn raw_open(mux: u64, deadline_ms: u32) -> rgrid_proto::conn::OutMsg {
    rgrid_proto::conn::OutMsg {
        mux_id: mux,
        deadline_ms,
        handler: HandlerId(78),
        payload: Some(Bytes::new()),
        ..rgrid_proto::conn::OutMsg::new(Op::CONNECT_MUX, Flags::CRC)
    }
}

#[test]
fn a_caller_stream_with_a_short_deadline_is_not_pinged() {
    let mut p = pair();
    p.advance_to(secs(10), true);
    let s = p.open_with(A, 78, b"", Some(secs(15)));
    let long = p.open_with(A, 78, b"", Some(secs(16)));
    p.pump();
    p.advance_to(secs(15), true);
    assert!(!p.ops_on(A, s).contains(&Op::PING));
    assert!(p.ops_on(A, long).contains(&Op::PING));
}

#[test]
fn connection_pings_every_interval() {
    let mut p = pair();
    p.advance_to(secs(100), true);
    for node in [A, B] {
        let pings: Vec<_> = p
            .sent_by(node)
            .into_iter()
            .filter(|m| m.op == Op::PING && m.mux_id == 0)
            .collect();
        assert_eq!(pings.len(), 10, "node {node}: one ping per 10 s");
        for (i, ping) in pings.iter().enumerate() {
            // Connection pings carry no CRC (spec §3.6) and the interval as deadline.
            assert_eq!((ping.flags, ping.deadline_ms), (Flags::NONE, 10_000));
            let t = PingMsg::decode(ping.payload.as_deref().unwrap()).unwrap().t;
            assert_eq!(t, harness::wall(secs(10 * (i as u64 + 1))));
        }
        let pongs: Vec<_> = p
            .sent_by(1 - node)
            .into_iter()
            .filter(|m| m.op == Op::PONG && m.mux_id == 0)
            .collect();
        assert_eq!(pongs.len(), 10);
        // A pong is the ping sent back with the op changed, plus the base flags (§15.1).
        for (ping, pong) in pings.iter().zip(&pongs) {
            assert_eq!(
                (pong.seq, pong.deadline_ms, pong.handler, pong.flags),
                (ping.seq, ping.deadline_ms, ping.handler, Flags::CRC)
            );
            let t = PongMsg::decode(pong.payload.as_deref().unwrap()).unwrap().t;
            assert_eq!(
                t,
                PingMsg::decode(ping.payload.as_deref().unwrap()).unwrap().t
            );
        }
        assert_eq!(p.core(node).close_reason(), None);
    }
    // The round trip is measured.
    p.advance_to(secs(110), false);
    p.transmit_all(A);
    p.deliver_all(A);
    p.transmit_all(B);
    p.now += Duration::from_millis(30);
    p.deliver_all(B);
    assert_eq!(p.a().stats().last_rtt, Some(Duration::from_millis(30)));
}

/// A peer that sends nothing at all for `dead_after` (20 s here, MinIO's two ping intervals)
/// is presumed dead: the connection closes, and every call on it fails.
#[test]
fn a_silent_peer_closes_the_connection() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.drop_from[B] = Some(Box::new(|_| true));
    let t0 = p.elapsed();
    p.advance_to(t0 + Duration::from_millis(19_999), true);
    assert_eq!(p.a().close_reason(), None);
    p.step();
    assert_eq!(p.elapsed(), t0 + secs(20));
    assert_eq!(
        p.a().close_reason(),
        Some(&CloseReason::PongTimeout { silent: secs(20) })
    );
    assert_eq!(p.recv(A, s), failed(CallError::ConnectionClosed));
}

/// Anything the peer sends shows it is alive: with its pongs lost, its own pings keep the
/// connection up (a busy peer's data would too).
#[test]
fn any_frame_from_the_peer_keeps_the_connection_alive() {
    let mut p = pair();
    p.drop_from[B] = Some(Box::new(|m| m.op == Op::PONG && m.mux_id == 0));
    p.advance_to(secs(100), true);
    assert_eq!(p.a().close_reason(), None);
    assert_eq!(p.b().close_reason(), None);
}

/// `dead_after` is the shell's policy: rgrid's default finds a silent peer in 2.5 s.
#[test]
fn a_short_dead_after_finds_a_silent_peer_in_seconds() {
    let cfg = Config {
        ping_interval: Duration::from_secs(1),
        dead_after: Duration::from_millis(2500),
        ..Config::default()
    };
    let mut p = Pair::with(cfg.clone(), cfg, routes(), routes());
    p.advance_to(secs(10), true);
    assert_eq!(p.a().close_reason(), None, "live peers answer every ping");
    p.drop_from[B] = Some(Box::new(|_| true));
    p.advance_to(secs(12), true);
    assert_eq!(p.a().close_reason(), None);
    p.advance_to(Duration::from_millis(12_600), true);
    assert!(
        matches!(p.a().close_reason(), Some(CloseReason::PongTimeout { silent }) if *silent < secs(3)),
        "{:?}",
        p.a().close_reason()
    );
}

/// A pair whose B side allows `limit` connection pings per interval.
fn pair_with_ping_limit(limit: u32) -> Pair {
    let cfg_b = Config {
        max_pings_per_interval: limit,
        ..Config::default()
    };
    Pair::with(Config::default(), cfg_b, routes(), routes())
}

/// Connection pongs (mux 0) B sent since the log was last cleared.
fn conn_pongs_sent_by_b(p: &Pair) -> usize {
    p.sent_by(B)
        .iter()
        .filter(|m| m.op == Op::PONG && m.mux_id == 0)
        .count()
}

/// Connection pings that arrive before the writer runs each get their pong (as from Go), in
/// order; past `max_pings_per_interval` owed, the oldest is dropped.
#[test]
fn every_connection_ping_gets_its_pong() {
    let mut p = pair_with_ping_limit(3);
    let ping = OutPing::conn();
    p.inject(B, &[ping.clone(), ping.clone(), ping.clone()])
        .unwrap();
    p.transmit_all(B);
    let pongs = conn_pongs_sent_by_b(&p);
    assert_eq!(pongs, 3);
    // Two intervals' pings while the writer does not run: at most the limit stays owed.
    p.clear_log();
    p.advance_to(secs(10), false);
    p.inject(B, &[ping.clone(), ping.clone(), ping.clone()])
        .unwrap();
    p.advance_to(secs(20), false);
    p.inject(B, &[ping.clone(), ping.clone()]).unwrap();
    p.transmit_all(B);
    let pongs = conn_pongs_sent_by_b(&p);
    assert_eq!(pongs, 3, "owed pongs are bounded by the ping limit");
}

#[test]
fn a_ping_flood_closes_the_connection() {
    let mut p = pair_with_ping_limit(3);
    let ping = OutPing::conn();
    for _ in 0..3 {
        p.inject(B, std::slice::from_ref(&ping)).unwrap();
    }
    // A new interval, a new allowance (A's own ping stays unsent here); pings for streams B
    // does not serve count too.
    p.advance_to(secs(10), false);
    let stream_ping = msg(Op::PING, 9, 1, Flags::NONE, None);
    p.inject(B, &[ping.clone(), ping.clone(), stream_ping])
        .unwrap();
    assert_eq!(
        p.inject(B, &[ping]),
        Err(CloseReason::PingFlood { limit: 3 })
    );
    assert_eq!(
        p.b().close_reason(),
        Some(&CloseReason::PingFlood { limit: 3 })
    );
}

/// A connection ping as a peer sends it (flags 0).
struct OutPing;

impl OutPing {
    fn conn() -> rgrid_proto::conn::OutMsg {
        rgrid_proto::conn::OutMsg {
            deadline_ms: 10_000,
            ..rgrid_proto::conn::OutMsg::new(Op::PING, Flags::NONE)
        }
    }
}

#[test]
fn caller_stream_deadline() {
    let mut p = pair();
    // The open left but the handler side never saw it.
    let s = p.open_with(A, 78, b"", Some(secs(5)));
    p.transmit_all(A);
    p.lose_in_flight(A);
    assert_eq!(p.sent_on(A, s)[0].deadline_ms, 5_000);
    // Not sent yet at its deadline: nothing goes on the wire.
    let unsent = p.open_with(A, 78, b"payload", Some(secs(5)));
    p.advance_to(Duration::from_millis(4_999), false);
    assert!(!p.a().stream_is_ended(s));
    p.advance_to(secs(5), false);
    assert_eq!(p.recv(A, s), failed(CallError::DeadlineExceeded));
    assert_eq!(p.recv(A, unsent), failed(CallError::DeadlineExceeded));
    p.transmit_all(A);
    assert_eq!(p.ops_on(A, s), [Op::CONNECT_MUX, Op::DISCONNECT_SERVER_MUX]);
    assert_eq!(p.ops_on(A, unsent), []);
    assert_eq!(p.a().queued(), (0, 0));
}

#[test]
fn handler_stream_deadline() {
    let mut p = pair();
    // A caller that sends a 3 s deadline and never cancels.
    p.inject(B, &[raw_open(7, 3_000)]).unwrap();
    match p.events(B).as_slice() {
        [
            Event::Stream {
                mux: 7, deadline, ..
            },
        ] => assert_eq!(deadline, &Some(p.start + secs(3))),
        other => panic!("{other:?}"),
    }
    p.transmit_all(B);
    // Output queued but not sent when the deadline passes is dropped.
    assert!(p.serve_data(B, 7, b"late").is_ready());
    p.advance_to(secs(3), false);
    assert_eq!(p.events(B), [Event::Cancel { mux: 7 }]);
    assert_eq!(p.b().queued(), (0, 0));
    p.serve_done(B, 7);
    p.transmit_all(B);
    assert_eq!(p.ops_on(B, 7), [Op::ACK_MUX, Op::DISCONNECT_CLIENT_MUX]);
    assert_eq!(p.b().stats().incoming_muxes, 0);
}

#[test]
fn follow_up_messages_carry_handler_zero() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    // Each side reads what arrived until its peer's send goes through (a few rounds at
    // most: windows of 2).
    for i in 0..4u8 {
        let mut rounds = 0;
        while p.send(A, s, &[i]).is_pending() {
            rounds += 1;
            assert!(rounds < 8, "input {i} never got a credit");
            p.pump();
            while matches!(p.serve_recv(B, s), Poll::Ready(Some(_))) {}
            p.pump();
        }
        let mut rounds = 0;
        while p.serve_data(B, s, &[i]).is_pending() {
            rounds += 1;
            assert!(rounds < 8, "output {i} never got a credit");
            p.pump();
            while matches!(p.recv(A, s), Poll::Ready(Some(_))) {}
            p.pump();
        }
    }
    p.advance_to(secs(16), true);
    p.a().stream_close_send(s);
    assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_pending());
    p.pump();
    p.recv_all(A, s);
    p.pump();
    assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_ready());
    p.pump();
    let mut ops = Vec::new();
    for node in [A, B] {
        for m in p.sent_on(node, s) {
            ops.push(m.op);
            if m.op != Op::CONNECT_MUX {
                assert_eq!(m.handler, HandlerId(0), "{m:?}");
            }
        }
    }
    for op in [
        Op::MUX_CLIENT_MSG,
        Op::UNBLOCK_SRV_MUX,
        Op::PING,
        Op::ACK_MUX,
        Op::MUX_SERVER_MSG,
        Op::UNBLOCK_CL_MUX,
        Op::PONG,
        Op::DISCONNECT_CLIENT_MUX,
    ] {
        assert!(ops.contains(&op), "{op} was exercised");
    }
}

/// Regression (the Go caller's pattern): a stream opened to an unknown handler whose caller
/// sends its EOF in the same frame. The refusal must reach the caller before the disconnect
/// that the EOF for an unknown mux provokes, or the caller reports "disconnected" instead of
/// the reason.
#[test]
fn connect_error_leaves_before_the_disconnect_for_the_eof() {
    let ra = routes().stream(77, 1, 1, Class::Normal);
    let mut p = Pair::with(Config::default(), Config::default(), ra, routes());
    let s = p.open(A, 77, b"");
    p.a().stream_close_send(s);
    p.transmit_all(A);
    let frames: Vec<(usize, Op, Flags)> = p
        .log
        .iter()
        .map(|l| (l.frame, l.msg.op, l.msg.flags))
        .collect();
    assert_eq!(
        frames,
        [
            (0, Op::CONNECT_MUX, Flags::CRC),
            (0, Op::MUX_CLIENT_MSG, Flags::CRC | Flags::EOF)
        ],
        "open and EOF in one frame"
    );
    p.pump();
    assert_eq!(
        p.ops_on(B, s),
        [Op::MUX_CONNECT_ERROR, Op::DISCONNECT_CLIENT_MUX]
    );
    assert_eq!(
        p.recv(A, s),
        failed(remote("Invalid Handler for type: CheckParts3"))
    );
    // The same frame built by hand, as a Go caller writes it.
    let mut p = pair();
    let open = rgrid_proto::conn::OutMsg {
        mux_id: 3,
        handler: HandlerId(77),
        payload: Some(Bytes::new()),
        ..rgrid_proto::conn::OutMsg::new(Op::CONNECT_MUX, Flags::CRC)
    };
    let eof = msg(Op::MUX_CLIENT_MSG, 3, 1, Flags::EOF, None);
    p.inject(B, &[open, eof]).unwrap();
    p.transmit_all(B);
    let sent: Vec<(usize, Op)> = p.log.iter().map(|l| (l.frame, l.msg.op)).collect();
    assert_eq!(
        sent,
        [(0, Op::MUX_CONNECT_ERROR), (0, Op::DISCONNECT_CLIENT_MUX)]
    );
}

#[test]
fn closing_the_connection_fails_everything() {
    let mut p = pair();
    let (w, woken) = counting_waker();
    let s = open_acked(&mut p, 78);
    let req = p.request(A, 78, b"");
    p.pump();
    let _ = expect_request(&mut p, B);
    let unsent = p.open(A, 78, b"");
    let unsent_req = p.request(A, 78, b"");
    // B serves a stream of A's and a stream of its own to A.
    let back = p.open(B, 78, b"");
    p.pump();
    let (served_by_a, _) = expect_stream(&mut p, A);
    assert_eq!(served_by_a, back);
    assert!(p.a().stream_recv(s, &w).is_pending());
    assert!(p.a().poll_response(req, &w).is_pending());
    p.a().close(CloseReason::Local("shutdown".to_owned()));
    p.collect(A);
    assert_eq!(
        woken.get(),
        2,
        "the consumer and the waiting caller are woken"
    );
    assert_eq!(
        p.a().close_reason(),
        Some(&CloseReason::Local("shutdown".to_owned()))
    );
    assert_eq!(
        p.response(A, req),
        Poll::Ready(Err(CallError::ConnectionClosed))
    );
    assert_eq!(
        p.response(A, unsent_req),
        Poll::Ready(Err(CallError::ConnectionClosed))
    );
    assert_eq!(p.recv(A, s), failed(CallError::ConnectionClosed));
    assert_eq!(p.recv(A, s), ENDED);
    assert_eq!(p.recv(A, unsent), failed(CallError::ConnectionClosed));
    assert_eq!(p.events(A), [Event::Cancel { mux: back }]);
    assert_eq!(
        p.serve_data(A, back, b"x"),
        Poll::Ready(Err(CallError::Cancelled))
    );
    assert_eq!(p.transmit_all(A), 0);
    assert_eq!(p.a().next_timeout(), None);
    assert_eq!(p.a().queued(), (0, 0));
    assert!(
        p.a()
            .start_request(HandlerId(78), None, Bytes::new(), secs(1), Class::Latency)
            .is_err()
    );
    assert!(p.inject(A, &[OutPing::conn()]).is_err());
    // Once every handle is gone, nothing is left.
    p.a().stream_release(s);
    p.a().stream_release(unsent);
    p.serve_done(A, back);
    tables_empty(p.a()).unwrap();
}

#[test]
fn decode_errors_close_the_connection() {
    let mut p = pair();
    let s = p.open(B, 78, b"");
    p.pump();
    let _ = expect_stream(&mut p, A);
    // Not a message at all.
    let r = p.deliver_bytes(A, &Bytes::from_static(&[0x93, 0x01, 0x02, 0x03]));
    assert!(matches!(r, Err(CloseReason::Decode(_))), "{r:?}");
    assert!(matches!(p.a().close_reason(), Some(CloseReason::Decode(_))));
    assert_eq!(p.events(A), [Event::Cancel { mux: s }]);
    // A checksum mismatch.
    let mut p = pair();
    let mut frame = BytesMut::new();
    rgrid_proto::conn::encode_frame(&[msg(Op::PING, 0, 0, Flags::NONE, Some(b"x"))], &mut frame)
        .unwrap();
    let n = frame.len();
    frame[n - 5] ^= 0xff;
    let r = p.deliver_bytes(B, &frame.freeze());
    assert!(
        matches!(
            r,
            Err(CloseReason::Decode(DecodeError::ChecksumMismatch { .. }))
        ),
        "{r:?}"
    );
}

// =========================================================================================
// Scheduling

#[test]
fn control_leaves_before_data() {
    let routes = TestRoutes::default().stream(78, 4, 8, Class::Latency);
    let mut p = Pair::new(routes);
    let s = open_acked(&mut p, 78);
    assert!(p.send(A, s, b"i1").is_ready());
    assert!(p.send(A, s, b"i2").is_ready());
    p.pump();
    p.clear_log();
    // B queues data first, then owes two credits and a connection pong.
    for i in 0..5u8 {
        assert!(p.serve_data(B, s, &[i]).is_ready());
    }
    assert!(p.serve_recv(B, s).is_ready());
    assert!(p.serve_recv(B, s).is_ready());
    p.inject(B, &[OutPing::conn()]).unwrap();
    p.transmit(B);
    let ops: Vec<Op> = p.sent_by(B).iter().map(|m| m.op).collect();
    assert_eq!(
        ops,
        [
            Op::PONG,
            Op::UNBLOCK_CL_MUX,
            Op::UNBLOCK_CL_MUX,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
        ]
    );
}

#[test]
fn a_latency_request_overtakes_queued_bulk_data() {
    let mut p = pair();
    // B serves A a bulk stream with 64 messages of 256 KiB queued.
    let s = open_acked(&mut p, 10);
    let big = Bytes::from(vec![7u8; 256 << 10]);
    for _ in 0..64 {
        assert!(p.serve_send(B, s, ServeMsg::Data(big.clone())).is_ready());
    }
    assert_eq!(p.b().queued(), (64 * (256 << 10), 64));
    p.clear_log();
    p.transmit(B);
    assert_eq!(p.log.len(), 1, "one 256 KiB message fills a frame");
    assert_eq!(p.log[0].msg.op, Op::MUX_SERVER_MSG);
    // Then B calls A.
    let r = p.request(B, 78, b"small");
    p.transmit(B);
    let next = &p.log[1];
    assert_eq!(
        (next.frame, next.msg.op, next.msg.mux_id),
        (p.log[0].frame + 1, Op::REQUEST, r),
        "the request leaves first in the very next frame"
    );
    // The bulk gate holds the rest until A has consumed the message ahead of the request.
    assert_eq!(p.transmit(B), 0, "held by the bulk gate");
    p.deliver_all(B);
    assert!(matches!(p.recv(A, s), Poll::Ready(Some(Ok(_)))));
    p.transmit_all(A);
    p.deliver_all(A);
    // Then the bulk data goes on behind it.
    assert_eq!(p.transmit(B), 1);
    assert_eq!(p.log.last().map(|l| l.msg.op), Some(Op::MUX_SERVER_MSG));
}

/// B serves A a bulk stream (window 64) with `n` messages of `size` bytes queued; returns
/// the stream.
fn bulk_queued(p: &mut Pair, n: usize, size: usize) -> u64 {
    let s = open_acked(p, 10);
    let data = Bytes::from(vec![7u8; size]);
    for _ in 0..n {
        assert!(p.serve_send(B, s, ServeMsg::Data(data.clone())).is_ready());
    }
    p.clear_log();
    s
}

/// Stream messages of stream `s` (bulk or not) that B transmitted so far.
fn bulk_sent(p: &Pair, s: u64) -> usize {
    p.ops_on(B, s)
        .iter()
        .filter(|&&o| o == Op::MUX_SERVER_MSG)
        .count()
}

/// A consumes one message of `s` and the credit goes back to B.
fn consume_one(p: &mut Pair, s: u64) {
    p.deliver_all(B);
    assert!(matches!(p.recv(A, s), Poll::Ready(Some(Ok(_)))));
    p.transmit_all(A);
    p.deliver_all(A);
}

#[test]
fn without_small_calls_a_bulk_stream_uses_its_whole_window() {
    let mut p = pair();
    let s = bulk_queued(&mut p, 8, 64 << 10);
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 8);
    assert_eq!(p.b().stats().paced_streams, 0);
}

/// B's handler of stream `s` ends it, A reads it to the end, and nothing is left.
fn end_bulk(p: &mut Pair, s: u64) {
    end_bulk_leaving_others(p, s);
    assert_quiet_and_empty(p);
}

/// B's handler of stream `s` ends it and A reads it to the end.
fn end_bulk_leaving_others(p: &mut Pair, s: u64) {
    assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_ready());
    p.serve_done(B, s);
    // Everything flows again once A reads (each read returns a credit).
    for _ in 0..64 {
        p.pump();
        if p.recv_all(A, s).last() == Some(&None) {
            break;
        }
    }
    p.a().stream_release(s);
    p.pump();
}

/// A answers every small call B made (`calls`), and B takes the answers.
fn answer_small_calls(p: &mut Pair, calls: &[u64]) {
    p.deliver_all(B);
    for ev in p.events(A) {
        if let Event::Request { mux, .. } = ev {
            p.respond(A, mux, Some(Ok(b"r")));
        }
    }
    p.transmit_all(A);
    p.deliver_all(A);
    for &c in calls {
        assert!(p.response(B, c).is_ready(), "call {c} answered");
    }
}

/// The bulk gate: while small calls are in flight, a bulk stream of large messages keeps one
/// message ahead of its consumer, each credit letting exactly one more go.
#[test]
fn while_small_calls_flow_a_bulk_stream_keeps_one_message_ahead() {
    let mut p = pair();
    let s = bulk_queued(&mut p, 8, 64 << 10);
    assert_eq!(p.transmit(B), 1);
    let mut calls = vec![p.request(B, 78, b"small")];
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 1, "held once the call is in flight");
    assert_eq!(p.b().stats().paced_streams, 1);
    assert_eq!(p.b().queued().1, 7, "the held data stays queued");
    for sent in 2..=5 {
        // Small calls keep flowing: one more message per credit, not a window's worth.
        calls.push(p.request(B, 78, b"small"));
        consume_one(&mut p, s);
        p.transmit_all(B);
        assert_eq!(bulk_sent(&p, s), sent);
    }
    // The small calls end: after its next credit the stream has its window back.
    answer_small_calls(&mut p, &calls);
    consume_one(&mut p, s);
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 8);
    assert_eq!(p.b().stats().paced_streams, 0);
    end_bulk(&mut p, s);
}

/// A latency-class message that leaves between two bulk messages holds the second, even
/// when no call is in flight any more (an answer B served, say).
#[test]
fn an_answer_served_between_bulk_messages_holds_the_next() {
    let mut p = pair();
    let s = bulk_queued(&mut p, 3, 64 << 10);
    let r = p.request(A, 78, b"small");
    p.transmit_all(A);
    p.deliver_all(A);
    let (mux, _) = expect_request(&mut p, B);
    assert_eq!(p.transmit(B), 1, "the first bulk message");
    p.respond(B, mux, Some(Ok(b"answer")));
    p.transmit_all(B);
    assert_eq!(p.b().stats().incoming_muxes, 1, "only the stream is left");
    assert_eq!(bulk_sent(&p, s), 1, "held behind the answer");
    consume_one(&mut p, s);
    assert!(p.response(A, r).is_ready());
    p.transmit_all(B);
    assert_eq!(
        bulk_sent(&p, s),
        3,
        "no small call since: the window is back"
    );
}

/// Messages below PROMPT_CREDIT_BYTES: the consumer may hold their credits below a batch
/// (half the window), so the gate holds only once a whole batch is out, and a consumer that
/// read everything never leaves the stream waiting.
#[test]
fn the_bulk_gate_with_small_messages_holds_at_a_credit_batch() {
    let routes = routes().stream(11, 0, 4, Class::Bulk);
    let mut p = Pair::new(routes);
    let s = open_acked(&mut p, 11);
    for _ in 0..4 {
        assert!(p.serve_data(B, s, b"small bulk").is_ready());
    }
    p.clear_log();
    let call = p.request(B, 78, b"q");
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 2, "held at a batch of 2 (window 4)");
    // A reads one: its credit is held below the batch, so the gate must not wait for it.
    p.deliver_all(B);
    assert!(matches!(p.recv(A, s), Poll::Ready(Some(Ok(_)))));
    assert_eq!(p.transmit_all(A), 0, "A holds one credit below its batch");
    // A reads the second: the batch goes back and B sends on.
    assert!(matches!(p.recv(A, s), Poll::Ready(Some(Ok(_)))));
    p.transmit_all(A);
    p.deliver_all(A);
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 4);
    answer_small_calls(&mut p, &[call]);
    end_bulk(&mut p, s);
}

/// A large message's credit goes back at once, with those held before it; a small one's
/// waits for its batch.
#[test]
fn a_large_message_returns_its_credit_at_once() {
    let mut p = pair();
    let s = open_acked(&mut p, 10);
    assert!(p.serve_data(B, s, b"small").is_ready());
    let big = Bytes::from(vec![1u8; PROMPT_CREDIT_BYTES]);
    assert!(p.serve_send(B, s, ServeMsg::Data(big)).is_ready());
    p.transmit_all(B);
    p.deliver_all(B);
    p.clear_log();
    assert!(matches!(p.recv(A, s), Poll::Ready(Some(Ok(_)))));
    assert_eq!(p.transmit_all(A), 0, "the small message's credit is held");
    assert!(matches!(p.recv(A, s), Poll::Ready(Some(Ok(_)))));
    p.transmit_all(A);
    assert_eq!(
        p.ops_on(A, s),
        [Op::UNBLOCK_SRV_MUX, Op::UNBLOCK_SRV_MUX],
        "the large message's credit and the one held"
    );
}

/// The gate holds data only: a held stream's end, its final disconnect and a cancelled
/// stream's teardown all leave; a normal-class stream is never held.
#[test]
fn the_bulk_gate_holds_no_end_and_no_normal_stream() {
    let routes = routes().stream(12, 0, 64, Class::Normal);
    let mut p = Pair::new(routes);
    let n = open_acked(&mut p, 12);
    let s = bulk_queued(&mut p, 1, 64 << 10);
    let big = Bytes::from(vec![3u8; 64 << 10]);
    assert!(p.serve_send(B, n, ServeMsg::Data(big.clone())).is_ready());
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 1);
    let call = p.request(B, 78, b"q");
    assert!(p.serve_send(B, s, ServeMsg::Data(big.clone())).is_ready());
    for _ in 0..4 {
        assert!(p.serve_send(B, n, ServeMsg::Data(big.clone())).is_ready());
    }
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, s), 1, "the bulk stream is held");
    assert_eq!(bulk_sent(&p, n), 5, "the normal stream is not");
    // Its end is not held: once the data ahead of it is out, it leaves with a message
    // unconsumed and the call still in flight, and so does the final disconnect.
    consume_one(&mut p, s);
    assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_ready());
    p.serve_done(B, s);
    p.transmit_all(B);
    assert_eq!(
        p.ops_on(B, s),
        [
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::MUX_SERVER_MSG,
            Op::DISCONNECT_CLIENT_MUX
        ]
    );
    // A held stream the caller cancels is torn down.
    let h = bulk_queued(&mut p, 4, 64 << 10);
    p.transmit_all(B);
    assert_eq!(bulk_sent(&p, h), 1);
    assert_eq!(p.b().stats().paced_streams, 1);
    p.a().stream_release(h);
    p.pump();
    assert_eq!(p.b().stats().paced_streams, 0);
    assert_eq!(p.b().queued(), (0, 0));
    assert!(
        p.events(B)
            .iter()
            .any(|e| matches!(e, Event::Cancel { mux } if *mux == h)),
        "the handler is told to stop"
    );
    p.serve_done(B, h);
    answer_small_calls(&mut p, &[call]);
    p.pump();
    assert_eq!(
        p.recv_all(A, s).last(),
        Some(&None),
        "the bulk stream ended"
    );
    p.a().stream_release(s);
    end_bulk(&mut p, n);
}

/// A message that would take a frame past its byte limit starts the next frame instead:
/// small messages scheduled ahead of a large one leave in a frame of their own, so the peer
/// handles them without first reading and checking the large one. Small messages still merge,
/// and nothing is reordered.
#[test]
fn a_large_message_starts_a_frame_of_its_own() {
    let mut p = pair();
    let s = open_acked(&mut p, 78);
    p.clear_log();
    let big = vec![7u8; 64 << 10];
    assert!(p.serve_data(B, s, &big).is_ready());
    let calls: Vec<u64> = (0..3).map(|_| p.request(B, 78, b"q")).collect();
    p.transmit_all(B);
    let frames = |p: &Pair| -> Vec<(usize, Op)> {
        p.log
            .iter()
            .filter(|x| x.from == B)
            .map(|x| (x.frame, x.msg.op))
            .collect()
    };
    let sent = frames(&p);
    let f = sent.first().map_or(0, |x| x.0);
    assert_eq!(
        sent,
        [
            (f, Op::REQUEST),
            (f, Op::REQUEST),
            (f, Op::REQUEST),
            (f + 1, Op::MUX_SERVER_MSG)
        ],
        "the requests leave in one frame, the large message in the next"
    );
    // Two messages that fit a frame only one at a time take one frame each, in order.
    p.clear_log();
    let medium = vec![9u8; 20 << 10];
    assert!(p.serve_data(B, s, &medium).is_ready());
    p.deliver_all(B);
    assert_eq!(p.recv(A, s), ok(&big));
    p.transmit_all(A);
    p.deliver_all(A);
    assert!(p.serve_data(B, s, &medium[..12 << 10]).is_ready());
    p.transmit_all(B);
    let sent = frames(&p);
    assert_eq!(sent.len(), 2);
    assert_ne!(
        sent[0].0, sent[1].0,
        "20 KiB + 12 KiB (over 31 KiB) do not share a frame"
    );
    p.deliver_all(B);
    assert_eq!(p.recv(A, s), ok(&medium));
    assert_eq!(p.recv(A, s), ok(&medium[..12 << 10]));
    for (i, &c) in calls.iter().enumerate() {
        let (mux, _) = expect_request(&mut p, A);
        assert_eq!(mux, c, "request {i}");
        p.respond(A, mux, Some(Ok(b"a")));
    }
    p.pump();
    for &c in &calls {
        assert!(matches!(p.response(B, c), Poll::Ready(Ok(_))));
    }
}

#[test]
fn round_robin_within_a_class() {
    let routes = TestRoutes::default().stream(78, 0, 8, Class::Normal);
    let mut p = Pair::new(routes);
    let s1 = open_acked(&mut p, 78);
    let s2 = open_acked(&mut p, 78);
    p.clear_log();
    for i in 0..4u8 {
        assert!(p.serve_data(B, s1, &[i]).is_ready());
    }
    for i in 0..4u8 {
        assert!(p.serve_data(B, s2, &[i]).is_ready());
    }
    p.transmit_all(B);
    let order: Vec<u64> = p.sent_by(B).iter().map(|m| m.mux_id).collect();
    assert_eq!(order, [s1, s2, s1, s2, s1, s2, s1, s2]);
}

/// Latency requests keep coming while a bulk stream waits: after STARVATION_LIMIT of them,
/// one bulk message goes.
#[test]
fn starvation_guard_lets_a_lower_class_through() {
    let mut p = pair();
    let s = open_acked(&mut p, 10);
    p.clear_log();
    for _ in 0..3 {
        assert!(p.serve_data(B, s, b"bulk").is_ready());
    }
    for _ in 0..40 {
        p.request(B, 78, b"q");
    }
    p.transmit_all(B);
    let order: Vec<Op> = p.sent_by(B).iter().map(|m| m.op).collect();
    let first_bulk = order.iter().position(|&o| o == Op::MUX_SERVER_MSG).unwrap();
    assert_eq!(first_bulk, STARVATION_LIMIT as usize);
    assert_eq!(order[first_bulk + 1], Op::REQUEST);
    assert_eq!(order.len(), 43);
}

/// With latency and normal traffic both busy, bulk data still moves (the module's promise:
/// "bulk traffic slows down under load but never stops").
#[test]
fn starvation_guard_with_three_busy_classes() {
    let routes = routes().stream(79, 0, 64, Class::Normal);
    let mut p = Pair::new(routes);
    let normal = open_acked(&mut p, 79);
    let bulk = open_acked(&mut p, 10);
    p.clear_log();
    for _ in 0..64 {
        assert!(p.serve_data(B, normal, b"n").is_ready());
    }
    for _ in 0..8 {
        assert!(p.serve_data(B, bulk, b"b").is_ready());
    }
    for _ in 0..200 {
        p.request(B, 78, b"q");
    }
    p.transmit_all(B);
    let order: Vec<char> = p
        .sent_by(B)
        .iter()
        .map(|m| match (m.op, m.mux_id) {
            (Op::REQUEST, _) => 'L',
            (Op::MUX_SERVER_MSG, id) if id == normal => 'N',
            (Op::MUX_SERVER_MSG, id) if id == bulk => 'B',
            other => panic!("{other:?}"),
        })
        .collect();
    let limit = STARVATION_LIMIT as usize;
    let first = |c| order.iter().position(|&o| o == c).unwrap();
    assert_eq!(first('N'), limit, "{order:?}");
    assert_eq!(
        first('B'),
        limit + 1,
        "bulk waited behind latency and normal: {order:?}"
    );
    // Over the whole run each lower class gets one message per LIMIT higher ones.
    let bulk_early = order[..200].iter().filter(|&&o| o == 'B').count();
    assert!(bulk_early >= 5, "{order:?}");
}

// =========================================================================================
// Scale

/// 16,384 streams served on one pair: the caller pings them all in one tick, every ping gets
/// its pong, nothing closes, and what the handler side owes takes no queue space.
#[test]
fn sixteen_thousand_streams_pinged_in_one_tick() {
    const N: usize = 16_384;
    let routes = TestRoutes::default().stream(78, 1, 1, Class::Normal);
    let mut p = Pair::new(routes);
    p.logging = false;
    let streams: Vec<u64> = (0..N).map(|_| p.open(A, 78, b"")).collect();
    p.pump();
    assert_eq!(p.events(B).len(), N);
    assert_eq!(p.b().stats().incoming_muxes, N);
    // The connection pings at 10 s.
    p.step();
    p.pump();
    // The stream tick at 15 s: one ping per stream, all at once.
    assert_eq!(p.step(), Some(secs(15)));
    let count = |p: &Pair, op: Op| -> usize {
        p.log
            .iter()
            .filter(|l| l.msg.op == op && l.msg.mux_id != 0)
            .count()
    };
    p.logging = true;
    p.transmit_all(A);
    assert_eq!(count(&p, Op::PING), N);
    p.deliver_all(A);
    // Owed pongs are state of the streams: no queue grows.
    let stats = p.b().stats();
    assert_eq!(
        (
            stats.stateless_answers,
            stats.queued_messages,
            stats.queued_bytes
        ),
        (0, 0, 0)
    );
    assert!(p.b().has_output());
    p.transmit_all(B);
    assert_eq!(count(&p, Op::PONG), N);
    p.deliver_all(B);
    p.logging = false;
    p.clear_log();
    // Past two more stream ticks (a caller stream without pongs fails at 45 s), everything
    // still lives.
    p.advance_to(secs(50), true);
    assert_eq!(p.a().close_reason(), None);
    assert_eq!(p.b().close_reason(), None);
    assert!(p.events(B).is_empty(), "no served stream was cancelled");
    assert_eq!(p.a().stats().outgoing_muxes, N);
    assert!(streams.iter().all(|&s| !p.nodes[A].core.stream_is_ended(s)));
}

// =========================================================================================
// Regressions

/// A stream whose open never left when the connection closed is forgotten once released.
#[test]
fn close_then_release_forgets_an_unsent_stream() {
    let mut p = pair();
    let s = p.open(A, 78, b"never sent");
    p.a().close(CloseReason::Local("shutdown".to_owned()));
    p.a().stream_release(s);
    tables_empty(p.a()).unwrap();
}

/// A connect error for a request that has not left yet (only a hostile peer can send one)
/// must not leave its payload counted as queued forever.
#[test]
fn connect_error_for_an_unsent_request_keeps_the_queue_count() {
    let mut p = pair();
    let r = p.request(A, 78, b"payload");
    let mut payload = BytesMut::new();
    MuxConnectError { error: "no".into() }
        .encode(&mut payload)
        .unwrap();
    p.inject(
        A,
        &[msg(Op::MUX_CONNECT_ERROR, r, 0, Flags::EOF, Some(&payload))],
    )
    .unwrap();
    p.pump();
    assert_eq!(p.a().queued(), (0, 0));
    let _ = p.response(A, r);
    p.a().abandon_request(r);
    // The request left after all (the error was not its answer): its cancel goes out.
    p.pump();
    tables_empty(p.a()).unwrap();
}

/// Polling a send again after its payload was taken spends no credit.
#[test]
fn a_send_without_payload_spends_no_credit() {
    let routes = TestRoutes::default().stream(78, 1, 1, Class::Normal);
    let mut p = Pair::new(routes);
    let s = open_acked(&mut p, 78);
    let w = std::task::Waker::noop();
    assert_eq!(p.a().stream_send(s, &mut None, w), Poll::Ready(Ok(())));
    assert!(p.send(A, s, b"one").is_ready(), "the credit is still there");
    assert_eq!(p.b().serve_send(s, &mut None, w), Poll::Ready(Ok(())));
    assert!(p.serve_data(B, s, b"one").is_ready());
}

#[test]
fn wall_clock_is_virtual() {
    // The harness's time is the only time the cores see.
    let p = pair();
    assert_eq!(p.elapsed(), Duration::ZERO);
    assert_eq!(
        harness::wall(secs(1)),
        GridTime {
            unix_secs: 1_700_000_001,
            nanos: 0
        }
    );
}

/// Many served streams end while the caller's keepalive tick pings them: the pings cross
/// the final disconnects on the wire and find no stream. That is legitimate traffic and must
/// not close the connection as a ping flood.
#[test]
fn pings_crossing_final_disconnects_are_no_flood() {
    const N: usize = 2_000;
    let routes = TestRoutes::default().stream(78, 0, 1, Class::Normal);
    let mut p = Pair::new(routes);
    p.logging = false;
    let streams: Vec<u64> = (0..N).map(|_| p.open(A, 78, b"")).collect();
    p.pump();
    assert_eq!(p.events(B).len(), N);
    p.advance_to(secs(14), true);
    // Every handler ends; the ends and final disconnects are on the wire when A's tick fires.
    for &s in &streams {
        assert!(p.serve_send(B, s, ServeMsg::End(Ok(()))).is_ready());
    }
    p.transmit_all(B);
    p.advance_to(secs(15), false);
    p.logging = true;
    assert_eq!(p.transmit_all(A), N, "one ping per stream");
    p.deliver_all(A);
    p.deliver_all(B);
    p.pump();
    assert_eq!(p.b().close_reason(), None);
    assert_eq!(p.a().close_reason(), None);
    // Each crossing ping is answered "not found", after the stream's end (Go does the same).
    let pongs = p
        .log
        .iter()
        .filter(|l| l.msg.op == Op::PONG && l.msg.mux_id != 0)
        .count();
    assert_eq!(pongs, N, "every crossing ping is answered");
    for &s in &streams {
        assert_eq!(p.recv(A, s), ENDED, "every stream ends cleanly");
    }
}

/// A ping on demand: its pong gives the round trip; a waiter is woken by that pong, a
/// second ping waits for its own pong, and closing fails the waiters.
#[test]
fn pings_on_demand_measure_the_round_trip() {
    let mut p = pair();
    let (w, woken) = counting_waker();
    let (now, wall) = (p.now, harness::wall(p.elapsed()));
    let n = p.a().ping_now(now, wall);
    assert_eq!(p.a().poll_pong(n, &w), Poll::Pending);
    assert_eq!(p.a().stats().last_rtt, None);
    p.advance_to(Duration::from_millis(3), false);
    p.pump();
    p.collect(A);
    assert_eq!(woken.get(), 1, "the pong wakes the waiter");
    assert_eq!(
        p.a().poll_pong(n, &w),
        Poll::Ready(Ok(Duration::from_millis(3)))
    );
    // A second ping is not answered by the first pong.
    let (now, wall) = (p.now, harness::wall(p.elapsed()));
    let n2 = p.a().ping_now(now, wall);
    assert_eq!(p.a().poll_pong(n2, &w), Poll::Pending);
    p.a().close(CloseReason::Local("test".to_owned()));
    assert_eq!(
        p.a().poll_pong(n2, &w),
        Poll::Ready(Err(CallError::ConnectionClosed))
    );
}

/// `bulk_live` says whether a bulk-class call or stream is live on either side: a bulk stream
/// counts on both cores from its open until it is gone, normal and latency ones never do,
/// and closing the connection clears it.
#[test]
fn bulk_live_follows_the_bulk_streams() {
    let mut p = pair();
    assert!(!p.a().bulk_live() && !p.b().bulk_live());
    let s = open_acked(&mut p, 10);
    assert!(p.a().bulk_live(), "the caller's side");
    assert!(p.b().bulk_live(), "the serving side");
    end_bulk(&mut p, s);
    assert!(
        !p.a().bulk_live() && !p.b().bulk_live(),
        "gone on both sides"
    );
    // Two at once: the first to end leaves the count above zero.
    let s1 = open_acked(&mut p, 10);
    let s2 = open_acked(&mut p, 10);
    end_bulk_leaving_others(&mut p, s1);
    assert!(p.a().bulk_live() && p.b().bulk_live(), "s2 is still live");
    end_bulk(&mut p, s2);
    assert!(!p.a().bulk_live() && !p.b().bulk_live());
    // Normal and latency muxes do not count; closing clears the count.
    let _n = open_acked(&mut p, 79);
    let _call = p.request(A, 78, b"q");
    p.pump();
    let _ = expect_request(&mut p, B);
    assert!(
        !p.a().bulk_live() && !p.b().bulk_live(),
        "normal and latency muxes"
    );
    let _s3 = open_acked(&mut p, 10);
    assert!(p.a().bulk_live() && p.b().bulk_live());
    p.close_both(A, CloseReason::Local("test".to_owned()));
    assert!(!p.a().bulk_live() && !p.b().bulk_live(), "closed");
}
