//! The handlers `rgrid serve --conformance` registers (DESIGN.md §4), with the ids of MinIO's
//! own tests. `rgrid call` registers the same set, because a stream's caller sizes its credit
//! windows from its own registration of the handler.

use bytes::{BufMut, Bytes, BytesMut};
use rgrid::{HandlerId, Manager, RawStreamHandler, RemoteError, StreamIn, StreamOut};

/// Single 78 echoes; stream 78 has the subroutes `echo` and `count`.
pub(crate) const ECHO: HandlerId = HandlerId::TEST;
/// Single 79 fails with the payload as the error text; stream 79 has the subroute `error`.
pub(crate) const ERROR: HandlerId = HandlerId::TEST2;
/// Messages the `count` stream sends.
pub(crate) const COUNT_MESSAGES: u8 = 10;

/// The payload as text, for error messages (invalid UTF-8 is replaced, not refused).
fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// The stream handlers of the conformance set, by (handler, subroute).
pub(crate) fn streams() -> [(HandlerId, &'static str, RawStreamHandler); 3] {
    [
        (
            ECHO,
            "echo",
            RawStreamHandler::new(
                1,
                1,
                |_, _, input: Option<StreamIn>, out: StreamOut| async move {
                    let Some(mut input) = input else {
                        return Err(RemoteError::new("echo stream opened without input"));
                    };
                    while let Some(msg) = input.recv().await {
                        out.send(msg)
                            .await
                            .map_err(|e| RemoteError::new(e.to_string()))?;
                    }
                    Ok(())
                },
            ),
        ),
        (
            ECHO,
            "count",
            RawStreamHandler::new(0, 1, |_, payload: Bytes, _, out: StreamOut| async move {
                for i in 0..COUNT_MESSAGES {
                    let mut msg = BytesMut::with_capacity(1 + payload.len());
                    msg.put_u8(i);
                    msg.put_slice(&payload);
                    out.send(msg.freeze())
                        .await
                        .map_err(|e| RemoteError::new(e.to_string()))?;
                }
                Ok(())
            }),
        ),
        (
            ERROR,
            "error",
            RawStreamHandler::new(0, 1, |_, payload: Bytes, _, _| async move {
                Err(RemoteError::new(text(&payload)))
            }),
        ),
    ]
}

/// The conformance stream handler registered under `handler` and `subroute`, if any.
pub(crate) fn stream(handler: HandlerId, subroute: Option<&str>) -> Option<RawStreamHandler> {
    streams()
        .into_iter()
        .find(|(id, sub, _)| *id == handler && Some(*sub) == subroute)
        .map(|(_, _, h)| h)
}

/// Registers the whole conformance set on `m`.
pub(crate) fn register(m: &Manager) -> Result<(), rgrid::Error> {
    m.register_single(ECHO, |payload: Bytes| async move { Ok(payload) })?;
    m.register_single(ERROR, |payload: Bytes| async move {
        Err(RemoteError::new(text(&payload)))
    })?;
    for (id, subroute, handler) in streams() {
        m.register_stream(id, Some(subroute), handler)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use futures_util::StreamExt;
    use rgrid::Error;
    use rgrid::test_util::LocalGrid;

    use super::*;

    /// Awaits `f` for at most 10 s, so a hang fails the test.
    async fn bounded<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("hung")
    }

    #[tokio::test]
    async fn every_conformance_handler_behaves_as_designed() {
        let grid = bounded(LocalGrid::start_in_memory(
            2,
            rgrid::Options::default(),
            |_, m| {
                register(m).unwrap();
            },
        ))
        .await
        .unwrap();
        let conn = grid.conn(0, 1);
        assert_eq!(
            bounded(conn.request(ECHO, Bytes::from_static(b"hi")))
                .await
                .unwrap(),
            Bytes::from_static(b"hi")
        );
        match bounded(conn.request(ERROR, Bytes::from_static(b"boom"))).await {
            Err(Error::Remote(e)) => assert_eq!(e.text(), "boom"),
            other => panic!("want a remote error, got {other:?}"),
        }

        let mut echo = bounded(conn.open_stream_with(
            ECHO,
            Bytes::new(),
            &rgrid::CallOptions::new().subroute("echo"),
        ))
        .await
        .unwrap();
        bounded(echo.send(Bytes::from_static(b"a"))).await.unwrap();
        assert_eq!(
            bounded(echo.next()).await.unwrap().unwrap(),
            Bytes::from_static(b"a")
        );
        echo.close_send();
        assert!(bounded(echo.next()).await.is_none());

        let count = bounded(conn.open_stream_with(
            ECHO,
            Bytes::from_static(b"xy"),
            &rgrid::CallOptions::new().subroute("count"),
        ))
        .await
        .unwrap();
        let got: Vec<Bytes> = bounded(count.map(Result::unwrap).collect()).await;
        let want: Vec<Bytes> = (0..COUNT_MESSAGES)
            .map(|i| Bytes::from(vec![i, b'x', b'y']))
            .collect();
        assert_eq!(got, want);

        let mut failing = bounded(conn.open_stream_with(
            ERROR,
            Bytes::from_static(b"bad"),
            &rgrid::CallOptions::new().subroute("error"),
        ))
        .await
        .unwrap();
        match bounded(failing.next()).await {
            Some(Err(Error::Remote(e))) => assert_eq!(e.text(), "bad"),
            other => panic!("want a remote error, got {other:?}"),
        }
        assert!(bounded(failing.next()).await.is_none());
        // Cleanup is asynchronous: poll (bounded) until no mux is left on either side.
        let muxes = || {
            [grid.conn(0, 1), grid.conn(1, 0)].map(|c| {
                let s = c.stats();
                (s.incoming_muxes, s.outgoing_muxes)
            })
        };
        let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
        while muxes() != [(0, 0); 2] && tokio::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            muxes(),
            [(0, 0); 2],
            "muxes left open (in, out) per direction"
        );
        drop((echo, failing));
        bounded(grid.shutdown()).await;
    }
}
