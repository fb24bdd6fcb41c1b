//! Typed handlers over a real two-node grid: ports of MinIO's TestSingleRoundtripGenerics,
//! TestSingleRoundtripGenericsRecycle, testGenericsStreamRoundtrip(Subroute), the no-input
//! and no-payload variants, golden bytes of MinIO's test structs, and payloads that do not
//! decode (garbage, hostile lengths, deep nesting) failing cleanly on either side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use bytes::Bytes;
use common::{HOSTILE_PAYLOADS, TestRequest, TestResponse, assert_no_active, bounded, grid_with};
use futures_util::StreamExt;
use rgrid::typed::{Mss, NoPayload, SingleHandler, StreamHandler, decode, encode};
use rgrid::{Error, HandlerId, Options, RemoteError};

const TEXT: &str = "Hello Grid World!";

fn req(num: i64, s: &str) -> TestRequest {
    TestRequest {
        num,
        string: s.to_owned(),
    }
}

/// The msgp encoding of `testRequest{Num: 1, String: "Hello Grid World!"}`, written by hand
/// from the msgpack spec: fixmap(2), fixstr "Num", positive fixint 1, fixstr "String",
/// fixstr(17) text.
const GOLDEN_REQUEST: &[u8] = b"\x82\xa3Num\x01\xa6String\xb1Hello Grid World!";

#[test]
fn golden_bytes_of_minios_test_structs() {
    assert_eq!(&encode(&req(1, TEXT)).unwrap()[..], GOLDEN_REQUEST);
    assert_eq!(decode::<TestRequest>(GOLDEN_REQUEST).unwrap(), req(1, TEXT));
    // testResponse{OrgNum: 2, OrgString: "ab", Embedded: {Num: 3, String: ""}}: fixmap(3)
    // with a nested fixmap(2).
    let golden: &[u8] =
        b"\x83\xa6OrgNum\x02\xa9OrgString\xa2ab\xa8Embedded\x82\xa3Num\x03\xa6String\xa0";
    let resp = TestResponse {
        org_num: 2,
        org_string: "ab".to_owned(),
        embedded: req(3, ""),
    };
    assert_eq!(&encode(&resp).unwrap()[..], golden);
    assert_eq!(decode::<TestResponse>(golden).unwrap(), resp);
    // msgp writes ints above 127 with signed markers (int16 200, int8 -5); they decode.
    let go_form: &[u8] = b"\x82\xa3Num\xd1\x00\xc8\xa6String\xa0";
    assert_eq!(decode::<TestRequest>(go_form).unwrap(), req(200, ""));
    let negative: &[u8] = b"\x82\xa3Num\xfb\xa6String\xa0";
    assert_eq!(decode::<TestRequest>(negative).unwrap(), req(-5, ""));
    // Fields in another order and unknown fields, as a newer Go node may send.
    let reordered: &[u8] = b"\x83\xa6String\xa1x\xa5Extra\xc0\xa3Num\x07";
    assert_eq!(decode::<TestRequest>(reordered).unwrap(), req(7, "x"));
}

static H1: SingleHandler<TestRequest, TestResponse> = SingleHandler::new(HandlerId::TEST);
static H2: SingleHandler<TestRequest, TestResponse> = SingleHandler::new(HandlerId::TEST2);

#[tokio::test]
async fn single_roundtrip_generics() {
    let g = grid_with(Options::default(), |_, m| {
        H1.register(m, None, |r: TestRequest| async move {
            Ok(TestResponse {
                org_num: r.num,
                org_string: r.string.clone(),
                embedded: r,
            })
        })
        .unwrap();
        H2.register(m, None, |r: TestRequest| async move {
            Err(RemoteError::new(r.string))
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    let resp = bounded(H1.call(&conn, &req(1, TEXT))).await.unwrap();
    assert_eq!(resp.org_string, TEXT);
    assert_eq!(resp.org_num, 1);
    assert_eq!(resp.embedded, req(1, TEXT));
    let err = bounded(H2.call(&conn, &req(1, TEXT))).await.unwrap_err();
    assert_eq!(err, Error::Remote(RemoteError::new(TEXT)));
    assert_no_active(&g).await;
    g.shutdown().await;
}

static M1: SingleHandler<Mss, Mss> = SingleHandler::new(HandlerId::TEST);
static M2: SingleHandler<Mss, Mss> = SingleHandler::new(HandlerId::TEST2);

#[tokio::test]
async fn single_roundtrip_generics_with_mss() {
    let g = grid_with(Options::default(), |_, m| {
        M1.register(
            m,
            None,
            |r: Mss| async move { Ok(r.iter().collect::<Mss>()) },
        )
        .unwrap();
        M2.register(m, None, |r: Mss| async move {
            Err(RemoteError::new(r.get("err").unwrap_or_default()))
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(1, 0);
    let resp = bounded(M1.call(&conn, &[("test", TEXT)].into_iter().collect()))
        .await
        .unwrap();
    assert_eq!(resp.get("test"), Some(TEXT));
    let err = bounded(M2.call(&conn, &[("err", TEXT)].into_iter().collect()))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Remote(RemoteError::new(TEXT)));
    // A nil map travels as nil.
    assert!(
        bounded(M1.call(&conn, &Mss::nil()))
            .await
            .unwrap()
            .is_empty()
    );
    g.shutdown().await;
}

static S1: StreamHandler<TestRequest, TestRequest, TestResponse> =
    StreamHandler::new(HandlerId::TEST);

/// testGenericsStreamRoundtrip and its subroute variant: each input i becomes
/// `{OrgNum: i.Num + p.Num, OrgString: p.String + i.String, Embedded: i}`.
#[tokio::test]
async fn generics_stream_roundtrip_plain_and_subroute() {
    for route in [None, Some("subroute/1")] {
        let g = grid_with(Options::default(), move |_, m| {
            S1.register(
                m,
                route,
                move |ctx, p: TestRequest, mut input, out| async move {
                    assert_eq!(ctx.route(), route);
                    let mut n = 0;
                    while let Some(i) = input.recv().await {
                        let i = i?;
                        n += 1;
                        assert!(n <= 11, "too many inputs");
                        out.send(&TestResponse {
                            org_num: i.num + p.num,
                            org_string: format!("{}{}", p.string, i.string),
                            embedded: i,
                        })
                        .await?;
                    }
                    Ok(())
                },
            )
            .unwrap();
        })
        .await;
        let conn = g.conn(0, 1);
        let st = match route {
            None => bounded(S1.call(&conn, &req(1, TEXT))).await,
            Some(r) => {
                let on = rgrid::CallOptions::new().subroute(r);
                bounded(S1.call_with(&conn, &req(1, TEXT), &on)).await
            }
        }
        .unwrap();
        let (sender, responses) = st.split();
        let mut sender = sender.unwrap();
        let feed = tokio::spawn(async move {
            for i in 0..10 {
                sender.send(&req(i, TEXT)).await.unwrap();
            }
        });
        let mut n = 0;
        bounded(responses.results(|r| {
            assert_eq!(r.org_string, format!("{TEXT}{TEXT}"));
            assert_eq!(r.org_num, n + 1);
            assert_eq!(r.embedded, req(n, TEXT));
            n += 1;
            Ok(())
        }))
        .await
        .unwrap();
        assert_eq!(n, 10);
        bounded(feed).await.unwrap();
        assert_no_active(&g).await;
        g.shutdown().await;
    }
}

static NO_INPUT: StreamHandler<Mss, NoPayload, Mss> = StreamHandler::new(HandlerId::TEST);
static NO_PAYLOAD: StreamHandler<NoPayload, TestRequest, TestRequest> =
    StreamHandler::new(HandlerId::TEST2).with_out_capacity(4);

#[tokio::test]
async fn no_input_and_no_payload_streams() {
    let g = grid_with(Options::default(), |_, m| {
        NO_INPUT
            .register_no_input(m, None, |_, p: Mss, out| async move {
                for i in 0..3 {
                    let mut r = p.clone();
                    r.set("i", i.to_string());
                    out.send(&r).await?;
                }
                Ok(())
            })
            .unwrap();
        NO_PAYLOAD
            .register_no_payload(m, None, |_, mut input, out| async move {
                while let Some(r) = input.recv().await {
                    out.send(&r?).await?;
                }
                Ok(())
            })
            .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    // No input: the handle takes no requests; three responses carry the payload.
    let mut st = bounded(NO_INPUT.call(&conn, &[("k", "v")].into_iter().collect()))
        .await
        .unwrap();
    assert!(bounded(st.send(&NoPayload)).await.is_err());
    let got: Vec<Mss> = bounded(st.map(Result::unwrap).collect()).await;
    assert_eq!(got.len(), 3);
    assert_eq!((got[2].get("k"), got[2].get("i")), (Some("v"), Some("2")));
    // No payload: requests are echoed.
    let mut st = bounded(NO_PAYLOAD.call(&conn, &NoPayload)).await.unwrap();
    for i in 0..3 {
        bounded(st.send(&req(i, "x"))).await.unwrap();
    }
    st.close_send();
    let got: Vec<TestRequest> = bounded(st.map(Result::unwrap).collect()).await;
    assert_eq!(got, vec![req(0, "x"), req(1, "x"), req(2, "x")]);
    assert_no_active(&g).await;
    g.shutdown().await;
}

#[tokio::test]
async fn payloads_that_do_not_decode_fail_that_call_only() {
    let g = grid_with(Options::default(), |_, m| {
        H1.register(m, None, |r: TestRequest| async move {
            Ok(TestResponse {
                org_num: r.num,
                ..TestResponse::default()
            })
        })
        .unwrap();
        // A raw handler answering bytes that are not a TestResponse.
        m.register_single(HandlerId::TEST2, |_: Bytes| async move {
            Ok::<_, RemoteError>(Bytes::from_static(b"\x92\x01"))
        })
        .unwrap();
        S1.register(m, None, |_, _, mut input, _| async move {
            while let Some(r) = input.recv().await {
                r?;
            }
            Ok(())
        })
        .unwrap();
    })
    .await;
    let conn = g.conn(0, 1);
    // A request that is not a TestRequest: a remote error naming the decode.
    for bad in HOSTILE_PAYLOADS {
        let err = bounded(conn.request(HandlerId::TEST, Bytes::copy_from_slice(bad)))
            .await
            .unwrap_err();
        let Error::Remote(e) = err else {
            panic!("want a remote error, got {err}")
        };
        assert!(e.text().starts_with("decode request:"), "{e}");
    }
    // A response that is not a TestResponse: a local decode error.
    static BAD: SingleHandler<TestRequest, TestResponse> = SingleHandler::new(HandlerId::TEST2);
    let err = bounded(BAD.call(&conn, &req(1, "x"))).await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err}");
    // A stream payload that does not decode fails the stream; a request that does not
    // decode fails it with the handler's `?`.
    let st = bounded(conn.open_stream(HandlerId::TEST, Bytes::from_static(b"\xc1")))
        .await
        .unwrap();
    let err = bounded(st.results(|_| Ok(()))).await.unwrap_err();
    assert!(err.to_string().contains("decode request"), "{err}");
    let mut st = bounded(S1.call(&conn, &req(1, "x"))).await.unwrap();
    bounded(st.send(&req(1, "fine"))).await.unwrap();
    let mut raw_bad = bounded(conn.open_stream(HandlerId::TEST, encode(&req(1, "x")).unwrap()))
        .await
        .unwrap();
    bounded(raw_bad.send(Bytes::from_static(b"\xc1")))
        .await
        .unwrap();
    let err = bounded(raw_bad.results(|_| Ok(()))).await.unwrap_err();
    assert!(err.to_string().contains("decode request"), "{err}");
    st.close_send();
    bounded(st.results(|_| Ok(()))).await.unwrap();
    // The connection is unharmed.
    assert_eq!(
        bounded(H1.call(&conn, &req(9, ""))).await.unwrap().org_num,
        9
    );
    assert_no_active(&g).await;
    g.shutdown().await;
}
