//! The floor: a raw websocket echo over one loopback connection (tokio-websockets, the same
//! library, masking and TCP_NODELAY as the grid), with `concurrency` messages in flight.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{ClientBuilder, Message, ServerBuilder};

use crate::measure::{Point, TaskResult, Timing, lat_capacity, median_of, run_once};

type Client = tokio_websockets::WebSocketStream<TcpStream>;

/// Starts an echo server on loopback and connects one client to it.
async fn connect() -> io::Result<Client> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let Ok((_req, mut ws)) = ServerBuilder::new().accept(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_binary() && ws.send(msg).await.is_err() {
                return;
            }
        }
    });
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let uri = format!("ws://{addr}/echo");
    let builder = ClientBuilder::new()
        .uri(&uri)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (ws, _) = builder
        .connect_on(tcp)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(ws)
}

/// Echo round trips with `concurrency` messages in flight on one connection.
pub async fn echo_point(concurrency: usize, payload: &Bytes, timing: Timing) -> io::Result<Point> {
    let mut clients = Vec::new();
    for _ in 0..timing.repeats.max(1) {
        let ws = tokio::time::timeout(std::time::Duration::from_secs(10), connect())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "floor: connect timed out"))??;
        clients.push(ws);
    }
    let point = median_of(timing, || {
        let ws = clients.pop();
        let payload = payload.clone();
        run_once(timing, move |phase| {
            let Some(mut ws) = ws else {
                return Vec::new();
            };
            let cap = lat_capacity(1, timing.measure);
            vec![tokio::spawn(async move {
                let mut res = TaskResult::with_capacity(cap);
                let mut sent: VecDeque<Instant> = VecDeque::with_capacity(concurrency);
                for _ in 0..concurrency {
                    sent.push_back(Instant::now());
                    if ws.send(Message::binary(payload.clone())).await.is_err() {
                        return res;
                    }
                }
                while let Some(Ok(msg)) = ws.next().await {
                    let Some(t0) = sent.pop_front() else { break };
                    if phase.measuring() {
                        res.record(t0, msg.as_payload().len() == payload.len());
                    }
                    if phase.stopped() {
                        break;
                    }
                    sent.push_back(Instant::now());
                    if ws.send(Message::binary(payload.clone())).await.is_err() {
                        break;
                    }
                }
                let _ = ws.close().await;
                res
            })]
        })
    })
    .await;
    Ok(point)
}
