//! Named services (issue 15, item 1): an app declares its calls by service and method
//! name; one static gives the handler registration and the typed call; on the wire a method
//! is handler 128 (`HandlerId::SERVICE`) under the subroute `service/method`; unknown
//! methods are refused with an error naming them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::raw::{connected_peer, expect, mem_node, send};
use common::{assert_no_active, bounded, mem_grid_with};
use rgrid::proto::{Flags, Message, MuxId, Op, SubrouteId};
use rgrid::typed::{Service, ServiceMethod, ServiceStream};
use rgrid::{Error, HandlerId, Manager, Options, RemoteError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Lock {
    resource: String,
    owner: String,
}

const LOCKS: Service = Service::new("locks");
static LOCK: ServiceMethod<Lock, bool> = LOCKS.method("lock").inline();
static UNLOCK: ServiceMethod<Lock, bool> = LOCKS.method("unlock");
/// Declared, never registered.
static STEAL: ServiceMethod<Lock, bool> = LOCKS.method("steal");
/// Released resources, as a stream without requests.
static RELEASED: ServiceStream<u32, (), String> = LOCKS.stream("released").with_out_capacity(4);

/// The same method name in another service is another method.
const OTHER: Service = Service::new("other");
static OTHER_LOCK: ServiceMethod<Lock, bool> = OTHER.method("lock");

fn register(m: &Manager) {
    LOCK.register(m, |l: Lock| async move { Ok(l.owner == "me") })
        .unwrap();
    UNLOCK
        .register(m, |l: Lock| async move { Ok(!l.resource.is_empty()) })
        .unwrap();
    OTHER_LOCK
        .register(m, |_: Lock| async move { Ok(false) })
        .unwrap();
    RELEASED
        .register_no_input(m, |_, n: u32, out| async move {
            for i in 0..n {
                out.send(&format!("r{i}"))
                    .await
                    .map_err(|e| RemoteError::new(e.to_string()))?;
            }
            Ok(())
        })
        .unwrap();
}

fn lock(owner: &str) -> Lock {
    Lock {
        resource: "disk1/obj".to_owned(),
        owner: owner.to_owned(),
    }
}

#[tokio::test(start_paused = true)]
async fn methods_are_called_by_name_and_unknown_ones_are_named() {
    let g = mem_grid_with(Options::default(), |_, m| register(m)).await;
    let conn = g.conn(0, 1);
    assert_eq!(LOCK.route(), "locks/lock");
    assert!(bounded(LOCK.call(&conn, &lock("me"))).await.unwrap());
    assert!(!bounded(LOCK.call(&conn, &lock("you"))).await.unwrap());
    assert!(bounded(UNLOCK.call(&conn, &lock("me"))).await.unwrap());
    // Same method name, other service: its own handler answers.
    assert!(!bounded(OTHER_LOCK.call(&conn, &lock("me"))).await.unwrap());
    assert!(
        bounded(LOCK.call_with(
            &conn,
            &lock("me"),
            &rgrid::CallOptions::new().deadline(Duration::from_secs(1))
        ))
        .await
        .unwrap()
    );

    // A method the remote did not register: the error names it.
    match bounded(STEAL.call(&conn, &lock("me"))).await {
        Err(Error::Remote(e)) => {
            println!("unknown method: {e}");
            assert!(e.text().contains("locks/steal"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A method is registered once per node.
    let m = g.managers[0].clone();
    assert!(matches!(
        LOCK.register(&m, |_: Lock| async move { Ok(true) }),
        Err(Error::HandlerAlreadyExists(HandlerId::SERVICE))
    ));

    // A stream method.
    let s = bounded(RELEASED.call(&conn, &3)).await.unwrap();
    let mut got = Vec::new();
    bounded(s.results(|r| {
        got.push(r);
        Ok(())
    }))
    .await
    .unwrap();
    assert_eq!(got, ["r0", "r1", "r2"]);
    assert_no_active(&g).await;
    g.shutdown().await;
}

/// On the wire a method is handler 128 under the subroute `service/method`: a raw peer
/// calls it that way and gets the typed answer (msgpack `true`).
#[tokio::test(start_paused = true)]
async fn on_the_wire_a_method_is_handler_128_under_its_route() {
    let n = mem_node(Options::default(), register).await;
    let mut ws = connected_peer(&n).await;
    let payload = rmp_serde::to_vec_named(&lock("me")).unwrap();
    send(
        &mut ws,
        Message {
            mux_id: MuxId(5),
            deadline_ms: 5000,
            handler: HandlerId(128),
            flags: Flags::CRC | Flags::EOF | Flags::SUBROUTE,
            payload: Some(&payload),
            subroute: Some(SubrouteId::new(HandlerId(128), "locks/lock")),
            ..Message::new(Op::REQUEST)
        },
    )
    .await;
    let answer = expect(&mut ws, Op::RESPONSE, 5, &mut Vec::new()).await;
    // msgpack true.
    assert_eq!(answer.payload.as_deref(), Some(&[0xc3u8][..]));
    assert!(!answer.flags.contains(Flags::PAYLOAD_IS_ERR));
}
